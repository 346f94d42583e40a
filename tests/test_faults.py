"""AWS faults mid-run: throttling, 5xx errors, timeouts, dropped connections and expired credentials,
injected by a proxy between lpgen and moto's server (tests/fault_proxy.py). Transient faults are
retried with backoff (botocore's standard mode) and change nothing; persistent ones end in a clear
message naming the source, with no traceback, and the events read before the fault are kept: the
next run reads only what is missing and ends with the same totals as a run without faults."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber
from click.testing import CliRunner

import lpgen.aws
from lpgen.cli import main
from lpgen.filters import Window
from lpgen.mine import MineOptions, mine
from lpgen.sources import lookup
from lpgen.sources.local import LocalSource
from lpgen.sources.lookup import LookupSource
from lpgen.store import UsageStore

from .conftest import DEMO, make_record, seed, trail_bucket
from .fault_proxy import Fault, fault_proxy

WINDOW = ["--since", "2026-11-07", "--until", "2026-11-08"]
#: Fewer retries (3 after the first attempt) and a short read timeout: persistent faults end quickly.
QUICK = Config(retries={"mode": "standard", "max_attempts": 3}, read_timeout=1, connect_timeout=1)


@pytest.fixture(scope="module")
def upstream():
    with trail_bucket() as endpoint:
        yield endpoint


@pytest.fixture
def proxy(upstream, monkeypatch):
    monkeypatch.setattr(lpgen.aws, "RETRIES", QUICK)
    with fault_proxy(upstream) as (p, url):
        yield p, url


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """The totals of the same window mined from the local copy, without any fault."""
    options = MineOptions(window=Window(since="2026-11-07T00:00:00Z", until="2026-11-08T23:59:59Z"))
    path = tmp_path_factory.mktemp("faults") / "local.db"
    with UsageStore(path) as store:
        mine([LocalSource(DEMO / "AWSLogs")], store, options)
    return totals(path)


def run_mine(url: str, store) -> object:
    return CliRunner().invoke(main, ["mine", "s3://trail", "--endpoint-url", url, "--store", str(store),
                                     "--workers", "1", *WINDOW])


def totals(store) -> dict:
    """What the store holds (not how many runs or problems it took to get there)."""
    with UsageStore(store) as s:
        return {k: v for k, v in s.totals().items() if k not in ("runs", "problems")}


@pytest.mark.parametrize("kind", ["throttle", "5xx", "timeout", "reset"])
def test_a_transient_fault_is_retried_and_changes_nothing(proxy, expected, tmp_path, kind):
    p, url = proxy
    p.faults.append(Fault(kind=kind, method="GET", path="/CloudTrail/eu-west-1/2026/11/07/", times=2))
    result = run_mine(url, tmp_path / "s.db")
    assert result.exit_code == 0, result.output
    victim = next(path for _, path, what in p.log if what == kind)
    assert p.requests_for(victim)[:3] == [kind, kind, "forwarded"]  # two faults, then the retry got through
    assert totals(tmp_path / "s.db") == expected


def test_throttled_listing_and_public_keys_are_retried(proxy, tmp_path):
    p, url = proxy
    p.faults += [Fault(kind="throttle", method="GET", path="delimiter=", times=2),
                 Fault(kind="throttle", target="ListPublicKeys", times=2)]
    result = CliRunner().invoke(main, ["verify", "s3://trail", "--endpoint-url", url, *WINDOW])
    assert result.exit_code == 0, result.output
    assert "signatures: 4 of 4" in result.output and all(f.injected == 2 for f in p.faults)


def test_a_persistent_5xx_names_the_object_keeps_the_rest_and_the_next_run_completes(proxy, expected, tmp_path):
    p, url = proxy
    store = tmp_path / "s.db"
    fault = Fault(kind="5xx", method="GET", path="/CloudTrail/eu-west-1/2026/11/08/", after=3, times=None)
    p.faults.append(fault)
    result = run_mine(url, store)
    victims = sorted({path.split("?")[0] for _, path, what in p.log if what == "5xx"})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "could not be read" in result.output
    for victim in victims:
        assert f"warning: s3://{victim.lstrip('/')}: cannot read: InternalError" in result.output
    # the first attempt and 3 retries (8 by default); once many requests fail, botocore's retry quota
    # (standard mode's circuit breaker) stops retrying the next ones
    assert p.requests_for(victims[0]) == ["5xx"] * 4
    partial = totals(store)
    assert 0 < partial["events"] < expected["events"]
    p.faults.clear()
    again = run_mine(url, store)
    assert again.exit_code == 0 and f"mined {len(victims)} of" in again.output
    assert totals(store) == expected


def test_credentials_expiring_mid_run_keep_what_was_read(proxy, expected, tmp_path):
    p, url = proxy
    store = tmp_path / "s.db"
    p.faults.append(Fault(kind="expired", after=45, times=None))  # every request after the 45th
    result = run_mine(url, store)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot read: ExpiredToken: injected expired" in result.output
    assert "what was read is kept, and the next run reads them" in result.output
    refused = [path for _, path, what in p.log if what == "expired"]
    assert len(refused) == len(set(refused))  # an expired token is not retried
    kept = totals(store)
    assert 0 < kept["events"] < expected["events"]
    p.faults.clear()
    assert run_mine(url, store).exit_code == 0
    assert totals(store) == expected


def test_attached_live_survives_iam_throttling_and_says_what_failed(proxy, upstream):
    p, url = proxy
    iam = seed("iam", upstream)
    iam.create_role(RoleName="app", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    role = "arn:aws:iam::123456789012:role/app"
    p.faults.append(Fault(kind="throttle", target="Action=GetRole", times=2))
    ok = CliRunner().invoke(main, ["attached", "--principal", role, "--live", "--endpoint-url", url])
    assert ok.exit_code == 0 and p.faults[0].injected == 2, ok.output
    p.faults.append(Fault(kind="5xx", target="Action=ListRolePolicies", times=None))
    failed = CliRunner().invoke(main, ["attached", "--principal", role, "--live", "--endpoint-url", url])
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert "reading IAM" in failed.output and "ServiceUnavailable" in failed.output


# -- an API source whose pages stop part-way (botocore's Stubber: moto has no LookupEvents) ------------


def page(records: list[dict], token: str | None = None) -> dict:
    return {"Events": [{"EventId": r["eventID"], "CloudTrailEvent": json.dumps(r)} for r in records],
            **({"NextToken": token} if token else {})}


def lookup_client(*pages: dict | str):
    """A CloudTrail client answering LookupEvents with ``pages`` in turn (a string: that error code)."""
    client = boto3.client("cloudtrail", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    token = None
    for answer in pages:
        expected = {"StartTime": ANY, "EndTime": ANY, "MaxResults": 50, **({"NextToken": token} if token else {})}
        if isinstance(answer, str):
            stub.add_client_error("lookup_events", service_error_code=answer, service_message="expired",
                                  expected_params=expected)
        else:
            stub.add_response("lookup_events", answer, expected)
            token = answer.get("NextToken")
    stub.activate()
    return client


def test_lookup_pages_read_before_a_fault_are_kept_and_read_again(tmp_path, monkeypatch):
    monkeypatch.setattr(lookup.time, "sleep", lambda s: None)
    records = [make_record(name=f"Call{i}", time=f"2026-11-0{i + 1}T10:00:00Z") for i in range(4)]
    window = Window(since="2026-11-01T00:00:00Z", until="2026-11-10T00:00:00Z")
    now = datetime(2026, 11, 20, tzinfo=UTC)

    def run(client, store):
        source = LookupSource("cloudtrail:lookup", client_factory=lambda s: client, now=now, window=window)
        return mine([source], store, MineOptions(window=window))

    with UsageStore(tmp_path / "s.db") as store:
        report = run(lookup_client(page(records[:2], "t1"), "ExpiredTokenException"), store)
        assert report.events == 2 and report.problems[0].reason.startswith(
            "read stopped (LookupEvents failed: ExpiredTokenException: expired): the 2 records before are kept")
        report = run(lookup_client(page(records[:2], "t1"), page(records[2:])), store)
        assert report.changed == 1 and report.duplicates == 2 and report.events == 2
        assert store.totals()["events"] == 4
