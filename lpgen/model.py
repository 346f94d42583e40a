"""Domain objects shared by the pipeline stages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

#: Error classes of a call. A denied call is evidence of a wish, never of use;
#: any other error means IAM authorized the call.
OK, DENIED, ERROR = "ok", "denied", "error"


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One CloudTrail record, normalised to what lpgen reasons about.

    A frozen msgspec Struct rather than the frozen dataclass our other domain
    objects are: archives hold millions of events, and a frozen dataclass costs
    about 4 µs to build against 0.15 µs for a Struct. ``raw`` is left out of
    equality, hashing and repr, as ``field(compare=False, repr=False)`` would.
    """

    event_id: str | None
    time: str  # ISO 8601, UTC, second precision: "2026-11-02T08:15:00Z"
    source: str  # eventSource, e.g. "s3.amazonaws.com"
    name: str  # eventName, e.g. "GetObject"
    region: str
    account: str  # the account whose trail recorded it (recipientAccountId)
    principal: str  # role/user/root ARN, or "service:<name>" for service-initiated events
    principal_type: str  # role, user, root, federated-user, account, web-identity, saml, service, unknown
    service_initiated: bool = False
    invoked_by: str | None = None  # a service acting with the principal's credentials
    error_code: str | None = None
    error_class: str = OK
    category: str | None = None  # eventCategory: Management, Data, Insight, NetworkActivity
    event_type: str | None = None  # AwsApiCall, AwsServiceEvent, AwsConsoleSignIn, ...
    fields: tuple[tuple[str, str], ...] = ()  # resource-naming request fields and resources[] ARNs
    raw: Any = None  # the decoded record it came from

    def _key(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__struct_fields__ if name != "raw")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__ if name != "raw")
        return f"Event({shown})"

    @property
    def day(self) -> str:
        return self.time[:10]


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """Something in an input that could not be used, reported and counted, never raised."""

    path: str
    reason: str
    record: int | None = None  # index of the record within the file, when one record is at fault

    def __str__(self) -> str:
        where = self.path if self.record is None else f"{self.path} record {self.record}"
        return f"{where}: {self.reason}"
