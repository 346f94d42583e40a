"""Which events a run looks at: a time window and a principal filter."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

_RELATIVE = re.compile(r"^(\d+)\s*([dhwm])$")
_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1), "m": timedelta(minutes=1)}


class FilterError(ValueError):
    """A window or principal filter that cannot be understood."""


def parse_instant(text: str, *, end: bool = False, now: datetime | None = None) -> str:
    """An ISO date/time, or a relative age (``90d``, ``12h``, ``2w``), as canonical UTC text.

    A bare date is the start of that day, or its last second when ``end`` is set,
    so ``--since 2026-11-02 --until 2026-11-08`` covers both days in full.
    """
    text = text.strip()
    m = _RELATIVE.match(text)
    if m:
        moment = (now or datetime.now(timezone.utc)) - int(m[1]) * _UNITS[m[2]]
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return f"{day.isoformat()}T{'23:59:59' if end else '00:00:00'}Z"
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{text!r} is neither an ISO date/time nor an age such as 90d, 12h or 2w") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_datetime(instant: str) -> datetime:
    """A canonical instant (``2026-11-02T08:15:00Z``) as an aware datetime, for APIs that take one."""
    return datetime.fromisoformat(instant.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    since: str | None = None
    until: str | None = None

    def __post_init__(self) -> None:
        if self.since and self.until and self.since > self.until:
            raise FilterError(f"the window is empty: since {self.since} is after until {self.until}")

    def contains(self, time: str) -> bool:
        return (self.since is None or time >= self.since) and (self.until is None or time <= self.until)

    def may_hold_day(self, day: str | None) -> bool:
        """Could a file delivered on ``day`` hold events in the window? (One day's slack each side.)"""
        if day is None:
            return True
        d = date.fromisoformat(day)
        if self.since and (d + timedelta(days=1)).isoformat() < self.since[:10]:
            return False
        return not (self.until and (d - timedelta(days=1)).isoformat() > self.until[:10])


def principal_matcher(patterns: tuple[str, ...]):
    """A predicate over principal ARNs for ``--principal`` values: an ARN, a name, or a glob of either.

    ``orders-api`` matches ``arn:aws:iam::1:role/service-role/orders-api``;
    ``arn:aws:iam::*:role/ci/*`` and ``*-deployer`` match as globs.
    """
    if not patterns:
        return None
    cache: dict[str, bool] = {}

    def matches(principal: str) -> bool:
        hit = cache.get(principal)
        if hit is None:
            name = principal.rsplit("/", 1)[-1] if "/" in principal else principal.rsplit(":", 1)[-1]
            hit = cache[principal] = any(
                fnmatch.fnmatchcase(principal, p) or fnmatch.fnmatchcase(name, p) for p in patterns)
        return hit

    return matches
