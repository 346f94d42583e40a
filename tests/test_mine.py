"""Mining into the usage store: totals match the demo's ground truth, runs are incremental,
de-duplicated, deterministic, and survive being killed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from lpgen.filters import Window
from lpgen.mine import MineOptions, mine
from lpgen.model import DENIED, ERROR
from lpgen.sources.local import LocalSource, StdinSource
from lpgen.store import UsageStore

from .conftest import ACCOUNT, DEMO, ROLE, assumed_role, delivery_path, log_bytes, make_record, write_log

TRUTH = json.loads((DEMO / "truth.json").read_text())
DEMO_LOGS = DEMO / "AWSLogs"


def mine_into(path: Path, *sources, workers: int = 1, options: MineOptions | None = None):
    with UsageStore(path) as store:
        return mine([LocalSource(s) if not isinstance(s, StdinSource) else s for s in sources], store,
                    options or MineOptions(), workers=workers)


def totals_by_call(path: Path, include_service: bool = False) -> dict:
    """principal → "source name" → {count, denied, errors}, the shape of truth.json."""
    out: dict = defaultdict(lambda: defaultdict(lambda: {"count": 0, "denied": 0, "errors": 0}))
    with UsageStore(path) as store:
        for row in store.usage(include_service=include_service):
            cell = out[row.principal][f"{row.source} {row.name}"]
            if row.error_class == DENIED:
                cell["denied"] += row.count
            else:
                cell["count"] += row.count
                if row.error_class == ERROR:
                    cell["errors"] += row.count
    return {p: dict(calls) for p, calls in out.items()}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "usage.db"
    report = mine_into(path, DEMO_LOGS, workers=2)
    assert not report.problems
    return path


def test_demo_totals_match_the_generators_ground_truth(demo_store):
    mined = totals_by_call(demo_store)
    expected = dict(TRUTH["principals"])
    for provider, calls in TRUTH["web_identity"].items():
        expected[f"web-identity:{provider}"] = calls
    assert mined == expected


def test_demo_service_initiated_events_are_kept_apart(demo_store):
    services = {p: c for p, c in totals_by_call(demo_store, include_service=True).items() if p.startswith("service:")}
    merged: dict = defaultdict(int)
    for calls in services.values():
        for call, cell in calls.items():
            merged[call] += cell["count"]
    assert dict(merged) == {call: cell["count"] for call, cell in TRUTH["service_initiated"].items()}


def test_demo_coverage_spans_both_regions_and_every_day(demo_store):
    with UsageStore(demo_store) as store:
        coverage = store.coverage()
        totals = store.totals()
    by_region = defaultdict(int)
    for row in coverage:
        by_region[row.region] += row.records
    assert dict(by_region) == TRUTH["events_by_region"]
    assert min(r.first_time for r in coverage) == TRUTH["first_event"]
    assert max(r.last_time for r in coverage) == TRUTH["last_event"]
    assert totals["inputs"] == TRUTH["log_files"] and totals["events"] == TRUTH["events"]


def test_digest_files_are_skipped(tmp_path):
    report = mine_into(tmp_path / "s.db", DEMO_LOGS)
    assert report.digests == TRUTH["digest_files"] and report.inputs == TRUTH["log_files"]


def test_second_run_reads_nothing_and_changes_nothing(demo_store, tmp_path):
    copy = tmp_path / "copy.db"
    shutil.copy(demo_store, copy)
    with UsageStore(copy) as store:
        before = store.contents()
        report = mine([LocalSource(DEMO_LOGS)], store, workers=2)
        after = store.contents()
    assert report.mined == 0 and report.known == TRUTH["log_files"] and report.records == 0
    assert before == after


def test_one_worker_and_two_workers_give_the_same_store(demo_store, tmp_path):
    mine_into(tmp_path / "one.db", DEMO_LOGS, workers=1)
    with UsageStore(tmp_path / "one.db") as one, UsageStore(demo_store) as two:
        assert one.contents() == two.contents()


def test_event_delivered_by_two_trails_counts_once(tmp_path):
    records = [make_record(name=f"Call{i % 3}") for i in range(30)]
    write_log(delivery_path(tmp_path / "account-trail"), records)
    write_log(delivery_path(tmp_path / "org-trail", org="o-abc123", n=1), records)
    report = mine_into(tmp_path / "s.db", tmp_path / "account-trail", tmp_path / "org-trail", workers=2)
    assert (report.records, report.events, report.duplicates) == (60, 30, 30)
    assert sum(c["count"] for c in totals_by_call(tmp_path / "s.db")[ROLE].values()) == 30


def test_duplicates_across_runs_count_once(tmp_path):
    records = [make_record() for _ in range(10)]
    write_log(tmp_path / "a" / "one.json.gz", records)
    write_log(tmp_path / "b" / "same-events-other-file.json.gz", records + [make_record()])
    mine_into(tmp_path / "s.db", tmp_path / "a")
    report = mine_into(tmp_path / "s.db", tmp_path / "b")
    assert (report.events, report.duplicates) == (1, 10)
    assert totals_by_call(tmp_path / "s.db")[ROLE]["dynamodb.amazonaws.com GetItem"]["count"] == 11


def test_duplicates_within_one_file_count_once(tmp_path):
    record = make_record()
    write_log(tmp_path / "dup.json.gz", [record, record, make_record()])
    report = mine_into(tmp_path / "s.db", tmp_path / "dup.json.gz")
    assert (report.events, report.duplicates) == (2, 1)


def test_changed_file_is_read_again_without_double_counting(tmp_path):
    old = [make_record() for _ in range(5)]
    log = write_log(tmp_path / "log.json.gz", old)
    mine_into(tmp_path / "s.db", log)
    write_log(log, old + [make_record()])  # the same file, grown by one event
    report = mine_into(tmp_path / "s.db", log)
    assert (report.changed, report.events, report.duplicates) == (1, 1, 5)
    assert totals_by_call(tmp_path / "s.db")[ROLE]["dynamodb.amazonaws.com GetItem"]["count"] == 6


def test_a_file_that_keeps_growing_counts_each_event_once_over_many_runs(tmp_path):
    records = [make_record() for _ in range(3)]
    log = write_log(tmp_path / "log.json.gz", records)
    mine_into(tmp_path / "s.db", log)
    for _ in range(2):
        records.append(make_record())
        write_log(log, records)  # the ledger row is replaced: it must keep the IDs of earlier versions
        report = mine_into(tmp_path / "s.db", log)
        assert (report.events, report.duplicates) == (1, len(records) - 1)
    assert totals_by_call(tmp_path / "s.db")[ROLE]["dynamodb.amazonaws.com GetItem"]["count"] == 5
    with UsageStore(tmp_path / "s.db") as store:  # the ledger agrees: 5 counted, none a duplicate of another input
        assert (store.totals()["events"], store.totals()["duplicates"]) == (5, 0)


def test_window_and_principal_filters(tmp_path):
    other = f"arn:aws:iam::{ACCOUNT}:role/other"
    records = [make_record(time="2026-11-01T23:59:59Z"), make_record(time="2026-11-02T12:00:00Z"),
               make_record(time="2026-11-03T00:00:00Z"), make_record(time="2026-11-02T13:00:00Z",
                                                                     identity=assumed_role(other, "x"))]
    write_log(tmp_path / "in" / "log.json.gz", records)
    options = MineOptions(window=Window(since="2026-11-02T00:00:00Z", until="2026-11-02T23:59:59Z"),
                          principals=("orders-api-role",))
    report = mine_into(tmp_path / "s.db", tmp_path / "in", options=options)
    assert (report.records, report.events, report.filtered) == (4, 1, 3)
    # The same file mined later without filters completes the picture, without double counting.
    report = mine_into(tmp_path / "s.db", tmp_path / "in")
    assert (report.events, report.duplicates) == (3, 1)
    calls = totals_by_call(tmp_path / "s.db")
    assert calls[ROLE]["dynamodb.amazonaws.com GetItem"]["count"] == 3 and other in calls


def test_files_outside_the_window_are_not_read(tmp_path):
    write_log(delivery_path(tmp_path, day="2026/10/01"), [make_record(time="2026-10-01T10:00:00Z")])
    write_log(delivery_path(tmp_path, day="2026/11/02", n=1), [make_record()])
    report = mine_into(tmp_path / "s.db", tmp_path, options=MineOptions(window=Window(since="2026-11-01T00:00:00Z")))
    assert (report.outside_window, report.mined, report.events) == (1, 1, 1)


def test_bad_inputs_are_counted_and_good_records_around_them_kept(tmp_path):
    good = [make_record(name=f"Good{i}") for i in range(20)]
    data = log_bytes(good)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "truncated.json.gz").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "in" / "not-cloudtrail.json").write_text('{"hello": "world"}')
    (tmp_path / "in" / "garbage.bin").write_bytes(b"\x00\x01\x02")
    write_log(tmp_path / "in" / "mixed.json.gz", [make_record(name="A"), {"eventVersion": "1.09"}, make_record(name="B")])
    report = mine_into(tmp_path / "s.db", tmp_path / "in", workers=2)
    assert report.events >= 3 and report.mined == 4
    paths = {Path(p.path).name for p in report.problems}
    assert paths == {"truncated.json.gz", "not-cloudtrail.json", "garbage.bin", "mixed.json.gz"}
    assert [p.record for p in report.problems if Path(p.path).name == "mixed.json.gz"] == [1]
    with UsageStore(tmp_path / "s.db") as store:
        assert len(store.problems()) == len(report.problems)


def test_nothing_readable_is_reported(tmp_path):
    (tmp_path / "junk.txt").write_text("hello")
    assert mine_into(tmp_path / "s.db", tmp_path).found_nothing


def test_stdin_is_a_source_known_by_its_content(tmp_path):
    data = log_bytes([make_record(), make_record()])
    assert mine_into(tmp_path / "s.db", StdinSource(data)).events == 2
    report = mine_into(tmp_path / "s.db", StdinSource(data))
    assert report.known == 1 and report.events == 0


KILLER = textwrap.dedent("""
    import os, signal, sys
    import lpgen.mine, lpgen.store
    from lpgen.mine import mine
    from lpgen.sources.local import LocalSource
    from lpgen.store import UsageStore

    lpgen.mine.BATCH_INPUTS = lpgen.mine.CHUNK_INPUTS = 3
    batches = 0
    write = lpgen.store.UsageStore.write_batch

    def write_then_die(self, **kw):
        global batches
        batches += 1
        if batches == 4:  # die in the middle of the fourth batch's transaction
            self._db.set_progress_handler(lambda: os.kill(os.getpid(), signal.SIGKILL), 50)
        write(self, **kw)

    lpgen.store.UsageStore.write_batch = write_then_die
    with UsageStore(sys.argv[1]) as store:
        mine([LocalSource(sys.argv[2])], store, workers=int(sys.argv[3]))
""")


@pytest.mark.parametrize("workers", [1, 2])
def test_run_killed_mid_way_leaves_a_consistent_store_that_the_next_run_completes(tmp_path, workers):
    for n in range(20):
        write_log(delivery_path(tmp_path / "logs", n=n), [make_record(name=f"Call{i % 4}") for i in range(25)])
    killed = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "killed.db"), str(tmp_path / "logs"),
                             str(workers)], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    with UsageStore(tmp_path / "killed.db") as store:
        partial = store.totals()
        assert partial["inputs"] == 9 and partial["events"] == 9 * 25  # three whole batches, nothing of the fourth
    mine_into(tmp_path / "killed.db", tmp_path / "logs", workers=workers)
    mine_into(tmp_path / "clean.db", tmp_path / "logs", workers=workers)
    with UsageStore(tmp_path / "killed.db") as a, UsageStore(tmp_path / "clean.db") as b:
        assert a.contents() == b.contents()


def test_concurrent_runs_on_one_store_are_serialised(tmp_path):
    for n in range(30):
        write_log(delivery_path(tmp_path / "logs", n=n), [make_record(name=f"Call{i % 4}") for i in range(20)])
    command = [sys.executable, "-m", "lpgen", "mine", str(tmp_path / "logs"), "--store", str(tmp_path / "shared.db"),
               "--workers", "1", "--format", "json"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
    reports = [json.loads(run.communicate(timeout=120)[0]) for run in runs]
    assert sorted(r["mined"] for r in reports) == [0, 0, 30]  # one run mined everything, the others found it mined
    mine_into(tmp_path / "alone.db", tmp_path / "logs")
    with UsageStore(tmp_path / "shared.db") as shared, UsageStore(tmp_path / "alone.db") as alone:
        assert shared.contents() == alone.contents()


def test_a_repeated_event_id_with_different_content_is_said_and_counted_once(tmp_path):
    first = make_record(name="GetItem", event_id="same-id")
    forged = make_record(name="DeleteItem", event_id="same-id")  # same eventID, another call
    again = dict(first)  # an honest second delivery: same content
    write_log(delivery_path(tmp_path / "logs"), [first, again, forged, make_record(name="Query")])
    with UsageStore(tmp_path / "s.db") as store:
        report = mine([LocalSource(tmp_path / "logs")], store)
        names = {row.name: row.count for row in store.usage()}
    assert (report.events, report.duplicates) == (2, 2)
    assert names == {"GetItem": 1, "Query": 1}  # the first occurrence counts
    (problem,) = report.problems
    assert "1 record(s) repeat an earlier eventID with a different call" in problem.reason


def test_one_aggregate_keeps_every_error_code_of_its_class_and_the_first_known_category(tmp_path):
    """Records of one key may differ in what the key leaves out: the error code within its class, and
    whether the record says its category. Within a file as across files, the aggregate holds every
    code (up to five) and the first category given, as the store merges two batches."""
    write_log(delivery_path(tmp_path / "logs"), [
        make_record(name="GetItem", errorCode="AccessDeniedException", eventCategory=None),
        make_record(name="GetItem", errorCode="AccessDenied"),
        make_record(name="GetItem", errorCode="AccessDeniedException")])
    with UsageStore(tmp_path / "s.db") as store:
        mine([LocalSource(tmp_path / "logs")], store)
        (row,) = store.usage()
    assert (row.error_class, row.count) == (DENIED, 3)
    assert row.error_codes == ("AccessDenied", "AccessDeniedException")
    assert row.category == "Data"


def test_an_event_in_the_future_is_kept_and_said(tmp_path):
    write_log(delivery_path(tmp_path / "logs"), [make_record(name="GetItem", time="2099-01-01T00:00:00Z"),
                                                 make_record(name="Query")])
    with UsageStore(tmp_path / "s.db") as store:
        report = mine([LocalSource(tmp_path / "logs")], store)
        assert {row.name for row in store.usage()} == {"GetItem", "Query"}
    (problem,) = report.problems
    assert problem.record == 0 and "eventTime 2099-01-01T00:00:00Z is in the future" in problem.reason


def test_unusable_event_times_are_said_per_record_and_the_rest_mined(tmp_path):
    """Mining checks a file's times at once on their concatenation; an empty time or two times run
    together must still be told apart per record, each in a file of otherwise good records."""
    for n, bad in enumerate(["", "2026-11-02T08:15:00Z2026-11-02T08:15:00Z"]):
        write_log(delivery_path(tmp_path / "logs", n=n), [
            make_record(name="GetItem"), make_record(name=f"Bad{n}", time=bad), make_record(name="Query")])
    write_log(delivery_path(tmp_path / "logs", n=2), [
        make_record(name="Scan", time="2026-11-02T08:15:00.123+01:00")])  # an unusual form, made canonical
    with UsageStore(tmp_path / "s.db") as store:
        report = mine([LocalSource(tmp_path / "logs")], store)
        rows = {row.name: row for row in store.usage()}
    assert set(rows) == {"GetItem", "Query", "Scan"} and rows["GetItem"].count == 2
    assert rows["Scan"].first_seen == "2026-11-02T07:15:00Z"
    assert sorted((p.record, p.reason.split(" ")[0]) for p in report.problems) == [(1, "no"), (1, "unparseable")]


def test_a_100_mb_record_is_mined_with_the_rest_of_its_file(tmp_path):
    big = make_record(name="PutItem", params={"tableName": "orders", "item": {"payload": {"S": "x" * 100_000_000}}})
    write_log(delivery_path(tmp_path / "logs"), [make_record(name="GetItem"), big, make_record(name="Query")])
    with UsageStore(tmp_path / "s.db") as store:
        report = mine([LocalSource(tmp_path / "logs")], store)
        rows = {row.name: row for row in store.usage()}
    assert report.events == 3 and not report.problems
    assert set(rows) == {"GetItem", "PutItem", "Query"}
    assert ("tableName", "orders") in rows["PutItem"].fields  # the payload is not kept, the table is


WORKER_PROBE = textwrap.dedent("""
    import json, sys
    from lpgen.catalog import load_catalog
    from lpgen.mine import MineOptions, mine_bytes
    from lpgen.sources.base import Blob
    data = open(sys.argv[1], "rb").read()
    result = mine_bytes(data, Blob(key=sys.argv[1]), MineOptions())
    print(json.dumps({"events": result.events, "catalogue_loaded": load_catalog.cache_info().currsize}))
""")


def test_mining_workers_never_load_the_catalogue(tmp_path):
    """Workers aggregate calls; mapping (and its 20 MB catalogue) waits for the parent's readers.
    Versioned Lambda eventNames (CreateFunction20150331) once pulled it in through the created-resource table."""
    path = write_log(tmp_path / "f.json.gz", [
        make_record(source="lambda.amazonaws.com", name="CreateFunction20150331", params={"functionName": "f"},
                    responseElements={"functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:f"}),
        make_record(source="lambda.amazonaws.com", name="GetFunction20150331v2", params={"functionName": "f"})])
    out = subprocess.run([sys.executable, "-c", WORKER_PROBE, str(path)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {"events": 2, "catalogue_loaded": 0}


def test_de_duplication_forgets_days_no_later_input_can_repeat():
    from lpgen.mine import SeenIds

    seen = SeenIds(by_day=True)
    for day in range(1, 11):
        seen.advance(f"2026-11-{day:02d}")
        seen.add(f"2026-11-{day:02d}", {day * 100 + i for i in range(5)})
        seen.loaded(f"2026-11-{day:02d}", f"input-{day}")
    assert len(seen) == 15 and seen.loaded_keys() == {"input-8", "input-9", "input-10"}  # days 8, 9, 10 kept
    assert 1000 in seen and 800 in seen and 700 not in seen
    unordered = SeenIds(by_day=False)  # inputs without a delivery day: nothing is ever forgotten
    for day in range(1, 11):
        unordered.advance(f"2026-11-{day:02d}")
        unordered.add(f"2026-11-{day:02d}", {day})
    assert len(unordered) == 10


def test_org_and_account_trails_over_many_days_count_each_event_once(tmp_path):
    """Twelve days of an organisation trail and an account trail delivering the same events, one of
    them across midnight into the next day's folder: the day-bounded memory still drops every repeat."""
    logs = tmp_path / "AWSLogs"
    unique = 0
    for day in range(1, 13):
        stamp = f"2026/11/{day:02d}"
        records = [make_record(name=f"Call{i}", time=f"2026-11-{day:02d}T{10 + i}:00:00Z") for i in range(4)]
        unique += len(records)
        write_log(delivery_path(logs, day=stamp), records)
        write_log(delivery_path(logs, day=stamp, org="o-a1b2c3d4e5"), records)
    midnight = make_record(name="LateCall", time="2026-11-05T23:59:30Z")
    write_log(delivery_path(logs, day="2026/11/05", n=1), [midnight])  # the account trail: same day
    write_log(delivery_path(logs, day="2026/11/06", n=1, org="o-a1b2c3d4e5"), [midnight])  # the org trail: next day
    unique += 1
    with UsageStore(tmp_path / "s.db") as store:
        report = mine([LocalSource(logs)], store, workers=2)
        total = sum(row.count for row in store.usage())
    assert (report.events, report.duplicates, total) == (unique, unique, unique)


def test_mining_creates_no_reference_cycles():
    """Mining pauses the cyclic garbage collector (a fifth of a worker's time went to re-scanning its
    memos), which is sound only while mining frees everything by reference counting: a recursive
    closure, for one, is a cycle per call. The demo covers every kind of record, the bad ones too."""
    import gc

    from lpgen.mine import _mine_chunk

    source = LocalSource(DEMO_LOGS)
    blobs = source.list().blobs
    gc.collect()
    gc.disable()
    try:
        partial = _mine_chunk(source, MineOptions(), blobs)
        assert sum(one.events for one in partial.inputs) > 1000
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_the_memo_hashes_a_usage_key_as_the_store_does():
    """Mining hashes a key from its caller's prefix joined once; push-down and the store use
    row_hash on the whole key. The two must agree, or the same aggregate gets two rows."""
    from lpgen.mine import _CallerSlot, _Memo
    from lpgen.store import row_hash

    prefix = ("arn:aws:iam::123456789012:role/ci/deployer", "s3.amazonaws.com", "GetObject", "ok", "eu-west-1", "")
    who = _CallerSlot(prefix=prefix, joined="\x00".join(prefix) + "\x00")
    fields = '[["key","a/b.json"],["bucketName","b"]]'
    h, _, key = _Memo._keyed(who, fields)
    assert key == (*prefix, fields) and h == row_hash(key)


def test_event_ids_are_hashed_as_the_ledger_of_earlier_runs_holds_them():
    """The ledger keeps XXH3 of each eventID as a signed 64-bit integer; a store mined by an
    earlier version must still recognise the events it counted."""
    import xxhash

    from lpgen.mine import event_id_hashes

    eids = ["a9b8c7d6-0000-4000-8000-000000000001", "ffffffff-ffff-4fff-bfff-ffffffffffff", "x"]
    expected = [(h ^ (1 << 63)) - (1 << 63) for h in map(xxhash.xxh3_64_intdigest, map(str.encode, eids))]
    assert list(event_id_hashes(eids)) == expected
    assert len(event_id_hashes([])) == 0
