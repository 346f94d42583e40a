"""Map a CloudTrail call (eventSource, eventName, request fields) to the IAM actions it needed.

The order, and the provenance each step reports:

1. the eventSource's IAM prefix, from the catalogue;
2. precise version-suffix removal (Lambda ``GetFunction20150331v2``, CloudFront
   ``UpdateDistribution2016_11_25``), only when the rest is a botocore operation;
3. ``table``: the reviewed override table ``lpgen/data/mapping_overrides.json``
   (renames, batch calls, permissionless calls, events that are no action);
4. ``rule:<name>``: calls whose actions depend on the request (DynamoDB
   transactions and PartiQL, KMS ReEncrypt, S3 copies and versions, API Gateway);
5. ``same-name``: ``prefix:eventName``, only if the catalogue has that action;
6. ``unknown``: nothing is emitted.

Every emitted action exists in the catalogue. Side permissions the call needed
(``iam:PassRole`` on a role it passed, from ``lpgen/data/side_permissions.json``)
and the ``kms:ViaService`` of KMS calls a service made for the principal are
added with their own provenance.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote

from lpgen.catalog import Action, Catalog, arn_pattern_regex, load_catalog
from lpgen.data_files import load
from lpgen.fields import CREATED, ROLE_ARN, Fields, role_value_keys
from lpgen.model import DENIED, Event
from lpgen.normalize import account_of, partition_of_region

# Statuses of a mapped call.
USED, WANTED, PERMISSIONLESS, NOT_AN_ACTION, SERVICE, UNKNOWN = (
    "used", "denied", "permissionless", "not-an-action", "service", "unknown")


def _requested(fields: Fields) -> Fields:
    """Fields without what the call created: a RunInstances needed instance/*, not the instance it made."""
    return fields if not any(k.startswith(CREATED) for k, _ in fields) else tuple(
        (k, v) for k, v in fields if not k.startswith(CREATED))


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """What mapping needs to know of a call: an event, or an aggregate of the usage store."""

    source: str
    name: str
    fields: Fields = ()
    region: str = "us-east-1"
    account: str = "*"
    error_class: str = "ok"
    invoked_by: str | None = None
    service_initiated: bool = False
    principal: str = ""  # who called: some IAM calls act on the calling user when they name none

    @classmethod
    def of_event(cls, e: Event) -> Call:
        return cls(source=e.source, name=e.name, fields=_requested(e.fields), region=e.region,
                   account=account_of(e.principal, e.account), error_class=e.error_class,
                   invoked_by=e.invoked_by, service_initiated=e.service_initiated, principal=e.principal)

    @classmethod
    def of_row(cls, row: Any) -> Call:
        """From a :class:`lpgen.store.UsageRow`; resources named by bare names land in the principal's account."""
        return cls(source=row.source, name=row.name, fields=_requested(row.fields), region=row.region,
                   account=account_of(row.principal, "*"), error_class=row.error_class,
                   invoked_by=row.invoked_by, service_initiated=row.principal.startswith("service:"),
                   principal=row.principal)

    def get(self, path: str) -> list[str]:
        return [v for k, v in self.fields if k == path]

    def ending(self, *names: str) -> list[str]:
        """Values of fields whose last path segment is one of ``names`` (case-insensitive)."""
        wanted = {n.lower() for n in names}
        return [v for k, v in self.fields if k.rsplit(".", 1)[-1].lower() in wanted]

    @property
    def partition(self) -> str:
        return partition_of_region(self.region)


@dataclass(frozen=True, slots=True, kw_only=True)
class Permission:
    """One IAM action a call needed, on which resources, and why lpgen says so."""

    action: str
    resources: tuple[str, ...]
    provenance: str  # table, rule:<name>, same-name, side:pass-role, ...
    note: str = ""
    conditions: tuple[tuple[str, str], ...] = ()
    side: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Mapping:
    source: str
    name: str
    status: str
    prefix: str | None = None
    operation: str | None = None  # the eventName without a version suffix
    permissions: tuple[Permission, ...] = ()
    provenance: str = ""
    reason: str = ""

    @property
    def actions(self) -> tuple[str, ...]:
        return tuple(sorted({p.action for p in self.permissions}))


# -- data ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Override:
    actions: tuple[str, ...]
    status: str | None
    rule: str | None
    note: str
    reference: str


@functools.cache
def _overrides() -> dict[tuple[str, str], _Override]:
    data = load("mapping_overrides.json")
    refs = data.get("references", {})
    table = {}
    for e in data["overrides"]:
        ref = e.get("reference", "")
        key = ref.split(":", 1)[0]
        table[(e["source"], e["name"])] = _Override(
            actions=tuple(e.get("actions", ())), status=e.get("status"), rule=e.get("rule"),
            note=e.get("note", ""), reference=refs.get(key, ref) + (f" ({ref.split(':', 1)[1]})" if ":" in ref else ""))
    return table


@functools.cache
def _side_permissions(kind: str = "pass_role") -> dict[tuple[str, str], list[dict]]:
    table: dict[tuple[str, str], list[dict]] = {}
    for e in load("side_permissions.json")[kind]["values"]:
        table.setdefault((e["source"], e["operation"]), []).append(e)
    return table


@functools.cache
def _via_services() -> frozenset[str]:
    return frozenset(load("side_permissions.json")["kms_via_services"]["values"])


def _override(call: Call, op: str) -> _Override | None:
    """The table entry for the call, under its eventName or its operation name."""
    return _overrides().get((call.source, call.name)) or _overrides().get((call.source, op))


_SUFFIXES = {
    "lambda.amazonaws.com": re.compile(r"^(?P<op>[A-Za-z]+?)(?P<v>20\d{6}(v\d+)?)$"),
    "cloudfront.amazonaws.com": re.compile(r"^(?P<op>[A-Za-z]+?)(?P<v>20\d\d_\d\d_\d\d)$"),
}


@functools.cache
def _operations(source: str) -> frozenset[str]:
    catalog = load_catalog()
    entry = catalog.event_source(source)
    if entry is None or entry.botocore is None:
        return frozenset()
    return frozenset(catalog.botocore_operations(entry.botocore))


def operation_name(source: str, name: str) -> str:
    """``name`` without an API-version suffix, removed only where CloudTrail adds one.

    ``GetFunction20150331v2`` → ``GetFunction``; ``CreateEnvironmentEC2`` and
    ``RestoreDBClusterFromS3`` keep their digits (not Lambda or CloudFront, and
    the stripped name must be a botocore operation).
    """
    rule = _SUFFIXES.get(source)
    if rule is None:
        return name
    m = rule.match(name)
    if m and m["op"] in _operations(source):
        return m["op"]
    return name


# -- the mapper ---------------------------------------------------------------


@functools.lru_cache(maxsize=65_536)
def map_call(call: Call, catalog: Catalog | None = None) -> Mapping:
    """The IAM actions ``call`` needed, with resources and provenance."""
    catalog = catalog or load_catalog()
    if call.service_initiated:
        return Mapping(source=call.source, name=call.name, status=SERVICE,
                       reason="initiated by an AWS service on its own: no principal's permission")
    prefix = catalog.prefix_for_event_source(call.source)
    op = operation_name(call.source, call.name)
    override = _override(call, op)
    if override is not None and override.status:
        return Mapping(source=call.source, name=call.name, status=override.status, prefix=prefix, operation=op,
                       provenance="table", reason=f"{override.note} [{override.reference}]")
    if prefix is None:
        return Mapping(source=call.source, name=call.name, status=UNKNOWN, operation=op,
                       reason=f"no IAM prefix known for eventSource {call.source}")
    status = WANTED if call.error_class == DENIED else USED
    rule = (_RULE_BY_CALL.get((call.source, op)) or (override.rule if override is not None else None)
            or _RULE_BY_PREFIX.get(prefix))
    perms: list[Permission] = []
    if rule is not None and rule in _RULES:
        perms = list(_RULES[rule](call, op, catalog))
        provenance, reason = f"rule:{rule}", (override.note if override else _RULE_NOTES.get(rule, ""))
    elif override is not None:
        perms = [_permission(a, call, catalog, "table", override.note) for a in override.actions]
        provenance, reason = "table", f"{override.note} [{override.reference}]"
    elif catalog.has_action(f"{prefix}:{op}"):
        perms = [_permission(f"{prefix}:{op}", call, catalog, "same-name", "")]
        provenance, reason = "same-name", f"the eventName is an IAM action of {prefix}"
    else:
        return Mapping(source=call.source, name=call.name, status=UNKNOWN, prefix=prefix, operation=op,
                       reason=f"{prefix}:{op} is not an IAM action and no table entry or rule covers it")
    perms = [p for p in perms if p is not None]
    if not perms:
        return Mapping(source=call.source, name=call.name, status=UNKNOWN, prefix=prefix, operation=op,
                       provenance=provenance, reason=f"{reason}; the request did not say which actions")
    perms += (_pass_role(call, op, catalog) + _kms_keys(call, op, catalog) + _caller_checks(call, op, catalog)
              + _transforms(call, op, catalog) + _tags_on_create(call, op, catalog) + _request_options(call, op, catalog)
              + _bearer_tokens(call, op, catalog) + _data_api_credentials(call, op, catalog))
    if (call.source == "kms.amazonaws.com" and call.invoked_by and call.invoked_by.endswith(".amazonaws.com")
            and call.invoked_by.split(".", 1)[0] in _via_services()):
        via = f"{call.invoked_by.split('.', 1)[0]}.{call.region}.amazonaws.com"
        perms = [_with_condition(p, ("kms:ViaService", via)) if p.action.startswith("kms:") else p for p in perms]
    return Mapping(source=call.source, name=call.name, status=status, prefix=prefix, operation=op,
                   permissions=tuple(sorted(perms, key=lambda p: (p.side, p.action))), provenance=provenance,
                   reason=reason)


def map_event(e: Event, catalog: Catalog | None = None) -> Mapping:
    return map_call(Call.of_event(e), catalog)


def _with_condition(p: Permission, condition: tuple[str, str]) -> Permission:
    return Permission(action=p.action, resources=p.resources, provenance=p.provenance, note=p.note,
                      conditions=tuple(sorted({*p.conditions, condition})), side=p.side)


def _permission(action: str, call: Call, catalog: Catalog, provenance: str, note: str,
                candidates: Iterable[str] | None = None, side: bool = False,
                conditions: tuple[tuple[str, str], ...] = ()) -> Permission | None:
    """``action`` (canonical casing) on the ARNs among ``candidates`` (default: all the call names)."""
    found = catalog.action(action)
    if found is None:  # a table or rule naming a non-action is a bug; never emit it
        return None
    arns = list(candidates) if candidates is not None else candidate_arns(call)
    return Permission(action=found.full_name, resources=scope(found, arns, catalog, call),
                      provenance=provenance, note=note, side=side, conditions=conditions)


#: Services that authorize a request against every resource type the reference marks required for
#: its action (EC2: ``CreateSnapshot`` against the new snapshot and the volume). Elsewhere the marks
#: often list alternatives (``bedrock:InvokeModel`` marks a dozen kinds of model), so nothing is added.
_EVERY_REQUIRED_TYPE = frozenset({"ec2"})


def scope(action: Action, arns: Iterable[str], catalog: Catalog, call: Call) -> tuple[str, ...]:
    """The ARNs that are of one of ``action``'s resource types; ``*`` when it has none or none matched.

    In a service of :data:`_EVERY_REQUIRED_TYPE`, a required type that no ARN of the call is of
    (the security group ``CreateSecurityGroup`` creates, the image ``RunInstances`` starts from when
    the trail names none) is granted as any resource of that type in the call's account and region:
    IAM authorizes the request against it too, and a policy without it denies the call."""
    types = catalog.resource_types_for(action)
    if not types or action.full_name in _wildcard_only():
        return ("*",)
    kinds = {a: catalog.match_resource_type(action, a) for a in arns}
    matched = {a for a, kind in kinds.items() if kind is not None}
    if not matched:
        return ("*",)
    if action.prefix in _EVERY_REQUIRED_TYPE:
        missing = ({r.name.lower() for r in action.resource_types if r.required}
                   - {kind.name.lower() for kind in kinds.values() if kind is not None})
        matched.update(kind.any_arn(call.partition, call.region, call.account)
                       for kind in types if kind.name.lower() in missing)
    return tuple(sorted(matched))


@functools.cache
def _wildcard_only() -> frozenset[str]:
    """Actions AWS authorizes only when granted on ``*`` (``wildcard_only`` in mapping_overrides.json)."""
    return frozenset(load("mapping_overrides.json")["wildcard_only"]["values"])


# -- resources named by a call -------------------------------------------------


#: Request fields naming where a service will deliver records later, with another principal's
#: permissions (the dead-letter queue and destinations of a Lambda function: its execution role).
_DELIVERY_FIELDS: dict[str, tuple[str, ...]] = {"lambda.amazonaws.com": ("destinationConfig.", "deadLetterConfig.")}


def candidate_arns(call: Call) -> list[str]:
    """Every ARN the call names: from ``resources[]``, ARN-valued fields, and service-specific names.

    An ``ARNPrefix`` in ``resources[]`` stands for everything under it. For S3, only
    ``resources[]`` and the bucket and key count (a replication rule's destination bucket
    is no resource of the call), and a call through an access point is scoped to it. Where
    Lambda is to deliver a function's records (:data:`_DELIVERY_FIELDS`) is no resource of
    the call either: the execution role sends there, not the caller.
    """
    skipped = _DELIVERY_FIELDS.get(call.source, ())
    arns = {v + "*" if k == "arnPrefix" else v for k, v in call.fields
            if v.startswith("arn:") and (call.source != "s3.amazonaws.com" or k in ("arn", "arnPrefix"))
            and not k.startswith(skipped)}
    builder = _BUILDERS.get(call.source)
    if builder is not None:
        arns.update(builder(call))
    if call.source == "s3.amazonaws.com":
        arns = _through_access_point(call, arns)
    return sorted(arns)


def _through_access_point(call: Call, arns: set[str]) -> set[str]:
    points = {a for a in arns if ":accesspoint/" in a and "/object/" not in a}
    if not points:
        return arns
    objects = {f"{p}/object/{k}" for p in points for k in call.get("key")}
    return {a for a in arns if ":accesspoint/" in a} | objects


def _arn(call: Call, service: str, resource: str, *, region: bool = True, account: bool = True) -> str:
    return (f"arn:{call.partition}:{service}:{call.region if region else ''}:"
            f"{call.account if account else ''}:{resource}")


def _s3(call: Call) -> list[str]:
    out = []
    for bucket in call.ending("bucketName", "bucket"):
        if bucket.startswith("arn:"):
            continue
        out.append(f"arn:{call.partition}:s3:::{bucket}")
        out += [f"arn:{call.partition}:s3:::{bucket}/{key}" for key in call.get("key")]
    return out


def _dynamodb(call: Call) -> list[str]:
    out = []
    for path, table in call.fields:
        if path.rsplit(".", 1)[-1] == "tableName" and not table.startswith("arn:"):
            out.append(_arn(call, "dynamodb", f"table/{table}"))
            out += [_arn(call, "dynamodb", f"table/{table}/index/{i}") for i in call.get("indexName")]
    return out


def _lambda(call: Call) -> list[str]:
    """Function ARNs as the call named them: a qualified call (alias, version) needs the qualified ARN."""
    out = []
    qualifiers = call.get("qualifier")
    for fn in call.ending("functionName"):
        if fn.startswith("arn:"):
            continue  # taken as it is, qualifier included
        name, qualifier = function_name(fn)
        for q in ([qualifier] if qualifier else qualifiers or [None]):
            out.append(_arn(call, "lambda", f"function:{name}" + (f":{q}" if q else "")))
    return out


def function_name(value: str) -> tuple[str, str | None]:
    """(name, qualifier) of a Lambda function as a request names it: its name, ARN or partial ARN
    (``123456789012:function:NAME``), each perhaps with a version or alias after a colon."""
    parts = value.split(":")
    if parts[0] == "arn" and len(parts) >= 7:  # arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
        at = 6
    elif len(parts) >= 3 and parts[1] == "function":  # ACCOUNT:function:NAME[:QUALIFIER]
        at = 2
    else:  # NAME[:QUALIFIER]
        at = 0
    return parts[at], (parts[at + 1] if len(parts) > at + 1 else None)


#: EC2 id prefixes → resource type names in ARNs.
_EC2_IDS = {"i": "instance", "ami": "image", "subnet": "subnet", "vpc": "vpc", "vol": "volume",
            "snap": "snapshot", "sg": "security-group", "eni": "network-interface", "igw": "internet-gateway",
            "nat": "natgateway", "rtb": "route-table", "lt": "launch-template", "eipalloc": "elastic-ip",
            "vpce": "vpc-endpoint", "tgw": "transit-gateway", "key": "key-pair"}


def _ec2(call: Call) -> list[str]:
    """EC2 ARNs from resource ids (``i-...``, ``ami-...``, ``sg-...``); RunInstances also creates
    an instance, its volumes and network interfaces, whose ids the request cannot name."""
    out = []
    for _, value in call.fields:
        kind = _EC2_IDS.get(value.split("-", 1)[0] if re.match(r"^[a-z]+-[0-9a-f]{8,17}$", value) else "")
        if kind in ("image", "snapshot"):
            out.append(f"arn:{call.partition}:ec2:{call.region}::{kind}/{value}")
        elif kind:
            out.append(_arn(call, "ec2", f"{kind}/{value}"))
    out += [_arn(call, "ec2", f"key-pair/{k}") for k in call.ending("keyName")]
    if call.name == "RunInstances":
        out += [_arn(call, "ec2", f"{kind}/*") for kind in ("instance", "volume", "network-interface")]
        if not any(v.startswith("subnet-") for _, v in call.fields):  # the default VPC's subnet
            out.append(_arn(call, "ec2", "subnet/*"))
        if not any(v.startswith("sg-") for _, v in call.fields):  # the default security group
            out.append(_arn(call, "ec2", "security-group/*"))
    return out


def _sqs(call: Call) -> list[str]:
    out = []
    for url in call.ending("queueUrl"):
        m = re.match(r"^https?://[^/]+/(?P<account>\d{12})/(?P<name>[^/?]+)", url)
        if m:
            host = url.split("/")[2]
            region = next((p for p in host.split(".") if re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", p)), call.region)
            out.append(f"arn:{partition_of_region(region)}:sqs:{region}:{m['account']}:{m['name']}")
    out += [_arn(call, "sqs", q) for q in call.ending("queueName")]
    return out


_KEY_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$|^mrk-[0-9a-f]{32}$")


def _kms(call: Call) -> list[str]:
    out = []
    for key in call.ending("keyId", "sourceKeyId", "destinationKeyId", "aliasName", "targetKeyId"):
        if key.startswith("arn:"):
            continue
        if _KEY_ID.match(key):
            out.append(_arn(call, "kms", f"key/{key}"))
        elif key.startswith("alias/"):
            out.append(_arn(call, "kms", key))
    return out


def _secretsmanager(call: Call) -> list[str]:
    # A secret's ARN ends in a random 6-character suffix that a bare name does not carry.
    names = call.ending("secretId", "secretIdList") + _created_name(call, "CreateSecret")
    return [_arn(call, "secretsmanager", f"secret:{s}-??????") for s in names if not s.startswith("arn:")]


def _created_name(call: Call, *creates: str) -> list[str]:
    """The ``name`` a creating call gives what it creates (elsewhere ``name`` may name something else)."""
    return call.get("name") if call.name in creates else []


def _sns(call: Call) -> list[str]:
    return [_arn(call, "sns", t) for t in call.ending("topicName") + _created_name(call, "CreateTopic")
            if not t.startswith("arn:")]


def _states(call: Call) -> list[str]:
    out = [_arn(call, "states", f"stateMachine:{n}") for n in call.ending("stateMachineName")
           + _created_name(call, "CreateStateMachine") if not n.startswith("arn:")]
    return out + [_arn(call, "states", f"activity:{n}") for n in _created_name(call, "CreateActivity")]


#: Reads that return composite alarms only when granted on * (CloudWatch API Reference: "you must be signed on
#: with the cloudwatch:DescribeAlarms permission that is scoped to *"); they return them only when asked to.
_COMPOSITE_READS = frozenset({"DescribeAlarms", "DescribeAlarmHistory"})


def _cloudwatch(call: Call) -> list[str]:
    if call.name in _COMPOSITE_READS and "CompositeAlarm" in call.get("alarmTypes"):
        return []  # nothing to scope to: *
    alarms = [_arn(call, "cloudwatch", f"alarm:{n}") for n in call.ending("alarmName", "alarmNames")
              if not n.startswith("arn:")]
    rules = [_arn(call, "cloudwatch", f"insight-rule/{n}") for n in call.ending("ruleName", "ruleNames")
             if "InsightRule" in call.name and not n.startswith("arn:")]
    return alarms + rules


def _ecs(call: Call) -> list[str]:
    """Clusters, task definitions (``family`` or ``family:revision``; a new or latest revision is any) and
    services (``service/CLUSTER/NAME``, in the ``default`` cluster when the request names none)."""
    named = call.ending("cluster", "clusterName")
    out = [_arn(call, "ecs", f"cluster/{c}") for c in named if not c.startswith("arn:")]  # ARNs are taken as given
    clusters = [c.rsplit("cluster/", 1)[-1] for c in named]
    for td in call.ending("taskDefinition") + call.get("family"):
        if not td.startswith("arn:"):
            family, _, revision = td.partition(":")
            out.append(_arn(call, "ecs", f"task-definition/{family}:{revision or '*'}"))
    out += [_arn(call, "ecs", f"service/{cluster}/{name}") for name in call.ending("serviceName")
            for cluster in clusters or ["default"]]
    return out


def _ssm(call: Call) -> list[str]:
    out = [_arn(call, "ssm", f"parameter/{n.lstrip('/')}") for n in call.ending("name", "names")
           if not n.startswith("arn:")]
    # GetParametersByPath is authorized against the path as the request gave it (``/app`` is
    # ``parameter/app``, ``/app/`` is ``parameter/app/``), not against the parameters it returns.
    out += [_arn(call, "ssm", f"parameter/{p.lstrip('/')}" if p.strip("/") else "parameter/*")
            for p in call.get("path")]
    return out


def _logs(call: Call) -> list[str]:
    out = []
    for group in call.ending("logGroupName"):
        out.append(_arn(call, "logs", f"log-group:{group}"))
        out.append(_arn(call, "logs", f"log-group:{group}:*"))
        out += [_arn(call, "logs", f"log-group:{group}:log-stream:{s}") for s in call.ending("logStreamName")]
    return out


def _named(service: str, template: str, *keys: str):
    def build(call: Call) -> list[str]:
        return [_arn(call, service, template.format(v)) for v in call.ending(*keys) if not v.startswith("arn:")]
    return build


_efs_file_systems = _named("elasticfilesystem", "file-system/{}", "fileSystemId")
_efs_access_points = _named("elasticfilesystem", "access-point/{}", "accessPointId")


def _efs(call: Call) -> list[str]:
    return _efs_file_systems(call) + _efs_access_points(call)


def _s3vectors(call: Call) -> list[str]:
    """S3 Vectors buckets and their indexes, named by the bucket's name and the index's."""
    buckets = [b for b in call.ending("vectorBucketName") if not b.startswith("arn:")]
    return [_arn(call, "s3vectors", f"bucket/{b}") for b in buckets] + [
        _arn(call, "s3vectors", f"bucket/{b}/index/{i}") for b in buckets for i in call.ending("indexName")]


def _redshift(call: Call) -> list[str]:
    """A cluster, and what GetClusterCredentials and the Redshift Data API authorize on it: the database
    user, its groups and the database (``dbuser:CLUSTER/USER``, ``dbgroup:CLUSTER/GROUP``, ``dbname:CLUSTER/DB``)."""
    out = []
    for cluster in (c for c in call.get("clusterIdentifier") if not c.startswith("arn:")):
        out.append(_arn(call, "redshift", f"cluster:{cluster}"))
        out += [_arn(call, "redshift", f"dbuser:{cluster}/{user}") for user in call.get("dbUser")]
        out += [_arn(call, "redshift", f"dbgroup:{cluster}/{group}") for group in call.get("dbGroups")]
        out += [_arn(call, "redshift", f"dbname:{cluster}/{db}") for db in call.get("dbName") + call.get("database")]
    return out


def _iam(call: Call) -> list[str]:
    out = []
    # Only the calls that create an entity give its path, "/" when they give none; elsewhere it is unknown
    path = next(iter(call.get("path")), "/" if call.name in _IAM_CREATES else None)
    for kind, keys in (("role", ("roleName",)), ("user", ("userName",)), ("group", ("groupName",)),
                       ("instance-profile", ("instanceProfileName",))):
        for name in call.ending(*keys):
            out += iam_entity_arns(call, kind, name, path)
    if call.name in _IAM_SELF and not call.ending("userName") and ":iam::" in call.principal and ":user/" in call.principal:
        out.append(call.principal)  # the calling user, whose ARN (with its path) the principal is
    if call.name == "CreatePolicy":  # a customer managed policy's ARN holds its path too
        out += [a for n in call.get("policyName") for a in iam_entity_arns(call, "policy", n, path)]
    base = f"arn:{call.partition}:iam::{call.account}:"
    out += [f"{base}saml-provider/{n}" for n in _created_name(call, "CreateSAMLProvider")]
    if call.name == "CreateOpenIDConnectProvider":  # its ARN names the issuer URL without the scheme
        out += [f"{base}oidc-provider/{u.split('://', 1)[-1].rstrip('/')}" for u in call.get("url")]
    return out


#: IAM calls that act on the calling IAM user when the request names no user: ChangePassword always,
#: the others when UserName is omitted ("IAM determines the user name implicitly based on the access
#: key signing the request", IAM API Reference; tests/test_mapping_tables.py checks the list against
#: botocore's copy of it).
_IAM_SELF = frozenset({
    "ChangePassword", "CreateAccessKey", "CreateLoginProfile", "DeactivateMFADevice", "DeleteAccessKey",
    "DeleteLoginProfile", "DeleteServiceSpecificCredential", "DeleteSigningCertificate", "GetLoginProfile", "GetUser",
    "ListAccessKeys", "ListMFADevices", "ListSSHPublicKeys", "ListServiceSpecificCredentials", "ListSigningCertificates",
    "ResetServiceSpecificCredential", "UpdateAccessKey", "UpdateServiceSpecificCredential", "UpdateSigningCertificate",
    "UploadSigningCertificate",
})


#: The calls that create an IAM entity with a path (the request's, or ``/``).
_IAM_CREATES = frozenset({"CreateRole", "CreateUser", "CreateGroup", "CreateInstanceProfile", "CreatePolicy"})


def iam_entity_arns(call: Call, kind: str, name: str, path: str | None = None) -> list[str]:
    """The ARN of the IAM ``kind`` (role, user, ...) named ``name``, which holds its path.

    A request gives the path only when it creates the entity; elsewhere it is unknown, so both
    ``KIND/NAME`` and ``KIND/*/NAME``: names are unique per account and kind, so the two are exactly
    that entity whatever its path (``role/NAME`` alone denies a role under ``/service-role/``).
    :func:`resolve_iam_paths` narrows them to the ARN where the trail shows it.
    """
    base = f"arn:{call.partition}:iam::{call.account}:{kind}"
    if path is not None:
        inner = path.strip("/")
        return [f"{base}/{inner}/{name}" if inner else f"{base}/{name}"]
    return [f"{base}/{name}", f"{base}/*/{name}"]


#: An IAM entity's ARN: the part before the kind, the kind, the path (``/`` or ``/a/b/``) and the name.
_IAM_ENTITY = re.compile(r"^(?P<head>arn:[\w-]+:iam::\d{12}:)(?P<kind>role|user|group|instance-profile)"
                         r"(?P<path>/(?:[^/*?]+/)*)(?P<name>[^/*?]+)$")


def iam_twin(arn: str) -> str | None:
    """The other ARN of the pair :func:`iam_entity_arns` gives a bare IAM name (``KIND/NAME`` and
    ``KIND/*/NAME``): either one is that entity, so a grant of either allows the call."""
    if ":iam::" not in arn:
        return None
    head, sep, name = arn.rpartition("/*/")
    if sep:
        return f"{head}/{name}" if "/" not in name else None
    m = _IAM_ENTITY.match(arn)
    return f"{m['head']}{m['kind']}/*/{m['name']}" if m is not None and m["path"] == "/" else None


def iam_paths(rows: Iterable[Any]) -> dict[str, str]:
    """The ARN of every IAM role, user, group and instance profile that usage rows show (as a principal,
    or as an ARN in a request), by the pattern :func:`iam_entity_arns` gives for its bare name."""
    found = {}
    for row in rows:
        for value in (row.principal, *(v for _, v in row.fields)):
            m = _IAM_ENTITY.match(value) if ":iam::" in value else None
            if m is not None:
                found[f"{m['head']}{m['kind']}/*/{m['name']}"] = value
    return found


def row_mapper(paths: dict[str, str], catalog: Catalog | None = None) -> Callable[[Any], Mapping]:
    """A function mapping usage rows, with the IAM entities' ARNs (:func:`iam_paths`) resolved."""
    return lambda row: resolve_iam_paths(map_call(Call.of_row(row), catalog), paths)


def resolve_iam_paths(mapping: Mapping, paths: dict[str, str]) -> Mapping:
    """``mapping`` with each pair of patterns a bare IAM name gave replaced by the entity's ARN, where known."""
    if not paths:
        return mapping
    changed = []
    for p in mapping.permissions:
        resources = list(p.resources)
        for pattern in [r for r in p.resources if r in paths]:
            resources = [r for r in resources if r not in (pattern, iam_twin(pattern))] + [paths[pattern]]
        changed.append(p if resources == list(p.resources) else replace(p, resources=tuple(sorted(set(resources)))))
    return replace(mapping, permissions=tuple(changed))


def _events(call: Call) -> list[str]:
    out = [_arn(call, "events", f"event-bus/{b}") for b in call.ending("eventBusName") if not b.startswith("arn:")]
    if call.name.endswith(("Rule", "Targets")) or call.name in ("DescribeRule", "EnableRule", "DisableRule"):
        out += [_arn(call, "events", f"rule/{n}") for n in call.get("name") + call.get("rule")]
    return out


#: The Regions a cross-Region (system-defined) inference profile may route to, by its id's geography prefix:
#: every Region whose name starts so (``global.`` routes to every commercial Region). The Bedrock User Guide
#: ("Prerequisites for inference profiles"): a policy naming an inference profile "must also specify the foundation
#: model in each Region associated with it"; the Regions are the profile's, and AWS adds some over time.
_PROFILE_REGIONS = {"us": "us-*", "us-gov": "us-gov-*", "eu": "eu-*", "apac": "ap-*", "jp": "ap-northeast-*",
                    "au": "ap-southeast-*", "ca": "ca-*", "global": "*"}
_PROFILE_ID = re.compile(r"^(?P<geo>us-gov|us|eu|apac|jp|au|ca|global)\.(?P<model>.+)$")


def _bedrock(call: Call) -> list[str]:
    """Model ids: a geography-prefixed id (``us.``, ``eu.``, ``apac.``, ``global.``, ...) is a cross-Region inference
    profile, which also needs the foundation model it serves in every Region it may route the request to."""
    out = []
    for model in call.ending("modelId"):
        if model.startswith("arn:"):
            m = re.match(r"^arn:[^:]+:bedrock:[^:]*:\d*:inference-profile/(?P<id>.+)$", model)
            profile = _PROFILE_ID.match(m["id"]) if m else None
        else:
            profile = _PROFILE_ID.match(model)
            out.append(_arn(call, "bedrock", f"{'inference-profile' if profile else 'foundation-model'}/{model}",
                            account=profile is not None))
        if profile is not None:
            regions = _PROFILE_REGIONS[profile["geo"]]
            out.append(f"arn:{call.partition}:bedrock:{regions}::foundation-model/{profile['model']}")
    return out


def _route53(call: Call) -> list[str]:
    zones = call.ending("hostedZoneId") + (call.get("id") if "HostedZone" in call.name else [])
    return [f"arn:{call.partition}:route53:::hostedzone/{z.rsplit('/', 1)[-1]}" for z in zones]


def _cloudfront(call: Call) -> list[str]:
    named = call.get("id") if "Distribution" in call.name or "Invalidation" in call.name else []
    ids = call.ending("distributionId", "stagingDistributionId") + named
    return [f"arn:{call.partition}:cloudfront::{call.account}:distribution/{i}" for i in ids]


def _cloudformation(call: Call) -> list[str]:
    # A stack's ARN ends in a generated id that a stack name does not carry.
    out = [_arn(call, "cloudformation", f"stack/{n}/*") for n in call.ending("stackName") if not n.startswith("arn:")]
    out += [_arn(call, "cloudformation", f"changeSet/{n}/*") for n in call.ending("changeSetName")
            if not n.startswith("arn:")]
    return out


_BUILDERS = {
    "bedrock.amazonaws.com": _bedrock,
    "bedrock-runtime.amazonaws.com": _bedrock,
    "route53.amazonaws.com": _route53,
    "cloudfront.amazonaws.com": _cloudfront,
    "cloudformation.amazonaws.com": _cloudformation,
    "s3.amazonaws.com": _s3,
    "dynamodb.amazonaws.com": _dynamodb,
    "lambda.amazonaws.com": _lambda,
    "sqs.amazonaws.com": _sqs,
    "kms.amazonaws.com": _kms,
    "secretsmanager.amazonaws.com": _secretsmanager,
    "ssm.amazonaws.com": _ssm,
    "logs.amazonaws.com": _logs,
    "kinesis.amazonaws.com": _named("kinesis", "stream/{}", "streamName"),
    "firehose.amazonaws.com": _named("firehose", "deliverystream/{}", "deliveryStreamName"),
    "ecr.amazonaws.com": _named("ecr", "repository/{}", "repositoryName"),
    "sns.amazonaws.com": _sns,
    "states.amazonaws.com": _states,
    "monitoring.amazonaws.com": _cloudwatch,
    "ecs.amazonaws.com": _ecs,
    "events.amazonaws.com": _events,
    "ec2.amazonaws.com": _ec2,
    "iam.amazonaws.com": _iam,
    "elasticfilesystem.amazonaws.com": _efs,
    "redshift.amazonaws.com": _redshift,
    "redshift-data.amazonaws.com": _redshift,
    "s3vectors.amazonaws.com": _s3vectors,
    "s3express.amazonaws.com": _named("s3express", "bucket/{}", "bucketName"),  # directory buckets
}


# -- rules: calls whose actions depend on the request ---------------------------


def _transact_write(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    kinds = {"put": "PutItem", "update": "UpdateItem", "delete": "DeleteItem", "conditionCheck": "ConditionCheckItem"}
    found = []
    for path, table in call.fields:
        parts = path.split(".")
        if len(parts) == 3 and parts[0] == "transactItems" and parts[1] in kinds and parts[2] == "tableName":
            found.append((kinds[parts[1]], _arn(call, "dynamodb", f"table/{table}")))
    # CloudTrail's shape: requestItems[] with an operation and a tableName each.
    for path, value in call.fields:
        if path.endswith(".operation") and ":" in value:  # "Put:orders" (see request_fields.json, paired_facts)
            operation, table = value.split(":", 1)
            operation = operation[:1].lower() + operation[1:]
            if operation in kinds:
                found.append((kinds[operation], _arn(call, "dynamodb", f"table/{table}")))
    if not found:
        note = "the record does not say which item operations the transaction held: all four"
        return [_permission(f"dynamodb:{a}", call, catalog, "rule:dynamodb-transact-write", note)
                for a in kinds.values()]
    by_action: dict[str, list[str]] = {}
    for action, arn in found:
        by_action.setdefault(action, []).append(arn)
    return [_permission(f"dynamodb:{a}", call, catalog, "rule:dynamodb-transact-write",
                        "one action per item type in the transaction", arns) for a, arns in sorted(by_action.items())]


def _transact_get(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    return [_permission("dynamodb:GetItem", call, catalog, "rule:dynamodb-transact-get",
                        "each Get in a transaction is authorized as GetItem")]


_PARTIQL = {"SELECT": "PartiQLSelect", "INSERT": "PartiQLInsert", "UPDATE": "PartiQLUpdate", "DELETE": "PartiQLDelete",
            "EXISTS": "PartiQLSelect"}


def _partiql(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    verbs = {v for k, v in call.fields if k.rsplit(".", 1)[-1] == "statement"}
    actions = sorted({_PARTIQL[v] for v in verbs if v in _PARTIQL})
    note = "a PartiQL statement is authorized by its verb"
    if not actions:
        actions, note = sorted(set(_PARTIQL.values())), "the record does not show the statement's verb: all four"
    return [_permission(f"dynamodb:{a}", call, catalog, "rule:dynamodb-partiql", note) for a in actions]


def _reencrypt(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    def keys(name: str) -> list[str]:
        sub = Call(source=call.source, name=call.name, fields=tuple((k, v) for k, v in call.fields if k == name),
                   region=call.region, account=call.account)
        return [v for _, v in sub.fields if v.startswith("arn:")] + _kms(sub)
    source_keys, destination_keys = keys("sourceKeyId"), keys("destinationKeyId")
    arns = candidate_arns(call)
    if not source_keys:  # CloudTrail names the source key only in resources[]
        source_keys = [a for a in arns if a not in destination_keys]
    return [
        _permission("kms:ReEncryptFrom", call, catalog, "rule:kms-reencrypt", "on the key the data was encrypted under",
                    source_keys or arns),
        _permission("kms:ReEncryptTo", call, catalog, "rule:kms-reencrypt", "on the key the data is re-encrypted under",
                    destination_keys or arns),
    ]


_trail = _named("cloudtrail", "trail/{}", "trailName")


def _insights_metric_data(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    """cloudtrail:LookupEvents; with a TrailName, cloudtrail:ListInsightsData on that trail too."""
    rule = "rule:cloudtrail-insights-metric-data"
    perms = [_permission("cloudtrail:LookupEvents", call, catalog, rule,
                         "the API reference links the operation to cloudtrail:LookupEvents")]
    if call.ending("trailName"):
        trails = [v for v in call.ending("trailName") if v.startswith("arn:")] + _trail(call)
        perms.append(_permission("cloudtrail:ListInsightsData", call, catalog, rule,
                                 "the request names a trail: its Insights data", trails))
    return perms


def _s3_object_version(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    """Object calls naming a versionId need the ``...Version...`` action."""
    override = _override(call, op)
    base = list(override.actions) if override and override.actions else [f"s3:{op}"]
    perms = []
    for action in base:
        versioned = action.replace("Object", "ObjectVersion", 1)
        if call.get("versionId") and catalog.has_action(versioned):
            perms.append(_permission(versioned, call, catalog, "rule:s3-object-version",
                                     "a versionId names one version of the object"))
        else:
            perms.append(_permission(action, call, catalog, "rule:s3-object-version", "no versionId: the current version"))
    return perms + _s3_headers(call, catalog)


#: Request headers (and their names in older records) that set an object's ACL: a canned ACL or grants.
_ACL_HEADERS = ("x-amz-acl", "acl", "x-amz-grant-read", "x-amz-grant-read-acp", "x-amz-grant-write-acp",
                "x-amz-grant-full-control")


def _s3_headers(call: Call, catalog: Catalog) -> list[Permission | None]:
    """Object writes that set an ACL or tags need those actions too; SSE-KMS needs the key."""
    if call.name not in ("PutObject", "CopyObject", "CreateMultipartUpload", "UploadPartCopy"):
        return []
    dest = [a for a in _s3(call) if "/" in a.split(":::", 1)[-1]]
    perms = []
    if any(call.get(header) for header in _ACL_HEADERS):
        perms.append(_permission("s3:PutObjectAcl", call, catalog, "rule:s3-headers", "the request sets an ACL", dest))
    if call.get("x-amz-tagging") or call.get("tagging"):
        perms.append(_permission("s3:PutObjectTagging", call, catalog, "rule:s3-headers", "the request sets tags", dest))
    for key in call.get("x-amz-server-side-encryption-aws-kms-key-id"):
        arns = [key] if key.startswith("arn:") else [f"arn:{call.partition}:kms:{call.region}:{call.account}:key/{key}"]
        via = (("kms:ViaService", f"s3.{call.region}.amazonaws.com"),)
        perms.append(_permission("kms:GenerateDataKey", call, catalog, "side:s3-sse-kms",
                                 "S3 asks KMS for a data key with the caller's permissions", arns, True, via))
        if call.name in ("CreateMultipartUpload", "UploadPartCopy", "CopyObject"):
            perms.append(_permission("kms:Decrypt", call, catalog, "side:s3-sse-kms",
                                     "S3 decrypts the data key to assemble or copy parts", arns, True, via))
    return perms


def _s3_copy(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    perms: list[Permission | None] = []
    dest = [a for a in _s3(call) if "/" in a.split(":::", 1)[-1]] or candidate_arns(call)
    for source in call.get("x-amz-copy-source"):
        path, _, query = unquote(source).lstrip("/").partition("?")
        arn = f"arn:{call.partition}:s3:::{path}"
        read = "s3:GetObjectVersion" if "versionId=" in query else "s3:GetObject"
        perms.append(_permission(read, call, catalog, "rule:s3-copy", "reads the copy source", [arn]))
        directive = (call.get("x-amz-tagging-directive") or ["COPY"])[0].upper()
        if directive == "COPY" and op == "CopyObject":  # a part copy carries no tags
            perms.append(_permission("s3:GetObjectTagging", call, catalog, "rule:s3-copy",
                                     "tags are copied from the source (needed when it has tags)", [arn]))
            perms.append(_permission("s3:PutObjectTagging", call, catalog, "rule:s3-copy",
                                     "tags are copied to the destination (needed when the source has tags)", dest))
    if not call.get("x-amz-copy-source"):
        perms.append(_permission("s3:GetObject", call, catalog, "rule:s3-copy",
                                 "the record does not name the copy source", ["*"]))
    perms.append(_permission("s3:PutObject", call, catalog, "rule:s3-copy", "writes the destination object", dest))
    return perms + _s3_headers(call, catalog)


def _s3_delete_objects(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    perms = [_permission("s3:DeleteObject", call, catalog, "rule:s3-delete-objects",
                         "each object deleted by DeleteObjects is authorized as DeleteObject")]
    if call.get("versionId"):
        perms.append(_permission("s3:DeleteObjectVersion", call, catalog, "rule:s3-delete-objects",
                                 "versions are named"))
    return perms


@functools.cache
def _http(service: str) -> dict[str, tuple[str, str, dict[str, str]]]:
    """Operation → (HTTP method, request URI, {uri variable: CloudTrail field}) from botocore's model."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(service)
    out = {}
    for op in model.operation_names:
        om = model.operation_model(op)
        variables = {}
        if om.input_shape is not None:
            for member, shape in om.input_shape.members.items():
                if shape.serialization.get("location") == "uri":
                    variables[shape.serialization.get("name", member)] = member[:1].lower() + member[1:]
        out[op] = (om.http.get("method", "GET"), om.http.get("requestUri", "/"), variables)
    return out


def _apigateway(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    # Both APIs log under apigateway.amazonaws.com; HTTP and WebSocket APIs (v2) name an apiId, and their
    # tag calls an /apis/ ARN (v1 tags with PUT, v2 with POST, under one eventName).
    v2 = call.get("apiId") or any("/apis/" in arn for arn in call.ending("resourceArn"))
    order = ("apigatewayv2", "apigateway") if v2 else ("apigateway", "apigatewayv2")
    for service in order:
        spec = _http(service).get(op)
        if spec is not None:
            break
    else:
        return []
    method, uri, variables = spec
    if uri.startswith("/v2/"):  # the v2 endpoint's version prefix is not part of the resource path
        uri = uri[3:]
    values = dict(call.fields)

    def fill(m: re.Match) -> str:
        name = m.group(1).rstrip("+")
        value = values.get(variables.get(name, name))
        return value if value else "*"

    path = re.sub(r"\{([^}]+)\}", fill, uri.split("?", 1)[0])
    arn = f"arn:{call.partition}:apigateway:{call.region}::{path}"
    note = f"API Gateway authorizes management calls by HTTP method ({op} is {method} {uri})"
    permission = _permission(f"apigateway:{method}", call, catalog, "rule:apigateway-http-verb", note, [arn])
    # The reference lists only the REST API types under apigateway:<VERB>; HTTP and WebSocket API
    # paths (/apis/...) are apigateway resource types all the same, so the path ARN stands.
    if permission is not None and permission.resources == ("*",) and "*" not in path and any(
            arn_pattern_regex(f).match(arn) for t in catalog.resource_types("apigateway") for f in t.arn_formats):
        permission = Permission(action=permission.action, resources=(arn,), provenance=permission.provenance,
                                note=note)
    return [permission]


def _table_actions(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    """The table's actions on the resources the call names (runtime calls through API Gateway)."""
    override = _override(call, op)
    return [_permission(a, call, catalog, "rule:execute-api", override.note if override else "")
            for a in (override.actions if override else ())]


def _cluster_credentials(call: Call, op: str, catalog: Catalog) -> list[Permission | None]:
    """GetClusterCredentials on the database user (and database); joining groups and creating the user
    are authorized as actions of their own."""
    rule = "rule:redshift-credentials"
    perms = [_permission("redshift:GetClusterCredentials", call, catalog, rule, "on the database user and database")]
    if call.get("dbGroups"):
        perms.append(_permission("redshift:JoinGroup", call, catalog, rule,
                                 "the request names database groups, which the user joins for the session", side=True))
    if any(v.lower() == "true" for v in call.get("autoCreate")):
        perms.append(_permission("redshift:CreateClusterUser", call, catalog, rule,
                                 "autoCreate: the database user is created if it does not exist", side=True))
    return perms


_RULES = {
    "execute-api": _table_actions,
    "dynamodb-transact-write": _transact_write,
    "dynamodb-transact-get": _transact_get,
    "dynamodb-partiql": _partiql,
    "kms-reencrypt": _reencrypt,
    "s3-object-version": _s3_object_version,
    "s3-copy": _s3_copy,
    "s3-delete-objects": _s3_delete_objects,
    "apigateway-http-verb": _apigateway,
    "cloudtrail-insights-metric-data": _insights_metric_data,
    "redshift-credentials": _cluster_credentials,
}
_RULE_BY_PREFIX = {"apigateway": "apigateway-http-verb"}
#: Rules that apply whatever the override table says (it may add a note and reference).
_RULE_BY_CALL = {
    ("dynamodb.amazonaws.com", "TransactWriteItems"): "dynamodb-transact-write",
    ("dynamodb.amazonaws.com", "TransactGetItems"): "dynamodb-transact-get",
    **{("dynamodb.amazonaws.com", op): "dynamodb-partiql"
       for op in ("ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction")},
    ("kms.amazonaws.com", "ReEncrypt"): "kms-reencrypt",
    ("redshift.amazonaws.com", "GetClusterCredentials"): "redshift-credentials",
    ("s3.amazonaws.com", "CopyObject"): "s3-copy",
    ("s3.amazonaws.com", "UploadPartCopy"): "s3-copy",
    ("s3.amazonaws.com", "DeleteObjects"): "s3-delete-objects",
    **{("s3.amazonaws.com", op): "s3-object-version" for op in (
        "GetObject", "HeadObject", "DeleteObject", "GetObjectAcl", "PutObjectAcl", "GetObjectTagging",
        "PutObjectTagging", "DeleteObjectTagging", "GetObjectAttributes", "PutObject", "CreateMultipartUpload")},
}
_RULE_NOTES = {"apigateway-http-verb": "API Gateway management calls are authorized by HTTP method on path ARNs",
               "redshift-credentials": "GetClusterCredentials is authorized on the database user and database; joining "
                                       "database groups (dbGroups) and creating the user (autoCreate) as actions of their "
                                       "own (Amazon Redshift API Reference, GetClusterCredentials)"}


def _pass_role(call: Call, op: str, catalog: Catalog) -> list[Permission]:
    """``iam:PassRole`` on each role the call handed to a service (no CloudTrail event shows it)."""
    out = []
    entries = _side_permissions().get((call.source, op), ())
    for entry in entries:
        roles = []
        named = [value for path in entry["fields"] for value in call.get(path)]
        if entry.get("profile") and named:  # an instance profile: its role is not in the request
            roles = [f"arn:{call.partition}:iam::{call.account}:role/*"]
            named = []
        for value in named:
            if value.startswith("arn:") and ":role/" in value:
                roles.append(value)
            elif not value.startswith("arn:"):
                roles += iam_entity_arns(call, "role", value)
        if not roles and entry.get("always"):
            roles = [f"arn:{call.partition}:iam::{call.account}:role/*"]
        if roles:
            condition = (("iam:PassedToService", entry["service"]),) if entry["service"] else ()
            p = _permission("iam:PassRole", call, catalog, "side:pass-role", entry["note"], roles, True, condition)
            if p is not None:
                out.append(p)
    listed = {path for entry in entries for path in entry["fields"]}
    roles = sorted({value for path, value in call.fields
                    if path not in listed and _hands_a_role(call.source, op, path, value)})
    if roles:  # no iam:PassedToService: the service the role goes to is not documented for these
        p = _permission("iam:PassRole", call, catalog, "side:pass-role", _PASS_ROLE_BY_FIELD_NOTE, roles, True)
        if p is not None:
            out.append(p)
    return out


_PASS_ROLE_BY_FIELD_NOTE = "a role the request names for the service to use (a role field holding a role ARN)"


@functools.cache
def _pass_role_by_field() -> tuple[str, frozenset[str], tuple[str, ...], tuple[str, ...]]:
    rules = load("side_permissions.json")["pass_role_by_field"]["values"]
    verbs = tuple(rules["read_verbs"]) + tuple(rules["release_verbs"])
    return rules["field_contains"], frozenset(rules["not_sources"]), verbs, tuple(rules["release_fields"])


def _hands_a_role(source: str, op: str, path: str, value: str) -> bool:
    """Whether a request field hands a role to the service (``pass_role_by_field`` in side_permissions.json)."""
    contains, not_sources, verbs, release_fields = _pass_role_by_field()
    name = path.rsplit(".", 1)[-1].lower()
    named_as_role = contains in name or name in role_value_keys()
    if not named_as_role or name.startswith(release_fields) or source in not_sources or not ROLE_ARN.fullmatch(value):
        return False  # not a role field, one that takes roles away (removeIamRoles), or a role as an identity
    verb = re.match(r"[A-Z][a-z]*", op)
    return verb is None or verb.group() not in verbs


def _kms_keys(call: Call, op: str, catalog: Catalog) -> list[Permission]:
    """KMS permissions a service uses with the caller's credentials on a key the request names."""
    out = []
    for entry in _side_permissions("kms").get((call.source, op), ()):
        if any(value not in call.ending(key) for key, value in entry.get("when", {}).items()):
            continue
        keys = call.ending(*entry["fields"])
        sub = Call(source="kms.amazonaws.com", name=op, fields=tuple(("keyId", k) for k in keys),
                   region=call.region, account=call.account)
        arns = [k for k in keys if k.startswith("arn:")] + _kms(sub)
        if not arns:
            continue
        via = (("kms:ViaService", f"{entry['via']}.{call.region}.amazonaws.com"),)
        for action in entry["actions"]:
            p = _permission(action, call, catalog, "side:kms-key", entry["note"], arns, True, via)
            if p is not None:
                out.append(p)
    return out


def _caller_checks(call: Call, op: str, catalog: Catalog) -> list[Permission]:
    """Checks a service makes with the caller's permissions on what the request names (Lambda's look
    at a function's VPC subnets and security groups, its reads of the function's layers and code)."""
    out = []
    for entry in _side_permissions("caller_checks").get((call.source, op), ()):
        named = [v for path in entry["fields"] for v in call.get(path)]
        if not named:
            continue
        actions, on = entry["actions"], ["*"]
        if entry.get("on") == "fields":
            on = named
        elif entry.get("on") == "s3-object":
            where = entry["object"]
            on = [f"arn:{call.partition}:s3:::{bucket}/{key}"
                  for bucket in call.get(where["bucket"]) for key in call.get(where["key"])]
            if where.get("version") and call.get(where["version"]):
                actions = entry["actions_for_version"]
        elif entry.get("on") == "s3-url":
            on = [arn for arn in (_s3_object_of_url(url, call.partition) for url in named) if arn is not None]
        elif entry.get("on") == "ecr-image":
            on = [arn for arn in map(_ecr_repository, named) if arn is not None and arn.split(":")[4] != call.account]
        if not on:  # nothing to scope it to: never widen to *
            continue
        out += [p for p in (_permission(action, call, catalog, "side:caller-check", entry["note"], on, True)
                            for action in actions) if p is not None]
    return out


def _tags_on_create(call: Call, op: str, catalog: Catalog) -> list[Permission]:
    """The tag action of a create call whose request set tags: services authorize tags given at
    creation as their tag action too, so a policy with only the create action denies the call.

    Never granted on ``*``: a tag action anywhere lets its holder retag other resources, which
    is how tag-based access control is escaped."""
    out = []
    for entry in _side_permissions("tag_on_create").get((call.source, op), ()):
        if not any(call.get(path) for path in entry["fields"]):
            continue
        conditions = ((entry["create_action_key"], op),) if entry.get("create_action_key") else ()
        for action in entry["actions"]:
            on = None  # what the call names
            if entry.get("on") == "new":  # ids the service assigns: wildcards of the created types
                on = [a for a in candidate_arns(call) if a.endswith("/*")] or _created(call, entry)
            p = _permission(action, call, catalog, "side:tag-on-create", entry["note"], on, True, conditions)
            if p is not None and p.resources == ("*",) and entry.get("new"):  # named nothing of the action's types
                p = _permission(action, call, catalog, "side:tag-on-create", entry["note"], _created(call, entry),
                                True, conditions)
            if p is not None and p.resources != ("*",):
                out.append(p)
    return out


def _request_options(call: Call, op: str, catalog: Catalog) -> list[Permission]:
    """Actions that options of the request need besides the call's own (e.g. session tags or a source identity
    on AssumeRole, Object Lock on CreateBucket; side_permissions.json, request_options), on what the call names."""
    out = []
    for entry in _side_permissions("request_options").get((call.source, op), ()):
        when, ignore = entry.get("when", {}), entry.get("ignore", {})
        if not any(value.lower() != ignore.get(path, "").lower() for path in entry["fields"] for value in call.get(path)):
            continue
        if any(want.lower() not in (v.lower() for v in call.get(path)) for path, want in when.items()):
            continue
        for action in entry["actions"]:
            p = _permission(action, call, catalog, "side:request-option", entry["note"], side=True)
            if p is not None and (p.resources != ("*",) or not catalog.action(action).resource_types):
                out.append(p)  # named nothing to scope it to: never widen to *, unless * is all the action takes
    return out


def _bearer_tokens(call: Call, op: str, catalog: Catalog) -> list[Permission]:
    """``sts:GetServiceBearerToken`` for a call whose service gets an STS bearer token for the caller
    (CodeArtifact's and ECR Public's GetAuthorizationToken); the action takes no resource."""
    return [p for p in (_permission("sts:GetServiceBearerToken", call, catalog, "side:bearer-token", entry["note"], ["*"],
                                    True, (("sts:AWSServiceName", entry["service"]),))
                        for entry in _side_permissions("service_bearer_tokens").get((call.source, op), ()))
            if p is not None]


#: Redshift Data API calls that connect to a database, and so get its credentials with the caller's permissions.
_DATA_API_CONNECTS = frozenset({"ExecuteStatement", "BatchExecuteStatement", "DescribeTable", "ListDatabases",
                                "ListSchemas", "ListTables"})


def _data_api_credentials(call: Call, op: str, catalog: Catalog) -> list[Permission]:
    """The credentials a Redshift Data API call connects with, which the caller must be allowed to get:
    a secret (``secretArn``), a cluster's temporary credentials for a database user (``dbUser``:
    redshift:GetClusterCredentials) or for the caller's IAM identity (redshift:GetClusterCredentialsWithIAM),
    or a serverless workgroup's (redshift-serverless:GetCredentials, on the region's workgroups: the
    record names the workgroup, its ARN holds an id). The Redshift Data API Reference (ExecuteStatement,
    in botocore's model) states the cluster and workgroup cases; the AWS managed policy
    AmazonRedshiftDataFullAccess grants these same actions, the secret's read included."""
    if call.source != "redshift-data.amazonaws.com" or op not in _DATA_API_CONNECTS:
        return []
    note = "the Redshift Data API connects with credentials it gets with the caller's permissions"
    if call.get("secretArn"):
        wanted = [("secretsmanager:GetSecretValue", None)]
    elif call.get("workgroupName"):
        wanted = [("redshift-serverless:GetCredentials",
                   [f"arn:{call.partition}:redshift-serverless:{call.region}:{call.account}:workgroup/*"])]
    elif call.get("dbUser"):
        wanted = [("redshift:GetClusterCredentials", None)]
    elif call.get("clusterIdentifier"):
        wanted = [("redshift:GetClusterCredentialsWithIAM", None)]
    else:
        return []
    return [p for p in (_permission(action, call, catalog, "side:data-api-credentials", note, on, True)
                        for action, on in wanted) if p is not None]


def _filled(template: str, call: Call) -> str:
    """An ARN template of a side-permission table with ``${Partition}``, ``${Region}`` and ``${Account}`` of the call."""
    return (template.replace("${Partition}", call.partition).replace("${Region}", call.region)
            .replace("${Account}", call.account))


def _created(call: Call, entry: dict) -> list[str]:
    """The ARNs of what a create call creates, from the entry's template (:func:`_filled`), ``{field}``
    each value of that request field (``*`` without one)."""
    arn = _filled(entry["new"], call)
    m = re.search(r"\{(\w+)\}", arn)
    if m is None:
        return [arn]
    after_slash = arn[m.start() - 1] == "/"  # an SSM parameter's name starts with one: never doubled
    names = [v.lstrip("/") if after_slash else v for v in call.ending(m[1]) if not v.startswith("arn:")]
    return [arn[:m.start()] + name + arn[m.end():] for name in names or ["*"]]


def _transforms(call: Call, op: str, catalog: Catalog) -> list[Permission]:
    """The transform a change set is created with (SAM's), where the request shows the tool that uses it.

    Granted on the transform's ARN as given, not through :func:`scope`: the reference lists only
    stacks for the action, so scoping would widen it to ``*``."""
    out = []
    for entry in _side_permissions("transforms").get((call.source, op), ()):
        if any(v.startswith(entry["prefix"]) for path in entry["fields"] for v in call.get(path)):
            arn = _filled(entry["resource"], call)
            out += [Permission(action=found.full_name, resources=(arn,), provenance="side:transform",
                               note=entry["note"], side=True)
                    for found in map(catalog.action, entry["actions"]) if found is not None]
    return out


#: An S3 object's https URL: path style (s3[.-]REGION.amazonaws.com/BUCKET/KEY) or virtual-hosted style.
_S3_URL = re.compile(r"^https://(?:(?P<host_bucket>[^/]+)\.)?s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?/(?P<path>[^?#]+)"
                     r"(?P<query>\?[^#]*)?$")


def _s3_object_of_url(url: str, partition: str) -> str | None:
    """The ARN of the S3 object an https URL names; None for another URL, or a presigned one (its
    signature is the permission: the caller needs none)."""
    m = _S3_URL.match(url)
    if m is None or "Signature=" in (m["query"] or ""):  # X-Amz-Signature (SigV4) or Signature (SigV2)
        return None
    path = unquote(m["path"])
    if m["host_bucket"] is None:
        bucket, _, key = path.partition("/")
    else:
        bucket, key = m["host_bucket"], path
    return f"arn:{partition}:s3:::{bucket}/{key}" if bucket and key else None


#: An ECR image URI: ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPOSITORY, then :TAG or @DIGEST.
_IMAGE_URI = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)")


def _ecr_repository(uri: str) -> str | None:
    """The ARN of the repository an image URI names (None for anything else)."""
    m = _IMAGE_URI.match(uri)
    if m is None:
        return None
    account, region, repository = m.groups()
    return f"arn:{partition_of_region(region)}:ecr:{region}:{account}:repository/{repository}"


def explain(source: str, name: str, fields: Fields = (), *, region: str = "us-east-1",
            account: str = "123456789012") -> Mapping:
    """The mapping of one eventSource/eventName, for `lpgen explain`."""
    return map_call(Call(source=source, name=name, fields=fields, region=region, account=account))




# -- what CloudTrail can show ----------------------------------------------------

MANAGEMENT, DATA, NEVER = "management", "data", "never"


@functools.cache
def _observability() -> tuple[tuple[re.Pattern[str], ...], frozenset[str]]:
    data = load("observability.json")
    globs = [g for group in data["data_events"]["values"].values() for g in group]
    patterns = tuple(re.compile("^" + re.escape(g.lower()).replace(r"\*", ".*") + "$") for g in globs)
    return patterns, frozenset(a.lower() for a in data["never_logged"]["values"])


@functools.lru_cache(maxsize=65_536)
def observability(action: str) -> str:
    """How CloudTrail could show a use of ``action``: ``management`` (every trail), ``data``
    (only trails logging data events), or ``never`` (no event of its own, e.g. iam:PassRole)."""
    patterns, never = _observability()
    low = action.lower()
    if low in never:
        return NEVER
    return DATA if any(p.match(low) for p in patterns) else MANAGEMENT


# -- one raw record, and rendering ---------------------------------------------------


def map_record(record: Any, catalog: Catalog | None = None) -> tuple[Event, Mapping]:
    """Normalise and map one raw record (a dict or decoded :class:`~lpgen.records.RawRecord`).

    Raises :class:`lpgen.normalize.BadRecord` for a record lpgen cannot use.
    """
    import msgspec

    from lpgen.normalize import BadRecord, normalize
    from lpgen.records import RawRecord, record_decoder

    if not isinstance(record, RawRecord):
        try:
            record = record_decoder.decode(msgspec.json.encode(record))
        except (msgspec.DecodeError, TypeError, ValueError) as exc:
            raise BadRecord(f"unreadable record: {exc}") from None
    event = normalize(record)
    return event, map_event(event, catalog)


def mapping_dict(m: Mapping) -> dict[str, Any]:
    return {
        "eventSource": m.source, "eventName": m.name, "status": m.status, "prefix": m.prefix,
        "operation": m.operation, "provenance": m.provenance, "reason": m.reason, "actions": list(m.actions),
        "permissions": [{"action": p.action, "resources": list(p.resources), "provenance": p.provenance,
                         "note": p.note, "side": p.side, "observability": observability(p.action),
                         "conditions": {k: v for k, v in p.conditions}} for p in m.permissions],
    }


def render_explanation(m: Mapping, fmt: str = "text") -> str:
    if fmt == "json":
        import json

        return json.dumps(mapping_dict(m), indent=2, sort_keys=True) + "\n"
    lines = [f"{m.source} {m.name}"]
    if m.operation and m.operation != m.name:
        lines.append(f"  operation: {m.operation} (version suffix removed)")
    lines.append(f"  status: {m.status}" + (f"  (IAM prefix {m.prefix})" if m.prefix else ""))
    for p in m.permissions:
        extra = "".join(f" [{k}={v}]" for k, v in p.conditions)
        lines.append(f"  {'+ ' if p.side else '→ '}{p.action}  on {', '.join(p.resources)}{extra}")
        lines.append(f"      {p.provenance}; CloudTrail shows it: {observability(p.action)}" + (f"; {p.note}" if p.note else ""))
    lines.append(f"  why: {m.provenance or 'no mapping'}: {m.reason}")
    return "\n".join(lines) + "\n"
