"""The benchmark scripts keep working as lpgen changes (their figures are in bench/RESULTS.md; no test times anything)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEMO_LOGS = ROOT / "fixtures" / "demo" / "AWSLogs"


@pytest.mark.parametrize("part", ["nothing", "gunzip", "parse", "worker", "pickling", "whole"])
def test_every_part_that_instructions_py_counts_runs_on_a_real_archive(part):
    """bench/instructions.py runs each part under valgrind; here each runs plainly, on the demo archive,
    so a change to mining's functions cannot leave the tool broken until someone next measures."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "instructions.py"), "--child", part,
                           "--archive", str(DEMO_LOGS)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_instructions_py_measures_the_first_inputs_of_the_archive_in_its_layout(tmp_path):
    """The subset keeps the S3 delivery layout (delivery days order the inputs) and leaves digests out."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import instructions
    finally:
        sys.path.remove(str(ROOT / "bench"))
    assert len(instructions._subset(DEMO_LOGS, 3, tmp_path / "three")) == 3
    subset = tmp_path / "all"
    inputs = instructions._subset(DEMO_LOGS, 10_000, subset)
    assert any(DEMO_LOGS.rglob("CloudTrail-Digest/**/*.json.gz"))  # the archive has digests to leave out
    assert inputs and not any("CloudTrail-Digest" in p.parts for p in inputs)
    links = sorted(subset.rglob("*.json.gz"))
    assert [p.relative_to(subset) for p in links] == [p.relative_to(DEMO_LOGS) for p in inputs]
    assert all(link.resolve() == source.resolve() for link, source in zip(links, inputs, strict=True))
