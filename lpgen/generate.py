"""Generate the minimal policy per principal from the usage store's aggregates.

Pure: aggregates in, policies out. Each used call is mapped to its IAM actions
(:mod:`lpgen.mapping`); resources are collapsed conservatively; actions with the
same resources (and conditions) share a statement; everything is sorted, so two
runs give byte-identical output.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from lpgen.catalog import Catalog, load_catalog
from lpgen.data_files import values
from lpgen.mapping import USED, WANTED, function_name, iam_paths, operation_name, row_mapper
from lpgen.model import DENIED
from lpgen.store import UsageRow

#: IAM limits on policy size, counted without whitespace.
MANAGED_POLICY_LIMIT = 6144
INLINE_POLICIES_LIMIT = 10240


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerateOptions:
    include_denied: bool = False
    conditions: bool = False
    compact: bool = False  # action wildcards, only where every action under one was observed
    generalize: frozenset[str] = frozenset()  # "account", "region"
    prefix_threshold: int = 10  # distinct object keys (or trailing ids) before collapsing to a prefix
    baseline: bool = True  # Lambda execution roles: what the Lambda service uses on the role's behalf


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Why an action is in the policy: the calls that needed it."""

    calls: tuple[str, ...]  # "eventSource:eventName"
    count: int
    denied: int
    first_seen: str
    last_seen: str
    regions: tuple[str, ...]
    samples: tuple[str, ...]
    provenance: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    sid: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...] = ()  # (operator, key, values)

    def document(self) -> dict:
        doc: dict = {"Sid": self.sid, "Effect": "Allow",
                     "Action": list(self.actions) if len(self.actions) > 1 else self.actions[0],
                     "Resource": list(self.resources) if len(self.resources) > 1 else self.resources[0]}
        if self.conditions:
            block: dict = {}
            for operator, key, values in self.conditions:
                block.setdefault(operator, {})[key] = list(values) if len(values) > 1 else values[0]
            doc["Condition"] = block
        return doc


@dataclass(frozen=True, slots=True, kw_only=True)
class GeneratedPolicy:
    principal: str
    statements: tuple[Statement, ...]
    evidence: dict[str, Evidence] = field(compare=False)
    notes: tuple[str, ...] = ()

    def document(self, statements: Iterable[Statement] | None = None) -> dict:
        return {"Version": "2012-10-17",
                "Statement": [s.document() for s in (self.statements if statements is None else statements)]}

    def split(self, limit: int = MANAGED_POLICY_LIMIT) -> list[dict]:
        """The policy as documents that each fit ``limit`` characters without whitespace."""
        parts: list[list[Statement]] = [[]]
        for statement in self.statements:
            if parts[-1] and size(self.document([*parts[-1], statement])) > limit:
                parts.append([])
            parts[-1].append(statement)
        return [self.document(p) for p in parts]


def size(document: dict) -> int:
    """Characters IAM counts against a policy's size limit (whitespace excluded)."""
    return len(json.dumps(document, separators=(",", ":")))


def generate(rows: Iterable[UsageRow], options: GenerateOptions = GenerateOptions(),
             catalog: Catalog | None = None, only: Iterable[str] | None = None,
             paths: dict[str, str] | None = None) -> dict[str, GeneratedPolicy]:
    """The minimal policy of every principal in ``rows``, or of those in ``only`` (service-initiated
    rows, and every principal's Lambda deployments, inform baselines either way). ``paths``: the IAM
    entities' ARNs (:func:`~lpgen.mapping.iam_paths`), when more rows than these show them."""
    catalog = catalog or load_catalog()
    per: dict[str, list[tuple[UsageRow, object]]] = defaultdict(list)
    lambda_functions: dict[str, set[tuple[str, str]]] = defaultdict(set)
    functions = _FunctionConfigs()
    rows = list(rows)
    mapped = row_mapper(iam_paths(rows) if paths is None else paths, catalog)
    for row in rows:
        functions.note(row)
        if row.principal.startswith("service:"):
            _note_lambda_role(row, lambda_functions)
            continue
        if not row.principal.startswith("arn:"):  # web identities, SAML users: no identity policy to write
            continue
        if row.error_class == DENIED and not options.include_denied:
            continue
        mapping = mapped(row)
        if mapping.status in (USED, WANTED):
            per[row.principal].append((row, mapping))
    for role, names in functions.roles().items():
        lambda_functions[role].update(names)
    policies = {}
    wanted = set(per) | (set(lambda_functions) if options.baseline else set())
    for principal in sorted(wanted if only is None else wanted & set(only)):
        policies[principal] = _policy(principal, per.get(principal, []), lambda_functions.get(principal, set()),
                                      options, catalog, functions)
    return policies


class _FunctionConfigs:
    """What deployments in the trail say of Lambda functions: role, VPC, tracing, event sources,
    where Lambda delivers their event records (dead-letter queue, destinations), and the key
    encrypting their environment variables."""

    def __init__(self) -> None:
        self.role: dict[str, tuple[str, str]] = {}  # function → (role ARN, region)
        self.vpc: set[str] = set()
        self.traced: set[str] = set()
        self.sources: dict[str, set[str]] = defaultdict(set)
        self.destinations: dict[str, set[str]] = defaultdict(set)
        self.keys: dict[str, set[str]] = defaultdict(set)  # the customer managed key of its environment
        self.log_groups: dict[str, set[str]] = defaultdict(set)  # a custom log group (loggingConfig.logGroup)
        self.file_systems: dict[str, set[str]] = defaultdict(set)  # EFS access points it mounts (fileSystemConfigs)

    def note(self, row: UsageRow) -> None:
        if row.source != "lambda.amazonaws.com" or row.error_class == DENIED:
            return
        op = operation_name(row.source, row.name)
        values: dict[str, list[str]] = defaultdict(list)
        for k, v in row.fields:
            values[k.rsplit(".", 1)[-1]].append(v)
        for name in (function_name(f)[0] for f in values.get("functionName", [])):
            if op in ("CreateFunction", "UpdateFunctionConfiguration"):
                for role in values.get("role", []):
                    self.role[name] = (role, row.region)
                if values.get("subnetIds"):
                    self.vpc.add(name)
                if "Active" in values.get("mode", []):
                    self.traced.add(name)
                self.destinations[name].update(values.get("targetArn", []))  # deadLetterConfig.targetArn
                self.keys[name].update(k for k in values.get("kMSKeyArn", []) if k.startswith("arn:"))
                self.log_groups[name].update(values.get("logGroup", []))
                self.file_systems[name].update(v for k, v in row.fields if k == "fileSystemConfigs.arn")
            elif op in ("CreateEventSourceMapping", "UpdateEventSourceMapping"):
                self.sources[name].update(values.get("eventSourceArn", []))
                self.destinations[name].update(values.get("destination", []))  # on failure
            elif op in ("PutFunctionEventInvokeConfig", "UpdateFunctionEventInvokeConfig"):
                self.destinations[name].update(values.get("destination", []))  # on success, on failure

    def roles(self) -> dict[str, set[tuple[str, str]]]:
        out: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for name, (role, region) in self.role.items():
            out[role].add((name, region))
        return out


def _note_lambda_role(row: UsageRow, functions: dict[str, set[tuple[str, str]]]) -> None:
    """The Lambda service assuming a role marks it as a function's execution role."""
    if row.principal != "service:lambda.amazonaws.com" or row.name != "AssumeRole":
        return
    values = dict(row.fields)
    role, session = values.get("roleArn"), values.get("roleSessionName")
    if role and session:
        functions[role].add((session, row.region))


def _policy(principal: str, used: list, functions: set[tuple[str, str]], options: GenerateOptions,
            catalog: Catalog, configs: _FunctionConfigs | None = None) -> GeneratedPolicy:
    grants: dict[tuple[str, bool], set[str]] = defaultdict(set)  # (action, denied) → resources
    conditions: dict[tuple[str, bool], set[tuple[str, str, str]]] = defaultdict(set)
    evidence: dict[str, list] = {}
    regions: dict[tuple[str, bool], set[str]] = defaultdict(set)
    for row, mapping in used:
        denied = row.error_class == DENIED
        for p in mapping.permissions:
            key = (p.action, denied)
            grants[key].update(p.resources)
            regions[key].add(row.region)
            if options.conditions:
                for k, v in p.conditions:
                    conditions[key].add(("StringEquals", k, v))
            _add_evidence(evidence, p.action, row, p.provenance, denied)
    notes = []
    if options.baseline and functions:
        stream_groups = {(group, row.region) for row, _ in used if row.error_class != DENIED
                         and (row.source, row.name) == ("logs.amazonaws.com", "CreateLogStream")
                         for key, group in row.fields if key == "logGroupName"}
        for action, arn, why in _lambda_baseline(principal, functions, configs or _FunctionConfigs(), catalog,
                                                 stream_groups):
            grants[(action, False)].add(arn)
            if arn != "*":
                regions[(action, False)].add(arn.split(":")[3])
            _add_evidence(evidence, action, None, f"baseline:{why}", False)
        notes.append("Lambda execution role of " + ", ".join(sorted({f for f, _ in functions}))
                     + ": what the Lambda service does with the role (logs; X-Ray, VPC network interfaces, file systems, "
                     "event-source polling, dead-letter and destination deliveries where the trail shows them) added as "
                     "baseline; --no-baseline drops it")
    if options.conditions:
        for key, seen in regions.items():
            if all(r not in ("unknown",) for r in seen) and not key[0].startswith(("iam:", "sts:")):
                conditions[key].add(("StringEquals", "aws:RequestedRegion", ",".join(sorted(seen))))
    statements = _statements(grants, conditions, options, catalog)
    for (action, _denied), resources in sorted(grants.items()):
        as_granted = {r: _as_granted(r, options) for r in resources}
        series = dated_series(as_granted.values())
        for pattern in collapse(resources, options):
            covered = sorted(r for r, granted in as_granted.items() if r != pattern and (
                fnmatch.fnmatchcase(r, pattern) or granted == pattern))
            one_by_one = all(as_granted[r] == pattern for r in covered)  # not by the threshold
            if pattern in series and pattern not in resources:
                notes.append(f"{action}: {len(covered)} resources of {series[pattern]} dates generalised to {pattern} "
                             f"(a time series: the next date's objects come next; e.g. {covered[0]})")
            elif pattern.endswith("*") and covered and pattern in resources:
                notes.append(f"{action}: {len(covered)} resources covered by {pattern}, also granted")
            elif pattern.endswith("*") and len(covered) > 1 and not one_by_one:
                notes.append(f"{action}: {len(covered)} resources collapsed to {pattern} (more than "
                             f"--prefix-threshold {options.prefix_threshold}; e.g. {covered[0]})")
            elif pattern not in resources and pattern != "*":
                named = ", ".join(covered) if len(covered) <= 3 else f"{len(covered)} resources (e.g. {covered[0]})"
                notes.append(f"{action}: {named or pattern} generalised to {pattern}")
    return GeneratedPolicy(principal=principal, statements=statements, notes=tuple(notes),
                           evidence={a: _evidence(e) for a, e in sorted(evidence.items())})


def _lambda_baseline(principal: str, functions: set[tuple[str, str]], configs: _FunctionConfigs,
                     catalog: Catalog, stream_groups: set[tuple[str, str]] = frozenset()) -> list[tuple[str, str, str]]:
    """(action, resource, why) of the documented baseline (``lpgen/data/lambda_baseline.json``); ``stream_groups``
    are the (log group, region) pairs in which the role created log streams."""
    parts = principal.split(":")
    partition, account = parts[1], parts[4]
    out = []

    def logs(group: str, region: str) -> list[tuple[str, str, str]]:
        # CloudWatch Logs authorizes even CreateLogGroup against "log-group:NAME:log-stream:" (its
        # AccessDenied messages name that), which the group's own ARN does not match: ":*" for all three.
        arn = group if group.startswith("arn:") else f"arn:{partition}:logs:{region}:{account}:log-group:{group}"
        return [(action, f"{arn.removesuffix(':*')}:*", "lambda-logs") for action in values("lambda_baseline.json", "logs")]

    for group, region in sorted(stream_groups):
        out += logs(group, region)
    for function, region in sorted(functions):
        for group in sorted(configs.log_groups.get(function) or {f"/aws/lambda/{function}"}):
            out += logs(group, region)
        if function in configs.traced:
            out += [(action, "*", "lambda-xray") for action in values("lambda_baseline.json", "xray")]
        if function in configs.vpc:
            out += [(action, "*", "lambda-vpc") for action in values("lambda_baseline.json", "vpc")]
        for point in sorted(configs.file_systems.get(function, ())):  # an access point: its file system is unnamed
            p = point.split(":")
            if len(p) > 5 and p[2] == "elasticfilesystem":
                out += [(action, f"arn:{p[1]}:elasticfilesystem:{p[3]}:{p[4]}:file-system/*", "lambda-file-system")
                        for action in values("lambda_baseline.json", "file_systems")]
        out += [(action, key, "lambda-environment-key") for key in sorted(configs.keys.get(function, ()))
                for action in values("lambda_baseline.json", "environment_key")]
        # what Lambda polls and where it delivers records: each action of the ARN's service, on what it takes
        for part, arns, resources_of, why in (
                ("event_sources", configs.sources, _polled, "lambda-event-source"),
                ("destinations", configs.destinations, _delivered, "lambda-destination")):
            for arn in sorted(arns.get(function, ())):
                service = arn.split(":")[2] if arn.startswith("arn:") else ""
                for action in values("lambda_baseline.json", part).get(service, []):
                    out += [(action, resource, why) for resource in resources_of(action, arn, catalog)]
    return out


def _taken(action: str, candidates: list[str], catalog: Catalog) -> list[str]:
    """The first of ``candidates`` that is of a resource type ``action`` takes (none if none is)."""
    return [c for c in candidates if catalog.match_resource_type(action, c) is not None][:1]


def _delivered(action: str, target: str, catalog: Catalog) -> list[str]:
    """What Lambda delivering records to ``target`` needs ``action`` on: the destination itself, or
    for an S3 bucket, its objects (``s3:PutObject``)."""
    s3_bucket = target.split(":")[2:3] == ["s3"] and "/" not in target
    return _taken(action, [target, f"{target}/*"] if s3_bucket else [target], catalog)


def _polled(action: str, source: str, catalog: Catalog) -> list[str]:
    """What Lambda polling ``source`` needs ``action`` on: ``*`` for an action without resource types
    (``ListStreams``) or of another service (EC2's, for an MSK cluster); else the source, or for a
    Kinesis stream consumer (enhanced fan-out) the stream it reads where the action takes a stream;
    nothing where it takes neither (``SubscribeToShard`` reads through a consumer, which a plain
    stream source has not)."""
    if not catalog.resource_types_for(action) or action.split(":")[0] != source.split(":")[2]:
        return ["*"]  # no resource; or another service's (an MSK cluster's network interfaces, which no record names)
    stream, through_consumer, _ = source.partition("/consumer/")
    return _taken(action, [stream, source] if through_consumer else [source], catalog)


def _add_evidence(evidence: dict, action: str, row: UsageRow | None, provenance: str, denied: bool) -> None:
    e = evidence.setdefault(action, {"calls": set(), "count": 0, "denied": 0, "first": None, "last": None,
                                     "regions": set(), "samples": set(), "provenance": set()})
    e["provenance"].add(provenance)
    if row is None:
        return
    e["calls"].add(f"{row.source}:{row.name}")
    e["denied" if denied else "count"] += row.count
    e["first"] = row.first_seen if e["first"] is None else min(e["first"], row.first_seen)
    e["last"] = row.last_seen if e["last"] is None else max(e["last"], row.last_seen)
    e["regions"].add(row.region)
    e["samples"].update(row.samples)


def _evidence(e: dict) -> Evidence:
    return Evidence(calls=tuple(sorted(e["calls"])), count=e["count"], denied=e["denied"],
                    first_seen=e["first"] or "", last_seen=e["last"] or "", regions=tuple(sorted(e["regions"])),
                    samples=tuple(sorted(e["samples"])[:3]), provenance=tuple(sorted(e["provenance"])))


def _statements(grants, conditions, options: GenerateOptions, catalog: Catalog) -> tuple[Statement, ...]:
    groups: dict[tuple, set[str]] = defaultdict(set)
    for (action, denied), resources in grants.items():
        if denied:  # what a used call's grant already covers needs no denied statement
            allowed = collapse(grants.get((action, False), ()), options)
            resources = {r for r in resources if not any(fnmatch.fnmatchcase(r, a) for a in allowed)}
            if not resources:
                continue
        scoped = collapse(resources, options)
        conds = _merge_conditions(conditions.get((action, denied), set()))
        groups[(scoped, conds, denied)].add(action)
    if options.compact:
        groups = {k: _compact(v, catalog) for k, v in groups.items()}
    ordered = sorted(groups.items(), key=lambda kv: (kv[0][2], sorted(kv[1])[0], kv[0][0], kv[0][1]))
    statements, used_sids = [], defaultdict(int)
    for (resources, conds, denied), actions in ordered:
        sid = statement_sid(actions, resources, denied)
        used_sids[sid] += 1
        if used_sids[sid] > 1:
            sid = f"{sid}{used_sids[sid]}"
        statements.append(Statement(sid=sid, actions=tuple(sorted(actions)), resources=resources, conditions=conds))
    return tuple(statements)


def _merge_conditions(found: set[tuple[str, str, str]]) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    merged: dict[tuple[str, str], set[str]] = defaultdict(set)
    for operator, key, value in found:
        merged[(operator, key)].update(value.split(",") if key == "aws:RequestedRegion" else [value])
    return tuple((op, key, tuple(sorted(values))) for (op, key), values in sorted(merged.items()))


def statement_sid(actions: set[str], resources: tuple[str, ...], denied: bool) -> str:
    """A statement's Sid from its content: the services, and whether it is scoped."""
    prefixes = sorted({a.split(":", 1)[0] for a in actions})
    name = "".join(re.sub(r"[^A-Za-z0-9]", "", p.title()) for p in prefixes[:3]) or "Actions"
    scope = "AnyResource" if resources == ("*",) else "Scoped"
    return ("WantedButDenied" if denied else "") + name + scope


def _compact(actions: set[str], catalog: Catalog) -> set[str]:
    """Replace groups of actions by ``prefix:Verb*`` where every catalogue action it covers is present."""
    by_prefix: dict[str, set[str]] = defaultdict(set)
    for a in actions:
        by_prefix[a.split(":", 1)[0]].add(a.split(":", 1)[1])
    out = set()
    for prefix, names in by_prefix.items():
        verbs = defaultdict(set)
        for n in names:
            m = re.match(r"^[A-Z][a-z]+", n)
            verbs[m.group(0) if m else n].add(n)
        for verb, group in verbs.items():
            everything = {a.name for a in catalog.matching(f"{prefix}:{verb}*")}
            if len(group) > 1 and everything and everything <= group:
                out.add(f"{prefix}:{verb}*")
            else:
                out.update(f"{prefix}:{n}" for n in group)
    return out


# -- resources ----------------------------------------------------------------------


def collapse(resources: Iterable[str], options: GenerateOptions = GenerateOptions()) -> tuple[str, ...]:
    """Fewer ARNs, conservatively: ``*`` wins; S3 object keys collapse to their deepest common
    prefix, and ARNs differing only in a trailing id to a wildcard, once there are more than
    ``prefix_threshold`` of them; account and region become ``*`` only when asked; a resource
    whose ARN carries an id AWS generated at its creation is named by its name (:func:`by_name`), an S3
    object named by a digest of its content by its folder, a layer version by its layer and a log stream by its
    group (:func:`by_family`)."""
    arns = set(resources)
    if "*" in arns:
        return ("*",)
    arns = {_as_granted(a, options) for a in arns}
    groups: dict[str, set[str]] = defaultdict(set)
    for arn in arns:
        head, sep, tail = _split_tail(arn)
        groups[head + sep].add(tail)
    out = set()
    for head, tails in groups.items():
        objects = ":s3:::" in head and head.endswith("/")
        if objects:
            tails = _by_series(tails)
        if (len(tails) > options.prefix_threshold and "*" not in tails
                and (objects or all(_ID_LIKE.search(t) for t in tails))):
            prefix = _common_prefix(tails)
            out.add(head + prefix + "*")
        else:
            out.update(head + t for t in tails)
    # Drop ARNs covered by a wildcard in the same set.
    wild = [a[:-1] for a in out if a.endswith("*")]
    return tuple(sorted(a for a in out if not any(a != w + "*" and a.startswith(w) for w in wild)))


_YEAR, _MONTH, _DAY, _HOUR = r"(?:19|20)\d{2}", r"(?:0[1-9]|1[0-2])", r"(?:0[1-9]|[12]\d|3[01])", r"(?:[01]\d|2[0-3])"

#: An S3 key with a date: its dataset (the folders before the date, and a name's part before it:
#: ``orders-`` of ``orders-2026-11-01.csv``) and the date, as year/month[/day[/hour]] folders,
#: YYYY-MM[-DD] or YYYYMMDD, or Hive-style partition folders (year=2026/month=11/, dt=2026-11-02/).
#: A year alone may be a tenant's number.
_DATED = re.compile(
    rf"^(?P<dataset>(?:[^/]*/)*?(?:[^/]*?[-_. ])?)(?P<date>{_YEAR}/{_MONTH}(?:/{_DAY}(?:/{_HOUR})?)?(?=/)"
    rf"|{_YEAR}-{_MONTH}(?:-{_DAY})?(?!\d)|{_YEAR}{_MONTH}{_DAY}(?!\d)"
    rf"|(?:year|dt|date|ds|day|partition_date)=[^/]+(?:/(?:month|day|hour)=[^/]+)*(?=/))")


def _by_series(keys: set[str]) -> set[str]:
    """S3 keys, with those of a dataset seen at two dates or more as the dataset's folder (``DATASET*``).

    Objects under a date are a time series: a principal that read or wrote two dates of one dataset
    will touch the next date's tomorrow, which a grant of the dates seen (or of their month, the
    deepest common prefix) would deny. One date alone is left as it is: it may be a one-off.
    """
    series = _series(keys)
    if not series:
        return keys
    kept = {k for k in keys if (m := _DATED.match(k)) is None or m["dataset"] not in series}
    return kept | {dataset + "*" for dataset in series}


def _series(keys: Iterable[str]) -> dict[str, int]:
    """The datasets of S3 keys seen at two dates or more, with how many dates."""
    dates: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        m = _DATED.match(key)
        if m is not None:
            dates[m["dataset"]].add(m["date"])
    return {dataset: len(seen) for dataset, seen in dates.items() if len(seen) > 1}


def dated_series(arns: Iterable[str]) -> dict[str, int]:
    """The S3 datasets (``bucket/DATASET*``) that :func:`collapse` grants as a time series, with their dates."""
    keys: dict[str, list[str]] = defaultdict(list)
    for arn in arns:
        bucket, sep, key = arn.partition("/")
        if sep and ":s3:::" in bucket:
            keys[bucket].append(key)
    return {f"{bucket}/{dataset}*": n for bucket, theirs in keys.items() for dataset, n in _series(theirs).items()}


#: A generated identifier (UUID, instance id, hex stream name): collapsible; a chosen name is not.
_ID_LIKE = re.compile(r"[0-9a-f]{8,}|\d{6,}")


def _split_tail(arn: str) -> tuple[str, str, str]:
    """(head, separator, tail): S3 objects split after the bucket, others at the last / or :."""
    if arn.startswith("arn:") and ":s3:::" in arn and "/" in arn:
        bucket, _, key = arn.partition("/")
        return bucket, "/", key
    resource = arn.split(":", 5)[5] if arn.count(":") >= 5 else arn
    cut = arn.rfind(":") if ":" in resource else arn.rfind("/")
    return (arn[:cut], arn[cut], arn[cut + 1:]) if cut > 0 else (arn, "", "")


def _common_prefix(tails: set[str]) -> str:
    """The deepest common prefix, cut back to a path separator for S3-style keys."""
    first, last = min(tails), max(tails)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    prefix = first[:n]
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""


def _as_granted(arn: str, options: GenerateOptions) -> str:
    """An ARN as a grant names it before collapsing: generalised as asked, by name (:func:`by_name`),
    content-named objects, layer versions and log streams by their family (:func:`by_family`)."""
    return by_family(by_name(_generalize(arn, options.generalize)))


#: A stack's, change set's or stack set's ARN ends in an id CloudFormation generates at creation.
_STACK_ID = re.compile(r"^(arn:[^:]+:cloudformation:[^:]*:[^:]*:(?:stack/[^/]+/|changeSet/[^/]+/|stackset/[^/:]+:))"
                       r"[^/:*]+$")

#: A secret's ARN: its name, then (in a complete ARN) ``-`` and six random characters.
_SECRET = re.compile(r"^(arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:)([^*?]+?)(-[A-Za-z0-9]{6})?$")

#: A Lambda layer version's ARN: the layer's, then the version number Lambda gave it at publication.
_LAYER_VERSION = re.compile(r"^(arn:[^:]+:lambda:[^:]*:[^:]*:layer:[^:]+:)\d+$")

#: A log stream (names hold no colon): of a log group, which is where the next stream is created.
_LOG_STREAM = re.compile(r"^(arn:[^:]+:logs:[^:]*:[^:]*:log-group:[^:]+:log-stream:)[^:*]+$")

#: An S3 object whose name is a digest of its content (MD5, SHA-1 or SHA-256 in hex, then perhaps
#: extensions): what `sam deploy`, `aws cloudformation package` and CDK upload their artifacts as.
_CONTENT_NAMED = re.compile(r"^(arn:[^:]+:s3:::[^/]+/(?:[^/]*/)*)(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})"
                            r"(?:\.[A-Za-z0-9]+)*$")


def by_name(arn: str) -> str:
    """``arn`` with the id AWS generated when it created the resource left open.

    A policy naming that id breaks when the resource is deleted and created again under the
    same name: a CloudFormation stack (as one in ROLLBACK_COMPLETE must be) gets a new id, a
    Secrets Manager secret a new six-character suffix. So a stack is granted as ``stack/NAME/*``
    and a secret as ``secret:NAME-??????``, as calls that gave only the name already are. For a
    secret this also mends a partial ARN (the name without the suffix), which IAM never matches;
    one whose name itself ends in ``-`` and six letters or digits cannot be told from a complete one.
    """
    if ":cloudformation:" in arn:
        return _STACK_ID.sub(r"\1*", arn)
    if ":secretsmanager:" in arn and not arn.endswith("-??????"):
        m = _SECRET.match(arn)
        if m is not None:
            return f"{m[1]}{m[2]}-??????"
    return arn


def by_family(arn: str) -> str:
    """``arn``, or the family of resources the next deploy will name instead of it.

    - An S3 object named by a digest of its content is granted as its folder (``FOLDER/*``): the
      next build uploads its artifact under a new digest. Only lower-case hex of a digest's exact
      length counts (32, 40 or 64 characters, perhaps with extensions): a UUID or a date in a key
      is as often a tenant or a partition that names what the caller may touch.
    - A Lambda layer version is granted as every version of its layer (``layer:NAME:*``): Lambda
      numbers the versions as they are published, and a deployment moves to the next one.
    - A log stream is granted as every stream of its log group (``log-group:G:log-stream:*``): a
      writer creates a new stream for each day, instance or run (``CreateLogStream`` always names
      one that does not exist yet), and writes to that one.

    A policy naming what the trail showed would deny the next deploy. Unlike :func:`by_name`, the
    call named the resource exactly: only the grant is widened, never what the call used.
    """
    if ":s3:::" in arn:
        return _CONTENT_NAMED.sub(r"\1*", arn)
    if ":lambda:" in arn:
        return _LAYER_VERSION.sub(r"\1*", arn)
    if ":logs:" in arn:
        return _LOG_STREAM.sub(r"\1*", arn)
    return arn


def _generalize(arn: str, what: frozenset[str]) -> str:
    if not what or not arn.startswith("arn:"):
        return arn
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return arn
    if "region" in what and parts[3]:
        parts[3] = "*"
    if "account" in what and parts[4]:
        parts[4] = "*"
    return ":".join(parts)
