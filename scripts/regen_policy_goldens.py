"""Rewrite the golden policies of the demo account: ``fixtures/demo/policies.expected.json``.

    python scripts/regen_policy_goldens.py [--check]

Mines ``fixtures/demo/AWSLogs`` into a temporary store and generates every principal's
policy with default options. The goldens are reviewed by hand: regenerate only for an
intended change, and read the diff. ``--check`` exits 1 when the goldens are stale.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from lpgen.generate import generate
from lpgen.mine import mine
from lpgen.sources.local import LocalSource
from lpgen.store import UsageStore

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
GOLDEN = DEMO / "policies.expected.json"


def current() -> str:
    with tempfile.TemporaryDirectory() as tmp, UsageStore(Path(tmp) / "usage.db") as store:
        mine([LocalSource(DEMO / "AWSLogs")], store)
        policies = generate(store.usage(include_service=True))
    return json.dumps({p: g.document() for p, g in policies.items()}, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    text = current()
    if "--check" in argv:
        stale = not GOLDEN.exists() or GOLDEN.read_text() != text
        print("stale: run python scripts/regen_policy_goldens.py" if stale else "up to date")
        return int(stale)
    GOLDEN.write_text(text)
    print(f"wrote {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
