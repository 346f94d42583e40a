"""Count the CPU instructions per event of the parse-only baseline and of each part of `lpgen mine`.

    python bench/instructions.py --archive DIR --files 100      # needs valgrind (Debian: apt install valgrind)

Wall-clock figures on a shared virtual machine drift by tens of percent from one minute
to the next (see RESULTS.md), which hides a change of a few percent. Instructions, counted
by valgrind's callgrind, do not drift: the same code on the same files gives the same count
to a fraction of a percent. They are not time (Python's interpreter does less per cycle than
zlib or orjson, so lpgen's share of the time is larger than its share of instructions), but
they say at once whether a change made a part cheaper or dearer.

Each part runs in its own process under callgrind, on the first ``--files`` inputs of the
archive (after the same warm-up), and the same process without the measured part is
subtracted, so imports and set-up cancel out:

- baseline: stdlib gunzip, then orjson's full parse (what bench/run.py times);
- lpgen worker: reading, gunzip and mining the inputs in chunks, as a worker process does;
- lpgen pickling: sending each chunk's partial to the parent and reading it back;
- lpgen parent: merging, de-duplication and writing the store (a whole in-process run, minus the worker part).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

PARTS = ("nothing", "gunzip", "parse", "worker", "pickling", "whole")


def _subset(archive: Path, files: int, into: Path) -> list[Path]:
    """Links to the first ``files`` inputs of ``archive``, in its layout, under ``into``."""
    inputs = sorted(p for p in archive.rglob("*.json.gz") if "CloudTrail-Digest" not in p.parts)[:files]
    for path in inputs:
        link = into / path.relative_to(archive)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(path.resolve())
    return inputs


def child(part: str, tree: Path) -> None:
    """Run one part over the subset ``tree`` (inside callgrind)."""
    from lpgen import mine as m
    from lpgen.sources.local import LocalSource
    from lpgen.store import UsageStore

    gc.disable()
    source = LocalSource(tree)
    blobs = source.list().blobs
    m.mine_chunk(source, m.MineOptions(), blobs[:2])  # warm-up: lazy imports, data files, first callers
    m._memo = None
    chunks = [blobs[i:i + m.CHUNK_INPUTS] for i in range(0, len(blobs), m.CHUNK_INPUTS)]
    if part in ("gunzip", "parse"):
        for blob in blobs:
            data = gzip.decompress(Path(blob.key).read_bytes())
            if part == "parse":
                orjson.loads(data)
    elif part in ("worker", "pickling"):
        for chunk in chunks:
            partial = m.mine_chunk(source, m.MineOptions(), chunk)
            if part == "pickling":
                pickle.loads(pickle.dumps(partial, protocol=pickle.HIGHEST_PROTOCOL))
    elif part == "whole":
        with tempfile.TemporaryDirectory() as tmp, UsageStore(Path(tmp) / "usage.db") as store:
            m.mine([source], store, m.MineOptions(), workers=1)


def _instructions(part: str, tree: Path) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
         "--child", part, "--archive", str(tree)],
        capture_output=True, text=True, check=True).stderr
    return int(re.search(r"Collected : (\d+)", out).group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True, help="an archive in the S3 delivery layout")
    parser.add_argument("--files", type=int, default=100, help="inputs to measure (callgrind runs ~50x slower)")
    parser.add_argument("--child", choices=PARTS, help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.child:
        child(a.child, a.archive)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "subset"
        inputs = _subset(a.archive, a.files, tree)
        events = sum(len(orjson.loads(gzip.decompress(p.read_bytes()))["Records"]) for p in inputs)
        count = {part: _instructions(part, tree) for part in PARTS}
    per = {part: (n - count["nothing"]) / events for part, n in count.items()}
    baseline = per["parse"]
    worker, pickling, whole = per["worker"], per["pickling"] - per["worker"], per["whole"]
    parent = whole - worker
    rows = [
        ("baseline: stdlib gunzip", per["gunzip"]),
        ("baseline: + orjson full parse", baseline),
        ("lpgen: worker (read, gunzip, decode, mine)", worker),
        ("lpgen: pickling partials to the parent and back", pickling),
        ("lpgen: parent (merge, de-duplicate, SQLite)", parent),
        ("lpgen: total", worker + pickling + parent),
    ]
    print(f"{len(inputs):,} inputs, {events:,} events; instructions per event (callgrind)\n")
    print("| part | instructions per event |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:,.0f} |")
    print(f"| ratio baseline / lpgen | {baseline / (worker + pickling + parent):.2f} |")


if __name__ == "__main__":
    main()
