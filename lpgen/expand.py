"""Expand attached policies into concrete grants: (action, resource patterns, conditions).

Wildcards and ``NotAction`` resolve against the catalogue; ``NotResource`` is kept
as an exception list; an unconditional ``Deny`` on every resource removes the
action, a narrower one is kept as a note; a permissions boundary intersects (an
action it does not allow is not granted). Conditions are annotations: lpgen does
not evaluate them.
"""

from __future__ import annotations

import fnmatch
import json
from collections import defaultdict
from dataclasses import dataclass, field

from lpgen.attached import Attached, Policy
from lpgen.catalog import Catalog, load_catalog


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """One action an Allow statement grants, on which resource patterns, from which policy."""

    action: str
    resources: tuple[str, ...]
    not_resources: tuple[str, ...] = ()
    conditions: str = ""  # the statement's Condition block as compact JSON, "" when none
    source: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Expanded:
    principal: str
    grants: dict[str, tuple[Grant, ...]] = field(default_factory=dict)  # effective allows by action
    notes: tuple[str, ...] = ()
    unknown_actions: tuple[str, ...] = ()  # patterns in the policies that match no catalogue action
    denies: tuple[dict, ...] = ()  # Deny statements that narrow grants without removing them (not evaluated)

    def actions(self) -> list[str]:
        return sorted(self.grants)

    def patterns(self, action: str) -> list[str]:
        return sorted({r for g in self.grants.get(action, ()) for r in g.resources})


def _listed(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]


def _statements(policy: Policy) -> list[dict]:
    raw = policy.document.get("Statement", [])
    return [raw] if isinstance(raw, dict) else [s for s in raw if isinstance(s, dict)]


def _actions(statement: dict, catalog: Catalog, unknown: set[str]) -> set[str]:
    if "NotAction" in statement:
        excluded = {a.full_name for p in _listed(statement["NotAction"]) for a in catalog.matching(p)}
        return {a.full_name for a in catalog.matching("*")} - excluded
    out: set[str] = set()
    for pattern in _listed(statement.get("Action")):
        found = catalog.matching(pattern)
        if not found:
            unknown.add(pattern)
        out.update(a.full_name for a in found)
    return out


def expand(attached: Attached, catalog: Catalog | None = None) -> Expanded:
    """The effective grants of ``attached``."""
    catalog = catalog or load_catalog()
    allows: dict[str, list[Grant]] = defaultdict(list)
    denied_everywhere: set[str] = set()
    denies: list[dict] = []
    notes: list[str] = []
    unknown: set[str] = set()
    for policy in attached.policies:
        label = policy.name if not policy.via else f"{policy.name} (group {policy.via})"
        for s in _statements(policy):
            actions = _actions(s, catalog, unknown)
            resources = tuple(sorted(_listed(s.get("Resource"))))
            not_resources = tuple(sorted(_listed(s.get("NotResource"))))
            conditions = json.dumps(s["Condition"], sort_keys=True, separators=(",", ":")) if s.get("Condition") else ""
            if s.get("Effect") == "Deny":
                if resources == ("*",) and not not_resources and not conditions:
                    denied_everywhere |= actions
                elif actions:
                    notes.append(f"{label}: a Deny of {len(actions)} action(s) on {', '.join(resources or not_resources)}"
                                 + (" under conditions" if conditions else "") + " narrows some grants (not evaluated)")
                    denies.append(s)
                continue
            if s.get("Effect") != "Allow":
                continue
            for action in actions:
                allows[action].append(Grant(action=action, resources=resources or ("*",) if not not_resources else (),
                                            not_resources=not_resources, conditions=conditions, source=label))
    bounded: set[str] | None = None
    if attached.boundary is not None:
        bounded = set()
        for s in _statements(attached.boundary):
            if s.get("Effect") == "Allow":
                bounded |= _actions(s, catalog, unknown)
            elif s.get("Effect") == "Deny" and _listed(s.get("Resource")) == ["*"] and not s.get("Condition"):
                denied_everywhere |= _actions(s, catalog, unknown)
        notes.append(f"permissions boundary {attached.boundary.name}: grants outside it are not effective")
    grants = {a: tuple(gs) for a, gs in sorted(allows.items())
              if a not in denied_everywhere and (bounded is None or a in bounded)}
    removed = len(allows) - len(grants)
    if removed:
        notes.append(f"{removed} granted action(s) removed by an explicit Deny or the boundary")
    return Expanded(principal=attached.principal, grants=grants, notes=tuple(notes),
                    unknown_actions=tuple(sorted(unknown)), denies=tuple(denies))


def covers(patterns: list[str] | tuple[str, ...], arn: str) -> bool:
    """Does one of the IAM resource patterns match ``arn`` (``*`` and ``?`` wildcards, case-sensitive)?"""
    return any(fnmatch.fnmatchcase(arn, p) for p in patterns)
