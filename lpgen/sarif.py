"""SARIF 2.1.0 output: the catalogue as ``rules[]``, findings as ``results[]``.

Code-scanning dashboards (GitHub's among them) read ``level`` for the alert's class and
``properties.security-severity`` (a CVSS-like score) for its severity; both derive from the
catalogue's severity so the two never disagree.
"""

from __future__ import annotations

import hashlib
import json

from lpgen import __version__
from lpgen.findings import Finding, Rule, rules, sort_key

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
LEVELS = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0"}
#: Where findings about principals (not files) point: SARIF results need a location for most viewers.
ACCOUNT_URI = "lpgen://account"
INFORMATION_URI = "https://github.com/lpgen/lpgen"


def render_sarif(findings: list[Finding], *, automation_id: str = "lpgen", default_uri: str = ACCOUNT_URI) -> str:
    """A SARIF log of one run; deterministic (sorted results, no timestamps).

    Findings without a file location point at ``default_uri`` (the input the report was built
    from, say) and name their subject as a logical location.
    """
    catalogue = list(rules().values())
    index = {r.code: i for i, r in enumerate(catalogue)}
    results = [_result(f, index[f.code], default_uri) for f in sorted(findings, key=sort_key)]
    log = {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "lpgen", "version": __version__, "semanticVersion": __version__,
                                "informationUri": INFORMATION_URI, "rules": [_rule(r) for r in catalogue]}},
            "automationDetails": {"id": automation_id},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    }
    return json.dumps(log, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _rule(r: Rule) -> dict:
    return {
        "id": r.code,
        "name": "".join(part.capitalize() for part in r.id.split("-")),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.description},
        "help": {"text": r.remediation, "markdown": f"**{r.title}**\n\n{r.description}\n\n*Remediation:* {r.remediation}"},
        "defaultConfiguration": {"level": LEVELS[r.severity]},
        "properties": {"security-severity": SECURITY_SEVERITY[r.severity], "tags": ["security", "iam", r.severity],
                       "precision": "high", "lpgen-id": r.id},
    }


def _result(f: Finding, rule_index: int, default_uri: str) -> dict:
    if f.location is not None:
        physical: dict = {"artifactLocation": {"uri": f.location.uri}}
        if f.location.line:
            physical["region"] = {"startLine": f.location.line, **(
                {"startColumn": f.location.column} if f.location.column else {})}
        location = {"physicalLocation": physical}
    else:
        location = {"physicalLocation": {"artifactLocation": {"uri": default_uri}},
                    "logicalLocations": [{"fullyQualifiedName": f.subject, "kind": "resource"}]}
    text = f.message if not f.items else f"{f.message}: {', '.join(f.items[:50])}" + (
        f" and {len(f.items) - 50} more" if len(f.items) > 50 else "")
    fingerprint = hashlib.sha256("\0".join((f.code, f.subject, *f.items)).encode()).hexdigest()[:32]
    return {
        "ruleId": f.code,
        "ruleIndex": rule_index,
        "level": LEVELS[f.severity],
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {"lpgenFinding/v1": fingerprint},
        "properties": {"subject": f.subject, "items": list(f.items)},
    }
