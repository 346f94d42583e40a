"""CloudTrail's LookupEvents API (``cloudtrail:lookup[:ATTRIBUTE=VALUE]``): event history.

Only the last 90 days, only management (and Insights) events, 50 events a page, two
requests a second per account and region, and one lookup attribute per request (others
are silently ignored by the service). Data events are not available this way: the
summary says so. The whole lookup is one input for the ledger (its region, window and
attribute), read as a lookup-events document, so the shared decoder handles it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lpgen.aws import error_message
from lpgen.filters import FilterError, Window, as_datetime
from lpgen.sources.base import AwsSource, Blob, Listing

ATTRIBUTES = ("EventId", "EventName", "ReadOnly", "Username", "ResourceType", "ResourceName", "EventSource",
              "AccessKeyId")
RETENTION_DAYS = 90
#: LookupEvents allows 2 requests per second per account and region.
MIN_INTERVAL = 0.5

NOTE = "LookupEvents returns management events only (90 days): data events (S3 objects, Lambda invokes...) are not in it"


class LookupSource(AwsSource):
    service = "cloudtrail"

    def __init__(self, spec: str, *, window: Window = Window(), region: str | None = None,
                 client_options: dict[str, Any] | None = None,
                 client_factory: Callable[[str], Any] | None = None, now: datetime | None = None) -> None:
        rest = spec.split(":", 2)[2] if spec.count(":") >= 2 else ""
        self.label = spec
        self.attribute: tuple[str, str] | None = None
        if rest:
            key, sep, value = rest.partition("=")
            if not sep or key not in ATTRIBUTES:
                raise FilterError(f"{spec}: expected cloudtrail:lookup[:ATTRIBUTE=VALUE] with ATTRIBUTE one of "
                                 f"{', '.join(ATTRIBUTES)}")
            self.attribute = (key, value)
        super().__init__(region=region, client_options=client_options, client_factory=client_factory)
        self.window, self.now = window, now

    def span(self) -> tuple[datetime, datetime]:
        now = self.now or datetime.now(timezone.utc)
        earliest = now - timedelta(days=RETENTION_DAYS)
        start = max(earliest, as_datetime(self.window.since)) if self.window.since else earliest
        end = min(now, as_datetime(self.window.until)) if self.window.until else now
        return start, end

    def list(self) -> Listing:
        start, end = self.span()
        attribute = f":{self.attribute[0]}={self.attribute[1]}" if self.attribute else ""
        key = (f"cloudtrail:lookup:{self.region or 'default'}{attribute}:"
               f"{start:%Y-%m-%dT%H:%M:%SZ}..{end:%Y-%m-%dT%H:%M:%SZ}")
        notes = [f"{self.label}: {NOTE}"]
        if self.window.since and as_datetime(self.window.since) < start:
            notes.append(f"{self.label}: the window starts before the {RETENTION_DAYS}-day event history: "
                         f"read from {start:%Y-%m-%d}")
        return Listing(blobs=(Blob(key=key),), notes=tuple(notes))

    def read(self, blob: Blob) -> bytes:
        """Every page of the lookup, paced to the service's rate limit, as one lookup-events document."""
        client = self.client()
        start, end = self.span()
        request: dict[str, Any] = {"StartTime": start, "EndTime": end, "MaxResults": 50}
        if self.attribute:
            request["LookupAttributes"] = [{"AttributeKey": self.attribute[0], "AttributeValue": self.attribute[1]}]
        events, last = [], 0.0
        try:
            while True:
                wait = MIN_INTERVAL - (time.monotonic() - last)
                if wait > 0:
                    time.sleep(wait)
                last = time.monotonic()
                page = client.lookup_events(**request)
                events += [{"CloudTrailEvent": e["CloudTrailEvent"]} for e in page.get("Events", [])
                           if e.get("CloudTrailEvent")]
                if not page.get("NextToken"):
                    break
                request["NextToken"] = page["NextToken"]
        except (BotoCoreError, ClientError) as exc:  # after botocore's retries: a clear message, no traceback
            raise OSError(f"LookupEvents failed: {error_message(exc)}") from None
        return json.dumps({"Events": events}).encode()

