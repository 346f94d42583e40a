"""A trail delivered to CloudWatch Logs: ``logs:LOG_GROUP[:STREAM_PREFIX]``.

CloudTrail writes each record as one log event (the message is the record's JSON) into
streams named ``<account>_CloudTrail_<region>``. lpgen reads them with FilterLogEvents,
page by page (``nextToken``), one UTC hour per input: an hour is what a worker holds in
memory, and what the ledger remembers. The hours run from the window (or, without one,
from the earliest event of the group's streams) to now; the query range of each hour is
on the log events' timestamps, and the window is applied again to each record's
``eventTime`` when mining, so nothing at an hour's edge is lost or counted outside the
window.

An hour that ended more than :data:`SETTLE` ago is complete: the ledger records it as such
and a later run skips it. A more recent hour may still receive events (CloudTrail delivers
with a delay), so it is listed with a version that differs on every run: it is read again,
and the events already counted are dropped by their eventID.

Log group names cannot hold ``:`` and stream names cannot either, so the spec splits on
the first two colons: ``logs:/aws/cloudtrail/org-trail:123456789012_CloudTrail_eu-``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from lpgen.aws import error_message
from lpgen.filters import FilterError, Window, as_datetime
from lpgen.model import Problem
from lpgen.sources.base import AwsSource, Blob, Listing

HOUR = timedelta(hours=1)
#: CloudTrail delivers to CloudWatch Logs within minutes; an hour older than this is complete.
SETTLE = timedelta(hours=1)
#: Events whose log timestamp and eventTime differ by up to this much are still found.
SLACK = timedelta(minutes=15)
#: FilterLogEvents' largest page.
PAGE_SIZE = 10_000
COMPLETE = "complete"

NOTE = ("{label}: read one hour at a time through FilterLogEvents; an hour is complete once it ended "
        "{settle} ago, and until then every run reads it again (counting only new events)")


class LogsSource(AwsSource):
    """CloudTrail records in a CloudWatch Logs group. Picklable: each process makes its own client."""

    service = "logs"

    def __init__(self, spec: str, *, window: Window = Window(), region: str | None = None,
                 client_options: dict[str, Any] | None = None,
                 client_factory: Callable[[str], Any] | None = None, now: datetime | None = None,
                 page_size: int = PAGE_SIZE) -> None:
        _, group, prefix = (spec.split(":", 2) + [""])[:3]
        if not spec.startswith("logs:") or not group:
            raise FilterError(f"{spec}: expected logs:LOG_GROUP[:STREAM_PREFIX]")
        super().__init__(region=region, client_options=client_options, client_factory=client_factory)
        self.label, self.group, self.stream_prefix = spec, group, prefix
        self.window, self.now, self.page_size = window, now, page_size

    def _region(self) -> str:
        return self.client().meta.region_name

    def _key(self, hour: datetime) -> str:
        prefix = f":{self.stream_prefix}" if self.stream_prefix else ""
        return f"logs:{self._region()}:{self.group}{prefix}@{hour:%Y-%m-%dT%H}:00Z"

    def first_event(self) -> datetime | None:
        """The earliest event timestamp of the group's (matching) streams; None when they hold none."""
        request: dict[str, Any] = {"logGroupName": self.group}
        if self.stream_prefix:
            request["logStreamNamePrefix"] = self.stream_prefix
        first = None
        for page in self.client().get_paginator("describe_log_streams").paginate(**request):
            for stream in page.get("logStreams", []):
                t = stream.get("firstEventTimestamp")
                if t is not None and (first is None or t < first):
                    first = t
        return None if first is None else datetime.fromtimestamp(first / 1000, timezone.utc)

    def hours(self, first_event: datetime | None) -> list[datetime]:
        """The UTC hours to read: the window (with slack), no earlier than the first event, no later than now."""
        now = self.now or datetime.now(timezone.utc)
        start = as_datetime(self.window.since) - SLACK if self.window.since else first_event
        if start is None or first_event is None:
            return []
        start = max(start, first_event - SLACK)
        end = min(now, as_datetime(self.window.until) + SLACK) if self.window.until else now
        hour = start.replace(minute=0, second=0, microsecond=0)
        out = []
        while hour <= end:
            out.append(hour)
            hour += HOUR
        return out

    def list(self) -> Listing:
        try:
            hours = self.hours(self.first_event())
            region = self._region()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                reason = f"no log group {self.group} in {self._region()}"
            else:
                reason = f"cannot list the log streams: {error_message(exc)}"
            return Listing(blobs=(), problems=(Problem(path=self.label, reason=reason),))
        except BotoCoreError as exc:
            return Listing(blobs=(), problems=(Problem(path=self.label, reason=f"cannot list: {exc}"),))
        now = self.now or datetime.now(timezone.utc)
        open_version = f"open@{now:%Y-%m-%dT%H:%M:%S.%fZ}"
        blobs = tuple(Blob(key=self._key(h), version=COMPLETE if h + HOUR <= now - SETTLE else open_version)
                      for h in hours)
        notes = (NOTE.format(label=self.label, settle=_hours(SETTLE)),)
        if not blobs:
            notes += (f"{self.label}: no log events in {self.group} ({region})"
                      + (f" in streams starting {self.stream_prefix}" if self.stream_prefix else ""),)
        return Listing(blobs=blobs, notes=notes)

    def read(self, blob: Blob) -> bytes:
        """One hour's log events as a ``{"Records": [...]}`` document; a message that is not JSON stays a string."""
        hour = datetime.strptime(blob.key.rsplit("@", 1)[1], "%Y-%m-%dT%H:%MZ").replace(tzinfo=timezone.utc)
        request: dict[str, Any] = {"logGroupName": self.group, "startTime": _ms(hour), "endTime": _ms(hour + HOUR) - 1,
                                   "limit": self.page_size}
        if self.stream_prefix:
            request["logStreamNamePrefix"] = self.stream_prefix
        parts: list[bytes] = []
        client = self.client()
        try:
            while True:
                page = client.filter_log_events(**request)
                parts += [_element(e.get("message", "")) for e in page.get("events", [])]
                if not page.get("nextToken"):
                    break
                request["nextToken"] = page["nextToken"]
        except (BotoCoreError, ClientError) as exc:
            raise OSError(f"FilterLogEvents failed: {_failure(exc)}") from None
        return b'{"Records":[' + b",".join(parts) + b"]}"


def _element(message: str) -> bytes:
    """A message as one element of the Records array: itself when it is JSON, else a JSON string.

    The shared decoder then reports a non-CloudTrail message as one bad record, by index,
    and keeps every other record of the hour.
    """
    data = message.encode()
    try:
        msgspec.json.decode(data, type=msgspec.Raw)  # validates without building objects
        return data
    except msgspec.DecodeError:
        return msgspec.json.encode(message)


def _failure(exc: BotoCoreError | ClientError) -> str:
    text = error_message(exc)
    response = getattr(exc, "response", None) or {}
    if response.get("Error", {}).get("Code") in ("ThrottlingException", "LimitExceededException"):
        attempts = response.get("ResponseMetadata", {}).get("RetryAttempts", 0)
        text += f" (still throttled after {attempts} retries: lower --workers, or run again later)"
    return text


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def _hours(span: timedelta) -> str:
    n = int(span / HOUR)
    return "an hour" if n == 1 else f"{n} hours"

