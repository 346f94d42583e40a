"""Every input format is recognised from its content, and bad input never loses good records."""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib

import pytest

from lpgen.sources.formats import ARRAY, ATHENA, DELIVERY, DIGEST, JSONL, LAKE, LOOKUP, SINGLE, decode, parse_struct_text

from .conftest import assumed_role, log_bytes, make_record


def names(decoded) -> list[str]:
    return [r.eventName for r in decoded.records]


def test_delivered_log_file_plain_and_gzipped_give_the_same_records():
    records = [make_record(name="GetItem"), make_record(name="PutItem")]
    plain, gz = decode(log_bytes(records, gz=False), "a.json"), decode(log_bytes(records), "a.json.gz")
    assert plain.kind == gz.kind == DELIVERY
    assert names(plain) == names(gz) == ["GetItem", "PutItem"]
    assert not plain.problems and not gz.problems


def test_format_comes_from_content_not_file_name():
    records = [make_record()]
    assert decode(log_bytes(records), "looks-plain.json").kind == DELIVERY
    assert decode(log_bytes(records, gz=False), "looks-gzipped.json.gz").kind == DELIVERY
    lines = "\n".join(json.dumps(r) for r in records * 2).encode()
    assert decode(lines, "trail.json").kind == JSONL


def test_concatenated_gzip_members_are_all_read():
    data = log_bytes([make_record(name="A")]) + gzip.compress(b"\n", mtime=0)
    two = gzip.compress(json.dumps({"Records": [make_record(name="A")]}).encode()[:-2], mtime=0)
    assert names(decode(data, "x")) == ["A"]
    joined = decode(two + gzip.compress(b',{"eventSource":"s","eventName":"B","eventTime":"2026-11-02T00:00:00Z"}]}'), "x")
    assert names(joined) == ["A", "B"]


def test_json_lines_with_wrappers_are_unwrapped():
    plain = make_record(name="Plain")
    timestamped = {"@timestamp": "2026-11-02T08:15:00.000Z", **make_record(name="Timestamped")}
    eventbridge = {"version": "0", "detail-type": "AWS API Call via CloudTrail", "detail": make_record(name="Detail")}
    message = {"logStream": "x", "message": json.dumps(make_record(name="Message"))}
    elastic = {"_index": "cloudtrail", "_source": make_record(name="Elastic")}
    data = "\n".join(json.dumps(x) for x in (plain, timestamped, eventbridge, message, elastic)).encode()
    decoded = decode(data, "events.ndjson")
    assert decoded.kind == JSONL
    assert names(decoded) == ["Plain", "Timestamped", "Detail", "Message", "Elastic"]


def test_json_lines_skip_a_bad_line_and_keep_the_rest():
    data = "\n".join([json.dumps(make_record(name="A")), "{not json", '{"hello": "world"}',
                      json.dumps(make_record(name="B"))]).encode()
    decoded = decode(data, "events.jsonl")
    assert names(decoded) == ["A", "B"]
    assert [(p.record, "not JSON" in p.reason or "not a CloudTrail record" in p.reason) for p in decoded.problems] == [
        (1, True), (2, True)]


def test_lookup_events_output_reads_the_embedded_records():
    output = {"Events": [
        {"EventId": "1", "EventName": "GetItem", "CloudTrailEvent": json.dumps(make_record(name="GetItem"))},
        {"EventId": "2", "EventName": "ListTables", "CloudTrailEvent": json.dumps(make_record(name="ListTables"))},
    ], "NextToken": "abc"}
    decoded = decode(json.dumps(output).encode(), "lookup.json")
    assert decoded.kind == LOOKUP
    assert names(decoded) == ["GetItem", "ListTables"]


def test_cloudtrail_lake_results_with_struct_columns():
    identity = ("{type=AssumedRole, principalid=AROAEXAMPLEID:orders-api, "
                "arn=arn:aws:sts::123456789012:assumed-role/orders-api-role/orders-api, accountid=123456789012, "
                "sessioncontext={sessionissuer={type=Role, arn=arn:aws:iam::123456789012:role/service-role/orders-api-role, "
                "accountid=123456789012, username=orders-api-role}}}")
    rows = [[{"eventID": "e-1"}, {"eventTime": "2026-11-02 08:15:00.000"}, {"eventSource": "dynamodb.amazonaws.com"},
             {"eventName": "GetItem"}, {"awsRegion": "eu-west-1"}, {"userIdentity": identity},
             {"requestParameters": "{tableName=orders}"}, {"recipientAccountId": "123456789012"}]]
    decoded = decode(json.dumps({"QueryStatus": "FINISHED", "QueryResultRows": rows}).encode(), "lake.json")
    assert decoded.kind == LAKE
    record = decoded.records[0]
    assert record.eventName == "GetItem" and record.eventTime == "2026-11-02 08:15:00.000"
    assert b"orders-api-role" in bytes(record.userIdentity) and b"sessionIssuer" in bytes(record.userIdentity)
    assert json.loads(bytes(record.requestParameters)) == {"tableName": "orders"}


def test_athena_csv_result_with_json_and_trino_structs():
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["eventversion", "useridentity", "eventtime", "eventsource", "eventname", "awsregion",
                     "requestparameters", "resources", "eventid", "recipientaccountid", "errorcode"])
    writer.writerow(["1.09", "{type=IAMUser, principalid=AIDAEXAMPLE, arn=arn:aws:iam::123456789012:user/alice, "
                     "accountid=123456789012, username=alice}", "2026-11-02T08:15:00Z", "s3.amazonaws.com",
                     "GetObject", "eu-west-1", '{"bucketName":"b","key":"k"}',
                     "[{arn=arn:aws:s3:::b/k, accountid=123456789012, type=AWS::S3::Object}]", "e-1", "123456789012", ""])
    decoded = decode(out.getvalue().encode(), "results.csv")
    assert decoded.kind == ATHENA
    record = decoded.records[0]
    assert json.loads(bytes(record.userIdentity))["arn"] == "arn:aws:iam::123456789012:user/alice"
    assert json.loads(bytes(record.resources)) == [{"ARN": "arn:aws:s3:::b/k", "accountId": "123456789012",
                                                     "type": "AWS::S3::Object"}]


def test_trino_struct_text_parses_nesting_lists_and_nulls():
    parsed = parse_struct_text("{a=1, b={c=x, d=null}, e=[{f=g}, {f=h}], i=}")
    assert parsed == {"a": "1", "b": {"c": "x", "d": None}, "e": [{"f": "g"}, {"f": "h"}], "i": ""}
    assert parse_struct_text('{"json": true}') == {"json": True}


def test_array_of_records_and_single_record():
    assert decode(json.dumps([make_record(name="A"), make_record(name="B")]).encode(), "x").kind == ARRAY
    single = decode(json.dumps(make_record(name="Only")).encode(), "x")
    assert single.kind == SINGLE and names(single) == ["Only"]


def test_digest_file_is_recognised_and_yields_nothing():
    digest = {"awsAccountId": "123456789012", "digestStartTime": "2026-11-02T00:00:00Z",
              "digestEndTime": "2026-11-02T01:00:00Z", "logFiles": []}
    decoded = decode(gzip.compress(json.dumps(digest).encode()), "digest.json.gz")
    assert decoded.kind == DIGEST and not decoded.records and not decoded.problems


# -- bad input ------------------------------------------------------------------


def test_truncated_gzip_keeps_the_records_it_holds():
    records = [make_record(name=f"Call{i}", params={"tableName": "t" * 400}) for i in range(50)]
    data = log_bytes(records)
    decoded = decode(data[: len(data) // 2], "cut.json.gz")
    assert 0 < len(decoded.records) < 50
    assert names(decoded) == [f"Call{i}" for i in range(len(decoded.records))]
    reasons = " ".join(p.reason for p in decoded.problems)
    assert "truncated gzip" in reasons and "intact record(s) recovered" in reasons


def test_corrupt_record_in_the_middle_keeps_records_before_and_after():
    good = [make_record(name=f"Call{i}") for i in range(5)]
    text = json.dumps({"Records": good})
    broken = text.replace('"eventName": "Call2"', '"eventName": "Call2" "oops', 1)
    decoded = decode(broken.encode(), "broken.json")
    kept = names(decoded)
    assert {"Call0", "Call1", "Call3", "Call4"} <= set(kept) and "Call2" not in kept
    assert any("invalid JSON" in p.reason for p in decoded.problems)


def test_json_that_is_not_cloudtrail_is_reported():
    decoded = decode(b'{"Items": [1, 2, 3], "Count": 3}', "dynamo-export.json")
    assert decoded.kind is None and not decoded.records
    assert "not CloudTrail" in decoded.problems[0].reason and "Items" in decoded.problems[0].reason


def test_record_of_the_wrong_shape_is_skipped_with_its_index():
    records = [make_record(name="A"), make_record(name="B", eventTime=12345), make_record(name="C")]
    decoded = decode(log_bytes(records), "x.json.gz")
    assert names(decoded) == ["A", "C"]
    assert [p.record for p in decoded.problems] == [1]
    assert "eventTime" in decoded.problems[0].reason


def test_record_with_every_field_of_the_wrong_type_is_skipped():
    weird = {key: [1, 2] for key in make_record()}
    decoded = decode(log_bytes([make_record(name="A"), weird, make_record(name="C")]), "x")
    assert names(decoded) == ["A", "C"] and decoded.problems[0].record == 1


def test_huge_record_is_read():
    big = make_record(name="Big", params={"tableName": "orders", "item": "x" * 20_000_000})
    decoded = decode(log_bytes([big, make_record(name="After")]), "big.json.gz")
    assert names(decoded) == ["Big", "After"]


def test_invalid_utf8_is_replaced_and_the_records_kept():
    data = log_bytes([make_record(name="A", userAgent="ok"), make_record(name="B")], gz=False)
    data = data.replace(b'"ok"', b'"\xff\xfe"', 1)
    decoded = decode(data, "latin.json")
    assert names(decoded) == ["A", "B"]
    assert "invalid UTF-8" in decoded.problems[0].reason


def test_nul_bytes_do_not_lose_the_good_records():
    data = log_bytes([make_record(name="A"), make_record(name="B")], gz=False)
    data = data.replace(b'"B"', b'"B\x00"', 1)
    decoded = decode(data, "nul.json")
    assert "A" in names(decoded)
    assert decoded.problems


def test_gzip_bomb_is_refused_past_the_limit():
    bomb = gzip.compress(b" " * 50_000_000)
    decoded = decode(bomb, "bomb.json.gz", max_bytes=1_000_000)
    assert not decoded.records
    assert "beyond the 1,000,000-byte limit" in decoded.problems[0].reason


@pytest.mark.parametrize("data", [b"", b"   \n", b"\x00\x01\x02binary", zlib.compress(b"{}")], ids=[
    "empty", "blank", "binary", "zlib-not-gzip"])
def test_unreadable_inputs_give_a_problem_not_an_exception(data):
    decoded = decode(data, "odd")
    assert not decoded.records and decoded.problems


def test_deeply_nested_json_is_a_problem_not_a_crash():
    deep = b'{"Records": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"
    decoded = decode(deep, "deep.json")
    assert not decoded.records and decoded.problems


def test_identity_fields_survive_decoding():
    record = make_record(identity=assumed_role(invokedBy="sqs.amazonaws.com"))
    decoded = decode(log_bytes([record]), "x")
    assert json.loads(bytes(decoded.records[0].userIdentity))["invokedBy"] == "sqs.amazonaws.com"
