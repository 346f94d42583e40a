"""The one place lpgen makes AWS clients: profile, region, endpoint and the standard environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config

#: Retries with backoff for throttling and transient errors (botocore's standard mode).
RETRIES = Config(retries={"mode": "standard", "max_attempts": 8})


#: When set, every AWS call of a client made here is appended to this file as ``service:Operation``, one a
#: line (worker processes inherit it): the test suite checks them against lpgen's allow-list of reads.
RECORD_CALLS_ENV = "LPGEN_RECORD_API_CALLS"


def client_factory(*, profile: str | None = None, region: str | None = None,
                   endpoint_url: str | None = None) -> Callable[[str], Any]:
    """A function returning boto3 clients that share one session and honour the options."""
    session = boto3.Session(profile_name=profile, region_name=region)
    record = os.environ.get(RECORD_CALLS_ENV)
    if record:
        session.events.register("before-call", _recorder(record))

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint_url, config=RETRIES,
                              region_name=region or session.region_name or "us-east-1")

    return client


def _recorder(path: str) -> Callable[..., None]:
    def record(model, **_: Any) -> None:
        with open(path, "a", encoding="utf-8") as f:  # one short append: atomic across processes
            f.write(f"{model.service_model.service_name}:{model.name}\n")

    return record


def error_message(exc: Exception) -> str:
    """An AWS error as ``Code: message`` (botocore's ClientError), or its text."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict) and "Error" in response:
        return f"{response['Error'].get('Code')}: {response['Error'].get('Message')}"
    return str(exc)
