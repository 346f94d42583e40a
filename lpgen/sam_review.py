"""Review a SAM/CloudFormation template: static findings, and with usage, the tightest ``Policies:``.

Pure except :func:`match_live` (CloudFormation and IAM reads through a client factory).

1. Static findings (LPG201–LPG205, LPG210) from each function's grants, at template lines.
2. With a usage store: each function is matched to its deployed role, diffed
   (:func:`lpgen.diff.diff`), and given the tightest ``Policies:`` that allow what the role
   used, keep what CloudTrail cannot show (never recommended for removal), and leave out what
   SAM's implicit policies already grant: SAM policy templates where one fits exactly (it
   grants nothing that is not needed), inline statements with ``!Sub`` ARNs otherwise.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from lpgen.attached import Attached
from lpgen.catalog import Catalog, load_catalog
from lpgen.data_files import values
from lpgen.diff import (
    BY_HAND,
    MISSING,
    OVER_BROAD,
    UNOBSERVABLE,
    USED,
    DiffOptions,
    PrincipalDiff,
    diff,
)
from lpgen.expand import covers, expand
from lpgen.findings import Finding, Location, sort_key
from lpgen.generate import (  # the Sids generate writes, for the same statements
    Statement,
    statement_sid,
)
from lpgen.policy_formats import (
    _sub,  # ARNs of the template's own account and region as !Sub
)
from lpgen.sam import (
    EVENT_POLICIES,
    Function,
    Model,
    SourcedPolicy,
    analyse,
    expand_sam_template,
    sam_policy_templates,
)
from lpgen.store import CoverageRow, UsageRow
from lpgen.template import Pseudo, Resolver, Template

WRITE_LEVELS = ("Write", "Permissions management")
#: AWS managed policies for what the Lambda service does with a role (logs, ENIs, X-Ray, pollers).
LAMBDA_EXECUTION_POLICIES = frozenset({"AWSLambdaBasicExecutionRole", "AWSLambdaVPCAccessExecutionRole",
                                       "AWSXrayWriteOnlyAccess", "AWSXRayDaemonWriteAccess", *EVENT_POLICIES.values()})


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewOptions:
    parameters: tuple[tuple[str, str], ...] = ()
    pseudo: Pseudo = field(default_factory=Pseudo)
    role_map: tuple[tuple[str, str], ...] = ()  # (LogicalId, role ARN) from --map
    diff: DiffOptions = field(default_factory=DiffOptions)


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyItem:
    """One entry of a proposed ``Policies:``: a SAM policy template or an inline statement."""

    template: str | None = None
    parameters: tuple[tuple[str, str, str], ...] = ()  # (name, value, YAML expression)
    statement: Statement | None = None
    deny: dict | None = None  # a Deny statement of the template, kept as written (resolved)


@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionReview:
    function: Function
    role: str | None = None
    matched_by: str = ""
    diff: PrincipalDiff | None = None
    proposed: tuple[PolicyItem, ...] | None = None  # None: no proposal (no usage, or not a SAM implicit role)
    needed: frozenset[tuple[str, str]] = frozenset()  # (action, resource) the proposal must grant
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Review:
    model: Model
    functions: tuple[FunctionReview, ...]
    findings: tuple[Finding, ...]
    with_usage: bool = False
    notes: tuple[str, ...] = field(default=())


# -- static findings --------------------------------------------------------------------------


def static_findings(model: Model, catalog: Catalog | None = None) -> list[Finding]:
    """Findings every template gets, usage or not."""
    catalog = catalog or load_catalog()
    uri = model.template.path
    out: list[Finding] = []
    for fn in model.functions:
        for sp in fn.policies:
            where = Location(uri=uri, line=sp.line)
            if not sp.expanded:
                out.append(Finding(code="LPG210", subject=fn.logical_id, location=where,
                                   message=f"{sp.origin}: {sp.policy.arn or sp.policy.name} is not in the template "
                                           "or lpgen's table of AWS managed policies: not reviewed"))
                continue
            out += _statement_findings(fn, sp, where, catalog, model.template)
        for note in fn.notes:
            if "not defined in the template" in note or "not in the template" in note:
                out.append(Finding(code="LPG210", subject=fn.logical_id, message=note,
                                   location=Location(uri=uri, line=fn.role_line or fn.line)))
    shared: dict[str, list[Function]] = defaultdict(list)
    for fn in model.functions:
        if fn.role is not None:
            shared[fn.role].append(fn)
    for role, fns in sorted(shared.items()):
        if len(fns) > 1:
            names = tuple(sorted(f.logical_id for f in fns))
            for fn in fns:
                out.append(Finding(code="LPG205", subject=fn.logical_id, items=names,
                                   message=f"role {role} is shared by {len(fns)} functions",
                                   location=Location(uri=uri, line=fn.role_line or fn.line)))
    return out


def _statement_findings(fn: Function, sp: SourcedPolicy, policy_location: Location, catalog: Catalog,
                        template: Template) -> list[Finding]:
    out = []
    raw = sp.policy.document.get("Statement", [])
    for i, s in enumerate([raw] if isinstance(raw, dict) else raw):
        if not isinstance(s, dict) or s.get("Effect") != "Allow":
            continue
        where = policy_location
        if sp.path is not None:
            where = Location(uri=policy_location.uri, line=template.line(
                sp.path + (("Statement",) if isinstance(raw, dict) else ("Statement", i))) or policy_location.line)
        actions, resources = _listed(s.get("Action")), _listed(s.get("Resource")) or ["*"]
        unknown = sorted(p for p in actions if not catalog.matching(p))
        if unknown:
            out.append(Finding(code="LPG204", subject=fn.logical_id, location=where, items=tuple(unknown),
                               message=f"{sp.origin}: {len(unknown)} action(s) that IAM does not define"))
        if sp.implicit or sp.policy.name in LAMBDA_EXECUTION_POLICIES:
            continue  # the Lambda service's own needs, as AWS writes them (SAM attaches them itself)
        everywhere = "*" in resources
        if everywhere and ({"*", "*:*"} & set(actions) or "NotAction" in s and not s.get("Condition")):
            out.append(Finding(code="LPG201", subject=fn.logical_id, location=where,
                               message=f"{sp.origin}: allows " + ("every action" if "NotAction" not in s else
                                                                  "every action but " + ", ".join(_listed(
                                                                      s["NotAction"]))) + " on every resource"))
            continue
        granted = sorted({a.full_name for p in actions for a in catalog.matching(p)})
        # A condition (iam:PassedToService, say) is what scopes a wildcard: only unconditional ones count.
        wild = not s.get("Condition") and any(r == "*" or re.search(r"[:/]\*$", r) for r in resources)
        escalation = set(values("privilege_escalation.json", "anywhere"))
        if wild:
            escalation |= set(values("privilege_escalation.json", "on_wildcard"))
        found = tuple(sorted(escalation & set(granted)))
        if found:
            out.append(Finding(code="LPG203", subject=fn.logical_id, location=where, items=found,
                               message=f"{sp.origin}: {len(found)} action(s) that can escalate privileges"
                                       + (" (on a wildcard resource)" if wild else "")))
        if everywhere:
            writes = [a for a in granted if (x := catalog.action(a)) and x.access_level in WRITE_LEVELS
                      and x.resource_types and a not in found]
            if writes:
                out.append(Finding(code="LPG202", subject=fn.logical_id, location=where, items=tuple(writes),
                                   message=f"{sp.origin}: {len(writes)} write or permissions-management action(s) "
                                           "on Resource '*'"))
    return out


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(
        value, list) else []


# -- matching functions to deployed roles -----------------------------------------------------


def match_offline(model: Model, rows: list[UsageRow], stack: str | None,
                  role_map: tuple[tuple[str, str], ...] = ()) -> dict[str, tuple[str, str]]:
    """Function logical id → (role ARN, how it was found), from --map, the template and the trail."""
    mapped = dict(role_map)
    principals = {r.principal for r in rows if r.principal.startswith("arn:") and ":role/" in r.principal}
    sessions: dict[str, set[str]] = defaultdict(set)  # function name → roles Lambda assumed for it
    for r in rows:
        if r.principal == "service:lambda.amazonaws.com" and r.name == "AssumeRole":
            fields = dict(r.fields)
            if fields.get("roleArn") and fields.get("roleSessionName"):
                sessions[fields["roleSessionName"]].add(fields["roleArn"])
    out = {}
    for fn in model.functions:
        if fn.logical_id in mapped:
            out[fn.logical_id] = (mapped[fn.logical_id], "--map")
            continue
        if fn.role and fn.role.startswith("arn:") and "${" not in fn.role:
            out[fn.logical_id] = (fn.role, "Role ARN in the template")
            continue
        if fn.role_name:
            found = sorted(p for p in principals if p.endswith(f":role{fn.role_name}"))
            if len(found) == 1:
                out[fn.logical_id] = (found[0], "RoleName in the template")
                continue
        role_logical = fn.role if fn.role and not fn.role.startswith("arn:") else f"{fn.logical_id}Role"
        if stack:
            pattern = re.compile(rf"^{re.escape(stack)}-{re.escape(role_logical)}-[A-Za-z0-9]+$")
            found = sorted(p for p in principals if pattern.match(p.rsplit("/", 1)[-1]))
            if len(found) == 1:
                out[fn.logical_id] = (found[0], f"role name {stack}-{role_logical}-*")
                continue
        names = [fn.name] if fn.name else sorted(n for n in sessions if stack and fnmatch.fnmatchcase(
            n, f"{stack}-{fn.logical_id}-*"))
        roles = sorted({role for n in names for role in sessions.get(n, ())})
        if len(roles) == 1:
            out[fn.logical_id] = (roles[0], f"Lambda assumed it for function {names[0]}")
    return out


def match_live(model: Model, stack: str, client_factory: Callable[[str], Any]) -> dict[str, tuple[str, str]]:
    """Function logical id → (role ARN, how), from the stack's resources (read-only calls)."""
    # ListStackResources, not DescribeStackResources: the latter stops at 100 resources.
    pages = client_factory("cloudformation").get_paginator("list_stack_resources").paginate(StackName=stack)
    resources = {r["LogicalResourceId"]: r for page in pages for r in page["StackResourceSummaries"]}
    out = {}
    for fn in model.functions:
        role_logical = fn.role if fn.role and not fn.role.startswith("arn:") else f"{fn.logical_id}Role"
        role = resources.get(role_logical)
        if role and role.get("ResourceType") == "AWS::IAM::Role" and role.get("PhysicalResourceId"):
            arn = client_factory("iam").get_role(RoleName=role["PhysicalResourceId"])["Role"]["Arn"]
            out[fn.logical_id] = (arn, f"stack {stack} resource {role_logical}")
            continue
        function = resources.get(fn.logical_id)
        if function and function.get("PhysicalResourceId"):
            config = client_factory("lambda").get_function_configuration(FunctionName=function["PhysicalResourceId"])
            out[fn.logical_id] = (config["Role"], f"stack {stack} function {function['PhysicalResourceId']}")
    return out


def infer_pseudo(pseudo: Pseudo, matches: dict[str, tuple[str, str]], rows: list[UsageRow]) -> Pseudo:
    """Fill the account and region the options left open from the matched roles and their use."""
    roles = {arn for arn, _ in matches.values()}
    account = pseudo.account or next((a.split(":")[4] for a in sorted(roles)), None)
    region = pseudo.region
    if region is None:
        seen = Counter()
        for r in rows:
            if r.principal in roles and r.region not in ("", "unknown"):
                seen[r.region] += r.count
        region = min(seen, key=lambda k: (-seen[k], k)) if seen else None
    return replace(pseudo, account=account, region=region)


# -- the review -----------------------------------------------------------------------------------


def review(template: Template, options: ReviewOptions | None = None, rows: list[UsageRow] | None = None,
           coverage: list[CoverageRow] | None = None, matches: dict[str, tuple[str, str]] | None = None,
           catalog: Catalog | None = None) -> Review:
    """Static findings; with ``rows``, per-function diffs and proposals (``matches`` from
    :func:`match_offline` or :func:`match_live`, computed offline when not given)."""
    catalog = catalog or load_catalog()
    options = options or ReviewOptions()
    model = analyse(template, dict(options.parameters), options.pseudo)
    if rows is None:
        findings = static_findings(model, catalog)
        return Review(model=model, functions=tuple(FunctionReview(function=f) for f in model.functions),
                      findings=tuple(sorted(findings, key=sort_key)))
    if matches is None:
        matches = match_offline(model, rows, options.pseudo.stack, options.role_map)
    pseudo = infer_pseudo(options.pseudo, matches, rows)
    if pseudo != options.pseudo:
        model = analyse(template, dict(options.parameters), pseudo)
    findings = static_findings(model, catalog)
    reviews = []
    for fn in model.functions:
        if fn.logical_id not in matches:
            findings.append(Finding(code="LPG209", subject=fn.logical_id, message="no deployed role found",
                                    location=Location(uri=template.path, line=fn.line)))
            reviews.append(FunctionReview(function=fn))
            continue
        role, how = matches[fn.logical_id]
        if not any(r.principal == role for r in rows):
            reviews.append(FunctionReview(function=fn, role=role, matched_by=how, notes=(
                f"the store holds no use of {role}: nothing to compare, no proposal",)))
            continue
        expanded = expand(fn.attached(role), catalog)
        result = diff(role, rows, expanded, coverage or [], options.diff, catalog)
        item = _function_review(fn, role, how, result, model, catalog)
        findings += _usage_findings(item, model, catalog)
        reviews.append(item)
    notes = []
    judged = [fr.diff.judged for fr in reviews if fr.diff is not None]
    if judged and not all(judged):
        notes.append(f"the window covers fewer days than --min-days {options.diff.min_days}: nothing is called "
                     "unused, and the proposals keep to what the window shows; check rare tasks before applying them")
    return Review(model=model, functions=tuple(reviews), findings=tuple(sorted(findings, key=sort_key)),
                  with_usage=True, notes=tuple(notes))


def _function_review(fn: Function, role: str, how: str, result: PrincipalDiff, model: Model,
                     catalog: Catalog) -> FunctionReview:
    needed: set[tuple[str, str]] = set()
    conditional: dict[tuple[tuple[str, ...], tuple], set[str]] = defaultdict(set)  # (resources, conditions) → actions
    notes = []
    for s in result.recommended.statements if result.recommended else ():
        if s.conditions:
            notes.append(f"{s.sid}: conditions are left out of the proposal")
        needed |= {(a, r) for a in s.actions for r in s.resources}
    implicit = expand(Attached(principal=role, policies=tuple(p.policy for p in fn.policies if p.implicit)), catalog)
    # Never recommend removing what CloudTrail cannot show: the diff keeps it as granted, conditions included.
    notes += [n for n in result.notes if n.endswith(BY_HAND)]
    for s in result.kept:
        if s.conditions:
            conditional[(s.resources, s.conditions)].update(s.actions)
        else:
            needed |= {(a, r) for a in s.actions for r in s.resources}
    needed = {(a, r) for a, r in needed if not covers(implicit.patterns(a), r)}
    kept = []
    for (resources, conditions), actions in sorted(conditional.items()):
        actions = {a for a in actions if not all(covers(implicit.patterns(a), r) for r in resources)}
        if actions:
            kept.append(Statement(sid=statement_sid(actions, resources, False) + "Conditional",
                                  actions=tuple(sorted(actions)), resources=resources, conditions=conditions))
            needed |= {(a, r) for a in actions for r in resources}
    if not fn.implicit_role:
        notes.append("the function runs as an explicit role: change that role's policies (no patch is written)")
        return FunctionReview(function=fn, role=role, matched_by=how, diff=result, needed=frozenset(needed),
                              notes=tuple(notes))
    unconditional = {(a, r) for a, r in needed if not any(a in s.actions and r in s.resources for s in kept)}
    proposed = (tighten(unconditional, model.resolver) + [PolicyItem(statement=s) for s in kept]
                + [PolicyItem(deny=d) for d in _denies(fn)])
    return FunctionReview(function=fn, role=role, matched_by=how, diff=result, proposed=tuple(proposed),
                          needed=frozenset(needed), notes=tuple(notes))


def _usage_findings(item: FunctionReview, model: Model, catalog: Catalog) -> list[Finding]:
    fn, d = item.function, item.diff
    uri = model.template.path
    line = model.template.line(fn.policies_path) if fn.policies_path else fn.role_line or fn.line
    out = []
    written = expand(Attached(principal=fn.logical_id, policies=tuple(
        p.policy for p in fn.policies if not p.implicit)), catalog).grants  # what the author wrote, not SAM
    granted = [e for e in (d.entries if d else ()) if e.category != MISSING and e.action in written]
    loose = sorted(e.action for e in granted if e.category not in (USED, UNOBSERVABLE))
    if loose:
        used_count = sum(1 for e in granted if e.category in (USED, OVER_BROAD))
        out.append(Finding(code="LPG207", subject=fn.logical_id, location=Location(uri=uri, line=line),
                           items=tuple(loose), message=f"grants {d.before} action(s), its role used {used_count}: "
                                                       f"{len(loose)} granted beyond use or wider than used"))
    missing = sorted({e.action for e in d.entries if e.category == MISSING}) if d else []
    if missing:
        out.append(Finding(code="LPG208", subject=fn.logical_id, location=Location(uri=uri, line=line),
                           items=tuple(missing), message=f"{len(missing)} action(s) used or denied that the template "
                                                         "does not grant"))
    used = {(e.action, r) for e in (d.entries if d else ()) if e.category in (USED, OVER_BROAD) for r in e.used_on}
    for sp in fn.policies:
        if not sp.sam_template:
            continue
        narrower = narrower_template(sp, used, model.resolver, catalog)
        if narrower:
            out.append(Finding(code="LPG206", subject=fn.logical_id, location=Location(uri=uri, line=sp.line),
                               items=(narrower,), message=f"{sp.origin}: what the function uses of it fits a "
                                                          "narrower template"))
    return out


def _denies(fn: Function) -> list[dict]:
    """The Deny statements the author wrote: a proposal keeps them (they only ever narrow)."""
    out = []
    for sp in fn.policies:
        if sp.implicit or sp.sam_template:
            continue
        raw = sp.policy.document.get("Statement", [])
        out += [s for s in ([raw] if isinstance(raw, dict) else raw) if isinstance(s, dict) and s.get("Effect") == "Deny"]
    return out


# -- SAM policy templates -------------------------------------------------------------------------


def template_pairs(name: str, parameters: dict[str, str], resolver: Resolver) -> set[tuple[str, str]]:
    """The (action as written, resource) pairs a SAM policy template grants with ``parameters``."""
    document = expand_sam_template(name, parameters, resolver)
    out = set()
    raw = document.get("Statement", [])
    for s in [raw] if isinstance(raw, dict) else raw:
        if s.get("Effect") == "Allow" and "Condition" not in s and "NotAction" not in s:
            out |= {(a, r) for a in _listed(s.get("Action")) for r in _listed(s.get("Resource")) or ["*"]}
    return out


def narrower_template(sp: SourcedPolicy, used: set[tuple[str, str]], resolver: Resolver,
                      catalog: Catalog) -> str | None:
    """A template granting fewer actions than ``sp``'s, with the same parameters, that still covers
    what the function used of ``sp``'s grants."""
    params = dict(sp.parameters)
    mine = template_pairs(sp.sam_template, params, resolver)
    mine_actions = {a for a, _ in mine}
    relevant = {(a, r) for a, r in used if any(_pair_covers(p, (a, r)) for p in mine)}
    if not relevant:
        return None
    best = None
    for name, spec in sorted(sam_policy_templates().items()):
        if name == sp.sam_template or set(spec.get("Parameters", {})) != set(params):
            continue
        theirs = template_pairs(name, params, resolver)
        actions = {a for a, _ in theirs}
        if not actions or not actions < mine_actions:
            continue
        fits = all(any(_pair_covers(p, u) for p in theirs) for u in relevant)
        if fits and (best is None or len(actions) < best[0]):
            best = (len(actions), name)
    return best[1] if best else None


def _pair_covers(grant: tuple[str, str], use: tuple[str, str]) -> bool:
    return fnmatch.fnmatchcase(use[0].lower(), grant[0].lower()) and covers([grant[1]], use[1])


def tighten(needed: set[tuple[str, str]], resolver: Resolver) -> list[PolicyItem]:
    """The tightest ``Policies:`` for ``needed``: SAM templates that fit exactly, then inline statements."""
    left = set(needed)
    items: list[PolicyItem] = []
    while True:
        best = None
        for name, params in _candidates(left, resolver):
            pairs = template_pairs(name, params, resolver)
            if pairs and pairs <= left and (best is None or (len(pairs), name) > (len(best[2]), best[0])):
                best = (name, params, pairs)
        if best is None:
            break
        name, params, pairs = best
        left -= pairs
        items.append(PolicyItem(template=name, parameters=tuple(
            (k, v, _expression(v, resolver)) for k, v in sorted(params.items()))))
    items.sort(key=lambda i: (i.template, i.parameters))
    return items + [PolicyItem(statement=s) for s in _statements(left)]


def _candidates(needed: set[tuple[str, str]], resolver: Resolver):
    """(template, parameters) whose resource patterns match a needed resource."""
    resources = sorted({r for _, r in needed})
    seen = set()
    for name, spec in sorted(sam_policy_templates().items()):
        params = sorted(spec.get("Parameters", {}))
        if not params:
            key = (name, ())
            if key not in seen:
                seen.add(key)
                yield name, {}
            continue
        markers = {p: f"\x00{i}\x00" for i, p in enumerate(params)}
        for pattern in _resource_patterns(name, markers, resolver):
            regex, order = _marker_regex(pattern, len(params))
            for r in resources:
                m = regex.fullmatch(r)
                if not m:
                    continue
                binding = {params[i]: m.group(f"p{i}") for i in order}
                if set(binding) == set(params):
                    key = (name, tuple(sorted(binding.items())))
                    if key not in seen:
                        seen.add(key)
                        yield name, binding


def _resource_patterns(name: str, markers: dict[str, str], resolver: Resolver) -> list[str]:
    document = expand_sam_template(name, markers, resolver)
    raw = document.get("Statement", [])
    return sorted({r for s in ([raw] if isinstance(raw, dict) else raw) for r in _listed(s.get("Resource"))
                   if "\x00" in r})


def _marker_regex(pattern: str, count: int) -> tuple[re.Pattern, list[int]]:
    """A regex binding each parameter marker of ``pattern``. A parameter never binds a ``*``; it may hold
    a ``?``, as a secret's ARN does where generation left its random suffix open (``name-??????``)."""
    out, order = [], []
    for part in re.split(r"(\x00\d+\x00)", pattern):
        m = re.fullmatch(r"\x00(\d+)\x00", part)
        if m:
            i = int(m[1])
            out.append(f"(?P=p{i})" if i in order else f"(?P<p{i}>[^*]+?)")
            if i not in order:
                order.append(i)
        else:
            out.append(re.escape(part))
    return re.compile("".join(out)), order


def _expression(value: str, resolver: Resolver) -> str:
    """A template parameter's value as YAML: a !Ref or !GetAtt of the template when one yields it."""
    for name in sorted(resolver.template.data.get("Parameters") or {}):
        if resolver.string({"Ref": name}) == value:
            return f"!Ref {name}"
    for logical in sorted(resolver.template.resources):
        if resolver.string({"Ref": logical}) == value:
            return f"!Ref {logical}"
        for attribute in ("QueueName", "TopicName", "Arn", "Name"):
            if resolver.get_att(logical, attribute) == value:
                return f"!GetAtt {logical}.{attribute}"
    if value.startswith("arn:"):
        return _sub(value, resolver.pseudo.account or "", resolver.pseudo.region or "")
    return _quote(value)


def _quote(value: str) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9_./-]+", value) and value[0] not in "-./" else (
        "'" + value.replace("'", "''") + "'")


def _statements(pairs: set[tuple[str, str]]) -> list[Statement]:
    by_action: dict[str, set[str]] = defaultdict(set)
    for a, r in pairs:
        by_action[a].add(r)
    groups: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for a, rs in by_action.items():
        groups[tuple(sorted(rs))].add(a)
    out, used = [], Counter()
    for resources, actions in sorted(groups.items(), key=lambda kv: (min(kv[1]), kv[0])):
        sid = statement_sid(actions, resources, False)
        used[sid] += 1
        out.append(Statement(sid=sid if used[sid] == 1 else f"{sid}{used[sid]}", actions=tuple(sorted(actions)),
                             resources=resources))
    return out
