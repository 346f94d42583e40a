"""Shared factories: realistic CloudTrail records and log files, built small."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
PUBLIC = ROOT / "fixtures" / "public"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/service-role/orders-api-role"


def assumed_role(role_arn: str = ROLE, session: str = "orders-api", **extra) -> dict:
    partition, account, name = role_arn.split(":")[1], role_arn.split(":")[4], role_arn.rsplit("/", 1)[-1]
    identity = {
        "type": "AssumedRole",
        "principalId": f"AROAEXAMPLEID:{session}",
        "arn": f"arn:{partition}:sts::{account}:assumed-role/{name}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAEXAMPLEKEY",
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLEID", "arn": role_arn,
                              "accountId": account, "userName": name},
            "attributes": {"creationDate": "2026-11-02T08:00:00Z", "mfaAuthenticated": "false"},
        },
    }
    identity.update(extra)
    return identity


def make_record(
    *,
    source: str = "dynamodb.amazonaws.com",
    name: str = "GetItem",
    time: str = "2026-11-02T08:15:00Z",
    region: str = "eu-west-1",
    identity: dict | None = None,
    params: dict | None = None,
    event_id: str | None = None,
    **extra,
) -> dict:
    """A CloudTrail record as CloudTrail writes it; keyword arguments override fields."""
    record = {
        "eventVersion": "1.09",
        "userIdentity": identity if identity is not None else assumed_role(),
        "eventTime": time,
        "eventSource": source,
        "eventName": name,
        "awsRegion": region,
        "sourceIPAddress": "203.0.113.10",
        "userAgent": "Boto3/1.34.0 md/Botocore#1.34.0 exec-env/AWS_Lambda_python3.12",
        "requestParameters": params if params is not None else {"tableName": "orders", "key": {"orderId": "HIDDEN"}},
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Data",
    }
    record.update(extra)
    return record


def log_bytes(records: list[dict], *, gz: bool = True) -> bytes:
    data = json.dumps({"Records": records}, separators=(",", ":")).encode()
    return gzip.compress(data, mtime=0) if gz else data


def write_log(path: Path, records: list[dict], *, gz: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(log_bytes(records, gz=gz))
    return path


def delivery_path(root: Path, day: str = "2026/11/02", region: str = "eu-west-1", n: int = 0, org: str | None = None) -> Path:
    stamp = day.replace("/", "") + f"T{n % 24:02d}{n % 60:02d}Z"
    base = root / "AWSLogs" / (org or "") / ACCOUNT if org else root / "AWSLogs" / ACCOUNT
    return base / "CloudTrail" / region / day / f"{ACCOUNT}_CloudTrail_{region}_{stamp}_{n:016d}.json.gz"


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "usage.db"


@pytest.fixture(scope="session")
def demo_mined(tmp_path_factory) -> tuple[Path, list, list]:
    """The demo trail mined once per session: (store path, usage rows with service rows, coverage).

    Shared by every test module that reads the demo's usage; none may write to the store.
    """
    from lpgen.mine import mine
    from lpgen.sources.local import LocalSource
    from lpgen.store import UsageStore

    path = tmp_path_factory.mktemp("demo-mined") / "usage.db"
    with UsageStore(path) as store:
        mine([LocalSource(DEMO / "AWSLogs")], store)
        return path, list(store.usage(include_service=True)), store.coverage()


@pytest.fixture(scope="session")
def all_trails_mined(tmp_path_factory) -> tuple[list, list]:
    """Every record we ship (the mapping cases, the public samples, the demo) mined once per session:
    (usage rows with service rows, coverage). Read-only, like :func:`demo_mined`."""
    from lpgen.mine import mine
    from lpgen.sources.local import LocalSource
    from lpgen.store import UsageStore

    root = tmp_path_factory.mktemp("all-trails")
    cases = root / "mapping"
    cases.mkdir()
    for case in (ROOT / "fixtures" / "mapping").glob("*.json"):
        if not case.name.endswith(".expected.json"):  # goldens are lpgen's output, not trails
            (cases / case.name).write_bytes(case.read_bytes())
    with UsageStore(root / "usage.db") as store:
        mine([LocalSource(cases), LocalSource(PUBLIC), LocalSource(DEMO / "AWSLogs")], store)
        return list(store.usage(include_service=True)), store.coverage()


def seed(service: str, endpoint: str, region: str = "us-east-1"):
    """A plain boto3 client for a test's own seeding calls: not lpgen's, so not recorded or allow-listed."""
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=region)


@contextlib.contextmanager
def moto_server(**environment: str):
    """moto's server on a free loopback port, with test credentials (and ``environment``) set meanwhile.

    Yields the endpoint URL. The backends are reset first: a test starts from an empty account.
    """
    import requests
    from moto.server import ThreadedMotoServer

    settings = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1", **environment}
    previous = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: The TEST-ONLY key pair the demo trail's digests are signed with (fixtures/test-keys/README.md).
SIGNING_KEY = ROOT / "fixtures" / "test-keys" / "cloudtrail-digest-signing-TEST-ONLY.pem"
DIGEST_METADATA = DEMO / "digest-metadata.json"


def test_public_key(path: Path = SIGNING_KEY) -> tuple[str, bytes]:
    """(fingerprint, DER-encoded PKCS #1 public key) of a TEST-ONLY signing key, as ListPublicKeys gives them."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return hashlib.md5(der).hexdigest(), der


test_public_key.__test__ = False  # a helper, not a test


def serve_public_keys(monkeypatch, keys: list[tuple[str, bytes]]) -> None:
    """Teach moto's CloudTrail ``ListPublicKeys`` (it lacks it) to answer with ``keys``.

    The method is added to moto's response class, so the call still goes over HTTP through moto's
    request handling, IAM enforcement included.
    """
    import base64

    from moto.cloudtrail.responses import CloudTrailResponse

    def list_public_keys(self) -> str:
        return json.dumps({"PublicKeyList": [
            {"Fingerprint": fingerprint, "Value": base64.b64encode(der).decode(),
             "ValidityStartTime": 1767225600, "ValidityEndTime": 1798761600}  # 2026-01-01 .. 2027-01-01
            for fingerprint, der in keys]})

    monkeypatch.setattr(CloudTrailResponse, "list_public_keys", list_public_keys, raising=False)


def upload_trail(s3, bucket: str, prefix: str = "", root: Path = DEMO) -> int:
    """Put the demo trail into ``bucket`` as CloudTrail delivers it: digests with their signature metadata."""
    metadata = json.loads(DIGEST_METADATA.read_text())
    paths = sorted((root / "AWSLogs").rglob("*.json.gz"))
    for path in paths:
        key = path.relative_to(root).as_posix()
        s3.put_object(Bucket=bucket, Key=prefix + key, Body=path.read_bytes(), **(
            {"Metadata": metadata[key]} if key in metadata else {}))
    return len(paths)


@contextlib.contextmanager
def trail_bucket():
    """moto's server holding the demo trail in bucket ``trail`` as CloudTrail delivers it (digests with
    their signature metadata), its ListPublicKeys answering with the TEST-ONLY key. Yields the endpoint."""
    with pytest.MonkeyPatch.context() as patch:
        serve_public_keys(patch, [test_public_key()])
        with moto_server() as endpoint:
            s3 = seed("s3", endpoint)
            s3.create_bucket(Bucket="trail")
            upload_trail(s3, "trail")
            yield endpoint


def serve_access_advisor(monkeypatch) -> None:
    """Teach moto's IAM Access Advisor (it lacks it): every job completes at once, no service accessed.

    Like :func:`serve_public_keys`, the calls still go over HTTP through moto, IAM enforcement included.
    """
    from moto.core.responses import ActionResult
    from moto.iam.responses import IamResponse

    def generate_service_last_accessed_details(self) -> ActionResult:
        return ActionResult({"JobId": "0b9f2b4c-5d7e-4f10-9a2b-3c4d5e6f7a8b"})

    def get_service_last_accessed_details(self) -> ActionResult:
        now = datetime(2026, 11, 20, tzinfo=UTC)
        return ActionResult({"JobStatus": "COMPLETED", "JobType": "SERVICE_LEVEL", "JobCreationDate": now,
                             "JobCompletionDate": now, "ServicesLastAccessed": [], "IsTruncated": False})

    monkeypatch.setattr(IamResponse, "generate_service_last_accessed_details",
                        generate_service_last_accessed_details, raising=False)
    monkeypatch.setattr(IamResponse, "get_service_last_accessed_details", get_service_last_accessed_details,
                        raising=False)


# -- the allow-list: every AWS call lpgen makes during the suite must be a read it is allowed -----------


def pytest_configure(config) -> None:
    """Record every call of lpgen's AWS clients (``lpgen.aws.client_factory``), workers included."""
    import tempfile

    from lpgen.aws import RECORD_CALLS_ENV

    if RECORD_CALLS_ENV not in os.environ:
        fd, path = tempfile.mkstemp(prefix="lpgen-api-calls-", suffix=".txt")
        os.close(fd)
        os.environ[RECORD_CALLS_ENV] = path
        config.stash[_CALLS] = path


def recorded_calls(path: str) -> list[str]:
    return Path(path).read_text(encoding="utf-8").split()


def calls_outside_allow_list(calls: list[str]) -> dict[str, int]:
    """Calls (``service:Operation``) not in lpgen/data/own_policy.json, with how often each was made."""
    from collections import Counter

    from lpgen.own_policy import allowed_calls

    allowed = allowed_calls()
    return dict(sorted(Counter(c for c in calls if c not in allowed).items()))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the run when lpgen made an AWS call outside its allow-list of reads."""
    path = session.config.stash.get(_CALLS, None)
    if path is None:
        return
    calls = recorded_calls(path)
    Path(path).unlink(missing_ok=True)
    bad = calls_outside_allow_list(calls)
    session.config.stash[_VERDICT] = (f"lpgen made {len(calls):,} AWS calls ({len(set(calls))} operations)"
                                      + (f"; OUTSIDE its allow-list: {bad}" if bad else ", all in its allow-list"))
    if bad:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    verdict = terminalreporter.config.stash.get(_VERDICT, None)
    if verdict:
        terminalreporter.write_line(verdict)


_CALLS = pytest.StashKey[str]()
_VERDICT = pytest.StashKey[str]()
