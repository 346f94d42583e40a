"""`lpgen who`: which principals touched a resource, including who created it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lpgen.cli import main
from lpgen.fields import created_keys, event_fields
from lpgen.mapping import map_event
from lpgen.mine import mine
from lpgen.normalize import normalize
from lpgen.records import record_decoder
from lpgen.sources.local import LocalSource
from lpgen.store import UsageStore
from lpgen.who import matcher, who

from .conftest import PUBLIC, assumed_role, delivery_path, make_record, write_log

PANTHER = PUBLIC / "panther-analysis" / "panther_cloudtrail_test_logs.json"
ADMIN = "arn:aws:iam::123123123123:role/DevAdministrator"


@pytest.fixture(scope="module")
def stores(tmp_path_factory, demo_mined):
    path = tmp_path_factory.mktemp("who") / "panther.db"
    with UsageStore(path) as s:
        mine([LocalSource(PANTHER)], s)
        panther = (path, list(s.usage()))
    return {"panther": panther, "demo": demo_mined[:2]}


def test_who_created_an_instance_from_a_real_run_instances_record(stores):
    """The instance id exists only in RunInstances' responseElements; mining keeps it as evidence."""
    _, rows = stores["panther"]
    touches = who(rows, "i-0d7e4b9be8a0de6ea")
    assert [(t.principal, t.action, t.created) for t in touches] == [(ADMIN, "ec2:RunInstances", True)]
    assert touches[0].first_seen == "2022-10-20T14:16:43Z" and touches[0].count == 1


def test_created_ids_never_reach_the_policy():
    """RunInstances needed ec2:RunInstances on instance/*, not on the instance it went on to create."""
    record = make_record(source="ec2.amazonaws.com", name="RunInstances", params={
        "instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 1, "maxCount": 1}]},
        "instanceType": "t3.micro"}, responseElements={"instancesSet": {"items": [
            {"instanceId": "i-064bd95a9b9b0a4e6", "imageId": "ami-0abcdef1234567890"}]}}, eventCategory="Management")
    event = normalize(record_decoder.decode(json.dumps(record)))
    assert ("created:instanceId", "i-064bd95a9b9b0a4e6") in event.fields
    resources = {r for p in map_event(event).permissions if p.action == "ec2:RunInstances" for r in p.resources}
    assert not any("i-064bd95a9b9b0a4e6" in r for r in resources)
    assert any(r.endswith(":instance/*") for r in resources)


def test_only_creating_calls_read_their_response():
    assert created_keys("ec2.amazonaws.com", "RunInstances") == ("instanceId",)
    assert created_keys("lambda.amazonaws.com", "CreateFunction20150331") == ("functionArn",)  # versioned name
    assert created_keys("dynamodb.amazonaws.com", "GetItem") == ()
    # a response that is not JSON-shaped as expected never fails the record
    assert event_fields(b'{"bucketName":"b"}', b"null", b'"oops"', ("instanceId",)) == (("bucketName", "b"),)


@pytest.mark.parametrize("typed, name, hit", [
    ("i-0abc", "arn:aws:ec2:eu-west-1:1:instance/i-0abc", True),
    ("i-0abc", "instancesSet.items.instanceId=i-0abc", True),
    ("i-0abc", "arn:aws:ec2:eu-west-1:1:instance/i-0abcd", False),
    ("orders", "arn:aws:dynamodb:eu-west-1:1:table/orders", True),
    ("orders", "arn:aws:dynamodb:eu-west-1:1:table/orders/index/by-customer", True),
    ("orders", "arn:aws:lambda:eu-west-1:1:function:orders", True),
    ("orders", "arn:aws:lambda:eu-west-1:1:function:orders-api", False),
    ("reports", "arn:aws:s3:::reports", True),
    ("reports", "arn:aws:s3:::reports/2026/11/a.csv", True),
    ("reports", "arn:aws:s3:::acme/reports/a.csv", False),
    ("jobs", "https://sqs.eu-west-1.amazonaws.com/1/jobs", True),
    ("arn:aws:s3:::reports", "arn:aws:s3:::reports/2026/a.csv", True),
    ("arn:aws:s3:::reports", "arn:aws:s3:::reports-old", False),
    ("arn:aws:sns:eu-west-1:1:alerts", "arn:aws:sns:eu-west-1:1:alerts", True),
    ("arn:aws:iam::123456789012:role/service-role/orders", "arn:aws:iam::123456789012:role/*/orders", True),
    ("arn:aws:iam::123456789012:role/service-role/orders", "arn:aws:iam::123456789012:role/*/orders-v2", False),
    ("arn:aws:s3:::reports/a.csv", "arn:aws:s3:::reports/*/a.csv", False),
])
def test_a_resource_is_found_by_its_arn_or_the_name_people_use(typed, name, hit):
    assert matcher(typed)(name) is hit


def test_who_command_on_the_demo(stores):
    path, _ = stores["demo"]
    run = lambda *a: CliRunner().invoke(main, ["who", *a, "--store", str(path)])  # noqa: E731
    text = run("acme-reports-prod")
    assert text.exit_code == 0 and "role/service-role/reports-reader-role-k2j4h6" in text.output
    assert "s3:GetObject" in text.output
    data = json.loads(run("orders", "--format", "json").output)
    assert {t["principal"].rsplit("/", 1)[-1] for t in data["touches"]} == {"orders-api-role-p9q8r7"}
    assert {"dynamodb:GetItem", "dynamodb:PutItem"} <= {t["action"] for t in data["touches"]}
    assert run("i-0000000000000dead").output.startswith("no principal in the store touched")
    # the deployer's GetRole named the role without its path; the store shows the role's ARN
    role = json.loads(run("arn:aws:iam::210987654321:role/service-role/orders-api-role-p9q8r7", "--format", "json").output)
    assert {(t["principal"].rsplit("/", 1)[-1], t["action"]) for t in role["touches"]} >= {("github-deployer", "iam:GetRole")}


def test_who_reads_sources_given_on_the_command_line(tmp_path):
    role = "arn:aws:iam::123456789012:role/builder"
    write_log(delivery_path(tmp_path / "logs"), [make_record(
        source="sqs.amazonaws.com", name="CreateQueue", identity=assumed_role(role), params={"queueName": "jobs"},
        responseElements={"queueUrl": "https://sqs.eu-west-1.amazonaws.com/123456789012/jobs"})])
    result = CliRunner().invoke(main, ["who", "jobs", str(tmp_path / "logs"), "--store", str(tmp_path / "u.db")])
    assert result.exit_code == 0 and role in result.output and "(created it)" in result.output
