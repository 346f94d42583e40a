#!/usr/bin/env python3
"""Regenerate fixtures/demo/: one synthetic week of CloudTrail for a small AWS account.

lpgen's tests and documentation need a corpus that looks like what a real trail
delivers -- the S3 key layout, gzip'd ``{"Records": [...]}`` files, per-service
record shapes, service-initiated noise, denials, KMS calls made on a caller's
behalf, signed and chained digest files -- while staying small, reviewable and
byte-for-byte reproducible.  Everything random comes from seeded
``random.Random`` streams: the original week draws from ``SEED``, and each later
addition (so far the ``inventory-sync`` function) draws from a stream of its
own, so adding it left every record of the original principals as it was.
gzip is written with ``mtime=0`` and log files use compact JSON, so two runs
produce identical bytes.

``truth.json`` is written from the generator's own model of who did what (never
by parsing the records back), so tests can compare lpgen's output against it.

Usage: python scripts/make_demo.py [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import random
import shutil
import string
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEED = 20261102
INVENTORY_SEED = 2026110202  # the inventory-sync addition's own random stream
ACCOUNT = "210987654321"
WORK = "eu-west-1"  # where the workloads run
GLOBAL = "us-east-1"  # where IAM, the STS global endpoint and sign-in events land
FIRST_DAY = datetime(2026, 11, 2, tzinfo=timezone.utc)
DAYS = 7
TRAIL_NAME = "demo-trail"
TRAIL_HOME = "us-east-1"
TRAIL_BUCKET = "acme-cloudtrail-logs"
DELIVERY_WINDOW = timedelta(minutes=5)
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
#: TEST-ONLY RSA key pair standing in for CloudTrail's regional signing key.
SIGNING_KEY = Path(__file__).resolve().parent.parent / "fixtures" / "test-keys" / "cloudtrail-digest-signing-TEST-ONLY.pem"

# --------------------------------------------------------------------------
# Resources
# --------------------------------------------------------------------------
REPORTS_BUCKET = "acme-reports-prod"
REPORT_NAMES = ("daily-sales", "inventory-snapshot", "returns",
                "customer-signups", "ad-spend", "fulfilment-latency")
FORBIDDEN_REPORT = "finance/payroll/2026-11-summary.csv"  # outside reports/: always denied
ARTIFACT_BUCKET = "acme-deploy-artifacts"
TABLE_ARN = f"arn:aws:dynamodb:{WORK}:{ACCOUNT}:table/orders"
TABLE_INDEX = "by-customer"
QUEUE_URL = f"https://sqs.{WORK}.amazonaws.com/{ACCOUNT}/notify-jobs"
QUEUE_ARN = f"arn:aws:sqs:{WORK}:{ACCOUNT}:notify-jobs"
TOPIC_ARN = f"arn:aws:sns:{WORK}:{ACCOUNT}:order-events"
MESSAGING_KEY = f"arn:aws:kms:{WORK}:{ACCOUNT}:key/6f1d2c9e-4b7a-4e0f-9c3d-8a2b5e7f1a40"
MESSAGING_ALIAS = "alias/app-messaging"  # SSE key of the queue and the topic
CONFIG_KEY = f"arn:aws:kms:{WORK}:{ACCOUNT}:key/b83e0a51-2d6c-4f97-a1e4-3c5d7f9b2e68"
SECRET_ARN = f"arn:aws:secretsmanager:{WORK}:{ACCOUNT}:secret:prod/db/credentials-AbCdEf"
SECRET_VERSION = "3d9a6c1e-7f42-4b8d-9e05-1a6c2f8b4d70"
PARAM_ARN = f"arn:aws:ssm:{WORK}:{ACCOUNT}:parameter"
FLAGS_PARAM = "/config/app/feature-flags"  # SecureString under CONFIG_KEY
CONFIG_PATH = "/config/app/"
BILLING_PARAM = "/config/billing/api-key"  # config-loader is not allowed to read it
STACK_NAME = "orders-service"
STACK_ID = f"arn:aws:cloudformation:{WORK}:{ACCOUNT}:stack/{STACK_NAME}/5c2e8f10-9a3b-11f0-8d4e-0a1b2c3d4e5f"
OIDC_PROVIDER = f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
GITHUB_SUBJECT = "repo:acme/orders-service:ref:refs/heads/main"
# inventory-sync (added later, with its own random stream): a VPC function fed by an SQS queue
INVENTORY_TABLE_ARN = f"arn:aws:dynamodb:{WORK}:{ACCOUNT}:table/inventory"
INVENTORY_QUEUE_ARN = f"arn:aws:sqs:{WORK}:{ACCOUNT}:inventory-events"
INVENTORY_SECRET_ARN = f"arn:aws:secretsmanager:{WORK}:{ACCOUNT}:secret:prod/inventory/api-key-QwErTy"
INVENTORY_SECRET_VERSION = "a7c41e92-5b3d-4f08-8e6a-2d9f1b7c3e54"  # encrypted under CONFIG_KEY
INVENTORY_SUBNETS = ["subnet-0a1b2c3d4e5f60718", "subnet-0f1e2d3c4b5a69788"]
INVENTORY_SECURITY_GROUPS = ["sg-0123456789abcdef0"]
INVENTORY_VPC = "vpc-0c4f7a9e2b1d83e56"
INVENTORY_NAT_IP = "34.243.87.219"  # the VPC's NAT gateway: the function's calls leave from here

# --------------------------------------------------------------------------
# Principals
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    name: str
    path: str
    role_id: str  # AROA... unique id, as IAM reports it

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:role{self.path}{self.name}"


@dataclass(frozen=True)
class User:
    name: str
    user_id: str

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/{self.name}"


REPORTS_ROLE = Role("reports-reader-role-k2j4h6", "/service-role/", "AROATQ6B2XJ4KZ5M7NRWP")
ORDERS_ROLE = Role("orders-api-role-p9q8r7", "/service-role/", "AROATQ6B2XJ4D3HVYC8LE")
NOTIFIER_ROLE = Role("notifier-role-a1b2c3", "/service-role/", "AROATQ6B2XJ4GW9SUF2AK")
CONFIG_ROLE = Role("config-loader-role-z7x8c9", "/service-role/", "AROATQ6B2XJ4PL7EQM3VD")
DEPLOYER_ROLE = Role("github-deployer", "/ci/", "AROATQ6B2XJ4NB5RKT6YH")
INVENTORY_ROLE = Role("inventory-sync-role-v5w6x7", "/service-role/", "AROATQ6B2XJ4HS4WMV5QT")
ALICE = User("alice", "AIDATQ6B2XJ4JF8WXC4QZ")

# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------
LINUX = "os/linux#5.10.227-239.884.amzn2.x86_64 md/arch#x86_64"
PYTHON_LAMBDA_UA = (f"Boto3/1.34.145 md/Botocore#1.34.145 ua/2.0 {LINUX} lang/python#3.12.7 "
                    "md/pyimpl#CPython exec-env/AWS_Lambda_python3.12 cfg/retry-mode#legacy "
                    "Botocore/1.34.145")
NODE_LAMBDA_UA = ("aws-sdk-js/3.621.0 ua/2.1 os/linux#5.10.227-239.884.amzn2.x86_64 lang/js "
                  "md/nodejs#20.17.0 api/dynamodb#3.621.0 exec-env/AWS_Lambda_nodejs20.x")
LAMBDA_WORKER_UA = "awslambda-worker/1.0 rusoto/0.48.0 rust/1.79.0 linux"
CLI_UA = ("aws-cli/2.22.35 md/awscrt#0.23.4 ua/2.0 os/linux#6.8.0-1021-azure md/arch#x86_64 "
          "lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe "
          "md/distrib#ubuntu.24 md/prompt#off md/command#{command}")
GHA_CREDENTIALS_UA = ("aws-sdk-js/3.696.0 ua/2.1 os/linux#6.8.0-1021-azure lang/js md/nodejs#20.18.1 "
                      "api/sts#3.696.0 configure-aws-credentials-for-github-actions")
BROWSER_UA = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36")
S3_CONSOLE_UA = ("[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.750 "
                 "Linux/5.10.226-192.879.amzn2int.x86_64 OpenJDK_64-Bit_Server_VM/17.0.12+7-LTS "
                 "java/17.0.12 vendor/Amazon.com_Inc. cfg/retry-mode/standard]")
ALICE_IP = "203.0.113.47"  # documentation range: synthetic data
GITHUB_RUNNER_IPS = ("198.51.100.23", "198.51.100.87", "198.51.100.142")
LAMBDA_EGRESS = ("3.249", "34.243", "52.16", "54.73")  # eu-west-1 public ranges

EVENT_VERSIONS = {"sts.amazonaws.com": "1.08", "lambda.amazonaws.com": "1.08",
                  "signin.amazonaws.com": "1.09", "sqs.amazonaws.com": "1.09",
                  "sns.amazonaws.com": "1.09", "cloudformation.amazonaws.com": "1.09"}
DEFAULT_EVENT_VERSION = "1.10"
UPPER_DIGITS = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def sts_expiration(t: datetime) -> str:
    """STS responseElements print expirations like ``Nov 3, 2026, 10:12:07 PM``."""
    hour = t.hour % 12 or 12
    return f"{MONTHS[t.month - 1]} {t.day}, {t.year}, {hour}:{t:%M:%S} {'AM' if t.hour < 12 else 'PM'}"


def denial(actor_arn: str, action: str, resource: str) -> str:
    return (f"User: {actor_arn} is not authorized to perform: {action} on resource: {resource} "
            f"because no identity-based policy allows the {action} action")


def resource(arn: str, kind: str, with_account: bool = True) -> dict:
    return {"accountId": ACCOUNT, "type": kind, "ARN": arn} if with_account else {"type": kind, "ARN": arn}


# --------------------------------------------------------------------------
# The model: who calls, and what the generator knows about each record
# --------------------------------------------------------------------------
PRINCIPALS, SERVICE, WEB_IDENTITY = "principals", "service_initiated", "web_identity"


@dataclass
class Failure:
    code: str
    message: str
    denied: bool


@dataclass
class Emitted:
    record: dict
    section: str  # PRINCIPALS, SERVICE or WEB_IDENTITY
    who: str | None  # IAM ARN, OIDC provider ARN, or None for service-initiated
    outcome: str  # "ok", "denied" or "error"
    stream: int = 0  # which random stream made it (see Trail.branch)


@dataclass
class RoleSession:
    """Temporary credentials of an assumed role, as a client holding them would use them."""
    role: Role
    name: str
    access_key: str
    created: datetime
    ip: str
    user_agent: str
    federated_provider: str | None = None
    tls = True
    console = False
    section = PRINCIPALS

    @property
    def who(self) -> str:
        return self.role.arn

    @property
    def arn(self) -> str:
        return f"arn:aws:sts::{ACCOUNT}:assumed-role/{self.role.name}/{self.name}"

    def identity(self) -> dict:
        federation = ({"federatedProvider": self.federated_provider, "attributes": {}}
                      if self.federated_provider else {})
        return {
            "type": "AssumedRole",
            "principalId": f"{self.role.role_id}:{self.name}",
            "arn": self.arn,
            "accountId": ACCOUNT,
            "accessKeyId": self.access_key,
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": self.role.role_id, "arn": self.role.arn,
                                  "accountId": ACCOUNT, "userName": self.role.name},
                "webIdFederationData": federation,
                "attributes": {"creationDate": iso(self.created), "mfaAuthenticated": "false"},
            },
        }


@dataclass
class ConsoleSession:
    """An IAM user signed in to the console: calls carry session credentials and the console flag."""
    user: User
    access_key: str
    created: datetime
    ip: str = ALICE_IP
    user_agent: str = "AWS Internal"
    tls = True
    console = True
    section = PRINCIPALS

    @property
    def who(self) -> str:
        return self.user.arn

    @property
    def arn(self) -> str:
        return self.user.arn

    def identity(self) -> dict:
        return {
            "type": "IAMUser", "principalId": self.user.user_id, "arn": self.user.arn,
            "accountId": ACCOUNT, "accessKeyId": self.access_key, "userName": self.user.name,
            "sessionContext": {"sessionIssuer": {}, "webIdFederationData": {},
                               "attributes": {"creationDate": iso(self.created), "mfaAuthenticated": "true"}},
        }


@dataclass
class SignIn:
    """An IAM user at the console sign-in page: no credentials yet, so no key or session."""
    user: User
    ip: str = ALICE_IP
    user_agent: str = BROWSER_UA
    tls = True
    console = False
    section = PRINCIPALS

    @property
    def who(self) -> str:
        return self.user.arn

    def identity(self) -> dict:
        return {"type": "IAMUser", "principalId": self.user.user_id, "arn": self.user.arn,
                "accountId": ACCOUNT, "userName": self.user.name}


@dataclass
class OnBehalfOf:
    """A service (SQS, SNS, Secrets Manager, SSM) calling KMS with the caller's own credentials."""
    caller: RoleSession
    service: str
    tls = False
    console = False
    section = PRINCIPALS

    @property
    def who(self) -> str:
        return self.caller.who

    @property
    def ip(self) -> str:
        return self.service

    @property
    def user_agent(self) -> str:
        return self.service

    def identity(self) -> dict:
        return {**self.caller.identity(), "invokedBy": self.service}


@dataclass
class ServicePrincipal:
    """An AWS service acting as itself, e.g. Lambda assuming a function's execution role."""
    service: str
    tls = False
    console = False
    section = SERVICE
    who = None

    @property
    def ip(self) -> str:
        return self.service

    @property
    def user_agent(self) -> str:
        return self.service

    def identity(self) -> dict:
        return {"type": "AWSService", "invokedBy": self.service}


class Trail:
    """Collects records in emission order, with the ground truth about each one."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.emitted: list[Emitted] = []
        self.stream = 0
        self.streams: list[Trail] = [self]

    def branch(self, seed: int) -> Trail:
        """A new random stream writing into the same trail.  Records made through it never draw on
        the other streams' generators, so adding behaviour this way leaves existing records alone."""
        other = Trail(seed)
        other.emitted, other.streams, other.stream = self.emitted, self.streams, len(self.streams)
        self.streams.append(other)
        return other

    # identifiers in the formats AWS uses
    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def token(self, n: int, alphabet: str = UPPER_DIGITS) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def amz_id_2(self) -> str:
        return base64.b64encode(self.rng.randbytes(57)).decode()

    def lambda_ip(self) -> str:
        return f"{self.rng.choice(LAMBDA_EGRESS)}.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"

    def after(self, t: datetime, lo: float, hi: float) -> datetime:
        return t + timedelta(seconds=self.rng.uniform(lo, hi))

    def add(self, record: dict, actor, failure: Failure | None) -> dict:
        outcome = "ok" if failure is None else ("denied" if failure.denied else "error")
        self.emitted.append(Emitted(record, actor.section, actor.who, outcome, self.stream))
        return record


def api_call(trail: Trail, t: datetime, actor, source: str, name: str, region: str, *,
             params: dict | None = None, response: dict | None = None, read_only: bool,
             resources: list | None = None, data: bool = False, failure: Failure | None = None,
             additional: dict | None = None, request_id: str | None = None, host: str | None = None,
             user_agent: str | None = None, api_version: str | None = None,
             event_type: str = "AwsApiCall") -> dict:
    """One API-call record (or console sign-in), with fields in the order CloudTrail writes them."""
    rec = {
        "eventVersion": EVENT_VERSIONS.get(source, DEFAULT_EVENT_VERSION),
        "userIdentity": actor.identity(),
        "eventTime": iso(t),
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": actor.ip,
        "userAgent": user_agent or actor.user_agent,
    }
    if failure:
        rec["errorCode"], rec["errorMessage"] = failure.code, failure.message
    rec["requestParameters"] = params
    rec["responseElements"] = None if failure else response
    if additional:
        rec["additionalEventData"] = additional
    if event_type != "AwsConsoleSignIn":  # sign-ins carry no request id
        rec["requestID"] = request_id or trail.uuid()
    rec["eventID"] = trail.uuid()
    rec["readOnly"] = read_only
    if resources:
        rec["resources"] = resources
    rec["eventType"] = event_type
    if api_version:
        rec["apiVersion"] = api_version
    rec["managementEvent"] = not data
    rec["recipientAccountId"] = ACCOUNT
    if isinstance(actor, ServicePrincipal):
        rec["sharedEventID"] = trail.uuid()
    rec["eventCategory"] = "Data" if data else "Management"
    if actor.tls:
        service = source.split(".")[0]
        rec["tlsDetails"] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                             "clientProvidedHostHeader": host or f"{service}.{region}.amazonaws.com"}
    if actor.console:
        rec["sessionCredentialFromConsole"] = "true"
    return trail.add(rec, actor, failure)


# --------------------------------------------------------------------------
# Per-service record helpers
# --------------------------------------------------------------------------
def s3_call(trail: Trail, t: datetime, actor, name: str, bucket: str, key: str | None = None, *,
            region: str = WORK, read_only: bool = True, data: bool = True, params: dict | None = None,
            bytes_in: int = 0, bytes_out: int = 0, response: dict | None = None,
            failure: Failure | None = None) -> dict:
    """S3 records: bracketed user agent, Host header, object + bucket resources, 16-char request id."""
    host = f"{bucket}.s3.{region}.amazonaws.com" if bucket else "s3.amazonaws.com"
    request = {"bucketName": bucket, "Host": host} if bucket else {"Host": host}
    if key is not None:
        request["key"] = key
    request.update(params or {})
    resources = []
    if key is not None:
        resources.append(resource(f"arn:aws:s3:::{bucket}/{key}", "AWS::S3::Object", with_account=False))
    if bucket:
        resources.append(resource(f"arn:aws:s3:::{bucket}", "AWS::S3::Bucket"))
    additional = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                  "bytesTransferredIn": bytes_in, "AuthenticationMethod": "AuthHeader",
                  "x-amz-id-2": trail.amz_id_2(), "bytesTransferredOut": bytes_out}
    ua = actor.user_agent if actor.user_agent.startswith("[") else f"[{actor.user_agent}]"
    return api_call(trail, t, actor, "s3.amazonaws.com", name, region, params=request, response=response,
                    read_only=read_only, resources=resources, data=data, failure=failure,
                    additional=additional, request_id=trail.token(16), host=host, user_agent=ua)


def ddb_call(trail: Trail, t: datetime, actor, name: str, params: dict, *, read_only: bool,
             data: bool = True, failure: Failure | None = None, table_arn: str = TABLE_ARN) -> dict:
    return api_call(trail, t, actor, "dynamodb.amazonaws.com", name, WORK,
                    params={"tableName": table_arn.rsplit("/", 1)[1], **params}, read_only=read_only,
                    resources=[resource(table_arn, "AWS::DynamoDB::Table")], data=data,
                    failure=failure, request_id=trail.token(52))


def sqs_call(trail: Trail, t: datetime, actor, name: str, params: dict, *, read_only: bool,
             data: bool = True, response: dict | None = None) -> dict:
    return api_call(trail, t, actor, "sqs.amazonaws.com", name, WORK, params={"queueUrl": QUEUE_URL, **params},
                    response=response, read_only=read_only, data=data,
                    resources=[resource(QUEUE_ARN, "AWS::SQS::Queue")])


def kms_on_behalf(trail: Trail, t: datetime, caller: RoleSession, service: str, name: str,
                  key_arn: str, context: dict, key_id: str | None = None) -> dict:
    """The KMS call a service makes for an SSE resource, logged under the caller's identity."""
    params = {"keyId": key_id} if key_id else {}
    params["encryptionContext"] = context
    if name == "GenerateDataKey":
        params["keySpec"] = "AES_256"
    else:
        params["encryptionAlgorithm"] = "SYMMETRIC_DEFAULT"
    return api_call(trail, t, OnBehalfOf(caller, service), "kms.amazonaws.com", name, WORK, params=params,
                    read_only=True, resources=[resource(key_arn, "AWS::KMS::Key")])


def hidden(attributes: list[str]) -> dict:
    return {a: "HIDDEN_DUE_TO_SECURITY_REASONS" for a in attributes}


# --------------------------------------------------------------------------
# Lambda execution environments
# --------------------------------------------------------------------------
ENV_IDLE_LIMIT = timedelta(minutes=30)


@dataclass
class LambdaFunction:
    """A function whose execution environment is recycled after idling; a cold start means
    Lambda assumes the execution role afresh and the runtime creates a new log stream."""
    name: str
    role: Role
    user_agent: str
    egress_ip: str | None = None  # a VPC function's calls leave through its NAT gateway
    session: RoleSession | None = None
    last_used: datetime | None = None
    data_keys: dict = field(default_factory=dict)  # service -> when its cached data key expires

    def session_at(self, trail: Trail, t: datetime) -> tuple[RoleSession, bool]:
        cold = self.session is None or t - self.last_used > ENV_IDLE_LIMIT
        if cold:
            self.session = cold_start(trail, self, t)
        self.last_used = t
        return self.session, cold

    def needs_data_key(self, service: str, t: datetime) -> bool:
        """SQS and SNS reuse a KMS data key for 5 minutes (the default reuse period)."""
        if self.data_keys.get(service) and t < self.data_keys[service]:
            return False
        self.data_keys[service] = t + timedelta(minutes=5)
        return True


def cold_start(trail: Trail, fn: LambdaFunction, t: datetime) -> RoleSession:
    assumed = trail.after(t, -3.0, -1.5)
    access_key = "ASIA" + trail.token(16)
    worker_ip = trail.lambda_ip()  # where the Lambda service's own log-stream call comes from
    session = RoleSession(fn.role, fn.name, access_key, assumed, fn.egress_ip or worker_ip, fn.user_agent)
    worker = session if fn.egress_ip is None else replace(session, ip=worker_ip)
    api_call(trail, assumed, ServicePrincipal("lambda.amazonaws.com"), "sts.amazonaws.com", "AssumeRole", WORK,
             params={"roleArn": fn.role.arn, "roleSessionName": fn.name, "durationSeconds": 43200},
             response={"credentials": {"accessKeyId": session.access_key,
                                       "expiration": sts_expiration(assumed + timedelta(hours=12))},
                       "assumedRoleUser": {"assumedRoleId": f"{fn.role.role_id}:{fn.name}", "arn": session.arn}},
             read_only=True, resources=[resource(fn.role.arn, "AWS::IAM::Role")])
    stream = f"{t:%Y/%m/%d}/[$LATEST]{trail.hex(32)}"
    api_call(trail, trail.after(t, -1.2, -0.2), worker, "logs.amazonaws.com", "CreateLogStream", WORK,
             params={"logGroupName": f"/aws/lambda/{fn.name}", "logStreamName": stream},
             read_only=False, user_agent=LAMBDA_WORKER_UA)
    return session


# --------------------------------------------------------------------------
# Behaviour, one function per principal
# --------------------------------------------------------------------------
def reports_reader_run(trail: Trail, fn: LambdaFunction, start: datetime, day: datetime, ready: int,
                       sizes: dict) -> None:
    """Scheduled job: list one day's report prefix, then HEAD and GET every report found.
    Once a day a misconfigured report definition points outside ``reports/`` and is denied."""
    s, _ = fn.session_at(trail, start)
    t = start
    s3_call(trail, t, s, "GetBucketLocation", REPORTS_BUCKET, data=False, params={"location": ""})
    prefix = f"reports/{day:%Y/%m/%d}/"
    t = trail.after(t, 0.1, 0.6)
    s3_call(trail, t, s, "ListObjects", REPORTS_BUCKET,
            params={"list-type": "2", "encoding-type": "url", "prefix": prefix},
            bytes_out=trail.rng.randint(900, 2400))
    for name in REPORT_NAMES[:ready]:
        key = f"{prefix}{name}.csv"
        size = sizes.setdefault(key, trail.rng.randint(12_000, 480_000))
        t = trail.after(t, 0.05, 0.4)
        s3_call(trail, t, s, "HeadObject", REPORTS_BUCKET, key)
        t = trail.after(t, 0.05, 0.3)
        s3_call(trail, t, s, "GetObject", REPORTS_BUCKET, key, bytes_out=size)
    if ready == len(REPORT_NAMES):
        t = trail.after(t, 0.2, 1.0)
        s3_call(trail, t, s, "GetObject", REPORTS_BUCKET, FORBIDDEN_REPORT, bytes_out=243,
                failure=Failure("AccessDenied", "Access Denied", denied=True))


ORDER_OPS = ("GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem")
ORDER_WEIGHTS = (35, 25, 15, 18, 7)
ORDER_ATTRIBUTES = ["orderId", "customerId", "status", "total", "currency", "createdAt"]


def orders_api_burst(trail: Trail, fn: LambdaFunction, start: datetime, requests: int) -> datetime:
    """An order-import batch hits the API: item reads and writes on ``orders``; optimistic-locking
    updates sometimes lose the race (ConditionalCheckFailedException, an authorized call)."""
    s, cold = fn.session_at(trail, start)
    t = start
    if cold:
        ddb_call(trail, t, s, "DescribeTable", {}, read_only=True, data=False)
    key = hidden(["orderId"])
    for _ in range(requests):
        t = trail.after(t, 0.3, 7.0)
        op = trail.rng.choices(ORDER_OPS, weights=ORDER_WEIGHTS)[0]
        if op == "GetItem":
            ddb_call(trail, t, s, op, {"key": key, "consistentRead": False}, read_only=True)
        elif op == "Query" and trail.rng.random() < 0.6:
            ddb_call(trail, t, s, op, {"indexName": TABLE_INDEX, "keyConditionExpression": "customerId = :c",
                                       "limit": 25, "scanIndexForward": False}, read_only=True)
        elif op == "Query":
            ddb_call(trail, t, s, op, {"keyConditionExpression": "orderId = :o", "consistentRead": True},
                     read_only=True)
        elif op == "PutItem":
            ddb_call(trail, t, s, op, {"key": key, "item": ORDER_ATTRIBUTES,
                                       "conditionExpression": "attribute_not_exists(orderId)"}, read_only=False)
        elif op == "UpdateItem":
            lost_race = trail.rng.random() < 0.12
            ddb_call(trail, t, s, op, {"key": key, "updateExpression": "SET #s = :s, version = :v",
                                       "conditionExpression": "version = :expected",
                                       "expressionAttributeNames": {"#s": "status"}, "returnValues": "UPDATED_NEW"},
                     read_only=False,
                     failure=Failure("ConditionalCheckFailedException", "The conditional request failed",
                                     denied=False) if lost_race else None)
        else:
            ddb_call(trail, t, s, op, {"key": key, "returnValues": "ALL_OLD"}, read_only=False)
    return t


def notifier_run(trail: Trail, fn: LambdaFunction, start: datetime) -> None:
    """Drains ``notify-jobs`` and publishes to ``order-events``.  Both are SSE-KMS, so SQS and SNS
    call KMS with the notifier's credentials whenever their cached data key has expired."""
    s, cold = fn.session_at(trail, start)
    t = start
    if cold:
        sqs_call(trail, t, s, "GetQueueAttributes",
                 {"attributeNames": ["ApproximateNumberOfMessages", "VisibilityTimeout"]},
                 read_only=True, data=False)
    polls = trail.rng.randint(2, 4)
    for poll in range(polls):
        t = trail.after(t, 0.2, 1.5)
        if fn.needs_data_key("sqs", t):
            kms_on_behalf(trail, t, s, "sqs.amazonaws.com", "Decrypt", MESSAGING_KEY, {"aws:sqs:arn": QUEUE_ARN})
        sqs_call(trail, t, s, "ReceiveMessage", {"maxNumberOfMessages": 10, "waitTimeSeconds": 20,
                                                 "attributeNames": ["All"], "messageAttributeNames": ["All"]},
                 read_only=True)
        messages = 0 if poll == polls - 1 else trail.rng.randint(1, 4)
        if messages == 0:
            t += timedelta(seconds=20)  # the long poll ran to its end
            continue
        done = 0
        for _ in range(messages):
            t = trail.after(t, 0.1, 0.9)
            if trail.rng.random() < 0.1:  # downstream throttled: retry the message later
                sqs_call(trail, t, s, "ChangeMessageVisibility",
                         {"receiptHandle": "HIDDEN_DUE_TO_SECURITY_REASONS", "visibilityTimeout": 120},
                         read_only=False)
                continue
            if fn.needs_data_key("sns", t):
                kms_on_behalf(trail, t, s, "sns.amazonaws.com", "GenerateDataKey", MESSAGING_KEY,
                              {"aws:sns:topicArn": TOPIC_ARN}, key_id=MESSAGING_ALIAS)
                kms_on_behalf(trail, t, s, "sns.amazonaws.com", "Decrypt", MESSAGING_KEY,
                              {"aws:sns:topicArn": TOPIC_ARN})
            api_call(trail, t, s, "sns.amazonaws.com", "Publish", WORK,
                     params={"topicArn": TOPIC_ARN, "message": "HIDDEN_DUE_TO_SECURITY_REASONS",
                             "messageAttributes": "HIDDEN_DUE_TO_SECURITY_REASONS"},
                     response={"messageId": trail.uuid()}, read_only=False, data=True,
                     resources=[resource(TOPIC_ARN, "AWS::SNS::Topic")])
            done += 1
        t = trail.after(t, 0.05, 0.4)
        if done == 1:
            sqs_call(trail, t, s, "DeleteMessage", {"receiptHandle": "HIDDEN_DUE_TO_SECURITY_REASONS"},
                     read_only=False)
        elif done > 1:
            ids = [str(i) for i in range(done)]
            sqs_call(trail, t, s, "DeleteMessageBatch",
                     {"entries": [{"id": i, "receiptHandle": "HIDDEN_DUE_TO_SECURITY_REASONS"} for i in ids]},
                     response={"successful": [{"id": i} for i in ids], "failed": []}, read_only=False)


def config_loader_run(trail: Trail, fn: LambdaFunction, start: datetime) -> None:
    """Loads DB credentials and feature flags; both are decrypted by KMS on its behalf.  It also
    probes the billing API key it was never granted (AccessDeniedException, every run)."""
    s, _ = fn.session_at(trail, start)
    t = start
    api_call(trail, t, s, "secretsmanager.amazonaws.com", "GetSecretValue", WORK,
             params={"secretId": SECRET_ARN}, read_only=True)
    kms_on_behalf(trail, t, s, "secretsmanager.amazonaws.com", "Decrypt", CONFIG_KEY,
                  {"SecretARN": SECRET_ARN, "SecretVersionId": SECRET_VERSION})
    t = trail.after(t, 0.1, 0.5)
    api_call(trail, t, s, "ssm.amazonaws.com", "GetParametersByPath", WORK,
             params={"path": CONFIG_PATH, "recursive": True, "withDecryption": True}, read_only=True)
    kms_on_behalf(trail, t, s, "ssm.amazonaws.com", "Decrypt", CONFIG_KEY,
                  {"PARAMETER_ARN": PARAM_ARN + FLAGS_PARAM})
    t = trail.after(t, 0.1, 0.5)
    api_call(trail, t, s, "ssm.amazonaws.com", "GetParameter", WORK,
             params={"name": BILLING_PARAM, "withDecryption": True}, read_only=True,
             failure=Failure("AccessDeniedException",
                             denial(s.arn, "ssm:GetParameter", PARAM_ARN + BILLING_PARAM), denied=True))
    for _ in range(trail.rng.randint(2, 4)):  # warm invocations re-read the flags
        t = trail.after(t, 5, 40)
        fn.session_at(trail, t)
        api_call(trail, t, s, "ssm.amazonaws.com", "GetParameter", WORK,
                 params={"name": FLAGS_PARAM, "withDecryption": True}, read_only=True)
        kms_on_behalf(trail, t, s, "ssm.amazonaws.com", "Decrypt", CONFIG_KEY,
                      {"PARAMETER_ARN": PARAM_ARN + FLAGS_PARAM})


def github_login(trail: Trail, t: datetime) -> RoleSession:
    """configure-aws-credentials exchanges the workflow's OIDC token for role credentials."""
    ip = trail.rng.choice(GITHUB_RUNNER_IPS)
    session = RoleSession(DEPLOYER_ROLE, "GitHubActions", "ASIA" + trail.token(16), t, ip, CLI_UA,
                          federated_provider=OIDC_PROVIDER)
    web_user = WebIdentityCaller(ip)
    api_call(trail, t, web_user, "sts.amazonaws.com", "AssumeRoleWithWebIdentity", GLOBAL,
             params={"roleArn": DEPLOYER_ROLE.arn, "roleSessionName": session.name, "durationSeconds": 3600},
             response={"credentials": {"accessKeyId": session.access_key,
                                       "expiration": sts_expiration(t + timedelta(hours=1))},
                       "subjectFromWebIdentityToken": GITHUB_SUBJECT,
                       "assumedRoleUser": {"assumedRoleId": f"{DEPLOYER_ROLE.role_id}:{session.name}",
                                           "arn": session.arn},
                       "provider": OIDC_PROVIDER, "audience": "sts.amazonaws.com"},
             additional={"identityProviderConnectionVerificationMethod": "IAMTrustStore"},
             read_only=True, resources=[resource(DEPLOYER_ROLE.arn, "AWS::IAM::Role")],
             host="sts.amazonaws.com", user_agent=GHA_CREDENTIALS_UA)
    return session


@dataclass
class WebIdentityCaller:
    """The GitHub Actions workflow before it holds AWS credentials (type WebIdentityUser)."""
    ip: str
    user_agent: str = GHA_CREDENTIALS_UA
    tls = True
    console = False
    section = WEB_IDENTITY
    who = OIDC_PROVIDER

    def identity(self) -> dict:
        return {"type": "WebIdentityUser",
                "principalId": f"{OIDC_PROVIDER}:sts.amazonaws.com:{GITHUB_SUBJECT}",
                "userName": GITHUB_SUBJECT, "identityProvider": OIDC_PROVIDER}


def cli(session: RoleSession, command: str) -> RoleSession:
    """The same session seen through a different ``aws`` sub-command (it shows in the user agent)."""
    return RoleSession(session.role, session.name, session.access_key, session.created, session.ip,
                       CLI_UA.format(command=command), session.federated_provider)


CFN = "cloudformation.amazonaws.com"
LAMBDA = "lambda.amazonaws.com"
ORDERS_FUNCTION_ARN = f"arn:aws:lambda:{WORK}:{ACCOUNT}:function:orders-api"


def ci_deploy(trail: Trail, start: datetime, stray: str | None) -> None:
    """A GitHub Actions deploy of orders-service: upload the build, roll the CloudFormation stack,
    push and publish the Lambda code, check the execution role.  ``stray`` adds a step the role
    is not allowed to perform (``create_role`` or ``run_instances``)."""
    s = github_login(trail, start)
    sha = trail.hex(40)
    artifact = f"orders-service/{sha}.zip"
    t = trail.after(start, 2, 6)
    s3_call(trail, t, cli(s, "s3.cp"), "PutObject", ARTIFACT_BUCKET, artifact, read_only=False,
            bytes_in=trail.rng.randint(2_500_000, 3_200_000), response={"x-amz-server-side-encryption": "AES256"})
    t = cfn_deploy(trail, trail.after(t, 2, 5), cli(s, "cloudformation.deploy"), artifact)
    t = lambda_release(trail, trail.after(t, 2, 4), s, artifact, sha)
    t = trail.after(t, 1, 3)
    api_call(trail, t, cli(s, "iam.get-role"), "iam.amazonaws.com", "GetRole", GLOBAL,
             params={"roleName": ORDERS_ROLE.name}, read_only=True, host="iam.amazonaws.com")
    if stray == "create_role":
        ci_create_helper_role(trail, trail.after(t, 1, 3), s)
    elif stray == "run_instances":
        ci_launch_smoke_instance(trail, trail.after(t, 1, 3), s)


def cfn_deploy(trail: Trail, t: datetime, s: RoleSession, artifact: str) -> datetime:
    """What ``aws cloudformation deploy --s3-bucket`` does: upload the template, create a change
    set, wait for it, execute it, wait for the stack."""
    api_call(trail, t, s, CFN, "DescribeStacks", WORK, params={"stackName": STACK_NAME}, read_only=True)
    template = f"orders-service/{trail.hex(32)}.template"
    t = trail.after(t, 0.5, 1.5)
    s3_call(trail, t, s, "PutObject", ARTIFACT_BUCKET, template, read_only=False,
            bytes_in=trail.rng.randint(6_000, 9_000), response={"x-amz-server-side-encryption": "AES256"})
    t = trail.after(t, 0.5, 1.5)
    change_set = f"awscli-cloudformation-package-deploy-{int(t.timestamp())}"
    change_set_arn = f"arn:aws:cloudformation:{WORK}:{ACCOUNT}:changeSet/{change_set}/{trail.uuid()}"
    api_call(trail, t, s, CFN, "CreateChangeSet", WORK, read_only=False,
             params={"stackName": STACK_NAME,
                     "templateURL": f"https://s3.{WORK}.amazonaws.com/{ARTIFACT_BUCKET}/{template}",
                     "parameters": [{"parameterKey": "ArtifactKey", "parameterValue": artifact}],
                     "capabilities": ["CAPABILITY_IAM"], "changeSetName": change_set, "changeSetType": "UPDATE",
                     "description": f"Created by AWS CLI at {t:%Y-%m-%dT%H:%M:%S}.{t.microsecond:06d} UTC"},
             response={"id": change_set_arn, "stackId": STACK_ID})
    for _ in range(trail.rng.randint(2, 3)):  # waiter: change set created
        t = trail.after(t, 5, 6)
        api_call(trail, t, s, CFN, "DescribeChangeSet", WORK, read_only=True,
                 params={"changeSetName": change_set_arn, "stackName": STACK_ID})
    t = trail.after(t, 0.5, 1.5)
    api_call(trail, t, s, CFN, "ExecuteChangeSet", WORK, read_only=False,
             params={"changeSetName": change_set, "stackName": STACK_NAME})
    for _ in range(trail.rng.randint(2, 4)):  # waiter: stack update complete
        t = trail.after(t, 30, 31)
        api_call(trail, t, s, CFN, "DescribeStacks", WORK, params={"stackName": STACK_NAME}, read_only=True)
    return t


def lambda_release(trail: Trail, t: datetime, s: RoleSession, artifact: str, sha: str) -> datetime:
    """Point orders-api at the new zip, wait for the update, publish a version."""
    get_function = {"functionName": "orders-api"}
    api_call(trail, t, cli(s, "lambda.get-function"), LAMBDA, "GetFunction20150331v2", WORK,
             params=get_function, read_only=True, api_version="2015-03-31")
    t = trail.after(t, 1, 3)
    code_sha = base64.b64encode(trail.rng.randbytes(32)).decode()
    api_call(trail, t, cli(s, "lambda.update-function-code"), LAMBDA, "UpdateFunctionCode20150331v2", WORK,
             params={"functionName": "orders-api", "s3Bucket": ARTIFACT_BUCKET, "s3Key": artifact,
                     "publish": False, "dryRun": False},
             response={"functionName": "orders-api", "functionArn": ORDERS_FUNCTION_ARN, "runtime": "nodejs20.x",
                       "role": ORDERS_ROLE.arn, "handler": "index.handler",
                       "codeSize": trail.rng.randint(2_500_000, 3_200_000), "timeout": 10, "memorySize": 512,
                       "lastModified": f"{t:%Y-%m-%dT%H:%M:%S}.000+0000", "codeSha256": code_sha,
                       "version": "$LATEST", "revisionId": trail.uuid(), "state": "Active",
                       "lastUpdateStatus": "InProgress", "packageType": "Zip", "architectures": ["arm64"]},
             read_only=False, api_version="2015-03-31")
    for _ in range(trail.rng.randint(1, 2)):  # poll until LastUpdateStatus is Successful
        t = trail.after(t, 2, 5)
        api_call(trail, t, cli(s, "lambda.get-function"), LAMBDA, "GetFunction20150331v2", WORK,
                 params=get_function, read_only=True, api_version="2015-03-31")
    t = trail.after(t, 1, 3)
    version = str(trail.rng.randint(40, 90))
    api_call(trail, t, cli(s, "lambda.publish-version"), LAMBDA, "PublishVersion20150331", WORK,
             params={"functionName": "orders-api", "codeSha256": code_sha,
                     "description": f"orders-service {sha[:7]}"},
             response={"functionName": "orders-api", "functionArn": f"{ORDERS_FUNCTION_ARN}:{version}",
                       "version": version, "codeSha256": code_sha, "state": "Active"},
             read_only=False, api_version="2015-03-31")
    t = trail.after(t, 1, 3)
    api_call(trail, t, cli(s, "lambda.list-functions"), LAMBDA, "ListFunctions20150331", WORK,
             read_only=True, api_version="2015-03-31")
    return t


def ci_create_helper_role(trail: Trail, t: datetime, s: RoleSession) -> None:
    """A new workflow step tries to create a role; the deployer may not (IAM says AccessDenied)."""
    helper = f"arn:aws:iam::{ACCOUNT}:role/service-role/orders-replay-role"
    trust = ('{"Version":"2012-10-17","Statement":[{"Effect":"Allow",'
             '"Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}')
    api_call(trail, t, cli(s, "iam.create-role"), "iam.amazonaws.com", "CreateRole", GLOBAL,
             params={"roleName": "orders-replay-role", "path": "/service-role/", "assumeRolePolicyDocument": trust},
             read_only=False, host="iam.amazonaws.com",
             failure=Failure("AccessDenied", denial(s.arn, "iam:CreateRole", helper), denied=True))


def ci_launch_smoke_instance(trail: Trail, t: datetime, s: RoleSession) -> None:
    """A smoke test tries to launch an instance; EC2 reports Client.UnauthorizedOperation."""
    encoded = base64.b64encode(trail.rng.randbytes(96)).decode().rstrip("=")
    message = ("You are not authorized to perform this operation. "
               + denial(s.arn, "ec2:RunInstances", f"arn:aws:ec2:{WORK}:{ACCOUNT}:instance/*")
               + f". Encoded authorization failure message: {encoded}")
    api_call(trail, t, cli(s, "ec2.run-instances"), "ec2.amazonaws.com", "RunInstances", WORK,
             params={"instancesSet": {"items": [{"imageId": "ami-0c4e8b1f2a3d5e6f7", "minCount": 1, "maxCount": 1}]},
                     "instanceType": "t3.small", "blockDeviceMapping": {}, "monitoring": {"enabled": False},
                     "disableApiTermination": False, "disableApiStop": False, "clientToken": trail.uuid()},
             read_only=False, failure=Failure("Client.UnauthorizedOperation", message, denied=True))


INVENTORY_FUNCTION_ARN = f"arn:aws:lambda:{WORK}:{ACCOUNT}:function:inventory-sync"
INVENTORY_ATTRIBUTES = ["sku", "warehouse", "onHand", "reserved", "updatedAt"]


def ci_create_inventory_sync(trail: Trail, start: datetime) -> datetime:
    """A one-off workflow creates inventory-sync (zip upload, in a VPC, traced) and wires the
    inventory-events queue to it.  Returns when the event source mapping was created."""
    s = github_login(trail, start)
    t = trail.after(start, 3, 8)
    api_call(trail, t, cli(s, "lambda.create-function"), LAMBDA, "CreateFunction20150331", WORK,
             params={"functionName": "inventory-sync", "runtime": "python3.12", "role": INVENTORY_ROLE.arn,
                     "handler": "app.handler", "code": {}, "timeout": 30, "memorySize": 256, "publish": True,
                     "vpcConfig": {"subnetIds": INVENTORY_SUBNETS, "securityGroupIds": INVENTORY_SECURITY_GROUPS},
                     "tracingConfig": {"mode": "Active"}, "environment": {}},
             response={"functionName": "inventory-sync", "functionArn": f"{INVENTORY_FUNCTION_ARN}:1",
                       "runtime": "python3.12", "role": INVENTORY_ROLE.arn, "handler": "app.handler",
                       "codeSize": trail.rng.randint(18_000, 42_000), "description": "", "timeout": 30,
                       "memorySize": 256, "lastModified": f"{t:%Y-%m-%dT%H:%M:%S}.000+0000",
                       "codeSha256": base64.b64encode(trail.rng.randbytes(32)).decode(), "version": "1",
                       "vpcConfig": {"subnetIds": INVENTORY_SUBNETS, "securityGroupIds": INVENTORY_SECURITY_GROUPS,
                                     "vpcId": INVENTORY_VPC, "ipv6AllowedForDualStack": False},
                       "tracingConfig": {"mode": "Active"}, "environment": {}, "revisionId": trail.uuid(),
                       "state": "Pending", "stateReason": "The function is being created.",
                       "stateReasonCode": "Creating", "packageType": "Zip", "architectures": ["x86_64"],
                       "ephemeralStorage": {"size": 512},
                       "snapStart": {"applyOn": "None", "optimizationStatus": "Off"},
                       "loggingConfig": {"logFormat": "Text", "logGroup": "/aws/lambda/inventory-sync"}},
             read_only=False, api_version="2015-03-31")
    t = trail.after(t, 2, 6)
    mapping = trail.uuid()
    api_call(trail, t, cli(s, "lambda.create-event-source-mapping"), LAMBDA, "CreateEventSourceMapping20150331",
             WORK, params={"eventSourceArn": INVENTORY_QUEUE_ARN, "functionName": "inventory-sync",
                           "batchSize": 10, "enabled": True},
             response={"uUID": mapping, "batchSize": 10, "maximumBatchingWindowInSeconds": 0,
                       "eventSourceArn": INVENTORY_QUEUE_ARN, "functionArn": INVENTORY_FUNCTION_ARN,
                       "lastModified": sts_expiration(t),  # Lambda prints this date the way STS does
                       "state": "Creating", "stateTransitionReason": "USER_INITIATED",
                       "functionResponseTypes": [],
                       "eventSourceMappingArn": f"arn:aws:lambda:{WORK}:{ACCOUNT}:event-source-mapping:{mapping}"},
             read_only=False, api_version="2015-03-31")
    return t


def inventory_sync_run(trail: Trail, fn: LambdaFunction, start: datetime) -> datetime:
    """One batch from inventory-events (the Lambda service polls the queue; that is not the
    function's own call).  A new environment reads its API key first; every stock message is a
    read of the item and, unless nothing changed, a write of it."""
    s, cold = fn.session_at(trail, start)
    t = start
    if cold:
        api_call(trail, t, s, "secretsmanager.amazonaws.com", "GetSecretValue", WORK,
                 params={"secretId": INVENTORY_SECRET_ARN}, read_only=True)
        kms_on_behalf(trail, t, s, "secretsmanager.amazonaws.com", "Decrypt", CONFIG_KEY,
                      {"SecretARN": INVENTORY_SECRET_ARN, "SecretVersionId": INVENTORY_SECRET_VERSION})
    key = hidden(["sku"])
    for _ in range(trail.rng.randint(1, 4)):
        t = trail.after(t, 0.05, 0.8)
        ddb_call(trail, t, s, "GetItem", {"key": key, "consistentRead": True}, read_only=True,
                 table_arn=INVENTORY_TABLE_ARN)
        if trail.rng.random() < 0.8:
            t = trail.after(t, 0.02, 0.3)
            ddb_call(trail, t, s, "PutItem", {"key": key, "item": INVENTORY_ATTRIBUTES}, read_only=False,
                     table_arn=INVENTORY_TABLE_ARN)
    return t


def alice_console(trail: Trail, start: datetime, tries_iam: bool) -> None:
    """A human checking on things from the console after an MFA sign-in."""
    api_call(trail, start, SignIn(ALICE), "signin.amazonaws.com", "ConsoleLogin", GLOBAL,
             response={"ConsoleLogin": "Success"}, read_only=False, host="signin.aws.amazon.com",
             event_type="AwsConsoleSignIn",
             additional={"LoginTo": "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true",
                         "MobileVersion": "No", "MFAIdentifier": f"arn:aws:iam::{ACCOUNT}:mfa/alice-yubikey",
                         "MFAUsed": "Yes"})
    login = ConsoleSession(ALICE, "ASIA" + trail.token(16), start)
    t = trail.after(start, 3, 8)
    api_call(trail, t, login, "sts.amazonaws.com", "GetCallerIdentity", GLOBAL, read_only=True,
             host="sts.amazonaws.com")
    for filtered in (False, True, False)[: trail.rng.randint(2, 3)]:
        t = trail.after(t, 8, 60)
        filters = ({"items": [{"name": "instance-state-name", "valueSet": {"items": [{"value": "running"}]}}]}
                   if filtered else {})
        api_call(trail, t, login, "ec2.amazonaws.com", "DescribeInstances", WORK, read_only=True,
                 params={"instancesSet": {}, "filterSet": filters, "maxResults": 1000})
    t = trail.after(t, 10, 90)
    s3_call(trail, t, ConsoleSession(ALICE, login.access_key, start, user_agent=S3_CONSOLE_UA),
            "ListBuckets", "", region=GLOBAL, data=False)
    for _ in range(trail.rng.randint(1, 2)):
        t = trail.after(t, 15, 120)
        api_call(trail, t, login, "cloudtrail.amazonaws.com", "LookupEvents", WORK, read_only=True,
                 params={"maxResults": 50, "lookupAttributes": [{"attributeKey": "ReadOnly",
                                                                 "attributeValue": "false"}]})
    if tries_iam:
        t = trail.after(t, 10, 60)
        api_call(trail, t, login, "iam.amazonaws.com", "ListUsers", GLOBAL, read_only=True,
                 host="iam.amazonaws.com",
                 failure=Failure("AccessDenied", denial(ALICE.arn, "iam:ListUsers", f"arn:aws:iam::{ACCOUNT}:user/"),
                                 denied=True))


def kms_rotation(trail: Trail, t: datetime, key_arn: str) -> None:
    """Automatic key rotation: a service event, not anybody's API call."""
    rec = {"eventVersion": "1.10", "userIdentity": {"accountId": ACCOUNT, "invokedBy": "AWS Internal"},
           "eventTime": iso(t), "eventSource": "kms.amazonaws.com", "eventName": "RotateKey", "awsRegion": WORK,
           "sourceIPAddress": "AWS Internal", "userAgent": "AWS Internal", "requestParameters": None,
           "responseElements": None, "eventID": trail.uuid(), "readOnly": False,
           "resources": [resource(key_arn, "AWS::KMS::Key")], "eventType": "AwsServiceEvent",
           "managementEvent": True, "recipientAccountId": ACCOUNT,
           "serviceEventDetails": {"rotationType": "AUTOMATIC", "keyId": key_arn.rsplit("/", 1)[1]},
           "eventCategory": "Management"}
    trail.add(rec, ServicePrincipal("kms.amazonaws.com"), None)


# --------------------------------------------------------------------------
# The week
# --------------------------------------------------------------------------
CONFIG_RUNS = ("00:30", "04:30", "08:30", "12:30", "16:30", "20:30")
REPORT_RUNS = (("06:05", -1, 6), ("12:05", 0, 3), ("18:05", 0, 5))  # (time, day offset, reports ready)
DEPLOYS = (("2026-11-03T10:12", "create_role"), ("2026-11-03T15:47", None), ("2026-11-04T11:03", None),
           ("2026-11-06T09:38", "run_instances"), ("2026-11-06T14:21", None))
CONSOLE_VISITS = (("2026-11-02T09:14", True), ("2026-11-04T16:40", False), ("2026-11-06T08:52", False))
ROTATIONS = (("2026-11-04T03:17", MESSAGING_KEY), ("2026-11-06T03:41", CONFIG_KEY))
INVENTORY_DEPLOY = "2026-11-02T13:26"


def at(day: datetime, hhmm: str) -> datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return day.replace(hour=hours, minute=minutes)


def stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M").replace(tzinfo=timezone.utc)


def order_bursts(trail: Trail, day: datetime) -> list[datetime]:
    """Import batches between 07:00 and 21:30, fewer at the weekend, at least 20 minutes apart."""
    count = 3 if day.weekday() >= 5 else 5
    while True:
        minutes = sorted(trail.rng.randrange(7 * 60, 21 * 60 + 30) for _ in range(count))
        if all(b - a >= 20 for a, b in zip(minutes, minutes[1:])):
            return [day + timedelta(minutes=m, seconds=trail.rng.randrange(60)) for m in minutes]


def simulate(trail: Trail) -> None:
    """Play the week in chronological order per function (environments carry over between runs)."""
    reports = LambdaFunction("reports-reader", REPORTS_ROLE, PYTHON_LAMBDA_UA)
    orders = LambdaFunction("orders-api", ORDERS_ROLE, NODE_LAMBDA_UA)
    notifier = LambdaFunction("notifier", NOTIFIER_ROLE, PYTHON_LAMBDA_UA)
    config = LambdaFunction("config-loader", CONFIG_ROLE, PYTHON_LAMBDA_UA)
    sizes: dict[str, int] = {}
    for n in range(DAYS):
        day = FIRST_DAY + timedelta(days=n)
        for hhmm in CONFIG_RUNS:
            config_loader_run(trail, config, trail.after(at(day, hhmm), 0, 45))
        for hhmm, offset, ready in REPORT_RUNS:
            reports_reader_run(trail, reports, trail.after(at(day, hhmm), 0, 40), day + timedelta(days=offset),
                               ready, sizes)
        for start in order_bursts(trail, day):
            end = orders_api_burst(trail, orders, start, trail.rng.randint(18, 40))
            notifier_run(trail, notifier, trail.after(end, 15, 60))
    for when, stray in DEPLOYS:
        ci_deploy(trail, trail.after(stamp(when), 0, 59), stray)
    for when, tries_iam in CONSOLE_VISITS:
        alice_console(trail, trail.after(stamp(when), 0, 59), tries_iam)
    for when, key in ROTATIONS:
        kms_rotation(trail, trail.after(stamp(when), 0, 59), key)
    inventory_week(trail.branch(INVENTORY_SEED))


def inventory_week(trail: Trail) -> None:
    """inventory-sync, deployed on the first afternoon, then a few stock-update batches a day
    (a batch can take one or two invocations of the same warm environment)."""
    fn = LambdaFunction("inventory-sync", INVENTORY_ROLE, PYTHON_LAMBDA_UA, egress_ip=INVENTORY_NAT_IP)
    live = ci_create_inventory_sync(trail, trail.after(stamp(INVENTORY_DEPLOY), 0, 59)) + timedelta(minutes=5)
    for n in range(DAYS):
        day = FIRST_DAY + timedelta(days=n)
        count = 2 if day.weekday() >= 5 else trail.rng.randint(3, 5)
        minutes = sorted(trail.rng.randrange(6 * 60, 22 * 60) for _ in range(count))
        for m in minutes:
            start = day + timedelta(minutes=m, seconds=trail.rng.randrange(60))
            if start < live:
                continue
            for _ in range(trail.rng.randint(1, 2)):
                start = trail.after(inventory_sync_run(trail, fn, start), 2, 45)


# --------------------------------------------------------------------------
# Delivery: log files, digests, truth
# --------------------------------------------------------------------------
@dataclass
class LogFile:
    region: str
    delivered: datetime
    suffix: str
    records: list[dict]

    @property
    def key(self) -> str:
        d = self.delivered
        return (f"AWSLogs/{ACCOUNT}/CloudTrail/{self.region}/{d:%Y/%m/%d}/"
                f"{ACCOUNT}_CloudTrail_{self.region}_{d:%Y%m%dT%H%MZ}_{self.suffix}.json.gz")

    @property
    def body(self) -> bytes:
        return json.dumps({"Records": self.records}, separators=(",", ":")).encode()


def package(trail: Trail) -> list[LogFile]:
    """Group records per region into 5-minute delivery windows.  Records in a file are only
    roughly time-ordered, as with real CloudTrail.

    Each random stream jumbles its own records with its own generator, and a window's delivery
    time and file name come from the first stream with records in it.  A window the original
    stream has no part in therefore costs it nothing, and one it shares only gains the other
    stream's records (merged in by time), so adding a stream leaves the rest of the files as they were."""
    windows: dict[tuple[str, datetime], list[list[dict]]] = {}
    for e in trail.emitted:
        t = datetime.strptime(e.record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        start = t - timedelta(minutes=t.minute % 5, seconds=t.second)
        parts = windows.setdefault((e.record["awsRegion"], start), [[] for _ in trail.streams])
        parts[e.stream].append(e.record)
    files = []
    for (region, start), parts in sorted(windows.items()):
        merged: list[dict] = []
        owner: LogFile | None = None
        for stream, records in zip(trail.streams, parts):
            if not records:
                continue
            records.sort(key=lambda r: r["eventTime"])
            for i in range(len(records) - 1):
                if stream.rng.random() < 0.15:
                    records[i], records[i + 1] = records[i + 1], records[i]
            if owner is None:
                delivered = start + DELIVERY_WINDOW + timedelta(seconds=stream.rng.randrange(30, 240))
                owner = LogFile(region, delivered, stream.token(16, ALNUM), [])
            merged = interleave(merged, records)
        owner.records = merged
        files.append(owner)
    return files


def interleave(a: list[dict], b: list[dict]) -> list[dict]:
    """Merge two roughly time-ordered lists by event time, keeping each list's own order."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        if a[i]["eventTime"] <= b[j]["eventTime"]:
            out.append(a[i])
            i += 1
        else:
            out.append(b[j])
            j += 1
    return out + a[i:] + b[j:]


def signing_key():
    """The demo trail's TEST-ONLY signing key (fixtures/test-keys/): created once, then reused, so the
    signatures (RSA PKCS#1 v1.5 is deterministic) are the same on every run."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    if SIGNING_KEY.exists():
        return serialization.load_pem_private_key(SIGNING_KEY.read_bytes(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    SIGNING_KEY.parent.mkdir(parents=True, exist_ok=True)
    SIGNING_KEY.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
    return key


def digests(files: list[LogFile]) -> tuple[list[tuple[str, bytes]], dict[str, dict[str, str]]]:
    """One chained, signed digest per day and region (real trails write one an hour), as CloudTrail
    writes them: ``logFiles[].hashValue`` and ``previousDigestHashValue`` are SHA-256 of the uncompressed
    files, and each digest is signed (SHA256withRSA) over its end time, S3 path, hash and the previous
    digest's signature (``"null"`` for the first). The signatures are S3 object metadata, returned
    separately (``digest-metadata.json``). The key pair is the TEST-ONLY one under fixtures/test-keys/."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key = signing_key()
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    fingerprint = hashlib.md5(public).hexdigest()
    out: list[tuple[str, bytes]] = []
    metadata: dict[str, dict[str, str]] = {}
    for region in (GLOBAL, WORK):
        previous: tuple[str, bytes, str] | None = None  # key, body, signature
        start = FIRST_DAY - timedelta(minutes=1, seconds=29)
        for n in range(DAYS):
            end = FIRST_DAY + timedelta(days=n, hours=23, minutes=58, seconds=31)
            listed = [f for f in files if f.region == region and start <= f.delivered < end]
            entries = []
            for f in listed:
                times = [r["eventTime"] for r in f.records]
                entries.append({"s3Bucket": TRAIL_BUCKET, "s3Object": f.key,
                                "hashValue": hashlib.sha256(f.body).hexdigest(), "hashAlgorithm": "SHA-256",
                                "newestEventTime": max(times), "oldestEventTime": min(times)})
            name = (f"AWSLogs/{ACCOUNT}/CloudTrail-Digest/{region}/{end:%Y/%m/%d}/"
                    f"{ACCOUNT}_CloudTrail-Digest_{region}_{TRAIL_NAME}_{TRAIL_HOME}_{end:%Y%m%dT%H%M%SZ}.json.gz")
            digest = {
                "awsAccountId": ACCOUNT, "digestStartTime": iso(start), "digestEndTime": iso(end),
                "digestS3Bucket": TRAIL_BUCKET, "digestS3Object": name,
                "digestPublicKeyFingerprint": fingerprint,
                "digestSignatureAlgorithm": "SHA256withRSA",
                "newestEventTime": max((e["newestEventTime"] for e in entries), default=None),
                "oldestEventTime": min((e["oldestEventTime"] for e in entries), default=None),
                "previousDigestS3Bucket": TRAIL_BUCKET if previous else None,
                "previousDigestS3Object": previous[0] if previous else None,
                "previousDigestHashValue": hashlib.sha256(previous[1]).hexdigest() if previous else None,
                "previousDigestHashAlgorithm": "SHA-256" if previous else None,
                "previousDigestSignature": previous[2] if previous else None,
                "logFiles": entries,
            }
            body = json.dumps(digest, separators=(",", ":")).encode()
            signing = (f"{iso(end)}\n{TRAIL_BUCKET}/{name}\n{hashlib.sha256(body).hexdigest()}\n"
                       f"{previous[2] if previous else 'null'}").encode()
            signature = key.sign(signing, padding.PKCS1v15(), hashes.SHA256()).hex()
            out.append((name, body))
            metadata[name] = {"signature": signature, "signature-algorithm": "SHA256withRSA"}
            previous = (name, body, signature)
            start = end
    return out, metadata


def truth(trail: Trail, files: list[LogFile]) -> dict:
    """Per-principal call counts from the generator's model: ``count`` is every non-denied call
    (including those that failed for other reasons), ``errors`` the failed ones among them."""
    sections: dict[str, dict] = {PRINCIPALS: {}, WEB_IDENTITY: {}, SERVICE: {}}
    for e in trail.emitted:
        table = sections[e.section] if e.who is None else sections[e.section].setdefault(e.who, {})
        key = f"{e.record['eventSource']} {e.record['eventName']}"
        cell = table.setdefault(key, {"count": 0, "denied": 0, "errors": 0})
        cell["denied" if e.outcome == "denied" else "count"] += 1
        cell["errors"] += e.outcome == "error"
    times = sorted(e.record["eventTime"] for e in trail.emitted)
    by_region: dict[str, int] = {}
    for f in files:
        by_region[f.region] = by_region.get(f.region, 0) + len(f.records)
    return {
        "account": ACCOUNT,
        "events": sum(len(f.records) for f in files),
        "events_by_region": dict(sorted(by_region.items())),
        "log_files": len(files),
        "digest_files": 2 * DAYS,
        "first_event": times[0],
        "last_event": times[-1],
        "regions": sorted(by_region),
        PRINCIPALS: sections[PRINCIPALS],
        WEB_IDENTITY: sections[WEB_IDENTITY],
        SERVICE: sections[SERVICE],
    }


def write(out: Path, files: list[LogFile], digest_files: list[tuple[str, bytes]], metadata: dict, facts: dict) -> None:
    shutil.rmtree(out / "AWSLogs", ignore_errors=True)
    for key, body in [(f.key, f.body) for f in files] + digest_files:
        path = out / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(body, compresslevel=9, mtime=0))
    (out / "truth.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    (out / "digest-metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: fixtures/demo)")
    args = parser.parse_args()
    trail = Trail(SEED)
    simulate(trail)
    files = package(trail)
    facts = truth(trail, files)
    digest_files, metadata = digests(files)
    write(args.out, files, digest_files, metadata, facts)
    print(f"{facts['events']} events in {len(files)} log files under {args.out}")


if __name__ == "__main__":
    main()
