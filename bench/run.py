"""Time `lpgen mine` against a parse-only baseline on the same archive, in the same run.

    python bench/run.py --generate 1000000 --files 2000          # with bench/gen_archive.py
    python bench/run.py --archive DIR                             # any archive, e.g. one from shared/tools/gen_trail.py

The baseline decompresses every file with the standard library's gzip and parses
it with orjson in as many processes as lpgen has workers: the cost of reading the
archive at all. lpgen's figure is for `lpgen mine --workers N` into a new store,
as a user runs it (a fresh process, listing, mining, committing). Peak memory is
the highest resident set (VmHWM) of any lpgen process, sampled from /proc.
A second `lpgen mine` over the unchanged archive must change nothing.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent


def _parse(path: str) -> int:
    with open(path, "rb") as f:
        return len(orjson.loads(gzip.decompress(f.read()))["Records"])


def baseline(files: list[str], workers: int) -> tuple[float, int]:
    started = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        events = sum(pool.imap_unordered(_parse, files, chunksize=4))
    return time.perf_counter() - started, events


def _peak_rss(pid: int, peaks: dict[int, int], stop: threading.Event) -> None:
    """Sample VmHWM of ``pid`` and its children until ``stop``."""
    while not stop.is_set():
        for p in [pid, *_children(pid)]:
            try:
                for line in Path(f"/proc/{p}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[p] = max(peaks.get(p, 0), int(line.split()[1]) * 1024)
            except OSError:
                pass
        stop.wait(0.05)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def lpgen_mine(source: Path | str, store: Path, workers: int, *options: str) -> tuple[float, dict, dict[str, int]]:
    """Run `lpgen mine SOURCE` as a user does; its time, JSON report, and peak RSS per process."""
    cmd = [sys.executable, "-m", "lpgen", "mine", str(source), "--store", str(store), "--workers", str(workers),
           "--format", "json", *options]
    peaks: dict[int, int] = {}
    stop = threading.Event()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sampler = threading.Thread(target=_peak_rss, args=(proc.pid, peaks, stop))
    sampler.start()
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"lpgen mine failed ({proc.returncode}): {err.decode()[-2000:]}")
    peaks.setdefault(proc.pid, 0)
    return elapsed, json.loads(out), {"parent": peaks.pop(proc.pid), **{f"worker {p}": v for p, v in peaks.items()}}


def store_digest(store: Path) -> list:
    db = sqlite3.connect(store)
    try:
        return [list(db.execute(f"SELECT * FROM {t} ORDER BY 1")) for t in ("usage", "principals", "coverage", "inputs")]
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--archive", type=Path, help="an existing archive directory")
    source.add_argument("--generate", type=int, metavar="EVENTS", help="generate an archive of this many events")
    parser.add_argument("--files", type=int, default=2000, help="files when generating")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", type=Path, help="where to put the generated archive and the store")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="alternate baseline and lpgen N times; report the best of each and every pair's ratio "
                             "(a shared or throttled machine varies by tens of percent between minutes)")
    a = parser.parse_args()
    work = a.work or Path(tempfile.mkdtemp(prefix="lpgen-bench-"))
    archive = a.archive
    if archive is None:
        archive = work / "archive"
        subprocess.run([sys.executable, str(HERE / "gen_archive.py"), "--events", str(a.generate), "--files",
                        str(a.files), "--out", str(archive)], check=True)
    files = sorted(str(p) for p in archive.rglob("*.json.gz") if "CloudTrail-Digest" not in str(p))
    size = sum(os.path.getsize(f) for f in files)

    store = work / "bench.db"
    pairs, peaks = [], {}
    for _ in range(max(a.repeat, 1)):
        base_s, events = baseline(files, a.workers)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
        mine_s, report, run_peaks = lpgen_mine(archive, store, a.workers)
        pairs.append((base_s, mine_s))
        for k, v in run_peaks.items():  # "parent", "worker PID": the highest of each role over the runs
            role = "parent" if k == "parent" else "each worker"
            peaks[role] = max(peaks.get(role, 0), v)
    base_s, mine_s = min(b for b, _ in pairs), min(m for _, m in pairs)
    before = store_digest(store)
    again_s, again, _ = lpgen_mine(archive, store, a.workers)
    unchanged = store_digest(store) == before and again["mined"] == 0

    base_rate, mine_rate = events / base_s, report["records"] / mine_s
    rows = [
        ("machine", f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"),
        ("archive", f"{archive} ({len(files):,} files, {size / 1e6:,.1f} MB gzipped, {events:,} events)"),
        ("baseline: gzip + orjson, %d processes" % a.workers, f"{base_s:.2f} s, {base_rate:,.0f} events/s"),
        ("lpgen mine --workers %d" % a.workers, f"{mine_s:.2f} s, {mine_rate:,.0f} events/s"),
        ("ratio lpgen / baseline", f"{mine_rate / base_rate:.2f}" + (
            f" (best of {len(pairs)} each; per pair: {', '.join(f'{b / m:.2f}' for b, m in pairs)})"
            if len(pairs) > 1 else "")),
        ("aggregates in the store", f"{len(before[0]):,}"),
        ("peak RSS", ", ".join(f"{k} {v / 2**20:,.0f} MB" for k, v in peaks.items())),
        ("second run, unchanged archive", f"{again_s:.2f} s, store unchanged: {unchanged}"),
    ]
    print("| measure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
