"""Log integrity: CloudTrail's digest files against the log files they list.

A trail with log-file validation delivers digest files (``CloudTrail-Digest/``) beside its logs: each
lists the log files delivered since the previous digest with the SHA-256 of their uncompressed
content, and names the previous digest with its SHA-256 and signature, so the digests of one trail
and region form a chain. Each digest is signed (SHA256withRSA, the region's CloudTrail key) over
``digestEndTime\\nbucket/key\\nsha256(digest)\\npreviousDigestSignature`` (``null`` for the first);
the signature is S3 object metadata (``x-amz-meta-signature``), so only a live bucket has it.

:func:`verify` reports, without raising for bad content:

- **missing**: listed by a digest, absent from the source;
- **modified**: present, but its hash differs (or it no longer inflates);
- **unlisted**: a log file delivered inside the span the digests cover, listed by none;
- **chain**: a digest whose predecessor is missing, was modified, or is not the one it names;
  **gap**: the chain restarts (no previous digest) or skips time: logging or validation stopped;
- **signature**: a digest whose signature is absent or does not verify against the public keys;
- **moved**: a digest not where it says it was delivered; **unreadable**: what cannot be read.

Log files outside every digest's span are counted as *not covered* (delivered before validation
was on, or after the newest digest): nothing vouches for them, and the report says so.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from lpgen.filters import Window
from lpgen.model import Problem
from lpgen.sources.base import Blob, BlobSource
from lpgen.sources.formats import _inflate

MISSING, MODIFIED, UNLISTED, CHAIN, GAP, SIGNATURE, MOVED, UNREADABLE, NO_DIGESTS = (
    "missing", "modified", "unlisted", "chain", "gap", "signature", "moved", "unreadable", "no-digests")
KINDS = (MISSING, MODIFIED, UNLISTED, CHAIN, GAP, SIGNATURE, MOVED, UNREADABLE, NO_DIGESTS)
ALGORITHM = "SHA256withRSA"
#: Digest and log files are small; anything inflating beyond this is refused (bombs).
MAX_INFLATE = 256 * 1024**2

#: (region, start, end) → public keys of that region valid then: fingerprint → DER-encoded RSA key.
KeyLookup = Callable[[str, datetime, datetime], dict[str, bytes]]

_RELATIVE = re.compile(r"(?:^|/)(AWSLogs/(?:o-[a-z0-9]{10,32}/)?(\d{12})/CloudTrail(-Digest)?/([a-z0-9-]+)/.+)$")
_DIGEST_NAME = re.compile(r"(\d{12})_CloudTrail-Digest_([a-z0-9-]+)_(.+)_([a-z0-9-]+)_(\d{8}T\d{6}Z)(_backfill)?"
                          r"\.json\.gz$")
_LOG_TIME = re.compile(r"_CloudTrail_[a-z0-9-]+_(\d{8}T\d{4})Z_")


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One integrity failure, naming the file it is about."""

    kind: str
    path: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass(slots=True, kw_only=True)
class IntegrityReport:
    """What :func:`verify` found: counts, failures, and notes on what could not be judged."""

    digests: int = 0
    log_files: int = 0  # log files in the source (in the window)
    listed: int = 0  # distinct log files the digests list
    verified: int = 0  # listed, present, hash equal
    not_covered: int = 0  # log files outside every digest's span
    signatures_verified: int = 0
    signatures_checked: bool = False
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(KINDS, 0)
        for f in self.failures:
            out[f.kind] += 1
        return out

    def to_dict(self) -> dict:
        return {"ok": self.ok, "digests": self.digests, "log_files": self.log_files, "listed": self.listed,
                "verified": self.verified, "not_covered": self.not_covered,
                "signatures_checked": self.signatures_checked, "signatures_verified": self.signatures_verified,
                "counts": self.counts(),
                "failures": [{"kind": f.kind, "path": f.path, "detail": f.detail} for f in self.failures],
                "notes": list(self.notes)}


@dataclass(slots=True, kw_only=True)
class _Digest:
    location: str  # where it was read
    key: str  # AWSLogs/... relative key
    region: str
    chain: tuple[str, ...]  # account, region, trail, home region
    backfill: bool
    body: bytes = field(repr=False)  # inflated: what the hashes and the signature are over
    sha: str
    data: dict
    metadata: dict[str, str] | None
    start: str
    end: str


def relative_key(location: str) -> str | None:
    """The ``AWSLogs/...`` part of a path or S3 key: how a digest names a file wherever the copy lives."""
    m = _RELATIVE.search(location)
    return m[1] if m else None


def signing_string(data: dict, digest_bytes: bytes) -> bytes:
    """What CloudTrail signs for a digest (its inflated bytes and their fields)."""
    previous = data.get("previousDigestSignature") or "null"
    return (f"{data['digestEndTime']}\n{data['digestS3Bucket']}/{data['digestS3Object']}\n"
            f"{hashlib.sha256(digest_bytes).hexdigest()}\n{previous}").encode()


def verify(sources: Sequence[BlobSource], *, window: Window | None = None,
           public_keys: KeyLookup | None = None) -> IntegrityReport:
    """Check every log file of ``sources`` against the digests beside it, the chain, and the signatures."""
    window = window or Window()
    report = IntegrityReport()
    logs: dict[str, tuple[BlobSource, Blob]] = {}
    digests: list[_Digest] = []
    for source in sources:
        listing, digest_listing = source.list(), source.digest_blobs()
        report.failures += [_unreadable(p) for p in (*listing.problems, *digest_listing.problems)]
        for blob in listing.blobs:
            key = relative_key(blob.key)
            if key is not None:
                logs.setdefault(key, (source, blob))
        without_metadata = False
        for blob in digest_listing.blobs:
            digest = _read_digest(source, blob, report)
            if digest is not None and _digest_in_window(window, digest):
                digests.append(digest)
                without_metadata |= digest.metadata is None
        if without_metadata:
            report.notes.append(f"{source.label}: signatures not checked: a local copy has no S3 object metadata "
                                "(verify the s3:// bucket for them)")
    in_window = {k: v for k, v in logs.items() if _in_window(window, _log_time(k))}
    report.log_files, report.digests = len(in_window), len(digests)
    if not digests:
        report.failures.append(Failure(kind=NO_DIGESTS, path=", ".join(s.label for s in sources),
                                       detail="no digest files (CloudTrail-Digest/): log-file validation is off, "
                                              "or the copy left them out; nothing vouches for the logs"))
        report.not_covered = len(in_window)
        return report
    _check_chains(digests, window, report)
    if public_keys is not None and any(d.metadata is not None for d in digests):
        _check_signatures(digests, public_keys, report)
    listed = _check_log_files(digests, logs, report)
    _check_unlisted(digests, in_window, listed, report)
    report.failures.sort(key=lambda f: (f.path, f.kind, f.detail))
    return report


def _unreadable(problem: Problem) -> Failure:
    return Failure(kind=UNREADABLE, path=problem.path, detail=problem.reason)


def _read_digest(source: BlobSource, blob: Blob, report: IntegrityReport) -> _Digest | None:
    try:
        raw, metadata = source.read_digest(blob)
    except OSError as exc:
        report.failures.append(Failure(kind=UNREADABLE, path=blob.key, detail=f"cannot read: {exc.strerror or exc}"))
        return None
    problems: list[Problem] = []
    body = _inflate(raw, blob.key, MAX_INFLATE, problems)
    try:
        data = json.loads(body) if body is not None and not problems else None
    except (ValueError, RecursionError):
        data = None
    required = ("digestStartTime", "digestEndTime", "digestS3Bucket", "digestS3Object", "logFiles")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in required[:4]) \
            or not isinstance(data.get("logFiles"), list):
        reason = problems[0].reason if problems else "not a digest file (unreadable JSON or missing fields)"
        report.failures.append(Failure(kind=UNREADABLE, path=blob.key, detail=reason))
        return None
    key = relative_key(blob.key) or blob.key
    m = _DIGEST_NAME.search(key)
    region = m[2] if m else (_RELATIVE.search(key)[4] if _RELATIVE.search(key) else "?")
    chain = (m[1], m[2], m[3], m[4]) if m else (str(data.get("awsAccountId")), region, "?", "?")
    if relative_key(data["digestS3Object"]) != key:
        report.failures.append(Failure(kind=MOVED, path=blob.key,
                                       detail=f"says it was delivered as {data['digestS3Object']}"))
    return _Digest(location=blob.key, key=key, region=region, chain=chain, backfill=bool(m and m[6]), body=body,
                   sha=hashlib.sha256(body).hexdigest(), data=data, metadata=metadata,
                   start=data["digestStartTime"], end=data["digestEndTime"])


def _digest_in_window(window: Window, digest: _Digest) -> bool:
    return (window.since is None or digest.end >= window.since) and (window.until is None
                                                                     or digest.start <= window.until)


def _log_time(key: str) -> str | None:
    """A log file's delivery time from its name (minute precision), ISO."""
    m = _LOG_TIME.search(key)
    if m is None:
        return None
    t = m[1]
    return f"{t[:4]}-{t[4:6]}-{t[6:8]}T{t[9:11]}:{t[11:13]}:00Z"


def _in_window(window: Window, time: str | None) -> bool:
    return time is None or window.contains(time) or window.contains(time[:17] + "59Z")


def _check_chains(digests: list[_Digest], window: Window, report: IntegrityReport) -> None:
    """Each digest names its predecessor (key, hash, signature); starts where it ended; no restarts."""
    by_key = {d.key: d for d in digests}
    chains: dict[tuple[str, ...], list[_Digest]] = {}
    for d in digests:
        if not d.backfill:
            chains.setdefault(d.chain, []).append(d)
    for chain in chains.values():
        chain.sort(key=lambda d: d.end)
        for i, cur in enumerate(chain):
            named = cur.data.get("previousDigestS3Object")
            prev = chain[i - 1] if i else None
            if named is None:
                if prev is not None:
                    report.failures.append(Failure(
                        kind=GAP, path=cur.location,
                        detail=f"the chain restarts here (no previous digest): nothing vouches for what was "
                               f"delivered between {prev.end} and {cur.start} (logging or validation stopped?)"))
                continue
            named_key = relative_key(str(named)) or str(named)
            if prev is None:
                if named_key not in by_key and window.since is None:
                    report.failures.append(Failure(kind=CHAIN, path=cur.location,
                                                   detail=f"its previous digest {named} is missing"))
                elif named_key not in by_key:
                    report.notes.append(f"the digest chain of {'/'.join(cur.chain[:3])} starts before the window")
                continue
            if named_key != prev.key:
                detail = (f"its previous digest {named} is missing" if named_key not in by_key
                          else f"names {named} as previous, not {prev.key}")
                report.failures.append(Failure(kind=CHAIN, path=cur.location, detail=detail))
                continue
            if cur.data.get("previousDigestHashValue") != prev.sha:
                report.failures.append(Failure(kind=CHAIN, path=prev.location,
                                               detail=f"modified: its hash differs from the one {cur.key} holds"))
            signature = (prev.metadata or {}).get("signature")
            if signature is not None and cur.data.get("previousDigestSignature") != signature:
                report.failures.append(Failure(kind=CHAIN, path=prev.location,
                                               detail=f"its signature differs from the one {cur.key} holds"))
            if cur.start > prev.end:
                report.failures.append(Failure(kind=GAP, path=cur.location,
                                               detail=f"starts at {cur.start}, the previous digest ended at "
                                                      f"{prev.end}: nothing vouches for what was delivered between"))


def _check_signatures(digests: list[_Digest], public_keys: KeyLookup, report: IntegrityReport) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    report.signatures_checked = True
    keys: dict[str, dict[str, bytes]] = {}
    unavailable: dict[str, str] = {}
    for region in sorted({d.region for d in digests if d.metadata is not None}):
        mine = [d for d in digests if d.region == region]
        start, end = _parse(min(d.start for d in mine)), _parse(max(d.end for d in mine))
        try:
            keys[region] = public_keys(region, start - timedelta(hours=1), end + timedelta(hours=1))
        except OSError as exc:
            keys[region], unavailable[region] = {}, str(exc)
    for d in digests:
        if d.metadata is None:
            continue
        signature, algorithm = d.metadata.get("signature"), d.metadata.get("signature-algorithm")
        fingerprint = d.data.get("digestPublicKeyFingerprint")
        der = keys[d.region].get(str(fingerprint))
        if d.region in unavailable:
            detail = f"cannot be checked: {unavailable[d.region]}"
        elif not signature or algorithm != ALGORITHM:
            detail = "no signature in its S3 metadata" if not signature else f"unknown signature algorithm {algorithm}"
        elif der is None:
            detail = f"no CloudTrail public key in {d.region} has fingerprint {fingerprint}"
        else:
            try:
                key = load_der_public_key(der)
                if not isinstance(key, rsa.RSAPublicKey):
                    raise TypeError("not an RSA key")
                key.verify(bytes.fromhex(signature), signing_string(d.data, d.body), padding.PKCS1v15(),
                           hashes.SHA256())
                report.signatures_verified += 1
                continue
            except InvalidSignature:
                detail = "the signature does not verify: the digest or its metadata was altered"
            except (ValueError, TypeError) as exc:
                detail = f"the signature cannot be checked: {exc}"
        report.failures.append(Failure(kind=SIGNATURE, path=d.location, detail=detail))


def _check_log_files(digests: list[_Digest], logs: dict[str, tuple[BlobSource, Blob]],
                     report: IntegrityReport) -> set[str]:
    listed: dict[str, tuple[str, _Digest]] = {}
    for d in digests:
        for entry in d.data["logFiles"]:
            if not isinstance(entry, dict) or not isinstance(entry.get("s3Object"), str):
                report.failures.append(Failure(kind=UNREADABLE, path=d.location,
                                               detail=f"bad logFiles entry {str(entry)[:200]}"))
                continue
            key = relative_key(entry["s3Object"]) or entry["s3Object"]
            listed.setdefault(key, (str(entry.get("hashValue")), d))
    report.listed = len(listed)
    for key, (expected, d) in sorted(listed.items()):
        found = logs.get(key)
        if found is None:
            report.failures.append(Failure(kind=MISSING, path=key, detail=f"listed by {d.key}, absent"))
            continue
        source, blob = found
        try:
            raw = source.read(blob)
        except OSError as exc:
            report.failures.append(Failure(kind=UNREADABLE, path=blob.key,
                                           detail=f"cannot read: {exc.strerror or exc}"))
            continue
        problems: list[Problem] = []
        body = _inflate(raw, blob.key, MAX_INFLATE, problems)
        if body is None or problems or hashlib.sha256(body).hexdigest() != expected:
            why = problems[0].reason if problems else "its SHA-256 differs from the digest's"
            report.failures.append(Failure(kind=MODIFIED, path=blob.key, detail=f"{why} ({d.key})"))
        else:
            report.verified += 1
    return set(listed)


def _check_unlisted(digests: list[_Digest], logs: dict[str, tuple[BlobSource, Blob]], listed: set[str],
                    report: IntegrityReport) -> None:
    """A log file delivered while its account and region kept digests (first to last) must be in one."""
    spans: dict[tuple[str, str], tuple[str, str]] = {}
    for d in digests:
        start, end = spans.get((d.chain[0], d.region), (d.start, d.end))
        spans[(d.chain[0], d.region)] = (min(start, d.start), max(end, d.end))
    for key, (_, blob) in sorted(logs.items()):
        if key in listed:
            continue
        m, time = _RELATIVE.search(key), _log_time(key)
        span = spans.get((m[2], m[4])) if m else None
        if time is not None and span and span[0][:17] + "00Z" <= time <= span[1]:
            report.failures.append(Failure(kind=UNLISTED, path=blob.key,
                                           detail="delivered while digests were kept, but no digest lists it"))
        else:
            report.not_covered += 1


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# -- rendering ------------------------------------------------------------------------------------


def render_integrity(report: IntegrityReport, fmt: str = "text") -> str:
    """The report as text or JSON (sorted, deterministic)."""
    return _RENDERERS[fmt](report)


def _text(report: IntegrityReport) -> str:
    lines = [(f"{'OK' if report.ok else 'FAILED'}: {report.verified:,} of {report.listed:,} listed log files "
              f"verified against {report.digests:,} digest files; {report.log_files:,} log files present")]
    if report.signatures_checked:
        lines.append(f"signatures: {report.signatures_verified:,} of {report.digests:,} digests verified against "
                     "CloudTrail's public keys")
    if report.not_covered:
        lines.append(f"not covered: {report.not_covered:,} log files delivered outside every digest's span "
                     "(nothing vouches for them)")
    counts = {k: n for k, n in report.counts().items() if n}
    if counts:
        lines.append("failures: " + ", ".join(f"{n:,} {k}" for k, n in counts.items()))
    lines += [f"  {f}" for f in report.failures]
    lines += [f"note: {n}" for n in sorted(set(report.notes))]
    return "\n".join(lines) + "\n"


def _json(report: IntegrityReport) -> str:
    data = report.to_dict()
    data["notes"] = sorted(set(data["notes"]))
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


_RENDERERS = {"text": _text, "json": _json}
