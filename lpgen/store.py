"""The usage store: aggregates of calls, not events, in one SQLite file.

One row per (principal, event source, event name, error class, region, the
service that invoked the call on the principal's behalf, resource fields),
with count, first and last seen and a few sample event IDs. Calls are stored
*before* they are mapped to IAM actions, so a newer action catalogue applies
without mining again.

The ledger (``inputs``) remembers every input mined, with the IDs of the events
it contributed: a re-run reads only new inputs, and an event delivered twice
(an organisation trail and an account trail) counts once, even across runs.
Each batch of inputs is committed in one transaction with its aggregates, so
a run killed mid-way leaves a consistent store that the next run completes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import xxhash

from lpgen.fields import rules_fingerprint

#: 2: usage rows appended in rowid order, found by their key hash (a unique index), their
#: caller (principal, call, error class, region, invoked by) in a table of its own (the view
#: usage_rows joins them back), event IDs and keys hashed with XXH3. Stores of schema 1 must be
#: mined again.
SCHEMA_VERSION = 2
DEFAULT_PATH = Path(".lpgen") / "usage.db"
MAX_SAMPLES = 3
MAX_ERROR_CODES = 5  # distinct error codes kept per aggregate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started TEXT NOT NULL, finished TEXT, sources TEXT NOT NULL,
    scope TEXT NOT NULL, inputs INTEGER DEFAULT 0, records INTEGER DEFAULT 0,
    counted INTEGER DEFAULT 0, duplicates INTEGER DEFAULT 0, problems INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS inputs (
    key TEXT NOT NULL, scope TEXT NOT NULL, size INTEGER, version TEXT, kind TEXT,
    records INTEGER NOT NULL, counted INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    problems INTEGER NOT NULL, first_time TEXT, last_time TEXT, ids BLOB, run INTEGER,
    PRIMARY KEY (key, scope));
CREATE INDEX IF NOT EXISTS inputs_window ON inputs (last_time, first_time);
CREATE TABLE IF NOT EXISTS callers (
    id INTEGER PRIMARY KEY, principal TEXT NOT NULL, source TEXT NOT NULL, name TEXT NOT NULL,
    error_class TEXT NOT NULL, region TEXT NOT NULL, invoked_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER NOT NULL UNIQUE, caller INTEGER NOT NULL, fields TEXT NOT NULL,
    count INTEGER NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    category TEXT, error_codes TEXT NOT NULL, samples TEXT NOT NULL);
CREATE VIEW IF NOT EXISTS usage_rows AS
    SELECT u.id, c.principal, c.source, c.name, c.error_class, c.region, c.invoked_by, u.fields, u.count,
           u.first_seen, u.last_seen, u.category, u.error_codes, u.samples
    FROM usage u JOIN callers c ON c.id = u.caller;
CREATE TABLE IF NOT EXISTS principals (
    principal TEXT PRIMARY KEY, type TEXT NOT NULL, account TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS coverage (
    account TEXT NOT NULL, region TEXT NOT NULL, day TEXT NOT NULL, records INTEGER NOT NULL,
    first_time TEXT NOT NULL, last_time TEXT NOT NULL,
    PRIMARY KEY (account, region, day)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS problems (
    key TEXT NOT NULL, record INTEGER, reason TEXT NOT NULL, run INTEGER);
"""


class StoreError(Exception):
    """The store cannot be used (wrong schema, not a store, locked)."""


#: (principal, source, name, error_class, region, invoked_by, fields as JSON); its
#: 64-bit hash (row_hash) is the row's unique ``id``, so merging compares integers.
UsageKey = tuple[str, str, str, str, str, str, str]


#: Running totals of one usage key: [count, first seen, last seen, category, error codes, sample event IDs].
Totals = list


def merge_totals(mine: Totals, other: Totals) -> None:
    """Fold ``other`` into ``mine``; order-independent, so stores do not depend on worker count."""
    mine[0] += other[0]
    if other[1] < mine[1]:
        mine[1] = other[1]
    if other[2] > mine[2]:
        mine[2] = other[2]
    mine[3] = mine[3] or other[3]
    if other[4]:
        mine[4] = merge_small(mine[4], other[4], MAX_ERROR_CODES)
    mine[5] = merge_small(mine[5], other[5], MAX_SAMPLES)


def merge_small(a: list[str], b: list[str], limit: int) -> list[str]:
    """The ``limit`` smallest of two small sorted lists: order-independent, so runs are deterministic."""
    return sorted(set(a).union(b))[:limit]


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageRow:
    """One aggregate as read back from the store."""

    principal: str
    source: str
    name: str
    error_class: str
    region: str
    invoked_by: str | None
    fields: tuple[tuple[str, str], ...]
    count: int
    first_seen: str
    last_seen: str
    category: str | None
    error_codes: tuple[str, ...]
    samples: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRecord:
    """A ledger row: one input mined under one scope."""

    key: str
    scope: str
    size: int | None
    version: str | None
    kind: str | None
    records: int
    counted: int
    duplicates: int
    problems: int
    first_time: str | None
    last_time: str | None
    ids: bytes  # array('q') of the XXH3 hashes of the eventIDs it counted, in no particular order


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverageRow:
    account: str
    region: str
    day: str
    records: int
    first_time: str
    last_time: str


class UsageStore:
    """A usage store file. Use as a context manager; writes go through :meth:`write_batch`."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"no usage store at {self.path}: run `lpgen mine` first")
        if create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            # A new store's pages are 16 KiB (SQLite's default is 4): rows of S3 object keys are long, and
            # larger pages take a quarter less CPU to fill and commit (an existing store keeps its size)
            self._db.execute("PRAGMA page_size=16384")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # 16 MiB: rows are appended, so few pages are rewritten between checkpoints, and what is left
            # to checkpoint when the store closes (at the end of a run, while nothing else runs) stays small
            self._db.execute("PRAGMA wal_autocheckpoint=1024")
            self._db.execute("PRAGMA cache_size=-49152")  # 48 MiB: upserts land all over the table
            self._db.create_function("lpgen_merge", 3, _merge_json, deterministic=True)
            self._caller_ids: dict[tuple, int] = {}  # callers known to be in the table
            self._check_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not a usable lpgen store: {exc}") from None

    def _check_schema(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            # One transaction, idempotent: two first runs at once both "create" it, and
            # neither sees a store without its schema version.
            self._db.executescript(f"BEGIN IMMEDIATE;\n{_SCHEMA}\n"
                                   f"INSERT OR IGNORE INTO meta VALUES ('schema', '{SCHEMA_VERSION}');\nCOMMIT;")
            return
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() if "meta" in tables else None
        if row is None:
            raise StoreError(f"{self.path} is an SQLite file but not an lpgen usage store")
        if int(row[0]) != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has store schema {row[0]}; this lpgen reads schema {SCHEMA_VERSION}: "
                             "mine the trail again into a new store (--store PATH, or delete this file)")

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Serialise writers across processes: a second ``lpgen mine`` on this store waits its turn.

        The ledger is read under the lock, so the second run skips what the first one mined.
        """
        with open(f"{self.path}.lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def __enter__(self) -> UsageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the ledger --------------------------------------------------------

    def known_inputs(self, scope: str) -> dict[str, tuple[int | None, str | None]]:
        """Inputs already mined under ``scope``: key → (size, version)."""
        rows = self._db.execute("SELECT key, size, version FROM inputs WHERE scope = ?", (scope,))
        return {key: (size, version) for key, size, version in rows}

    def input_keys(self, prefix: str) -> list[tuple[str, str]]:
        """(key, scope) of every input whose key starts with ``prefix``, under any scope."""
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return list(self._db.execute("SELECT key, scope FROM inputs WHERE key LIKE ? ESCAPE '\\' ORDER BY key",
                                     (like,)))

    def has_inputs(self) -> bool:
        return self._db.execute("SELECT 1 FROM inputs LIMIT 1").fetchone() is not None

    def other_field_rules(self) -> bool:
        """Whether aggregates in this store were keyed under field rules other than this lpgen's
        (:func:`lpgen.fields.rules_fingerprint`; a store from before the digest was kept counts as other).
        A store with nothing mined yet takes this lpgen's rules when it first mines (:meth:`start_run`)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'fields'").fetchone()
        return (row is None or row[0] != rules_fingerprint()) and self.has_inputs()

    def ids_overlapping(self, first_time: str, last_time: str, exclude: set[str], *, run: int) -> Iterator[tuple[str, bytes]]:
        """Event-ID hashes of inputs from other runs whose time span overlaps the given one."""
        idents = [ident for (ident,) in self._db.execute(
            "SELECT key || char(0) || scope FROM inputs WHERE run != ? AND last_time >= ? AND first_time <= ?",
            (run, first_time, last_time)) if ident not in exclude]
        for ident in idents:
            key, scope = ident.split("\x00", 1)
            (ids,) = self._db.execute("SELECT ids FROM inputs WHERE key = ? AND scope = ?", (key, scope)).fetchone()
            yield ident, ids or b""

    def input(self, key: str, scope: str) -> InputRecord | None:
        """The ledger row of one input mined under ``scope``, if any."""
        row = self._db.execute(f"SELECT {_INPUT_COLUMNS} FROM inputs WHERE key = ? AND scope = ?",
                               (key, scope)).fetchone()
        return _input_record(row) if row else None

    def inputs(self) -> list[InputRecord]:
        rows = self._db.execute(f"SELECT {_INPUT_COLUMNS} FROM inputs ORDER BY key, scope")
        return [_input_record(r) for r in rows]

    # -- runs and batches --------------------------------------------------

    def start_run(self, *, started: str, sources: Iterable[str], scope: str) -> int:
        if not self.has_inputs():  # nothing keyed under other rules yet: the store takes this lpgen's
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('fields', ?)", (rules_fingerprint(),))
        cur = self._db.execute(
            "INSERT INTO runs (started, sources, scope) VALUES (?, ?, ?)",
            (started, json.dumps(list(sources)), scope))
        return int(cur.lastrowid)

    def finish_run(self, run: int, *, finished: str) -> None:
        self._db.execute("UPDATE runs SET finished = ? WHERE id = ?", (finished, run))

    def write_batch(
        self,
        *,
        run: int,
        inputs: list[InputRecord],
        keys: dict[int, UsageKey],
        usage: dict[int, Totals],
        principals: dict[str, tuple[str, str]],
        coverage: dict[tuple[str, str, str], list],
        problems: list[tuple[str, int | None, str]],
    ) -> None:
        """Commit one batch of mined inputs and everything they contributed, atomically."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO inputs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(i.key, i.scope, i.size, i.version, i.kind, i.records, i.counted, i.duplicates,
                  i.problems, i.first_time, i.last_time, i.ids, run) for i in inputs])
            rows, callers = self._usage_rows(keys, usage)
            db.executemany("INSERT OR IGNORE INTO callers VALUES (?,?,?,?,?,?,?)", callers)
            db.executemany(
                """INSERT INTO usage VALUES (?,?,?,?,?,?,?,?,?)
                   ON CONFLICT (id) DO UPDATE SET
                     count = count + excluded.count,
                     first_seen = min(first_seen, excluded.first_seen),
                     last_seen = max(last_seen, excluded.last_seen),
                     category = coalesce(category, excluded.category),
                     error_codes = lpgen_merge(error_codes, excluded.error_codes, %d),
                     samples = lpgen_merge(samples, excluded.samples, %d)""" % (MAX_ERROR_CODES, MAX_SAMPLES),
                rows)
            db.executemany(
                "INSERT INTO principals VALUES (?,?,?) ON CONFLICT DO NOTHING",
                [(p, kind, account) for p, (kind, account) in principals.items()])
            db.executemany(
                """INSERT INTO coverage VALUES (?,?,?,?,?,?) ON CONFLICT DO UPDATE SET
                     records = records + excluded.records,
                     first_time = min(first_time, excluded.first_time),
                     last_time = max(last_time, excluded.last_time)""",
                [(*key, n, first, last) for key, (n, first, last) in coverage.items()])
            db.executemany("INSERT INTO problems VALUES (?,?,?,?)", [(*p, run) for p in problems])
            db.execute(
                "UPDATE runs SET inputs = inputs + ?, records = records + ?, counted = counted + ?,"
                " duplicates = duplicates + ?, problems = problems + ? WHERE id = ?",
                (len(inputs), sum(i.records for i in inputs), sum(i.counted for i in inputs),
                 sum(i.duplicates for i in inputs), len(problems), run))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._caller_ids.clear()  # some may not be in the table after all
            raise

    def _usage_rows(self, keys: dict[int, UsageKey], usage: dict[int, Totals]) -> tuple[list[tuple], list[tuple]]:
        """Rows of the usage table, and the callers table rows they need that this store may lack.

        In the batch's order, which the inputs' order decides: a new key appends a row, an old one is
        found through the unique index on id, small enough to stay in SQLite's page cache.
        """
        ids = self._caller_ids
        rows, callers = [], []
        for h, a in usage.items():
            key = keys[h]
            caller = key[:6]
            cid = ids.get(caller)
            if cid is None:
                cid = ids[caller] = row_hash(caller)
                callers.append((cid, *caller))
            rows.append((h, cid, key[6], a[0], a[1], a[2], a[3], _json(a[4]) if a[4] else "[]", _json(a[5])))
        return rows, callers

    # -- reading -----------------------------------------------------------

    def usage(self, *, principals: Iterable[str] | None = None, include_service: bool = False) -> Iterator[UsageRow]:
        """Aggregates, sorted; service-initiated calls only when asked for."""
        sql = "SELECT principal, source, name, error_class, region, invoked_by, fields, count, first_seen,"\
              " last_seen, category, error_codes, samples FROM usage_rows"
        where, params = [], []
        if not include_service:
            where.append("principal NOT LIKE 'service:%'")
        if principals is not None:
            wanted = sorted(set(principals))
            where.append(f"principal IN ({','.join('?' * len(wanted))})")
            params.extend(wanted)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY principal, source, name, error_class, region, invoked_by, fields"
        for r in self._db.execute(sql, params):
            yield UsageRow(
                principal=r[0], source=r[1], name=r[2], error_class=r[3], region=r[4],
                invoked_by=r[5] or None, fields=tuple(tuple(f) for f in json.loads(r[6])),
                count=r[7], first_seen=r[8], last_seen=r[9], category=r[10],
                error_codes=tuple(json.loads(r[11])), samples=tuple(json.loads(r[12])))

    def principals(self) -> dict[str, tuple[str, str | None]]:
        """Every principal seen: ARN → (type, account)."""
        return {p: (t, a) for p, t, a in self._db.execute("SELECT * FROM principals ORDER BY principal")}

    def coverage(self) -> list[CoverageRow]:
        rows = self._db.execute("SELECT * FROM coverage ORDER BY account, region, day")
        return [CoverageRow(account=a, region=r, day=d, records=n, first_time=first, last_time=last)
                for a, r, d, n, first, last in rows]

    def problems(self, limit: int | None = None) -> list[tuple[str, int | None, str]]:
        sql = "SELECT key, record, reason FROM problems ORDER BY run, rowid"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return list(self._db.execute(sql))

    def totals(self) -> dict[str, int]:
        one = lambda sql: self._db.execute(sql).fetchone()[0] or 0  # noqa: E731
        return {
            "inputs": one("SELECT count(*) FROM inputs"),
            "records": one("SELECT sum(records) FROM inputs"),
            "events": one("SELECT sum(counted) FROM inputs"),
            "duplicates": one("SELECT sum(duplicates) FROM inputs"),
            "problems": one("SELECT count(*) FROM problems"),
            "aggregates": one("SELECT count(*) FROM usage"),
            "principals": one("SELECT count(*) FROM principals WHERE principal NOT LIKE 'service:%'"),
            "runs": one("SELECT count(*) FROM runs"),
        }

    def contents(self) -> dict[str, list[tuple]]:
        """Everything that mining determines (not run timestamps): for comparing stores."""
        return {
            "usage": list(self._db.execute("SELECT * FROM usage_rows ORDER BY id")),
            "principals": list(self._db.execute("SELECT * FROM principals ORDER BY 1")),
            "coverage": list(self._db.execute("SELECT * FROM coverage ORDER BY 1,2,3")),
            "inputs": list(self._db.execute(
                "SELECT key, scope, size, version, kind, records, counted, duplicates, problems,"
                " first_time, last_time, ids FROM inputs ORDER BY 1, 2")),
        }


_INPUT_COLUMNS = "key, scope, size, version, kind, records, counted, duplicates, problems, first_time, last_time, ids"


def _input_record(r: tuple) -> InputRecord:
    return InputRecord(key=r[0], scope=r[1], size=r[2], version=r[3], kind=r[4], records=r[5], counted=r[6],
                       duplicates=r[7], problems=r[8], first_time=r[9], last_time=r[10], ids=r[11] or b"")


def row_hash(parts: tuple[str, ...]) -> int:
    """A stable 64-bit id for a tuple of strings: :func:`text_hash` of them joined by NUL."""
    return text_hash("\x00".join(parts))


def text_hash(text: str) -> int:
    """XXH3 of ``text``, signed as SQLite integers are (mining joins a key's caller part once, then hashes
    it with each distinct fields text)."""
    return xxhash.xxh3_64_intdigest(text.encode()) - (1 << 63)


def _merge_json(a: str, b: str, limit: int) -> str:
    return _json(merge_small(json.loads(a), json.loads(b), limit))


def _json(value: list[str]) -> str:
    return msgspec.json.encode(value).decode()


def ids_to_bytes(ids: Iterable[int]) -> bytes:
    return array("q", sorted(ids)).tobytes()


def ids_from_bytes(blob: bytes) -> array:
    out = array("q")
    out.frombytes(blob)
    return out
