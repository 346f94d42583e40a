"""Property-based tests: any JSON never crashes decoding, normalisation or mapping,
and mapped actions are always catalogue actions."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lpgen.catalog import load_catalog
from lpgen.mapping import Call, map_call, map_record
from lpgen.normalize import BadRecord
from lpgen.sources.formats import decode

from .conftest import make_record

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
SOURCES = ["s3.amazonaws.com", "dynamodb.amazonaws.com", "kms.amazonaws.com", "lambda.amazonaws.com",
           "apigateway.amazonaws.com", "ec2.amazonaws.com", "sqs.amazonaws.com", "nonexistent.amazonaws.com",
           "sts.amazonaws.com", "redshift-data.amazonaws.com", "redshift.amazonaws.com", "secretsmanager.amazonaws.com",
           "bedrock.amazonaws.com", "codeartifact.amazonaws.com"]
NAMES = ["GetObject", "CopyObject", "TransactWriteItems", "ExecuteStatement", "ReEncrypt", "RunInstances",
         "GetFunction20150331v2", "CreateRestApi", "DeleteMessageBatch", "HeadObject", "Bogus", "AssumeRole",
         "CreateBucket", "GetClusterCredentials", "CreateSecret", "RotateSecret", "BatchGetSecretValue", "Converse",
         "GetAuthorizationToken"]
settings.register_profile("lpgen", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("lpgen")


@given(json_values)
def test_decoding_any_json_never_raises(value):
    decoded = decode(json.dumps(value).encode(), "any.json")
    assert decoded.records or decoded.problems or decoded.kind is not None


@given(st.binary(max_size=200))
def test_decoding_any_bytes_never_raises(data):
    decode(data, "any.bin")


@given(st.dictionaries(st.sampled_from(list(make_record())), json_values, max_size=8),
       st.sampled_from(SOURCES), st.sampled_from(NAMES))
def test_any_record_maps_to_catalogue_actions_or_is_a_bad_record(overrides, source, name):
    record = {**make_record(source=source, name=name), **overrides}
    catalog = load_catalog()
    try:
        _, mapping = map_record(record, catalog)
    except BadRecord:
        return
    assert all(catalog.has_action(a) for a in mapping.actions)


@given(st.sampled_from(SOURCES), st.sampled_from(NAMES),
       st.lists(st.tuples(st.sampled_from(["bucketName", "key", "tableName", "transactItems.put.tableName",
                                           "requestItems.operation", "statement", "sourceKeyId", "arn",
                                           "arnPrefix", "x-amz-copy-source", "versionId", "functionName",
                                           "imageId", "restApiId", "apiId", "queueUrl", "roleArn", "tags",
                                           "sourceIdentity", "x-amz-acl", "x-amz-bucket-object-lock-enabled",
                                           "clusterIdentifier", "dbUser", "dbGroups", "database", "autoCreate",
                                           "secretArn", "workgroupName", "secretIdList", "modelId",
                                           "addReplicaRegions", "rotationLambdaARN", "kmsKeyId"]),
                          st.text(max_size=30)), max_size=6))
def test_any_fields_map_to_catalogue_actions(source, name, fields):
    catalog = load_catalog()
    mapping = map_call(Call(source=source, name=name, fields=tuple(sorted(fields)), region="eu-west-1",
                            account="111122223333"), catalog)
    assert all(catalog.has_action(a) for a in mapping.actions)
    assert all(p.resources for p in mapping.permissions)


# -- generation: the generated policy always allows every call it was generated from -----------------

PRINCIPAL = "arn:aws:iam::111122223333:role/service-role/app-role"
_segment = st.text(alphabet="abcdefghij0123456789-_.", min_size=1, max_size=8)
_key = st.lists(_segment, min_size=1, max_size=4).map("/".join)
_bucket = st.sampled_from(["reports", "acme-data", "logs.example"])
_table = st.sampled_from(["orders", "inventory", "Customers_v2"])
CALLS = st.one_of(
    st.tuples(st.just("s3.amazonaws.com"), st.sampled_from(["GetObject", "HeadObject", "PutObject", "DeleteObject"]),
              st.tuples(st.tuples(st.just("bucketName"), _bucket), st.tuples(st.just("key"), _key))),
    st.tuples(st.just("dynamodb.amazonaws.com"), st.sampled_from(["GetItem", "PutItem", "Query", "DeleteItem"]),
              st.tuples(st.tuples(st.just("tableName"), _table))),
    st.tuples(st.just("dynamodb.amazonaws.com"), st.just("Query"),
              st.tuples(st.tuples(st.just("indexName"), st.sampled_from(["by-customer", "by-date"])),
                        st.tuples(st.just("tableName"), _table))),
    st.tuples(st.just("sqs.amazonaws.com"), st.sampled_from(["ReceiveMessage", "DeleteMessage", "SendMessage"]),
              st.tuples(st.tuples(st.just("queueUrl"), _segment.map(
                  lambda q: f"https://sqs.eu-west-1.amazonaws.com/111122223333/{q}")))),
    st.tuples(st.just("ssm.amazonaws.com"), st.sampled_from(["GetParameter", "GetParameters"]),
              st.tuples(st.tuples(st.just("name"), _key.map(lambda k: f"/config/{k}")))),
    st.tuples(st.just("lambda.amazonaws.com"), st.just("Invoke"),
              st.tuples(st.tuples(st.just("functionName"), _segment))),
    st.tuples(st.just("sts.amazonaws.com"), st.just("GetCallerIdentity"), st.just(())),
)


@settings(max_examples=100)
@given(st.lists(CALLS, min_size=1, max_size=25), st.integers(min_value=1, max_value=6), st.booleans())
def test_the_generated_policy_allows_every_call_it_was_generated_from(calls, threshold, compact):
    """Expanding the generated policy (lpgen's evaluator: expand + covers) grants every permission of every call."""
    from lpgen.attached import Attached, Policy
    from lpgen.expand import covers, expand
    from lpgen.generate import GenerateOptions, generate
    from lpgen.store import UsageRow

    rows = [UsageRow(principal=PRINCIPAL, source=source, name=name, error_class="ok", region="eu-west-1",
                     invoked_by=None, fields=tuple(sorted(fields)), count=1, first_seen="2026-11-02T08:00:00Z",
                     last_seen="2026-11-02T08:00:00Z", category=None, error_codes=(), samples=())
            for source, name, fields in calls]
    policies = generate(rows, GenerateOptions(prefix_threshold=threshold, compact=compact))
    needed = [(p.action, r) for row in rows for p in map_call(Call.of_row(row)).permissions for r in p.resources]
    if not needed:
        assert PRINCIPAL not in policies
        return
    document = policies[PRINCIPAL].document()
    granted = expand(Attached(principal=PRINCIPAL, policies=(Policy(name="generated", kind="inline",
                                                                   document=document),)))
    for action, resource in needed:
        assert covers(granted.patterns(action), resource), f"{action} on {resource} is not allowed by {document}"
