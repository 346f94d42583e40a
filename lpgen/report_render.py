"""Renderers of the account report: text, Markdown, JSON (versioned schema), SARIF. HTML is in
:mod:`lpgen.report_html`. Each returns a string; none reads a clock (the report carries its date).
"""

from __future__ import annotations

import json
from collections import Counter

from lpgen import __version__
from lpgen.diff import CATEGORIES, UNUSED, Entry
from lpgen.findings import rules
from lpgen.report import SCHEMA_VERSION, PrincipalReport, Report
from lpgen.sarif import render_sarif

#: Most action names listed per principal in the human formats; JSON lists them all.
SHOWN_ACTIONS = 40


def short(principal: str) -> str:
    """``role/service-role/name`` for an ARN: what people call a principal in a table."""
    return principal.split(":", 5)[-1] if principal.startswith("arn:") else principal


def unused_split(p: PrincipalReport) -> tuple[list[Entry], dict[str, int]]:
    """Unused entries of services the principal used in part, and counts for services it never used.

    An administrator's report would otherwise list twenty thousand actions: a service nobody
    used is one line with a count.
    """
    idle = set(p.diff.unused_services)
    listed, counted = [], Counter()
    for e in p.diff.entries:
        if e.category != UNUSED:
            continue
        service = e.action.split(":", 1)[0]
        if service in idle:
            counted[service] += 1
        else:
            listed.append(e)
    return listed, dict(sorted(counted.items()))


def diff_groups(p: PrincipalReport) -> tuple[dict[str, list[Entry]], dict[str, int]]:
    """The diff's entries by category, in :data:`CATEGORIES` order (unused: only those of services
    used in part), and the counts of unused actions of services never used."""
    listed, counted = unused_split(p)
    groups: dict[str, list[Entry]] = {c: [] for c in CATEGORIES}
    for e in p.diff.entries:
        if e.category != UNUSED:
            groups[e.category].append(e)
    groups[UNUSED] = listed
    return groups, counted


def render_report(report: Report, fmt: str = "text", *, source: str = "lpgen://account") -> str:
    if fmt == "json":
        return render_json(report)
    if fmt == "sarif":
        return render_sarif(list(report.findings), automation_id=f"lpgen/report/{report.date}", default_uri=source)
    if fmt == "md":
        return render_markdown(report)
    if fmt == "html":
        from lpgen.report_html import render_html
        return render_html(report)
    return render_text(report)


def _window_line(report: Report) -> str:
    w = report.window
    return (f"{w.first or '-'} .. {w.last or '-'} ({w.days} day(s) with events), {report.records:,} records, "
            f"accounts {', '.join(w.accounts) or '-'}, regions {', '.join(w.regions) or '-'}")


def _totals_lines(report: Report) -> list[str]:
    t = report.totals
    return [f"principals: {t['principals']} ({t['zero_use_principals']} with no use in the window, "
            f"{t['only_denied_principals']} whose only calls were denied, {t['unknown_policies']} with unknown policies)",
            f"actions granted: {t['granted_actions']:,}; needed: {t['needed_actions']:,} ({report.reduction:.1f}% fewer); "
            f"unused: {t['unused_actions']:,}",
            "findings: " + (", ".join(f"{n} {s}" for s, n in report.severities().items()) or "none")]


def render_text(report: Report) -> str:
    lines = [f"lpgen report, {report.date}", f"window: {_window_line(report)}", *_totals_lines(report), ""]
    width = max((len(short(p.principal)) for p in report.principals), default=9)
    lines.append(f"{'principal':<{width}}  {'risk':>6}  {'calls':>7}  {'denied':>6}  {'granted':>7}  "
                 f"{'needed':>6}  {'unused':>6}  findings")
    for p in report.principals:
        c = p.diff.counts()
        lines.append(f"{short(p.principal):<{width}}  {p.risk_score:>6}  {p.calls:>7,}  {p.denied:>6,}  "
                     f"{p.diff.before:>7,}  {p.diff.after:>6,}  {c[UNUSED]:>6,}  "
                     + (" ".join(sorted({f.code for f in p.findings})) or "-"))
    if report.findings:
        lines += ["", "findings (most serious first):"]
        for f in report.findings:
            items = f" ({', '.join(f.items[:8])}{', ...' if len(f.items) > 8 else ''})" if f.items else ""
            lines.append(f"  {f.code} {f.severity:<8} {short(f.subject)}: {f.message}{items}")
    return "\n".join(lines) + "\n"


def render_markdown(report: Report) -> str:
    lines = [f"# lpgen report, {report.date}", "", f"**Window:** {_md(_window_line(report))}", ""]
    lines += [f"- {_md(line)}" for line in _totals_lines(report)]
    lines += ["", "| principal | risk | calls | denied | granted | needed | unused | over-broad | missing | findings |",
              "|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for p in report.principals:
        c = p.diff.counts()
        lines.append(f"| {_code(short(p.principal))} | {p.risk_score} | {p.calls:,} | {p.denied:,} | {p.diff.before:,} "
                     f"| {p.diff.after:,} | {c[UNUSED]:,} | {c['over-broad']:,} | {c['missing']:,} | "
                     + (" ".join(sorted({f.code for f in p.findings})) or "-") + " |")
    if report.findings:
        lines += ["", "## Findings", "", "| code | severity | subject | finding |", "|---|---|---|---|"]
        for f in report.findings:
            lines.append(f"| {f.code} | {f.severity} | {_code(short(f.subject))} | {_md(rules()[f.code].title)}: "
                         f"{_md(f.message)} |")
    for p in report.principals:
        lines += ["", f"<details><summary>{_code(short(p.principal))}: "
                      f"{p.diff.before:,} granted → {p.diff.after:,} needed</summary>", ""]
        lines += _principal_markdown(p)
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _principal_markdown(p: PrincipalReport) -> list[str]:
    lines = [f"Calls {p.calls:,}, denied {p.denied:,}, first seen {p.first_seen or '-'}, last seen {p.last_seen or '-'}."]
    if not p.policies_known:
        lines.append("Its policies are unknown to the attached source: usage only.")
    lines += [f"- note: {_md(n)}" for n in p.diff.notes]
    by_category, counted = diff_groups(p)
    for category, group in by_category.items():
        if category == UNUSED and counted:
            lines += ["", f"**unused services** ({len(counted)}): "
                      + ", ".join(f"{s} ({n})" for s, n in counted.items())]
        if not group:
            continue
        lines += ["", f"**{category}** ({len(group)})", ""]
        for e in group[:SHOWN_ACTIONS]:
            lines.append(f"- {_code(e.action)}" + (f" — {_md(e.why)}" if e.why else ""))
        if len(group) > SHOWN_ACTIONS:
            lines.append(f"- ... and {len(group) - SHOWN_ACTIONS} more (`--format json` lists all)")
    if (proposed := p.diff.proposed()) is not None:
        lines += ["", "Recommended policy:", "", "```json", _inert_json(proposed), "```"]
    return lines


def _inert_json(document: dict) -> str:
    """JSON with ``<``, ``>``, ``&`` and backticks as \\u escapes: the same document, but no markup and no
    way out of the code fence for a hostile resource name."""
    text = json.dumps(document, indent=2, sort_keys=True)
    for ch in "<>&`":
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


_MD_ENTITIES = {c: f"&#{ord(c)};" for c in "&<>\"'|`*_[]()\\#~!"}


def _md(text: str) -> str:
    """Untrusted text for Markdown: every character Markdown or HTML could act on as an entity
    (CloudTrail strings are attacker-chosen), so it renders as the literal text, in a table cell too."""
    return "".join(_MD_ENTITIES.get(c, c) for c in text).replace("\n", " ")


def _code(text: str) -> str:
    return f"<code>{_md(text)}</code>"



def report_dict(report: Report) -> dict:
    """The JSON form, schema ``lpgen/data/report.schema.json`` (``schema_version`` bumps on any breaking change)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "lpgen", "version": __version__},
        "date": report.date,
        "window": {"first": report.window.first, "last": report.window.last, "days": report.window.days,
                   "accounts": list(report.window.accounts), "regions": list(report.window.regions)},
        "records": report.records,
        "problems": report.problems,
        "totals": dict(report.totals),
        "severities": dict(sorted(report.severities().items())),
        "activity": [{"day": d, "records": n} for d, n in report.activity],
        "unused_by_service": [{"service": s, "unused": n} for s, n in report.unused_by_service],
        "findings": [{"code": f.code, "severity": f.severity, "title": rules()[f.code].title, "subject": f.subject,
                      "message": f.message, "items": list(f.items)} for f in report.findings],
        "principals": [_principal_dict(p) for p in report.principals],
    }


def _principal_dict(p: PrincipalReport) -> dict:
    groups, counted = diff_groups(p)
    kept = [e for group in groups.values() for e in group]
    return {
        "principal": p.principal, "kind": p.kind, "policies_known": p.policies_known,
        "calls": p.calls, "denied": p.denied, "first_seen": p.first_seen, "last_seen": p.last_seen,
        "risk_score": p.risk_score, "judged": p.diff.judged, "granted": p.diff.before, "needed": p.diff.after,
        "counts": p.diff.counts(), "unused_by_level": dict(p.unused_by_level),
        "unused_services": [{"service": s, "unused": n} for s, n in counted.items()],
        "findings": sorted({f.code for f in p.findings}),
        "notes": list(p.diff.notes),
        "entries": [{"action": e.action, "category": e.category, "granted_on": list(e.granted_on),
                     "used_on": list(e.used_on), "why": e.why}
                    for e in kept],
        "recommended": p.diff.proposed(),
        "evidence": {a: {"calls": list(e.calls), "count": e.count, "denied": e.denied, "first_seen": e.first_seen,
                         "last_seen": e.last_seen, "regions": list(e.regions), "samples": list(e.samples),
                         "provenance": list(e.provenance)}
                     for a, e in (p.diff.recommended.evidence.items() if p.diff.recommended else ())},
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
