"""Time `lpgen mine s3://...` against moto's S3 server, at two archive sizes, to show memory flat in size.

    python bench/s3.py --events 100000 --files 200            # and an archive twice the size
    python bench/s3.py --archive DIR --archive DIR2           # existing archives in the S3 delivery layout

Each archive (bench/gen_archive.py unless given) is uploaded to a bucket of moto's server,
run in its own process on 127.0.0.1 so that serving S3 is not counted in lpgen's memory.
Then, per archive, fresh processes as a user runs them:

- `lpgen mine DIR`: the same archive from local disk, for comparison;
- `lpgen mine s3://bucket`: listing and streaming every object into a new store;
- `lpgen mine s3://bucket` again: the ledger knows every object (nothing is read);
- `lpgen mine s3://bucket --cache DIR` into a new store (downloads and fills the cache),
  then into another new store (every object read from the cache, none from S3).

Peak RSS is the highest resident set (VmHWM) of the parent and of each worker, sampled
from /proc. The server runs on the same machine and shares its CPUs: the figures measure
lpgen's side of the conversation, not S3's throughput.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import requests
from run import HERE, lpgen_mine, store_digest  # bench/run.py, beside this script

BUCKET = "bench-trail"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"{endpoint}/moto-api/", timeout=1)
            return server, endpoint
        except requests.ConnectionError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto's server did not start")


def upload(archive: Path, endpoint: str, bucket: str) -> tuple[int, int]:
    """Every file of the archive under its path relative to the archive; (objects, bytes)."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    count = size = 0
    for path in sorted(p for p in archive.rglob("*") if p.is_file()):
        data = path.read_bytes()
        s3.put_object(Bucket=bucket, Key=path.relative_to(archive).as_posix(), Body=data)
        count, size = count + 1, size + len(data)
    return count, size


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def rss(peaks: dict[str, int]) -> str:
    workers = sorted(v for k, v in peaks.items() if k != "parent")
    mined_in = ("workers " + ", ".join(f"{v / 2**20:,.0f}" for v in workers) + " MB" if workers
                else "no workers (one chunk: mined in the parent)")
    return f"parent {peaks['parent'] / 2**20:,.0f} MB, {mined_in}"


def measure(archive: Path, endpoint: str, bucket: str, work: Path, workers: int) -> list[tuple[str, str]]:
    objects, size = upload(archive, endpoint, bucket)
    url, remote = f"s3://{bucket}", ("--endpoint-url", endpoint)
    local_s, local, local_peaks = lpgen_mine(archive, fresh(work / "local.db"), workers)
    s3_s, report, peaks = lpgen_mine(url, fresh(work / "s3.db"), workers, *remote)
    again_s, again, _ = lpgen_mine(url, work / "s3.db", workers, *remote)
    cache = work / f"cache-{bucket}"
    fill_s, _, fill_peaks = lpgen_mine(url, fresh(work / "fill.db"), workers, *remote, "--cache", str(cache))
    warm_s, warm, _ = lpgen_mine(url, fresh(work / "warm.db"), workers, *remote, "--cache", str(cache))
    events = report["records"]
    same = store_digest(work / "s3.db")[0] == store_digest(work / "local.db")[0] == store_digest(work / "warm.db")[0]
    return [
        ("archive", f"{objects:,} objects, {size / 1e6:,.1f} MB gzipped, {events:,} events"),
        (f"lpgen mine DIR (local disk), --workers {workers}",
         f"{local_s:.2f} s, {local['records'] / local_s:,.0f} events/s; {rss(local_peaks)}"),
        (f"lpgen mine s3://, --workers {workers}", f"{s3_s:.2f} s, {events / s3_s:,.0f} events/s; {rss(peaks)}"),
        ("usage table equal: local disk, s3://, warm cache", str(same)),
        ("second run, unchanged bucket", f"{again_s:.2f} s, {again['mined']} objects read"),
        ("--cache DIR, cold (fills the cache)", f"{fill_s:.2f} s; {rss(fill_peaks)}"),
        ("--cache DIR, warm, into a new store", f"{warm_s:.2f} s, {warm['records'] / warm_s:,.0f} events/s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, action="append", help="an existing archive (repeat for two sizes)")
    parser.add_argument("--events", type=int, default=100_000, help="events of the smaller generated archive")
    parser.add_argument("--files", type=int, default=200, help="files of the smaller generated archive")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, help="where to put generated archives, stores and caches")
    a = parser.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="lpgen-bench-s3-"))
    work.mkdir(parents=True, exist_ok=True)
    archives = a.archive
    if not archives:
        archives = []
        for factor in (1, 2):  # twice the events in twice the files: the same file size
            out = work / f"archive-{a.events * factor}"
            if not out.exists():
                subprocess.run([sys.executable, str(HERE / "gen_archive.py"), "--events", str(a.events * factor),
                                "--files", str(a.files * factor), "--out", str(out)], check=True)
            archives.append(out)
    os.environ.update(CREDENTIALS)
    server, endpoint = start_server()
    try:
        results = [measure(archive, endpoint, f"{BUCKET}-{i}", work, a.workers) for i, archive in enumerate(archives)]
    finally:
        server.terminate()
        server.wait()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"moto's S3 server on 127.0.0.1 (same machine)\n")
    print("| measure | " + " | ".join(a.name for a in archives) + " |")
    print("|---" * (len(archives) + 1) + "|")
    for i, (name, _) in enumerate(results[0]):
        print(f"| {name} | " + " | ".join(r[i][1] for r in results) + " |")


if __name__ == "__main__":
    main()
