"""The mapping's data tables are well-formed: every action they name exists, every rule is implemented."""

from __future__ import annotations

import pytest

from lpgen.catalog import load_catalog
from lpgen.data_files import load
from lpgen.mapping import _RULES, NOT_AN_ACTION, PERMISSIONLESS, observability

OVERRIDES = load("mapping_overrides.json")
SIDE = load("side_permissions.json")


@pytest.mark.parametrize("entry", OVERRIDES["overrides"], ids=lambda e: f"{e['source']}:{e['name']}")
def test_override_entry_is_well_formed(entry):
    catalog = load_catalog()
    assert entry["note"].strip() and entry["reference"].split(":", 1)[0] in OVERRIDES["references"]
    for action in entry.get("actions", []):
        assert catalog.action(action) is not None and catalog.action(action).full_name == action
    if entry.get("status"):
        assert entry["status"] in (PERMISSIONLESS, NOT_AN_ACTION) and not entry.get("actions")
    else:
        assert entry.get("actions"), "an entry grants actions or says why it needs none"
    if entry.get("rule"):
        assert entry["rule"] in _RULES, f"rule {entry['rule']} is not implemented"


def test_overrides_are_unique_and_sorted():
    keys = [(e["source"], e["name"]) for e in OVERRIDES["overrides"]]
    assert len(keys) == len(set(keys)) and keys == sorted(keys)


@pytest.mark.parametrize("kind", ["pass_role", "kms", "caller_checks", "transforms"])
def test_side_permission_entries_name_real_actions(kind):
    catalog = load_catalog()
    for entry in SIDE[kind]["values"]:
        assert entry["note"] and entry["reference"] and entry["fields"]
        for action in entry.get("actions", ["iam:PassRole"]):
            assert catalog.has_action(action), action


def test_every_data_event_glob_names_catalogue_actions():
    catalog = load_catalog()
    for globs in load("observability.json")["data_events"]["values"].values():
        for glob in globs:
            assert catalog.matching(glob), glob
            assert all(observability(a.full_name) == "data" for a in catalog.matching(glob))


def test_observability_classes():
    assert observability("s3:GetObject") == "data"
    assert observability("s3:PutBucketPolicy") == "management"
    assert observability("iam:PassRole") == "never"


def _botocore_detail(reference: str) -> tuple[str, str | None]:
    service, _, operation = reference.split(":", 1)[1].partition(":")
    return service, operation or None


@pytest.mark.parametrize("key", ["api-ref", "botocore-auth"])
def test_botocore_references_name_the_catalogues_release_and_its_operations(key):
    """An entry read in a newer botocore than the catalogue's cites the '-later' reference instead."""
    catalog = load_catalog()
    assert f"botocore {catalog.meta.botocore_version} service model" in OVERRIDES["references"][key]
    for entry in OVERRIDES["overrides"]:
        kind = entry["reference"].split(":", 1)[0]
        if kind in (key, f"{key}-later"):
            service, operation = _botocore_detail(entry["reference"])
            known = catalog.botocore_operations(service)
            present = bool(known) and (operation is None or operation in known)
            assert present == (kind == key), entry
