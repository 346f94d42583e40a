"""Normalisation: who a call belongs to, how it ended, when, and which resources it named."""

from __future__ import annotations

import msgspec
import pytest

from lpgen.fields import event_fields, request_fields
from lpgen.model import DENIED, ERROR, OK
from lpgen.normalize import BadRecord, normalize
from lpgen.records import record_decoder

from .conftest import ACCOUNT, assumed_role, make_record


def event_of(record: dict):
    return normalize(record_decoder.decode(msgspec.json.encode(record)))


@pytest.mark.parametrize(("identity", "principal", "kind"), [
    pytest.param(assumed_role(f"arn:aws:iam::{ACCOUNT}:role/app/team/orders-api"),
                 f"arn:aws:iam::{ACCOUNT}:role/app/team/orders-api", "role", id="assumed_role_keeps_the_role_path"),
    pytest.param(assumed_role("arn:aws-cn:iam::123456789012:role/cn-role"),
                 "arn:aws-cn:iam::123456789012:role/cn-role", "role", id="assumed_role_in_china"),
    pytest.param(assumed_role("arn:aws-us-gov:iam::123456789012:role/gov-role"),
                 "arn:aws-us-gov:iam::123456789012:role/gov-role", "role", id="assumed_role_in_govcloud"),
    pytest.param({"type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/bare-role/sess",
                  "accountId": ACCOUNT},
                 f"arn:aws:iam::{ACCOUNT}:role/bare-role", "role", id="assumed_role_without_session_issuer"),
    pytest.param({"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/ops/alice", "accountId": ACCOUNT,
                  "userName": "alice"}, f"arn:aws:iam::{ACCOUNT}:user/ops/alice", "user", id="iam_user"),
    pytest.param({"type": "IAMUser", "accountId": ACCOUNT, "userName": "bob"},
                 f"arn:aws:iam::{ACCOUNT}:user/bob", "user", id="iam_user_without_arn"),
    pytest.param({"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT},
                 f"arn:aws:iam::{ACCOUNT}:root", "root", id="root"),
    pytest.param({"type": "FederatedUser", "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/carol",
                  "sessionContext": {"sessionIssuer": {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/broker"}}},
                 f"arn:aws:iam::{ACCOUNT}:user/broker", "user", id="federated_user_is_its_issuing_user"),
    pytest.param({"type": "FederatedUser", "arn": f"arn:aws:sts::{ACCOUNT}:federated-user/carol"},
                 f"arn:aws:sts::{ACCOUNT}:federated-user/carol", "federated-user", id="federated_user_without_issuer"),
    pytest.param({"type": "AWSAccount", "principalId": "AIDAOTHER", "accountId": "999988887777"},
                 "arn:aws:iam::999988887777:root", "account", id="another_account"),
    pytest.param({"type": "AWSService", "invokedBy": "lambda.amazonaws.com"},
                 "service:lambda.amazonaws.com", "service", id="aws_service"),
    pytest.param({"type": "WebIdentityUser", "identityProvider": "token.actions.githubusercontent.com",
                  "userName": "repo:acme/app:ref:refs/heads/main"},
                 "web-identity:token.actions.githubusercontent.com", "webidentity", id="web_identity_user"),
    pytest.param({"type": "SAMLUser", "identityProvider": f"arn:aws:iam::{ACCOUNT}:saml-provider/okta"},
                 f"saml:arn:aws:iam::{ACCOUNT}:saml-provider/okta", "saml", id="saml_user"),
    pytest.param({"type": "IdentityCenterUser", "principalId": "u-123"}, "unknown:IdentityCenterUser:u-123",
                 "unknown", id="unknown_type_is_kept_not_dropped"),
])
def test_principal_resolution(identity, principal, kind):
    e = event_of(make_record(identity=identity))
    assert (e.principal, e.principal_type) == (principal, kind)
    assert e.service_initiated is (kind == "service")


def test_service_event_is_kept_apart_even_with_an_account_identity():
    e = event_of(make_record(identity={"accountId": ACCOUNT, "invokedBy": "AWS Internal"},
                             source="kms.amazonaws.com", name="RotateKey", eventType="AwsServiceEvent"))
    assert e.service_initiated and e.principal == "service:AWS Internal"


def test_call_made_by_a_service_with_the_principals_credentials_is_the_principals():
    e = event_of(make_record(identity=assumed_role(invokedBy="sqs.amazonaws.com"), source="kms.amazonaws.com",
                             name="Decrypt"))
    assert not e.service_initiated and e.principal.endswith("orders-api-role")
    assert e.invoked_by == "sqs.amazonaws.com"


@pytest.mark.parametrize(("code", "klass"), [
    (None, OK), ("AccessDenied", DENIED), ("AccessDeniedException", DENIED), ("Client.UnauthorizedOperation", DENIED),
    ("AuthorizationError", DENIED), ("ThrottlingException", ERROR), ("ResourceNotFoundException", ERROR),
    ("ValidationException", ERROR), ("ConditionalCheckFailedException", ERROR),
])
def test_denied_calls_are_denied_and_other_errors_were_authorized(code, klass):
    extra = {"errorCode": code} if code else {}
    assert event_of(make_record(**extra)).error_class == klass


@pytest.mark.parametrize(("given", "canonical"), [
    ("2026-11-02T08:15:00Z", "2026-11-02T08:15:00Z"),
    ("2026-11-02T08:15:00.123Z", "2026-11-02T08:15:00Z"),
    ("2026-11-02T10:15:00+02:00", "2026-11-02T08:15:00Z"),
    ("2026-11-02 08:15:00.000", "2026-11-02T08:15:00Z"),
])
def test_event_time_is_made_canonical_utc(given, canonical):
    assert event_of(make_record(time=given)).time == canonical


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-45T99:00:00Z", "1970-01-01T00:00:00Z"])
def test_unusable_event_time_is_a_bad_record(bad):
    with pytest.raises(BadRecord, match="eventTime"):
        event_of(make_record(time=bad))


def test_record_without_event_name_is_a_bad_record():
    record = make_record()
    del record["eventName"]
    with pytest.raises(BadRecord, match="eventName"):
        event_of(record)


def test_fields_keep_resource_names_and_arns_from_resources():
    e = event_of(make_record(source="s3.amazonaws.com", name="GetObject",
                             params={"bucketName": "reports", "key": "2026/11/a.csv", "Host": "reports.s3.amazonaws.com"},
                             resources=[{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::reports/2026/11/a.csv"},
                                        {"type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::reports"}]))
    assert e.fields == (("arn", "arn:aws:s3:::reports"), ("arn", "arn:aws:s3:::reports/2026/11/a.csv"),
                        ("bucketName", "reports"), ("key", "2026/11/a.csv"))


def test_arn_prefix_resources_are_kept():
    fields = event_fields(b"null", msgspec.json.encode([{"ARNPrefix": "arn:aws:s3:::b/logs/"}]))
    assert fields == (("arnPrefix", "arn:aws:s3:::b/logs/"),)


@pytest.mark.parametrize(("params", "expected"), [
    pytest.param({"queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q", "messageBody": "secret",
                  "messageGroupId": "g-1"}, (("queueUrl", "https://sqs.eu-west-1.amazonaws.com/1/q"),),
                 id="message_bodies_and_per_call_ids_are_not_resources"),
    pytest.param({"tableName": "t", "tags": [{"key": "owner", "value": "me"}]}, (("tableName", "t"), ("tags", "present")),
                 id="tag_keys_are_not_s3_keys_only_that_tags_were_set"),
    pytest.param({"functionName": "f", "tags": None, "versionId": ""}, (("functionName", "f"),),
                 id="a_fact_set_to_null_or_empty_text_is_not_present"),
    pytest.param({"tableName": "t", "tags": []}, (("tableName", "t"), ("tags", "present")),
                 id="an_empty_tag_list_is_present"),
    pytest.param({"statement": "  update orders set a = 1"}, (("statement", "UPDATE"),),
                 id="partiql_statement_keeps_only_its_verb"),
    pytest.param({"bucketName": "b", "key": "k", "versionId": "3HL4kqtJlcpXroDTDmJ"},
                 (("bucketName", "b"), ("key", "k"), ("versionId", "present")), id="version_id_kept_as_a_fact"),
    pytest.param({"transactItems": [{"put": {"tableName": "a"}}, {"delete": {"tableName": "b"}}]},
                 (("transactItems.delete.tableName", "b"), ("transactItems.put.tableName", "a")),
                 id="transaction_items_keep_their_type_in_the_path"),
    pytest.param({"id": "E2DIST", "entries": [{"id": "0", "eventBusName": "bus"}]},
                 (("entries.eventBusName", "bus"), ("id", "E2DIST")), id="bare_id_only_at_the_top"),
    pytest.param({"iamInstanceProfile": {"arn": "arn:aws:iam::1:instance-profile/web"}},
                 (("iamInstanceProfile.arn", "arn:aws:iam::1:instance-profile/web"),), id="nested_arn"),
    pytest.param({"attributeNames": ["All"], "queueUrl": "u"}, (("queueUrl", "u"),), id="attribute_lists_excluded"),
    pytest.param({"topicArn": "t", "attributeName": "LambdaSuccessFeedbackRoleArn",
                  "attributeValue": "arn:aws:iam::111122223333:role/sns-feedback"},
                 (("attributeValue", "arn:aws:iam::111122223333:role/sns-feedback"), ("topicArn", "t")),
                 id="an_attribute_value_is_kept_when_it_is_a_role_handed_over"),
    pytest.param({"topicArn": "t", "attributeName": "Policy", "attributeValue": '{"Statement": []}'},
                 (("topicArn", "t"),), id="an_attribute_value_that_is_a_document_is_not"),
])
def test_request_fields(params, expected):
    assert request_fields(params) == expected


def test_request_fields_are_bounded():
    fields = request_fields({"names": [f"/p/{i}" for i in range(100)], "name": "x" * 5000})
    assert len(fields) == 32
    assert all(len(value) <= 1025 for _, value in fields)


def test_event_equality_ignores_the_raw_record():
    a, b = event_of(make_record(event_id="same")), event_of(make_record(event_id="same"))
    assert a.raw is not None and a == b and hash(a) == hash(b) and "raw" not in repr(a)


@pytest.mark.parametrize(("role", "region"), [
    (f"arn:aws-iso:iam::{ACCOUNT}:role/isolated", "us-iso-east-1"),  # partitions newer than most tools
    (f"arn:aws-eusc:iam::{ACCOUNT}:role/sovereign", "eusc-de-east-1"),
    (f"arn:aws:iam::{ACCOUNT}:role/a/very/deep/path/with.dots/and-dashes/app", "eu-west-1"),
    (f"arn:aws:iam::{ACCOUNT}:role/équipe/データ/app-ünïcode", "eu-west-1"),  # not a valid IAM name, but records are attacker-written
])
def test_odd_partitions_paths_and_unicode_survive_to_the_policy(role, region, tmp_path):
    from lpgen.generate import generate
    from lpgen.mine import mine
    from lpgen.sources.local import LocalSource
    from lpgen.store import UsageStore

    from .conftest import delivery_path, write_log

    key = "rapports/2026/été/日本語 file.csv"
    write_log(delivery_path(tmp_path / "logs"), [make_record(
        source="s3.amazonaws.com", name="GetObject", identity=assumed_role(role, session="sessión-☃"),
        params={"bucketName": "reports", "key": key}, region=region)])
    with UsageStore(tmp_path / "s.db") as store:
        report = mine([LocalSource(tmp_path / "logs")], store)
        rows = list(store.usage())
    assert not report.problems and [r.principal for r in rows] == [role]
    policy = generate(rows)[role]
    resources = {r for s in policy.statements for r in s.resources}
    partition = role.split(":")[1]
    assert any(r.startswith(f"arn:{partition}:s3:::reports/") and r.endswith(key) for r in resources), resources


def test_every_partition_botocore_knows_is_recognised_from_its_regions():
    import json
    import os
    import re

    import botocore

    from lpgen.normalize import partition_of_region

    data = json.loads(open(os.path.join(os.path.dirname(botocore.__file__), "data", "partitions.json")).read())
    for partition in data["partitions"]:
        regions = [r for r in partition["regions"] if re.match(partition["regionRegex"], r)]  # not "aws-global"
        assert regions or partition["id"] == "aws-eusc"  # announced before its regions are listed
        for region in regions:
            assert partition_of_region(region) == partition["id"], region
    assert partition_of_region("eusc-de-east-1") == "aws-eusc"
