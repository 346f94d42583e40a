#!/usr/bin/env python3
"""Write fixtures/demo/authorization-details.json: what the demo account's principals are granted.

The file has the shape that ``aws iam get-account-authorization-details`` prints
(``UserDetailList``, ``GroupDetailList``, ``RoleDetailList``, ``Policies``, with
policy documents as JSON objects), for the seven principals of the synthetic
CloudTrail week in fixtures/demo/ (written by scripts/make_demo.py).

The grants are deliberately broader than what the trail shows each principal
using: AWS managed full-access policies, ``sqs:*`` and ``Resource: "*"``, a
``NotAction`` allow, a read-everything group.  That is what a cleanup report has
to find.  Each call the trail records as denied is also not allowed here.

Where the documents come from:

* The AWS managed policies (``arn:aws:iam::aws:policy/...``) are AWS's own
  documents.  They are read from the copy moto ships in
  ``moto/iam/aws_managed_policies.py`` (the module is parsed, not imported),
  together with their path, default version and dates.  Their PolicyIds
  are made up: moto does not record the real ones.
* The customer managed policies, the inline policies, the trust policies, the
  unique ids of groups and policies, and every date except the AWS managed
  policies' are made up for the demo.  The role and user ids are the ones the
  trail carries.  ``RoleLastUsed`` is read from the trail: the last
  ``AssumeRole`` (Lambda) or ``AssumeRoleWithWebIdentity`` (CI) of each role.

Only the standard library is used, and nothing is random: two runs with the same
moto version and the same trail write the same bytes.  Run it after
scripts/make_demo.py, with a Python that has moto installed:

Usage: python scripts/make_demo_authorization.py [--out FILE] [--moto-data FILE] [--check]
"""

from __future__ import annotations

import argparse
import ast
import base64
import glob
import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
DEFAULT_OUT = DEMO / "authorization-details.json"
TRAIL = DEMO / "AWSLogs"

ACCOUNT = "210987654321"
REGION = "eu-west-1"
IAM = f"arn:aws:iam::{ACCOUNT}"

# Resources of the demo account (see fixtures/demo/README.md, "Resources").
ORDERS_TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders"
INVENTORY_TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/inventory"
NOTIFY_QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:notify-jobs"
MESSAGING_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/6f1d2c9e-4b7a-4e0f-9c3d-8a2b5e7f1a40"
CONFIG_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/b83e0a51-2d6c-4f97-a1e4-3c5d7f9b2e68"
SECRETS = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret"
PARAMETERS = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter"
FUNCTIONS = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function"
OIDC_PROVIDER = f"{IAM}:oidc-provider/token.actions.githubusercontent.com"
GITHUB_REPO = "repo:acme/orders-service"

# --------------------------------------------------------------------------
# AWS managed policies: the documents come from moto's copy
# --------------------------------------------------------------------------


def moto_data_file() -> Path:
    """moto/iam/aws_managed_policies.py of the installed moto, found without importing moto."""
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("moto is not installed: run this with the project's venv "
                 "(pip install 'moto>=5'), or pass --moto-data")
    return Path(next(iter(spec.submodule_search_locations))) / "iam" / "aws_managed_policies.py"


def moto_version() -> str:
    try:
        return importlib.metadata.version("moto")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def load_aws_managed(path: Path) -> dict[str, dict]:
    """moto's ``aws_managed_policies_data`` (a JSON string assigned in the module), by policy name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and any(isinstance(t, ast.Name) and t.id == "aws_managed_policies_data" for t in node.targets)):
            return json.loads(node.value.value)
    sys.exit(f"{path}: no aws_managed_policies_data string")


# --------------------------------------------------------------------------
# Made-up ids and dates
# --------------------------------------------------------------------------

BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
ACCOUNT_ID_PART = "TQ6B2XJ4"  # the stretch every unique id of this account shares (see make_demo.py)


def unique_id(prefix: str, seed: str, *, in_account: bool = True) -> str:
    """A 21-character IAM unique id (``AGPA...``, ``ANPA...``) derived from ``seed``."""
    digest = base64.b32encode(hashlib.sha256(seed.encode()).digest()).decode()
    body = (ACCOUNT_ID_PART + digest)[:17] if in_account else digest[:17]
    assert all(c in BASE32 or c.isdigit() for c in body)
    return prefix + body


def stamp(text: str) -> str:
    """``2026-10-30 15:48:26`` as the CLI prints IAM dates."""
    return text.replace(" ", "T") + "+00:00"


def doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(sid: str, action, resource, **extra) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(sid: str, action, resource, **extra) -> dict:
    return {"Sid": sid, "Effect": "Deny", "Action": action, "Resource": resource, **extra}


# --------------------------------------------------------------------------
# What is granted
# --------------------------------------------------------------------------

LAMBDA_TRUST = doc({"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole"})
GITHUB_TRUST = doc({
    "Effect": "Allow",
    "Principal": {"Federated": OIDC_PROVIDER},
    "Action": "sts:AssumeRoleWithWebIdentity",
    "Condition": {
        "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
        "StringLike": {"token.actions.githubusercontent.com:sub": f"{GITHUB_REPO}:*"},
    },
})

AWS_POLICY = "arn:aws:iam::aws:policy"
BASIC = f"{AWS_POLICY}/service-role/AWSLambdaBasicExecutionRole"
VPC = f"{AWS_POLICY}/service-role/AWSLambdaVPCAccessExecutionRole"
SQS_POLLER = f"{AWS_POLICY}/service-role/AWSLambdaSQSQueueExecutionRole"
S3_FULL = f"{AWS_POLICY}/AmazonS3FullAccess"
DYNAMODB_FULL = f"{AWS_POLICY}/AmazonDynamoDBFullAccess"
VIEW_ONLY = f"{AWS_POLICY}/job-function/ViewOnlyAccess"
CI_DEPLOY = f"{IAM}:policy/ci/ci-deploy"
BOUNDARY = f"{IAM}:policy/boundaries/lambda-boundary"

# Customer managed policies: versions newest first, as IAM lists them.
CUSTOMER_POLICIES = [
    {
        "arn": CI_DEPLOY,
        "created": "2024-05-14 08:29:12",
        "versions": [
            ("v2", "2026-10-30 15:40:03", doc(
                allow("CloudFormation", "cloudformation:*", "*"),
                allow("LambdaFunctions", "lambda:*", f"{FUNCTIONS}:*"),
                allow("Artifacts", ["s3:PutObject", "s3:GetObject"], "arn:aws:s3:::acme-deploy-artifacts/*"),
                allow("PassExecutionRoles", "iam:PassRole", f"{IAM}:role/service-role/*"),
                allow("ReadRoles", "iam:GetRole", "*"),
            )),
            # The first version, before inventory-sync needed CreateFunction and PassRole.
            ("v1", "2024-05-14 08:29:12", doc(
                allow("CloudFormation", "cloudformation:*", "*"),
                allow("LambdaCode", ["lambda:GetFunction", "lambda:UpdateFunctionCode", "lambda:PublishVersion"],
                      f"{FUNCTIONS}:*"),
                allow("Artifacts", ["s3:PutObject", "s3:GetObject"], "arn:aws:s3:::acme-deploy-artifacts/*"),
                allow("ReadRoles", "iam:GetRole", "*"),
            )),
        ],
    },
    {
        "arn": BOUNDARY,
        "created": "2025-06-02 16:05:51",
        "versions": [
            ("v1", "2025-06-02 16:05:51", doc(
                allow("LambdaWorkloadCeiling", [
                    "logs:*", "ssm:*", "secretsmanager:*", "kms:Decrypt", "dynamodb:*", "s3:Get*", "s3:List*",
                    "sqs:*", "sns:Publish", "xray:*", "ec2:*NetworkInterface*",
                ], "*"),
            )),
        ],
    },
]

ROLES = [
    {
        "name": "reports-reader-role-k2j4h6", "path": "/service-role/", "id": "AROATQ6B2XJ4KZ5M7NRWP",
        "created": "2025-03-11 09:42:17", "trust": LAMBDA_TRUST,
        "managed": [S3_FULL, BASIC],
        # Someone fenced off the finance data rather than scoping the role down.
        "inline": [("deny-finance-data", doc(
            deny("NoFinanceData", "s3:*", "arn:aws:s3:::acme-reports-prod/finance/*")))],
    },
    {
        "name": "orders-api-role-p9q8r7", "path": "/service-role/", "id": "AROATQ6B2XJ4D3HVYC8LE",
        "created": "2024-08-19 14:03:52", "trust": LAMBDA_TRUST,
        "managed": [DYNAMODB_FULL, BASIC],
    },
    {
        "name": "notifier-role-a1b2c3", "path": "/service-role/", "id": "AROATQ6B2XJ4GW9SUF2AK",
        "created": "2024-08-21 10:27:05", "trust": LAMBDA_TRUST,
        "managed": [BASIC],
        "inline": [("notifier-messaging", doc(
            allow("Queue", "sqs:*", NOTIFY_QUEUE),
            allow("Publish", "sns:Publish", "*"),
            allow("EncryptedMessaging", ["kms:Decrypt", "kms:GenerateDataKey"], "*"),
        ))],
    },
    {
        "name": "config-loader-role-z7x8c9", "path": "/service-role/", "id": "AROATQ6B2XJ4PL7EQM3VD",
        "created": "2025-06-02 16:11:40", "trust": LAMBDA_TRUST,
        "managed": [BASIC],
        "inline": [("config-loader-read", doc(
            allow("DatabaseSecrets", "secretsmanager:GetSecretValue", f"{SECRETS}:prod/db/*"),
            allow("AppConfig", "ssm:GetParameter*", f"{PARAMETERS}/config/app/*"),
            allow("ConfigKey", "kms:Decrypt", CONFIG_KEY),
        ))],
        "boundary": BOUNDARY,
    },
    {
        "name": "inventory-sync-role-v5w6x7", "path": "/service-role/", "id": "AROATQ6B2XJ4HS4WMV5QT",
        "created": "2026-10-30 15:48:26", "trust": LAMBDA_TRUST,
        "managed": [VPC, SQS_POLLER],
        "inline": [("inventory-sync-access", doc(
            allow("InventoryTable", ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"], INVENTORY_TABLE),
            allow("InventorySecrets", "secretsmanager:GetSecretValue", f"{SECRETS}:prod/inventory/*"),
            allow("ConfigKey", "kms:Decrypt", CONFIG_KEY),
            allow("Tracing", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*"),
        ))],
    },
    {
        "name": "github-deployer", "path": "/ci/", "id": "AROATQ6B2XJ4NB5RKT6YH",
        "created": "2024-05-14 08:31:47", "trust": GITHUB_TRUST,
        "managed": [CI_DEPLOY],
        "inline": [("ci-everything-else", doc(
            {"Sid": "AnythingButIdentity", "Effect": "Allow",
             "NotAction": ["iam:*", "organizations:*", "account:*"], "Resource": "*"},
            deny("NoRoleLifecycle", ["iam:CreateRole", "iam:DeleteRole"], "*"),
            deny("NoInstances", "ec2:RunInstances", "*"),
        ))],
        "tags": [{"Key": "managed-by", "Value": "terraform"}, {"Key": "owner", "Value": "platform"}],
    },
]

GROUPS = [
    {"name": "developers", "path": "/", "created": "2023-09-04 11:18:02", "managed": [VIEW_ONLY]},
]

ALICE = f"{IAM}:user/alice"
USERS = [
    {
        "name": "alice", "path": "/", "id": "AIDATQ6B2XJ4JF8WXC4QZ", "created": "2023-09-04 11:20:33",
        "groups": ["developers"],
        # Her own credentials, and nothing else in IAM: this is what refuses her ListUsers.
        "inline": [("iam-self-service-only", doc(
            allow("OwnCredentials", [
                "iam:GetUser", "iam:ChangePassword", "iam:ListAccessKeys", "iam:CreateAccessKey",
                "iam:UpdateAccessKey", "iam:DeleteAccessKey", "iam:ListMFADevices", "iam:EnableMFADevice",
                "iam:ResyncMFADevice",
            ], ALICE),
            allow("OwnVirtualMFADevice", ["iam:CreateVirtualMFADevice", "iam:DeleteVirtualMFADevice"],
                  f"{IAM}:mfa/alice"),
            {"Sid": "NoOtherIdentities", "Effect": "Deny", "Action": "iam:*",
             "NotResource": [ALICE, f"{IAM}:mfa/alice"]},
        ))],
        "tags": [{"Key": "team", "Value": "orders"}],
    },
]


# --------------------------------------------------------------------------
# From the trail: role usage, and a check that the ids agree
# --------------------------------------------------------------------------


def read_trail(trail: Path) -> tuple[dict[str, dict], dict[str, set[str]]]:
    """Each role's last assumption (``RoleLastUsed``) and the unique ids the records give each principal."""
    last: dict[str, tuple[str, str]] = {}
    ids: dict[str, set[str]] = {}
    files = sorted(glob.glob(str(trail / ACCOUNT / "CloudTrail" / "*" / "*" / "*" / "*" / "*.json.gz")))
    if not files:
        sys.exit(f"no log files under {trail}: run scripts/make_demo.py first")
    for name in files:
        with gzip.open(name, "rt", encoding="utf-8") as fh:
            records = json.load(fh)["Records"]
        for r in records:
            who = r.get("userIdentity") or {}
            issuer = (who.get("sessionContext") or {}).get("sessionIssuer") or {}
            if issuer.get("arn"):
                ids.setdefault(issuer["arn"], set()).add(issuer["principalId"])
            elif who.get("type") == "IAMUser":
                ids.setdefault(who["arn"], set()).add(who["principalId"])
            if r.get("eventName") in ("AssumeRole", "AssumeRoleWithWebIdentity") and not r.get("errorCode"):
                role = (r.get("requestParameters") or {}).get("roleArn")
                if role and (role not in last or r["eventTime"] > last[role][0]):
                    last[role] = (r["eventTime"], r["awsRegion"])
    used = {arn: {"LastUsedDate": t.replace("Z", "+00:00"), "Region": region} for arn, (t, region) in last.items()}
    return used, ids


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------


def name_of(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def path_of(arn: str) -> str:
    """``/service-role/`` of ``arn:aws:iam::aws:policy/service-role/X``."""
    resource = arn.split(":", 5)[5]
    return "/" + "".join(part + "/" for part in resource.split("/")[1:-1])


def attached(arns: list[str]) -> list[dict]:
    return [{"PolicyName": name_of(a), "PolicyArn": a} for a in arns]


def inline(items: list[tuple[str, dict]]) -> list[dict]:
    return [{"PolicyName": n, "PolicyDocument": d} for n, d in items]


def build(aws_managed: dict[str, dict], used: dict[str, dict], ids: dict[str, set[str]]) -> dict:
    counts: dict[str, int] = {}
    boundary_counts: dict[str, int] = {}
    for entry in [*ROLES, *GROUPS, *USERS]:
        for arn in entry.get("managed", []):
            counts[arn] = counts.get(arn, 0) + 1
        if entry.get("boundary"):
            boundary_counts[entry["boundary"]] = boundary_counts.get(entry["boundary"], 0) + 1

    problems = []
    roles = []
    for r in ROLES:
        arn = f"{IAM}:role{r['path']}{r['name']}"
        if ids.get(arn, {r["id"]}) != {r["id"]}:
            problems.append(f"{arn}: the trail says {sorted(ids[arn])}, this script {r['id']}")
        entry = {
            "Path": r["path"], "RoleName": r["name"], "RoleId": r["id"], "Arn": arn,
            "CreateDate": stamp(r["created"]), "AssumeRolePolicyDocument": r["trust"],
            "InstanceProfileList": [], "RolePolicyList": inline(r.get("inline", [])),
            "AttachedManagedPolicies": attached(r["managed"]),
        }
        if r.get("boundary"):
            entry["PermissionsBoundary"] = {"PermissionsBoundaryType": "Policy",
                                            "PermissionsBoundaryArn": r["boundary"]}
        entry["Tags"] = r.get("tags", [])
        entry["RoleLastUsed"] = used.get(arn, {})
        roles.append(entry)

    groups = [{
        "Path": g["path"], "GroupName": g["name"], "GroupId": unique_id("AGPA", f"group {g['name']}"),
        "Arn": f"{IAM}:group{g['path']}{g['name']}", "CreateDate": stamp(g["created"]),
        "GroupPolicyList": inline(g.get("inline", [])), "AttachedManagedPolicies": attached(g["managed"]),
    } for g in GROUPS]

    users = []
    for u in USERS:
        arn = f"{IAM}:user{u['path']}{u['name']}"
        if ids.get(arn, {u["id"]}) != {u["id"]}:
            problems.append(f"{arn}: the trail says {sorted(ids[arn])}, this script {u['id']}")
        users.append({
            "Path": u["path"], "UserName": u["name"], "UserId": u["id"], "Arn": arn,
            "CreateDate": stamp(u["created"]), "UserPolicyList": inline(u.get("inline", [])),
            "GroupList": u["groups"], "AttachedManagedPolicies": attached(u.get("managed", [])),
            "Tags": u.get("tags", []),
        })
    if problems:
        sys.exit("the trail and this script disagree on unique ids:\n  " + "\n  ".join(problems))

    policies = []
    for p in CUSTOMER_POLICIES:
        default = p["versions"][0]
        policies.append({
            "PolicyName": name_of(p["arn"]), "PolicyId": unique_id("ANPA", f"policy {p['arn']}"),
            "Arn": p["arn"], "Path": path_of(p["arn"]), "DefaultVersionId": default[0],
            "AttachmentCount": counts.get(p["arn"], 0),
            "PermissionsBoundaryUsageCount": boundary_counts.get(p["arn"], 0), "IsAttachable": True,
            "CreateDate": stamp(p["created"]), "UpdateDate": stamp(default[1]),
            "PolicyVersionList": [{"Document": d, "VersionId": v, "IsDefaultVersion": v == default[0],
                                   "CreateDate": stamp(t)} for v, t, d in p["versions"]],
        })
    missing = []
    for arn in sorted({a for e in [*ROLES, *GROUPS, *USERS] for a in e.get("managed", [])}):
        if not arn.startswith(AWS_POLICY + "/"):
            continue
        m = aws_managed.get(name_of(arn))
        if m is None or m.get("Path") != path_of(arn):
            missing.append(arn)
            continue
        policies.append({
            "PolicyName": name_of(arn), "PolicyId": unique_id("ANPA", f"aws policy {arn}", in_account=False),
            "Arn": arn, "Path": m["Path"], "DefaultVersionId": m["DefaultVersionId"],
            "AttachmentCount": counts[arn], "PermissionsBoundaryUsageCount": boundary_counts.get(arn, 0),
            "IsAttachable": True, "CreateDate": m["CreateDate"], "UpdateDate": m["UpdateDate"],
            # The account sees only the default version of an AWS managed policy.
            "PolicyVersionList": [{"Document": m["Document"], "VersionId": m["DefaultVersionId"],
                                   "IsDefaultVersion": True, "CreateDate": m["UpdateDate"]}],
        })
    if missing:
        sys.exit("moto's data has no document for: " + ", ".join(missing))

    return {
        "UserDetailList": sorted(users, key=lambda e: e["UserName"]),
        "GroupDetailList": sorted(groups, key=lambda e: e["GroupName"]),
        "RoleDetailList": sorted(roles, key=lambda e: e["RoleName"]),
        "Policies": sorted(policies, key=lambda e: e["PolicyName"].lower()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--moto-data", type=Path, help="moto/iam/aws_managed_policies.py (default: installed moto)")
    parser.add_argument("--trail", type=Path, default=TRAIL, help="the demo's AWSLogs/ directory")
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)

    source = args.moto_data or moto_data_file()
    used, ids = read_trail(args.trail)
    text = json.dumps(build(load_aws_managed(source), used, ids), indent=2, ensure_ascii=False) + "\n"
    where = f"AWS managed policies from {source} (moto {moto_version()})"
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else None
        if current != text:
            print(f"{args.out} is out of date ({where})", file=sys.stderr)
            return 1
        print(f"{args.out} is up to date")
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode())} bytes; {where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
