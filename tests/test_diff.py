"""The diff: granted against used, offline from the demo's authorization details and live from
IAM (moto's server, real HTTP, AWS managed policies loaded) — both must agree."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from lpgen.attached import Attached, AttachedError, AuthorizationDetails, live_attached
from lpgen.aws import client_factory
from lpgen.cli import main
from lpgen.diff import MISSING, NOT_JUDGED, OVER_BROAD, UNOBSERVABLE, UNUSED, USED, DiffOptions, diff, render_diff
from lpgen.expand import expand

from .conftest import DEMO, moto_server, seed

FILE = DEMO / "authorization-details.json"
ACCOUNT, MOTO_ACCOUNT = "210987654321", "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role"
READER, CONFIG, NOTIFIER = (f"{ROLE}/reports-reader-role-k2j4h6", f"{ROLE}/config-loader-role-z7x8c9",
                            f"{ROLE}/notifier-role-a1b2c3")
DEPLOYER, ALICE = f"arn:aws:iam::{ACCOUNT}:role/ci/github-deployer", f"arn:aws:iam::{ACCOUNT}:user/alice"
WEEK = DiffOptions(min_days=7)


@pytest.fixture(scope="module")
def store(demo_mined):
    return demo_mined


def demo_diff(store, principal, options=WEEK):
    _, rows, coverage = store
    attached = AuthorizationDetails.load(FILE).attached(principal)
    return diff(principal, rows, expand(attached), coverage, options, attached_documents=attached.documents())


def by_category(d) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in d.entries:
        out.setdefault(e.category, set()).add(e.action)
    return out


def test_s3_full_access_reading_one_prefix(store):
    d = demo_diff(store, READER)
    cats = by_category(d)
    assert "s3:GetObject" in cats[OVER_BROAD]
    assert len({a for a in cats[UNUSED] if a.startswith("s3:")}) > 100
    assert {"s3:DeleteObject", "s3:PutBucketPolicy", "s3:CreateBucket"} <= cats[UNUSED]
    reads = [s for s in d.recommended.statements if "s3:GetObject" in s.actions]
    assert [s.resources for s in reads] == [("arn:aws:s3:::acme-reports-prod/reports/*",)]  # a time series
    # what it used, and the S3 Object Lambda actions (data events this trail did not log) kept as granted
    assert d.before > 150 and d.after < 10
    assert {a.split(":")[0] for s in d.kept for a in s.actions} == {"s3-object-lambda"}
    assert f"→ recommended: {d.after} (and {d.kept_actions()} kept as granted" in render_diff(d)


def test_the_recommended_policy_keeps_what_cloudtrail_could_not_show_as_granted(store):
    # Unobservable is never recommended for removal: not in the entries, not in the recommended document, not in
    # the document diff. A Lambda function's S3 reads, with S3 data events not logged, would otherwise be dropped.
    d = demo_diff(store, READER, DiffOptions(min_days=7, data_events=frozenset()))
    proposed = d.proposed()
    kept = {a: s["Resource"] for s in proposed["Statement"] if s["Sid"].endswith("Kept")
            for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert kept["s3:DeleteObject"] == kept["s3:PutObject"] == "*"  # as S3FullAccess grants them
    assert "s3:PutBucketPolicy" not in kept  # a management event: judged, and unused
    assert "s3:GetObject" not in kept  # used: the generated statement scopes it
    # the attached Deny of the finance data stays: the kept s3:DeleteObject on * must not reach it
    denies = [s for s in proposed["Statement"] if s["Effect"] == "Deny"]
    assert [(s["Action"], s["Resource"]) for s in denies] == [("s3:*", "arn:aws:s3:::acme-reports-prod/finance/*")]
    assert len({s["Sid"] for s in proposed["Statement"]}) == len(proposed["Statement"])
    assert json.loads(render_diff(d, "json"))["recommended"] == proposed


def test_data_events_the_trail_did_not_log_are_unobservable_not_unused(store):
    d = demo_diff(store, READER, DiffOptions(min_days=7, data_events=frozenset()))
    cats = by_category(d)
    assert "s3:DeleteObject" in cats[UNOBSERVABLE] and "s3:DeleteObject" not in cats.get(UNUSED, set())
    assert "s3:PutBucketPolicy" in cats[UNUSED]  # a management event: the trail would have shown it


def test_lambda_baseline_and_pass_role_are_never_called_unused(store):
    cats = by_category(demo_diff(store, READER))
    assert "logs:PutLogEvents" in cats[UNOBSERVABLE]
    deployer = by_category(demo_diff(store, DEPLOYER))
    assert "iam:PassRole" in deployer[USED] | deployer.get(OVER_BROAD, set())


def test_a_short_window_calls_nothing_unused(store):
    d = demo_diff(store, READER, DiffOptions())
    assert not d.judged and UNUSED not in by_category(d) and NOT_JUDGED in by_category(d)
    assert "fewer than --min-days 30" in render_diff(d)


def test_denied_call_shows_as_missing(store):
    d = demo_diff(store, CONFIG)
    missing = [(e.action, e.used_on, e.why) for e in d.entries if e.category == MISSING]
    assert missing == [("ssm:GetParameter", (f"arn:aws:ssm:eu-west-1:{ACCOUNT}:parameter/config/billing/api-key",),
                        "wanted and denied")]


def test_a_secret_granted_by_its_complete_arn_is_used_not_missing(store):
    # The recommendation names the secret as NAME-?????? (lpgen.generate.by_name); what the role used
    # is still the complete ARN its calls gave, which a grant of exactly that ARN covers.
    from lpgen.attached import Attached, Policy

    secret = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:prod/db/credentials-AbCdEf"
    attached = Attached(principal=CONFIG, policies=(Policy(name="exact", kind="inline", document={
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret}]}),))
    _, rows, coverage = store
    d = diff(CONFIG, rows, expand(attached), coverage, WEEK)
    assert [(e.category, e.used_on) for e in d.entries if e.action == "secretsmanager:GetSecretValue"] == [
        (USED, (secret,))]
    assert [s.resources for s in d.recommended.statements if "secretsmanager:GetSecretValue" in s.actions] == [
        (secret[:-7] + "-??????",)]


def test_a_content_named_artifact_is_not_covered_by_a_grant_of_another_digest(store):
    # The recommendation grants the deployer's artifacts by folder (lpgen.generate.by_family), but the
    # calls named each object exactly: a grant of another object allowed none of them.
    from lpgen.attached import Attached, Policy

    folder = "arn:aws:s3:::acme-deploy-artifacts/orders-service/"
    other = folder + "ffffffffffffffffffffffffffffffffffffffff.zip"
    attached = Attached(principal=DEPLOYER, policies=(Policy(name="stale", kind="inline", document={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": other}]}),))
    _, rows, coverage = store
    d = diff(DEPLOYER, rows, expand(attached), coverage, WEEK)
    missing = next(e for e in d.entries if e.action == "s3:PutObject" and e.category == MISSING)
    assert len(missing.used_on) == 10 and all(r.startswith(folder) and r != other for r in missing.used_on)
    assert [s.resources for s in d.recommended.statements if "s3:PutObject" in s.actions] == [(folder + "*",)]


@pytest.mark.parametrize(("error", "categories"), [
    pytest.param(None, [USED], id="allowed"),
    pytest.param("AccessDenied", [MISSING, UNUSED], id="denied"),
])
def test_a_call_naming_a_secret_by_partial_arn_is_covered_by_a_grant_of_its_complete_arn_only_if_allowed(
        tmp_path, error, categories):
    # The call could only have reached the secret its complete ARN names; denied, it did not.
    from lpgen.attached import Attached, Policy
    from lpgen.mine import mine
    from lpgen.sources.local import LocalSource
    from lpgen.store import UsageStore

    from .conftest import ROLE, make_record, write_log

    partial = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db/credentials"
    write_log(tmp_path / "logs" / "log.json.gz", [make_record(
        source="secretsmanager.amazonaws.com", name="GetSecretValue", params={"secretId": partial},
        **({"errorCode": error, "errorMessage": "not authorized"} if error else {}))])
    with UsageStore(tmp_path / "s.db") as store:
        mine([LocalSource(tmp_path / "logs")], store)
        rows, coverage = list(store.usage()), store.coverage()
    attached = Attached(principal=ROLE, policies=(Policy(name="exact", kind="inline", document={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                                "Resource": partial + "-AbCdEf"}]}),))
    d = diff(ROLE, rows, expand(attached), coverage, DiffOptions(min_days=0))
    assert sorted(e.category for e in d.entries) == categories
    assert [e.used_on for e in d.entries if e.category in (USED, MISSING)] == [(partial,)]


def test_boundary_and_explicit_deny_shape_the_grants():
    deployer = expand(AuthorizationDetails.load(FILE).attached(DEPLOYER))
    assert "iam:CreateRole" not in deployer.grants and "ec2:RunInstances" not in deployer.grants
    assert "s3:DeleteBucket" in deployer.grants  # the NotAction statement's over-grant
    config = expand(AuthorizationDetails.load(FILE).attached(CONFIG))
    assert all(a.split(":")[0] in {"logs", "ssm", "secretsmanager", "kms", "dynamodb", "s3", "sqs", "sns",
                                   "xray", "ec2"} for a in config.grants)


def test_user_gets_group_policies():
    alice = AuthorizationDetails.load(FILE).attached(ALICE)
    assert any(p.via == "developers" for p in alice.policies)


def test_unknown_principal_and_bad_file_are_clean_errors(tmp_path):
    with pytest.raises(AttachedError, match="not in the authorization details"):
        AuthorizationDetails.load(FILE).attached(f"arn:aws:iam::{ACCOUNT}:role/nobody")
    (tmp_path / "x.json").write_text('{"Events": []}')
    with pytest.raises(AttachedError, match="not an authorization-details file"):
        AuthorizationDetails.load(tmp_path / "x.json")


def test_structural_diff_of_the_documents_is_readable(store):
    d = demo_diff(store, NOTIFIER)
    assert "changed from {'Effect': 'Allow', 'Action': ['sns:Publish'], 'Resource': ['*']}" in d.document_diff
    assert ("to {'Effect': 'Allow', 'Action': ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], "
            f"'Resource': ['arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/lambda/notifier:*']}}") in d.document_diff


def test_diff_command_formats_and_fail_on(store):
    path, _, _ = store
    args = ["diff", "--principal", READER, "--store", str(path), "--attached", str(FILE), "--min-days", "7"]
    runner = CliRunner()
    assert runner.invoke(main, [*args, "--fail-on", "unused"]).exit_code == 1
    data = json.loads(runner.invoke(main, [*args, "--format", "json"]).output)
    assert data["counts"][UNUSED] > 100 and data["recommended"]["Version"] == "2012-10-17"
    assert runner.invoke(main, [*args, "--format", "md"]).output.startswith(f"## {READER}")
    attached = runner.invoke(main, ["attached", "--principal", CONFIG, "--attached", str(FILE)])
    assert attached.exit_code == 0 and "permissions boundary" in attached.output
    assert runner.invoke(main, ["attached", "--principal", CONFIG]).exit_code == 2


# -- live IAM through moto's server ------------------------------------------------------------


def _load_into_iam(iam, details: dict) -> None:
    """Create the file's policies, groups, roles and users in IAM (moto), in moto's account."""
    local = lambda value: json.loads(json.dumps(value).replace(f":{ACCOUNT}:", f":{MOTO_ACCOUNT}:"))  # noqa: E731
    for p in details["Policies"]:
        if ":iam::aws:policy/" in p["Arn"]:
            continue
        doc = next(v["Document"] for v in p["PolicyVersionList"] if v["IsDefaultVersion"])
        iam.create_policy(PolicyName=p["PolicyName"], Path=p["Path"], PolicyDocument=json.dumps(local(doc)))
    for g in details["GroupDetailList"]:
        iam.create_group(GroupName=g["GroupName"], Path=g["Path"])
        for p in g.get("GroupPolicyList", []):
            iam.put_group_policy(GroupName=g["GroupName"], PolicyName=p["PolicyName"],
                                 PolicyDocument=json.dumps(local(p["PolicyDocument"])))
        for p in g.get("AttachedManagedPolicies", []):
            iam.attach_group_policy(GroupName=g["GroupName"], PolicyArn=local(p["PolicyArn"]))
    for r in details["RoleDetailList"]:
        extra = {"PermissionsBoundary": local(r["PermissionsBoundary"]["PermissionsBoundaryArn"])} \
            if r.get("PermissionsBoundary") else {}
        iam.create_role(RoleName=r["RoleName"], Path=r["Path"],
                        AssumeRolePolicyDocument=json.dumps(local(r["AssumeRolePolicyDocument"])), **extra)
        for p in r.get("RolePolicyList", []):
            iam.put_role_policy(RoleName=r["RoleName"], PolicyName=p["PolicyName"],
                                PolicyDocument=json.dumps(local(p["PolicyDocument"])))
        for p in r.get("AttachedManagedPolicies", []):
            iam.attach_role_policy(RoleName=r["RoleName"], PolicyArn=local(p["PolicyArn"]))
    for u in details["UserDetailList"]:
        iam.create_user(UserName=u["UserName"], Path=u["Path"])
        for p in u.get("UserPolicyList", []):
            iam.put_user_policy(UserName=u["UserName"], PolicyName=p["PolicyName"],
                                PolicyDocument=json.dumps(local(p["PolicyDocument"])))
        for p in u.get("AttachedManagedPolicies", []):
            iam.attach_user_policy(UserName=u["UserName"], PolicyArn=local(p["PolicyArn"]))
        for group in u.get("GroupList", []):
            iam.add_user_to_group(GroupName=group, UserName=u["UserName"])


@pytest.fixture(scope="module")
def live_iam():
    with moto_server(MOTO_IAM_LOAD_MANAGED_POLICIES="true") as endpoint:  # AWS managed policies loaded
        factory = client_factory(region="us-east-1", endpoint_url=endpoint)
        _load_into_iam(seed("iam", endpoint), json.loads(FILE.read_text()))
        yield factory, endpoint


@pytest.mark.parametrize("principal", [READER, CONFIG, NOTIFIER, DEPLOYER, ALICE], ids=lambda p: p.rsplit("/", 1)[-1])
def test_live_and_offline_give_the_same_diff(store, live_iam, principal):
    factory, _ = live_iam
    live = live_attached(principal.replace(ACCOUNT, MOTO_ACCOUNT), factory)
    back = lambda p: replace(p, document=json.loads(json.dumps(p.document).replace(MOTO_ACCOUNT, ACCOUNT)),  # noqa: E731
                             arn=p.arn and p.arn.replace(MOTO_ACCOUNT, ACCOUNT))
    live = Attached(principal=principal, policies=tuple(back(p) for p in live.policies),
                    boundary=back(live.boundary) if live.boundary else None)
    _, rows, coverage = store
    # AWS managed policies are the versions moto's release bundles, not the fixture's copies (AWS
    # revises them monthly): both sides read moto's, and everything else must be the same as given.
    offline_attached = AuthorizationDetails.load(FILE).attached(principal)
    aws = {p.arn: p.document for p in live.policies if p.arn and p.arn.startswith("arn:aws:iam::aws:policy/")}
    ours = lambda p: replace(p, document=aws.get(p.arn, p.document))  # noqa: E731
    offline_attached = replace(offline_attached, policies=tuple(ours(p) for p in offline_attached.policies))
    assert sorted((p.name, p.kind, p.arn, p.via) for p in live.policies) == sorted(
        (p.name, p.kind, p.arn, p.via) for p in offline_attached.policies)
    offline = diff(principal, rows, expand(offline_attached), coverage, WEEK,
                   attached_documents=offline_attached.documents())
    online = diff(principal, rows, expand(live), coverage, WEEK, attached_documents=live.documents())
    normalise = lambda d: json.loads(render_diff(d, "json").replace(MOTO_ACCOUNT, ACCOUNT))  # noqa: E731
    assert normalise(online) == normalise(offline)


def test_attached_command_live(live_iam):
    _, endpoint = live_iam
    moto_role = READER.replace(ACCOUNT, MOTO_ACCOUNT)
    result = CliRunner().invoke(main, ["attached", "--principal", moto_role, "--live", "--endpoint-url", endpoint,
                                       "--region", "us-east-1", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "s3:DeleteBucket" in json.loads(result.output)["grants"]


def test_event_selectors_say_which_data_events_were_logged(live_iam):
    from lpgen.live import logged_data_prefixes

    factory, endpoint = live_iam
    seed("s3", endpoint).create_bucket(Bucket="trail-logs")
    cloudtrail = seed("cloudtrail", endpoint)
    cloudtrail.create_trail(Name="main", S3BucketName="trail-logs")
    cloudtrail.put_event_selectors(TrailName="main", EventSelectors=[{
        "ReadWriteType": "All", "IncludeManagementEvents": True,
        "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]},
                          {"Type": "AWS::Lambda::Function", "Values": ["arn:aws:lambda"]}]}])
    assert logged_data_prefixes(factory) == {"s3", "lambda"}


def test_access_advisor_keeps_recently_used_services_from_being_called_unused(store):
    from datetime import datetime, timezone

    import boto3
    from botocore.stub import Stubber

    from lpgen.live import recently_accessed_services

    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(iam) as stub:
        stub.add_response("generate_service_last_accessed_details", {"JobId": "11111111-2222-3333-4444-555555555555"}, {"Arn": READER})
        stub.add_response("get_service_last_accessed_details", {
            "JobStatus": "COMPLETED", "JobCreationDate": datetime(2026, 11, 20, tzinfo=timezone.utc),
            "JobCompletionDate": datetime(2026, 11, 20, tzinfo=timezone.utc),
            "ServicesLastAccessed": [
                {"ServiceName": "Amazon S3", "ServiceNamespace": "s3",
                 "LastAuthenticated": datetime(2026, 10, 1, tzinfo=timezone.utc)},
                {"ServiceName": "AWS Lambda", "ServiceNamespace": "lambda",
                 "LastAuthenticated": datetime(2025, 1, 1, tzinfo=timezone.utc)},
                {"ServiceName": "Amazon EC2", "ServiceNamespace": "ec2"}]}, {"JobId": "11111111-2222-3333-4444-555555555555"})
        recent = recently_accessed_services(READER, lambda service: iam, days=90,
                                            now=datetime(2026, 11, 20, tzinfo=timezone.utc))
    assert recent == {"s3": "2026-10-01T00:00:00Z"}
    d = demo_diff(store, READER, DiffOptions(min_days=7, recently_accessed=recent))
    cats = by_category(d)
    assert "s3:DeleteObject" in cats[NOT_JUDGED] and not any(a.startswith("s3:") for a in cats.get(UNUSED, ()))


@pytest.mark.parametrize(("granted", "categories"), [
    pytest.param("arn:aws:iam::123456789012:role/service-role/reports-role", [USED], id="role_under_a_path"),
    pytest.param("arn:aws:iam::123456789012:role/reports-role", [USED], id="role_without_a_path"),
    pytest.param("arn:aws:iam::123456789012:role/another-role", [MISSING, OVER_BROAD], id="another_role"),
])
def test_a_role_named_without_its_path_is_covered_by_a_grant_of_that_role_at_any_path(tmp_path, granted, categories):
    # GetRole names the role, not its path, and nothing in the store shows the role's ARN: its pair
    # (role/NAME, role/*/NAME) is either ARN, so a grant of the role where it is covers the call.
    from lpgen.attached import Attached, Policy
    from lpgen.mine import mine
    from lpgen.sources.local import LocalSource
    from lpgen.store import UsageStore

    from .conftest import ROLE, make_record, write_log

    write_log(tmp_path / "logs" / "log.json.gz", [make_record(
        source="iam.amazonaws.com", name="GetRole", params={"roleName": "reports-role"}, region="us-east-1")])
    with UsageStore(tmp_path / "s.db") as store:
        mine([LocalSource(tmp_path / "logs")], store)
        rows, coverage = list(store.usage()), store.coverage()
    attached = Attached(principal=ROLE, policies=(Policy(name="exact", kind="inline", document={
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iam:GetRole", "Resource": granted}]}),))
    d = diff(ROLE, rows, expand(attached), coverage, DiffOptions(min_days=0))
    assert sorted(e.category for e in d.entries) == categories


def test_a_principal_granted_its_generated_policy_has_nothing_unused_over_broad_or_missing(all_trails_mined):
    """Generation and the diff agree, over every record we ship: with its generated policy attached, each principal
    uses everything granted on no more than it used, and misses only what it was refused (wanted and denied)."""
    from lpgen.attached import Policy
    from lpgen.catalog import load_catalog
    from lpgen.generate import GenerateOptions, generate
    from lpgen.mapping import iam_paths

    rows, coverage = all_trails_mined
    catalog = load_catalog()
    policies = generate(rows, GenerateOptions(), catalog, paths=iam_paths(rows))
    assert len(policies) > 50
    for principal, policy in sorted(policies.items()):
        attached = Attached(principal=principal, policies=(Policy(name="generated", kind="inline",
                                                                  document=policy.document()),))
        d = diff(principal, rows, expand(attached), coverage, DiffOptions(min_days=0), catalog)
        wrong = [(e.category, e.action, e.why) for e in d.entries
                 if e.category in (UNUSED, OVER_BROAD) or (e.category == MISSING and e.why != "wanted and denied")]
        assert not wrong, f"{principal}: {wrong}"
        assert sum(d.counts().values()) > 0, principal
