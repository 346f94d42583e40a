"""Mining a trail bucket through S3 (moto's server, real HTTP): the same result as the local copy,
listing only the days, accounts and regions asked for, incremental by key and ETag."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from lpgen.cli import main
from lpgen.filters import Window
from lpgen.mine import MineOptions, mine
from lpgen.sources.s3 import S3Source
from lpgen.store import UsageStore

from .conftest import DEMO, moto_server, seed

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
