"""The mapping's data tables are well-formed: every action they name exists, every rule is implemented."""

from __future__ import annotations

import json

import pytest

from lpgen.catalog import load_catalog
from lpgen.data_files import load
from lpgen.mapping import _RULES, NOT_AN_ACTION, PERMISSIONLESS, observability

OVERRIDES = load("mapping_overrides.json")
SIDE = load("side_permissions.json")


@pytest.mark.parametrize("entry", OVERRIDES["overrides"], ids=lambda e: f"{e['source']}:{e['name']}")
def test_override_entry_is_well_formed(entry):
    catalog = load_catalog()
    assert entry["note"].strip() and entry["reference"].split(":", 1)[0] in OVERRIDES["references"]
    for action in entry.get("actions", []):
        assert catalog.action(action) is not None and catalog.action(action).full_name == action
    if entry.get("status"):
        assert entry["status"] in (PERMISSIONLESS, NOT_AN_ACTION) and not entry.get("actions")
    else:
        assert entry.get("actions"), "an entry grants actions or says why it needs none"
    if entry.get("rule"):
        assert entry["rule"] in _RULES, f"rule {entry['rule']} is not implemented"


def test_wildcard_only_actions_exist_cite_a_reference_and_are_granted_on_star():
    # cloudwatch:PutCompositeAlarm has the alarm resource type, yet "you must be signed on with the
    # cloudwatch:PutCompositeAlarm permission that is scoped to *": a policy scoped to the alarm denies it.
    from lpgen.mapping import explain

    catalog = load_catalog()
    for action, reference in OVERRIDES["wildcard_only"]["values"].items():
        assert catalog.action(action).resource_types and reference.split(":", 1)[0] in OVERRIDES["references"]
    m = explain("monitoring.amazonaws.com", "PutCompositeAlarm", (("alarmName", "orders-degraded"), ("tags", "present")))
    assert [(p.action, p.resources) for p in m.permissions] == [
        ("cloudwatch:PutCompositeAlarm", ("*",)),
        ("cloudwatch:TagResource", ("arn:aws:cloudwatch:us-east-1:123456789012:alarm:orders-degraded",))]


@pytest.mark.parametrize(("types", "resources"), [
    pytest.param(["CompositeAlarm", "MetricAlarm"], ("*",), id="composite_alarms_asked_for_need_star"),
    pytest.param(["MetricAlarm"], ("arn:aws:cloudwatch:us-east-1:123456789012:alarm:orders-degraded",),
                 id="metric_alarms_only_are_scoped"),
])
def test_reading_composite_alarms_is_granted_on_star(types, resources):
    # CloudWatch API Reference, DescribeAlarms: to return composite alarms "you must be signed on with the
    # cloudwatch:DescribeAlarms permission that is scoped to *". They are returned only when alarmTypes asks.
    from lpgen.fields import request_fields
    from lpgen.mapping import explain

    fields = request_fields({"alarmNames": ["orders-degraded"], "alarmTypes": types})
    assert explain("monitoring.amazonaws.com", "DescribeAlarms", fields).permissions[0].resources == resources


def test_overrides_are_unique_and_sorted():
    keys = [(e["source"], e["name"]) for e in OVERRIDES["overrides"]]
    assert len(keys) == len(set(keys)) and keys == sorted(keys)


@pytest.mark.parametrize("kind", ["pass_role", "kms", "caller_checks", "transforms", "tag_on_create", "request_options"])
def test_side_permission_entries_name_real_actions(kind):
    catalog = load_catalog()
    for entry in SIDE[kind]["values"]:
        assert entry["note"] and entry["reference"] and entry["fields"]
        for action in entry.get("actions", ["iam:PassRole"]):
            assert catalog.has_action(action), action


def _nested(path: str, value: str, into: dict | None = None) -> dict:
    """Request parameters (``into``, or new ones) that hold ``value`` at a dotted field path."""
    out = into if into is not None else {}
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


@pytest.mark.parametrize(("entry", "path"), [(e, p) for e in SIDE["pass_role"]["values"] for p in e["fields"]],
                         ids=lambda v: v if isinstance(v, str) else f"{v['source'].split('.')[0]}:{v['operation']}")
def test_each_pass_role_entry_reads_its_role_from_what_the_store_keeps(entry, path):
    # A field path the usage store drops (request_fields.json) would make the entry dead: the call would be
    # mapped without the iam:PassRole it needs, and the generated policy would deny it.
    from lpgen.fields import request_fields
    from lpgen.mapping import Call, map_call

    account = "111122223333"
    fields = request_fields(_nested(path, "cluster-profile" if entry.get("profile") else f"arn:aws:iam::{account}:role/r"))
    assert fields, f"{path} is not kept by the usage store"
    mapping = map_call(Call(source=entry["source"], name=entry["operation"], fields=fields, region="eu-west-1",
                            account=account))
    pass_role = [p for p in mapping.permissions if p.action == "iam:PassRole"]
    role = "*" if entry.get("profile") else "r"
    condition = (("iam:PassedToService", entry["service"]),) if entry["service"] else ()
    assert [(p.resources, p.conditions) for p in pass_role] == [((f"arn:aws:iam::{account}:role/{role}",), condition)]


def test_pass_role_by_field_names_real_event_sources_and_capitalised_verbs():
    catalog = load_catalog()
    rules = SIDE["pass_role_by_field"]["values"]
    assert all(catalog.event_source(source) is not None for source in rules["not_sources"])
    assert all(verb.isalpha() and verb[0].isupper() and verb[1:].islower() or verb == "BatchGet"
               for verb in rules["read_verbs"] + rules["release_verbs"])
    assert rules["field_contains"] == rules["field_contains"].lower()
    assert rules["release_fields"] and all(prefix == prefix.lower() for prefix in rules["release_fields"])


@pytest.mark.parametrize(("source", "operation", "params"), [
    pytest.param("rds.amazonaws.com", "CreateDBInstance", {"monitoringRoleArn": "R"}, id="rds_monitoring_role"),
    pytest.param("eks.amazonaws.com", "CreateNodegroup", {"nodeRole": "R"}, id="eks_node_role"),
    pytest.param("redshift.amazonaws.com", "CreateCluster", {"iamRoles": ["R"]}, id="redshift_roles_as_a_list"),
    pytest.param("firehose.amazonaws.com", "CreateDeliveryStream",
                 {"redshiftDestinationConfiguration": {"roleARN": "R"}}, id="a_field_its_pass_role_entry_omits"),
    pytest.param("sns.amazonaws.com", "Subscribe", {"protocol": "firehose", "subscriptionRoleArn": "R"},
                 id="sns_subscription_role"),
    pytest.param("sns.amazonaws.com", "SetTopicAttributes",
                 {"attributeName": "LambdaSuccessFeedbackRoleArn", "attributeValue": "R"},
                 id="sns_delivery_status_role_set_as_an_attribute_value"),
    pytest.param("redshift.amazonaws.com", "ModifyClusterIamRoles", {"addIamRoles": ["R"]}, id="a_role_added"),
])
def test_a_role_arn_in_a_role_field_of_a_write_call_needs_pass_role(source, operation, params):
    # The store keeps the field (request_fields.json), and mapping grants iam:PassRole on the role, without the
    # iam:PassedToService condition, whose value the table does not know for these services.
    from lpgen.fields import request_fields
    from lpgen.mapping import Call, map_call

    role = "arn:aws:iam::111122223333:role/service-role/delivery"
    fields = request_fields(json.loads(json.dumps(params).replace('"R"', json.dumps(role))))
    assert role in {v for _, v in fields}, "the usage store drops the role"
    mapping = map_call(Call(source=source, name=operation, fields=fields, region="eu-west-1", account="111122223333"))
    assert [(p.resources, p.conditions, p.provenance) for p in mapping.permissions if p.action == "iam:PassRole"] == [
        ((role,), (), "side:pass-role")]


@pytest.mark.parametrize(("source", "operation", "params"), [
    pytest.param("sts.amazonaws.com", "AssumeRole", {"roleArn": "R"}, id="a_role_assumed_is_not_passed"),
    pytest.param("iam.amazonaws.com", "UpdateRoleDescription", {"roleName": "R"}, id="iam_manages_roles"),
    pytest.param("backup.amazonaws.com", "GetBackupPlan", {"iamRoleArn": "R"}, id="a_read"),
    pytest.param("rds.amazonaws.com", "RemoveRoleFromDBCluster", {"roleArn": "R"}, id="a_role_released"),
    pytest.param("eks.amazonaws.com", "CreateAccessEntry", {"principalArn": "R"}, id="a_role_as_a_principal"),
    pytest.param("codebuild.amazonaws.com", "CreateProject", {"description": "R"}, id="not_a_role_field"),
    pytest.param("quicksight.amazonaws.com", "RegisterUser", {"userRole": "READER"}, id="a_role_field_holding_no_role"),
    pytest.param("redshift.amazonaws.com", "ModifyClusterIamRoles", {"removeIamRoles": ["R"]}, id="a_role_taken_away"),
])
def test_no_pass_role_where_no_role_is_handed_over(source, operation, params):
    from lpgen.fields import request_fields
    from lpgen.mapping import Call, map_call

    role = "arn:aws:iam::111122223333:role/ops"
    fields = request_fields({k: role if v == "R" else [role] if v == ["R"] else v for k, v in params.items()})
    mapping = map_call(Call(source=source, name=operation, fields=fields, region="eu-west-1", account="111122223333"))
    assert "iam:PassRole" not in mapping.actions


@pytest.mark.parametrize("entry", SIDE["kms"]["values"], ids=lambda e: f"{e['source'].split('.')[0]}:{e['operation']}")
def test_each_kms_entry_reads_its_key_from_what_the_store_keeps(entry):
    from lpgen.fields import request_fields
    from lpgen.mapping import Call, map_call

    key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    fields = request_fields({**entry.get("when", {}), entry["fields"][0]: key})
    mapping = map_call(Call(source=entry["source"], name=entry["operation"], fields=fields, region="eu-west-1",
                            account="111122223333"))
    assert sorted((p.action, p.resources, p.conditions) for p in mapping.permissions if p.provenance == "side:kms-key") == [
        (a, (key,), (("kms:ViaService", f"{entry['via']}.eu-west-1.amazonaws.com"),)) for a in sorted(entry["actions"])]


@pytest.mark.parametrize(("entry", "path"), [(e, p) for e in SIDE["caller_checks"]["values"] for p in e["fields"]],
                         ids=lambda v: v if isinstance(v, str) else f"{v['source'].split('.')[0]}:{v['operation']}")
def test_each_caller_check_applies_to_what_the_store_keeps(entry, path):
    from lpgen.fields import request_fields
    from lpgen.mapping import Call, map_call

    values = {"layers": "arn:aws:lambda:eu-west-1:222233334444:layer:deps:3",
              "imageUri": "222233334444.dkr.ecr.eu-west-1.amazonaws.com/orders:1.0",
              "templateURL": "https://s3.eu-west-1.amazonaws.com/artifacts/stack.template"}
    params = _nested(path, values.get(path.rsplit(".", 1)[-1], "subnet-0a1b2c3d4e5f60718"))
    if entry.get("on") == "s3-object":  # the bucket (the entry's field) and the key
        params = _nested(entry["object"]["key"], "app.zip", _nested(entry["object"]["bucket"], "artifacts"))
    fields = request_fields(params)
    assert any(k == path for k, _ in fields), f"{path} is not kept by the usage store"
    mapping = map_call(Call(source=entry["source"], name=entry["operation"], fields=fields, region="eu-west-1",
                            account="111122223333"))
    granted = {p.action for p in mapping.permissions if p.provenance == "side:caller-check"}
    assert granted == set(entry["actions"])


@pytest.mark.parametrize("entry", SIDE["tag_on_create"]["values"],
                         ids=lambda e: f"{e['source'].split('.')[0]}:{e['operation']}")
def test_each_tag_on_create_entry_grants_its_tag_action_on_what_the_call_creates(entry):
    # The store keeps only that the request set tags; with them the call needs the tag action on the
    # created resource (never on *, which would let it retag anything), without them nothing more.
    import re

    from lpgen.fields import request_fields
    from lpgen.mapping import Call, map_call

    catalog = load_catalog()
    named = re.search(r"(?<!\$)\{(\w+)\}", entry.get("new", ""))
    params = {named[1]: "orders"} if named else {}
    tag_shapes = {"tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": [{"key": "k", "value": "v"}]}]}}
    tagged = dict(params)
    for f in entry["fields"]:  # a dotted field is nested (CreateBucketConfiguration.Tags)
        _nested(f, tag_shapes.get(f, [{"key": "k", "value": "v"}]), tagged)
    with_tags = request_fields(tagged)
    assert all((f, "present") in with_tags for f in entry["fields"]), "the store must keep that tags were set"

    def tag_permissions(fields):
        mapping = map_call(Call(source=entry["source"], name=entry["operation"], fields=fields, region="eu-west-1",
                                account="111122223333"))
        return [p for p in mapping.permissions if p.provenance == "side:tag-on-create"]

    granted = tag_permissions(with_tags)
    assert sorted(p.action for p in granted) == sorted(entry["actions"])
    for p in granted:
        assert p.side and p.resources and "*" not in p.resources
        assert all(catalog.match_resource_type(catalog.action(p.action), arn) for arn in p.resources), p.resources
        if named:
            assert any("orders" in arn for arn in p.resources), p.resources
        if entry.get("create_action_key"):
            assert p.conditions == ((entry["create_action_key"], entry["operation"]),)
    assert tag_permissions(request_fields(params)) == []


_SECRET = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/app-AbCdEf"
_CALLS = {("sts.amazonaws.com", "AssumeRole"): {"roleArn": "arn:aws:iam::111122223333:role/deploy"},
          ("s3.amazonaws.com", "CreateBucket"): {"bucketName": "acme-audit-archive"},
          ("secretsmanager.amazonaws.com", "CreateSecret"): {"name": _SECRET},
          ("secretsmanager.amazonaws.com", "RotateSecret"): {"secretId": _SECRET},
          ("secretsmanager.amazonaws.com", "BatchGetSecretValue"): {},
          ("states.amazonaws.com", "TestState"): {},
          ("logs.amazonaws.com", "FilterLogEvents"): {"logGroupName": "/app/orders"},
          ("logs.amazonaws.com", "GetLogEvents"): {"logGroupName": "/app/orders"},
          ("s3.amazonaws.com", "DeleteObject"): {"bucketName": "acme-audit-archive", "key": "2026/ledger.csv"},
          ("s3.amazonaws.com", "PutObjectRetention"): {"bucketName": "acme-audit-archive", "key": "2026/ledger.csv"},
          ("s3vectors.amazonaws.com", "QueryVectors"): {"vectorBucketName": "kb", "indexName": "docs"},
          ("s3vectors.amazonaws.com", "ListVectors"): {"vectorBucketName": "kb", "indexName": "docs"}}
#: What an option is granted on when it is not the call's first field: the log group, the object, the index.
_LOG_GROUP = ("arn:aws:logs:eu-west-1:111122223333:log-group:/app/orders",
              "arn:aws:logs:eu-west-1:111122223333:log-group:/app/orders:*")
_OBJECT = ("arn:aws:s3:::acme-audit-archive/2026/ledger.csv",)
_INDEX = ("arn:aws:s3vectors:eu-west-1:111122223333:bucket/kb/index/docs",)
_ON = {("logs.amazonaws.com", "FilterLogEvents"): _LOG_GROUP, ("logs.amazonaws.com", "GetLogEvents"): _LOG_GROUP,
       ("s3.amazonaws.com", "DeleteObject"): _OBJECT, ("s3.amazonaws.com", "PutObjectRetention"): _OBJECT,
       ("s3vectors.amazonaws.com", "QueryVectors"): _INDEX, ("s3vectors.amazonaws.com", "ListVectors"): _INDEX}
_SHAPES = {"tags": [{"key": "Repository", "value": "acme/app"}], "transitiveTagKeys": ["Repository"],
           "addReplicaRegions": [{"region": "us-east-1"}],
           "rotationLambdaARN": "arn:aws:lambda:eu-west-1:111122223333:function:rotate-app-secret",
           "secretIdList": [_SECRET]}


@pytest.mark.parametrize("entry", SIDE["request_options"]["values"],
                         ids=lambda e: f"{e['source'].split('.')[0]}:{e['operation']}:{e['fields'][0]}")
def test_each_request_option_grants_its_actions_on_what_the_call_names(entry):
    # Each field, as the store keeps it, brings the entry's actions on the role or bucket of the call (never *,
    # unless the action takes no resource);
    # without the field, with an ignored value or without the value 'when' asks for, nothing more.
    from lpgen.fields import request_fields
    from lpgen.mapping import Call, map_call

    catalog = load_catalog()
    base = _CALLS[(entry["source"], entry["operation"])]
    named = next(iter(base.values()), None)
    arn = named if named is None or named.startswith("arn:") else f"arn:aws:s3:::{named}"

    def option_permissions(params):
        mapping = map_call(Call(source=entry["source"], name=entry["operation"], fields=request_fields({**base, **params}),
                                region="eu-west-1", account="111122223333"))
        return sorted((p.action, p.resources) for p in mapping.permissions if p.provenance == "side:request-option")

    for path in entry["fields"]:
        value = entry.get("when", {}).get(path, _SHAPES.get(path, "public-read" if path == "x-amz-acl" else "set"))
        params = {path: value, **entry.get("when", {})}
        listed = value if isinstance(value, list) and all(isinstance(v, str) for v in value) else [value]
        on = listed[0] if isinstance(listed[0], str) and listed[0].startswith("arn:") else arn  # what the option names, or the call
        on = _ON.get((entry["source"], entry["operation"]), (on,))
        expected = sorted((a, ("*",) if not catalog.action(a).resource_types else on) for a in entry["actions"])
        assert all(None not in resources for _, resources in expected)  # * only for an action that takes no resource
        assert option_permissions(params) == expected, path
        assert all(catalog.has_action(a) for a in entry["actions"])
    assert option_permissions({}) == []
    for path, value in entry.get("ignore", {}).items():
        assert option_permissions({path: value}) == [], f"{path}={value} needs nothing more"
    for path, value in entry.get("when", {}).items():
        assert option_permissions({path: "false"}) == [], f"only {path}={value} needs more"


@pytest.mark.parametrize("entry", SIDE["service_bearer_tokens"]["values"], ids=lambda e: e["source"].split(".")[0])
def test_each_bearer_token_call_also_needs_get_service_bearer_token_for_its_service(entry):
    from lpgen.mapping import Call, map_call

    catalog = load_catalog()
    source = catalog.event_source(entry["source"])
    assert source is not None and entry["operation"] in catalog.botocore_operations(source.botocore)
    assert entry["note"] and entry["reference"] and entry["service"] == entry["source"]
    mapping = map_call(Call(source=entry["source"], name=entry["operation"], fields=(), region="eu-west-1",
                            account="111122223333"))
    assert [(p.action, p.resources, p.conditions, p.side) for p in mapping.permissions if p.provenance == "side:bearer-token"] == [
        ("sts:GetServiceBearerToken", ("*",), (("sts:AWSServiceName", entry["service"]),), True)]


def test_every_data_event_glob_names_catalogue_actions():
    catalog = load_catalog()
    for globs in load("observability.json")["data_events"]["values"].values():
        for glob in globs:
            assert catalog.matching(glob), glob
            assert all(observability(a.full_name) == "data" for a in catalog.matching(glob))


def test_observability_classes():
    assert observability("s3:GetObject") == "data"
    assert observability("s3:PutBucketPolicy") == "management"
    assert observability("iam:PassRole") == "never"


def _botocore_detail(reference: str) -> tuple[str, str | None]:
    service, _, operation = reference.split(":", 1)[1].partition(":")
    return service, operation or None


@pytest.mark.parametrize("key", ["api-ref", "botocore-auth"])
def test_botocore_references_name_the_catalogues_release_and_its_operations(key):
    """An entry read in a newer botocore than the catalogue's cites the '-later' reference instead."""
    catalog = load_catalog()
    assert f"botocore {catalog.meta.botocore_version} service model" in OVERRIDES["references"][key]
    for entry in OVERRIDES["overrides"]:
        kind = entry["reference"].split(":", 1)[0]
        if kind in (key, f"{key}-later"):
            service, operation = _botocore_detail(entry["reference"])
            known = catalog.botocore_operations(service)
            present = bool(known) and (operation is None or operation in known)
            assert present == (kind == key), entry


def test_iam_calls_that_act_on_the_calling_user_are_those_the_api_reference_says():
    # Without a UserName these calls act on the IAM user who signed the request, so the generated
    # policy names that user (its ARN, with its path) rather than every user: iam:CreateAccessKey on *
    # would let the holder create keys for anyone. The list is checked against the API's own words.
    import re

    import botocore.session

    from lpgen.mapping import _IAM_SELF

    model = botocore.session.get_session().get_service_model("iam")
    says_caller = re.compile(r"implicitly|defaults to the (principal|user) making|assumes the user whose credentials", re.I)
    documented = set()
    for name in model.operation_names:
        shape = model.operation_model(name).input_shape
        if shape is None or "UserName" not in shape.members or "UserName" in shape.required_members:
            continue
        if says_caller.search(model.operation_model(name).documentation + shape.members["UserName"].documentation):
            documented.add(name)
    changes_own_password = model.operation_model("ChangePassword").input_shape.members.keys() == {"OldPassword", "NewPassword"}
    assert changes_own_password and _IAM_SELF == documented | {"ChangePassword"}


@pytest.mark.parametrize(("principal", "fields", "expected"), [
    ("arn:aws:iam::123456789012:user/dev/alice", (), ("arn:aws:iam::123456789012:user/dev/alice",)),
    ("arn:aws:iam::123456789012:user/dev/alice", (("userName", "bob"),),
     ("arn:aws:iam::123456789012:user/*/bob", "arn:aws:iam::123456789012:user/bob")),
])
def test_an_iam_user_rotating_its_own_keys_is_granted_its_own_user_only(principal, fields, expected):
    from lpgen.mapping import Call, map_call

    mapping = map_call(Call(source="iam.amazonaws.com", name="CreateAccessKey", fields=fields, region="us-east-1",
                            account="123456789012", principal=principal))
    assert [(p.action, p.resources) for p in mapping.permissions] == [("iam:CreateAccessKey", expected)]
