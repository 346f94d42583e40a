"""Mining: inputs → aggregates in the usage store, in parallel, incrementally.

Inputs are mined in chunks by worker processes, each chunk into one small
:class:`Partial` aggregate (map); the parent merges partials in input order,
drops events already counted (same eventID), and commits batches to the store
(reduce). Chunks do not depend on the worker count and merging is in input
order, so the store is identical whatever the worker count.
"""

from __future__ import annotations

import contextlib
import gc
import json
import multiprocessing
import re
import sys
import time as _time
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone

import msgspec
import xxhash

from lpgen.fields import created_keys, event_fields_json
from lpgen.filters import Window, principal_matcher
from lpgen.model import Problem
from lpgen.normalize import CANONICAL_TIME, BadRecord, account_of, caller, event_time
from lpgen.records import RawRecord
from lpgen.sources.base import AggregateSource, Blob, BlobSource, PartialRead
from lpgen.sources.formats import DEFAULT_MAX_BYTES, DIGEST, decode
from lpgen.store import (
    MAX_ERROR_CODES,
    MAX_SAMPLES,
    InputRecord,
    Totals,
    UsageStore,
    ids_from_bytes,
    ids_to_bytes,
    merge_small,
    merge_totals,
    text_hash,
)

#: Commit after this many inputs or this many events, whichever comes first.
BATCH_INPUTS = 200
BATCH_EVENTS = 250_000


@dataclass(frozen=True, slots=True, kw_only=True)
class MineOptions:
    window: Window = field(default_factory=Window)
    principals: tuple[str, ...] = ()
    max_inflate: int = DEFAULT_MAX_BYTES

    def scope(self) -> str:
        """The filters as a ledger key: an input mined under one scope is new to another."""
        if self.window.since is None and self.window.until is None and not self.principals:
            return ""
        return json.dumps([self.window.since, self.window.until, sorted(self.principals)])


#: The ledger version of an input whose read stopped part-way: unequal to any real one.
PARTIAL = "partial"

#: Inputs per task: enough that a worker merges repeated keys across files (less
#: for the parent to merge), few enough to keep both workers busy to the end.
CHUNK_INPUTS = 48


@dataclass(slots=True)
class InputResult:
    """What mining one input found, for the ledger and the report."""

    key: str
    size: int | None = None
    version: str | None = None
    kind: str | None = None
    records: int = 0  # readable records
    events: int = 0  # records that passed the filters
    filtered: int = 0
    problems: list[Problem] = field(default_factory=list)
    ids: bytes = b""  # array('q') of eventID hashes, in record order
    key_of: bytes = b""  # array('q'): the usage key hash of each hashed event
    first_time: str | None = None
    last_time: str | None = None
    unread: bool = False  # could not be read (a fault): not recorded as mined, read again next run
    day: str | None = None  # delivery day (S3 layout), when the inputs are mined in day order


@dataclass(slots=True)
class Partial:
    """What a chunk of inputs contributed, before de-duplication against other chunks."""

    inputs: list[InputResult] = field(default_factory=list)
    keys: dict[int, tuple] = field(default_factory=dict)  # key hash → usage key (fields as JSON)
    usage: dict[int, Totals] = field(default_factory=dict)  # key hash → totals
    principals: dict[str, tuple[str, str]] = field(default_factory=dict)
    coverage: dict[str, list] = field(default_factory=dict)  # "account\0region\0day" → [records, first, last]


#: A fast, stable 64-bit hash (Python's ``hash`` differs per process): xxHash's XXH3.
_xxh = xxhash.xxh3_64_intdigest
_xxh_digest = xxhash.xxh3_64_digest


class _CallerSlot(msgspec.Struct, frozen=True):
    """What every record of one session calling one API has in common."""

    prefix: tuple = ()  # the usage key without its fields
    joined: str = ""  # the prefix as row_hash joins it, ready for the fields (see _keyed)
    principal: str = ""
    principal_type: str = ""
    account: str = ""
    category: str | None = None
    error_codes: tuple[str, ...] = ()
    coverage: str = ""  # "account\x00region\x00", completed with the day
    wanted: bool = True
    bad: str | None = None
    creates: tuple[str, ...] = ()  # responseElements keys naming what the call created


#: A memo entry: (usage key hash, caller, usage key). The hash is None when the record needs more
#: than the memo key says: its caller is unusable or filtered out, or its call creates something
#: (the created identifiers come from responseElements, which the memo key leaves out).
_Slot = tuple


class _Memo:
    """Per-process memos from a record's invariant parts to its usage key.

    Records of one session calling one API on one resource differ only in time and
    eventID, so mining keys records by 64-bit hashes of their undecoded identity,
    parameters and resources (no copies, no decoding) and normalises each distinct
    combination once: :func:`caller` once per session and call, the request fields
    once per distinct parameters. The memo key is one integer, the hash of those
    hashes and the call's strings: a lookup compares integers, not tuples of strings
    that the last file's decoding made (a collision, at 2^-61 per pair of keys, is as
    unlikely as one of the XXH3 hashes it combines).
    """

    LIMIT = 50_000  # slots; each holds a usage key, and S3 object keys rarely repeat

    def __init__(self, options: MineOptions) -> None:
        self.options = options
        self.wanted = principal_matcher(options.principals)
        self.callers: dict[tuple, _CallerSlot] = {}
        self.slots: dict[int, _Slot] = {}  # memo key (see mine_bytes) → slot
        self.created: dict[tuple[int, int], _Slot] = {}

    def caller(self, record: RawRecord) -> _CallerSlot:
        try:
            c = caller(record)
        except BadRecord as exc:
            return _CallerSlot(bad=str(exc))
        prefix = (c.principal, c.source, c.name, c.error_class, c.region, c.invoked_by or "")
        return _CallerSlot(
            prefix=prefix, joined="\x00".join(prefix) + "\x00",
            principal=c.principal, principal_type=c.principal_type, account=account_of(c.principal, c.account),
            category=c.category, error_codes=(c.error_code,) if c.error_code else (),
            coverage=f"{c.account}\x00{c.region}\x00",
            wanted=self.wanted is None or self.wanted(c.principal), creates=created_keys(c.source, c.name))

    def slot(self, record: RawRecord) -> _Slot:
        caller_key = (_xxh(record.userIdentity), record.eventSource, record.eventName, record.awsRegion,
                      record.errorCode, record.eventType, record.eventCategory, record.recipientAccountId)
        who = self.callers.get(caller_key)
        if who is None:
            who = self.callers[caller_key] = self.caller(record)
        if who.bad is not None or who.creates or not who.wanted:
            return None, who, None
        return self._keyed(who, event_fields_json(record.requestParameters, record.resources))

    def created_slot(self, memo_key: int, who: _CallerSlot, record: RawRecord) -> _Slot:
        """The slot of a creating call, whose usage key also holds what its response created."""
        key = (memo_key, _xxh(record.responseElements))
        slot = self.created.get(key)
        if slot is None:
            slot = self.created[key] = self._keyed(who, event_fields_json(
                record.requestParameters, record.resources, record.responseElements, who.creates))
        return slot

    @staticmethod
    def _keyed(who: _CallerSlot, fields: str) -> _Slot:
        """The usage key and its id: :func:`~lpgen.store.row_hash` of it, from the caller's prefix joined once."""
        return text_hash(who.joined + fields), who, (*who.prefix, fields)


_memo: _Memo | None = None


def _memo_for(options: MineOptions) -> _Memo:
    global _memo
    if _memo is None or _memo.options != options or len(_memo.callers) > _Memo.LIMIT:
        _memo = _Memo(options)
    elif len(_memo.slots) + len(_memo.created) > _Memo.LIMIT:  # most are resources seen once: start again,
        _memo.slots, _memo.created = {}, {}  # but keep the sessions, which recur for hours
    return _memo


#: How far past now an eventTime may lie before mining says so (clocks and time zones drift).
FUTURE_SLACK = timedelta(days=1)

#: Every eventTime of a file in canonical form, checked at once on their concatenation.
_ALL_CANONICAL = re.compile(f"(?:{CANONICAL_TIME.pattern.strip('^$')})*")


def _times(records: list[RawRecord]) -> tuple[list[str | None], dict[int, str]]:
    """Each record's eventTime in canonical form (None when unusable), and why for those."""
    times = [r.eventTime for r in records]
    # every one 20 characters long, so the concatenation's units are the records' own times
    if None not in times and set(map(len, times)) <= {20} and _ALL_CANONICAL.fullmatch("".join(times)):
        return times, {}
    reasons: dict[int, str] = {}
    for i, r in enumerate(records):
        try:
            times[i] = event_time(r)
        except BadRecord as exc:
            times[i] = None
            reasons[i] = str(exc)
    return times, reasons


def mine_bytes(data: bytes, blob: Blob, options: MineOptions, into: Partial | None = None) -> InputResult:
    """Mine one input's bytes, adding its aggregates to ``into``. Never raises for bad content.

    This loop runs once per event over millions of events, so it is written for
    speed: a record is keyed by hashes of its raw parts, and everything that
    follows from the key comes from :class:`_Memo`; checks that concern every
    record (time format, future times, coverage) run on whole lists after the loop.
    """
    acc = into if into is not None else Partial()
    out = InputResult(key=blob.key, size=blob.size, version=blob.version, day=blob.day)
    acc.inputs.append(out)
    decoded = decode(data, blob.key, max_bytes=options.max_inflate)
    out.kind = decoded.kind
    out.problems.extend(decoded.problems)
    if decoded.kind == DIGEST:
        return out
    records = decoded.records
    memo = _memo_for(options)
    slots, new_slot, created_slot = memo.slots, memo.slot, memo.created_slot
    since, until = options.window.since, options.window.until
    windowed = since is not None or until is not None
    filtering = windowed or memo.wanted is not None
    usage, keys, principals = acc.usage, acc.keys, acc.principals
    times, time_problems = _times(records)
    good_times: list[str] = []  # of readable records, with their coverage prefix
    covered: list[str] = []
    event_times: list[str] = []  # of records that passed the filters, when there are filters
    eids: list[str] = []
    key_of = array("q")
    bad: list[tuple[int, str]] = []
    filtered = 0
    xxh = _xxh
    for i, r in enumerate(records):
        mk = hash((xxh(r.userIdentity), r.eventSource, r.eventName, r.awsRegion, r.errorCode, r.eventType,
                   r.eventCategory, r.recipientAccountId, xxh(r.requestParameters), xxh(r.resources)))
        slot = slots.get(mk)
        if slot is None:
            slot = slots[mk] = new_slot(r)
        h, who, key = slot
        t = times[i]
        if h is None or t is None:  # the usual record has neither: its tests stop here
            if who.bad is not None:
                bad.append((i, who.bad))
                continue
            if t is None:
                bad.append((i, time_problems[i]))
                continue
        good_times.append(t)
        covered.append(who.coverage)
        if h is None:  # filtered out by principal, or a creating call (keyed by its response too)
            if not who.wanted:
                filtered += 1
                continue
            h, who, key = created_slot(mk, who, r)
        if filtering:
            if windowed and ((since is not None and t < since) or (until is not None and t > until)):
                filtered += 1
                continue
            event_times.append(t)
        eid = r.eventID
        totals = usage.get(h)
        if totals is None:
            usage[h] = [1, t, t, who.category, list(who.error_codes), [eid] if eid else []]
            keys[h] = key
            if who.principal not in principals:  # its first event here: keys name their principal
                principals[who.principal] = (who.principal_type, who.account)
        else:
            totals[0] += 1
            if t < totals[1]:
                totals[1] = t
            elif t > totals[2]:
                totals[2] = t
            if eid:
                samples = totals[5]
                if len(samples) < MAX_SAMPLES:
                    if eid not in samples:
                        samples.append(eid)
                        samples.sort()
                elif eid < samples[-1] and eid not in samples:
                    samples[-1] = eid
                    samples.sort()
            if who.error_codes or (totals[3] is None and who.category is not None):  # a code or a first category
                _fold_caller(totals, who)
        if eid:
            eids.append(eid)
            key_of.append(h)
    out.problems.extend(Problem(path=blob.key, record=decoded.position(i), reason=reason) for i, reason in bad)
    out.records = len(good_times)
    out.filtered = filtered
    out.events = out.records - filtered
    if good_times:
        _cover(acc.coverage, covered, good_times)
        horizon = (datetime.now(timezone.utc) + FUTURE_SLACK).strftime("%Y-%m-%dT%H:%M:%SZ")
        if max(good_times) > horizon:  # kept (it may be clock skew), but said: a forged or misdated record skews the window
            out.problems.extend(Problem(path=blob.key, record=decoded.position(i), reason=(
                f"eventTime {t} is in the future: the event is kept; check the trail's clock or the record's origin"))
                for i, t in enumerate(times) if t is not None and t > horizon)
    if out.events:
        counted = event_times if filtering else good_times
        out.first_time, out.last_time = min(counted), max(counted)
    ids = event_id_hashes(eids)
    out.ids, out.key_of = ids.tobytes(), key_of.tobytes()
    if len(set(ids)) < len(ids):
        out.problems.extend(_conflicting_duplicates(blob.key, ids, key_of))
    if decoded.kind is None and not decoded.problems:
        out.problems.append(Problem(path=blob.key, reason="no CloudTrail records found"))
    return out


def _fold_caller(totals: Totals, who: _CallerSlot) -> None:
    """Add what one more record of a key says about it: its error code (the key has an error class, and
    one class holds several codes), and its category when the key has none yet (as the store merges)."""
    if totals[3] is None:
        totals[3] = who.category
    if who.error_codes and who.error_codes[0] not in totals[4]:
        totals[4] = merge_small(totals[4], list(who.error_codes), MAX_ERROR_CODES)


def event_id_hashes(eids: list[str]) -> array:
    """XXH3 of each eventID as the ledger keeps them: the same 64 bits read as a signed array('q').

    Built from the big-endian digests (Python never makes an int of each hash, nor converts it back).
    """
    ids = array("q", b"".join(map(_xxh_digest, map(str.encode, eids))))
    if sys.byteorder == "little":
        ids.byteswap()
    return ids


def _cover(coverage: dict[str, list], prefixes: list[str], times: list[str]) -> None:
    """Add records to the coverage (account, region and day → [records, first, last])."""
    first, last = min(times), max(times)
    if first[:10] == last[:10] and prefixes.count(prefixes[0]) == len(prefixes):  # one day, one account and region
        _add_span(coverage, prefixes[0] + first[:10], len(times), first, last)
    else:
        for prefix, t in zip(prefixes, times, strict=True):
            _add_span(coverage, prefix + t[:10], 1, t, t)


def _add_span(coverage: dict[str, list], key: str, records: int, first: str, last: str) -> None:
    span = coverage.get(key)
    if span is None:
        coverage[key] = [records, first, last]
    else:
        span[0] += records
        span[1], span[2] = min(span[1], first), max(span[2], last)


def _conflicting_duplicates(path: str, ids: array, key_of: array) -> list[Problem]:
    """A problem for eventIDs repeated in one input with a different call, principal or resources.

    A repeated eventID counts once (the first occurrence) wherever it comes from; a repeat that
    differs in what lpgen aggregates is not a second delivery but a forged or corrupted record.
    """
    first: dict[int, int] = {}
    conflicts = 0
    for h, k in zip(ids, key_of, strict=True):
        if first.setdefault(h, k) != k:
            conflicts += 1
    if not conflicts:
        return []
    return [Problem(path=path, reason=f"{conflicts} record(s) repeat an earlier eventID with a different call, "
                                      "principal or resources: the first occurrence is counted, the repeat is not")]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while mining.

    Mining allocates millions of short-lived containers and keeps large memos, so
    the collector would keep re-scanning the memos (a fifth of a worker's time) to
    find cycles that mining does not create; reference counting frees everything.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def mine_chunk(source: BlobSource, options: MineOptions, blobs: list[Blob]) -> Partial:
    """Read and mine a chunk of inputs into one :class:`Partial` (runs in a worker process)."""
    with _gc_paused():
        return _mine_chunk(source, options, blobs)


def _mine_chunk(source: BlobSource, options: MineOptions, blobs: list[Blob]) -> Partial:
    acc = Partial()
    for blob in blobs:
        try:
            data = source.read(blob)
        except PartialRead as exc:  # keep what came; a version no listing gives, so the next run reads it again
            result = mine_bytes(exc.data, replace(blob, version=PARTIAL), options, acc)
            result.problems.append(Problem(path=blob.key, reason=f"read stopped ({exc}): the {result.records:,} "
                                           "records before are kept; the next run reads it again"))
            continue
        except OSError as exc:
            acc.inputs.append(InputResult(key=blob.key, size=blob.size, version=blob.version, unread=True, problems=[
                Problem(path=blob.key, reason=f"cannot read: {exc.strerror or exc}")]))
            continue
        mine_bytes(data, blob, options, acc)
    return acc


# -- the parent: listing, de-duplication, batching ---------------------------


@dataclass(slots=True)
class MineReport:
    """What a run did, for the closing summary."""

    inputs: int = 0  # inputs listed (log files, not digests)
    mined: int = 0
    known: int = 0  # already in the ledger, skipped
    changed: int = 0  # in the ledger with another size or version: mined again, de-duplicated
    outside_window: int = 0
    unread: int = 0  # could not be read (AWS or disk faults): not in the ledger, read again next run
    digests: int = 0
    records: int = 0
    events: int = 0  # counted: passed the filters and not duplicates
    duplicates: int = 0
    filtered: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    principals: set[str] = field(default_factory=set)
    first_time: str | None = None
    last_time: str | None = None
    seconds: float = 0.0
    queries: int = 0  # athena:/lake: queries that ran (an empty answer is still an answer)

    @property
    def found_nothing(self) -> bool:
        """Nothing readable at all: every input failed and none was known already."""
        return self.records == 0 and self.known == 0 and self.outside_window == 0 and self.queries == 0


Progress = Callable[[MineReport], None]


def mine(
    sources: Sequence[BlobSource | AggregateSource],
    store: UsageStore,
    options: MineOptions = MineOptions(),
    *,
    workers: int = 1,
    progress: Progress | None = None,
) -> MineReport:
    """Mine every new input of ``sources`` into ``store``; return what happened."""
    with store.exclusive(), _gc_paused():
        return _mine(sources, store, options, workers, progress)


def _mine(sources: Sequence[BlobSource | AggregateSource], store: UsageStore, options: MineOptions, workers: int,
          progress: Progress | None) -> MineReport:
    started = _time.perf_counter()
    report = MineReport()
    scope = options.scope()
    known = store.known_inputs(scope)
    own_files = {str(store.path.absolute()) + suffix for suffix in ("", "-wal", "-shm", "-journal", ".lock")}
    todo: list[tuple[BlobSource, Blob]] = []
    changed: set[str] = set()
    for source in sources:
        if isinstance(source, AggregateSource):  # Athena, CloudTrail Lake: the engine aggregates, no inputs to list
            source.mine_into(store, options.window, options.principals, report)
            continue
        listing = source.list()
        report.digests += listing.digests
        report.problems.extend(listing.problems)
        report.notes.extend(listing.notes)
        for blob in listing.blobs:
            if blob.key in own_files:  # the store itself, kept beside the logs
                continue
            report.inputs += 1
            if not options.window.may_hold_day(blob.day):
                report.outside_window += 1
                continue
            seen = known.get(blob.key)
            if seen is not None:
                if seen == (blob.size, blob.version):
                    report.known += 1
                    continue
                report.changed += 1
                changed.add(blob.key)
            todo.append((source, blob))
    by_day = bool(todo) and all(blob.day for _, blob in todo)
    if by_day:  # day order lets de-duplication forget days no later input can repeat (SeenIds)
        todo.sort(key=lambda sb: sb[1].day)
    if todo:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        history = store.has_inputs()
        run = store.start_run(started=now, sources=[s.label for s in sources], scope=scope)
        reducer = _Reducer(store, run, scope, report, progress, history=history, changed=changed,
                           seen=SeenIds(by_day=by_day))
        reducer.consume(_partials(todo, options, workers))
        store.finish_run(run, finished=datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    report.seconds = _time.perf_counter() - started
    return report


def _partials(todo: list[tuple[BlobSource, Blob]], options: MineOptions, workers: int):
    """Partials of consecutive chunks of inputs, in input order, mined in ``workers`` processes."""
    chunks = list(_chunks(todo))
    if workers <= 1 or len(chunks) == 1:
        for source, blobs in chunks:
            yield mine_chunk(source, options, blobs)
        return
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    with context.Pool(workers, initializer=gc.enable) as pool:  # forked while the parent pauses it
        # A bounded window of tasks in flight: results never pile up in memory when
        # the parent (merging, committing) falls behind the workers.
        pending: deque = deque()
        for source, blobs in chunks:
            pending.append(pool.apply_async(mine_chunk, (source, options, blobs)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _chunks(todo: list[tuple[BlobSource, Blob]]):
    """Consecutive runs of at most CHUNK_INPUTS inputs of one source, a quarter of that over the last
    few chunks' worth: the run ends when its slowest worker does, so the last chunks are small."""
    group: list[Blob] = []
    current = None
    tail = len(todo) - 4 * CHUNK_INPUTS  # from here on, smaller chunks (the worker count plays no part)
    for i, (source, blob) in enumerate(todo):
        limit = CHUNK_INPUTS if i < tail else max(CHUNK_INPUTS // 4, 1)
        if group and (source is not current or len(group) >= limit):
            yield current, group
            group = []
        current = source
        group.append(blob)
    if group:
        yield current, group


class SeenIds:
    """Event-ID hashes counted in this run, by the delivery day of their input.

    The same event reaches the archive twice when an organisation trail and an account trail both
    log it, delivered within minutes of each other: into the same day's folder, or the next day's
    around midnight. When the inputs are mined in day order (every input has a delivery day),
    days more than :attr:`KEEP_DAYS` before the current one can no longer recur and are forgotten,
    so memory follows a few days of events rather than the whole archive. Otherwise nothing is
    forgotten. Ledger entries of earlier runs loaded into a forgotten day may be loaded again.
    """

    KEEP_DAYS = 2

    def __init__(self, *, by_day: bool) -> None:
        self.by_day = by_day
        self._ids: dict[str | None, set[int]] = {}
        self._loaded: dict[str | None, set[str]] = {}

    def _day(self, day: str | None) -> str | None:
        return day if self.by_day else None

    def advance(self, day: str | None) -> None:
        """Forget the days that inputs of ``day`` and later cannot repeat."""
        if not self.by_day or day is None:
            return
        horizon = (date.fromisoformat(day) - timedelta(days=self.KEEP_DAYS)).isoformat()
        for old in [d for d in self._ids if d is not None and d < horizon]:
            del self._ids[old]
            self._loaded.pop(old, None)

    def add(self, day: str | None, ids) -> None:
        self._ids.setdefault(self._day(day), set()).update(ids)

    def loaded(self, day: str | None, ledger_key: str) -> None:
        self._loaded.setdefault(self._day(day), set()).add(ledger_key)

    def loaded_keys(self) -> set[str]:
        return set().union(*self._loaded.values())

    def isdisjoint(self, ids: set[int]) -> bool:
        return all(s.isdisjoint(ids) for s in self._ids.values())

    def __contains__(self, h: int) -> bool:
        return any(h in s for s in self._ids.values())

    def __len__(self) -> int:
        return sum(len(s) for s in self._ids.values())


class _Reducer:
    """Merges partials in order, drops duplicate events, and commits in batches."""

    def __init__(self, store: UsageStore, run: int, scope: str, report: MineReport, progress: Progress | None,
                 *, history: bool, changed: set[str] | frozenset[str] = frozenset(), seen: SeenIds | None = None):
        self.store, self.run, self.scope, self.report, self.progress = store, run, scope, report, progress
        self.changed = changed  # inputs mined before in another version: their ledger row is replaced
        self.seen = seen if seen is not None else SeenIds(by_day=False)  # hashes of counted events that may recur in later inputs
        self.history = history  # inputs from earlier runs, whose events may recur
        self._reset()

    def _reset(self) -> None:
        self.inputs: list[InputRecord] = []
        self.keys: dict[int, tuple] = {}
        self.usage: dict[int, Totals] = {}
        self.principals: dict[str, tuple[str, str]] = {}
        self.coverage: dict[str, list] = {}
        self.problems: list[tuple[str, int | None, str]] = []
        self.events = 0

    def consume(self, partials) -> None:
        last_progress = 0.0
        for partial in partials:
            self.add(partial)
            if len(self.inputs) >= BATCH_INPUTS or self.events >= BATCH_EVENTS:
                self.flush()
            if self.progress is not None and _time.perf_counter() - last_progress > 0.2:
                last_progress = _time.perf_counter()
                self.progress(self.report)
        self.flush()
        if self.progress is not None:
            self.progress(self.report)

    def add(self, p: Partial) -> None:
        report = self.report
        for one in p.inputs:
            if one.unread:
                report.unread += 1
                report.problems.extend(one.problems)
                self.problems.extend((q.path, q.record, q.reason) for q in one.problems)
                continue
            counted_ids, duplicates, ledger_ids = self._deduplicate(one, p.usage)
            counted = one.events - duplicates
            ledger_duplicates = duplicates
            if one.key in self.changed:
                counted_ids, counted, ledger_duplicates = self._carry_over(one, counted_ids, counted, duplicates)
                ledger_ids = ids_to_bytes(counted_ids)
            report.mined += 1
            report.records += one.records
            report.filtered += one.filtered
            report.duplicates += duplicates
            report.events += one.events - duplicates
            report.problems.extend(one.problems)
            if one.kind:
                report.kinds[one.kind] += 1
            if one.first_time and (report.first_time is None or one.first_time < report.first_time):
                report.first_time = one.first_time
            if one.last_time and (report.last_time is None or one.last_time > report.last_time):
                report.last_time = one.last_time
            self.problems.extend((q.path, q.record, q.reason) for q in one.problems)
            self.inputs.append(InputRecord(
                key=one.key, scope=self.scope, size=one.size, version=one.version, kind=one.kind,
                records=one.records, counted=counted, duplicates=ledger_duplicates,
                problems=len(one.problems), first_time=one.first_time, last_time=one.last_time,
                ids=ledger_ids))
            self.seen.loaded(one.day, f"{one.key}\x00{self.scope}")
            self.events += one.events
        usage, keys = self.usage, self.keys
        for h, totals in p.usage.items():
            if totals[0] <= 0:  # every event of this key was a duplicate
                continue
            mine = usage.get(h)
            if mine is None:
                usage[h] = totals
                keys[h] = p.keys[h]
            else:
                merge_totals(mine, totals)
        report.principals.update(k for k in p.principals if not k.startswith("service:"))
        for principal, kind in p.principals.items():
            self.principals.setdefault(principal, kind)
        for key, (n, first, last) in p.coverage.items():
            _add_span(self.coverage, key, n, first, last)

    def _carry_over(self, one: InputResult, counted_ids: set[int], counted: int,
                    duplicates: int) -> tuple[set[int], int, int]:
        """The ledger row of an input mined before in another version, which the new row replaces.

        It keeps what the old version counted: its event IDs (or a later run would count them
        again: a growing input, such as the current hour of a log group, is read many times)
        and its count; the events it re-reads are not duplicates of other inputs.
        """
        old = self.store.input(one.key, self.scope)
        if old is None:
            return counted_ids, counted, duplicates
        old_ids = set(ids_from_bytes(old.ids))
        again = len(old_ids.intersection(ids_from_bytes(one.ids)))
        return counted_ids | old_ids, old.counted + counted, max(duplicates - again, 0)

    def _deduplicate(self, one: InputResult, usage: dict[int, Totals]) -> tuple[set[int], int, bytes]:
        """Drop events already counted (here or in the store) from ``usage``; return the new IDs, how
        many were not new, and the new IDs as the ledger keeps them (in record order: the usual input,
        with no duplicate, keeps the bytes the worker sent)."""
        ids = ids_from_bytes(one.ids)
        self.seen.advance(one.day)
        if not ids:
            return set(), 0, b""
        if self.history and one.first_time is not None:
            for ident, blob in self.store.ids_overlapping(one.first_time, one.last_time, self.seen.loaded_keys(),
                                                          run=self.run):
                self.seen.add(one.day, ids_from_bytes(blob))
                self.seen.loaded(one.day, ident)
        unique = set(ids)
        if len(unique) == len(ids) and self.seen.isdisjoint(unique):
            self.seen.add(one.day, unique)
            return unique, 0, one.ids
        key_of = ids_from_bytes(one.key_of)
        fresh: set[int] = set()
        kept = array("q")
        duplicates = 0
        for h, k in zip(ids, key_of, strict=True):
            if h in fresh or h in self.seen:
                duplicates += 1
                usage[k][0] -= 1
            else:
                fresh.add(h)
                kept.append(h)
        self.seen.add(one.day, fresh)
        return fresh, duplicates, kept.tobytes()

    def flush(self) -> None:
        if not self.inputs and not self.problems:
            return
        self.store.write_batch(
            run=self.run, inputs=self.inputs, keys=self.keys, usage=self.usage, principals=self.principals,
            coverage={tuple(k.split("\x00")): v for k, v in self.coverage.items()}, problems=self.problems)
        self._reset()
