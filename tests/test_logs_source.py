"""A trail delivered to CloudWatch Logs (moto's server, real HTTP): every page of every hour is
read, the window bounds the hours asked for, the result equals the local path's on the same
records, re-runs never count an event twice, and failures are clear problems."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner

from lpgen.aws import client_factory
from lpgen.cli import main
from lpgen.filters import FilterError, Window, as_datetime, parse_instant
from lpgen.mine import MineOptions, mine
from lpgen.sources.base import Blob
from lpgen.sources.local import LocalSource
from lpgen.sources.logs import LogsSource
from lpgen.store import UsageStore

from .conftest import DEMO, make_record, moto_server, seed

NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def endpoint():
    with moto_server() as url:
        yield url


def put_records(endpoint: str, group: str, records: list[dict], *, timestamps=None,
                stream: str = "123456789012_CloudTrail_eu-west-1", messages: list[str] | None = None) -> None:
    """Write records as CloudTrail does: one log event per record, its JSON the message."""
    logs = seed("logs", endpoint)
    try:
        logs.create_log_group(logGroupName=group)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    try:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    except logs.exceptions.ResourceAlreadyExistsException:
        pass
    if timestamps is None:
        timestamps = [int(as_datetime(r["eventTime"]).timestamp() * 1000)
                      for r in records]
    events = sorted(({"timestamp": t, "message": m} for t, m in
                     zip(timestamps, messages or [json.dumps(r) for r in records])), key=lambda e: e["timestamp"])
    for i in range(0, len(events), 1000):
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[i:i + 1000])


def at(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def recorded(endpoint: str, requests: list[dict]):
    """A client factory whose CloudWatch Logs clients note the parameters of every FilterLogEvents request."""
    make = client_factory(endpoint_url=endpoint)

    def factory(service):
        client = make(service)
        client.meta.events.register("provide-client-params.cloudwatch-logs.FilterLogEvents",
                                    lambda params, **_: requests.append(dict(params)))
        return client

    return factory


def mine_logs(store_path, spec, endpoint, *, window=Window(), workers=1, requests=None, **kwargs):
    factory = recorded(endpoint, requests if requests is not None else [])
    with UsageStore(store_path) as store:
        report = mine([LogsSource(spec, window=window, client_factory=factory, **kwargs)], store,
                      MineOptions(window=window), workers=workers)
        return report, store.totals()["events"]


def test_every_page_of_an_hour_is_read(endpoint, tmp_path):
    hour = (NOW - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    put_records(endpoint, "/trail/paged", [make_record(time=at(hour + timedelta(minutes=i))) for i in range(25)])
    requests: list[dict] = []
    report, events = mine_logs(tmp_path / "s.db", "logs:/trail/paged", endpoint, requests=requests, page_size=7)
    assert not report.problems and report.events == events == 25
    of_the_hour = [r for r in requests if r["startTime"] == int(hour.timestamp() * 1000)]
    assert len(of_the_hour) == 4 and sum("nextToken" in r for r in of_the_hour) == 3  # 7 + 7 + 7 + 4
    assert all(r["endTime"] - r["startTime"] == 3_600_000 - 1 for r in requests)


def test_the_window_bounds_the_hours_asked_for_and_the_events_counted(endpoint, tmp_path):
    start = (NOW - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    records = [make_record(time=at(start + timedelta(hours=h, minutes=10))) for h in range(48)]
    put_records(endpoint, "/trail/window", records)
    since, until = start + timedelta(hours=10), start + timedelta(hours=20)
    window = Window(since=parse_instant(at(since)), until=parse_instant(at(until)))
    requests: list[dict] = []
    report, events = mine_logs(tmp_path / "s.db", "logs:/trail/window", endpoint, window=window, requests=requests)
    assert events == 10  # hours 10..19 at :10 (hour 20's event is at 20:10, after until)
    first, last = min(r["startTime"] for r in requests), max(r["startTime"] for r in requests)
    assert since - timedelta(hours=1) <= datetime.fromtimestamp(first / 1000, timezone.utc) < since
    assert datetime.fromtimestamp(last / 1000, timezone.utc) == until  # the slack reaches into the next hour
    assert report.filtered == 2  # the events of the slack hours are read, then left out by eventTime


def test_a_log_group_mines_like_the_local_copy_of_the_same_trail(endpoint, tmp_path):
    records = [r for path in sorted((DEMO / "AWSLogs").rglob("*.json.gz")) if "CloudTrail-Digest" not in str(path)
               for r in json.loads(gzip.decompress(path.read_bytes()))["Records"]]
    # moto keeps two weeks of log events: move the log timestamps (not the records) to the last days.
    times = [as_datetime(r["eventTime"]) for r in records]
    shift = NOW - timedelta(hours=2) - max(times)
    for region in ("eu-west-1", "us-east-1"):
        mine_ = [(r, t) for r, t in zip(records, times) if r["awsRegion"] == region]
        put_records(endpoint, "/trail/demo", [r for r, _ in mine_], stream=f"210987654321_CloudTrail_{region}",
                    timestamps=[int((t + shift).timestamp() * 1000) for _, t in mine_])
    with UsageStore(tmp_path / "logs.db") as store:
        source = LogsSource("logs:/trail/demo", client_options={"endpoint_url": endpoint})
        report = mine([source], store, workers=2)  # the source travels to the workers by pickling
        from_logs = sorted(store.usage(include_service=True), key=repr)
    with UsageStore(tmp_path / "local.db") as store:
        mine([LocalSource(DEMO / "AWSLogs")], store)
        from_files = sorted(store.usage(include_service=True), key=repr)
    assert not report.problems and report.inputs > 24 * 6
    assert from_logs == from_files


def test_re_runs_never_count_an_event_twice(endpoint, tmp_path):
    recent = [make_record(time=at(NOW - timedelta(minutes=m))) for m in (200, 150, 90, 5, 3)]
    put_records(endpoint, "/trail/growing", recent)
    store = tmp_path / "s.db"
    first, total = mine_logs(store, "logs:/trail/growing", endpoint)
    assert first.events == total == 5
    with UsageStore(store) as ledger:  # hours that ended over an hour ago are complete; later ones open
        versions = Counter(i.version.split("@")[0] for i in ledger.inputs())
    assert versions["complete"] >= 2 and 1 <= versions["open"] <= 2
    second, total = mine_logs(store, "logs:/trail/growing", endpoint)
    assert second.events == 0 and total == 5 and second.known >= 1 and second.mined >= 1  # recent hours read again
    put_records(endpoint, "/trail/growing", [make_record(time=at(NOW - timedelta(minutes=1)))])
    third, total = mine_logs(store, "logs:/trail/growing", endpoint)
    assert third.events == 1 and total == 6
    fourth, total = mine_logs(store, "logs:/trail/growing", endpoint)
    assert fourth.events == 0 and total == 6


def test_messages_that_are_not_cloudtrail_records_are_problems_and_the_rest_is_kept(endpoint, tmp_path):
    t = NOW - timedelta(hours=3)
    records = [make_record(time=at(t)) for _ in range(3)]
    put_records(endpoint, "/trail/mixed", records, timestamps=[int(t.timestamp() * 1000)] * 5,
                messages=[json.dumps(records[0]), "START RequestId: 42", json.dumps(records[1]),
                          '{"level": "info"}', json.dumps(records[2])])
    report, events = mine_logs(tmp_path / "s.db", "logs:/trail/mixed", endpoint)
    assert events == 3
    assert sorted(p.record for p in report.problems) == [1, 3]
    assert all("/trail/mixed" in p.path and "not a CloudTrail record" in p.reason for p in report.problems)


def test_a_missing_log_group_is_one_clear_problem(endpoint, tmp_path):
    listing = LogsSource("logs:/no/such/group", client_options={"endpoint_url": endpoint}, region="eu-west-1").list()
    assert [p.reason for p in listing.problems] == ["no log group /no/such/group in eu-west-1"]
    result = CliRunner().invoke(main, ["mine", "logs:/no/such/group", "--store", str(tmp_path / "c.db"),
                                       "--endpoint-url", endpoint, "--region", "eu-west-1"])
    assert result.exit_code == 1 and "no log group /no/such/group in eu-west-1" in result.output
    assert "Traceback" not in result.output


def test_the_spec_names_a_group_and_an_optional_stream_prefix():
    source = LogsSource("logs:/aws/cloudtrail/org:123456789012_CloudTrail_")
    assert (source.group, source.stream_prefix) == ("/aws/cloudtrail/org", "123456789012_CloudTrail_")
    with pytest.raises(FilterError, match="logs:LOG_GROUP"):
        LogsSource("logs:")


def stubbed(service_error_code: str, operation: str, **meta):
    client = boto3.client("logs", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_client_error(operation, service_error_code=service_error_code, service_message="denied or busy",
                          response_meta=meta or None)
    stub.activate()
    return lambda service: client


def test_access_denied_and_throttling_after_retries_are_clear_messages():
    # moto neither denies nor throttles: botocore's Stubber stands in for CloudWatch Logs here.
    denied = LogsSource("logs:/trail", client_factory=stubbed("AccessDeniedException", "describe_log_streams"))
    assert denied.list().problems[0].reason == ("cannot list the log streams: AccessDeniedException: "
                                                "denied or busy")
    throttled = LogsSource("logs:/trail", client_factory=stubbed("ThrottlingException", "filter_log_events",
                                                                 RetryAttempts=7))
    with pytest.raises(OSError, match=r"FilterLogEvents failed: ThrottlingException.*after 7 retries"):
        throttled.read(Blob(key="logs:eu-west-1:/trail@2026-11-20T08:00Z"))

