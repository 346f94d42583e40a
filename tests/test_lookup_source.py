"""LookupEvents as a source (botocore's Stubber stands in for CloudTrail: moto has no LookupEvents)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import boto3
import pytest
from botocore.stub import ANY, Stubber

import lpgen.sources.lookup as lookup
from lpgen.filters import FilterError, Window
from lpgen.mine import mine
from lpgen.sources.lookup import LookupSource
from lpgen.store import UsageStore

from .conftest import make_record

NOW = datetime(2026, 11, 20, tzinfo=timezone.utc)


def page(records, token=None):
    out = {"Events": [{"EventId": r["eventID"], "CloudTrailEvent": json.dumps(r)} for r in records]}
    if token:
        out["NextToken"] = token
    return out


def test_pages_are_read_at_two_requests_a_second_and_mined(tmp_path, monkeypatch):
    waits = []
    monkeypatch.setattr(lookup.time, "sleep", waits.append)
    client = boto3.client("cloudtrail", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_response("lookup_events", page([make_record(), make_record()], token="t1"),
                      {"StartTime": ANY, "EndTime": ANY, "MaxResults": 50,
                       "LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": "dynamodb.amazonaws.com"}]})
    stub.add_response("lookup_events", page([make_record()]),
                      {"StartTime": ANY, "EndTime": ANY, "MaxResults": 50, "NextToken": "t1",
                       "LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": "dynamodb.amazonaws.com"}]})
    stub.activate()
    source = LookupSource("cloudtrail:lookup:EventSource=dynamodb.amazonaws.com", client_factory=lambda s: client,
                          now=NOW, window=Window(since="2026-01-01T00:00:00Z"))
    with UsageStore(tmp_path / "s.db") as store:
        report = mine([source], store)
    stub.assert_no_pending_responses()
    assert report.events == 3 and report.kinds == {"lookup-events": 1}
    assert waits and all(0 < w <= lookup.MIN_INTERVAL for w in waits)
    assert any("management events only" in n for n in report.notes)
    assert any("before the 90-day event history" in n for n in report.notes)


def test_window_is_clamped_to_the_90_day_history():
    start, end = LookupSource("cloudtrail:lookup", now=NOW, window=Window(since="2025-01-01T00:00:00Z")).span()
    assert (end - start).days == 90 and end == NOW


def test_only_one_known_attribute_is_accepted():
    with pytest.raises(FilterError, match="ATTRIBUTE one of"):
        LookupSource("cloudtrail:lookup:Bogus=x")


def test_a_failing_api_is_a_problem_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setattr(lookup.time, "sleep", lambda s: None)
    client = boto3.client("cloudtrail", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    stub = Stubber(client)
    stub.add_client_error("lookup_events", service_error_code="AccessDeniedException", service_message="nope")
    stub.activate()
    with UsageStore(tmp_path / "s.db") as store:
        report = mine([LookupSource("cloudtrail:lookup", client_factory=lambda s: client, now=NOW)], store)
    assert "LookupEvents failed: AccessDeniedException" in report.problems[0].reason
