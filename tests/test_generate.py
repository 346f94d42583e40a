"""Generation: the demo's roles get the policies a reviewer would write by hand."""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from lpgen.catalog import load_catalog
from lpgen.generate import GenerateOptions, collapse, generate, size
from lpgen.mine import mine
from lpgen.policy_formats import render
from lpgen.sources.local import LocalSource
from lpgen.store import UsageStore

from .conftest import DEMO

ACCOUNT = "210987654321"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role"
ORDERS, READER, NOTIFIER, CONFIG = (f"{ROLE}/orders-api-role-p9q8r7", f"{ROLE}/reports-reader-role-k2j4h6",
                                    f"{ROLE}/notifier-role-a1b2c3", f"{ROLE}/config-loader-role-z7x8c9")


@pytest.fixture(scope="module")
def rows(demo_mined):
    return demo_mined[1]


def grants(policy) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for s in policy.statements:
        for a in s.actions:
            out.setdefault(a, set()).update(s.resources)
    return out


def mined(tmp_path, records: list[dict]) -> list:
    """The usage rows of ``records`` written as one log file and mined into a new store (service calls too)."""
    from .conftest import write_log

    write_log(tmp_path / "logs" / "log.json.gz", records)
    with UsageStore(tmp_path / "s.db") as store:
        mine([LocalSource(tmp_path / "logs")], store)
        return list(store.usage(include_service=True))


def test_dynamodb_crud_role_gets_its_table_and_index_only(rows):
    got = grants(generate(rows)[ORDERS])
    table = f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/orders"
    assert {a: r for a, r in got.items() if a.startswith("dynamodb:")} == {
        "dynamodb:DeleteItem": {table}, "dynamodb:DescribeTable": {table}, "dynamodb:GetItem": {table},
        "dynamodb:PutItem": {table}, "dynamodb:UpdateItem": {table},  # ConditionalCheckFailed calls were authorized
        "dynamodb:Query": {table, f"{table}/index/by-customer"},
    }


def test_s3_reader_gets_the_prefix_it_read_and_not_what_was_denied(rows):
    # It reads each day's reports (reports/2026/11/DD/...): tomorrow's, and December's, are under reports/ too.
    got = grants(generate(rows)[READER])
    assert got["s3:GetObject"] == {"arn:aws:s3:::acme-reports-prod/reports/*"}
    assert got["s3:ListBucket"] == {"arn:aws:s3:::acme-reports-prod"}
    assert not any("finance" in r for rs in got.values() for r in rs)


def test_denied_calls_are_granted_only_on_request_and_marked(rows):
    policy = generate(rows, GenerateOptions(include_denied=True))[CONFIG]
    denied = [s for s in policy.statements if s.sid.startswith("WantedButDenied")]
    assert [(s.actions, s.resources) for s in denied] == [
        (("ssm:GetParameter",), (f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/config/billing/api-key",))]
    assert "billing" not in json.dumps(generate(rows)[CONFIG].document())


def test_sqs_poller_gets_single_item_actions_and_kms_through_services(rows):
    policy = generate(rows, GenerateOptions(conditions=True))[NOTIFIER]
    got = grants(policy)
    queue = f"arn:aws:sqs:eu-west-1:{ACCOUNT}:notify-jobs"
    assert got["sqs:DeleteMessage"] == {queue} and "sqs:DeleteMessageBatch" not in got
    assert got["sns:Publish"] == {f"arn:aws:sns:eu-west-1:{ACCOUNT}:order-events"}
    decrypt = next(s for s in policy.statements if "kms:Decrypt" in s.actions)
    assert ("StringEquals", "kms:ViaService", ("sns.eu-west-1.amazonaws.com", "sqs.eu-west-1.amazonaws.com")) in \
        decrypt.conditions


def test_lambda_roles_get_their_log_group_as_baseline(rows):
    # CreateLogGroup too: CloudWatch Logs authorizes it against "log-group:NAME:log-stream:" ("not
    # authorized to perform: logs:CreateLogGroup on resource: ...:log-group:/aws/lambda/fn:log-stream:"),
    # which "log-group:NAME" does not match, so a function could not create its log group.
    got = grants(generate(rows)[ORDERS])
    group = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/orders-api"
    assert {a: r for a, r in got.items() if a.startswith("logs:")} == {
        a: {f"{group}:*"} for a in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")}
    assert fnmatch.fnmatchcase(f"{group}:log-stream:", f"{group}:*")
    assert "logs:PutLogEvents" not in grants(generate(rows, GenerateOptions(baseline=False))[ORDERS])


def test_no_policy_for_identities_without_identity_policies(rows):
    assert all(p.startswith("arn:") for p in generate(rows))


def test_every_action_exists_and_every_resource_fits_its_action(rows):
    catalog = load_catalog()
    for policy in generate(rows, GenerateOptions(include_denied=True)).values():
        for s in policy.statements:
            for action in s.actions:
                assert catalog.has_action(action), action
                for resource in s.resources:
                    if resource != "*":  # a wildcard must stand for ARNs of the action's resource types
                        examples = [resource.replace("*", sub) for sub in ("x", "x/y", "log-stream:x")]
                        assert any(catalog.match_resource_type(action, e) for e in examples), (action, resource)


def test_two_runs_are_byte_identical(rows):
    for fmt in ("json", "sam", "terraform", "cloudformation"):
        assert render(generate(rows), fmt) == render(generate(list(reversed(rows))), fmt)


@pytest.mark.parametrize(("arns", "expected"), [
    pytest.param([f"arn:aws:s3:::b/exports/customers/part-{i:05d}.parquet" for i in range(12)],
                 ("arn:aws:s3:::b/exports/customers/*",), id="object_keys_collapse_to_their_deepest_common_prefix"),
    pytest.param([f"arn:aws:s3:::b/reports/2026/{m:02d}/x.csv" for m in (11, 12)] + ["arn:aws:s3:::b/other/y.csv"],
                 ("arn:aws:s3:::b/other/y.csv", "arn:aws:s3:::b/reports/*"),
                 id="a_dataset_seen_at_two_dates_is_a_time_series_however_few_its_objects"),
    pytest.param(["arn:aws:s3:::b/incoming/orders-2026-11-01.csv", "arn:aws:s3:::b/incoming/orders-2026-11-02.csv"],
                 ("arn:aws:s3:::b/incoming/orders-*",), id="dated_file_names_are_a_series_of_their_name"),
    pytest.param(["arn:aws:s3:::b/reports/2026/11/01/x.csv", "arn:aws:s3:::b/reports/2026/11/01/y.csv"],
                 ("arn:aws:s3:::b/reports/2026/11/01/x.csv", "arn:aws:s3:::b/reports/2026/11/01/y.csv"),
                 id="one_date_may_be_a_one_off"),
    pytest.param(["arn:aws:s3:::b/tenants/2001/x.json", "arn:aws:s3:::b/tenants/2002/x.json"],
                 ("arn:aws:s3:::b/tenants/2001/x.json", "arn:aws:s3:::b/tenants/2002/x.json"),
                 id="a_year_alone_may_be_a_tenant_s_number"),
    pytest.param(["arn:aws:s3:::b/year=2026/month=10/p.parquet", "arn:aws:s3:::b/year=2026/month=11/p.parquet"],
                 ("arn:aws:s3:::b/*",), id="hive_partitions_at_the_bucket_root"),
    pytest.param([f"arn:aws:s3:::b/k{i}" for i in range(5)], tuple(f"arn:aws:s3:::b/k{i}" for i in range(5)),
                 id="few_keys_stay_as_they_are"),
    pytest.param([f"arn:aws:dynamodb:eu-west-1:1:table/t{i}" for i in range(20)],
                 tuple(sorted(f"arn:aws:dynamodb:eu-west-1:1:table/t{i}" for i in range(20))),
                 id="chosen_names_never_collapse"),
    pytest.param([f"arn:aws:kms:eu-west-1:1:key/{i:08x}-1111-2222-3333-444455556666" for i in range(11)],
                 ("arn:aws:kms:eu-west-1:1:key/*",), id="generated_ids_collapse_to_a_wildcard"),
    pytest.param(["*", "arn:aws:s3:::b"], ("*",), id="star_wins"),
])
def test_collapse(arns, expected):
    assert collapse(arns) == expected


def test_no_account_or_region_wildcard_unless_asked():
    arn = "arn:aws:sqs:eu-west-1:111122223333:q"
    assert collapse([arn]) == (arn,)
    assert collapse([arn], GenerateOptions(generalize=frozenset({"account", "region"}))) == ("arn:aws:sqs:*:*:q",)


def test_compact_uses_a_wildcard_only_when_every_action_under_it_was_seen(rows):
    catalog = load_catalog()
    every_list = {a.full_name for a in catalog.matching("sqs:List*")}
    from lpgen.generate import _compact
    assert _compact(every_list, catalog) == {"sqs:List*"}
    assert _compact(set(sorted(every_list)[:-1]), catalog) == set(sorted(every_list)[:-1])
    policy = generate(rows, GenerateOptions(compact=True))[ORDERS]
    assert not any(re.search(r":[a-z]+\*$", a) for s in policy.statements for a in s.actions)


def test_large_policy_is_split_under_the_managed_policy_limit(rows):
    policy = generate(rows, GenerateOptions(prefix_threshold=10_000))[READER]
    parts = policy.split(limit=400)
    assert len(parts) > 1 and all(size(p) <= 400 or len(p["Statement"]) == 1 for p in parts)
    assert sum(len(p["Statement"]) for p in parts) == len(policy.statements)


def test_sam_snippet_uses_sub_for_the_account_and_region(rows):
    text = render({READER: generate(rows)[READER]}, "sam")
    assert "!Sub \"arn:${AWS::Partition}:s3:::acme-reports-prod\"" in text
    assert "${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/reports-reader" in text


def test_terraform_escapes_policy_variables():
    from lpgen.policy_formats import _hcl_list
    assert _hcl_list(["arn:aws:s3:::b/${aws:username}/*"]) == '["arn:aws:s3:::b/$${aws:username}/*"]'


def test_deployer_gets_its_stack_by_name_even_where_the_trail_names_the_stacks_generated_id(rows):
    # `aws cloudformation deploy` polls DescribeChangeSet with the stack's ARN, which ends in the id
    # CloudFormation generated when it created the stack; a stack deleted and created again (as one in
    # ROLLBACK_COMPLETE must be) gets another, so a policy naming the id would break the next deploy.
    deployer = f"arn:aws:iam::{ACCOUNT}:role/ci/github-deployer"
    assert any(r.name == "DescribeChangeSet" and ":stack/orders-service/5c2e8f10-" in v
               for r in rows if r.principal == deployer for _, v in r.fields)
    got = grants(generate(rows)[deployer])
    stack = f"arn:aws:cloudformation:eu-west-1:{ACCOUNT}:stack/orders-service/*"
    assert {a: r for a, r in got.items() if a.startswith("cloudformation:")} == {
        a: {stack} for a in ("cloudformation:CreateChangeSet", "cloudformation:DescribeChangeSet",
                             "cloudformation:DescribeStacks", "cloudformation:ExecuteChangeSet")}


def test_secret_read_through_its_complete_arn_is_granted_by_name(rows):
    # The config loader reads its secret through the complete ARN (name, "-", six random characters);
    # the secret created anew under the same name gets another suffix.
    got = grants(generate(rows)[CONFIG])
    assert got["secretsmanager:GetSecretValue"] == {
        f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/db/credentials-??????"}


def test_deployer_may_upload_the_next_builds_artifacts_not_only_those_the_trail_shows(rows):
    # `sam deploy` uploads each artifact under the MD5 (SHA-1 for the zips here) of its content: the
    # next build's artifacts have new names, which a policy naming the ten it saw would deny.
    deployer = f"arn:aws:iam::{ACCOUNT}:role/ci/github-deployer"
    policy = generate(rows)[deployer]
    folder = "arn:aws:s3:::acme-deploy-artifacts/orders-service/*"
    assert grants(policy)["s3:PutObject"] == {folder}
    assert [n for n in policy.notes if n.startswith("s3:PutObject:")] == [
        f"s3:PutObject: 10 resources (e.g. {folder[:-1]}0b31d97c63dcc580d68cd692d31748efd58d3838.zip) "
        f"generalised to {folder}"]  # not "collapsed": ten is not more than --prefix-threshold


def test_a_sam_deploy_is_granted_the_serverless_transform_beside_its_stack(tmp_path):
    from .conftest import ROLE, make_record

    rows = mined(tmp_path, [make_record(
        source="cloudformation.amazonaws.com", name="CreateChangeSet", readOnly=False,
        params={"stackName": "orders-service", "changeSetName": "samcli-deploy1793700780"})])
    policy = generate(rows)[ROLE]
    assert grants(policy) == {"cloudformation:CreateChangeSet": {
        "arn:aws:cloudformation:eu-west-1:123456789012:stack/orders-service/*",
        "arn:aws:cloudformation:eu-west-1:aws:transform/Serverless-2016-10-31"}}


BUCKET = "arn:aws:s3:::artifacts"


@pytest.mark.parametrize(("key", "granted"), [
    pytest.param("svc/67fe0216824fbfe8b59a6650aac7659c.template", "svc/*", id="md5_with_extension"),
    pytest.param("svc/0b31d97c63dcc580d68cd692d31748efd58d3838", "svc/*", id="sha1"),
    pytest.param("cdk/assets/" + "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.tar.gz",
                 "cdk/assets/*", id="sha256_with_two_extensions"),
    pytest.param("67fe0216824fbfe8b59a6650aac7659c", "*", id="at_the_bucket_root"),
    pytest.param("tenants/3f2a9c1e-7b4d-4e2a-9c1b-5d6e7f809a1b/config.json",
                 "tenants/3f2a9c1e-7b4d-4e2a-9c1b-5d6e7f809a1b/config.json", id="uuid_is_left_alone"),
    pytest.param("reports/2026/11/01/ad-spend.csv", "reports/2026/11/01/ad-spend.csv", id="date_is_left_alone"),
    pytest.param("svc/67fe0216824fbfe8b59a6650aac7659", "svc/67fe0216824fbfe8b59a6650aac7659",
                 id="hex_of_no_digest_length"),
    pytest.param("svc/67FE0216824FBFE8B59A6650AAC7659C", "svc/67FE0216824FBFE8B59A6650AAC7659C", id="upper_case_hex"),
    pytest.param("67fe0216824fbfe8b59a6650aac7659c/index.html", "67fe0216824fbfe8b59a6650aac7659c/index.html",
                 id="digest_as_a_folder"),
])
def test_only_objects_named_by_a_digest_of_their_content_are_granted_by_folder(key, granted):
    assert collapse([f"{BUCKET}/{key}"]) == (f"{BUCKET}/{granted}",)


LAYER = "arn:aws:lambda:eu-west-1:123456789012:layer:deps"


@pytest.mark.parametrize(("resource", "granted"), [
    pytest.param(f"{LAYER}:3", f"{LAYER}:*", id="layer_version"),
    pytest.param(LAYER, LAYER, id="layer"),
    pytest.param("arn:aws:lambda:eu-west-1:123456789012:function:deps:3",
                 "arn:aws:lambda:eu-west-1:123456789012:function:deps:3", id="function_version"),
])
def test_a_layer_version_is_granted_as_every_version_of_its_layer(resource, granted):
    assert collapse([resource]) == (granted,)


GROUP = "arn:aws:logs:eu-west-1:123456789012:log-group:/app/orders"


@pytest.mark.parametrize(("resource", "granted"), [
    pytest.param(f"{GROUP}:log-stream:2026/11/02/worker-7", f"{GROUP}:log-stream:*", id="a_day_s_stream"),
    pytest.param(f"{GROUP}:log-stream:i-0a1b2c3d4e5f67890", f"{GROUP}:log-stream:*", id="an_instance_s_stream"),
    pytest.param(f"{GROUP}:*", f"{GROUP}:*", id="the_group"),
    pytest.param(GROUP, GROUP, id="the_group_as_tagging_names_it"),
])
def test_a_log_stream_is_granted_as_every_stream_of_its_group(resource, granted):
    # CreateLogStream always names a stream that does not exist yet: tomorrow's is another one.
    assert collapse([resource]) == (granted,)


def test_a_deployer_may_read_the_next_version_of_the_layers_it_gives_functions(tmp_path):
    # Lambda numbers layer versions as they are published: the next deploy names deps:4.
    from .conftest import ROLE, make_record

    insights = "arn:aws:lambda:eu-west-1:580247275435:layer:LambdaInsightsExtension"
    rows = mined(tmp_path, [make_record(
        source="lambda.amazonaws.com", name="UpdateFunctionConfiguration20150331v2", readOnly=False,
        params={"functionName": "orders", "layers": [f"{LAYER}:3", f"{insights}:55"]})])
    policy = generate(rows)[ROLE]
    assert grants(policy) == {
        "lambda:UpdateFunctionConfiguration": {"arn:aws:lambda:eu-west-1:123456789012:function:orders"},
        "lambda:GetLayerVersion": {f"{LAYER}:*", f"{insights}:*"}}
    assert policy.evidence["lambda:GetLayerVersion"].provenance == ("side:caller-check",)


def test_a_function_whose_environment_a_customer_managed_key_encrypts_may_decrypt_it(tmp_path):
    # Lambda decrypts the environment with the execution role at each cold start: without kms:Decrypt on
    # the key every invocation fails (KMSAccessDeniedException), whether or not the trail shows a Decrypt yet.
    from .conftest import assumed_role, make_record

    account = "111122223333"
    role = f"arn:aws:iam::{account}:role/service-role/sync-role"
    key = f"arn:aws:kms:eu-west-1:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    deployer = assumed_role(f"arn:aws:iam::{account}:role/ci/deployer", "GitHubActions")
    rows = mined(tmp_path, [make_record(
        source="lambda.amazonaws.com", name="CreateFunction20150331", identity=deployer, recipientAccountId=account,
        params={"functionName": "sync", "role": role, "kMSKeyArn": key, "environment": {}})])
    policy = generate(rows)[role]
    assert grants(policy)["kms:Decrypt"] == {key}
    assert policy.evidence["kms:Decrypt"].provenance == ("baseline:lambda-environment-key",)
    assert "kms:Decrypt" not in grants(generate(rows)[f"arn:aws:iam::{account}:role/ci/deployer"])


SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db/credentials"


@pytest.mark.parametrize("secret_id", [
    pytest.param(f"{SECRET}-AbCdEf", id="complete_arn"),
    pytest.param(SECRET, id="partial_arn"),
    pytest.param("prod/db/credentials", id="name"),
])
def test_secret_is_granted_by_name_however_the_call_named_it(tmp_path, secret_id):
    # A partial ARN (no suffix) never matches the secret's ARN in IAM: granting it as given would deny the call.
    from .conftest import ROLE, make_record

    rows = mined(tmp_path, [make_record(
        source="secretsmanager.amazonaws.com", name="GetSecretValue", params={"secretId": secret_id})])
    policy = generate(rows)[ROLE]
    assert grants(policy) == {"secretsmanager:GetSecretValue": {f"{SECRET}-??????"}}
    if secret_id.startswith("arn:"):
        assert policy.notes == (f"secretsmanager:GetSecretValue: {secret_id} generalised to {SECRET}-??????",)


@pytest.mark.parametrize(("path", "resource"), [
    pytest.param("/config/app", "parameter/config/app", id="path"),
    pytest.param("/config/app/", "parameter/config/app/", id="path_with_trailing_slash"),
    pytest.param("/", "parameter/*", id="root"),
])
def test_parameters_by_path_are_granted_on_the_path_as_requested(tmp_path, path, resource):
    # Parameter Store authorizes GetParametersByPath against the path in the request, as given
    # ("not authorized to perform: ssm:GetParametersByPath on resource: ...:parameter/config/app"),
    # not against the parameters it returns: "parameter/config/app/*" would deny the first call.
    from .conftest import ROLE, make_record

    rows = mined(tmp_path, [make_record(
        source="ssm.amazonaws.com", name="GetParametersByPath", params={"path": path, "recursive": True})])
    assert grants(generate(rows)[ROLE]) == {
        "ssm:GetParametersByPath": {f"arn:aws:ssm:eu-west-1:123456789012:{resource}"}}


def test_demo_policies_match_their_reviewed_goldens(rows):
    golden = json.loads((DEMO / "policies.expected.json").read_text())
    assert {p: g.document() for p, g in generate(rows).items()} == golden


STREAM = "arn:aws:kinesis:eu-west-1:111122223333:stream/clicks"
TABLE_STREAM = "arn:aws:dynamodb:eu-west-1:111122223333:table/orders/stream/2026-11-01T00:00:00.000"
MSK = "arn:aws:kafka:eu-west-1:111122223333:cluster/orders/0b1c2d3e-4f5a-6b7c-8d9e-0a1b2c3d4e5f-2"


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param(TABLE_STREAM, {**{a: {TABLE_STREAM} for a in (
        "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")},
        "dynamodb:ListStreams": {"*"}}, id="dynamodb_stream"),
    pytest.param(STREAM, {**{a: {STREAM} for a in (
        "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator",
        "kinesis:ListShards")}, "kinesis:ListStreams": {"*"}}, id="kinesis_stream"),
    pytest.param(f"{STREAM}/consumer/efo:1700000000", {**{a: {STREAM} for a in (
        "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator",
        "kinesis:ListShards")}, "kinesis:ListStreams": {"*"},
        "kinesis:SubscribeToShard": {f"{STREAM}/consumer/efo:1700000000"}}, id="kinesis_consumer"),
    pytest.param(MSK, {"kafka:DescribeCluster": {MSK}, "kafka:DescribeClusterV2": {MSK},
                       "kafka:GetBootstrapBrokers": {"*"}}, id="msk_cluster"),
])
def test_stream_event_source_baseline_grants_each_action_on_what_it_takes(tmp_path, source, expected):
    # ListStreams takes no resource (IAM matches it against *, never a stream's ARN); SubscribeToShard takes
    # a consumer; the other actions the stream, also when the function reads it through a consumer.
    from .conftest import assumed_role, make_record

    role = "arn:aws:iam::111122223333:role/service-role/stream-role"
    deployer = assumed_role("arn:aws:iam::111122223333:role/ci/deployer", "GitHubActions")
    rows = mined(tmp_path, [
        make_record(source="lambda.amazonaws.com", name="CreateFunction20150331", identity=deployer,
                    params={"functionName": "reader", "role": role, "runtime": "python3.12"},
                    recipientAccountId="111122223333"),
        make_record(source="lambda.amazonaws.com", name="CreateEventSourceMapping20150331", identity=deployer,
                    params={"functionName": "reader", "eventSourceArn": source, "startingPosition": "LATEST"},
                    recipientAccountId="111122223333"),
        make_record(identity=assumed_role(role, "reader"), params={"tableName": "inventory"},
                    recipientAccountId="111122223333"),
    ])
    got = grants(generate(rows)[role])
    service = source.split(":")[2]
    assert {a: r for a, r in got.items() if a.startswith(f"{service}:") and a != "dynamodb:GetItem"} == expected


@pytest.mark.parametrize(("part", "managed"), [
    pytest.param(("vpc",), "AWSLambdaVPCAccessExecutionRole", id="vpc"),
    pytest.param(("event_sources", "sqs"), "AWSLambdaSQSQueueExecutionRole", id="sqs"),
    pytest.param(("event_sources", "kinesis"), "AWSLambdaKinesisExecutionRole", id="kinesis"),
    pytest.param(("event_sources", "dynamodb"), "AWSLambdaDynamoDBExecutionRole", id="dynamodb"),
    pytest.param(("event_sources", "kafka"), "AWSLambdaMSKExecutionRole", id="msk"),
])
def test_lambda_baseline_grants_what_the_matching_aws_managed_policy_does(part, managed):
    # The baseline says its action sets are those of AWS's managed policies (logs apart, scoped to the
    # function's log group): AWS revises them (AWSLambdaVPCAccessExecutionRole v3 added ec2:DescribeSubnets).
    from lpgen.data_files import values
    from lpgen.sam import managed_policy

    baseline = values("lambda_baseline.json", part[0])
    baseline = baseline[part[1]] if len(part) > 1 else baseline
    _, document = managed_policy(managed)
    granted = {a for s in document["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert set(baseline) == {a for a in granted if not a.startswith("logs:")}


def test_lambda_baseline_follows_what_the_deployment_said(tmp_path):
    from .conftest import assumed_role, make_record

    account = "111122223333"
    role = f"arn:aws:iam::{account}:role/service-role/sync-role"
    deployer = assumed_role(f"arn:aws:iam::{account}:role/ci/deployer", "GitHubActions")
    queue = f"arn:aws:sqs:eu-west-1:{account}:sync-events"
    records = [
        make_record(source="lambda.amazonaws.com", name="CreateFunction20150331", identity=deployer, params={
            "functionName": "sync", "role": role, "runtime": "python3.12",
            "vpcConfig": {"subnetIds": ["subnet-0a1b2c3d4e5f60718"], "securityGroupIds": ["sg-0123456789abcdef0"]},
            "tracingConfig": {"mode": "Active"}}, recipientAccountId=account),
        make_record(source="lambda.amazonaws.com", name="CreateEventSourceMapping20150331", identity=deployer,
                    params={"functionName": "sync", "eventSourceArn": queue, "batchSize": 10},
                    recipientAccountId=account),
        make_record(identity=assumed_role(role, "sync"), params={"tableName": "inventory"}, recipientAccountId=account),
    ]
    rows = mined(tmp_path, records)
    policy = generate(rows)[role]
    got = grants(policy)
    assert got["dynamodb:GetItem"] == {f"arn:aws:dynamodb:eu-west-1:{account}:table/inventory"}
    assert got["xray:PutTraceSegments"] == {"*"} and got["ec2:CreateNetworkInterface"] == {"*"}
    assert got["sqs:ReceiveMessage"] == got["sqs:DeleteMessage"] == got["sqs:GetQueueAttributes"] == {queue}
    assert got["logs:PutLogEvents"] == {f"arn:aws:logs:eu-west-1:{account}:log-group:/aws/lambda/sync:*"}
    assert "baseline:lambda-vpc" in policy.evidence["ec2:CreateNetworkInterface"].provenance
    assert set(grants(generate(rows, GenerateOptions(baseline=False))[role])) == {"dynamodb:GetItem"}
    deployer_policy = grants(generate(rows)[f"arn:aws:iam::{account}:role/ci/deployer"])
    assert deployer_policy["iam:PassRole"] == {role}


def test_an_msk_event_source_has_lambda_manage_network_interfaces_in_the_clusters_vpc(tmp_path):
    # AWSLambdaMSKExecutionRole: Lambda reaches the brokers through interfaces it creates with the role.
    from .conftest import assumed_role, make_record

    account = "111122223333"
    role = f"arn:aws:iam::{account}:role/service-role/orders-consumer-role"
    deployer = assumed_role(f"arn:aws:iam::{account}:role/ci/deployer", "GitHubActions")
    rows = mined(tmp_path, [
        make_record(source="lambda.amazonaws.com", name="CreateFunction20150331", identity=deployer,
                    params={"functionName": "orders-consumer", "role": role, "runtime": "java21"}, recipientAccountId=account),
        make_record(source="lambda.amazonaws.com", name="CreateEventSourceMapping20150331", identity=deployer,
                    params={"functionName": "orders-consumer", "eventSourceArn": MSK, "topics": ["orders"],
                            "startingPosition": "TRIM_HORIZON"}, recipientAccountId=account),
    ])
    got = grants(generate(rows)[role])
    for action in ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
                   "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"):
        assert got[action] == {"*"}, action
    assert got["kafka:DescribeClusterV2"] == {MSK}


def test_a_function_with_an_efs_file_system_may_mount_it_and_its_deployer_check_the_mount_targets(tmp_path):
    # Lambda mounts the file system with the execution role (ClientMount, ClientWrite) at each cold start, and
    # checks its mount targets with the deployer's permissions (DescribeMountTargets) when the function is configured.
    from .conftest import assumed_role, make_record

    account = "111122223333"
    role = f"arn:aws:iam::{account}:role/service-role/ml-role"
    deployer_arn = f"arn:aws:iam::{account}:role/ci/deployer"
    point = f"arn:aws:elasticfilesystem:eu-west-1:{account}:access-point/fsap-0a1b2c3d4e5f60718"
    rows = mined(tmp_path, [
        make_record(source="lambda.amazonaws.com", name="CreateFunction20150331",
                    identity=assumed_role(deployer_arn, "GitHubActions"), params={
                        "functionName": "scorer", "role": role, "runtime": "python3.12",
                        "vpcConfig": {"subnetIds": ["subnet-0a1b2c3d4e5f60718"], "securityGroupIds": ["sg-0123456789abcdef0"]},
                        "fileSystemConfigs": [{"arn": point, "localMountPath": "/mnt/models"}]}, recipientAccountId=account),
    ])
    policies = generate(rows)
    got = grants(policies[role])
    assert got["elasticfilesystem:ClientMount"] == got["elasticfilesystem:ClientWrite"] == {
        f"arn:aws:elasticfilesystem:eu-west-1:{account}:file-system/*"}
    assert "baseline:lambda-file-system" in policies[role].evidence["elasticfilesystem:ClientMount"].provenance
    assert grants(policies[deployer_arn])["elasticfilesystem:DescribeMountTargets"] == {"*"}


def test_a_function_logging_to_a_custom_log_group_may_write_there(tmp_path):
    # Advanced logging controls: a deployment naming loggingConfig.logGroup has Lambda write the function's logs
    # there with the execution role. Granted only /aws/lambda/<function>, the logs would be lost; nothing fails.
    # A role the trail shows creating log streams in a group (its own code's logging) writes there too.
    from .conftest import assumed_role, make_record

    account = "111122223333"
    role = f"arn:aws:iam::{account}:role/service-role/billing-role"
    deployer = assumed_role(f"arn:aws:iam::{account}:role/ci/deployer", "GitHubActions")
    group = lambda name: f"arn:aws:logs:eu-west-1:{account}:log-group:{name}:*"  # noqa: E731
    records = [
        make_record(source="lambda.amazonaws.com", name="CreateFunction20150331", identity=deployer, params={
            "functionName": "billing", "role": role, "runtime": "python3.12",
            "loggingConfig": {"logFormat": "JSON", "applicationLogLevel": "INFO", "logGroup": "/acme/billing"}},
            recipientAccountId=account),
        make_record(source="logs.amazonaws.com", name="CreateLogStream", identity=assumed_role(role, "billing"),
                    params={"logGroupName": "/acme/audit", "logStreamName": "2026/11/02/billing-7f3a"},
                    recipientAccountId=account),
    ]
    got = grants(generate(mined(tmp_path, records))[role])
    for action in ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"):
        assert got[action] == {group("/acme/billing"), group("/acme/audit")}, action


def test_lambda_delivers_event_records_with_the_execution_role(tmp_path):
    # Lambda sends records to the dead-letter queue and to the destinations a deployment configured with
    # the function's role; a delivery it may not make is only a metric, and the records are lost.
    from .conftest import assumed_role, make_record

    account = "111122223333"
    arn = lambda service, resource: f"arn:aws:{service}:eu-west-1:{account}:{resource}"  # noqa: E731
    role = f"arn:aws:iam::{account}:role/service-role/orders-role"
    deployer = assumed_role(f"arn:aws:iam::{account}:role/ci/deployer", "GitHubActions")
    lam = lambda name, **params: make_record(source="lambda.amazonaws.com", name=name, identity=deployer,  # noqa: E731
                                             params=params, recipientAccountId=account)
    records = [
        lam("CreateFunction20150331", functionName="orders", role=role, runtime="python3.12",
            deadLetterConfig={"targetArn": arn("sqs", "orders-dlq")}),
        lam("PutFunctionEventInvokeConfig", functionName=arn("lambda", "function:orders:live"), qualifier="live",
            destinationConfig={"onSuccess": {"destination": arn("events", "event-bus/orders")},
                               "onFailure": {"destination": "arn:aws:s3:::orders-failures"}}),
        lam("UpdateFunctionEventInvokeConfig", functionName="orders",
            destinationConfig={"onFailure": {"destination": arn("lambda", "function:orders-fallback")}}),
        lam("CreateEventSourceMapping20150331", functionName="orders", eventSourceArn=STREAM.replace(
            "111122223333", account), startingPosition="LATEST",
            destinationConfig={"onFailure": {"destination": arn("sns", "orders-alerts")}}),
        make_record(identity=assumed_role(role, "orders"), params={"tableName": "orders"}, recipientAccountId=account),
    ]
    rows = mined(tmp_path, records)
    policy = generate(rows)[role]
    got = grants(policy)
    assert {a: got[a] for a in ("sqs:SendMessage", "events:PutEvents", "s3:ListBucket", "s3:PutObject",
                                "lambda:InvokeFunction", "sns:Publish")} == {
        "sqs:SendMessage": {arn("sqs", "orders-dlq")},
        "events:PutEvents": {arn("events", "event-bus/orders")},
        "s3:ListBucket": {"arn:aws:s3:::orders-failures"}, "s3:PutObject": {"arn:aws:s3:::orders-failures/*"},
        "lambda:InvokeFunction": {arn("lambda", "function:orders-fallback")},
        "sns:Publish": {arn("sns", "orders-alerts")}}
    assert policy.evidence["sns:Publish"].provenance == ("baseline:lambda-destination",)
    assert "kinesis:GetRecords" in got  # the mapping's source is still polled
    assert not any(a.startswith(("sqs:", "sns:", "events:", "s3:")) for a in grants(generate(
        rows, GenerateOptions(baseline=False))[role]))
    # The deployer configured the fallback function as a destination; it did not act on it.
    deployed = grants(generate(rows)[f"arn:aws:iam::{account}:role/ci/deployer"])
    assert deployed["lambda:PutFunctionEventInvokeConfig"] == {arn("lambda", "function:orders:live")}
    assert deployed["lambda:UpdateFunctionEventInvokeConfig"] == {arn("lambda", "function:orders")}


def test_collapsing_is_explained(rows):
    notes = generate(rows)[READER].notes
    assert any(re.match(r"s3:GetObject: 47 resources of \d+ dates generalised to arn:aws:s3:::acme-reports-prod/reports/\* "
                        r"\(a time series", n) for n in notes), notes


@pytest.mark.parametrize("compact", [False, True], ids=["exact", "compact"])
def test_every_policy_generated_from_all_our_trails_allows_every_call_it_was_generated_from(all_trails_mined, compact):
    """Over every record we ship (the mapping cases, the public samples, the demo), each principal's generated
    policy, read back through lpgen's evaluator, allows every permission of every call it made that succeeded:
    side permissions, IAM paths narrowed, resources generalised, statements merged and split included."""
    from lpgen.attached import Attached, Policy
    from lpgen.expand import covers, expand
    from lpgen.mapping import iam_paths, row_mapper
    from lpgen.model import DENIED

    rows, _ = all_trails_mined
    catalog = load_catalog()
    paths = iam_paths(rows)
    policies = generate(rows, GenerateOptions(compact=compact), catalog, paths=paths)
    mapped = row_mapper(paths, catalog)
    checked = 0
    for row in rows:
        mapping = mapped(row)
        if row.error_class == DENIED or mapping.status != "used" or row.principal not in policies:
            continue  # denied calls; principals without identity policies (services, web identities, unknown)
        document = policies[row.principal].document()
        granted = expand(Attached(principal=row.principal, policies=(Policy(name="generated", kind="inline",
                                                                           document=document),)))
        for p in mapping.permissions:
            for resource in p.resources:
                assert covers(granted.patterns(p.action), resource), (
                    f"{row.principal}: {row.source} {row.name} needs {p.action} on {resource} ({p.provenance})")
                checked += 1
    assert checked > 700 and len(policies) > 50  # it checks something: 773 permissions of 93 principals
