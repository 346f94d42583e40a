"""Turn a decoded CloudTrail record into an :class:`~lpgen.model.Event`.

Principal resolution follows what IAM evaluates: an assumed-role session is
its role (``sessionContext.sessionIssuer.arn``, path included), a federated
user is the IAM user that issued the federation token, an IAM user or root is
itself. Calls that AWS services make on their own (``userIdentity.type``
``AWSService``, ``eventType`` ``AwsServiceEvent``) are kept apart: they are no
principal's usage.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timezone

import msgspec

from lpgen.data_files import values
from lpgen.fields import created_keys, event_fields
from lpgen.model import DENIED, ERROR, OK, Event
from lpgen.records import RawRecord, UserIdentity
from lpgen.records import identity as decode_identity


class BadRecord(ValueError):
    """A record lpgen cannot use; the message says why."""


@functools.cache
def denied_codes() -> frozenset[str]:
    return frozenset(values("error_codes.json", "denied"))


def error_class(code: str | None) -> str:
    if not code:
        return OK
    return DENIED if code in denied_codes() else ERROR


def account_of(principal: str, fallback: str) -> str:
    """The account in a principal's ARN (``fallback`` for ``service:...`` and other non-ARNs)."""
    parts = principal.split(":", 5)
    return parts[4] if len(parts) > 4 and parts[0] == "arn" and parts[4] else fallback


#: Region name prefixes of the partitions other than ``aws`` (botocore's partitions.json, regionRegex).
_PARTITION_PREFIXES = (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-iso-", "aws-iso"), ("us-isob-", "aws-iso-b"),
                       ("eu-isoe-", "aws-iso-e"), ("us-isof-", "aws-iso-f"), ("eusc-", "aws-eusc"))


@functools.lru_cache(maxsize=1024)  # asked once per call mapped; regions are few
def partition_of_region(region: str | None) -> str:
    """The partition a region belongs to: its ARNs' second field."""
    if region:
        for prefix, partition in _PARTITION_PREFIXES:
            if region.startswith(prefix):
                return partition
    return "aws"


_ASSUMED = re.compile(r"^arn:(?P<p>[\w-]+):sts::(?P<a>\d+):assumed-role/(?P<role>[^/]+)/")
_FEDERATED = re.compile(r"^arn:(?P<p>[\w-]+):sts::(?P<a>\d+):federated-user/")


def resolve_principal(identity: UserIdentity | None, region: str | None) -> tuple[str, str]:
    """(principal, principal type) of a record's ``userIdentity``."""
    if identity is None:
        return "unknown", "unknown"
    kind = identity.type
    issuer = identity.sessionContext.sessionIssuer if identity.sessionContext else None
    if kind == "AssumedRole":
        if issuer is not None and issuer.arn and ":role/" in issuer.arn:
            return issuer.arn, "role"
        m = _ASSUMED.match(identity.arn or "")
        if m:  # no session issuer: the role's path is unknown
            return f"arn:{m['p']}:iam::{m['a']}:role/{m['role']}", "role"
    elif kind == "IAMUser":
        if identity.arn:
            return identity.arn, "user"
        if identity.accountId and identity.userName:
            return f"arn:{partition_of_region(region)}:iam::{identity.accountId}:user/{identity.userName}", "user"
    elif kind == "Root":
        if identity.arn:
            return identity.arn, "root"
        if identity.accountId:
            return f"arn:{partition_of_region(region)}:iam::{identity.accountId}:root", "root"
    elif kind == "FederatedUser":
        # GetFederationToken sessions are bounded by the issuing IAM user's policies.
        if issuer is not None and issuer.arn and ":user/" in issuer.arn:
            return issuer.arn, "user"
        if identity.arn and _FEDERATED.match(identity.arn):
            return identity.arn, "federated-user"
    elif kind == "AWSAccount":
        if identity.accountId:
            return f"arn:{partition_of_region(region)}:iam::{identity.accountId}:root", "account"
    elif kind == "AWSService":
        return f"service:{identity.invokedBy or 'unknown'}", "service"
    elif kind in ("WebIdentityUser", "SAMLUser"):
        who = identity.identityProvider or "unknown"
        return f"{'web-identity' if kind == 'WebIdentityUser' else 'saml'}:{who}", kind.lower().replace("user", "")
    if identity.arn:
        return identity.arn, "unknown"
    return f"unknown:{kind or 'no-type'}:{identity.principalId or ''}", "unknown"


#: A valid instant in canonical form, 2000-2199 (strings that compare in time order).
CANONICAL_TIME = re.compile(r"^2[01]\d\d-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ$")


def canonical_time(value: str) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC, the form string comparison orders correctly."""
    if CANONICAL_TIME.match(value):
        return value
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRecord(f"unparseable eventTime {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if not 2000 <= parsed.year <= 2200:
        raise BadRecord(f"eventTime out of range {value[:40]!r}")
    return parsed.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Who called what, where: everything of an event but its time, ID and resources."""

    source: str
    name: str
    region: str
    account: str
    principal: str
    principal_type: str
    service_initiated: bool
    invoked_by: str | None
    error_code: str | None
    error_class: str
    category: str | None
    event_type: str | None


def caller(record: RawRecord) -> Caller:
    """The :class:`Caller` of one record; raises :class:`BadRecord` when it cannot be used."""
    source, name = record.eventSource, record.eventName
    if not source or not name:
        raise BadRecord("no eventSource/eventName: not a CloudTrail API record")
    region = record.awsRegion or "unknown"
    try:
        identity = decode_identity(record.userIdentity)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise BadRecord(f"unreadable userIdentity: {exc}") from None
    principal, ptype = resolve_principal(identity, region)
    service_initiated = ptype == "service" or record.eventType == "AwsServiceEvent"
    if service_initiated and ptype != "service":
        principal = f"service:{(identity.invokedBy if identity else None) or source}"
        ptype = "service"
    return Caller(
        source=source,
        name=name,
        region=region,
        account=record.recipientAccountId or (identity.accountId if identity else None) or "unknown",
        principal=principal,
        principal_type=ptype,
        service_initiated=service_initiated,
        invoked_by=identity.invokedBy if identity and not service_initiated else None,
        error_code=record.errorCode,
        error_class=error_class(record.errorCode),
        category=record.eventCategory,
        event_type=record.eventType,
    )


def event_time(record: RawRecord) -> str:
    if not record.eventTime:
        raise BadRecord("no eventTime")
    return canonical_time(record.eventTime)


def normalize(record: RawRecord) -> Event:
    """The :class:`Event` of one record; raises :class:`BadRecord` when it cannot be used."""
    return Event(
        **msgspec.structs.asdict(caller(record)),
        event_id=record.eventID,
        time=event_time(record),
        fields=event_fields(record.requestParameters, record.resources, record.responseElements,
                            created_keys(record.eventSource or "", record.eventName or "")),
        raw=record,
    )
