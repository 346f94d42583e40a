"""lpgen's own least privilege: the policy `lpgen/data/own_policy.json` gives each command is all it
needs (moto's server with IAM enforcement on, as a user holding only that policy), it only reads, and
the README shows exactly those policies."""

from __future__ import annotations

import json

import pytest
import requests
from click.testing import CliRunner
from moto import settings as moto_settings

from lpgen import own_policy
from lpgen.aws import RECORD_CALLS_ENV, client_factory
from lpgen.catalog import load_catalog
from lpgen.cli import main

from .conftest import (
    ROOT,
    calls_outside_allow_list,
    make_record,
    moto_server,
    recorded_calls,
    seed,
    serve_access_advisor,
    serve_public_keys,
    test_public_key,
    upload_trail,
)

ACCOUNT = "123456789012"  # moto's
VALUES = {"Account": ACCOUNT, "TrailBucket": "trail"}
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/app-role"
USER = f"arn:aws:iam::{ACCOUNT}:user/dev"
DAYS = ["--since", "2026-11-07", "--until", "2026-11-08"]
READ_LEVELS = {"Read", "List"}


def test_the_readme_shows_the_policies_of_the_data_file():
    assert own_policy.render_markdown() in (ROOT / "README.md").read_text(), \
        "README and lpgen/data/own_policy.json disagree: run python scripts/regen_own_policy_doc.py"


def test_every_permission_reads_or_says_what_it_writes():
    catalog = load_catalog()
    for action, entry in own_policy.actions().items():
        found = catalog.action(action)
        assert found is not None, f"{action} is not an IAM action"
        assert found.access_level in READ_LEVELS or entry["writes"], f"{action} is {found.access_level}"
        for call in entry["calls"]:
            service, operation = call.split(":")
            assert operation in catalog.botocore_operations(service), f"{call} is not a botocore operation"


def test_every_command_of_the_cli_is_covered():
    covered = " ".join(own_policy.commands())
    missing = [name for name in main.commands if name not in covered]
    assert not missing, f"add {missing} to lpgen/data/own_policy.json (what AWS access they need, maybe none)"


def test_a_mutating_call_through_lpgens_clients_is_caught(tmp_path, monkeypatch):
    """The suite-wide check (tests/conftest.py) fails the run on such a call; here it is made on purpose."""
    record = tmp_path / "calls.txt"
    monkeypatch.setenv(RECORD_CALLS_ENV, str(record))
    with moto_server() as endpoint:
        s3 = client_factory(endpoint_url=endpoint)("s3")
        s3.create_bucket(Bucket="scratch")
        s3.list_objects_v2(Bucket="scratch")
        seed("s3", endpoint).put_object(Bucket="scratch", Key="k", Body=b"x")  # a test's own client: not lpgen's
    calls = recorded_calls(str(record))
    assert calls == ["s3:CreateBucket", "s3:ListObjectsV2"]
    assert calls_outside_allow_list(calls) == {"s3:CreateBucket": 1}


# -- the proof: each live command, as a user holding only its policy --------------------------


def for_moto(document: dict) -> dict:
    """Placeholders filled with moto's account; moto judges only S3 on resources, the rest on ``*``."""
    statements = []
    for s in document["Statement"]:
        s3 = all(a.startswith("s3:") for a in s["Action"])
        statements.append({**s, "Resource": s["Resource"] if s3 else "*"})
    return {**document, "Statement": statements}


class Account:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        admin = lambda service: seed(service, endpoint)
        self.iam = admin("iam")
        s3 = admin("s3")
        s3.create_bucket(Bucket="trail")
        upload_trail(s3, "trail")
        self._seed_iam()
        cloudtrail = admin("cloudtrail")
        cloudtrail.create_trail(Name="main", S3BucketName="trail")
        cloudtrail.put_event_selectors(TrailName="main", EventSelectors=[{
            "ReadWriteType": "All", "IncludeManagementEvents": True,
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}])
        self.iam.create_user(UserName="lpgen-runner")
        key = self.iam.create_access_key(UserName="lpgen-runner")["AccessKey"]
        self.env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}

    def _seed_iam(self) -> None:
        doc = lambda *actions: json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": list(actions), "Resource": "*"}]})
        managed = self.iam.create_policy(PolicyName="reports", PolicyDocument=doc("s3:GetObject"))["Policy"]["Arn"]
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                                   "Principal": {"Service": "lambda.amazonaws.com"}}]})
        self.iam.create_role(RoleName="app-role", Path="/service-role/", AssumeRolePolicyDocument=trust,
                             PermissionsBoundary=managed)
        self.iam.put_role_policy(RoleName="app-role", PolicyName="inline", PolicyDocument=doc("sqs:SendMessage"))
        self.iam.attach_role_policy(RoleName="app-role", PolicyArn=managed)
        self.iam.create_group(GroupName="devs")
        self.iam.put_group_policy(GroupName="devs", PolicyName="read", PolicyDocument=doc("ec2:Describe*"))
        self.iam.attach_group_policy(GroupName="devs", PolicyArn=managed)
        self.iam.create_user(UserName="dev")
        self.iam.put_user_policy(UserName="dev", PolicyName="own", PolicyDocument=doc("iam:GetUser"))
        self.iam.add_user_to_group(GroupName="devs", UserName="dev")

    def enforce(self, on: bool) -> None:
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0" if on else b"inf", timeout=10)

    def run_as_runner(self, command: str, args: list[str]):
        """Run ``lpgen args`` as the runner holding only ``command``'s policy, with enforcement on."""
        self.enforce(False)
        self.iam.put_user_policy(UserName="lpgen-runner", PolicyName="lpgen",
                                 PolicyDocument=json.dumps(for_moto(own_policy.policy(command, VALUES))))
        self.enforce(True)
        try:
            return CliRunner().invoke(main, [*args, "--endpoint-url", self.endpoint], env=self.env)
        finally:
            self.enforce(False)


@pytest.fixture(scope="module")
def account():
    previous = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    with pytest.MonkeyPatch.context() as patch:
        serve_public_keys(patch, [test_public_key()])
        serve_access_advisor(patch)
        with moto_server() as endpoint:
            try:
                yield Account(endpoint)
            finally:
                requests.post(f"{endpoint}/moto-api/reset-auth", data=str(previous).encode(), timeout=10)


@pytest.fixture(scope="module")
def store(demo_mined):
    return str(demo_mined[0])


@pytest.mark.parametrize("principal", [ROLE, USER], ids=["role", "user"])
def test_attached_live_needs_only_its_policy(account, principal):
    result = account.run_as_runner("attached --live", ["attached", "--principal", principal, "--live",
                                                       "--region", "us-east-1", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "s3:GetObject" in json.loads(result.output)["grants"]


def test_diff_live_needs_only_its_policy(account, store):
    result = account.run_as_runner("diff --live", ["diff", "--principal", ROLE, "--store", store, "--live",
                                                   "--region", "us-east-1", "--min-days", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["principal"] == ROLE


def test_mine_s3_needs_only_its_policy_and_fails_with_another(account, tmp_path):
    args = ["mine", "s3://trail", "--store", str(tmp_path / "s.db"), "--format", "json", *DAYS]
    result = account.run_as_runner("mine s3://BUCKET", args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["events"] > 0 and "AccessDenied" not in result.output
    denied = account.run_as_runner("attached --live", args)
    assert denied.exit_code == 1 and "AccessDenied" in denied.output


def test_verify_s3_needs_only_its_policy_and_fails_without_list_public_keys(account):
    result = account.run_as_runner("verify s3://BUCKET", ["verify", "s3://trail", *DAYS])
    assert result.exit_code == 0, result.output
    assert "signatures: 4 of 4 digests verified" in result.output
    denied = account.run_as_runner("mine s3://BUCKET", ["verify", "s3://trail", *DAYS])
    assert denied.exit_code == 1 and "ListPublicKeys" in denied.output and "AccessDenied" in denied.output


def test_mine_verify_needs_only_its_policy(account, tmp_path):
    result = account.run_as_runner("mine s3://BUCKET --verify", ["mine", "s3://trail", "--verify", *DAYS,
                                                                 "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 0, result.output


def test_report_live_needs_only_its_policy(account, store):
    result = account.run_as_runner("report --live", ["report", "--store", store, "--live", "--region", "us-east-1",
                                                     "--min-days", "1", "--format", "json", "--date", "2026-11-23"])
    assert result.exit_code == 0, result.output
    held = {p["principal"]: p for p in json.loads(result.output)["principals"] if p["policies_known"]}
    assert {ROLE, USER} <= set(held) and held[ROLE]["granted"] > 0
    denied = account.run_as_runner("attached --live", ["report", "--store", store, "--live", "--region", "us-east-1"])
    assert denied.exit_code == 1 and "ListRoles" in denied.output


def test_sam_live_needs_only_its_policy(account):
    seed("cloudformation", account.endpoint).create_stack(StackName="jobs", TemplateBody=json.dumps({"Resources": {
        "WorkerFunctionRole": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "jobs-WorkerFunctionRole-1A2B3C", "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}}}}}))
    args = ["sam", str(ROOT / "fixtures" / "sam" / "sqs-poller.yaml"), "--live", "--stack", "jobs",
            "--region", "us-east-1", "--format", "json"]
    result = account.run_as_runner("sam --live --stack NAME", args)
    assert result.exit_code == 0, result.output
    (worker,) = json.loads(result.output)["functions"]
    assert worker["role"] == f"arn:aws:iam::{ACCOUNT}:role/jobs-WorkerFunctionRole-1A2B3C"
    denied = account.run_as_runner("attached --live", args)
    assert denied.exit_code == 1 and "ListStackResources" in denied.output


def test_mine_logs_needs_only_its_policy(account, tmp_path):
    from datetime import datetime, timedelta, timezone

    from .test_logs_source import put_records

    recent = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)  # CloudWatch Logs refuses old events
    records = [make_record(time=(recent + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ")) for i in range(3)]
    account.enforce(False)
    put_records(account.endpoint, "trail-logs", records)
    args = ["mine", "logs:trail-logs", "--region", "us-east-1", "--since", "6h", "--format", "json",
            "--store", str(tmp_path / "s.db")]
    result = account.run_as_runner("mine (CloudWatch Logs source)", args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["events"] == 3
    denied = account.run_as_runner("mine s3://BUCKET", [*args[:-1], str(tmp_path / "t.db")])
    assert denied.exit_code == 1 and "AccessDenied" in denied.output
