"""The hard cases of mapping a CloudTrail event to IAM actions, as specifications.

One realistic fixture per row of the table of hard cases (``MAPPING-CASES.md``)
lies in ``fixtures/mapping/<NN>-<case>.json``: delivery files with records shaped
as CloudTrail writes them (account 111122223333; eu-west-1, or us-east-1 for
global services). The tests below state, per case, the IAM actions each call
needed, on which resources, with which status, provenance, side permissions and
conditions.

Cases 26 (tags set at creation) and 27 (options of a request) are ours, beyond the table: the
tag action that creating a resource with tags also needs, and the actions that options such as
session tags on AssumeRole or Object Lock on CreateBucket need besides the call's own.

Row 21 (LookupEvents constraints: 90 days, management events only, 50 per page,
2 requests per second, one lookup attribute honoured) is about the LookupEvents
source, not about mapping one event, so it has no fixture here.

Where the engine does not yet do what the case requires, the test still states
the correct behaviour and is marked ``xfail(strict=True)`` with the reason: it
starts failing (XPASS) the day the engine is fixed, and then loses its mark.

Beside each fixture, ``<NN>-<case>.expected.json`` is the golden output of the
engine for it (``mapping_dict`` plus the ``eventID`` of each record). After a
reviewed change of the engine or its tables, regenerate them with::

    python scripts/regen_mapping_goldens.py

The last tests run every record of ``fixtures/mapping/``, ``fixtures/demo/`` and
``fixtures/public/`` through the engine: no action outside the catalogue, and no
denied call counted as used.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lpgen.catalog import load_catalog
from lpgen.mapping import Mapping, Permission, map_record, mapping_dict, observability
from lpgen.model import DENIED, Event
from lpgen.normalize import BadRecord
from lpgen.sources.formats import decode

from .conftest import DEMO, PUBLIC, ROOT

CASES = ROOT / "fixtures" / "mapping"
ACCOUNT = "111122223333"
REGION = "eu-west-1"


# -- reading the cases -------------------------------------------------------------


@dataclass(frozen=True)
class Mapped:
    """One record of a case, normalised and mapped."""

    record: dict[str, Any]
    event: Event
    mapping: Mapping

    def permission(self, action: str) -> Permission:
        found = [p for p in self.mapping.permissions if p.action == action]
        assert len(found) == 1, f"{self.mapping.name}: {action} in {self.mapping.actions}"
        return found[0]

    @property
    def main_actions(self) -> list[str]:
        """The actions of the call itself, without side permissions."""
        return sorted(p.action for p in self.mapping.permissions if not p.side)

    @property
    def side_actions(self) -> list[str]:
        return sorted(p.action for p in self.mapping.permissions if p.side)


def case_file(number: str) -> Path:
    found = [p for p in CASES.glob(f"{number}-*.json") if not p.name.endswith(".expected.json")]
    assert len(found) == 1, f"one fixture for case {number}: {found}"
    return found[0]


@functools.cache
def case(number: str) -> tuple[Mapped, ...]:
    records = json.loads(case_file(number).read_text(encoding="utf-8"))["Records"]
    return tuple(Mapped(r, *map_record(r)) for r in records)


def call(number: str, name: str, **params: Any) -> Mapped:
    """The one record of case ``number`` named ``name`` whose requestParameters hold ``params``."""
    found = [m for m in case(number) if m.record["eventName"] == name
             and all((m.record.get("requestParameters") or {}).get(k) == v for k, v in params.items())]
    assert len(found) == 1, f"case {number}: {len(found)} {name} records match {params}"
    return found[0]


def arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def role(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def key(key_id: str) -> str:
    return arn("kms", f"key/{key_id}")


KEY_1 = key("1234abcd-12ab-34cd-56ef-1234567890ab")
KEY_2 = key("0987dcba-09fe-87dc-65ba-ab0987654321")


# -- 1. event name ≠ action (S3 reads) ----------------------------------------------

REPORTS = "arn:aws:s3:::acme-reports"


@pytest.mark.parametrize(("name", "action", "resource", "provenance"), [
    pytest.param("HeadObject", "s3:GetObject", f"{REPORTS}/daily/2026-11-01.csv", "rule:s3-object-version",
                 id="head_object_needs_get_object"),
    pytest.param("HeadBucket", "s3:ListBucket", REPORTS, "table", id="head_bucket_needs_list_bucket"),
    pytest.param("ListObjects", "s3:ListBucket", REPORTS, "table",
                 id="list_objects_v2_logged_as_list_objects_needs_list_bucket"),
    pytest.param("ListObjectVersions", "s3:ListBucketVersions", REPORTS, "table",
                 id="list_object_versions_needs_list_bucket_versions"),
    pytest.param("ListBuckets", "s3:ListAllMyBuckets", "*", "table", id="list_buckets_needs_list_all_my_buckets"),
    pytest.param("ListMultipartUploads", "s3:ListBucketMultipartUploads", REPORTS, "table",
                 id="list_multipart_uploads_needs_list_bucket_multipart_uploads"),
    pytest.param("ListParts", "s3:ListMultipartUploadParts", f"{REPORTS}/exports/2026-11-01.parquet", "table",
                 id="list_parts_needs_list_multipart_upload_parts"),
    pytest.param("SelectObjectContent", "s3:GetObject", f"{REPORTS}/daily/2026-11-01.csv", "table",
                 id="select_object_content_needs_get_object"),
])
def test_s3_read_needs_its_iam_action_not_its_api_name(name, action, resource, provenance):
    m = call("01", name)
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.permission(action).resources == (resource,)
    assert m.mapping.provenance == provenance


@pytest.mark.parametrize(("key", "actions"), [
    pytest.param("daily/2026-11-01.csv", ("s3:GetObject", "s3:GetObjectAttributes"), id="current_version"),
    pytest.param("daily/2026-10-31.csv", ("s3:GetObjectVersion", "s3:GetObjectVersionAttributes"), id="a_version_named"),
])
def test_get_object_attributes_also_needs_read_access_to_the_object(key, actions):
    # S3 API Reference, GetObjectAttributes: "If you do not pass a version ID in your request, you need the
    # s3:GetObject and s3:GetObjectAttributes permissions"; with one, s3:GetObjectVersion and
    # s3:GetObjectVersionAttributes. The attributes action alone is refused.
    m = call("01", "GetObjectAttributes", key=key)
    assert m.mapping.actions == actions
    assert all(p.resources == (f"{REPORTS}/{key}",) for p in m.mapping.permissions)


# -- 2. bucket-configuration renames ------------------------------------------------

LOGS_BUCKET = "arn:aws:s3:::acme-logs"


@pytest.mark.parametrize(("name", "action"), [
    pytest.param("GetBucketLifecycle", "s3:GetLifecycleConfiguration", id="get_bucket_lifecycle"),
    pytest.param("PutBucketLifecycle", "s3:PutLifecycleConfiguration", id="put_bucket_lifecycle"),
    pytest.param("DeleteBucketLifecycle", "s3:PutLifecycleConfiguration", id="delete_bucket_lifecycle_is_a_put"),
    pytest.param("GetBucketEncryption", "s3:GetEncryptionConfiguration", id="get_bucket_encryption"),
    pytest.param("PutBucketEncryption", "s3:PutEncryptionConfiguration", id="put_bucket_encryption"),
    pytest.param("DeleteBucketEncryption", "s3:PutEncryptionConfiguration", id="delete_bucket_encryption_is_a_put"),
    pytest.param("DeleteBucketCors", "s3:PutBucketCORS", id="delete_bucket_cors_is_a_put"),
    pytest.param("DeleteBucketTagging", "s3:PutBucketTagging", id="delete_bucket_tagging_is_a_put"),
    pytest.param("GetBucketNotificationConfiguration", "s3:GetBucketNotification",
                 id="get_bucket_notification_configuration"),
    pytest.param("PutBucketNotificationConfiguration", "s3:PutBucketNotification",
                 id="put_bucket_notification_configuration"),
    pytest.param("PutObjectLockConfiguration", "s3:PutBucketObjectLockConfiguration",
                 id="put_object_lock_configuration"),
    pytest.param("DeleteBucketOwnershipControls", "s3:PutBucketOwnershipControls",
                 id="delete_bucket_ownership_controls_is_a_put"),
])
def test_bucket_configuration_call_needs_its_renamed_action(name, action):
    m = call("02", name)
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.permission(action).resources == (LOGS_BUCKET,)
    assert m.mapping.provenance == "table"


def test_put_bucket_notification_is_its_own_action():
    m = call("02", "PutBucketNotification")
    assert m.mapping.actions == ("s3:PutBucketNotification",)
    assert m.mapping.provenance == "same-name"


def test_bucket_configuration_deletes_never_emit_delete_actions():
    emitted = {a for m in case("02") for a in m.mapping.actions}
    assert not {a for a in emitted if a.startswith("s3:Delete")}
    assert not load_catalog().has_action("s3:DeleteBucketOwnershipControls")


# -- 3. wrong table entry / phantom action: replication ------------------------------

REPLICATION_ROLE = role("service-role/s3-replication-acme-data")


def test_put_bucket_replication_needs_put_replication_configuration_and_pass_role():
    m = call("03", "PutBucketReplication")
    assert m.mapping.status == "used"
    assert m.main_actions == ["s3:PutReplicationConfiguration"]
    assert m.mapping.provenance == "table"
    pass_role = m.permission("iam:PassRole")
    assert pass_role.side
    assert pass_role.provenance == "side:pass-role"
    assert pass_role.resources == (REPLICATION_ROLE,)
    assert pass_role.conditions == (("iam:PassedToService", "s3.amazonaws.com"),)


def test_put_bucket_replication_is_scoped_to_the_source_bucket_only():
    m = call("03", "PutBucketReplication")
    assert m.permission("s3:PutReplicationConfiguration").resources == ("arn:aws:s3:::acme-data",)


def test_delete_bucket_replication_needs_put_replication_configuration_and_passes_no_role():
    m = call("03", "DeleteBucketReplication")
    assert m.mapping.actions == ("s3:PutReplicationConfiguration",)
    assert m.permission("s3:PutReplicationConfiguration").resources == ("arn:aws:s3:::acme-data",)


def test_phantom_delete_replication_configuration_is_never_emitted():
    assert not load_catalog().has_action("s3:DeleteReplicationConfiguration")
    assert all("s3:DeleteReplicationConfiguration" not in m.mapping.actions for m in case("03"))


# -- 4. multipart uploads and copies -------------------------------------------------

ARCHIVE, LANDING = "arn:aws:s3:::acme-archive", "arn:aws:s3:::acme-landing"
EXPORT = f"{ARCHIVE}/exports/2026/11/02/orders.parquet"
VIA_S3 = ("kms:ViaService", f"s3.{REGION}.amazonaws.com")


@pytest.mark.parametrize("name", ["CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"])
def test_multipart_upload_steps_need_put_object(name):
    m = call("04", name)
    assert m.mapping.status == "used"
    assert m.main_actions == ["s3:PutObject"]
    assert m.permission("s3:PutObject").resources == (EXPORT,)


def test_abort_multipart_upload_is_its_own_action():
    m = call("04", "AbortMultipartUpload")
    assert m.mapping.actions == ("s3:AbortMultipartUpload",)
    assert m.permission("s3:AbortMultipartUpload").resources == (f"{ARCHIVE}/exports/2026/11/02/customers.parquet",)


@pytest.mark.parametrize(("name", "params"), [
    pytest.param("CreateMultipartUpload", {}, id="create_multipart_upload"),
    pytest.param("CopyObject", {"key": "raw/2026/11/02/orders.csv"}, id="copy_object"),
])
def test_sse_kms_write_needs_generate_data_key_via_s3(name, params):
    m = call("04", name, **params)
    data_key = m.permission("kms:GenerateDataKey")
    assert data_key.side
    assert data_key.resources == (KEY_1,)
    assert data_key.conditions == (VIA_S3,)


def test_sse_kms_multipart_upload_also_needs_decrypt_via_s3():
    m = call("04", "CreateMultipartUpload")
    decrypt = m.permission("kms:Decrypt")
    assert decrypt.side and decrypt.resources == (KEY_1,) and decrypt.conditions == (VIA_S3,)


def test_copy_object_needs_get_on_the_source_and_put_on_the_destination():
    m = call("04", "CopyObject", key="raw/2026/11/02/orders.csv")
    source = f"{LANDING}/incoming/orders 20261102.csv"  # x-amz-copy-source is URL-encoded
    destination = f"{ARCHIVE}/raw/2026/11/02/orders.csv"
    assert m.mapping.provenance == "rule:s3-copy"
    # No x-amz-tagging-directive: COPY, the source's tags are read and written.
    assert m.main_actions == ["s3:GetObject", "s3:GetObjectTagging", "s3:PutObject", "s3:PutObjectTagging"]
    assert m.permission("s3:GetObject").resources == (source,)
    assert m.permission("s3:GetObjectTagging").resources == (source,)
    assert m.permission("s3:PutObject").resources == (destination,)
    assert m.permission("s3:PutObjectTagging").resources == (destination,)


def test_copy_of_a_version_needs_get_object_version_and_the_actions_of_its_headers():
    m = call("04", "CopyObject", key="restored/orders-20261101.csv")
    destination = f"{ARCHIVE}/restored/orders-20261101.csv"
    # versionId in the copy source; REPLACE tagging with x-amz-tagging; x-amz-acl.
    assert m.main_actions == ["s3:GetObjectVersion", "s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectTagging"]
    assert m.permission("s3:GetObjectVersion").resources == (f"{LANDING}/incoming/orders-20261101.csv",)
    for action in ("s3:PutObject", "s3:PutObjectAcl", "s3:PutObjectTagging"):
        assert m.permission(action).resources == (destination,)


def test_upload_part_copy_needs_get_on_the_source_and_put_on_the_destination_only():
    m = call("04", "UploadPartCopy")
    assert m.main_actions == ["s3:GetObject", "s3:PutObject"]
    assert m.permission("s3:GetObject").resources == (f"{LANDING}/incoming/orders-20261102-part2.parquet",)
    assert m.permission("s3:PutObject").resources == (EXPORT,)


# -- 5. batch calls authorized as the single-item action -----------------------------

QUEUE = arn("sqs", "notify-jobs")
TOPIC = arn("sns", "order-events")


@pytest.mark.parametrize(("name", "action", "resource"), [
    pytest.param("SendMessageBatch", "sqs:SendMessage", QUEUE, id="send_message_batch_needs_send_message"),
    pytest.param("DeleteMessageBatch", "sqs:DeleteMessage", QUEUE, id="delete_message_batch_needs_delete_message"),
    pytest.param("ChangeMessageVisibilityBatch", "sqs:ChangeMessageVisibility", QUEUE,
                 id="change_message_visibility_batch_needs_change_message_visibility"),
    pytest.param("PublishBatch", "sns:Publish", TOPIC, id="publish_batch_needs_publish"),
    pytest.param("BatchGetJob", "deadline:GetJob", "*", id="deadline_batch_get_job_needs_get_job"),
])
def test_batch_call_needs_the_single_item_action(name, action, resource):
    m = call("05", name)
    assert not load_catalog().has_action(f"{m.mapping.prefix}:{name}")
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.permission(action).resources == (resource,)
    assert m.mapping.provenance == "table"


def test_delete_objects_needs_delete_object():
    m = call("05", "DeleteObjects")
    assert m.mapping.actions == ("s3:DeleteObject",)
    assert m.mapping.provenance == "rule:s3-delete-objects"


def test_delete_objects_is_scoped_to_the_objects_of_its_bucket():
    m = call("05", "DeleteObjects")
    assert m.permission("s3:DeleteObject").resources == ("arn:aws:s3:::acme-tmp/*",)


# -- 6. batch calls that are actions --------------------------------------------------


@pytest.mark.parametrize(("name", "action", "resources"), [
    pytest.param("BatchGetItem", "dynamodb:BatchGetItem",
                 (arn("dynamodb", "table/customers"), arn("dynamodb", "table/orders")), id="dynamodb_batch_get_item"),
    pytest.param("BatchWriteItem", "dynamodb:BatchWriteItem", (arn("dynamodb", "table/orders"),),
                 id="dynamodb_batch_write_item"),
    pytest.param("PutRecordBatch", "firehose:PutRecordBatch", (arn("firehose", "deliverystream/clickstream"),),
                 id="firehose_put_record_batch"),
    pytest.param("BatchGetImage", "ecr:BatchGetImage", (arn("ecr", "repository/orders-api"),),
                 id="ecr_batch_get_image"),
])
def test_batch_call_that_is_an_action_is_not_de_batched(name, action, resources):
    m = call("06", name)
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.permission(action).resources == resources
    assert m.mapping.provenance == "same-name"


# -- 7. versioned event names ------------------------------------------------------


@pytest.mark.parametrize(("name", "operation", "action", "provenance"), [
    ("ListFunctions20150331", "ListFunctions", "lambda:ListFunctions", "same-name"),
    ("GetFunctionConfiguration20150331v2", "GetFunctionConfiguration", "lambda:GetFunctionConfiguration", "same-name"),
    ("UpdateFunctionCode20150331v2", "UpdateFunctionCode", "lambda:UpdateFunctionCode", "same-name"),
    ("ListTags20170331", "ListTags", "lambda:ListTags", "same-name"),
    ("CreateEventSourceMapping20150331", "CreateEventSourceMapping", "lambda:CreateEventSourceMapping", "same-name"),
    ("GetLayerVersionByArn20181031", "GetLayerVersionByArn", "lambda:GetLayerVersion", "table"),
    ("UpdateDistribution2016_11_25", "UpdateDistribution", "cloudfront:UpdateDistribution", "same-name"),
    ("CreateInvalidation2019_03_26", "CreateInvalidation", "cloudfront:CreateInvalidation", "same-name"),
])
def test_version_suffix_is_removed_from_lambda_and_cloudfront_names(name, operation, action, provenance):
    m = call("07", name)
    assert m.mapping.operation == operation
    assert m.mapping.status == "used"
    assert m.main_actions == [action]  # UpdateFunctionCode from S3 also reads the object (a caller check)
    assert m.mapping.provenance == provenance


def test_create_environment_ec2_keeps_its_digits():
    m = call("07", "CreateEnvironmentEC2")
    assert m.mapping.operation == "CreateEnvironmentEC2"
    assert m.mapping.actions == ("cloud9:CreateEnvironmentEC2",)


def test_restore_db_cluster_from_s3_keeps_its_digits():
    m = call("07", "RestoreDBClusterFromS3")
    assert m.mapping.operation == "RestoreDBClusterFromS3"
    assert "rds:RestoreDBClusterFromS3" in m.mapping.actions


@pytest.mark.parametrize(("name", "action"), [
    ("GetFunctionConfiguration20150331v2", "lambda:GetFunctionConfiguration"),
    ("UpdateFunctionCode20150331v2", "lambda:UpdateFunctionCode"),
])
def test_versioned_lambda_call_is_scoped_to_its_function(name, action):
    assert call("07", name).permission(action).resources == (arn("lambda", "function:orders-api"),)


def test_get_layer_version_by_arn_is_scoped_to_the_layer_version():
    m = call("07", "GetLayerVersionByArn20181031")
    assert m.permission("lambda:GetLayerVersion").resources == (arn("lambda", "layer:powertools:7"),)


def test_list_tags_is_scoped_to_the_tagged_function():
    m = call("07", "ListTags20170331")
    assert m.permission("lambda:ListTags").resources == (arn("lambda", "function:orders-api"),)


# -- 8. data-plane names ------------------------------------------------------------

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.mark.parametrize(("name", "action", "resource", "provenance"), [
    pytest.param("Invoke", "lambda:InvokeFunction", arn("lambda", "function:orders-api"), "table",
                 id="invoke_needs_invoke_function_not_lambda_invoke"),
    pytest.param("InvokeWithResponseStream", "lambda:InvokeFunction", arn("lambda", "function:report-stream"),
                 "table", id="invoke_with_response_stream_needs_invoke_function"),
    pytest.param("InvokeAsync", "lambda:InvokeAsync", arn("lambda", "function:legacy-importer"), "same-name",
                 id="invoke_async_is_its_own_action"),
])
def test_lambda_invocation_needs_its_iam_action(name, action, resource, provenance):
    m = call("08", name)
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.permission(action).resources == (resource,)
    assert m.mapping.provenance == provenance


@pytest.mark.parametrize(("name", "action"), [
    pytest.param("Converse", "bedrock:InvokeModel", id="converse_needs_invoke_model"),
    pytest.param("ConverseStream", "bedrock:InvokeModelWithResponseStream",
                 id="converse_stream_needs_invoke_model_with_response_stream"),
])
def test_bedrock_converse_needs_invoke_model(name, action):
    m = call("08", name, modelId=MODEL)
    assert not load_catalog().has_action(f"bedrock:{name}")
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.mapping.provenance == "table"


def test_converse_is_scoped_to_its_foundation_model():
    m = call("08", "Converse", modelId=MODEL)
    assert m.permission("bedrock:InvokeModel").resources == (f"arn:aws:bedrock:{REGION}::foundation-model/{MODEL}",)


@pytest.mark.parametrize(("name", "model", "action", "resources"), [
    pytest.param("ConverseStream", "eu.anthropic.claude-3-7-sonnet-20250219-v1:0", "bedrock:InvokeModelWithResponseStream",
                 ("arn:aws:bedrock:eu-*::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0",
                  arn("bedrock", "inference-profile/eu.anthropic.claude-3-7-sonnet-20250219-v1:0")),
                 id="geographic_profile_every_eu_region"),
    pytest.param("Converse", arn("bedrock", "inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
                 "bedrock:InvokeModel",
                 ("arn:aws:bedrock:*::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
                  arn("bedrock", "inference-profile/global.anthropic.claude-sonnet-4-5-20250929-v1:0")),
                 id="global_profile_by_arn_every_region"),
])
def test_a_cross_region_inference_profile_also_needs_its_model_in_every_region_it_routes_to(name, model, action,
                                                                                             resources):
    # Bedrock User Guide: a policy naming an inference profile must also name the foundation model in each Region
    # associated with it. The record shows where this request went (additionalEventData.inferenceRegion: eu-west-3,
    # ap-northeast-1), the next may go elsewhere: granted the profile alone, the call fails with
    # "not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:eu-west-3::foundation-model/...".
    m = call("08", name, modelId=model)
    assert m.permission(action).resources == resources


@pytest.mark.parametrize("name", ["CreateSession", "GetObject", "PutObject"])
def test_directory_bucket_calls_need_create_session_on_the_bucket(name):
    # S3 Express One Zone: object calls are authorized by the session CreateSession issued ("you grant the
    # s3express:CreateSession permission to the directory bucket"), never by s3express:<operation>, which does
    # not exist. All are data events.
    m = call("08", name, bucketName="features--euw1-az1--x-s3")
    assert m.mapping.status == "used"
    assert [(p.action, p.resources) for p in m.mapping.permissions] == [
        ("s3express:CreateSession", (arn("s3express", "bucket/features--euw1-az1--x-s3"),))]
    assert observability("s3express:CreateSession") == "data"


# -- 9. one call, several typed actions ------------------------------------------------

ORDERS_TABLE, CUSTOMERS_TABLE = arn("dynamodb", "table/orders"), arn("dynamodb", "table/customers")


def test_transact_write_items_needs_one_action_per_item_type_on_its_table():
    m = call("09", "TransactWriteItems")
    assert m.mapping.provenance == "rule:dynamodb-transact-write"
    assert m.main_actions == ["dynamodb:ConditionCheckItem", "dynamodb:PutItem"]
    assert m.permission("dynamodb:PutItem").resources == (ORDERS_TABLE,)
    assert m.permission("dynamodb:ConditionCheckItem").resources == (CUSTOMERS_TABLE,)


def test_transact_get_items_needs_get_item():
    m = call("09", "TransactGetItems")
    assert m.mapping.actions == ("dynamodb:GetItem",)
    assert m.permission("dynamodb:GetItem").resources == (ORDERS_TABLE,)
    assert m.mapping.provenance == "rule:dynamodb-transact-get"


@pytest.mark.parametrize(("name", "statement_start", "actions"), [
    pytest.param("ExecuteStatement", "SELECT", ["dynamodb:PartiQLSelect"], id="select_needs_partiql_select"),
    pytest.param("ExecuteStatement", "UPDATE", ["dynamodb:PartiQLUpdate"], id="update_needs_partiql_update"),
    pytest.param("BatchExecuteStatement", None, ["dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate"],
                 id="batch_needs_one_action_per_verb"),
    pytest.param("ExecuteTransaction", None, ["dynamodb:PartiQLDelete", "dynamodb:PartiQLInsert"],
                 id="transaction_needs_one_action_per_verb"),
])
def test_partiql_statement_needs_the_action_of_its_verb(name, statement_start, actions):
    [m] = [m for m in case("09") if m.record["eventName"] == name
           and (statement_start is None or m.record["requestParameters"]["statement"].startswith(statement_start))]
    assert m.main_actions == actions
    assert m.mapping.provenance == "rule:dynamodb-partiql"
    for action in actions:
        assert m.permission(action).resources == (ORDERS_TABLE,)


def test_reencrypt_needs_reencrypt_to_on_the_destination_key():
    m = call("09", "ReEncrypt")
    assert m.mapping.actions == ("kms:ReEncryptFrom", "kms:ReEncryptTo")
    assert m.mapping.provenance == "rule:kms-reencrypt"
    assert m.permission("kms:ReEncryptTo").resources == (KEY_2,)


def test_reencrypt_needs_reencrypt_from_on_the_source_key_only():
    m = call("09", "ReEncrypt")
    assert m.permission("kms:ReEncryptFrom").resources == (KEY_1,)


def test_insights_metric_data_of_a_trail_needs_list_insights_data_on_it_and_lookup_events():
    m = call("09", "ListInsightsMetricData", trailName="org-management-trail")
    assert m.mapping.provenance == "rule:cloudtrail-insights-metric-data"
    assert m.main_actions == ["cloudtrail:ListInsightsData", "cloudtrail:LookupEvents"]
    assert m.permission("cloudtrail:ListInsightsData").resources == (arn("cloudtrail", "trail/org-management-trail"),)
    assert m.permission("cloudtrail:LookupEvents").resources == ("*",)


def test_insights_metric_data_without_a_trail_needs_lookup_events_only():
    [m] = [m for m in case("09") if m.record["eventName"] == "ListInsightsMetricData"
           and "trailName" not in m.record["requestParameters"]]
    assert m.mapping.actions == ("cloudtrail:LookupEvents",)


def test_operation_names_of_these_calls_are_never_emitted_as_actions():
    catalog = load_catalog()
    for name in ("dynamodb:TransactWriteItems", "dynamodb:TransactGetItems", "kms:ReEncrypt",
                 "cloudtrail:ListInsightsMetricData"):
        assert not catalog.has_action(name)
        assert all(name not in m.mapping.actions for m in case("09"))


# -- 10. iam:PassRole side permissions -----------------------------------------------


@pytest.mark.parametrize(("name", "params", "action", "roles", "service"), [
    pytest.param("CreateFunction20150331", {}, "lambda:CreateFunction", [role("service-role/invoice-renderer-role")],
                 "lambda.amazonaws.com", id="lambda_create_function"),
    pytest.param("UpdateFunctionConfiguration20150331v2", {"timeout": 60}, "lambda:UpdateFunctionConfiguration",
                 [role("service-role/orders-api-role-v2")], "lambda.amazonaws.com",
                 id="lambda_update_function_configuration_with_a_new_role"),
    pytest.param("AssociateIamInstanceProfile", {}, "ec2:AssociateIamInstanceProfile", [role("*")],
                 "ec2.amazonaws.com", id="ec2_instance_profile_whose_role_the_record_does_not_name"),
    pytest.param("RunTask", {}, "ecs:RunTask", [role("orders-migrate-task")], "ecs-tasks.amazonaws.com",
                 id="ecs_run_task_with_a_task_role_override"),
    pytest.param("RegisterTaskDefinition", {}, "ecs:RegisterTaskDefinition",
                 [role("ecsTaskExecutionRole"), role("orders-api-task")], "ecs-tasks.amazonaws.com",
                 id="ecs_register_task_definition_with_task_and_execution_roles"),
    pytest.param("CreateAutoScalingGroup", {}, "autoscaling:CreateAutoScalingGroup",
                 [role("aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling_web")],
                 "autoscaling.amazonaws.com", id="autoscaling_group_with_a_custom_service_linked_role"),
    pytest.param("CreateStack", {}, "cloudformation:CreateStack", [role("cfn-orders-service-deploy")],
                 "cloudformation.amazonaws.com", id="cloudformation_stack_with_a_service_role"),
    pytest.param("PutSubscriptionFilter", {"filterName": "to-log-archive"}, "logs:PutSubscriptionFilter",
                 [role("cwl-to-firehose")], "logs.amazonaws.com", id="logs_subscription_filter_to_firehose"),
])
def test_call_that_hands_a_role_to_a_service_needs_pass_role(name, params, action, roles, service):
    m = call("10", name, **params)
    assert m.mapping.status == "used"
    assert m.main_actions == [action]
    assert [a for a in m.side_actions if a == "iam:PassRole"] == ["iam:PassRole"]
    assert all(p.provenance == "side:caller-check"  # the function's code read from S3, for CreateFunction
               for p in m.mapping.permissions if p.side and p.action != "iam:PassRole")
    pass_role = m.permission("iam:PassRole")
    assert pass_role.side
    assert pass_role.provenance == "side:pass-role"
    assert list(pass_role.resources) == roles
    assert pass_role.conditions == (("iam:PassedToService", service),)


@pytest.mark.parametrize(("name", "params", "roles", "condition"), [
    pytest.param("CreateDBInstance", {"dBInstanceIdentifier": "orders-db"}, [role("rds-monitoring-role")], (),
                 id="rds_enhanced_monitoring_role_created_through_cloudformation"),
    pytest.param("StartBackupJob", {"backupVaultName": "orders-vault"},
                 [role("service-role/AWSBackupDefaultServiceRole")], (), id="backup_job_role"),
    pytest.param("CreateNodegroup", {"nodegroupName": "general"}, [role("eks-node-general")], (), id="eks_node_role"),
    pytest.param("CreateCluster", {"clusterIdentifier": "analytics"},
                 [role("redshift-copy-unload"), role("redshift-spectrum")], (), id="redshift_cluster_roles"),
    pytest.param("PutRule", {"eventBusName": "default"}, [role("eventbridge-cross-bus")],
                 (("iam:PassedToService", "events.amazonaws.com"),), id="eventbridge_rule_role"),
    pytest.param("DeleteStack", {"stackName": "orders-service-preview-42"}, [role("cfn-orders-service-deploy")],
                 (("iam:PassedToService", "cloudformation.amazonaws.com"),), id="cloudformation_delete_with_its_service_role"),
    pytest.param("AddRoleToInstanceProfile", {"instanceProfileName": "build-runner"},
                 [role("*/build-runner"), role("build-runner")], (), id="iam_role_put_in_an_instance_profile"),
    pytest.param("SetIdentityPoolRoles", {"identityPoolId": "eu-west-1:4f1c2b7e-9a3d-4c6e-8f0a-1b2c3d4e5f60"},
                 [role("orders-web-authenticated"), role("orders-web-guest")], (), id="cognito_identity_pool_roles"),
])
def test_a_role_named_in_any_role_field_of_a_write_call_needs_pass_role(name, params, roles, condition):
    # The IAM User Guide makes passing a role to a service need iam:PassRole whichever service it is: the table of
    # known calls (with the service they pass to) is completed by any role field that holds a role ARN. Without
    # it the deployer's next run fails, "not authorized to perform: iam:PassRole on resource: <the role>".
    m = call("10", name, **params)
    pass_role = m.permission("iam:PassRole")
    assert (pass_role.side, pass_role.provenance, list(pass_role.resources), pass_role.conditions) == (
        True, "side:pass-role", roles, condition)
    assert m.mapping.status == "used" and m.side_actions == ["iam:PassRole"]


@pytest.mark.parametrize(("name", "params"), [
    pytest.param("RemoveRoleFromDBCluster", {"featureName": "s3Export"}, id="a_role_released"),
    pytest.param("CreateAccessEntry", {"type": "STANDARD"}, id="a_role_given_access_as_a_principal"),
    pytest.param("AssumeRole", {"roleSessionName": "GitHubActions"}, id="a_role_assumed"),
])
def test_a_role_named_but_not_handed_to_a_service_needs_no_pass_role(name, params):
    assert "iam:PassRole" not in call("10", name, **params).mapping.actions


def test_subscription_filter_to_a_lambda_function_passes_no_role():
    m = call("10", "PutSubscriptionFilter", filterName="errors-to-alerter")
    assert m.mapping.actions == ("logs:PutSubscriptionFilter",)


def test_update_function_configuration_without_a_role_passes_none():
    m = call("10", "UpdateFunctionConfiguration20150331v2", memorySize=1024)
    assert m.mapping.actions == ("lambda:UpdateFunctionConfiguration",)


@pytest.mark.parametrize(("name", "vpc", "checks"), [
    pytest.param("CreateFunction20150331", True, True, id="create_function_in_a_vpc"),
    pytest.param("UpdateFunctionConfiguration20150331v2", True, True, id="update_to_a_vpc"),
    pytest.param("CreateFunction20150331", False, False, id="create_function_outside_a_vpc"),
])
def test_function_in_a_vpc_needs_the_callers_ec2_describe_permissions(name, vpc, checks):
    # Lambda checks the subnets and security groups with the deployer's permissions: without them
    # the deployment fails, and the trail need not show the checks as the deployer's calls.
    from .conftest import assumed_role, make_record

    params = {"functionName": "inventory-sync"}
    if vpc:
        params["vpcConfig"] = {"subnetIds": ["subnet-0a1b2c3d4e5f60718"], "securityGroupIds": ["sg-0123456789abcdef0"]}
    _, mapping = map_record(make_record(source="lambda.amazonaws.com", name=name, params=params, readOnly=False,
                                        identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    side = [(p.action, p.resources, p.provenance) for p in mapping.permissions if p.side]
    assert side == ([(a, ("*",), "side:caller-check") for a in
                     ("ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs")] if checks else [])


@pytest.mark.parametrize(("source", "name", "params", "main", "checks"), [
    pytest.param("route53.amazonaws.com", "CreateHostedZone", {"name": "internal.acme.example", "callerReference": "r-1",
                                                               "vPC": {"vPCRegion": REGION, "vPCId": "vpc-0a1b2c3d"}},
                 ("route53:CreateHostedZone", ("*",)), ["ec2:DescribeVpcs"], id="route53_hosted_zone"),
    pytest.param("elasticfilesystem.amazonaws.com", "CreateMountTarget",
                 {"fileSystemId": "fs-0a1b2c3d4e5f60718", "subnetId": "subnet-0a1b2c3d4e5f60718"},
                 ("elasticfilesystem:CreateMountTarget", (arn("elasticfilesystem", "file-system/fs-0a1b2c3d4e5f60718"),)),
                 ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"], id="efs_mount_target"),
    pytest.param("kms.amazonaws.com", "ReplicateKey",
                 {"keyId": "mrk-1234abcd12ab34cd56ef1234567890ab", "replicaRegion": "us-west-2"},
                 ("kms:ReplicateKey", (arn("kms", "key/mrk-1234abcd12ab34cd56ef1234567890ab"),)), ["kms:CreateKey"],
                 id="kms_replica_created_with_the_callers_create_key"),
])
def test_services_that_check_the_callers_permissions(source, name, params, main, checks):
    # The API references (botocore's models) state these permissions as required of the caller.
    from .conftest import assumed_role, make_record

    _, mapping = map_record(make_record(source=source, name=name, params=params, readOnly=False,
                                        identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    assert [(p.action, p.resources) for p in mapping.permissions if not p.side] == [main]
    assert [(p.action, p.resources, p.provenance) for p in mapping.permissions if p.side] == [
        (a, ("*",), "side:caller-check") for a in checks]


@pytest.mark.parametrize("name", ["CreateFunction20150331", "UpdateFunctionConfiguration20150331v2"])
def test_a_function_given_layers_needs_the_callers_permission_to_read_each_layer_version(name):
    # Lambda reads the layers with the deployer's permissions: without lambda:GetLayerVersion on each
    # version the call fails ("not authorized to perform: lambda:GetLayerVersion on resource: ...:layer:NAME:N").
    from .conftest import assumed_role, make_record

    layers = [f"arn:aws:lambda:{REGION}:580247275435:layer:LambdaInsightsExtension:55", arn("lambda", "layer:deps:3")]
    _, mapping = map_record(make_record(
        source="lambda.amazonaws.com", name=name, params={"functionName": "inventory-sync", "layers": layers},
        readOnly=False, identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    assert [(p.action, p.resources, p.provenance) for p in mapping.permissions if p.side] == [
        ("lambda:GetLayerVersion", tuple(sorted(layers)), "side:caller-check")]
    assert [p.resources for p in mapping.permissions if not p.side] == [(arn("lambda", "function:inventory-sync"),)]


@pytest.mark.parametrize(("name", "params", "read"), [
    pytest.param("UpdateFunctionCode20150331v2", {"s3Bucket": "artifacts", "s3Key": "orders/app.zip"},
                 ("s3:GetObject", "arn:aws:s3:::artifacts/orders/app.zip"), id="update_code"),
    pytest.param("UpdateFunctionCode20150331v2", {"s3Bucket": "artifacts", "s3Key": "orders/app.zip",
                                                  "s3ObjectVersion": "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"},
                 ("s3:GetObjectVersion", "arn:aws:s3:::artifacts/orders/app.zip"), id="update_code_of_a_version"),
    pytest.param("CreateFunction20150331", {"code": {"s3Bucket": "artifacts", "s3Key": "orders/app.zip"}},
                 ("s3:GetObject", "arn:aws:s3:::artifacts/orders/app.zip"), id="create_function"),
    pytest.param("PublishLayerVersion20181031", {"layerName": "deps", "content": {
        "s3Bucket": "artifacts", "s3Key": "layers/deps.zip"}},
                 ("s3:GetObject", "arn:aws:s3:::artifacts/layers/deps.zip"), id="publish_layer_version"),
    pytest.param("CreateFunction20150331", {"code": {}, "packageType": "Zip"}, None, id="code_given_inline"),
    pytest.param("UpdateFunctionCode20150331v2", {"s3Bucket": "artifacts"}, None, id="no_key_no_grant_on_star"),
])
def test_code_from_s3_needs_the_callers_permission_to_read_the_object(name, params, read):
    # Lambda reads the package with the deployer's permissions: "Your access has been denied by S3, please
    # make sure your request credentials have permission to GetObject for BUCKET/KEY".
    from .conftest import assumed_role, make_record

    _, mapping = map_record(make_record(
        source="lambda.amazonaws.com", name=name, params={"functionName": "orders", **params}, readOnly=False,
        identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    side = [(p.action, p.resources, p.provenance) for p in mapping.permissions if p.side]
    assert side == ([(read[0], (read[1],), "side:caller-check")] if read else [])


@pytest.mark.parametrize(("name", "params", "repository"), [
    pytest.param("CreateFunction20150331", {"packageType": "Image", "code": {
        "imageUri": "222233334444.dkr.ecr.eu-west-1.amazonaws.com/platform/orders:1.4.2"}},
                 "arn:aws:ecr:eu-west-1:222233334444:repository/platform/orders", id="create_from_another_account"),
    pytest.param("UpdateFunctionCode20150331v2", {"imageUri": "222233334444.dkr.ecr.eu-west-1.amazonaws.com/orders@sha256:"
                                                  "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
                 "arn:aws:ecr:eu-west-1:222233334444:repository/orders", id="update_by_digest"),
    pytest.param("UpdateFunctionCode20150331v2", {"imageUri": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/orders:1.4.2"},
                 None, id="same_account_the_repository_policy_lets_lambda_read"),
])
def test_an_image_of_another_accounts_repository_needs_the_callers_permission_to_read_it(name, params, repository):
    from .conftest import assumed_role, make_record

    _, mapping = map_record(make_record(
        source="lambda.amazonaws.com", name=name, params={"functionName": "orders", **params}, readOnly=False,
        identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    side = [(p.action, p.resources, p.provenance) for p in mapping.permissions if p.side and p.action.startswith("ecr:")]
    assert side == ([(a, (repository,), "side:caller-check") for a in ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")]
                    if repository else [])


@pytest.mark.parametrize(("url", "template"), [
    pytest.param("https://s3.eu-west-1.amazonaws.com/artifacts/orders/packaged.template",
                 "arn:aws:s3:::artifacts/orders/packaged.template", id="path_style"),
    pytest.param("https://artifacts.s3.eu-west-1.amazonaws.com/orders/my%20stack.yaml",
                 "arn:aws:s3:::artifacts/orders/my stack.yaml", id="virtual_hosted_style"),
    pytest.param("https://artifacts.s3.amazonaws.com/orders/t.yaml?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                 "&X-Amz-Signature=0123abcd", None, id="presigned_carries_its_own_permission"),
])
def test_a_template_in_s3_needs_the_callers_permission_to_read_it(url, template):
    # "TemplateURL must reference a valid S3 object to which you have access": CloudFormation reads it as the caller.
    from .conftest import assumed_role, make_record

    _, mapping = map_record(make_record(
        source="cloudformation.amazonaws.com", name="CreateChangeSet", readOnly=False,
        params={"stackName": "orders-service", "changeSetName": "deploy-1", "templateURL": url},
        identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    side = [(p.action, p.resources, p.provenance) for p in mapping.permissions if p.side]
    assert side == ([("s3:GetObject", (template,), "side:caller-check")] if template else [])


@pytest.mark.parametrize(("change_set", "region", "transform"), [
    pytest.param("samcli-deploy1793700780", REGION,
                 "arn:aws:cloudformation:eu-west-1:aws:transform/Serverless-2016-10-31", id="sam_deploy"),
    pytest.param("samcli-deploy1793700780", "cn-north-1",
                 "arn:aws-cn:cloudformation:cn-north-1:aws:transform/Serverless-2016-10-31", id="sam_deploy_in_china"),
    pytest.param("awscli-cloudformation-package-deploy-1793700780", REGION, None, id="aws_cloudformation_deploy"),
])
def test_a_sam_deploy_change_set_also_needs_the_serverless_transform(change_set, region, transform):
    # CloudFormation authorizes a change set with a transform as CreateChangeSet on the transform too:
    # without it `sam deploy` fails ("not authorized to perform: cloudformation:CreateChangeSet on resource:
    # arn:aws:cloudformation:REGION:aws:transform/Serverless-2016-10-31"). The trail shows no template,
    # only the change set's name, which SAM CLI makes samcli-deploy<time>.
    from .conftest import assumed_role, make_record

    _, mapping = map_record(make_record(
        source="cloudformation.amazonaws.com", name="CreateChangeSet", region=region, readOnly=False,
        params={"stackName": "orders-service", "changeSetName": change_set, "changeSetType": "UPDATE"},
        identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    side = [(p.action, p.resources, p.provenance) for p in mapping.permissions if p.side]
    assert side == ([("cloudformation:CreateChangeSet", (transform,), "side:transform")] if transform else [])
    assert [p.resources for p in mapping.permissions if not p.side] == [
        (f"arn:{'aws-cn' if region.startswith('cn-') else 'aws'}:cloudformation:{region}:{ACCOUNT}:stack/orders-service/*",)]


def test_pass_role_has_no_cloudtrail_event_of_its_own():
    assert observability("iam:PassRole") == "never"
    m = call("10", "CreateStack")
    assert {p["action"]: p["observability"] for p in mapping_dict(m.mapping)["permissions"]}["iam:PassRole"] == "never"


# -- 11. RunInstances fans out to many resources ---------------------------------------


def test_run_instances_covers_what_it_creates_and_what_it_uses():
    m = call("11", "RunInstances")
    resources = set(m.permission("ec2:RunInstances").resources)
    assert {
        arn("ec2", "instance/*"), arn("ec2", "volume/*"), arn("ec2", "network-interface/*"),
        arn("ec2", "subnet/subnet-0a1b2c3d4e5f60718"), arn("ec2", "security-group/sg-0f1e2d3c4b5a69788"),
        arn("ec2", "key-pair/ops-key"),
    } <= resources


def test_run_instances_covers_the_image_it_launches():
    m = call("11", "RunInstances")
    assert f"arn:aws:ec2:{REGION}::image/ami-0abcdef1234567890" in m.permission("ec2:RunInstances").resources


@pytest.mark.parametrize(("name", "params", "expected"), [
    pytest.param("CreateSecurityGroup", {"groupName": "web", "groupDescription": "web", "vpcId": "vpc-0a1b2c3d"},
                 (arn("ec2", "security-group/*"), arn("ec2", "vpc/vpc-0a1b2c3d")), id="create_security_group"),
    pytest.param("CreateSnapshot", {"volumeId": "vol-0123456789abcdef0"},
                 (arn("ec2", "volume/vol-0123456789abcdef0"), f"arn:aws:ec2:{REGION}::snapshot/*"),
                 id="create_snapshot"),
])
def test_ec2_call_is_also_granted_the_resource_it_creates(name, params, expected):
    # EC2 authorizes the request against every required resource type, the new one included
    # (its id does not exist yet): granting only the VPC or the volume would deny the call.
    from .conftest import assumed_role, make_record

    _, mapping = map_record(make_record(source="ec2.amazonaws.com", name=name, params=params, readOnly=False,
                                        identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    assert [(p.action, p.resources) for p in mapping.permissions if not p.side] == [(f"ec2:{name}", expected)]


def test_a_required_type_the_call_does_not_name_is_left_out_where_the_marks_are_alternatives():
    # bedrock:InvokeModel marks a dozen kinds of model as required; Converse named one of them.
    m = call("08", "Converse", modelId="anthropic.claude-3-haiku-20240307-v1:0")
    assert m.permission("bedrock:InvokeModel").resources == (
        f"arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",)


def test_tags_at_launch_need_create_tags_with_create_action():
    m = call("11", "RunInstances")
    tags = m.permission("ec2:CreateTags")
    assert tags.side
    assert tags.provenance == "side:tag-on-create"
    assert arn("ec2", "instance/*") in tags.resources
    assert tags.conditions == (("ec2:CreateAction", "RunInstances"),)


def test_instance_profile_at_launch_needs_pass_role_to_ec2():
    m = call("11", "RunInstances")
    pass_role = m.permission("iam:PassRole")
    assert pass_role.resources == (role("*"),)
    assert pass_role.conditions == (("iam:PassedToService", "ec2.amazonaws.com"),)


def test_encrypted_volume_at_launch_needs_kms_via_ec2():
    m = call("11", "RunInstances")
    for action in ("kms:CreateGrant", "kms:GenerateDataKeyWithoutPlaintext", "kms:Decrypt"):
        p = m.permission(action)
        assert p.side
        assert p.resources == (KEY_1,)
        assert p.conditions == (("kms:ViaService", f"ec2.{REGION}.amazonaws.com"),)


# -- 12. forward access sessions: KMS calls a service makes for the caller ----------------


@pytest.mark.parametrize(("service", "action", "resource", "principal"), [
    pytest.param("secretsmanager", "kms:Decrypt", KEY_1, "service-role/config-loader-role",
                 id="secrets_manager_get_secret_value_decrypts"),
    pytest.param("ssm", "kms:Decrypt", KEY_1, "service-role/config-loader-role",
                 id="ssm_secure_string_parameter_decrypts"),
    pytest.param("sqs", "kms:Decrypt", KEY_2, "service-role/notifier-role", id="sqs_receive_message_decrypts"),
    pytest.param("sns", "kms:GenerateDataKey", KEY_2, "service-role/notifier-role",
                 id="sns_publish_generates_a_data_key"),
    pytest.param("s3", "kms:Decrypt", KEY_1, "service-role/reports-reader-role", id="s3_sse_kms_get_object_decrypts"),
    pytest.param("dynamodb", "kms:CreateGrant", KEY_2, "ci/github-deployer",
                 id="dynamodb_create_table_with_customer_key_creates_a_grant"),
])
def test_kms_call_a_service_made_for_the_caller_needs_kms_via_that_service(service, action, resource, principal):
    [m] = [m for m in case("12") if m.record["eventSource"] == "kms.amazonaws.com"
           and m.event.invoked_by == f"{service}.amazonaws.com"]
    assert m.event.principal == role(principal)  # the caller's permission, not the service's
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.mapping.provenance == "same-name"
    p = m.permission(action)
    assert p.resources == (resource,)
    assert p.conditions == (("kms:ViaService", f"{service}.{REGION}.amazonaws.com"),)


@pytest.mark.parametrize(("name", "action", "obj"), [
    pytest.param("DetectDocumentText", "textract:DetectDocumentText", "acme-invoice-inbox/scans/2026/11/05/INV-20931.pdf",
                 id="textract_reads_the_document"),
    pytest.param("DetectLabels", "rekognition:DetectLabels", "acme-product-images/uploads/sku-4471/front.jpg",
                 id="rekognition_reads_the_image"),
])
def test_an_analysis_of_an_s3_object_needs_the_callers_s3_get_object(name, action, obj):
    # Textract and Rekognition read the object with the caller's permissions ("the user must have permission to
    # access the S3 object"): a Lambda function granted the analysis alone fails on every document. The read is an
    # S3 data event, which few trails log, so the request's object is the evidence.
    m = call("12", name)
    assert m.main_actions == [action] and m.side_actions == ["s3:GetObject"]
    p = m.permission("s3:GetObject")
    assert (p.resources, p.provenance) == ((f"arn:aws:s3:::{obj}",), "side:caller-check")


def test_an_analysis_of_bytes_in_the_request_reads_nothing_from_s3():
    assert call("12", "DetectModerationLabels").mapping.actions == ("rekognition:DetectModerationLabels",)


@pytest.mark.parametrize(("name", "action", "resource"), [
    ("GetSecretValue", "secretsmanager:GetSecretValue", arn("secretsmanager", "secret:prod/db/credentials-??????")),
    ("GetParameter", "ssm:GetParameter", arn("ssm", "parameter/config/app/feature-flags")),
    ("ReceiveMessage", "sqs:ReceiveMessage", QUEUE),
    ("Publish", "sns:Publish", TOPIC),
    ("GetObject", "s3:GetObject", f"{REPORTS}/daily/2026-11-01.csv"),
])
def test_call_that_triggers_a_forward_access_session_keeps_its_own_action(name, action, resource):
    m = call("12", name)
    assert m.main_actions == [action]
    assert m.permission(action).resources == (resource,)


def test_put_secure_string_parameter_needs_encrypt_via_ssm():
    m = call("12", "PutParameter")
    encrypt = m.permission("kms:Encrypt")
    assert encrypt.side
    assert encrypt.resources == (KEY_1,)
    assert encrypt.conditions == (("kms:ViaService", f"ssm.{REGION}.amazonaws.com"),)


def test_create_table_with_customer_key_needs_describe_key_and_create_grant_via_dynamodb():
    m = call("12", "CreateTable")
    assert m.main_actions == ["dynamodb:CreateTable"]
    for action in ("kms:DescribeKey", "kms:CreateGrant"):
        p = m.permission(action)
        assert p.side
        assert p.resources == (KEY_2,)
        assert p.conditions == (("kms:ViaService", f"dynamodb.{REGION}.amazonaws.com"),)


# -- 13. permissionless calls ---------------------------------------------------------


@pytest.mark.parametrize(("source", "name"), [
    pytest.param("sts", "GetCallerIdentity", id="sts_get_caller_identity"),
    pytest.param("sts", "GetSessionToken", id="sts_get_session_token"),
])
def test_permissionless_call_needs_no_action(source, name):
    found = [m for m in case("13") if m.record["eventName"] == name]
    assert found
    for m in found:
        assert m.record["eventSource"] == f"{source}.amazonaws.com"
        assert m.mapping.status == "permissionless"
        assert m.mapping.permissions == ()
        assert m.mapping.provenance == "table"
        assert m.mapping.reason


def test_dynamodb_describe_endpoints_is_not_permissionless_through_a_vpc_endpoint():
    # MAPPING-CASES row 13 (after iam-dataset) lists it as permissionless; the DynamoDB Developer Guide says a
    # call through a VPC endpoint must be allowed dynamodb:DescribeEndpoints, and the reviewed table follows it.
    m = call("13", "DescribeEndpoints")
    assert m.mapping.status == "used"
    assert m.mapping.actions == ("dynamodb:DescribeEndpoints",)
    assert m.mapping.provenance == "table"


@pytest.mark.parametrize("name", ["ConsoleLogin", "CheckMfa", "SwitchRole"])
def test_console_sign_in_event_is_no_action_at_all(name):
    m = call("13", name)
    assert m.record["eventType"] == "AwsConsoleSignIn"
    assert m.mapping.status == "not-an-action"
    assert m.mapping.permissions == ()
    assert m.mapping.provenance == "table"


def test_sign_in_events_are_not_iam_actions():
    catalog = load_catalog()
    assert not any(catalog.has_action(f"signin:{n}") for n in ("ConsoleLogin", "CheckMfa", "SwitchRole"))


# -- 14. eventSource ≠ IAM prefix -------------------------------------------------------


@pytest.mark.parametrize(("source", "action"), [
    ("monitoring.amazonaws.com", "cloudwatch:DescribeAlarms"),
    ("tagging.amazonaws.com", "tag:GetResources"),
    ("appstream2.amazonaws.com", "appstream:DescribeFleets"),
    ("models.lex.amazonaws.com", "lex:GetBots"),
    ("runtime.lex.amazonaws.com", "lex:PostText"),
    ("mturk-requester.amazonaws.com", "mechanicalturk:ListHITs"),
    ("streams.dynamodb.amazonaws.com", "dynamodb:DescribeStream"),
    ("amazonmq.amazonaws.com", "mq:DescribeBroker"),
    ("pinpoint.amazonaws.com", "mobiletargeting:GetApps"),
    ("rdsdata.amazonaws.com", "rds-data:ExecuteStatement"),
    ("cloudcontrolapi.amazonaws.com", "cloudformation:GetResource"),
    ("application-insights.amazonaws.com", "applicationinsights:ListApplications"),
    ("qconnect.amazonaws.com", "wisdom:ListAssistants"),
    ("migrationhub.amazonaws.com", "mgh:ListMigrationTasks"),
    ("es.amazonaws.com", "es:DescribeDomain"),
    ("opensearchservice.amazonaws.com", "es:ListDomainNames"),
    ("api.pricing.amazonaws.com", "pricing:GetProducts"),
    ("pricelist.amazonaws.com", "pricing:DescribeServices"),
    ("email.amazonaws.com", "ses:ListIdentities"),
    ("runtime.sagemaker.amazonaws.com", "sagemaker:InvokeEndpoint"),
    ("data.iot.amazonaws.com", "iot:GetThingShadow"),
])
def test_event_source_maps_to_its_iam_prefix(source, action):
    [m] = [m for m in case("14") if m.record["eventSource"] == source]
    assert m.mapping.prefix == action.split(":")[0]
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.mapping.provenance == "same-name"


def test_endpoint_labels_are_never_used_as_prefixes():
    prefixes = {a.split(":")[0] for m in case("14") for a in m.mapping.actions}
    assert not prefixes & {"runtime", "api", "data", "models", "streams", "monitoring", "email", "pricelist"}


@pytest.mark.parametrize(("source", "resource"), [
    ("streams.dynamodb.amazonaws.com", arn("dynamodb", "table/orders/stream/2026-11-01T00:00:00.000")),
    ("rdsdata.amazonaws.com", arn("rds", "cluster:orders-db")),
    ("runtime.sagemaker.amazonaws.com", arn("sagemaker", "endpoint/churn-model")),
])
def test_aliased_event_source_call_is_scoped_to_its_resource(source, resource):
    [m] = [m for m in case("14") if m.record["eventSource"] == source]
    assert m.permission(m.mapping.actions[0]).resources == (resource,)


# -- 15. API Gateway ------------------------------------------------------------------

APIGW = f"arn:aws:apigateway:{REGION}::"


def test_rest_api_listing_needs_http_get_on_the_restapis_path():
    m = call("15", "GetRestApis")
    assert not load_catalog().has_action("apigateway:GetRestApis")
    assert m.mapping.actions == ("apigateway:GET",)
    assert m.permission("apigateway:GET").resources == (f"{APIGW}/restapis",)
    assert m.mapping.provenance == "rule:apigateway-http-verb"


def test_update_stage_needs_http_patch_on_the_stage_path():
    m = call("15", "UpdateStage")
    assert m.mapping.actions == ("apigateway:PATCH",)
    assert m.permission("apigateway:PATCH").resources == (f"{APIGW}/restapis/a1b2c3d4e5/stages/prod",)


def test_create_deployment_needs_http_post_on_the_deployments_path():
    m = call("15", "CreateDeployment", restApiId="a1b2c3d4e5")
    assert m.mapping.actions == ("apigateway:POST",)
    assert m.permission("apigateway:POST").resources == (f"{APIGW}/restapis/a1b2c3d4e5/deployments",)


@pytest.mark.parametrize(("name", "path"), [
    pytest.param("CreateRoute", "/apis/h7j8k9l0m1/routes", id="create_route"),
    pytest.param("CreateDeployment", "/apis/h7j8k9l0m1/deployments", id="create_deployment_of_an_http_api"),
])
def test_http_api_call_needs_http_verb_on_the_apis_path(name, path):
    m = call("15", name, apiId="h7j8k9l0m1")
    assert m.mapping.actions == ("apigateway:POST",)
    assert m.permission("apigateway:POST").resources == (f"{APIGW}{path}",)


@pytest.mark.parametrize(("resource", "method"), [
    pytest.param(f"{APIGW}/restapis/a1b2c3d4e5/stages/prod", "PUT", id="rest_api_stage_tagged_with_put"),
    pytest.param(f"{APIGW}/apis/h7j8k9l0m1", "POST", id="http_api_tagged_with_post"),
])
def test_tagging_needs_the_verb_of_the_api_generation_that_owns_the_resource(resource, method):
    # One eventName for both APIs: the REST API's TagResource is PUT /tags/{arn}, the HTTP and WebSocket
    # APIs' is POST /v2/tags/{arn} (botocore's models of apigateway and apigatewayv2).
    from .conftest import assumed_role, make_record

    _, mapping = map_record(make_record(source="apigateway.amazonaws.com", name="TagResource",
                                        params={"resourceArn": resource, "tags": {"team": "orders"}}, readOnly=False,
                                        identity=assumed_role(role("ci-deployer")), recipientAccountId=ACCOUNT))
    assert [(p.action, p.resources) for p in mapping.permissions] == [
        (f"apigateway:{method}", (f"{APIGW}/tags/{resource}",))]


def test_websocket_post_to_connection_needs_manage_connections():
    m = call("15", "PostToConnection")
    assert m.mapping.actions == ("execute-api:ManageConnections",)
    assert m.mapping.provenance == "rule:execute-api"


# -- 16. failed calls -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "error", "action"), [
    ("GetObject", "AccessDenied", "s3:GetObject"),
    ("GetParameter", "AccessDeniedException", "ssm:GetParameter"),
    ("RunInstances", "Client.UnauthorizedOperation", "ec2:RunInstances"),
    ("CreateSnapshot", "UnauthorizedOperation", "ec2:CreateSnapshot"),
    ("CreateRole", "AccessDenied", "iam:CreateRole"),
])
def test_access_denied_is_wanted_never_used(name, error, action):
    m = call("16", name)
    assert m.record["errorCode"] == error
    assert m.event.error_class == DENIED
    assert m.mapping.status == "denied"
    assert m.mapping.actions == (action,)  # what was wanted, for the "wanted but denied" report


@pytest.mark.parametrize(("name", "error", "action"), [
    pytest.param("DescribeStacks", "Throttling", "cloudformation:DescribeStacks",
                 id="throttled_call_was_authorized_and_counts_as_used"),
    pytest.param("GetFunction20150331v2", "ResourceNotFoundException", "lambda:GetFunction",
                 id="call_on_a_missing_resource_was_authorized_and_counts_as_used"),
    pytest.param("Query", "ValidationException", "dynamodb:Query",
                 id="invalid_request_was_authorized_and_counts_as_used"),
    pytest.param("UpdateItem", "ConditionalCheckFailedException", "dynamodb:UpdateItem",
                 id="failed_condition_was_authorized_and_counts_as_used"),
])
def test_other_error_means_the_call_was_authorized(name, error, action):
    m = call("16", name)
    assert m.record["errorCode"] == error
    assert m.event.error_class == "error"
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)


def test_denied_call_is_scoped_like_a_successful_one():
    m = call("16", "CreateRole")
    assert m.permission("iam:CreateRole").resources == (role("orders-reporting"),)


# -- 17. service-initiated and service-linked activity -------------------------------------


def test_service_assuming_an_execution_role_is_no_principals_usage():
    m = call("17", "AssumeRole")
    assert m.event.service_initiated
    assert m.event.principal == "service:lambda.amazonaws.com"
    assert m.mapping.status == "service"
    assert m.mapping.permissions == ()


def test_aws_service_event_is_no_principals_usage():
    m = call("17", "RotateKey")
    assert m.record["eventType"] == "AwsServiceEvent"
    assert m.mapping.status == "service"
    assert m.mapping.permissions == ()


def test_service_linked_role_call_is_attributed_to_the_service_linked_role():
    m = call("17", "RunInstances")
    assert m.event.principal == role("aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling")
    assert m.event.invoked_by == "autoscaling.amazonaws.com"
    assert m.mapping.actions == ("ec2:RunInstances",)


def test_cloudformation_acting_with_the_callers_credentials_counts_for_the_caller():
    m = call("17", "CreateFunction20150331")
    assert m.event.principal == role("ci/github-deployer")
    assert not m.event.service_initiated
    assert m.event.invoked_by == "cloudformation.amazonaws.com"
    assert m.mapping.status == "used"
    assert m.main_actions == ["lambda:CreateFunction"]
    assert m.permission("iam:PassRole").resources == (role("orders-service-NotifierRole-1A2B3C4D5E6F"),)
    assert all(p.conditions == () for p in m.mapping.permissions if not p.side)


# -- 18. data events: unobservable, not unused --------------------------------------------


@pytest.mark.parametrize(("name", "action"), [
    ("GetObject", "s3:GetObject"),
    ("Invoke", "lambda:InvokeFunction"),
    ("Publish", "sns:Publish"),
    ("GetItem", "dynamodb:GetItem"),
])
def test_data_event_action_is_only_seen_by_trails_logging_data_events(name, action):
    m = call("18", name)
    assert m.record["eventCategory"] == "Data" and m.record["managementEvent"] is False
    assert m.mapping.actions == (action,)
    assert observability(action) == "data"
    assert [p["observability"] for p in mapping_dict(m.mapping)["permissions"]] == ["data"]


def test_management_event_action_is_seen_by_every_trail():
    m = call("18", "DescribeTable")
    assert m.mapping.actions == ("dynamodb:DescribeTable",)
    assert observability("dynamodb:DescribeTable") == "management"


# -- 19. agent APIs -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "action", "seen_by"), [
    ("UpdateInstanceInformation", "ssm:UpdateInstanceInformation", "management"),
    ("CreateControlChannel", "ssmmessages:CreateControlChannel", "data"),
    ("GetMessages", "ec2messages:GetMessages", "data"),
])
def test_ssm_agent_call_is_an_iam_action(name, action, seen_by):
    m = call("19", name)
    assert m.mapping.status == "used"
    assert m.mapping.actions == (action,)
    assert m.mapping.provenance == "same-name"
    assert observability(action) == seen_by


# -- 20. global services land in us-east-1 ------------------------------------------------


def test_global_service_events_are_recorded_in_us_east_1():
    assert {m.event.region for m in case("20")} == {"us-east-1"}


def test_iam_role_arn_has_no_region():
    # GetRole names the role, not its path: the pair is that role whatever its path (see case 23)
    m = call("20", "GetRole")
    assert m.permission("iam:GetRole").resources == (role("*/orders-api-role"), role("orders-api-role"))


def test_assume_role_through_the_global_endpoint_needs_assume_role_on_the_role():
    m = call("20", "AssumeRole")
    assert m.event.principal == f"arn:aws:iam::{ACCOUNT}:user/alice"
    assert m.mapping.actions == ("sts:AssumeRole",)
    assert m.permission("sts:AssumeRole").resources == (role("ops-admin"),)


def test_route53_change_is_scoped_to_the_hosted_zone():
    m = call("20", "ChangeResourceRecordSets")
    assert m.permission("route53:ChangeResourceRecordSets").resources == (
        "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ",)


def test_cloudfront_call_is_scoped_to_the_distribution():
    m = call("20", "GetDistribution2020_05_31")
    assert m.permission("cloudfront:GetDistribution").resources == (
        f"arn:aws:cloudfront::{ACCOUNT}:distribution/EDFDVBD6EXAMPLE",)


# -- 22. API names that are not privileges ---------------------------------------------------


@pytest.mark.parametrize(("name", "action"), [
    ("GetBucketLifecycle", "s3:GetLifecycleConfiguration"),
    ("HeadBucket", "s3:ListBucket"),
    ("ListObjectsV2", "s3:ListBucket"),
    ("HeadObject", "s3:GetObject"),
])
def test_api_name_that_is_no_privilege_maps_to_the_real_action(name, action):
    m = call("22", name)
    assert not load_catalog().has_action(f"s3:{name}")
    assert m.mapping.actions == (action,)


# -- 23. partitions and ARN formats --------------------------------------------------------


def test_govcloud_resources_use_the_aws_us_gov_partition():
    table = call("23", "GetItem").permission("dynamodb:GetItem")
    assert table.resources == (f"arn:aws-us-gov:dynamodb:us-gov-west-1:{ACCOUNT}:table/orders",)
    function = call("23", "GetFunction20150331v2").permission("lambda:GetFunction")
    assert function.resources == (f"arn:aws-us-gov:lambda:us-gov-west-1:{ACCOUNT}:function:orders-api",)


def test_china_resources_use_the_aws_cn_partition():
    obj = call("23", "GetObject").permission("s3:GetObject")
    assert obj.resources == ("arn:aws-cn:s3:::acme-cn-reports/daily/2026-11-01.csv",)
    iam_role = call("23", "GetRole").permission("iam:GetRole")
    assert iam_role.resources == (f"arn:aws-cn:iam::{ACCOUNT}:role/*/reports-reader-role",
                                  f"arn:aws-cn:iam::{ACCOUNT}:role/reports-reader-role")


def test_a_role_named_without_its_path_is_that_role_under_any_path_until_the_trail_shows_its_arn():
    # GetRole names reports-reader-role, whose ARN holds the path /service-role/: IAM authorizes the call
    # against that ARN, so role/reports-reader-role alone would deny it. The pair (role/NAME, role/*/NAME)
    # is exactly that role whatever its path (names are unique per account); where the usage shows the
    # role's ARN (here, as the principal of other calls), generation narrows the pair to it.
    from lpgen.generate import generate
    from lpgen.mapping import Call, iam_paths, map_call, resolve_iam_paths
    from lpgen.store import UsageRow

    getter = f"arn:aws-cn:iam::{ACCOUNT}:role/ops/inspector"
    reader = f"arn:aws-cn:iam::{ACCOUNT}:role/service-role/reports-reader-role"

    def row(principal, source, name, fields):
        return UsageRow(principal=principal, source=source, name=name, error_class="ok", region="cn-north-1",
                        invoked_by=None, fields=fields, count=1, first_seen="2026-11-01T00:00:00Z",
                        last_seen="2026-11-01T00:00:00Z", category="Management", error_codes=(), samples=())

    get_role = row(getter, "iam.amazonaws.com", "GetRole", (("roleName", "reports-reader-role"),))
    reads = row(reader, "s3.amazonaws.com", "GetObject", (("bucketName", "b"), ("key", "k")))
    mapping = map_call(Call.of_row(get_role))
    assert resolve_iam_paths(mapping, iam_paths([get_role])) == mapping  # the trail shows no path: the pair stays
    resolved = resolve_iam_paths(mapping, iam_paths([get_role, reads]))
    assert resolved.permissions[0].resources == (reader,)
    statement, = generate([get_role, reads])[getter].document()["Statement"]
    assert statement["Resource"] == reader


def test_a_role_created_with_a_path_is_granted_under_it():
    from lpgen.mapping import Call, map_call

    created = map_call(Call(source="iam.amazonaws.com", name="CreateRole", region="us-east-1", account=ACCOUNT,
                            fields=(("path", "/service-role/"), ("roleName", "orders-replay-role"))))
    plain = map_call(Call(source="iam.amazonaws.com", name="CreateRole", region="us-east-1", account=ACCOUNT,
                          fields=(("roleName", "orders-replay-role"),)))
    assert created.permissions[0].resources == (role("service-role/orders-replay-role"),)
    assert plain.permissions[0].resources == (role("orders-replay-role"),)


def test_assumed_role_session_is_attributed_to_its_role_with_its_path():
    assert call("23", "GetItem").event.principal == f"arn:aws-us-gov:iam::{ACCOUNT}:role/app/orders/orders-api-role"
    assert call("23", "GetObject").event.principal == f"arn:aws-cn:iam::{ACCOUNT}:role/service-role/reports-reader-role"
    assert call("23", "GetQueueUrl").event.principal == role("teams/data/etl-runner")


# -- 24. S3 access points ----------------------------------------------------------------------

ACCESS_POINT = arn("s3", "accesspoint/reports-ap")


def test_get_object_through_an_access_point_is_scoped_to_the_access_point_object():
    m = call("24", "GetObject", key="shared/partners/2026-11-01.csv")
    assert m.permission("s3:GetObject").resources == (f"{ACCESS_POINT}/object/shared/partners/2026-11-01.csv",)


def test_list_through_an_access_point_is_scoped_to_the_access_point():
    m = call("24", "ListObjects")
    assert m.permission("s3:ListBucket").resources == (ACCESS_POINT,)


def test_direct_get_object_is_scoped_to_the_bucket_object():
    m = call("24", "GetObject", key="daily/2026-11-01.csv")
    assert m.permission("s3:GetObject").resources == (f"{REPORTS}/daily/2026-11-01.csv",)


# -- 25. CloudTrail's camelCase request keys -------------------------------------------------


@pytest.mark.parametrize(("name", "action", "resource"), [
    ("GetFunction20150331v2", "lambda:GetFunction", arn("lambda", "function:orders-api")),
    ("GetRole", "iam:GetRole", (role("*/orders-api-role"), role("orders-api-role"))),
    ("GetBucketPolicy", "s3:GetBucketPolicy", "arn:aws:s3:::acme-data"),
    ("GetQueueAttributes", "sqs:GetQueueAttributes", QUEUE),
    ("DescribeTable", "dynamodb:DescribeTable", ORDERS_TABLE),
    ("DescribeStreamSummary", "kinesis:DescribeStreamSummary", arn("kinesis", "stream/clickstream")),
    ("DescribeSecret", "secretsmanager:DescribeSecret", arn("secretsmanager", "secret:prod/db/credentials-??????")),
    ("CreateLogStream", "logs:CreateLogStream", arn("logs", "log-group:/app/orders:log-stream:2026/11/02/worker-7")),
])
def test_camel_case_request_key_names_the_resource(name, action, resource):
    record = call("25", name).record
    # Without resources[] (only S3 gives it here), the ARN can only come from requestParameters.
    _, mapping = map_record({k: v for k, v in record.items() if k != "resources"})
    assert mapping.actions == (action,)
    assert mapping.permissions[0].resources == (resource if isinstance(resource, tuple) else (resource,))


@pytest.mark.parametrize(("source", "name", "fields", "action", "resources"), [
    pytest.param("sns.amazonaws.com", "CreateTopic", (("name", "order-events"),), "sns:CreateTopic",
                 (arn("sns", "order-events"),), id="topic_from_the_name_it_is_created_with"),
    pytest.param("secretsmanager.amazonaws.com", "CreateSecret", (("name", "prod/db"),), "secretsmanager:CreateSecret",
                 (arn("secretsmanager", "secret:prod/db-??????"),), id="secret_with_the_suffix_the_service_adds"),
    pytest.param("states.amazonaws.com", "CreateStateMachine", (("name", "orders"),), "states:CreateStateMachine",
                 (arn("states", "stateMachine:orders"),), id="state_machine"),
    pytest.param("monitoring.amazonaws.com", "PutMetricAlarm", (("alarmName", "orders-5xx"),), "cloudwatch:PutMetricAlarm",
                 (arn("cloudwatch", "alarm:orders-5xx"),), id="alarm_under_the_cloudwatch_prefix"),
    pytest.param("iam.amazonaws.com", "CreatePolicy", (("path", "/team/"), ("policyName", "deploy")), "iam:CreatePolicy",
                 (f"arn:aws:iam::{ACCOUNT}:policy/team/deploy",), id="managed_policy_under_its_path"),
    pytest.param("iam.amazonaws.com", "CreateSAMLProvider", (("name", "okta"),), "iam:CreateSAMLProvider",
                 (f"arn:aws:iam::{ACCOUNT}:saml-provider/okta",), id="saml_provider"),
    pytest.param("iam.amazonaws.com", "CreateOpenIDConnectProvider", (("url", "https://token.actions.githubusercontent.com"),),
                 "iam:CreateOpenIDConnectProvider", (f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com",),
                 id="oidc_provider_named_by_its_issuer_without_the_scheme"),
    pytest.param("ecs.amazonaws.com", "CreateCluster", (("clusterName", "orders"),), "ecs:CreateCluster",
                 (arn("ecs", "cluster/orders"),), id="cluster"),
    pytest.param("ecs.amazonaws.com", "CreateService", (("serviceName", "api"),), "ecs:CreateService",
                 (arn("ecs", "service/default/api"),), id="service_in_the_default_cluster"),
    pytest.param("ecs.amazonaws.com", "RunTask", (("cluster", f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/orders"),
                                                  ("taskDefinition", "orders-migrate")), "ecs:RunTask",
                 (arn("ecs", "task-definition/orders-migrate:*"),), id="latest_revision_of_a_family_is_any_revision"),
])
def test_a_call_that_names_what_it_creates_is_granted_on_it_not_on_star(source, name, fields, action, resources):
    from lpgen.mapping import Call, map_call

    mapping = map_call(Call(source=source, name=name, fields=fields, region=REGION, account=ACCOUNT))
    assert [(p.action, p.resources) for p in mapping.permissions if not p.side] == [(action, resources)]


def test_name_names_the_new_resource_only_in_the_call_that_creates_it():
    from lpgen.mapping import Call, candidate_arns

    assert candidate_arns(Call(source="secretsmanager.amazonaws.com", name="ListSecrets", fields=(("name", "x"),),
                               region=REGION, account=ACCOUNT)) == []


# -- 26: tags set at creation -------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params", "action", "resource"), [
    pytest.param("CreateRole", {}, "iam:TagRole", f"arn:aws:iam::{ACCOUNT}:role/orders-service-OrdersApiFunctionRole-9Z4K2M1XQ7PL",
                 id="sam_execution_role_tagged_by_sam"),
    pytest.param("CreateFunction20150331", {"functionName": "orders-service-OrdersApiFunction-Q2W3E4R5T6Y7"},
                 "lambda:TagResource", arn("lambda", "function:orders-service-OrdersApiFunction-Q2W3E4R5T6Y7"),
                 id="sam_function_tagged_lambda_createdBy"),
    pytest.param("CreateQueue", {}, "sqs:TagQueue", arn("sqs", "orders-service-OrdersDLQ-1A2B3C4D5E6F"), id="queue"),
    pytest.param("CreateTable", {}, "dynamodb:TagResource", arn("dynamodb", "table/orders-service-OrdersTable-7H8J9K0L1M2N"),
                 id="table_with_an_empty_tag_list"),
    pytest.param("CreateKey", {}, "kms:TagResource", arn("kms", "key/*"), id="key_whose_id_the_service_assigns"),
    pytest.param("CreateFileSystem", {}, "elasticfilesystem:TagResource", arn("elasticfilesystem", "file-system/*"),
                 id="efs_file_system"),
])
def test_a_resource_created_with_tags_also_needs_the_tag_action_on_it(name, params, action, resource):
    # CloudFormation (invokedBy) creates a SAM stack's resources with the deployer's credentials, and
    # SAM tags them: without the tag action the create fails ("not authorized to perform: iam:TagRole").
    m = call("26", name, **params)
    tag = m.permission(action)
    assert (tag.side, tag.provenance, tag.resources) == (True, "side:tag-on-create", (resource,))
    assert m.mapping.status == "used"


def test_a_resource_created_without_tags_needs_no_tag_action():
    m = call("26", "CreateFunction20150331", functionName="invoice-archiver")
    assert [p.action for p in m.mapping.permissions] == ["lambda:CreateFunction", "iam:PassRole"]


def distribution(i: str) -> str:
    return f"arn:aws:cloudfront::{ACCOUNT}:distribution/{i}"


def test_copying_a_distribution_for_continuous_deployment_needs_get_and_create_distribution():
    # CloudFront API Reference, CopyDistribution: "requires the following IAM permissions: GetDistribution
    # CreateDistribution CopyDistribution". The copy's id is the service's, so nothing narrower than * fits.
    m = call("09", "CopyDistribution", primaryDistributionId="E2QWRUHAPOMQZL")
    assert [(p.action, p.resources, p.provenance) for p in m.mapping.permissions] == [
        (a, ("*",), "table") for a in ("cloudfront:CopyDistribution", "cloudfront:CreateDistribution",
                                       "cloudfront:GetDistribution")]


def test_promoting_a_staging_distribution_needs_get_and_update_distribution_on_both():
    m = call("09", "UpdateDistributionWithStagingConfig", id="E2QWRUHAPOMQZL")
    both = (distribution("E2QWRUHAPOMQZL"), distribution("E3STAGINGX1Y2Z"))
    assert [(p.action, p.resources) for p in m.mapping.permissions] == [
        (a, both) for a in ("cloudfront:GetDistribution", "cloudfront:UpdateDistribution",
                            "cloudfront:UpdateDistributionWithStagingConfig")]


def test_a_bucket_created_with_tags_needs_s3_tag_resource_on_it():
    # S3 API Reference, CreateBucket: "You must have the s3:TagResource permission to create a general purpose
    # bucket with tags" (tags in CreateBucketConfiguration, which the store keeps as present).
    m = call("26", "CreateBucket", bucketName="acme-orders-exports")
    tag = m.permission("s3:TagResource")
    assert (tag.resources, tag.provenance) == (("arn:aws:s3:::acme-orders-exports",), "side:tag-on-create")


# -- 27: options of a request --------------------------------------------------------------------

PROD_DEPLOY = "arn:aws:iam::444455556666:role/prod-deploy"


def test_session_tags_on_assume_role_also_need_tag_session_on_the_role():
    # STS authorizes the tags as sts:TagSession: a policy with sts:AssumeRole alone is refused
    # "not authorized to perform: sts:TagSession on resource: <the role>" (the fixture's denied call).
    m = call("27", "AssumeRole", roleSessionName="GitHubActions", transitiveTagKeys=["Repository"])
    tag = m.permission("sts:TagSession")
    assert (tag.side, tag.provenance, tag.resources) == (True, "side:request-option", (PROD_DEPLOY,))
    assert m.main_actions == ["sts:AssumeRole"] and m.mapping.status == "used"


def test_a_source_identity_on_assume_role_also_needs_set_source_identity():
    m = call("27", "AssumeRole", sourceIdentity="alice")
    assert m.permission("sts:SetSourceIdentity").resources == (role("break-glass"),)
    assert m.side_actions == ["sts:SetSourceIdentity"]


def test_assume_role_without_options_needs_assume_role_only():
    m = call("27", "AssumeRole", roleArn=role("ci/artifact-reader"))
    assert [(p.action, p.resources) for p in m.mapping.permissions] == [("sts:AssumeRole", (role("ci/artifact-reader"),))]


def test_assume_role_refused_for_its_tags_is_denied_not_used():
    m = [m for m in case("27") if m.record.get("errorCode") == "AccessDenied"][0]
    assert m.mapping.status == "denied" and "sts:TagSession" in m.side_actions


@pytest.mark.parametrize(("bucket", "side"), [
    pytest.param("acme-audit-archive", ["s3:PutBucketObjectLockConfiguration", "s3:PutBucketOwnershipControls",
                                        "s3:PutBucketVersioning"], id="object_lock_and_ownership_private_acl"),
    pytest.param("acme-legacy-access-logs", ["s3:PutBucketAcl", "s3:PutBucketOwnershipControls"], id="grant_headers"),
    pytest.param("acme-scratch", [], id="object_lock_false"),
])
def test_create_bucket_headers_need_the_actions_that_set_them(bucket, side):
    # S3 API Reference, CreateBucket: Object Lock needs PutBucketObjectLockConfiguration and PutBucketVersioning,
    # x-amz-object-ownership PutBucketOwnershipControls, an ACL other than private PutBucketAcl.
    m = call("27", "CreateBucket", bucketName=bucket)
    assert m.main_actions == ["s3:CreateBucket"] and m.side_actions == side
    assert all(p.resources == (f"arn:aws:s3:::{bucket}",) for p in m.mapping.permissions)


def test_an_object_written_with_a_grant_header_needs_put_object_acl():
    m = call("27", "PutObject", key="acme/2026-11-05/orders.csv")
    assert m.permission("s3:PutObjectAcl").resources == ("arn:aws:s3:::partner-inbox/acme/2026-11-05/orders.csv",)


def test_a_replicated_secret_encrypted_with_a_customer_key_needs_replication_and_the_key():
    m = call("27", "CreateSecret", description="orders database credentials")
    secret = arn("secretsmanager", "secret:prod/orders/db-??????")
    assert m.permission("secretsmanager:ReplicateSecretToRegions").resources == (secret,)
    for action in ("kms:GenerateDataKey", "kms:Decrypt"):
        p = m.permission(action)
        assert (p.resources, p.conditions) == ((KEY_1,), (("kms:ViaService", "secretsmanager.eu-west-1.amazonaws.com"),))


def test_rotating_a_secret_needs_invoke_on_its_rotation_function():
    m = call("27", "RotateSecret", secretId="prod/orders/db")
    assert m.permission("lambda:InvokeFunction").resources == (arn("lambda", "function:orders-db-rotation"),)


def test_a_codeartifact_token_also_needs_a_service_bearer_token():
    # npm, pip and Maven logins through CodeArtifact fail without it, whatever codeartifact:* allows.
    m = call("27", "GetAuthorizationToken", domain="acme")
    token = m.permission("sts:GetServiceBearerToken")
    assert (token.resources, token.conditions, token.provenance) == (
        ("*",), (("sts:AWSServiceName", "codeartifact.amazonaws.com"),), "side:bearer-token")


def test_batch_get_secret_value_needs_get_secret_value_on_each_secret_it_lists():
    m = call("27", "BatchGetSecretValue", secretIdList=[
        "prod/sales/api-key", "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/sales/smtp-Zx9Cv8"])
    assert m.permission("secretsmanager:BatchGetSecretValue").resources == ("*",)  # it takes no resource
    assert m.permission("secretsmanager:GetSecretValue").resources == (
        arn("secretsmanager", "secret:prod/sales/api-key-??????"), arn("secretsmanager", "secret:prod/sales/smtp-Zx9Cv8"))


def redshift(resource: str) -> str:
    return arn("redshift", resource)


@pytest.mark.parametrize(("params", "main", "side"), [
    pytest.param({"dbUser": "report_writer"}, ("redshift-data:ExecuteStatement", (redshift("cluster:analytics"),)),
                 [("redshift:GetClusterCredentials", (redshift("dbname:analytics/sales"),
                                                      redshift("dbuser:analytics/report_writer")))],
                 id="database_user_named"),
    pytest.param({"database": "finance"}, ("redshift-data:ExecuteStatement", (redshift("cluster:analytics"),)),
                 [("redshift:GetClusterCredentialsWithIAM", (redshift("dbname:analytics/finance"),))],
                 id="callers_iam_identity"),
    pytest.param({"workgroupName": "marketing"}, ("redshift-data:ExecuteStatement", ("*",)),
                 [("redshift-serverless:GetCredentials", (
                     f"arn:aws:redshift-serverless:{REGION}:{ACCOUNT}:workgroup/*",))],
                 id="serverless_workgroup_named_not_by_its_id"),
])
def test_redshift_data_api_needs_the_credentials_it_connects_with(params, main, side):
    # The Data API gets the database credentials with the caller's permissions: a Lambda function
    # granted redshift-data:ExecuteStatement alone cannot connect.
    m = call("27", "ExecuteStatement", **params)
    assert [(p.action, p.resources) for p in m.mapping.permissions if not p.side] == [main]
    assert [(p.action, p.resources) for p in m.mapping.permissions if p.side] == side
    assert all(p.provenance == "side:data-api-credentials" for p in m.mapping.permissions if p.side)


def test_redshift_data_api_with_a_secret_reads_the_secret():
    m = call("27", "BatchExecuteStatement", clusterIdentifier="legacy-dw")
    assert m.side_actions == ["secretsmanager:GetSecretValue"]
    assert m.permission("secretsmanager:GetSecretValue").resources == (
        arn("secretsmanager", "secret:redshift/legacy-dw/reader-Qw3Er5"),)


def test_polling_a_statement_connects_to_nothing():
    assert call("27", "DescribeStatement").mapping.actions == ("redshift-data:DescribeStatement",)


def test_cluster_credentials_with_groups_and_auto_create_need_join_group_and_create_cluster_user():
    m = call("27", "GetClusterCredentials", dbUser="report_writer")
    assert m.permission("redshift:GetClusterCredentials").resources == (
        redshift("dbname:analytics/sales"), redshift("dbuser:analytics/report_writer"))
    assert m.permission("redshift:JoinGroup").resources == (
        redshift("dbgroup:analytics/readonly"), redshift("dbgroup:analytics/reporting"))
    assert m.permission("redshift:CreateClusterUser").resources == (redshift("dbuser:analytics/report_writer"),)


# -- the fixtures themselves ------------------------------------------------------------------

ROWS = [f"{n:02d}" for n in range(1, 28) if n != 21]


def test_every_row_but_lookup_events_has_one_fixture():
    numbers = sorted(p.name[:2] for p in CASES.glob("*.json") if not p.name.endswith(".expected.json"))
    assert numbers == ROWS


def test_event_ids_are_distinct_across_all_cases():
    ids = [m.record["eventID"] for n in ROWS for m in case(n)]
    assert len(ids) == len(set(ids))


def _regen_script():
    path = ROOT / "scripts" / "regen_mapping_goldens.py"
    spec = importlib.util.spec_from_file_location("regen_mapping_goldens", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("number", ROWS)
def test_case_output_matches_its_golden(number):
    """A reviewed change regenerates the goldens: python scripts/regen_mapping_goldens.py"""
    regen = _regen_script()
    fixture = case_file(number)
    golden = regen.golden_path(fixture)
    assert golden.exists(), f"no golden for {fixture.name}: run python scripts/regen_mapping_goldens.py"
    assert regen.golden(fixture) == json.loads(golden.read_text(encoding="utf-8"))


# -- every record we have: never an invented action, never a denied call counted as used ---------


def _corpus(name: str) -> list[tuple[str, Any]]:
    if name == "mapping":
        paths = [p for p in sorted(CASES.glob("*.json")) if not p.name.endswith(".expected.json")]
    elif name == "demo":
        paths = sorted((DEMO / "AWSLogs").rglob("*.json.gz"))
        paths = [p for p in paths if "CloudTrail-Digest" not in p.parts]
    else:
        paths = [p for p in sorted(PUBLIC.rglob("*")) if p.suffix in (".json", ".gz") and p.is_file()]
    out = []
    for path in paths:
        decoded = decode(path.read_bytes(), str(path))
        out += [(f"{path.relative_to(ROOT)}#{decoded.position(i)}", r) for i, r in enumerate(decoded.records)]
    return out


@functools.cache
def _mapped_corpus(name: str) -> tuple[tuple[str, Event, Mapping], ...]:
    out = []
    for where, record in _corpus(name):
        try:
            event, mapping = map_record(record)
        except BadRecord:
            continue  # records lpgen cannot use are counted by the miner, not mapped
        out.append((where, event, mapping))
    return tuple(out)


@pytest.mark.parametrize("corpus", ["mapping", "demo", "public"])
def test_every_emitted_action_is_in_the_catalogue(corpus):
    mapped = _mapped_corpus(corpus)
    assert len(mapped) > 10
    catalog = load_catalog()
    invented = {(where, p.action) for where, _, m in mapped for p in m.permissions if not catalog.has_action(p.action)}
    assert not invented


@pytest.mark.parametrize("corpus", ["mapping", "demo", "public"])
def test_no_denied_call_is_ever_counted_as_used(corpus):
    mapped = _mapped_corpus(corpus)
    denied = [(where, m) for where, e, m in mapped if e.error_class == DENIED]
    assert denied
    assert [(where, m.name) for where, m in denied if m.status == "used"] == []


@pytest.mark.parametrize(("reveal", "side"), [
    pytest.param(True, ["iam:PassRole", "states:RevealSecrets"], id="revealing_secrets"),
    pytest.param(False, ["iam:PassRole"], id="secrets_hidden"),
])
def test_testing_a_state_that_reveals_secrets_needs_reveal_secrets(reveal, side):
    # Step Functions API Reference, TestState: with revealSecrets true the caller needs states:RevealSecrets,
    # "without this permission, Step Functions throws an access denied error". It takes no resource, so it
    # is granted on * (the only request option that is). The state runs with the role the request passes.
    m = call("27", "TestState", revealSecrets=reveal)
    assert m.main_actions == ["states:TestState"] and m.side_actions == side
    assert m.permission("iam:PassRole").resources == (role("orders-workflow-test"),)
    if reveal:
        assert m.permission("states:RevealSecrets").resources == ("*",)


def test_reading_log_events_unmasked_needs_unmask_on_the_log_group():
    # CloudWatch Logs API Reference, FilterLogEvents: with unmask, "you must be signed into an account with the
    # logs:Unmask permission"; without it the call fails rather than returning masked data.
    m = call("27", "FilterLogEvents", unmask=True)
    group = arn("logs", "log-group:/aws/lambda/payments-api")
    assert m.permission("logs:Unmask").resources == (group, f"{group}:*")
    assert m.side_actions == ["logs:Unmask"]


def test_a_delete_that_bypasses_governance_retention_needs_bypass_governance_retention_on_the_object():
    m = call("27", "DeleteObject", key="2025/ledger-2025-01.csv")
    assert m.permission("s3:BypassGovernanceRetention").resources == (
        "arn:aws:s3:::acme-audit-archive/2025/ledger-2025-01.csv",)


def test_a_vector_query_that_returns_metadata_also_needs_get_vectors_on_the_index():
    # S3 Vectors API Reference, QueryVectors: with returnMetadata "you must have both s3vectors:QueryVectors and
    # s3vectors:GetVectors permissions. The request fails with a 403 Forbidden error" (a retrieval-augmented
    # function reads its chunks back as metadata).
    m = call("27", "QueryVectors", indexName="support-articles")
    index = arn("s3vectors", "bucket/acme-knowledge/index/support-articles")
    assert [(p.action, p.resources) for p in m.mapping.permissions] == [
        ("s3vectors:QueryVectors", (index,)), ("s3vectors:GetVectors", (index,))]


def test_batch_get_secret_value_by_filters_also_needs_list_secrets():
    # Secrets Manager API Reference, BatchGetSecretValue: "If you use filters, you must also have
    # secretsmanager:ListSecrets" (which takes no resource). The store keeps only that the request filtered.
    m = call("27", "BatchGetSecretValue", maxResults=20)
    assert m.permission("secretsmanager:ListSecrets").resources == ("*",)
    assert m.side_actions == ["secretsmanager:ListSecrets"]

