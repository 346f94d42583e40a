"""The one place lpgen makes AWS clients: profile, region, endpoint and the standard environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

#: Retries with backoff for throttling and transient errors (botocore's standard mode).
RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})


def client_factory(*, profile: str | None = None, region: str | None = None,
                   endpoint_url: str | None = None) -> Callable[[str], Any]:
    """A function returning boto3 clients that share one session and honour the options."""
    session = boto3.Session(profile_name=profile, region_name=region)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url, config=RETRIES,
                              region_name=region or session.region_name or "us-east-1")

    return client


def error_message(exc: Exception) -> str:
    """An AWS error as ``Code: message`` (botocore's ClientError), or its text."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return str(exc)
