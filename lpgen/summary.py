"""What a mining run did and what a store holds, as data and as text or JSON."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass

from lpgen.mine import MineReport
from lpgen.model import DENIED, Problem
from lpgen.store import UsageStore

#: Problems listed one per line before the rest are only counted.
SHOWN_PROBLEMS = 20


@dataclass(frozen=True, slots=True, kw_only=True)
class PrincipalSummary:
    principal: str
    type: str
    calls: int  # authorized calls, including those that failed for reasons other than a denial
    denied: int
    distinct_calls: int  # distinct eventSource:eventName
    first_seen: str
    last_seen: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverageSummary:
    account: str
    region: str
    first_time: str
    last_time: str
    days: int
    records: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreSummary:
    store: str
    totals: dict[str, int]
    principals: tuple[PrincipalSummary, ...]
    service_calls: int
    coverage: tuple[CoverageSummary, ...]
    problems: tuple[str, ...]


def summarize(store: UsageStore) -> StoreSummary:
    """A store's contents per principal and per account and region."""
    per: dict[str, dict] = defaultdict(lambda: {"calls": 0, "denied": 0, "names": set(), "first": None, "last": None})
    service_calls = 0
    for row in store.usage(include_service=True):
        if row.principal.startswith("service:"):
            service_calls += row.count
            continue
        p = per[row.principal]
        p["denied" if row.error_class == DENIED else "calls"] += row.count
        p["names"].add((row.source, row.name))
        p["first"] = row.first_seen if p["first"] is None else min(p["first"], row.first_seen)
        p["last"] = row.last_seen if p["last"] is None else max(p["last"], row.last_seen)
    kinds = store.principals()
    principals = tuple(
        PrincipalSummary(principal=arn, type=kinds.get(arn, ("unknown", None))[0], calls=p["calls"],
                         denied=p["denied"], distinct_calls=len(p["names"]), first_seen=p["first"], last_seen=p["last"])
        for arn, p in sorted(per.items()))
    spans: dict[tuple[str, str], list] = {}
    for c in store.coverage():
        span = spans.setdefault((c.account, c.region), [c.first_time, c.last_time, 0, 0])
        span[0], span[1] = min(span[0], c.first_time), max(span[1], c.last_time)
        span[2] += 1
        span[3] += c.records
    coverage = tuple(CoverageSummary(account=a, region=r, first_time=f, last_time=l, days=d, records=n)
                     for (a, r), (f, l, d, n) in sorted(spans.items()))
    problems = tuple(str(Problem(path=path, record=record, reason=reason))
                     for path, record, reason in store.problems(limit=SHOWN_PROBLEMS))
    return StoreSummary(store=str(store.path), totals=store.totals(), principals=principals,
                        service_calls=service_calls, coverage=coverage, problems=problems)


def render_summary(summary: StoreSummary, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps(asdict(summary), indent=2, sort_keys=True) + "\n"
    t = summary.totals
    lines = [
        f"store {summary.store}",
        f"  {t['inputs']:,} inputs mined, {t['events']:,} events counted, {t['duplicates']:,} duplicates dropped, "
        f"{t['problems']:,} problems",
        f"  {t['aggregates']:,} aggregates, {t['principals']:,} principals, "
        f"{summary.service_calls:,} service-initiated calls kept apart",
        "",
        "coverage (account region: first .. last, days with events, records)",
    ]
    lines += [f"  {c.account} {c.region}: {c.first_time} .. {c.last_time}, {c.days} days, {c.records:,} records"
              for c in summary.coverage] or ["  nothing yet"]
    lines += ["", "principals (calls, denied, distinct calls, first .. last seen)"]
    lines += [f"  {p.principal} [{p.type}]: {p.calls:,} calls, {p.denied:,} denied, {p.distinct_calls} distinct, "
              f"{p.first_seen} .. {p.last_seen}" for p in summary.principals] or ["  none"]
    if summary.problems:
        lines += ["", f"problems (first {len(summary.problems)} of {t['problems']:,})"]
        lines += [f"  {p}" for p in summary.problems]
    return "\n".join(lines) + "\n"


def render_mine_report(report: MineReport, fmt: str = "text") -> str:
    """The closing summary of ``lpgen mine``."""
    skipped_records = sum(1 for p in report.problems if p.record is not None)
    skipped_inputs = len({p.path for p in report.problems if p.record is None})
    data = {
        "inputs": report.inputs, "mined": report.mined, "already_mined": report.known, "unread": report.unread,
        "changed_since_mined": report.changed, "outside_window": report.outside_window,
        "digests_skipped": report.digests, "records": report.records, "events": report.events,
        "duplicates": report.duplicates, "filtered_out": report.filtered,
        "inputs_with_problems": skipped_inputs, "records_skipped": skipped_records,
        "principals": len(report.principals), "first_event": report.first_time, "last_event": report.last_time,
        "formats": dict(sorted(report.kinds.items())), "seconds": round(report.seconds, 3),
        "problems": [str(p) for p in report.problems], "notes": report.notes,
    }
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
    rate = report.records / report.seconds if report.seconds > 0 else 0.0
    lines = [
        f"mined {report.mined:,} of {report.inputs:,} inputs ({report.known:,} already mined, "
        f"{report.outside_window:,} outside the window, {report.digests:,} digest files skipped)",
        f"  {report.records:,} records read, {report.events:,} events counted, {report.duplicates:,} duplicates, "
        f"{report.filtered:,} filtered out; {rate:,.0f} records/s",
        f"  {len(report.principals):,} principals"
        + (f", events from {report.first_time} to {report.last_time}" if report.first_time else ""),
    ]
    if report.kinds:
        lines.append("  formats: " + ", ".join(f"{k} {n:,}" for k, n in sorted(report.kinds.items())))
    lines += [f"  note: {n}" for n in report.notes]
    if report.changed:
        lines.append(f"  {report.changed:,} inputs changed since they were mined: read again, duplicates dropped")
    if report.unread:
        lines.append(f"  {report.unread:,} inputs could not be read: not recorded as mined, the next run reads them")
    if report.problems:
        lines.append(f"  problems: {skipped_inputs:,} inputs, {skipped_records:,} records skipped "
                     f"(`lpgen summary` lists them)")
    return "\n".join(lines) + "\n"
