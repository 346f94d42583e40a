"""The account report: principals ordered by risk, findings from the catalogue, five formats,
deterministic, hostile strings escaped; the HTML checked in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from lpgen.attached import AttachedError, AuthorizationDetails
from lpgen.cli import main
from lpgen.diff import DiffOptions
from lpgen.mine import mine
from lpgen.report import build_report, coverage_gaps, reportable
from lpgen.report_render import render_report
from lpgen.sources.local import LocalSource
from lpgen.store import UsageStore

from .conftest import ROOT, assumed_role, delivery_path, make_record, seed, write_log
from .test_diff import ACCOUNT, ALICE, DEPLOYER, FILE, MOTO_ACCOUNT, NOTIFIER, READER, _load_into_iam, moto_server
from .test_findings import sarif_schema

DEMO_LOGS = ROOT / "fixtures" / "demo" / "AWSLogs"
WEEK = DiffOptions(min_days=7)
ARTIFACTS = Path(os.environ.get("LPGEN_TEST_ARTIFACTS", ROOT / "test-artifacts"))


def offline(details: AuthorizationDetails):
    def attached(principal):
        try:
            return details.attached(principal)
        except AttachedError:
            return None
    return attached


@pytest.fixture(scope="module")
def demo(demo_mined):
    path, rows, coverage = demo_mined
    details = AuthorizationDetails.load(FILE)
    report = build_report(rows, coverage, offline(details), details.principals(), options=WEEK, date="2026-11-23")
    return path, rows, coverage, report


def findings_of(report, principal):
    return {f.code: f for f in report.findings if f.subject == principal}


def test_principals_are_ordered_by_risk_with_the_catalogues_findings(demo):
    *_, report = demo
    order = [p.principal for p in report.principals]
    assert order[0] == DEPLOYER  # a NotAction grant: thousands of unused permissions-management actions
    assert order.index(READER) < order.index(NOTIFIER)
    scores = [p.risk_score for p in report.principals]
    assert scores == sorted(scores, reverse=True)
    reader = findings_of(report, READER)
    assert {"s3:PutBucketPolicy", "s3:PutObjectAcl"} <= set(reader["LPG101"].items)  # permissions management
    assert "s3:DeleteObject" in reader["LPG102"].items and "s3:GetObject" in reader["LPG105"].items
    assert "LPG103" not in reader  # it used S3: no unused service
    notifier = findings_of(report, NOTIFIER)
    assert "sqs:SetQueueAttributes" in notifier["LPG101"].items and "sqs:PurgeQueue" in notifier["LPG102"].items
    alice = findings_of(report, ALICE)
    assert alice["LPG109"].items == ("codestar:List*",)  # an action pattern matching nothing in IAM
    deployer = findings_of(report, DEPLOYER)
    assert {"ec2:RunInstances", "iam:CreateRole"} <= set(deployer["LPG106"].items)  # denied calls


def test_account_totals_and_data_quality_findings(demo):
    _, rows, coverage, report = demo
    t = report.totals
    assert t["principals"] == 7 and t["zero_use_principals"] == 0 and t["only_denied_principals"] == 0
    assert t["granted_actions"] == sum(p.diff.before for p in report.principals)
    assert t["needed_actions"] == sum(p.diff.after for p in report.principals) < t["granted_actions"]
    assert report.records == sum(c.records for c in coverage)
    gap = [f for f in report.findings if f.code == "LPG905"]
    assert gap and gap[0].items == tuple(coverage_gaps(coverage))
    short = build_report(rows, coverage, lambda p: None, (), date="2026-11-23")  # default --min-days 30
    assert [f.code for f in short.findings if f.code == "LPG901"] == ["LPG901"]
    assert not any(f.code in ("LPG101", "LPG102", "LPG103", "LPG104", "LPG107") for f in short.findings)


def test_inactive_and_only_denied_principals(tmp_path):
    idle, refused = "arn:aws:iam::123456789012:role/idle", "arn:aws:iam::123456789012:role/refused"
    busy = "arn:aws:iam::123456789012:role/busy"
    records = [make_record(time=f"2026-11-{d:02d}T10:00:00Z", identity=assumed_role(busy)) for d in range(1, 31)]
    records.append(make_record(identity=assumed_role(refused), errorCode="AccessDenied",
                               errorMessage="not authorized"))
    write_log(delivery_path(tmp_path / "logs"), records)
    with UsageStore(tmp_path / "u.db") as s:
        mine([LocalSource(tmp_path / "logs")], s)
        rows, coverage = list(s.usage(include_service=True)), s.coverage()
    from lpgen.attached import Attached, Policy
    grant = Policy(name="p", kind="inline", document={"Statement": [
        {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"}]})
    report = build_report(rows, coverage, lambda p: Attached(principal=p, policies=(grant,)), [idle, refused, busy],
                          date="2026-11-30")
    assert findings_of(report, idle)["LPG107"].message.startswith("1 action(s) granted and no call")
    assert "LPG108" in findings_of(report, refused)
    assert report.totals["zero_use_principals"] == 1 and report.totals["only_denied_principals"] == 1
    assert not {"LPG107", "LPG108"} & set(findings_of(report, busy))


def test_principals_without_policies_are_not_reported_as_holders():
    assert reportable("arn:aws:iam::1:role/x") and reportable("arn:aws:iam::1:user/u")
    assert not reportable("service:lambda.amazonaws.com") and not reportable("web-identity:cognito")


def test_json_follows_its_versioned_schema(demo):
    *_, report = demo
    data = json.loads(render_report(report, "json"))
    schema = json.loads((resources.files("lpgen") / "data" / "report.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(data, schema)
    assert data["schema_version"] == 1 and data["date"] == "2026-11-23"
    deployer = next(p for p in data["principals"] if p["principal"] == DEPLOYER)
    unused_listed = sum(1 for e in deployer["entries"] if e["category"] == "unused")
    unused_counted = sum(s["unused"] for s in deployer["unused_services"])
    assert unused_listed + unused_counted == deployer["counts"]["unused"]  # nothing lost, idle services counted


def test_sarif_validates_and_carries_every_finding(demo):
    *_, report = demo
    log = json.loads(render_report(report, "sarif", source="authorization-details.json"))
    jsonschema.validate(log, sarif_schema())
    results = log["runs"][0]["results"]
    assert len(results) == len(report.findings)
    assert {r["ruleId"] for r in results} == {f.code for f in report.findings}


@pytest.mark.parametrize("fmt", ["text", "md", "json", "sarif", "html"])
def test_output_is_deterministic(demo, fmt):
    path, rows, coverage, report = demo
    details = AuthorizationDetails.load(FILE)
    again = build_report(list(reversed(rows)), list(reversed(coverage)), offline(details),
                         list(reversed(details.principals())), options=WEEK, date="2026-11-23")
    assert render_report(report, fmt) == render_report(again, fmt)


HOSTILE = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">'\"&`|*_[x](javascript:alert(1))"


def hostile_report(tmp_path):
    """A trail whose every attacker-chosen string carries markup."""
    role = f"arn:aws:iam::123456789012:role/{HOSTILE}"
    identity = assumed_role(role, session=HOSTILE)
    records = [make_record(source="s3.amazonaws.com", name="GetObject", identity=identity, userAgent=HOSTILE,
                           params={"bucketName": HOSTILE, "key": HOSTILE}, sourceIPAddress=HOSTILE,
                           time=f"2026-11-{d:02d}T10:00:00Z") for d in range(1, 3)]
    records.append(make_record(source=HOSTILE + ".amazonaws.com", name=HOSTILE, identity=identity))
    write_log(delivery_path(tmp_path / "logs"), records)
    with UsageStore(tmp_path / "u.db") as s:
        mine([LocalSource(tmp_path / "logs")], s)
        rows, coverage = list(s.usage(include_service=True)), s.coverage()
    from lpgen.attached import Attached, Policy
    grant = Policy(name=HOSTILE, kind="inline", document={"Statement": [
        {"Effect": "Allow", "Action": ["s3:*", HOSTILE], "Resource": "*"}]})
    return build_report(rows, coverage, lambda p: Attached(principal=p, policies=(grant,)), [role],
                        options=DiffOptions(min_days=1), date="2026-11-23")


def test_hostile_strings_are_escaped_in_html_and_markdown(tmp_path):
    report = hostile_report(tmp_path)
    assert any("<script>" in p.principal for p in report.principals)
    page = render_report(report, "html")
    assert page.count("<script") == 1 and page.count("</script>") == 1  # only lpgen's own
    assert "<img" not in page and "&lt;img src=x onerror=" in page
    assert "&lt;script&gt;window.__pwned=1" in page
    md = render_report(report, "md")
    assert "<script" not in md and "<img" not in md
    prose = re.sub(r"```json\n.*?\n```", "", md, flags=re.S)  # code fences render literally
    assert "](javascript:" not in prose and "pwned" in prose


# -- the HTML in a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    messages, requests = [], []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, messages, requests


def test_html_report_in_headless_chromium(demo, browser, tmp_path):
    *_, report = demo
    path = tmp_path / "report.html"
    path.write_text(render_report(report, "html"), encoding="utf-8")
    page, messages, requests = open_page(browser, path)
    assert messages == []  # no console errors, no CSP violations
    assert requests == [path.as_uri()]  # self-contained: nothing else fetched
    for chart in ("#chart-granted", "#chart-services", "#chart-activity"):
        bars = page.locator(f"{chart} rect.bar")
        assert bars.count() > 0
        box = bars.first.bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, chart
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scrolling

    def column(n):
        return page.locator(f"#principals tbody tr td:nth-child({n})").evaluate_all(
            "cells => cells.map(c => Number(c.dataset.v))")

    page.click("#principals thead th:nth-child(4) button")  # calls, ascending
    calls = column(4)
    assert calls == sorted(calls) and calls != column(3)
    page.click("#principals thead th:nth-child(4) button")  # descending
    assert column(4) == sorted(calls, reverse=True)
    page.click("#principals thead th:nth-child(1) button")
    names = page.locator("#principals tbody tr td:nth-child(1)").all_inner_texts()
    assert names == sorted(names, key=str.lower)
    page.evaluate("document.querySelector('#p-0').open = true")
    assert page.locator("#p-0 svg.graph g.node").count() >= 3  # principal → service → action → resource
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-demo.png"), full_page=False)
    page.close()


def test_hostile_record_executes_nothing_in_the_browser(browser, tmp_path):
    path = tmp_path / "hostile.html"
    path.write_text(render_report(hostile_report(tmp_path), "html"), encoding="utf-8")
    page, messages, requests = open_page(browser, path)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert page.evaluate("window.__pwned") is None
    assert messages == [] and requests == [path.as_uri()]
    assert page.locator("img").count() == 0
    assert HOSTILE in page.locator("body").inner_text()  # shown as text
    page.close()


# -- the command ---------------------------------------------------------------------------------


def test_report_command_formats_output_file_and_fail_on(demo, tmp_path):
    path, *_ = demo
    run = lambda *args: CliRunner().invoke(main, ["report", "--store", str(path), "--attached", str(FILE),  # noqa: E731
                                                  "--date", "2026-11-23", *args])
    text = run("--min-days", "7")
    assert text.exit_code == 0 and text.output.startswith("lpgen report, 2026-11-23")
    out = tmp_path / "r.html"
    written = run("--min-days", "7", "--format", "html", "-o", str(out))
    assert written.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
    assert run("--min-days", "7", "--fail-on", "high").exit_code == 1
    assert run("--fail-on", "high").exit_code == 0  # 7 days < 30: nothing judged unused, no high finding
    assert run("--fail-on", "info").exit_code == 1
    only = json.loads(run("--min-days", "7", "--format", "json", "--principal", "notifier-*").output)
    assert [p["principal"] for p in only["principals"]] == [NOTIFIER]
    bad = run("--date", "23/11/2026")
    assert bad.exit_code == 2 and "not a YYYY-MM-DD date" in bad.output
    neither = CliRunner().invoke(main, ["report", "--store", str(path)])
    assert neither.exit_code == 2 and "--attached FILE or --live" in neither.output


def test_report_live_from_iam_matches_the_file(demo):
    path, *_ = demo
    with moto_server(MOTO_IAM_LOAD_MANAGED_POLICIES="true") as endpoint:
        _load_into_iam(seed("iam", endpoint), json.loads(FILE.read_text()))
        live = CliRunner().invoke(main, ["report", "--store", str(path), "--live", "--endpoint-url", endpoint,
                                         "--region", "us-east-1", "--data-events", "s3,dynamodb,lambda,sns,sqs",
                                         "--min-days", "7", "--format", "json", "--date", "2026-11-23"])
    assert live.exit_code == 0, live.output
    moto = {p["principal"]: p for p in json.loads(live.output)["principals"]}
    from_file = {p["principal"]: p for p in json.loads(CliRunner().invoke(main, [
        "report", "--store", str(path), "--attached", str(FILE), "--data-events", "s3,dynamodb,lambda,sns,sqs",
        "--min-days", "7", "--format", "json", "--date", "2026-11-23"]).output)["principals"]}
    # moto's IAM lives in account 123456789012, the demo trail in 210987654321: the same roles and
    # users with the same grants, but no use; the trail's principals are seen without known policies
    for principal in (READER, NOTIFIER, DEPLOYER, ALICE):
        held = moto[principal.replace(ACCOUNT, MOTO_ACCOUNT)]
        assert held["policies_known"] and held["granted"] == from_file[principal]["granted"] > 0
        assert held["calls"] == 0 and "LPG107" in held["findings"]
        assert moto[principal]["policies_known"] is False and moto[principal]["calls"] > 0
