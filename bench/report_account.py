"""Time `lpgen report` on a synthetic account of many principals (default 300), and weigh its outputs.

    python bench/report_account.py --principals 300 --out /tmp/acct

Writes a deterministic account (same seed, same bytes): an authorization-details file with
``--principals`` roles and users — Lambda roles with inline statements on a few services,
roles with AWS-managed-style service wildcards (``s3:*``, ``dynamodb:*``, ...), read-only roles
(``*:Describe*``, ``*:Get*``, ``*:List*`` on thirty services), a few administrators (``*``),
inactive roles, roles whose only calls were denied — and 30 days of CloudTrail in the S3
delivery layout where each principal calls its services. Then it mines the trail and times
the report in every format (building the report once, rendering each), printing the sizes.
No test asserts these times; RESULTS.md records them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ACCOUNT = "777788889999"
REGION = "eu-west-1"
START = datetime(2026, 10, 1, tzinfo=timezone.utc)
DAYS = 30
SERVICES = {  # service → (eventSource, [(eventName, request parameters builder)])
    "s3": ("s3.amazonaws.com", [("GetObject", lambda n: {"bucketName": f"data-{n}", "key": f"in/{n}.json"}),
                                ("PutObject", lambda n: {"bucketName": f"data-{n}", "key": f"out/{n}.json"})]),
    "dynamodb": ("dynamodb.amazonaws.com", [("GetItem", lambda n: {"tableName": f"table-{n}"}),
                                            ("PutItem", lambda n: {"tableName": f"table-{n}"}),
                                            ("Query", lambda n: {"tableName": f"table-{n}"})]),
    "sqs": ("sqs.amazonaws.com", [("SendMessage", lambda n: {
        "queueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/queue-{n}"})]),
    "sns": ("sns.amazonaws.com", [("Publish", lambda n: {"topicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:topic-{n}"})]),
    "secretsmanager": ("secretsmanager.amazonaws.com", [("GetSecretValue", lambda n: {
        "secretId": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:app-{n}-AbCdEf"})]),
    "ssm": ("ssm.amazonaws.com", [("GetParameter", lambda n: {"name": f"/app/{n}/config"})]),
    "kms": ("kms.amazonaws.com", [("Decrypt", lambda n: {"keyId": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.UUID(int=n)}"})]),
    "lambda": ("lambda.amazonaws.com", [("Invoke", lambda n: {"functionName": f"fn-{n}"})]),
    "ec2": ("ec2.amazonaws.com", [("DescribeInstances", lambda n: {})]),
    "cloudwatch": ("monitoring.amazonaws.com", [("PutMetricData", lambda n: {"namespace": f"App{n}"})]),
}
READ_ONLY_SERVICES = ["s3", "dynamodb", "sqs", "sns", "ec2", "lambda", "kms", "ssm", "secretsmanager", "iam", "rds",
                      "ecs", "eks", "ecr", "logs", "cloudwatch", "cloudformation", "states", "events", "kinesis",
                      "firehose", "glue", "athena", "sagemaker", "elasticloadbalancing", "autoscaling", "route53",
                      "cloudfront", "apigateway", "cognito-idp"]


def account(n: int, seed: int) -> tuple[dict, list[dict]]:
    rng = random.Random(seed)
    roles, users, records = [], [], []
    for i in range(n):
        kind = ("admin" if i % 50 == 0 else "readonly" if i % 10 == 1 else "wildcard" if i % 4 == 2
                else "inactive" if i % 25 == 3 else "refused" if i % 40 == 5 else "lambda")
        services = rng.sample(sorted(SERVICES), k=rng.randint(1, 4))
        if kind == "admin":
            statements = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
        elif kind == "readonly":
            statements = [{"Effect": "Allow", "Action": [f"{s}:{v}*" for s in READ_ONLY_SERVICES
                                                         for v in ("Describe", "Get", "List")], "Resource": "*"}]
        elif kind == "wildcard":
            statements = [{"Effect": "Allow", "Action": [f"{s}:*" for s in services], "Resource": "*"}]
        else:
            statements = [{"Effect": "Allow", "Action": [f"{s}:{name}" for s in services
                                                         for name, _ in SERVICES[s][1]], "Resource": "*"}]
        name = f"{kind}-{i:03d}"
        arn = f"arn:aws:iam::{ACCOUNT}:role/service-role/{name}"
        policy = [{"PolicyName": f"{name}-policy", "PolicyDocument": {"Version": "2012-10-17", "Statement": statements}}]
        if i % 15 == 7:
            users.append({"UserName": name, "Path": "/", "Arn": f"arn:aws:iam::{ACCOUNT}:user/{name}",
                          "UserPolicyList": policy, "AttachedManagedPolicies": [], "GroupList": []})
            arn = f"arn:aws:iam::{ACCOUNT}:user/{name}"
        else:
            roles.append({"RoleName": name, "Path": "/service-role/", "Arn": arn, "RolePolicyList": policy,
                          "AttachedManagedPolicies": [], "AssumeRolePolicyDocument": {"Statement": []}})
        if kind == "inactive":
            continue
        identity = ({"type": "IAMUser", "arn": arn, "accountId": ACCOUNT, "userName": name, "principalId": f"AIDA{i:012d}"}
                    if ":user/" in arn else {
                        "type": "AssumedRole", "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/s", "accountId": ACCOUNT,
                        "principalId": f"AROA{i:012d}:s", "sessionContext": {"sessionIssuer": {
                            "type": "Role", "arn": arn, "accountId": ACCOUNT, "userName": name}}})
        for s in services[: max(1, len(services) - 1)]:  # one service stays unused
            source, calls = SERVICES[s]
            for event_name, params in calls[:2]:
                for _ in range(rng.randint(3, 12)):
                    t = START + timedelta(seconds=rng.randrange(DAYS * 86400))
                    record = {"eventVersion": "1.09", "userIdentity": identity, "eventTime": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                              "eventSource": source, "eventName": event_name, "awsRegion": REGION,
                              "sourceIPAddress": "198.51.100.7", "userAgent": "Boto3/1.34.0",
                              "requestParameters": params(i), "responseElements": None,
                              "eventID": str(uuid.UUID(int=rng.getrandbits(128))), "eventType": "AwsApiCall",
                              "recipientAccountId": ACCOUNT, "eventCategory": "Management"}
                    if kind == "refused":
                        record.update(errorCode="AccessDenied", errorMessage="not authorized")
                    records.append(record)
    details = {"RoleDetailList": roles, "UserDetailList": users, "GroupDetailList": [], "Policies": []}
    return details, records


def write(out: Path, n: int, seed: int) -> None:
    details, records = account(n, seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "authorization-details.json").write_text(json.dumps(details, indent=1, sort_keys=True))
    by_day: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["eventTime"]):
        by_day.setdefault(r["eventTime"][:10], []).append(r)
    for day, day_records in by_day.items():
        folder = out / "AWSLogs" / ACCOUNT / "CloudTrail" / REGION / day.replace("-", "/")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{ACCOUNT}_CloudTrail_{REGION}_{day.replace('-', '')}T0000Z_bench.json.gz"
        (folder / name).write_bytes(gzip.compress(json.dumps({"Records": day_records}).encode(), mtime=0))
    print(f"wrote {len(details['RoleDetailList'])} roles, {len(details['UserDetailList'])} users, "
          f"{len(records):,} events to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--principals", type=int, default=300)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=Path("/tmp/lpgen-report-bench"))
    args = parser.parse_args()
    write(args.out, args.principals, args.seed)

    from lpgen.attached import AuthorizationDetails
    from lpgen.catalog import load_catalog
    from lpgen.diff import DiffOptions
    from lpgen.mine import mine
    from lpgen.report import build_report
    from lpgen.report_render import render_report
    from lpgen.sources.local import LocalSource
    from lpgen.store import UsageStore

    store_path = args.out / "usage.db"
    store_path.unlink(missing_ok=True)
    started = time.perf_counter()
    with UsageStore(store_path) as store:
        mine([LocalSource(args.out / "AWSLogs")], store, workers=2)
        rows, coverage = list(store.usage(include_service=True)), store.coverage()
    print(f"mine: {time.perf_counter() - started:.2f} s, {len(rows):,} aggregates")
    started = time.perf_counter()
    load_catalog().actions("s3")
    details = AuthorizationDetails.load(args.out / "authorization-details.json")
    print(f"catalogue and authorization file: {time.perf_counter() - started:.2f} s")
    started = time.perf_counter()
    report = build_report(rows, coverage, details.attached, details.principals(),
                          options=DiffOptions(min_days=7), date="2026-11-23")
    print(f"build_report: {time.perf_counter() - started:.2f} s for {len(report.principals)} principals, "
          f"{len(report.findings)} findings")
    for fmt in ("text", "md", "json", "sarif", "html"):
        started = time.perf_counter()
        text = render_report(report, fmt)
        (args.out / f"report.{fmt}").write_text(text, encoding="utf-8")
        print(f"render {fmt}: {time.perf_counter() - started:.2f} s, {len(text.encode()) / 1e6:.2f} MB")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
