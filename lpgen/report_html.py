"""The account report as one self-contained HTML file.

Nothing is fetched: styles, the table-sorting script and the charts (server-drawn SVG) are
inline, and a Content-Security-Policy allows only that one script (by hash). CloudTrail
strings are attacker-chosen (user agents, request parameters, session names), so every value
goes through :func:`esc`; the policy is the second line of defence should one ever slip.
Large accounts stay usable: principals are collapsed sections, unused actions of services a
principal never used are counted rather than listed, and long lists are cut (the JSON report
has everything).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections import defaultdict

from lpgen import __version__
from lpgen.diff import MISSING, OVER_BROAD, UNUSED, USED
from lpgen.findings import SEVERITIES, rules
from lpgen.report import PrincipalReport, Report
from lpgen.report_render import SHOWN_ACTIONS, diff_groups, short

#: Principals drawn in the granted-vs-needed chart (the riskiest); the table lists all.
CHART_PRINCIPALS = 25
CHART_SERVICES = 15
GRAPH_ACTIONS = 30  # actions drawn per principal graph
GRAPH_RESOURCES = 24

SCRIPT = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, i) {
    var button = th.querySelector('button');
    button.addEventListener('click', function () {
      var ascending = th.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute('aria-sort'); });
      th.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      var numeric = th.dataset.type === 'num';
      var key = function (row) {
        var cell = row.cells[i], value = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
        return numeric ? Number(value) : value.toLowerCase();
      };
      var body = table.tBodies[0];
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
});
""".strip()

STYLE = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg: #f6f7f9; --accent: #2458c6;
  --high: #b3261e; --medium: #b86e00; --low: #4a6fa5; --info: #6b7280; --used: #2e7d4f; --unused: #c2410c; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px 20px 60px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 10px; } h3 { font-size: 15px; margin: 18px 0 6px; }
.muted { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin: 16px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card b { display: block; font-size: 22px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr)); gap: 14px; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px; }
figcaption { font-weight: 600; margin-bottom: 6px; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, sans-serif; fill: var(--ink); }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); table-layout: auto; }
th { white-space: nowrap; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; overflow-wrap: anywhere; }
td.n, th.n { text-align: right; white-space: nowrap; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th[aria-sort=ascending] button::after { content: " \\25B2"; } th[aria-sort=descending] button::after { content: " \\25BC"; }
details { background: #fff; border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; padding: 6px 12px; }
details.inner { border: 0; padding: 0; margin: 4px 0; }
summary { cursor: pointer; font-weight: 600; overflow-wrap: anywhere; }
pre { background: var(--bg); border: 1px solid var(--line); padding: 8px; white-space: pre-wrap; overflow-wrap: anywhere; font-size: 12px; }
code { overflow-wrap: anywhere; }
.sev { display: inline-block; padding: 0 6px; border-radius: 4px; color: #fff; font-size: 12px; }
.sev-critical, .sev-high { background: var(--high); } .sev-medium { background: var(--medium); }
.sev-low { background: var(--low); } .sev-info { background: var(--info); }
ul.compact { margin: 4px 0; padding-left: 20px; }
""".strip()


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def csp() -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    return f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'"


def render_html(report: Report) -> str:
    t = report.totals
    w = report.window
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp())}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lpgen report {esc(report.date)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>Least-privilege report</h1><p class=muted>lpgen {esc(__version__)}, {esc(report.date)}. "
        f"Window {esc(w.first or '-')} .. {esc(w.last or '-')} ({w.days} day(s) with events), "
        f"{report.records:,} records; accounts {esc(', '.join(w.accounts) or '-')}; "
        f"regions {esc(', '.join(w.regions) or '-')}.</p>",
        '<section class=cards id=totals>',
        _card("principals", t["principals"]), _card("actions granted", f"{t['granted_actions']:,}"),
        _card("actions needed", f"{t['needed_actions']:,}"), _card("reduction", f"{report.reduction:.1f}%"),
        _card("no use in window", t["zero_use_principals"]), _card("only denied calls", t["only_denied_principals"]),
        *(_card(f"{s} findings", n) for s, n in report.severities().items()),
        "</section>",
        '<h2>Charts</h2><div class=charts>',
        _figure("Granted vs needed actions (riskiest principals, log scale)", _granted_chart(report), "chart-granted"),
        _figure("Unused actions by service", _service_chart(report), "chart-services"),
        _figure("Activity over time (records per day)", _activity_chart(report), "chart-activity"),
        "</div>",
        "<h2>Principals</h2>", _principal_table(report),
        "<h2>Findings</h2>", _findings_table(report),
        "<h2>Per principal</h2>",
        *(_principal_section(i, p) for i, p in enumerate(report.principals)),
        f"</main><script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts) + "\n"


def _card(label: str, value: object) -> str:
    return f"<div class=card><b>{esc(value)}</b><span class=muted>{esc(label)}</span></div>"


def _figure(caption: str, svg: str, ident: str) -> str:
    return f'<figure id="{ident}"><figcaption>{esc(caption)}</figcaption>{svg}</figure>'


def _empty_chart(text: str) -> str:
    return f'<svg viewBox="0 0 400 40" role="img"><text x="8" y="24">{esc(text)}</text></svg>'


def _granted_chart(report: Report) -> str:
    shown = report.principals[:CHART_PRINCIPALS]
    if not shown:
        return _empty_chart("no principals")
    top = max(max(p.diff.before, p.diff.after, 1) for p in shown)
    scale = lambda n: 0 if n <= 0 else 200 * math.log10(n + 1) / math.log10(top + 1)  # noqa: E731
    row, height = 22, 22 * len(shown) + 30
    out = [f'<svg viewBox="0 0 420 {height}" role="img" aria-label="granted and needed actions per principal">']
    for i, p in enumerate(shown):
        y = 8 + i * row
        name = short(p.principal).rsplit("/", 1)[-1]
        out.append(f'<text x="0" y="{y + 12}">{esc(name[:22])}</text>'
                   f'<rect class=bar x="150" y="{y}" width="{scale(p.diff.before):.1f}" height="8" fill="#c2410c">'
                   f"<title>{esc(short(p.principal))}: {p.diff.before:,} granted</title></rect>"
                   f'<rect class=bar x="150" y="{y + 9}" width="{scale(p.diff.after):.1f}" height="8" fill="#2e7d4f">'
                   f"<title>{esc(short(p.principal))}: {p.diff.after:,} needed</title></rect>"
                   f'<text x="{155 + scale(p.diff.before):.1f}" y="{y + 8}">{p.diff.before:,}</text>')
    out.append(f'<rect x="150" y="{height - 16}" width="10" height="8" fill="#c2410c"/>'
               f'<text x="164" y="{height - 8}">granted</text>'
               f'<rect x="230" y="{height - 16}" width="10" height="8" fill="#2e7d4f"/>'
               f'<text x="244" y="{height - 8}">needed</text></svg>')
    return "".join(out)


def _service_chart(report: Report) -> str:
    shown = report.unused_by_service[:CHART_SERVICES]
    if not shown:
        return _empty_chart("no unused actions (or the window is too short to judge)")
    top = max(n for _, n in shown)
    out = [f'<svg viewBox="0 0 420 {22 * len(shown) + 8}" role="img" aria-label="unused actions by service">']
    for i, (service, n) in enumerate(shown):
        y = 6 + i * 22
        width = 220 * n / top
        out.append(f'<text x="0" y="{y + 11}">{esc(service[:24])}</text>'
                   f'<rect class=bar x="150" y="{y}" width="{width:.1f}" height="14" fill="#c2410c">'
                   f"<title>{esc(service)}: {n:,} unused</title></rect>"
                   f'<text x="{155 + width:.1f}" y="{y + 11}">{n:,}</text>')
    out.append("</svg>")
    return "".join(out)


def _activity_chart(report: Report) -> str:
    days = report.activity
    if not days:
        return _empty_chart("no events")
    top = max(n for _, n in days) or 1
    step = 380 / len(days)
    out = ['<svg viewBox="0 0 420 170" role="img" aria-label="records per day">',
           '<line x1="30" y1="140" x2="415" y2="140" stroke="#5b6475"/>',
           f'<text x="0" y="20">{top:,}</text>']
    label_every = max(1, len(days) // 8)
    for i, (day, n) in enumerate(days):
        h = 120 * n / top
        x = 32 + i * step
        out.append(f'<rect class=bar x="{x:.1f}" y="{140 - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                   f'fill="#2458c6"><title>{esc(day)}: {n:,} records</title></rect>')
        if i % label_every == 0:
            out.append(f'<text x="{x:.1f}" y="156">{esc(day[5:])}</text>')
    out.append("</svg>")
    return "".join(out)


def _principal_table(report: Report) -> str:
    heads = [("principal", ""), ("kind", ""), ("risk", "num"), ("calls", "num"), ("denied", "num"),
             ("granted", "num"), ("needed", "num"), ("unused", "num"), ("over-broad", "num"), ("missing", "num"),
             ("findings", "")]
    out = ['<table class=sortable id=principals><thead><tr>']
    out += [f'<th{" class=n" if kind else ""} data-type="{kind or "text"}"><button type=button>{esc(h)}</button></th>'
            for h, kind in heads]
    out.append("</tr></thead><tbody>")
    for i, p in enumerate(report.principals):
        c = p.diff.counts()
        nums = [p.risk_score, p.calls, p.denied, p.diff.before, p.diff.after, c[UNUSED], c[OVER_BROAD], c[MISSING]]
        out.append(f'<tr><td><a href="#p-{i}">{esc(short(p.principal))}</a></td><td>{esc(p.kind)}</td>'
                   + "".join(f'<td class=n data-v="{n}">{n:,}</td>' for n in nums)
                   + f"<td>{esc(' '.join(sorted({f.code for f in p.findings})) or '-')}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _findings_table(report: Report) -> str:
    if not report.findings:
        return "<p>No findings.</p>"
    counts: dict[str, int] = defaultdict(int)
    for f in report.findings:
        counts[f.code] += 1
    out = ["<table><thead><tr><th>code</th><th>severity</th><th>finding</th><th class=n>subjects</th><th>remediation"
           "</th></tr></thead><tbody>"]
    for code in sorted(counts, key=lambda c: (-SEVERITIES.index(rules()[c].severity), c)):
        r = rules()[code]
        out.append(f"<tr><td>{esc(code)}</td><td><span class='sev sev-{esc(r.severity)}'>{esc(r.severity)}</span></td>"
                   f"<td><b>{esc(r.title)}</b><br><span class=muted>{esc(r.description)}</span></td>"
                   f"<td class=n>{counts[code]}</td><td>{esc(r.remediation)}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _principal_section(i: int, p: PrincipalReport) -> str:
    d = p.diff
    c = d.counts()
    out = [f'<details id="p-{i}"><summary>{esc(short(p.principal))} — risk {p.risk_score}, '
           f"{d.before:,} granted → {d.after:,} needed</summary>",
           f"<p><code>{esc(p.principal)}</code><br>calls {p.calls:,}, denied {p.denied:,}, first seen "
           f"{esc(p.first_seen or '-')}, last seen {esc(p.last_seen or '-')}; "
           + esc(", ".join(f"{k} {v:,}" for k, v in c.items() if v) or "no grants or use") + "</p>"]
    if not p.policies_known:
        out.append("<p class=muted>Its policies are unknown to the attached source: usage only.</p>")
    if d.notes:
        out.append("<ul class=compact>" + "".join(f"<li>{esc(n)}</li>" for n in d.notes) + "</ul>")
    if p.findings:
        out.append("<h3>Findings</h3><ul class=compact>" + "".join(
            f"<li><span class='sev sev-{esc(f.severity)}'>{esc(f.code)}</span> {esc(f.message)}"
            + (f": {esc(', '.join(f.items[:SHOWN_ACTIONS]))}{' …' if len(f.items) > SHOWN_ACTIONS else ''}"
               if f.items else "") + "</li>" for f in p.findings) + "</ul>")
    out.append("<h3>Usage graph</h3>" + _usage_graph(p))
    if (proposed := d.proposed()) is not None:
        out.append("<h3>Recommended policy</h3><pre>" + esc(json.dumps(proposed, indent=2, sort_keys=True))
                   + "</pre>")
    out.append("<h3>Diff</h3>" + _diff_list(p))
    if d.recommended is not None and d.recommended.evidence:
        out.append("<h3>Evidence</h3><table><thead><tr><th>action</th><th>calls</th><th class=n>count</th>"
                   "<th class=n>denied</th><th>first .. last</th><th>regions</th><th>sample events</th>"
                   "<th>provenance</th></tr></thead><tbody>")
        for action, e in d.recommended.evidence.items():
            out.append(f"<tr><td><code>{esc(action)}</code></td><td>{esc(', '.join(e.calls))}</td>"
                       f"<td class=n>{e.count:,}</td><td class=n>{e.denied:,}</td>"
                       f"<td>{esc(e.first_seen)} .. {esc(e.last_seen)}</td><td>{esc(', '.join(e.regions))}</td>"
                       f"<td>{esc(', '.join(e.samples))}</td><td>{esc(', '.join(e.provenance))}</td></tr>")
        out.append("</tbody></table>")
    out.append("</details>")
    return "\n".join(out)


def _diff_list(p: PrincipalReport) -> str:
    groups, counted = diff_groups(p)
    out = []
    for category, group in groups.items():
        if category == UNUSED and counted:
            out.append(f"<details class=inner><summary>unused services ({len(counted):,}), with the number of "
                       "actions granted in each</summary><p>" + esc(", ".join(
                           f"{s} ({n})" for s, n in counted.items())) + "</p></details>")
        if not group:
            continue
        items = "".join(f"<li><code>{esc(e.action)}</code>" + (f" — {esc(e.why)}" if e.why else "") + "</li>"
                        for e in group[:SHOWN_ACTIONS])
        more = f"<li>… and {len(group) - SHOWN_ACTIONS:,} more (the JSON report lists all)</li>" \
            if len(group) > SHOWN_ACTIONS else ""
        out.append(f"<p><b>{esc(category)}</b> ({len(group):,})</p><ul class=compact>{items}{more}</ul>")
    return "".join(out) or "<p>Nothing granted and nothing used.</p>"


def _usage_graph(p: PrincipalReport) -> str:
    """principal → service → action → resource, as four columns of boxes joined by lines."""
    entries = [e for e in p.diff.entries if e.category in (USED, OVER_BROAD, MISSING)][:GRAPH_ACTIONS]
    if not entries:
        return "<p class=muted>No recorded use.</p>"
    services = sorted({e.action.split(":", 1)[0] for e in entries})
    resources: list[str] = []
    for e in entries:
        for r in e.used_on:
            if r not in resources and len(resources) < GRAPH_RESOURCES:
                resources.append(r)
    rows = max(len(entries), len(resources), len(services), 1)
    height = 20 * rows + 10
    cols = (0, 150, 290, 520)
    out = [f'<svg class=graph viewBox="0 0 900 {height}" role="img" aria-label="usage graph">']

    def y_of(i: int, n: int) -> float:
        return 5 + (i + 0.5) * (height - 10) / n

    principal_y = height / 2
    service_y = {s: y_of(i, len(services)) for i, s in enumerate(services)}
    action_y = {e.action: y_of(i, len(entries)) for i, e in enumerate(entries)}
    resource_y = {r: y_of(i, len(resources)) for i, r in enumerate(resources)}
    lines = [(cols[0] + 140, principal_y, cols[1], y, "#9aa3b2") for y in service_y.values()]
    for e in entries:
        colour = {"missing": "#b3261e", "over-broad": "#b86e00"}.get(e.category, "#2e7d4f")
        lines.append((cols[1] + 130, service_y[e.action.split(":", 1)[0]], cols[2], action_y[e.action], "#9aa3b2"))
        for r in e.used_on:
            if r in resource_y:
                lines.append((cols[2] + 220, action_y[e.action], cols[3], resource_y[r], colour))
    out += [f'<line x1="{x1:.0f}" y1="{y1:.1f}" x2="{x2:.0f}" y2="{y2:.1f}" stroke="{c}" stroke-width="1"/>'
            for x1, y1, x2, y2, c in lines]
    name = short(p.principal).rsplit("/", 1)[-1]
    out.append(_node(cols[0], principal_y, 140, name, p.principal))
    out += [_node(cols[1], y, 130, s, s) for s, y in service_y.items()]
    out += [_node(cols[2], action_y[e.action], 220, e.action.split(":", 1)[1], f"{e.action} ({e.category})")
            for e in entries]
    out += [_node(cols[3], y, 375, r, r) for r, y in resource_y.items()]
    out.append("</svg>")
    more = len([e for e in p.diff.entries if e.category in (USED, OVER_BROAD, MISSING)]) - len(entries)
    return "".join(out) + (f"<p class=muted>{more} more action(s) not drawn.</p>" if more > 0 else "")


def _node(x: float, y: float, width: int, label: str, title: str) -> str:
    chars = max(4, width // 6)
    text = label if len(label) <= chars else label[: chars - 1] + "…"
    return (f'<g class=node><title>{esc(title)}</title><rect x="{x}" y="{y - 8:.1f}" width="{width}" height="16" rx="3" '
            f'fill="#eef2fb" stroke="#9aa3b2"/><text x="{x + 4}" y="{y + 4:.1f}">{esc(text)}</text></g>')
