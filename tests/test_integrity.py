"""Log integrity (`lpgen verify`, `lpgen mine --verify`): the demo trail's digests hold the real SHA-256 of
every log file, chain together and are signed with a TEST-ONLY key; each tampered copy below must be
caught and named, and nothing else reported."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from lpgen.aws import client_factory
from lpgen.cli import main
from lpgen.filters import Window
from lpgen.integrity import (
    CHAIN,
    GAP,
    MISSING,
    MODIFIED,
    NO_DIGESTS,
    SIGNATURE,
    UNLISTED,
    verify,
)
from lpgen.live import public_key_lookup
from lpgen.sources.local import LocalSource
from lpgen.sources.s3 import S3Source

from .conftest import (
    DEMO,
    DIGEST_METADATA,
    seed,
    serve_public_keys,
    test_public_key,
    trail_bucket,
)

TRUTH = json.loads((DEMO / "truth.json").read_text())
ACCOUNT = TRUTH["account"]
LOGS = f"AWSLogs/{ACCOUNT}/CloudTrail"
DIGESTS = f"AWSLogs/{ACCOUNT}/CloudTrail-Digest"


@pytest.fixture
def trail(tmp_path) -> Path:
    """A private copy of the demo trail to tamper with."""
    shutil.copytree(DEMO / "AWSLogs", tmp_path / "AWSLogs")
    return tmp_path / "AWSLogs"


def read_json(path: Path) -> dict:
    return json.loads(gzip.decompress(path.read_bytes()))


def write_json(path: Path, doc: dict) -> None:
    path.write_bytes(gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), mtime=0))


def digests_of(trail: Path, region: str = "eu-west-1") -> list[Path]:
    return sorted((trail.parent / DIGESTS / region).rglob("*.json.gz"))


def kinds(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in report.failures:
        out.setdefault(f.kind, []).append(f.path)
    return out


def test_the_demo_trail_verifies_and_says_signatures_need_the_bucket():
    report = verify([LocalSource(DEMO / "AWSLogs")])
    assert report.ok, report.failures
    assert report.verified == report.listed == report.log_files == TRUTH["log_files"]
    assert report.digests == TRUTH["digest_files"] and report.not_covered == 0
    assert not report.signatures_checked and any("signatures not checked" in n for n in report.notes)


def test_a_modified_byte_in_a_log_file_is_found(trail):
    victim = sorted((trail.parent / LOGS / "eu-west-1").rglob("*.json.gz"))[10]
    text = gzip.decompress(victim.read_bytes()).replace(b'"eventName":"', b'"eventName":"X', 1)
    victim.write_bytes(gzip.compress(text, mtime=0))
    report = verify([LocalSource(trail)])
    assert kinds(report) == {MODIFIED: [victim.as_posix()]}
    assert report.verified == TRUTH["log_files"] - 1


def test_recompressing_a_log_file_changes_nothing(trail):
    """The hash is over the uncompressed content: another gzip level is not tampering."""
    victim = sorted((trail.parent / LOGS / "eu-west-1").rglob("*.json.gz"))[3]
    victim.write_bytes(gzip.compress(gzip.decompress(victim.read_bytes()), compresslevel=1, mtime=0))
    assert verify([LocalSource(trail)]).ok


def test_a_deleted_log_file_is_missing(trail):
    victim = min((trail.parent / LOGS / "us-east-1").rglob("*.json.gz"))
    victim.unlink()
    report = verify([LocalSource(trail)])
    assert kinds(report) == {MISSING: [victim.relative_to(trail.parent).as_posix()]}


def test_an_extra_log_file_is_unlisted_and_one_outside_the_digests_is_not_covered(trail, tmp_path):
    name = f"{ACCOUNT}_CloudTrail_eu-west-1_20261104T1215Z_FORGEDFORGEDFORG.json.gz"
    forged = trail.parent / LOGS / "eu-west-1/2026/11/04" / name
    write_json(forged, {"Records": []})
    later = trail.parent / LOGS / "eu-west-1/2026/11/20" / name.replace("20261104", "20261120")
    later.parent.mkdir(parents=True)
    write_json(later, {"Records": []})
    report = verify([LocalSource(trail)])
    assert kinds(report) == {UNLISTED: [forged.as_posix()]}
    assert report.not_covered == 1  # delivered after the newest digest: nothing vouches for it, nothing failed


def test_a_deleted_digest_breaks_the_chain_and_leaves_its_logs_unlisted(trail):
    victim = digests_of(trail)[3]
    orphans = {e["s3Object"] for e in read_json(victim)["logFiles"]}
    victim.unlink()
    report = verify([LocalSource(trail)])
    found = kinds(report)
    assert set(found) == {CHAIN, UNLISTED}
    assert found[CHAIN] == [digests_of(trail)[3].as_posix()]  # the next digest names the deleted one
    assert {Path(p).relative_to(trail.parent).as_posix() for p in found[UNLISTED]} == orphans


def test_a_log_file_rewritten_with_its_digest_is_caught_by_the_next_digest(trail):
    """An attacker who alters a log file and the hash in its digest is betrayed by the chain."""
    digest_path = digests_of(trail)[2]
    digest = read_json(digest_path)
    entry = digest["logFiles"][0]
    log = trail.parent / entry["s3Object"]
    text = gzip.decompress(log.read_bytes()).replace(b'"eventName":"', b'"eventName":"X', 1)
    log.write_bytes(gzip.compress(text, mtime=0))
    entry["hashValue"] = hashlib.sha256(text).hexdigest()
    write_json(digest_path, digest)
    report = verify([LocalSource(trail)])
    assert [(f.kind, f.path) for f in report.failures] == [(CHAIN, digest_path.as_posix())]
    assert "modified" in report.failures[0].detail


def test_a_restarted_chain_is_a_gap(trail):
    victim = digests_of(trail, "us-east-1")[4]
    digest = read_json(victim)
    for field in ("previousDigestS3Bucket", "previousDigestS3Object", "previousDigestHashValue",
                  "previousDigestHashAlgorithm", "previousDigestSignature"):
        digest[field] = None
    write_json(victim, digest)
    found = kinds(verify([LocalSource(trail)]))
    assert found[GAP] == [victim.as_posix()]


def test_a_window_checks_only_its_digests_and_logs(trail):
    window = Window(since="2026-11-05T00:00:00Z", until="2026-11-05T23:59:59Z")
    report = verify([LocalSource(trail)], window=window)
    assert report.ok, report.failures
    assert report.digests == 4 and 0 < report.log_files < TRUTH["log_files"]
    assert any("starts before the window" in n for n in report.notes)


def test_no_digests_is_a_failure_not_a_pass(tmp_path):
    shutil.copytree(DEMO / "AWSLogs" / ACCOUNT / "CloudTrail", tmp_path / "AWSLogs" / ACCOUNT / "CloudTrail")
    report = verify([LocalSource(tmp_path / "AWSLogs")])
    assert list(kinds(report)) == [NO_DIGESTS] and report.not_covered == TRUTH["log_files"]


def test_verify_command_exit_status_and_json(trail):
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", str(DEMO / "AWSLogs"), "--format", "json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["verified"] == TRUTH["log_files"]
    min((trail.parent / LOGS / "eu-west-1").rglob("*.json.gz")).unlink()
    failed = runner.invoke(main, ["verify", str(trail)])
    assert failed.exit_code == 1 and failed.output.startswith("FAILED") and "1 missing" in failed.output


def test_mine_verify_mines_and_fails_on_tampering(trail, tmp_path):
    min((trail.parent / LOGS / "eu-west-1").rglob("*.json.gz")).unlink()
    result = CliRunner().invoke(main, ["mine", str(trail), "--verify", "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 1 and "integrity check" in result.output
    assert "1 missing" in result.stderr and f"mined {TRUTH['log_files'] - 1}" in result.output


# -- signatures, through moto's server: digests with their S3 metadata, ListPublicKeys ---------


@pytest.fixture(scope="module")
def bucket():
    with trail_bucket() as endpoint:
        yield seed("s3", endpoint), endpoint


#: The last two days: enough for the chain, and fewer files to read.
LAST_DAYS = Window(since="2026-11-07T00:00:00Z", until="2026-11-08T23:59:59Z")


def verify_bucket(endpoint: str, window: Window = LAST_DAYS):
    keys = public_key_lookup(lambda region: client_factory(region=region, endpoint_url=endpoint))
    source = S3Source("s3://trail", window=window, client_options={"endpoint_url": endpoint})
    return verify([source], window=window, public_keys=keys)


def test_signatures_of_the_bucket_verify(bucket):
    _, endpoint = bucket
    result = CliRunner().invoke(main, ["verify", "s3://trail", "--endpoint-url", endpoint, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["signatures_verified"] == TRUTH["digest_files"] and report["verified"] == TRUTH["log_files"]


def test_a_digest_signed_by_an_unknown_key_fails(bucket, monkeypatch):
    _, endpoint = bucket
    fingerprint, der = test_public_key()
    serve_public_keys(monkeypatch, [("0" * 32, der)])
    report = verify_bucket(endpoint)
    assert report.digests == 4 and {f.kind for f in report.failures} == {SIGNATURE}
    assert f"no CloudTrail public key in eu-west-1 has fingerprint {fingerprint}" in report.failures[0].detail


def test_altered_signature_metadata_and_a_rewritten_last_digest_fail(bucket):
    s3, endpoint = bucket
    metadata = json.loads(DIGEST_METADATA.read_text())
    first, last = sorted(k for k in metadata if "/eu-west-1/" in k)[-2:]
    forged = dict(metadata[first], signature="00" + metadata[first]["signature"][2:])
    s3.copy_object(Bucket="trail", Key=first, CopySource={"Bucket": "trail", "Key": first},
                   Metadata=forged, MetadataDirective="REPLACE")
    digest = json.loads(gzip.decompress(s3.get_object(Bucket="trail", Key=last)["Body"].read()))
    digest["logFiles"] = digest["logFiles"][1:]  # hide a log file: only the signature can tell (no next digest)
    s3.put_object(Bucket="trail", Key=last, Body=gzip.compress(json.dumps(digest).encode()), Metadata=metadata[last])
    try:
        found = kinds(verify_bucket(endpoint))
    finally:
        for key in (first, last):
            s3.put_object(Bucket="trail", Key=key, Body=(DEMO / key).read_bytes(), Metadata=metadata[key])
    assert found[SIGNATURE] == [f"s3://trail/{first}", f"s3://trail/{last}"]
    assert CHAIN in found  # the last digest holds the true signature of the one before
    assert UNLISTED in found


def test_public_keys_are_read_page_by_page_and_a_failure_names_the_region():
    """ListPublicKeys through botocore's Stubber: every page's keys, and an AWS error as OSError."""
    from datetime import UTC, datetime

    import boto3
    from botocore.stub import Stubber

    fingerprint, der = test_public_key()
    client = boto3.client("cloudtrail", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 9, tzinfo=UTC)
    with Stubber(client) as stub:
        stub.add_response("list_public_keys", {"PublicKeyList": [{"Fingerprint": "a" * 32, "Value": b"old"}],
                                               "NextToken": "t"}, {"StartTime": start, "EndTime": end})
        stub.add_response("list_public_keys", {"PublicKeyList": [{"Fingerprint": fingerprint, "Value": der}]},
                          {"StartTime": start, "EndTime": end, "NextToken": "t"})
        stub.add_client_error("list_public_keys", service_error_code="AccessDeniedException", service_message="no")
        lookup = public_key_lookup(lambda region: lambda service: client)
        assert lookup("eu-west-1", start, end) == {"a" * 32: b"old", fingerprint: der}
        with pytest.raises(OSError, match="ListPublicKeys in eu-west-1 failed: AccessDeniedException: no"):
            lookup("eu-west-1", start, end)
