"""Write a deterministic synthetic CloudTrail archive in the S3 delivery layout, for benchmarks.

    python bench/gen_archive.py --events 200000 --files 400 --out /tmp/ct --seed 7

Records have the shape and size of real ones (about 1.5 KB: identity with session
context, user agent, request and response elements, TLS details) and a realistic
mix: Lambda and ECS roles calling S3 (many distinct object keys), DynamoDB, SQS,
SNS, KMS through services, Secrets Manager, SSM, CloudWatch Logs; a CI role; an IAM
user; AWS services acting on their own; a few per cent AccessDenied. The same seed
gives the same bytes whatever --workers is.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ACCOUNT = "444455556666"
REGIONS = ("eu-west-1", "us-east-1")
START = datetime(2026, 10, 1, tzinfo=timezone.utc)
AGENT = ("Boto3/1.34.{p} md/Botocore#1.34.{p} ua/2.0 os/linux#5.10.219-229.866.amzn2.x86_64 md/arch#x86_64 "
         "lang/python#3.12.{p} md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy")


def _roles() -> list[tuple[str, str, list[tuple]]]:
    """(role name, path, habits); a habit is (source, name, category, params maker, weight)."""
    roles = []
    for i, app in enumerate(("orders", "billing", "reports", "search", "media", "ledger", "users", "notify")):
        bucket, table, queue = f"{app}-data-{ACCOUNT}", f"{app}-table", f"{app}-jobs"
        habits = [
            ("s3.amazonaws.com", "GetObject", "Data", lambda r, b=bucket: _s3(r, b), 6),
            ("s3.amazonaws.com", "PutObject", "Data", lambda r, b=bucket: _s3(r, b), 3),
            ("s3.amazonaws.com", "ListObjects", "Data", lambda r, b=bucket: ({"bucketName": b, "prefix": "in/"}, b), 1),
            ("dynamodb.amazonaws.com", "GetItem", "Data", lambda r, t=table: _ddb(t), 8),
            ("dynamodb.amazonaws.com", "PutItem", "Data", lambda r, t=table: _ddb(t), 4),
            ("dynamodb.amazonaws.com", "Query", "Data", lambda r, t=table: _ddb(t, index="gsi1"), 3),
            ("sqs.amazonaws.com", "ReceiveMessage", "Data", lambda r, q=queue: _sqs(q), 4),
            ("sqs.amazonaws.com", "DeleteMessage", "Data", lambda r, q=queue: _sqs(q), 3),
            ("kms.amazonaws.com", "Decrypt", "Management", lambda r: _kms(), 3),
            ("logs.amazonaws.com", "CreateLogStream", "Management",
             lambda r, a=app: ({"logGroupName": f"/aws/lambda/{a}-fn", "logStreamName":
                                f"2026/10/01/[$LATEST]{r.getrandbits(64):016x}"}, None), 1),
            ("secretsmanager.amazonaws.com", "GetSecretValue", "Management",
             lambda r, a=app: ({"secretId": f"prod/{a}/db"}, None), 1),
            ("ssm.amazonaws.com", "GetParameter", "Management",
             lambda r, a=app: ({"name": f"/config/{a}/flags", "withDecryption": True}, None), 1),
            ("sns.amazonaws.com", "Publish", "Data",
             lambda r, a=app: ({"topicArn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:{a}-events"}, None), 2),
        ]
        roles.append((f"{app}-fn-role-{i:04x}", "/service-role/", habits))
    ci = [("cloudformation.amazonaws.com", "DescribeStacks", "Management", lambda r: ({"stackName": "app"}, None), 3),
          ("lambda.amazonaws.com", "UpdateFunctionCode20150331v2", "Management",
           lambda r: ({"functionName": "orders-fn"}, None), 1),
          ("iam.amazonaws.com", "GetRole", "Management", lambda r: ({"roleName": "orders-fn-role"}, None), 1)]
    roles.append(("github-deployer", "/ci/", ci))
    return roles


def _s3(r: random.Random, bucket: str):
    key = f"in/2026/{r.randrange(1, 13):02d}/{r.getrandbits(48):012x}.json"
    return {"bucketName": bucket, "key": key, "Host": f"{bucket}.s3.eu-west-1.amazonaws.com"}, f"{bucket}/{key}"


def _ddb(table: str, index: str | None = None):
    params = {"tableName": table, "key": {"pk": "HIDDEN_DUE_TO_SECURITY_REASONS"}}
    if index:
        params["indexName"] = index
    return params, None


def _sqs(queue: str):
    return {"queueUrl": f"https://sqs.eu-west-1.amazonaws.com/{ACCOUNT}/{queue}", "maxNumberOfMessages": 10}, None


def _kms():
    return {"encryptionContext": {"aws:sqs:arn": f"arn:aws:sqs:eu-west-1:{ACCOUNT}:orders-jobs"},
            "encryptionAlgorithm": "SYMMETRIC_DEFAULT"}, None


def _record(r: random.Random, when: datetime, region: str, role: tuple, habit: tuple) -> dict:
    name, path, _ = role
    source, event, category, make, _ = habit
    params, obj = make(r)
    session = name.split("-role")[0]
    record = {
        "eventVersion": "1.10",
        "userIdentity": {
            "type": "AssumedRole", "principalId": f"AROA{r.getrandbits(40):010X}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{session}", "accountId": ACCOUNT,
            "accessKeyId": f"ASIA{r.getrandbits(64):016X}",
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                                                 "arn": f"arn:aws:iam::{ACCOUNT}:role{path}{name}",
                                                 "accountId": ACCOUNT, "userName": name},
                               "attributes": {"creationDate": when.strftime("%Y-%m-%dT%H:00:00Z"),
                                              "mfaAuthenticated": "false"}},
        },
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": source, "eventName": event, "awsRegion": region,
        "sourceIPAddress": f"3.{r.randrange(256)}.{r.randrange(256)}.{r.randrange(1, 255)}",
        "userAgent": AGENT.format(p=r.randrange(10, 99)),
        "requestParameters": params,
        "responseElements": None if event.startswith(("Get", "List", "Describe", "Query")) else
        {"requestId": str(uuid.UUID(int=r.getrandbits(128)))},
        "requestID": str(uuid.UUID(int=r.getrandbits(128))),
        "eventID": str(uuid.UUID(int=r.getrandbits(128))),
        "readOnly": event.startswith(("Get", "List", "Describe", "Query")),
        "eventType": "AwsApiCall", "managementEvent": category == "Management",
        "recipientAccountId": ACCOUNT, "eventCategory": category,
        "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                       "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"},
    }
    if obj:
        record["resources"] = [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{obj}"},
                               {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{obj.split('/')[0]}"}]
    if r.random() < 0.03:
        record["errorCode"], record["errorMessage"] = "AccessDenied", "Access Denied"
    return record


def _file(args: tuple) -> int:
    out, index, files, events, seed = args
    r = random.Random(seed * 1_000_003 + index)
    roles = _roles()
    region = REGIONS[index % len(REGIONS)]
    start = START + timedelta(minutes=5 * (index // len(REGIONS)))
    count = events // files + (1 if index < events % files else 0)
    records = []
    for _ in range(count):
        role = r.choice(roles)
        habit = r.choices(role[2], weights=[h[4] for h in role[2]])[0]
        records.append(_record(r, start + timedelta(seconds=r.randrange(300)), region, role, habit))
    day = start.strftime("%Y/%m/%d")
    stamp = (start + timedelta(minutes=5)).strftime("%Y%m%dT%H%MZ")
    path = Path(out) / "AWSLogs" / ACCOUNT / "CloudTrail" / region / day / (
        f"{ACCOUNT}_CloudTrail_{region}_{stamp}_{index:016X}.json.gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": records}, separators=(",", ":")).encode(), mtime=0))
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", required=True)
    a = parser.parse_args()
    jobs = [(a.out, i, a.files, a.events, a.seed) for i in range(a.files)]
    with multiprocessing.Pool(a.workers) as pool:
        total = sum(pool.imap(_file, jobs, chunksize=8))
    print(f"wrote {total:,} events in {a.files:,} files to {a.out}")


if __name__ == "__main__":
    main()
