"""The ratchet: every botocore operation is mapped, except a reviewed baseline.

A catalogue or table change that maps a new operation, or loses one, fails here
until `tests/data/unmapped_operations.json` is updated in the same change, so
the difference is reviewed rather than silent.
"""

from __future__ import annotations

import functools
import json

from lpgen.catalog import load_catalog
from lpgen.data_files import load
from lpgen.mapping import UNKNOWN, Call, map_call

from .conftest import ROOT

BASELINE = ROOT / "tests" / "data" / "unmapped_operations.json"


@functools.cache
def every_operation() -> dict[str, tuple[str, str]]:
    """"service:Operation" → (eventSource, eventName) for every botocore operation lpgen knows a source for."""
    catalog = load_catalog()
    out = {}
    for source, entry in load("event_sources.json")["sources"].items():
        for service in [entry.get("botocore"), *entry.get("also", [])]:
            if service:
                for op in catalog.botocore_operations(service):
                    out.setdefault(f"{service}:{op}", (source, op))
    return out


@functools.cache
def unmapped_now() -> frozenset[str]:
    catalog = load_catalog()
    return frozenset(key for key, (source, op) in every_operation().items()
                     if map_call(Call(source=source, name=op), catalog).status == UNKNOWN)


def baseline() -> dict[str, str]:
    return json.loads(BASELINE.read_text())["operations"]


def test_no_operation_became_unmapped():
    new = sorted(unmapped_now() - set(baseline()))
    assert not new, f"{len(new)} operations lost their mapping or are new and unmapped: {new[:20]}"


def test_no_baseline_entry_is_mapped_now():
    fixed = sorted(set(baseline()) - unmapped_now())
    assert not fixed, f"now mapped, remove from {BASELINE.name}: {fixed[:20]}"


def test_every_baseline_entry_has_a_reason():
    assert all(reason.strip() for reason in baseline().values())


def test_baseline_holds_under_two_percent_of_operations():
    """Holds because the catalogue pairs the SAR snapshot with the botocore of its date (build_catalog.py)."""
    share = len(baseline()) / len(every_operation())
    assert share < 0.02, f"{len(baseline())} of {len(every_operation())} operations unmapped ({share:.1%})"


def test_mapped_operations_emit_only_catalogue_actions():
    catalog = load_catalog()
    for source, op in every_operation().values():
        for action in map_call(Call(source=source, name=op), catalog).actions:
            assert catalog.has_action(action), (source, op, action)


def test_readme_states_the_current_figure():
    figure = f"{len(baseline())} / {len(every_operation()):,} operations = {len(baseline()) / len(every_operation()):.2%}"
    assert figure.replace("%", " %") in (ROOT / "README.md").read_text()
