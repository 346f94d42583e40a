"""Rewrite the golden outputs of the mapping cases in ``fixtures/mapping/``.

Each case ``fixtures/mapping/<NN>-<case>.json`` is a CloudTrail delivery file
(``{"Records": [...]}``) for one row of the table of hard mapping cases. Its
golden ``<NN>-<case>.expected.json`` lies beside it: for each record, in order,
``lpgen.mapping.mapping_dict`` of the record's mapping with the record's
``eventID`` added. ``tests/test_mapping_cases.py`` compares the engine's current
output with these files, so a change to the engine or its tables that changes
what a case maps to shows up as a diff of the goldens, to be reviewed and
committed with the change.

Regenerate every golden (from the repository root)::

    python scripts/regen_mapping_goldens.py

Only some cases (file names starting with the given prefixes)::

    python scripts/regen_mapping_goldens.py 04 12

Check without writing (exit status 1 and the stale files listed if any differ)::

    python scripts/regen_mapping_goldens.py --check
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lpgen.mapping import map_record, mapping_dict

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "fixtures" / "mapping"
GOLDEN_SUFFIX = ".expected.json"


def case_files(directory: Path = CASES) -> list[Path]:
    """The case fixtures (not their goldens), in case order."""
    return sorted(p for p in directory.glob("*.json") if not p.name.endswith(GOLDEN_SUFFIX))


def golden_path(case: Path) -> Path:
    return case.with_name(case.name[: -len(".json")] + GOLDEN_SUFFIX)


def golden(case: Path) -> list[dict[str, Any]]:
    """What the engine makes of each record of ``case``: its mapping and its eventID."""
    records = json.loads(case.read_text(encoding="utf-8"))["Records"]
    out = []
    for record in records:
        _, mapping = map_record(record)
        out.append({"eventID": record.get("eventID"), **mapping_dict(mapping)})
    return out


def render(entries: list[dict[str, Any]]) -> str:
    return json.dumps(entries, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("prefixes", nargs="*", help="only the cases whose file name starts with one of these")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a golden is stale")
    args = parser.parse_args(argv)

    cases = [c for c in case_files() if not args.prefixes or c.name.startswith(tuple(args.prefixes))]
    if not cases:
        print(f"no case matches {args.prefixes} in {CASES}", file=sys.stderr)
        return 2
    stale = []
    for case in cases:
        text = render(golden(case))
        target = golden_path(case)
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(target)
        if not args.check:
            target.write_text(text, encoding="utf-8")
    verb = "stale" if args.check else "rewritten"
    for path in stale:
        print(f"{verb}: {path.relative_to(ROOT)}")
    print(f"{len(cases)} case(s), {len(stale)} golden(s) {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
