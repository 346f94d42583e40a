"""The diff: what a principal is granted against what it used, as set algebra over (action, resource).

Categories, per granted action:

- ``used``: granted and observed;
- ``over-broad``: used, but granted on ``*`` or a pattern wider than the resources used;
- ``unused``: granted, CloudTrail could have shown it, and the window saw no use;
- ``unobservable``: granted, but CloudTrail could not have shown it (data events the trail
  did not log, ``iam:PassRole``, the Lambda baseline): never recommended for removal;

and per observed action not granted: ``missing`` (used or wanted-and-denied).
Nothing is called unused when the window is shorter than ``min_days``: it is "not judged".
"""

from __future__ import annotations

import fnmatch
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace

from deepdiff import DeepDiff

from lpgen.catalog import Catalog, load_catalog
from lpgen.expand import Expanded, covers
from lpgen.generate import GeneratedPolicy, GenerateOptions, Statement, by_name, generate, statement_sid
from lpgen.mapping import NEVER, iam_paths, iam_twin, observability, row_mapper
from lpgen.model import DENIED
from lpgen.store import CoverageRow, UsageRow

USED, OVER_BROAD, UNUSED, UNOBSERVABLE, MISSING, NOT_JUDGED = (
    "used", "over-broad", "unused", "unobservable", "missing", "not-judged")
CATEGORIES = (USED, OVER_BROAD, UNUSED, UNOBSERVABLE, MISSING, NOT_JUDGED)


@dataclass(frozen=True, slots=True, kw_only=True)
class DiffOptions:
    min_days: int = 30
    data_events: frozenset[str] | None = None  # IAM prefixes whose data events the trail logged; None: from the store
    recently_accessed: dict[str, str] | None = None  # Access Advisor: service namespace → last access (live)
    generate: GenerateOptions = GenerateOptions()


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    action: str
    category: str
    granted_on: tuple[str, ...] = ()
    used_on: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    first: str | None
    last: str | None
    days: int
    regions: tuple[str, ...]
    accounts: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PrincipalDiff:
    principal: str
    window: Window
    judged: bool
    entries: tuple[Entry, ...]
    before: int  # granted actions
    after: int  # actions the principal needs: those of the generated policy (``kept`` holds the others recommended)
    unused_services: tuple[str, ...]
    recommended: GeneratedPolicy | None  # generated from the principal's use
    document_diff: str
    notes: tuple[str, ...] = field(default=())
    kept: tuple[Statement, ...] = ()  # unobservable grants, as attached (see kept_unobservable)
    denies: tuple[dict, ...] = ()  # the attached Deny statements that narrow grants, kept in the proposal

    def counts(self) -> dict[str, int]:
        c = Counter(e.category for e in self.entries)
        return {k: c.get(k, 0) for k in CATEGORIES}

    def kept_actions(self) -> int:
        return len({a for s in self.kept for a in s.actions})

    def proposed(self) -> dict | None:
        """The recommended policy as a document: what the principal used, what CloudTrail cannot show kept as
        granted, and the attached Deny statements that narrow grants (a kept grant on ``*`` must stay narrowed,
        and a Deny never widens anything)."""
        allows = [s.document() for s in (*(self.recommended.statements if self.recommended else ()), *self.kept)]
        if not allows:
            return None
        sids = {s["Sid"] for s in allows}
        denies = []
        for deny in self.denies:
            deny = dict(deny)
            if deny.get("Sid") in sids or not deny.get("Sid"):  # Sids are unique within a policy
                deny["Sid"] = next(f"KeptDeny{n}" for n in range(1, len(sids) + len(self.denies) + 2)
                                   if f"KeptDeny{n}" not in sids)
            sids.add(deny["Sid"])
            denies.append(deny)
        return {"Version": "2012-10-17", "Statement": allows + denies}


def _granted_by_id(patterns: list[str], used: str) -> bool:
    """Whether an allowed call whose resource is known only up to an id AWS generated (a stack or a secret
    named by its name, a partial secret ARN: :func:`~lpgen.generate.by_name`) reached one that
    ``patterns`` grant by that id: the call succeeded, so that grant is what allowed it. Asked only for
    allowed calls: for a denied one, a grant naming another id (a resource created anew) is why it failed."""
    named = by_name(used)
    return any(fnmatch.fnmatchcase(p, named) for p in patterns)


def window_of(coverage: list[CoverageRow]) -> Window:
    days = {c.day for c in coverage}
    return Window(first=min((c.first_time for c in coverage), default=None),
                  last=max((c.last_time for c in coverage), default=None), days=len(days),
                  regions=tuple(sorted({c.region for c in coverage})),
                  accounts=tuple(sorted({c.account for c in coverage})))


def logged_data_events(rows: list[UsageRow], catalog: Catalog) -> frozenset[str]:
    """IAM prefixes with at least one data event in the store: the trail logged them."""
    return frozenset(p for p in (catalog.prefix_for_event_source(r.source) for r in rows
                                 if r.category == "Data") if p)


def diff(principal: str, rows: list[UsageRow], expanded: Expanded, coverage: list[CoverageRow],
         options: DiffOptions = DiffOptions(), catalog: Catalog | None = None,
         attached_documents: dict[str, dict] | None = None) -> PrincipalDiff:
    """Compare what ``principal`` is granted (``expanded``) with its use in ``rows``."""
    catalog = catalog or load_catalog()
    window = window_of(coverage)
    judged = window.days >= options.min_days
    data_prefixes = options.data_events if options.data_events is not None else logged_data_events(rows, catalog)
    # The principal's policy depends on its own rows, the Lambda service's, and Lambda deployments
    # by anyone (the function configuration behind the baseline): generate from those only.
    relevant = [r for r in rows if r.principal == principal or r.principal.startswith("service:")
                or r.source == "lambda.amazonaws.com"]
    paths = iam_paths(rows)  # every principal's rows show IAM entities' paths
    recommended = generate(relevant, options.generate, catalog, only=[principal], paths=paths).get(principal)
    mapped = row_mapper(paths, catalog)
    used: dict[str, set[str]] = defaultdict(set)
    wanted: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if row.principal != principal:
            continue
        mapping = mapped(row)
        for p in mapping.permissions:
            (wanted if row.error_class == DENIED else used)[p.action].update(p.resources)
    baseline = {a for a, e in (recommended.evidence.items() if recommended else ())
                if all(p.startswith("baseline:") for p in e.provenance)}
    recommended_resources = _resources(recommended)
    entries: list[Entry] = []
    for action in expanded.actions():
        granted = tuple(expanded.patterns(action)) or ("*",)
        if action in used:
            wide = [g for g in granted if not any(g == r or fnmatch.fnmatchcase(g, r)
                                                  for r in recommended_resources.get(action, ()))]
            if wide:
                entries.append(Entry(action=action, category=OVER_BROAD, granted_on=granted,
                                     used_on=tuple(sorted(used[action])),
                                     why=f"granted on {', '.join(wide)}; used on {len(used[action])} resource(s)"))
            else:
                entries.append(Entry(action=action, category=USED, granted_on=granted,
                                     used_on=tuple(sorted(used[action]))))
            continue
        why = _unobservable(action, baseline, data_prefixes)
        if why:
            entries.append(Entry(action=action, category=UNOBSERVABLE, granted_on=granted, why=why))
        elif options.recently_accessed and action.split(":", 1)[0] in options.recently_accessed:
            entries.append(Entry(action=action, category=NOT_JUDGED, granted_on=granted,
                                 why=f"Access Advisor saw {action.split(':', 1)[0]} used on "
                                     f"{options.recently_accessed[action.split(':', 1)[0]]}, outside the trail window"))
        elif not judged:
            entries.append(Entry(action=action, category=NOT_JUDGED, granted_on=granted,
                                 why=f"the window covers {window.days} day(s), fewer than --min-days {options.min_days}"))
        else:
            entries.append(Entry(action=action, category=UNUSED, granted_on=granted,
                                 why=f"no use in {window.days} days ({window.first} .. {window.last})"))
    granted_actions = set(expanded.grants)
    for action in sorted(set(used) | set(wanted)):
        patterns = expanded.patterns(action) if action in granted_actions else []
        for resources, why, allowed in (
                (used.get(action, set()), "used but not granted by these policies (a resource policy or another grant "
                                          "allowed it)", True),
                (wanted.get(action, set()), "wanted and denied", False)):
            covered = {r for r in resources if patterns and (
                r == "*" and "*" in patterns or r != "*" and covers(patterns, r)
                or allowed and _granted_by_id(patterns, r))}
            # an IAM entity named without its path is either ARN of its pair: one covered covers the call
            uncovered = sorted(r for r in resources if r not in covered and iam_twin(r) not in covered)
            if uncovered:
                entries.append(Entry(action=action, category=MISSING, used_on=tuple(uncovered), why=why))
    unused_services = sorted({e.action.split(":", 1)[0] for e in entries if e.category == UNUSED}
                             - {a.split(":", 1)[0] for a in used})
    kept, kept_notes = kept_unobservable(entries, expanded, recommended)
    result = PrincipalDiff(principal=principal, window=window, judged=judged,
                           entries=tuple(sorted(entries, key=lambda e: (CATEGORIES.index(e.category), e.action))),
                           before=len(granted_actions), after=len(recommended_resources),
                           unused_services=tuple(unused_services), recommended=recommended, document_diff="",
                           notes=(*expanded.notes, *kept_notes, *(() if judged else (
                               f"nothing is called unused: the window covers {window.days} day(s), fewer than "
                               f"--min-days {options.min_days}",))), kept=kept, denies=expanded.denies)
    proposed = result.proposed()
    if attached_documents is not None and proposed is not None:
        before = [s for doc in attached_documents.values() for s in _comparable(doc)]
        result = replace(result, document_diff=DeepDiff({"statements": before}, {"statements": _comparable(proposed)},
                                                        ignore_order=True, verbose_level=2).pretty())
    return result


#: How a grant that CloudTrail cannot show is kept when it is granted with NotResource (a note, not a statement).
BY_HAND = "granted with NotResource and not observable: keep it by hand"


def kept_unobservable(entries: list[Entry], expanded: Expanded,
                      recommended: GeneratedPolicy | None) -> tuple[tuple[Statement, ...], tuple[str, ...]]:
    """The grants of actions CloudTrail could not show, as attached (conditions included), and notes.

    The diff never recommends removing what the trail cannot judge, so the recommended policy keeps
    them; an action the generated policy already grants (the Lambda baseline, scoped) is not kept again."""
    generated = {a for s in (recommended.statements if recommended else ()) for a in s.actions}
    grouped: dict[tuple[tuple[str, ...], str], set[str]] = defaultdict(set)  # (resources, conditions) → actions
    notes = []
    for e in entries:
        if e.category != UNOBSERVABLE or e.action in generated:
            continue
        for grant in expanded.grants.get(e.action, ()):
            if grant.not_resources:
                notes.append(f"{e.action}: {BY_HAND}")
            else:
                grouped[(grant.resources, grant.conditions)].add(e.action)
    statements, used_sids = [], Counter()
    for (resources, conditions), actions in sorted(grouped.items(), key=lambda kv: (sorted(kv[1])[0], kv[0])):
        sid = statement_sid(actions, resources, False) + ("KeptConditional" if conditions else "Kept")
        used_sids[sid] += 1
        statements.append(Statement(sid=sid if used_sids[sid] == 1 else f"{sid}{used_sids[sid]}",
                                    actions=tuple(sorted(actions)), resources=resources,
                                    conditions=condition_tuples(conditions)))
    return tuple(statements), tuple(dict.fromkeys(notes))


def condition_tuples(compact: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """A Condition block (compact JSON, as :class:`lpgen.expand.Grant` keeps it) as Statement conditions."""
    out = []
    for operator, keys in sorted(json.loads(compact).items()) if compact else ():
        for key, value in sorted(keys.items()):
            out.append((operator, key, tuple(value) if isinstance(value, list) else (str(value),)))
    return tuple(out)


def _comparable(document: dict) -> list[dict]:
    """A document's statements without Sids, lists sorted: what deepdiff compares across policies."""
    raw = document.get("Statement", [])
    out = []
    for s in [raw] if isinstance(raw, dict) else raw:
        item = {k: sorted(v) if isinstance(v, list) else v for k, v in s.items() if k != "Sid"}
        out.append({k: ([v] if k in ("Action", "NotAction", "Resource", "NotResource") and isinstance(v, str) else v)
                    for k, v in item.items()})
    return out


def _resources(policy: GeneratedPolicy | None) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for s in policy.statements if policy else ():
        for a in s.actions:
            out[a].update(s.resources)
    return out


def _unobservable(action: str, baseline: set[str], data_prefixes: frozenset[str]) -> str:
    kind = observability(action)
    if kind == NEVER:
        return "CloudTrail records no event for this permission"
    if action in baseline:
        return "used by the Lambda service on the role's behalf (baseline), not shown as the role's calls"
    if kind == "data" and action.split(":", 1)[0] not in data_prefixes:
        return "a data event the trail did not log"
    return ""


def render_diff(d: PrincipalDiff, fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps({
            "principal": d.principal, "judged": d.judged, "counts": d.counts(), "before": d.before, "after": d.after,
            "kept": d.kept_actions(),
            "window": {"first": d.window.first, "last": d.window.last, "days": d.window.days,
                       "regions": list(d.window.regions), "accounts": list(d.window.accounts)},
            "unused_services": list(d.unused_services), "notes": list(d.notes),
            "entries": [{"action": e.action, "category": e.category, "granted_on": list(e.granted_on),
                         "used_on": list(e.used_on), "why": e.why} for e in d.entries],
            "recommended": d.proposed(),
        }, indent=2, sort_keys=True) + "\n"
    md = fmt == "md"
    head = f"## {d.principal}" if md else d.principal
    c = d.counts()
    lines = [head, "",
             f"window: {d.window.first} .. {d.window.last}, {d.window.days} days, regions "
             f"{', '.join(d.window.regions) or '-'}" + ("" if d.judged else " (too short to call anything unused)"),
             "granted actions: {} → recommended: {}".format(d.before, d.after)
             + (f" (and {d.kept_actions()} kept as granted: CloudTrail could not show them)" if d.kept else ""),
             "counts: " + ", ".join(f"{k} {v}" for k, v in c.items() if v)]
    if d.unused_services:
        lines.append("unused services: " + ", ".join(d.unused_services))
    lines += [f"note: {n}" for n in d.notes]
    for category in CATEGORIES:
        group = [e for e in d.entries if e.category == category]
        if not group:
            continue
        lines += ["", f"### {category} ({len(group)})" if md else f"{category} ({len(group)})"]
        shown = group if category != UNUSED or len(group) <= 40 else group[:40]
        for e in shown:
            detail = f" — {e.why}" if e.why else ""
            lines.append(f"{'- ' if md else '  '}{e.action}{detail}")
        if len(shown) < len(group):
            lines.append(f"{'- ' if md else '  '}... and {len(group) - len(shown)} more (--format json lists all)")
    if d.document_diff:
        lines += ["", "### attached → recommended" if md else "attached → recommended (deepdiff)"]
        lines += ["```", d.document_diff, "```"] if md else ["  " + line for line in d.document_diff.splitlines()]
    return "\n".join(lines) + "\n"
