"""Proof that generated policies work: replay the demo roles' calls against moto's server with
IAM enforcement on, as a user holding only the generated policy.

moto judges S3 and SQS requests on action and resource; for the other services here it
judges the action only (it evaluates every request against resource "*"), so their
statements are loaded with ``Resource: "*"``. Where moto's own action names differ from
IAM's it cannot serve as the judge, and those calls are not replayed:

- ``sqs:DeleteMessageBatch``, ``ChangeMessageVisibilityBatch``, ``SendMessageBatch``: moto asks for the
  batch name, IAM authorizes the single-item action (``sqs:DeleteMessage``...).
- KMS calls a service makes with the caller's credentials (``invokedBy`` sqs, sns, ssm,
  secretsmanager): moto's SQS, SNS, SSM and Secrets Manager do not call KMS.
- The Lambda baseline (logs, X-Ray, VPC network interfaces, event-source polling): what the
  Lambda service does with the role, not the role's calls; it is checked against the deployment
  records in ``tests/test_generate.py`` instead.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import settings as moto_settings
from moto.server import ThreadedMotoServer

from lpgen.generate import GenerateOptions, generate
from lpgen.mapping import Call, map_call

DEMO_ACCOUNT, MOTO_ACCOUNT, REGION = "210987654321", "123456789012", "eu-west-1"
ROLE = f"arn:aws:iam::{DEMO_ACCOUNT}:role/service-role"
ROLES = [f"{ROLE}/orders-api-role-p9q8r7", f"{ROLE}/reports-reader-role-k2j4h6", f"{ROLE}/notifier-role-a1b2c3",
         f"{ROLE}/config-loader-role-z7x8c9", f"{ROLE}/inventory-sync-role-v5w6x7"]
RESOURCE_CHECKED = ("s3:", "sqs:")
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "AuthorizationError"}
QUEUE = "notify-jobs"


@pytest.fixture(scope="module")
def moto():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    try:
        yield Moto(endpoint)
    finally:
        requests.post(f"{endpoint}/moto-api/reset-auth", data=str(previous).encode(), timeout=10)
        server.stop()


class Moto:
    """A moto server seeded with the demo account's resources, and a user whose policy we swap."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.enforce(False)
        self.admin = self.session("testing", "testing")
        self._seed()
        iam = self.admin.client("iam", endpoint_url=endpoint)
        iam.create_user(UserName="prover")
        key = iam.create_access_key(UserName="prover")["AccessKey"]
        self.prover = self.session(key["AccessKeyId"], key["SecretAccessKey"])

    def session(self, key: str, secret: str) -> boto3.Session:
        return boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=REGION)

    def client(self, service: str):
        return self.prover.client(service, endpoint_url=self.endpoint, config=Config(retries={"max_attempts": 1}))

    def enforce(self, on: bool) -> None:
        requests.post(f"{self.endpoint}/moto-api/reset-auth", data=b"0" if on else b"inf", timeout=10)

    def use_policy(self, document: dict) -> None:
        self.enforce(False)
        self.admin.client("iam", endpoint_url=self.endpoint).put_user_policy(
            UserName="prover", PolicyName="generated", PolicyDocument=json.dumps(document))
        self.enforce(True)

    def _seed(self) -> None:
        c = lambda s: self.admin.client(s, endpoint_url=self.endpoint)  # noqa: E731
        c("dynamodb").create_table(
            TableName="inventory", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}])
        c("dynamodb").create_table(
            TableName="orders", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "orderId", "AttributeType": "S"},
                                  {"AttributeName": "customerId", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "orderId", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{"IndexName": "by-customer", "Projection": {"ProjectionType": "ALL"},
                                     "KeySchema": [{"AttributeName": "customerId", "KeyType": "HASH"}]}])
        s3 = c("s3")
        s3.create_bucket(Bucket="acme-reports-prod", CreateBucketConfiguration={"LocationConstraint": REGION})
        self.queue_url = c("sqs").create_queue(QueueName=QUEUE)["QueueUrl"]
        self.topic = c("sns").create_topic(Name="order-events")["TopicArn"]
        ssm = c("ssm")
        ssm.put_parameter(Name="/config/app/feature-flags", Value="{}", Type="SecureString")
        ssm.put_parameter(Name="/config/app/region", Value="eu-west-1", Type="String")
        for name in ("prod/db/credentials", "prod/inventory/api-key"):
            c("secretsmanager").create_secret(Name=name, SecretString="{}")
        self.s3 = s3

    def receipt(self) -> str:
        """A receipt handle, fetched as the admin (moto needs a real one to delete)."""
        self.enforce(False)
        sqs = self.admin.client("sqs", endpoint_url=self.endpoint)
        sqs.send_message(QueueUrl=self.queue_url, MessageBody="job")
        handle = sqs.receive_message(QueueUrl=self.queue_url, VisibilityTimeout=0)["Messages"][0]["ReceiptHandle"]
        self.enforce(True)
        return handle


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def _first(fields: tuple, *names: str) -> str | None:
    return next((v for k, v in fields if k in names), None)


def _replay_table(m: Moto) -> dict[tuple[str, str], Callable[[tuple], None]]:
    """(eventSource, eventName) → a function that makes that call with the prover's credentials."""
    key = {"orderId": {"S": "o-1"}}

    def table(f: tuple) -> str:
        return _first(f, "tableName") or "orders"

    def secret(f: tuple) -> str:  # the name without the 6-character suffix of its ARN
        return _first(f, "secretId").rsplit(":secret:", 1)[-1][:-7]

    return {
        ("dynamodb.amazonaws.com", "GetItem"): lambda f: m.client("dynamodb").get_item(TableName=table(f), Key=key),
        ("dynamodb.amazonaws.com", "PutItem"): lambda f: m.client("dynamodb").put_item(
            TableName=table(f), Item={**key, "customerId": {"S": "c-1"}}),
        ("dynamodb.amazonaws.com", "UpdateItem"): lambda f: m.client("dynamodb").update_item(
            TableName="orders", Key=key, UpdateExpression="SET customerId = :c",
            ExpressionAttributeValues={":c": {"S": "c-2"}}),
        ("dynamodb.amazonaws.com", "DeleteItem"): lambda f: m.client("dynamodb").delete_item(TableName="orders", Key=key),
        ("dynamodb.amazonaws.com", "Query"): lambda f: m.client("dynamodb").query(
            TableName="orders", **({"IndexName": "by-customer", "KeyConditionExpression": "customerId = :c",
                                    "ExpressionAttributeValues": {":c": {"S": "c-1"}}} if _first(f, "indexName")
                                   else {"KeyConditionExpression": "orderId = :o",
                                         "ExpressionAttributeValues": {":o": {"S": "o-1"}}})),
        ("dynamodb.amazonaws.com", "DescribeTable"): lambda f: m.client("dynamodb").describe_table(TableName="orders"),
        ("s3.amazonaws.com", "GetObject"): lambda f: m.client("s3").get_object(
            Bucket=_first(f, "bucketName"), Key=_first(f, "key")),
        ("s3.amazonaws.com", "HeadObject"): lambda f: m.client("s3").head_object(
            Bucket=_first(f, "bucketName"), Key=_first(f, "key")),
        ("s3.amazonaws.com", "ListObjects"): lambda f: m.client("s3").list_objects_v2(
            Bucket=_first(f, "bucketName"), Prefix=_first(f, "prefix") or ""),
        ("s3.amazonaws.com", "GetBucketLocation"): lambda f: m.client("s3").get_bucket_location(
            Bucket=_first(f, "bucketName")),
        ("sqs.amazonaws.com", "ReceiveMessage"): lambda f: m.client("sqs").receive_message(QueueUrl=m.queue_url),
        ("sqs.amazonaws.com", "DeleteMessage"): lambda f: m.client("sqs").delete_message(
            QueueUrl=m.queue_url, ReceiptHandle=m.receipt()),
        ("sqs.amazonaws.com", "ChangeMessageVisibility"): lambda f: m.client("sqs").change_message_visibility(
            QueueUrl=m.queue_url, ReceiptHandle=m.receipt(), VisibilityTimeout=5),
        ("sqs.amazonaws.com", "GetQueueAttributes"): lambda f: m.client("sqs").get_queue_attributes(
            QueueUrl=m.queue_url, AttributeNames=["All"]),
        ("sns.amazonaws.com", "Publish"): lambda f: m.client("sns").publish(TopicArn=m.topic, Message="x"),
        ("ssm.amazonaws.com", "GetParameter"): lambda f: m.client("ssm").get_parameter(
            Name=_first(f, "name"), WithDecryption=True),
        ("ssm.amazonaws.com", "GetParametersByPath"): lambda f: m.client("ssm").get_parameters_by_path(
            Path=_first(f, "path")),
        ("secretsmanager.amazonaws.com", "GetSecretValue"): lambda f: m.client("secretsmanager").get_secret_value(
            SecretId=secret(f)),
    }


def _for_moto(document: dict) -> dict:
    """The policy as moto can judge it: the demo account is moto's; resources only where moto checks them."""
    statements = []
    for s in document["Statement"]:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        checked = all(a.startswith(RESOURCE_CHECKED) for a in actions)
        statements.append({**s, "Resource": [r.replace(f":{DEMO_ACCOUNT}:", f":{MOTO_ACCOUNT}:") for r in resources]
                           if checked else "*"})
    return {"Version": "2012-10-17", "Statement": statements}


def _denied(call: Callable[[tuple], None], fields: tuple) -> bool:
    try:
        call(fields)
    except ClientError as exc:
        return exc.response["Error"]["Code"] in DENIED_CODES or exc.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return False


@pytest.fixture(scope="module")
def demo(demo_mined):
    rows = demo_mined[1]
    return rows, generate(rows, GenerateOptions())


def _replayable(rows, principal, table):
    return [r for r in rows if r.principal == principal and r.invoked_by is None and (r.source, r.name) in table]


@pytest.mark.parametrize("principal", ROLES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_generated_policy_allows_every_used_call_and_no_denied_one(moto, demo, principal):
    rows, policies = demo
    table = _replay_table(moto)
    for row in _replayable(rows, principal, table):
        if row.source == "s3.amazonaws.com" and row.name in ("GetObject", "HeadObject"):
            moto.enforce(False)
            moto.s3.put_object(Bucket=_first(row.fields, "bucketName"), Key=_first(row.fields, "key"), Body=b"x")
    moto.use_policy(_for_moto(policies[principal].document()))
    replayed = _replayable(rows, principal, table)
    assert replayed, "no call of this role can be replayed"
    for row in replayed:
        denied = _denied(table[(row.source, row.name)], row.fields)
        if row.error_class != "denied":
            assert not denied, f"{row.source} {row.name} {row.fields} is not allowed by the generated policy"
        elif row.source in ("s3.amazonaws.com", "sqs.amazonaws.com"):
            assert denied, f"{row.source} {row.name} {row.fields} was denied in the trail but is allowed"
        else:  # moto judges this service on the action only: check the real policy's resources instead
            mapping = map_call(Call.of_row(row))
            document = policies[principal].document()
            for p in mapping.permissions:
                granted = [r for s in document["Statement"] if p.action in _listed(s["Action"])
                           for r in _listed(s["Resource"])]
                assert not any(fnmatch.fnmatchcase(arn, g) for arn in p.resources for g in granted), (
                    f"{p.action} on {p.resources} was denied in the trail but is granted")


@pytest.mark.parametrize("principal", ROLES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_generated_policy_is_minimal(moto, demo, principal):
    """Removing any replay-judged action makes at least one replayed call fail."""
    rows, policies = demo
    table = _replay_table(moto)
    used = [r for r in _replayable(rows, principal, table) if r.error_class != "denied"]
    document = _for_moto(policies[principal].document())
    # Judged: the actions of the calls replayed here (not the baseline, not KMS calls services made).
    judged = sorted({a for r in used for a in map_call(Call.of_row(r)).actions})
    assert judged
    for action in judged:
        reduced = []
        for s in document["Statement"]:
            actions = [a for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"]) if a != action]
            if actions:
                reduced.append({**s, "Action": actions})
        moto.use_policy({"Version": "2012-10-17", "Statement": reduced})
        assert any(_denied(table[(r.source, r.name)], r.fields) for r in used), f"{action} is not needed"
