"""Turn the bytes of one input into CloudTrail records, whatever the format.

The format is told from the content, never from the file name: delivered log
files (``{"Records": [...]}``, gzipped or not), JSON Lines (records, possibly
wrapped with extra fields such as ``@timestamp`` or nested in an EventBridge
``detail``), ``aws cloudtrail lookup-events`` output, CloudTrail Lake query
results, Athena CSV result files, and JSON arrays of records. Digest files are
recognised and skipped.

Nothing here raises on bad input: whatever cannot be read becomes a
:class:`~lpgen.model.Problem`, and every readable record around it is kept.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

try:  # zlib-ng inflates about twice as fast as zlib, and gzip is the floor of mining
    from zlib_ng import zlib_ng as zlib
except ImportError:  # pragma: no cover - zlib-ng is a dependency; stay correct without it
    import zlib

from lpgen.model import Problem
from lpgen.records import RawRecord, delivery_decoder, record_decoder

#: Decoding errors: msgspec's, and running out of stack on absurdly deep nesting.
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError)

#: Refuse to inflate one input beyond this many bytes (gzip bombs).
DEFAULT_MAX_BYTES = 2 * 1024**3

DELIVERY, DIGEST, LOOKUP, JSONL, LAKE, ATHENA, ARRAY, SINGLE = (
    "cloudtrail-log", "digest", "lookup-events", "json-lines", "lake-results",
    "athena-csv", "json-array", "single-record",
)


@dataclass(slots=True)
class Decoded:
    """The records read from one input, with their positions and the problems met."""

    kind: str | None = None  # None: nothing CloudTrail-like was found
    records: list[RawRecord] = field(default_factory=list)
    positions: list[int] | None = None  # record index in the input, when not positional
    problems: list[Problem] = field(default_factory=list)

    def position(self, i: int) -> int:
        return i if self.positions is None else self.positions[i]

    def add(self, position: int, record: RawRecord) -> None:
        if self.positions is None:
            self.positions = list(range(len(self.records)))
        self.records.append(record)
        self.positions.append(position)


def decode(data: bytes, path: str, *, max_bytes: int = DEFAULT_MAX_BYTES) -> Decoded:
    """Read every CloudTrail record in ``data`` (the content of ``path``)."""
    out = Decoded()
    text = _inflate(data, path, max_bytes, out.problems)
    if text is None:
        return out
    text = _valid_utf8(text, path, out.problems)
    body = text.lstrip(b" \t\r\n")
    if not body:
        out.problems.append(Problem(path=path, reason="empty input"))
        return out
    if body.startswith(b'{"Records":'):
        try:
            out.records = delivery_decoder.decode(body).Records
            out.kind = DELIVERY
            return out
        except _DECODE_ERRORS:
            pass  # a record of the wrong shape, or damage: read record by record below
    if body[:1] in (b"{", b"["):
        try:
            doc = msgspec.json.decode(body)
        except _DECODE_ERRORS as exc:
            if body[:1] == b"{" and _looks_like_lines(body):
                return _json_lines(body, path, out)
            return _salvage(body, path, out, str(exc))
        _document(doc, path, out)
        return out
    if _looks_like_athena_csv(body):
        return _athena_csv(body, path, out)
    out.problems.append(Problem(path=path, reason="not JSON, JSON Lines or an Athena CSV result: skipped"))
    return out


# -- bytes --------------------------------------------------------------------


def _inflate(data: bytes, path: str, max_bytes: int, problems: list[Problem]) -> bytes | None:
    """Gunzip (all members) within ``max_bytes``; keep what a truncated file yields."""
    if data[:2] != b"\x1f\x8b":
        if len(data) > max_bytes:
            problems.append(Problem(path=path, reason=f"larger than the {max_bytes:,}-byte limit: skipped"))
            return None
        return data
    chunks: list[bytes] = []
    total = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(rest, max_bytes - total + 1)
        except zlib.error as exc:
            problems.append(Problem(path=path, reason=f"corrupt gzip data ({exc}); kept what came before"))
            break
        total += len(chunk)
        chunks.append(chunk)
        if total > max_bytes:
            problems.append(Problem(
                path=path,
                reason=f"inflates beyond the {max_bytes:,}-byte limit (a gzip bomb?): skipped; "
                       "raise --max-inflate if the file is genuine",
            ))
            return None
        if not inflater.eof:
            if inflater.unconsumed_tail:
                continue  # cannot happen below the limit, but never loop forever
            problems.append(Problem(path=path, reason=f"truncated gzip: {total:,} bytes recovered"))
            break
        rest = inflater.unused_data.lstrip(b"\x00")  # concatenated members; NUL padding
    return b"".join(chunks)


def _valid_utf8(data: bytes, path: str, problems: list[Problem]) -> bytes:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if data.isascii():  # most logs; a scan without building the text
        return data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(path=path, reason=f"invalid UTF-8 at byte {exc.start}: replaced with U+FFFD"))
        data = data.decode("utf-8", "replace").encode("utf-8")
    return data


# -- whole JSON documents -----------------------------------------------------


def _document(doc: Any, path: str, out: Decoded) -> None:
    if isinstance(doc, list):
        out.kind = ARRAY
        _each(doc, path, out, "element")
        return
    if not isinstance(doc, dict):
        out.problems.append(Problem(path=path, reason="JSON but not CloudTrail: skipped"))
        return
    if isinstance(doc.get("Records"), list):
        out.kind = DELIVERY
        _each(doc["Records"], path, out, "record")
    elif "digestStartTime" in doc and "logFiles" in doc:
        out.kind = DIGEST
    elif isinstance(doc.get("Events"), list):
        out.kind = LOOKUP
        _each(doc["Events"], path, out, "event")
    elif isinstance(doc.get("QueryResultRows"), list):
        out.kind = LAKE
        for i, row in enumerate(doc["QueryResultRows"]):
            cells = _lake_row(row)
            if cells is None:
                out.problems.append(Problem(path=path, record=i, reason="query result row is not a list of columns"))
            else:
                _one(_from_columns(cells), i, path, out, "row")
    elif _unwrap(doc) is not None:
        out.kind = SINGLE
        _one(doc, 0, path, out, "record")
    else:
        keys = ", ".join(sorted(doc)[:5])
        out.problems.append(Problem(path=path, reason=f"JSON but not CloudTrail (keys: {keys}): skipped"))


def _each(items: list[Any], path: str, out: Decoded, what: str) -> None:
    for i, item in enumerate(items):
        _one(item, i, path, out, what)


def _one(item: Any, i: int, path: str, out: Decoded, what: str) -> None:
    record = _unwrap(item)
    if record is None:
        out.problems.append(Problem(path=path, record=i, reason=f"{what} is not a CloudTrail record"))
        return
    try:
        out.add(i, record_decoder.decode(msgspec.json.encode(record)))
    except (*_DECODE_ERRORS, TypeError, ValueError) as exc:
        out.problems.append(Problem(path=path, record=i, reason=f"unreadable record: {exc}"))


def _unwrap(item: Any, depth: int = 0) -> dict | None:
    """The CloudTrail record inside ``item``: itself, or nested by a forwarder."""
    if depth > 3:
        return None
    if isinstance(item, str) and item.lstrip().startswith("{"):
        try:
            item = msgspec.json.decode(item)
        except _DECODE_ERRORS:
            return None
    if not isinstance(item, dict):
        return None
    if "eventName" in item or "eventSource" in item:
        return item
    for key in ("CloudTrailEvent", "detail", "message", "_source", "event"):
        if key in item:
            found = _unwrap(item[key], depth + 1)
            if found is not None:
                return found
    return None


# -- JSON Lines ---------------------------------------------------------------


def _looks_like_lines(body: bytes) -> bool:
    first, _, rest = body.partition(b"\n")
    return bool(rest.strip()) and first.rstrip().endswith(b"}")


def _json_lines(body: bytes, path: str, out: Decoded) -> Decoded:
    out.kind = JSONL
    for i, line in enumerate(body.split(b"\n")):
        line = line.strip()
        if not line:
            continue
        try:
            record = record_decoder.decode(line)
        except _DECODE_ERRORS:
            record = None
        if record is not None and record.eventName is not None:
            out.add(i, record)
            continue
        try:
            item = msgspec.json.decode(line)
        except _DECODE_ERRORS as exc:
            out.problems.append(Problem(path=path, record=i, reason=f"line is not JSON: {exc}"))
            continue
        _one(item, i, path, out, "line")
    return out


# -- damaged JSON -------------------------------------------------------------


def _salvage(body: bytes, path: str, out: Decoded, error: str) -> Decoded:
    """Recover the intact records of a damaged (e.g. truncated) JSON document."""
    text = body.decode("utf-8", "replace")
    start = text.find("[")
    decoder = json.JSONDecoder()
    position, found, damaged = start + 1 if start >= 0 else 0, 0, False
    while 0 <= position < len(text):
        brace = text.find("{", position)
        if brace < 0:
            break
        try:
            item, end = decoder.raw_decode(text, brace)
        except (ValueError, RecursionError):
            damaged = True
            position = brace + 1
            continue
        record = _unwrap(item)
        if record is None:
            position = brace + 1  # an inner object of a damaged record: resynchronise
            continue
        _one(record, found, path, out, "record")
        found += 1
        position = end
    if found:
        out.kind = out.kind or DELIVERY
        out.problems.append(Problem(
            path=path, reason=f"invalid JSON ({error}); {found} intact record(s) recovered"
            + (", damaged ones skipped" if damaged else ""),
        ))
    else:
        out.problems.append(Problem(path=path, reason=f"invalid JSON: {error}"))
    return out


# -- CloudTrail Lake and Athena results ---------------------------------------


def _lake_row(row: Any) -> dict[str, Any] | None:
    if isinstance(row, dict):
        return row
    if not isinstance(row, list):
        return None
    cells: dict[str, Any] = {}
    for cell in row:
        if not isinstance(cell, dict):
            return None
        cells.update(cell)
    return cells


#: Column names as Athena (lower case) and CloudTrail Lake spell them.
_COLUMNS = {name.lower(): name for name in (
    "eventVersion", "userIdentity", "eventTime", "eventSource", "eventName", "awsRegion",
    "sourceIPAddress", "userAgent", "errorCode", "errorMessage", "requestParameters",
    "responseElements", "requestID", "eventID", "readOnly", "resources", "eventType",
    "recipientAccountId", "eventCategory", "managementEvent", "sharedEventID",
)}
_STRUCT_COLUMNS = {"userIdentity", "resources", "requestParameters"}
#: Keys of nested structs, lower-cased by Athena and Lake, in CloudTrail's spelling.
_IDENTITY_KEYS = {name.lower(): name for name in (
    "type", "principalId", "arn", "accountId", "invokedBy", "accessKeyId", "userName",
    "sessionContext", "sessionIssuer", "attributes", "identityProvider",
    "webIdFederationData", "sourceIdentity", "ec2RoleDelivery", "creationDate", "mfaAuthenticated",
)}
_RESOURCE_KEYS = {"arn": "ARN", "arnprefix": "ARNPrefix", "accountid": "accountId", "type": "type"}


def _from_columns(cells: dict[str, Any]) -> dict[str, Any]:
    """A record dict from query-result columns (any case; structs as JSON or Trino text)."""
    record: dict[str, Any] = {}
    for column, value in cells.items():
        name = _COLUMNS.get(str(column).lower())
        if name is None or value in (None, "", "null"):
            continue
        if name in _STRUCT_COLUMNS and isinstance(value, str):
            value = parse_struct_text(value)
        if name == "userIdentity":
            value = _recase(value, _IDENTITY_KEYS)
        elif name == "resources":
            value = _recase(value, _RESOURCE_KEYS)
        record[name] = value
    return record


def _recase(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {names.get(k.lower(), k): _recase(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_recase(v, names) for v in value]
    return value


def parse_struct_text(text: str) -> Any:
    """Parse a struct as Athena or CloudTrail Lake print it: JSON, or ``{k=v, k2={...}, k3=[...]}``."""
    text = text.strip()
    if text[:1] in ("{", "["):
        try:
            return msgspec.json.decode(text)
        except _DECODE_ERRORS:
            pass
    value, _ = _trino_value(text, 0)
    return value


def _trino_value(text: str, i: int) -> tuple[Any, int]:
    if i < len(text) and text[i] == "{":
        result: dict[str, Any] = {}
        i += 1
        while i < len(text) and text[i] != "}":
            eq = text.find("=", i)
            if eq < 0:
                break
            key = text[i:eq].strip()
            value, i = _trino_value(text, eq + 1)
            result[key] = value
            while i < len(text) and text[i] in ", ":
                i += 1
        return result, i + 1
    if i < len(text) and text[i] == "[":
        items: list[Any] = []
        i += 1
        while i < len(text) and text[i] != "]":
            value, i = _trino_value(text, i)
            items.append(value)
            while i < len(text) and text[i] in ", ":
                i += 1
        return items, i + 1
    end = i
    while end < len(text) and not (text[end] in ",}]" and (text[end] != "," or text[end + 1:end + 2] == " ")):
        end += 1
    raw = text[i:end].strip()
    return (None if raw == "null" else raw), end


def _looks_like_athena_csv(body: bytes) -> bool:
    header = body.split(b"\n", 1)[0].lower()
    return b"," in header and b"eventname" in header and b"eventsource" in header


def _athena_csv(body: bytes, path: str, out: Decoded) -> Decoded:
    out.kind = ATHENA
    reader = csv.DictReader(io.StringIO(body.decode("utf-8", "replace"), newline=""))
    try:
        for i, row in enumerate(reader):
            _one(_from_columns(row), i, path, out, "row")
    except csv.Error as exc:
        out.problems.append(Problem(path=path, record=reader.line_num, reason=f"malformed CSV: {exc}"))
    return out
