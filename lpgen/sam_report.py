"""Render a template review (text, JSON, Markdown, SARIF) and the patch to its ``Policies:``.

The patch is a targeted text edit: each function's ``Policies:`` block (from its key to the
last line of its value) is replaced, or inserted after ``Properties:`` when missing; every
other line, comments and formatting included, stays as it was. Output is a unified diff.
Pure: strings in, strings out.
"""

from __future__ import annotations

import difflib
import json

from lpgen.findings import SEVERITIES, at_least
from lpgen.policy_formats import (  # the layout `lpgen generate --format sam` writes
    _sam_statement,
    _sub,
)
from lpgen.sam_review import FunctionReview, PolicyItem, Review
from lpgen.sarif import render_sarif
from lpgen.template import Template


class PatchError(Exception):
    """The template cannot be patched as text (JSON, flow style)."""


def policies_yaml(items: tuple[PolicyItem, ...], indent: str, account: str, region: str) -> list[str]:
    """A ``Policies:`` block at ``indent`` (the key's indentation)."""
    if not items:
        return [f"{indent}Policies: []"]
    lines = [f"{indent}Policies:"]
    statements, denies = [], []
    for item in items:
        if item.template:
            if not item.parameters:
                lines.append(f"{indent}  - {item.template}: {{}}")
                continue
            lines.append(f"{indent}  - {item.template}:")
            lines += [f"{indent}      {name}: {expression}" for name, _, expression in item.parameters]
        elif item.statement is not None:
            statements.append(item.statement)
        elif item.deny is not None:
            denies.append(item.deny)
    if statements or denies:
        lines += [f"{indent}  - Version: '2012-10-17'", f"{indent}    Statement:"]
        for s in statements:
            lines += [indent + line for line in _sam_statement(s, account, region).splitlines()]
        for d in denies:
            lines += [indent + line for line in _deny_statement(d, account, region)]
    return lines


def _deny_statement(d: dict, account: str, region: str) -> list[str]:
    lines = [f"      - Sid: {d['Sid']}"] if d.get("Sid") else []
    lines.append(("        " if lines else "      - ") + "Effect: Deny")
    for key in ("Action", "NotAction", "Resource", "NotResource"):
        if key in d:
            listed = [d[key]] if isinstance(d[key], str) else d[key]
            lines.append(f"        {key}:")
            lines += [f"          - {_sub(v, account, region) if key.endswith('Resource') else json.dumps(v)}"
                      for v in listed]
    if d.get("Condition"):
        lines.append(f"        Condition: {json.dumps(d['Condition'], sort_keys=True)}")
    return lines


def patched_text(review: Review) -> str:
    """The template with every proposed ``Policies:`` in place."""
    template = review.model.template
    if template.is_json:
        raise PatchError(f"{template.path}: a JSON template: lpgen patches YAML templates only "
                         "(the proposals are in --format json)")
    lines = template.text.splitlines(keepends=True)
    newline = "\r\n" if "\r\n" in template.text else "\n"  # keep the file's line endings
    pseudo = review.model.resolver.pseudo
    edits = []
    for fr in review.functions:
        if fr.proposed is None:
            continue
        edits.append(_edit(template, fr, pseudo.account or "", pseudo.region or ""))
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = [line + newline for line in new]
    return "".join(lines)


def _edit(template: Template, fr: FunctionReview, account: str, region: str) -> tuple[int, int, list[str]]:
    """(first index, end index, new lines): the lines to replace, 0-based, end exclusive."""
    path = fr.function.policies_path
    span = template.spans.get(path)
    if span is not None and fr.function.logical_id and (span.key_line is not None):
        indent = " " * ((span.key_column or 1) - 1)
        end = _last_line(template, path)
        return span.key_line - 1, end, policies_yaml(fr.proposed, indent, account, region)
    properties = path[:-1]
    children = [template.spans[p] for p in template.spans if len(p) == len(properties) + 1 and p[:-1] == properties]
    parent = template.spans.get(properties)
    if parent is None or not children or parent.key_line is None or children[0].key_line == parent.key_line:
        raise PatchError(f"{template.path}: {fr.function.logical_id} has no block-style Properties: to add Policies to")
    indent = " " * ((min(c.key_column or 1 for c in children)) - 1)
    return parent.key_line, parent.key_line, policies_yaml(fr.proposed, indent, account, region)


def _last_line(template: Template, path: tuple) -> int:
    """The last line holding a scalar of the value at ``path`` (comments after it are kept)."""
    under = [p for p in template.spans if p[:len(path)] == path]
    parents = {p[:-1] for p in under}
    return max(template.spans[p].end_line for p in under if p not in parents)


def render_patch(review: Review) -> str:
    """A unified diff from the template to the patched template ("" when nothing changes)."""
    template = review.model.template
    after = patched_text(review)
    return "".join(difflib.unified_diff(template.text.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{template.path.lstrip('/')}",
                                        tofile=f"b/{template.path.lstrip('/')}"))


# -- reports ------------------------------------------------------------------------------------


def _function_dict(fr: FunctionReview) -> dict:
    fn = fr.function
    out: dict = {"logical_id": fn.logical_id, "type": fn.type, "line": fn.line, "function_name": fn.name,
                 "role": fr.role, "matched_by": fr.matched_by or None, "explicit_role": fn.role,
                 "policies": [{"origin": p.origin, "line": p.line, "name": p.policy.name, "sam_template": p.sam_template,
                               "parameters": dict(p.parameters), "implicit": p.implicit, "reviewed": p.expanded}
                              for p in fn.policies],
                 "notes": [*fn.notes, *fr.notes]}
    if fr.diff is not None:
        out["counts"] = fr.diff.counts()
        out["before"], out["after"] = fr.diff.before, fr.diff.after
        out["window_days"] = fr.diff.window.days
    if fr.proposed is not None:
        out["proposed"] = [{"template": i.template, "parameters": {k: v for k, v, _ in i.parameters}} if i.template
                           else i.statement.document() if i.statement else i.deny for i in fr.proposed]
    return out


def render_json(review: Review) -> str:
    findings = [{"code": f.code, "severity": f.severity, "subject": f.subject, "message": f.message,
                 "line": f.location.line if f.location else None, "items": list(f.items)} for f in review.findings]
    return json.dumps({"template": review.model.template.path, "with_usage": review.with_usage,
                       "notes": list(review.notes),
                       "functions": [_function_dict(fr) for fr in review.functions], "findings": findings},
                      indent=2, sort_keys=True) + "\n"


def render_text(review: Review, md: bool = False) -> str:
    template = review.model.template
    lines = [f"# lpgen sam: {template.path}" if md else f"{template.path}: {len(review.functions)} function(s), "
             f"{len(review.findings)} finding(s)", ""]
    if md:
        lines += [f"{len(review.functions)} function(s), {len(review.findings)} finding(s)", ""]
    lines += [f"{'> ' if md else ''}note: {n}" for n in review.notes] + ([""] if review.notes else [])
    for fr in review.functions:
        fn = fr.function
        head = f"{fn.logical_id} ({fn.type}, line {fn.line})"
        lines.append(f"## {head}" if md else head)
        bullet = "- " if md else "  "
        if fr.role:
            lines.append(f"{bullet}role: {fr.role} ({fr.matched_by})")
        for p in fn.policies:
            lines.append(f"{bullet}grant: {p.origin}" + (f" (line {p.line})" if p.line else "")
                         + ("" if p.expanded else " — not reviewed"))
        if fr.diff is not None:
            counts = ", ".join(f"{k} {v}" for k, v in fr.diff.counts().items() if v)
            lines.append(f"{bullet}use over {fr.diff.window.days} day(s): {counts}; granted actions {fr.diff.before}"
                         f" → needed {fr.diff.after}")
        if fr.proposed is not None:
            lines.append(f"{bullet}proposed Policies: " + ", ".join(
                i.template or (f"statement {i.statement.sid}" if i.statement else "a Deny statement")
                for i in fr.proposed) if fr.proposed
                else f"{bullet}proposed Policies: none beyond what SAM adds")
        lines += [f"{bullet}note: {n}" for n in (*fn.notes, *fr.notes)]
        lines.append("")
    if review.findings:
        lines.append("## Findings" if md else "findings:")
        if md:
            lines += ["", "| severity | code | function | line | finding |", "|---|---|---|---|---|"]
        for f in review.findings:
            text = f.message + (f": {', '.join(f.items[:12])}" + (" ..." if len(f.items) > 12 else "") if f.items
                                else "")
            line = f.location.line if f.location else ""
            if md:
                cell = text.replace("|", "\\|")
                lines.append(f"| {f.severity} | {f.code} | {f.subject} | {line} | {cell} |")
            else:
                lines.append(f"  {f.severity:<8} {f.code} {f.subject} (line {line}): {text}")
    else:
        lines.append("no findings")
    if md and review.with_usage:
        try:
            patch = render_patch(review)
        except PatchError as exc:
            patch = f"(no patch: {exc})"
        if patch:
            lines += ["", "## Proposed change", "", "```diff", patch.rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


RENDERERS = {
    "text": render_text,
    "md": lambda r: render_text(r, md=True),
    "json": render_json,
    "sarif": lambda r: render_sarif(list(r.findings), automation_id="lpgen-sam", default_uri=r.model.template.path),
}


def render(review: Review, fmt: str = "text") -> str:
    return RENDERERS[fmt](review)


def fails(review: Review, threshold: str | None) -> bool:
    """Whether a finding reaches ``threshold`` (a severity), for --fail-on."""
    return threshold is not None and any(at_least(f.severity, threshold) for f in review.findings)


__all__ = ["SEVERITIES", "PatchError", "fails", "patched_text", "policies_yaml", "render", "render_patch"]
