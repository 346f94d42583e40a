"""The account report: every principal's diff, its findings, and the account's totals.

Pure: it takes the store's rows and coverage and a way to read what each principal is
granted, and returns plain data that the renderers in :mod:`lpgen.report_render` turn into
text, Markdown, JSON, SARIF or HTML. Principals are ordered by risk: unused
permissions-management actions first, then unused write actions, unused services, and
over-broad grants.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date as _date
from datetime import timedelta

from lpgen.attached import Attached
from lpgen.catalog import Catalog, load_catalog
from lpgen.diff import (
    MISSING,
    OVER_BROAD,
    UNOBSERVABLE,
    UNUSED,
    DiffOptions,
    PrincipalDiff,
    Window,
    diff,
    logged_data_events,
    window_of,
)
from lpgen.expand import expand
from lpgen.findings import SEVERITIES, Finding, sort_key
from lpgen.mapping import UNKNOWN, Call, map_call
from lpgen.model import DENIED
from lpgen.store import CoverageRow, UsageRow

SCHEMA_VERSION = 1
#: Access levels whose unused grants are findings of their own, most dangerous first.
PERMISSIONS_MANAGEMENT, WRITE = "Permissions management", "Write"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrincipalReport:
    principal: str
    kind: str  # role, user, root, ...
    policies_known: bool  # False: observed in the trail, absent from the attached source
    calls: int  # authorized calls
    denied: int
    first_seen: str | None
    last_seen: str | None
    diff: PrincipalDiff
    findings: tuple[Finding, ...]
    unused_by_level: dict[str, int] = field(default_factory=dict)

    @property
    def risk(self) -> tuple[int, ...]:
        """Unused permissions-management and write actions, unused services, over-broad and unused actions."""
        counts = self.diff.counts()
        return (self.unused_by_level.get(PERMISSIONS_MANAGEMENT, 0), self.unused_by_level.get(WRITE, 0),
                len(self.diff.unused_services), counts[OVER_BROAD], counts[UNUSED])

    @property
    def risk_score(self) -> int:
        """The sort key: each unused permissions-management action weighs 100, write 10, unused service 5,
        over-broad action 2, any other unused action 1."""
        pm, write, services, broad, unused = self.risk
        return 100 * pm + 10 * write + 5 * services + 2 * broad + (unused - pm - write)


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    date: str
    window: Window
    records: int
    principals: tuple[PrincipalReport, ...]
    findings: tuple[Finding, ...]  # all findings, most serious first
    activity: tuple[tuple[str, int], ...]  # day → records in the trail
    unused_by_service: tuple[tuple[str, int], ...]  # most unused first
    totals: dict[str, int]
    problems: int = 0

    def severities(self) -> dict[str, int]:
        """Findings per severity, most serious first."""
        counts = Counter(f.severity for f in self.findings)
        return {s: counts[s] for s in reversed(SEVERITIES) if counts[s]}

    @property
    def reduction(self) -> float:
        """How many fewer actions the recommended policies hold than the attached ones, in per cent."""
        granted, needed = self.totals["granted_actions"], self.totals["needed_actions"]
        return 100 * (1 - needed / granted) if granted else 0.0


def kind_of(principal: str) -> str:
    if ":role/" in principal:
        return "role"
    if ":user/" in principal:
        return "user"
    if principal.endswith(":root"):
        return "root"
    return principal.split(":", 1)[0] if ":" in principal and not principal.startswith("arn:") else "other"


def reportable(principal: str) -> bool:
    """Principals that hold identity policies: roles, users and root (not services or federated identities)."""
    return principal.startswith("arn:") and kind_of(principal) in ("role", "user", "root")


def build_report(rows: list[UsageRow], coverage: list[CoverageRow], attached: Callable[[str], Attached | None],
                 known: Iterable[str] = (), *, options: DiffOptions | None = None, date: str | None = None,
                 problems: int = 0, only: Callable[[str], bool] | None = None,
                 catalog: Catalog | None = None) -> Report:
    """The report of every principal in ``known`` (the attached source's) or seen in ``rows``.

    ``attached(principal)`` returns what the principal is granted, or None when the source
    does not know it (a principal of another account seen in this trail). ``only`` narrows the
    principals reported (``--principal``); every row still informs baselines and data events.
    """
    catalog = catalog or load_catalog()
    options = options or DiffOptions()
    window = window_of(coverage)
    shared = [r for r in rows if r.principal.startswith("service:") or r.source == "lambda.amazonaws.com"]
    own: dict[str, list[UsageRow]] = defaultdict(list)
    for r in rows:
        if not r.principal.startswith("service:"):
            own[r.principal].append(r)
    if options.data_events is None:  # judge every principal against the whole trail, not its own rows
        options = DiffOptions(min_days=options.min_days, data_events=logged_data_events(rows, catalog),
                              recently_accessed=options.recently_accessed, generate=options.generate)
    names = sorted(p for p in {*known, *own} if reportable(p) and (only is None or only(p)))
    principals = []
    for principal in names:
        granted = attached(principal)
        mine = own.get(principal, [])
        relevant = mine + [r for r in shared if r.principal != principal]
        expanded = expand(granted or Attached(principal=principal, policies=()), catalog)
        d = diff(principal, relevant, expanded, coverage, options, catalog)  # no deepdiff: `lpgen diff` has it
        principals.append(_principal_report(principal, granted is not None, mine, d, expanded.unknown_actions,
                                            catalog))
    principals.sort(key=lambda p: (-p.risk_score, tuple(-x for x in p.risk), p.principal))
    findings = [f for p in principals for f in p.findings] + _account_findings(rows, coverage, window, options,
                                                                               problems, catalog)
    unused_services = Counter(e.action.split(":", 1)[0] for p in principals for e in p.diff.entries
                              if e.category == UNUSED)
    activity = defaultdict(int)
    for c in coverage:
        activity[c.day] += c.records
    totals = {
        "principals": len(principals),
        "granted_actions": sum(p.diff.before for p in principals),
        "needed_actions": sum(p.diff.after for p in principals),
        "unused_actions": sum(p.diff.counts()[UNUSED] for p in principals),
        "zero_use_principals": sum(1 for p in principals if p.calls == 0 and p.denied == 0),
        "only_denied_principals": sum(1 for p in principals if p.calls == 0 and p.denied > 0),
        "unknown_policies": sum(1 for p in principals if not p.policies_known),
    }
    return Report(date=date or _date.today().isoformat(), window=window, records=sum(c.records for c in coverage),
                  principals=tuple(principals), findings=tuple(sorted(findings, key=sort_key)),
                  activity=tuple(sorted(activity.items())),
                  unused_by_service=tuple(sorted(unused_services.items(), key=lambda kv: (-kv[1], kv[0]))),
                  totals=totals, problems=problems)


def _principal_report(principal: str, known: bool, rows: list[UsageRow], d: PrincipalDiff,
                      unknown: tuple[str, ...], catalog: Catalog) -> PrincipalReport:
    calls = sum(r.count for r in rows if r.error_class != DENIED)
    denied = sum(r.count for r in rows if r.error_class == DENIED)
    by_level: dict[str, list[str]] = defaultdict(list)
    for e in d.entries:
        if e.category == UNUSED:
            action = catalog.action(e.action)
            by_level[action.access_level if action else "Unknown"].append(e.action)
    findings: list[Finding] = []

    def add(code: str, message: str, items: Iterable[str] = ()) -> None:
        findings.append(Finding(code=code, subject=principal, message=message, items=tuple(sorted(items))))

    if known:
        for code, levels, what in (("LPG101", (PERMISSIONS_MANAGEMENT,), "permissions-management"),
                                   ("LPG102", (WRITE,), "write"),
                                   ("LPG104", ("Read", "List", "Tagging"), "read, list or tagging")):
            unused = [a for level in levels for a in by_level.get(level, ())]
            if unused:
                add(code, f"{len(unused)} {what} action(s) granted and not used in {d.window.days} days", unused)
        if d.unused_services:
            add("LPG103", f"{len(d.unused_services)} service(s) granted and not used at all", d.unused_services)
        broad = [e.action for e in d.entries if e.category == OVER_BROAD]
        if broad:
            add("LPG105", f"{len(broad)} used action(s) granted on more resources than used", broad)
        if d.judged and calls == 0 and denied == 0 and d.before:
            add("LPG107", f"{d.before} action(s) granted and no call in {d.window.days} days")
        missing = sorted({e.action for e in d.entries if e.category == MISSING})
        if missing:
            add("LPG106", f"{len(missing)} action(s) used or wanted without a grant in the attached policies", missing)
        if unknown:
            add("LPG109", f"{len(unknown)} action pattern(s) in the policies match no IAM action", unknown)
        unobservable = [e.action for e in d.entries if e.category == UNOBSERVABLE]
        if unobservable:
            add("LPG904", f"{len(unobservable)} granted action(s) CloudTrail could not show", unobservable)
    if calls == 0 and denied > 0:
        add("LPG108", f"all {denied} call(s) in the window were denied",
            sorted({e.action for e in d.entries if e.category == MISSING}))
    first = min((r.first_seen for r in rows), default=None)
    last = max((r.last_seen for r in rows), default=None)
    return PrincipalReport(principal=principal, kind=kind_of(principal), policies_known=known, calls=calls,
                           denied=denied, first_seen=first, last_seen=last, diff=d, findings=tuple(findings),
                           unused_by_level={k: len(v) for k, v in sorted(by_level.items())})


def _account_findings(rows: list[UsageRow], coverage: list[CoverageRow], window: Window, options: DiffOptions,
                      problems: int, catalog: Catalog) -> list[Finding]:
    subject = "account " + (", ".join(window.accounts) or "-")
    out = []
    if window.days < options.min_days:
        out.append(Finding(code="LPG901", subject=subject, message=(
            f"the trail covers {window.days} day(s) ({window.first} .. {window.last}), fewer than --min-days "
            f"{options.min_days}: nothing is called unused")))
    unmapped = sorted({f"{r.source}:{r.name}" for r in rows if not r.principal.startswith("service:")
                       and map_call(Call.of_row(r), catalog).status == UNKNOWN})
    if unmapped:
        out.append(Finding(code="LPG902", subject=subject, message=f"{len(unmapped)} call(s) map to no IAM action",
                           items=tuple(unmapped)))
    if problems:
        out.append(Finding(code="LPG903", subject=subject,
                           message=f"{problems} input problem(s) while mining (lpgen summary lists them)"))
    gaps = coverage_gaps(coverage)
    if gaps:
        out.append(Finding(code="LPG905", subject=subject, message=f"{len(gaps)} day(s) without events",
                           items=tuple(gaps)))
    return out


def coverage_gaps(coverage: list[CoverageRow]) -> list[str]:
    """``account/region/day`` for days inside an account and region's span that have no events."""
    days: dict[tuple[str, str], set[str]] = defaultdict(set)
    for c in coverage:
        days[(c.account, c.region)].add(c.day)
    gaps = []
    for (account, region), seen in sorted(days.items()):
        day, last = _date.fromisoformat(min(seen)), _date.fromisoformat(max(seen))
        while day < last:
            day += timedelta(days=1)
            if day.isoformat() not in seen:
                gaps.append(f"{account}/{region}/{day.isoformat()}")
    return gaps
