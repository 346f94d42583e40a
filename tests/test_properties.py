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
           "apigateway.amazonaws.com", "ec2.amazonaws.com", "sqs.amazonaws.com", "nonexistent.amazonaws.com"]
NAMES = ["GetObject", "CopyObject", "TransactWriteItems", "ExecuteStatement", "ReEncrypt", "RunInstances",
         "GetFunction20150331v2", "CreateRestApi", "DeleteMessageBatch", "HeadObject", "Bogus"]
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
                                           "imageId", "restApiId", "apiId", "queueUrl"]),
                          st.text(max_size=30)), max_size=6))
def test_any_fields_map_to_catalogue_actions(source, name, fields):
    catalog = load_catalog()
    mapping = map_call(Call(source=source, name=name, fields=tuple(sorted(fields)), region="eu-west-1",
                            account="111122223333"), catalog)
    assert all(catalog.has_action(a) for a in mapping.actions)
    assert all(p.resources for p in mapping.permissions)
