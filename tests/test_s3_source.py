"""Mining a trail bucket through S3 (moto's server, real HTTP): the same result as the local copy,
listing only the days, accounts and regions asked for, incremental by key and ETag."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner

from lpgen.aws import client_factory
from lpgen.cli import main
from lpgen.filters import Window
from lpgen.mine import MineOptions, mine
from lpgen.sources.cache import ObjectCache
from lpgen.sources.s3 import S3Source
from lpgen.store import UsageStore

from .conftest import DEMO, log_bytes, make_record, moto_server, seed

TRUTH = json.loads((DEMO / "truth.json").read_text())


@pytest.fixture(scope="module")
def bucket():
    with moto_server() as endpoint:
        s3 = seed("s3", endpoint)
        s3.create_bucket(Bucket="trail")
        for path in sorted((DEMO / "AWSLogs").rglob("*.json.gz")):
            relative = path.relative_to(DEMO).as_posix()
            org = relative.replace("AWSLogs/210987654321/", "AWSLogs/o-abcdef1234/210987654321/")
            for key in (f"account/{relative}", f"both/{relative}", f"both/{org}"):
                s3.put_object(Bucket="trail", Key=key, Body=path.read_bytes())
        yield {"endpoint_url": endpoint}


def mine_s3(tmp_path, url, options=MineOptions(), workers=2, **kwargs):
    with UsageStore(tmp_path / "s.db") as store:
        source = S3Source(url, window=options.window, client_options=kwargs.pop("client"), **kwargs)
        return mine([source], store, options, workers=workers), store.totals()


def test_bucket_mines_like_the_local_copy_and_never_lists_digests(bucket, tmp_path):
    report, totals = mine_s3(tmp_path, "s3://trail/account", client=bucket)
    assert not report.problems
    assert totals["events"] == TRUTH["events"] and report.inputs == TRUTH["log_files"]  # CloudTrail-Digest/ unlisted
    again, _ = mine_s3(tmp_path, "s3://trail/account", client=bucket)
    assert again.mined == 0 and again.known == TRUTH["log_files"]


def test_organisation_and_account_trails_count_each_event_once(bucket, tmp_path):
    report, totals = mine_s3(tmp_path, "s3://trail/both", client=bucket)
    assert totals["events"] == TRUTH["events"] and report.duplicates == TRUTH["events"]


def test_only_the_window_days_are_listed(bucket):
    source = S3Source("s3://trail/account", window=Window(since="2026-11-05T00:00:00Z", until="2026-11-05T23:59:59Z"),
                      client_options=bucket)
    days = {p.rstrip("/").rsplit("/", 3)[-3:][-1] for p in source.day_prefixes()}
    assert days == {"04", "05", "06"}
    assert {b.day for b in source.list().blobs} <= {"2026-11-04", "2026-11-05", "2026-11-06"}


def test_region_filter_keeps_us_east_1_for_global_services(bucket):
    source = S3Source("s3://trail/account", regions=("eu-west-1",), client_options=bucket)
    assert {p.split("/CloudTrail/")[1].split("/")[0] for p in source.day_prefixes()} == {"eu-west-1", "us-east-1"}


def test_account_filter_and_missing_layout_are_reported(bucket):
    assert S3Source("s3://trail/account", accounts=("999999999999",), client_options=bucket).list().problems
    listing = S3Source("s3://no-such-bucket", client_options=bucket).list()
    assert "cannot list" in listing.problems[0].reason and "NoSuchBucket" in listing.problems[0].reason


def test_mine_command_reads_s3(bucket, tmp_path):
    result = CliRunner().invoke(main, ["mine", "s3://trail/account", "--store", str(tmp_path / "c.db"),
                                       "--endpoint-url", bucket["endpoint_url"], "--format", "json",
                                       "--since", "2026-11-02", "--until", "2026-11-03"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["events"] > 0


def counting(endpoint: str, counter: Counter):
    """A client factory whose S3 clients count the GetObject requests they send."""
    make = client_factory(endpoint_url=endpoint)

    def factory(service):
        client = make(service)
        client.meta.events.register("before-send.s3.GetObject", lambda **_: counter.update(["GetObject"]))
        return client

    return factory


def mine_cached(store_path, url, endpoint, cache, counter):
    # One worker: the counting client lives in this process (a worker would make its own).
    with UsageStore(store_path) as store:
        source = S3Source(url, client_factory=counting(endpoint, counter), cache=cache)
        report = mine([source], store, workers=1)
        return report, sorted(store.usage(include_service=True), key=repr), store.totals()["events"]


def test_cache_serves_a_second_mine_into_a_fresh_store_without_any_get_object(bucket, tmp_path):
    first, second = Counter(), Counter()
    report, usage, _ = mine_cached(tmp_path / "a.db", "s3://trail/account", bucket["endpoint_url"], tmp_path / "c",
                                   first)
    assert first["GetObject"] == report.mined == TRUTH["log_files"]
    again, usage_again, events = mine_cached(tmp_path / "b.db", "s3://trail/account", bucket["endpoint_url"],
                                             tmp_path / "c", second)
    assert second["GetObject"] == 0 and again.mined == TRUTH["log_files"]
    assert usage_again == usage and events == TRUTH["events"]
    cached = [p for p in (tmp_path / "c" / "trail").rglob("*") if p.is_file()]
    assert len(cached) == TRUTH["log_files"] and not [p for p in cached if p.name.startswith(".")]  # no temporaries


def test_a_stale_cache_entry_is_downloaded_again(bucket, tmp_path):
    records = [make_record(), make_record()]
    key = ("AWSLogs/123456789012/CloudTrail/eu-west-1/2026/11/02/"
           "123456789012_CloudTrail_eu-west-1_20261102T0815Z_a.json.gz")
    counter = Counter()
    endpoint = bucket["endpoint_url"]
    s3 = seed("s3", endpoint)
    s3.create_bucket(Bucket="rewritten")
    s3.put_object(Bucket="rewritten", Key=key, Body=log_bytes(records))
    mine_cached(tmp_path / "a.db", "s3://rewritten", endpoint, tmp_path / "c", counter)
    s3.put_object(Bucket="rewritten", Key=key, Body=log_bytes([*records, make_record()]))  # a new ETag
    _, _, events = mine_cached(tmp_path / "b.db", "s3://rewritten", endpoint, tmp_path / "c", counter)
    etag = s3.head_object(Bucket="rewritten", Key=key)["ETag"].strip('"')
    assert counter["GetObject"] == 2 and events == 3
    (entry,) = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]  # the old version's entry is gone
    assert entry.name == f"{key.rsplit('/', 1)[1]}#{etag}"


def test_cache_entries_are_whole_and_inside_the_cache(tmp_path, monkeypatch):
    cache = ObjectCache(tmp_path / "c")
    cache.put("b", "a/log.json.gz", "e1", b"12345")
    assert cache.get("b", "a/log.json.gz", "e1", 5) == b"12345"
    assert cache.get("b", "a/log.json.gz", "e1", 6) is None  # not the object's size: read from S3 again
    assert cache.get("b", "a/log.json.gz", "e2", 5) is None
    assert cache.path("b", "../../outside", "e1").is_relative_to(tmp_path / "c" / "b")

    def killed(*_):
        raise OSError("No space left on device")

    monkeypatch.setattr("lpgen.sources.cache.os.replace", killed)
    cache.put("b", "a/other.json.gz", "e1", b"12345")  # the write fails: no entry, no temporary file
    assert sorted(p.name for p in (tmp_path / "c" / "b" / "a").iterdir()) == ["log.json.gz#e1"]


def test_an_unusable_cache_directory_is_a_clean_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(main, ["mine", "s3://trail", "--store", str(tmp_path / "c.db"),
                                       "--cache", str(tmp_path / "a-file" / "cache")])
    assert result.exit_code == 1 and "cannot use" in result.output and "Traceback" not in result.output
