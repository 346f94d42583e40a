"""What each function of a SAM or CloudFormation template is granted.

For every ``AWS::Serverless::Function`` and ``AWS::Lambda::Function``: the role it runs as,
and that role's policies as :class:`lpgen.attached.Attached`, so that :func:`lpgen.expand.expand`
and :func:`lpgen.diff.diff` treat a template like any other source of grants.

- A SAM function without ``Role`` gets the role SAM creates: its ``Policies:`` (AWS managed
  policy names and ARNs, inline documents, SAM policy templates with their parameters,
  expanded from aws-sam-translator's bundled ``policy_templates.json``), plus the managed
  policies SAM adds itself (basic execution; VPC access; X-Ray; the event-source policies of
  SQS, Kinesis, DynamoDB and MSK events), the dead-letter queue's statement, and the
  statements of connectors (``AWS::Serverless::Connector`` and embedded ``Connectors``)
  whose source is the function (aws-sam-translator's connector profiles).
- A function with ``Role`` pointing at an ``AWS::IAM::Role`` of the template gets that role's
  inline and managed policies, and the ``AWS::IAM::Policy``/``ManagedPolicy`` resources that
  name the role.

Every policy keeps the template line it comes from, for findings.
"""

from __future__ import annotations

import copy
import functools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from typing import Any

from lpgen.attached import Attached, Policy
from lpgen.data_files import load
from lpgen.template import NO_VALUE, Pseudo, Resolver, Template, TemplateError

SAM_FUNCTION, LAMBDA_FUNCTION = "AWS::Serverless::Function", "AWS::Lambda::Function"
#: Event types whose pollers SAM grants a managed policy to the function's role.
EVENT_POLICIES = {"SQS": "AWSLambdaSQSQueueExecutionRole", "Kinesis": "AWSLambdaKinesisExecutionRole",
                  "DynamoDB": "AWSLambdaDynamoDBExecutionRole", "MSK": "AWSLambdaMSKExecutionRole"}


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcedPolicy:
    """A policy of a function's role and where it comes from in the template."""

    policy: Policy
    line: int | None
    origin: str  # "Policies[0]", "implicit (SAM)", "connector ReadOrders", "role OrdersRole"
    sam_template: str | None = None  # the SAM policy template it expands, if any
    parameters: tuple[tuple[str, str], ...] = ()  # the template's resolved parameters
    expanded: bool = True  # False: a policy lpgen cannot read (customer managed, unknown name)
    implicit: bool = False  # added by SAM, not written in Policies:
    path: tuple | None = None  # where its document is in the template (inline documents), for statement lines


@dataclass(frozen=True, slots=True, kw_only=True)
class Function:
    logical_id: str
    type: str
    line: int | None
    name: str | None  # FunctionName, resolved; None when CloudFormation generates it
    policies: tuple[SourcedPolicy, ...] = ()
    role: str | None = None  # the explicit role: a logical id of the template, or an ARN
    role_line: int | None = None
    role_name: str | None = None  # the explicit role's resolved RoleName (with its path), if any
    policies_path: tuple | None = None  # where Policies: is (SAM functions with the implicit role)
    boundary: Policy | None = None
    notes: tuple[str, ...] = ()

    @property
    def implicit_role(self) -> bool:
        return self.type == SAM_FUNCTION and self.role is None

    def attached(self, principal: str | None = None) -> Attached:
        return Attached(principal=principal or self.logical_id, policies=tuple(p.policy for p in self.policies),
                        boundary=self.boundary)


@dataclass(frozen=True, slots=True, kw_only=True)
class Model:
    template: Template
    resolver: Resolver = field(repr=False)
    functions: tuple[Function, ...]


def sam_policy_templates() -> dict[str, dict]:
    """aws-sam-translator's bundled policy templates, by name."""
    return _templates()


@functools.cache
def _templates() -> dict[str, dict]:
    files = importlib_resources.files("samtranslator") / "policy_templates_data" / "policy_templates.json"
    return json.loads(files.read_text(encoding="utf-8"))["Templates"]


@functools.cache
def _connector_profiles() -> dict:
    files = importlib_resources.files("samtranslator") / "model" / "connector_profiles" / "profiles.json"
    return json.loads(files.read_text(encoding="utf-8"))["Permissions"]


def managed_policy(name_or_arn: str) -> tuple[str, dict | None]:
    """(ARN, document) of an AWS managed policy given by name or ARN; document None if lpgen lacks it."""
    table = load("aws_managed_policies.json")["policies"]
    name = name_or_arn.rsplit("/", 1)[-1]
    entry = table.get(name)
    if name_or_arn.startswith("arn:") and ":iam::aws:policy/" not in name_or_arn:
        return name_or_arn, None  # a customer managed policy: its document is not in the template
    if entry is None:
        return (name_or_arn if name_or_arn.startswith("arn:") else f"arn:aws:iam::aws:policy/{name}"), None
    return entry["arn"], entry["document"]


def expand_sam_template(name: str, parameters: dict[str, Any], resolver: Resolver) -> dict:
    """The policy document a SAM policy template stands for, with ``parameters`` substituted."""
    definition = copy.deepcopy(sam_policy_templates()[name]["Definition"])

    def substitute(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"Ref"} and value["Ref"] in parameters:
                return parameters[value["Ref"]]
            return {k: substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v) for v in value]
        return value

    return policy_document(resolver.resolve(substitute(definition)))


def analyse(template: Template, parameters: dict[str, str] | None = None, pseudo: Pseudo | None = None) -> Model:
    """Every function of ``template`` with its role's policies."""
    resolver = Resolver(template, parameters, pseudo or Pseudo())
    globals_ = _dict(_dict(template.data.get("Globals")).get("Function"))
    connectors = _connectors(template, resolver)
    functions = []
    for logical, resource in sorted(template.resources.items()):
        kind = resource.get("Type")
        if kind not in (SAM_FUNCTION, LAMBDA_FUNCTION):
            continue
        props = resource.get("Properties") if isinstance(resource.get("Properties"), dict) else {}
        if kind == SAM_FUNCTION and isinstance(globals_, dict):
            props = _merge_globals(globals_, props)
        functions.append(_function(template, resolver, logical, kind, props, connectors.get(logical, [])))
    return Model(template=template, resolver=resolver, functions=tuple(functions))


def _merge_globals(globals_: dict, props: dict) -> dict:
    """SAM's Globals rules: the function's own value wins; maps merge; lists add up (globals first)."""
    out = dict(globals_)
    for key, value in props.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not _intrinsic(value):
            out[key] = _merge_globals(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = out[key] + value
        else:
            out[key] = value
    return out


def _intrinsic(value: dict) -> bool:
    return len(value) == 1 and next(iter(value)) in ("Ref", "Condition") or next(iter(value), "").startswith("Fn::")


def _function(template: Template, resolver: Resolver, logical: str, kind: str, props: dict,
              connectors: list[SourcedPolicy]) -> Function:
    base = ("Resources", logical, "Properties")
    name = resolver.string(props["FunctionName"]) if "FunctionName" in props else None
    policies: list[SourcedPolicy] = []
    notes: list[str] = []
    role = props.get("Role")
    if role is not None:
        target = _role_target(role, resolver)
        role_policies, role_name, boundary, role_notes = _role_policies(template, resolver, target)
        return Function(logical_id=logical, type=kind, line=template.line(("Resources", logical)), name=name,
                        policies=(*role_policies, *connectors), role=target, role_line=template.line(base + ("Role",)),
                        role_name=role_name, boundary=boundary, notes=tuple(role_notes))
    if kind == LAMBDA_FUNCTION:
        notes.append("an AWS::Lambda::Function without Role: the template is incomplete")
        return Function(logical_id=logical, type=kind, line=template.line(("Resources", logical)), name=name,
                        notes=tuple(notes))
    implicit_line = template.line(("Resources", logical))
    for managed in _implicit_managed(props):
        arn, document = managed_policy(managed)
        policies.append(SourcedPolicy(policy=Policy(name=managed, kind="aws-managed", document=document or {},
                                                    arn=arn), line=implicit_line, origin=f"implicit (SAM): {managed}",
                                      expanded=document is not None, implicit=True))
    dlq = props.get("DeadLetterQueue")
    if isinstance(dlq, dict) and "TargetArn" in dlq:
        document = _delivery_document("SQS" if dlq.get("Type") == "SQS" else "SNS", resolver.string(dlq["TargetArn"]))
        policies.append(SourcedPolicy(policy=Policy(name=f"{logical}RolePolicy-dlq", kind="inline",
                                                    document=document),
                                      line=template.line(base + ("DeadLetterQueue",)), origin="implicit (SAM DLQ)",
                                      implicit=True))
    policies += _invoke_destinations(template, resolver, logical, props)
    raw = props.get("Policies")
    items = raw if isinstance(raw, list) else [] if raw is None else [raw]
    for i, item in enumerate(items):
        path = base + ("Policies", i) if isinstance(raw, list) else base + ("Policies",)
        if isinstance(item, dict) and set(item) == {"Fn::If"}:  # a conditional policy: the branch that applies
            item = resolver.resolve(item)
            if item is NO_VALUE:
                continue
        policies.append(_policy_item(item, i, template.line(path), resolver, logical, path))
    boundary = _boundary(props, resolver, notes)
    return Function(logical_id=logical, type=kind, line=template.line(("Resources", logical)), name=name,
                    policies=(*policies, *connectors), policies_path=base + ("Policies",), boundary=boundary,
                    notes=tuple(notes))


#: What SAM grants a function's role for each asynchronous-invocation destination (EventInvokeConfig
#: DestinationConfig OnSuccess/OnFailure) and for its DeadLetterQueue (SQS or SNS), by destination Type:
#: (action, suffix of the destination's ARN).
#: aws-sam-translator writes one inline policy per destination; tests compare these with its output.
_DESTINATION_GRANTS = {
    "SQS": (("sqs:SendMessage", ""),),
    "SNS": (("sns:Publish", ""),),
    "Lambda": (("lambda:InvokeFunction", ""),),
    "EventBridge": (("events:PutEvents", ""),),
    "S3Bucket": (("s3:PutObject", "/*"), ("s3:ListBucket", "")),
}
#: A destination SAM creates when the template gives none: (resource type, logical-id suffix, attribute).
_CREATED_DESTINATIONS = {"SQS": ("AWS::SQS::Queue", "Queue", "Arn"), "SNS": ("AWS::SNS::Topic", "Topic", "Ref")}


def _delivery_document(kind: str, target: str) -> dict:
    """The statements SAM writes for Lambda to deliver records to ``target`` of ``kind`` (dead-letter queue or topic,
    asynchronous-invocation destination)."""
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": action, "Resource": target + tail} for action, tail in _DESTINATION_GRANTS[kind]]}


def _invoke_destinations(template: Template, resolver: Resolver, logical: str, props: dict) -> list[SourcedPolicy]:
    """The inline policies SAM adds to the implicit role for the function's asynchronous-invocation destinations."""
    config = props.get("EventInvokeConfig")
    destinations = config.get("DestinationConfig") if isinstance(config, dict) else None
    out = []
    for when in ("OnSuccess", "OnFailure"):
        dest = destinations.get(when) if isinstance(destinations, dict) else None
        kind = resolver.string(dest.get("Type")) if isinstance(dest, dict) and "Type" in dest else None
        if kind not in _DESTINATION_GRANTS:
            continue
        if "Destination" in dest:
            target = resolver.string(dest["Destination"])
        elif kind in _CREATED_DESTINATIONS:
            cfn_type, suffix, attribute = _CREATED_DESTINATIONS[kind]
            target = resolver.created_attribute(f"{logical}EventInvokeConfig{when}{suffix}", cfn_type, attribute)
        else:
            continue
        out.append(SourcedPolicy(
            policy=Policy(name=f"{logical}EventInvokeConfig{when}{'S3' if kind == 'S3Bucket' else kind}Policy",
                          kind="inline", document=_delivery_document(kind, target)),
            line=template.line(("Resources", logical, "Properties", "EventInvokeConfig", "DestinationConfig", when)),
            origin=f"implicit (SAM EventInvokeConfig {when})", implicit=True))
    return out


def _boundary(props: dict, resolver: Resolver, notes: list[str]) -> Policy | None:
    """The PermissionsBoundary of a function or role, when lpgen has its document (else a note)."""
    if "PermissionsBoundary" not in props:
        return None
    arn, document = managed_policy(resolver.string(props["PermissionsBoundary"]))
    if document is None:
        notes.append(f"permissions boundary {arn}: its document is not in the template (not applied)")
        return None
    return Policy(name=arn.rsplit("/", 1)[-1], kind="boundary", document=document, arn=arn)


def _implicit_managed(props: dict) -> list[str]:
    out = ["AWSLambdaBasicExecutionRole"]
    if props.get("VpcConfig"):
        out.append("AWSLambdaVPCAccessExecutionRole")
    if props.get("Tracing") == "Active":
        out.append("AWSXrayWriteOnlyAccess")
    events = props.get("Events") if isinstance(props.get("Events"), dict) else {}
    for event in events.values():
        policy = EVENT_POLICIES.get(event.get("Type")) if isinstance(event, dict) and isinstance(
            event.get("Type"), str) else None
        if policy and policy not in out:
            out.append(policy)
    return out


def _policy_item(item: Any, index: int, line: int | None, resolver: Resolver, logical: str,
                 path: tuple) -> SourcedPolicy:
    origin = f"Policies[{index}]"
    if isinstance(item, dict) and len(item) == 1 and next(iter(item)) in sam_policy_templates():
        (name, params), = item.items()
        params = _dict(resolver.resolve(params) if isinstance(params, dict) else {})
        values = {k: v if isinstance(v, str) else resolver.string(v) for k, v in params.items()}
        document = expand_sam_template(name, values, resolver)
        return SourcedPolicy(policy=Policy(name=name, kind="inline", document=document), line=line,
                             origin=f"{origin}: {name}", sam_template=name, parameters=tuple(sorted(values.items())))
    if isinstance(item, dict) and len(item) == 1 and not _intrinsic(item) and "Statement" not in item:
        (name, _), = item.items()
        return SourcedPolicy(policy=Policy(name=name, kind="inline", document={}), line=line, expanded=False,
                             origin=f"{origin}: {name}, which is not a SAM policy template of aws-sam-translator "
                                    "(a typo, or a newer template)")
    if isinstance(item, dict) and "Statement" in item:
        document = policy_document(resolver.resolve(item))
        return SourcedPolicy(policy=Policy(name=f"{logical}RolePolicy{index}", kind="inline", document=document),
                             line=line, origin=origin, path=path)
    value = resolver.string(item)
    arn, document = managed_policy(value)
    kind = "aws-managed" if ":iam::aws:policy/" in arn else "managed"
    return SourcedPolicy(policy=Policy(name=value.rsplit("/", 1)[-1], kind=kind, document=document or {}, arn=arn),
                         line=line, origin=f"{origin}: {value}", expanded=document is not None)


def _role_target(role: Any, resolver: Resolver) -> str:
    """The logical id of a template role (``!GetAtt R.Arn``, ``!Ref R``, ``!Sub ${R.Arn}``) or the ARN given."""
    if isinstance(role, dict):
        if "Fn::GetAtt" in role:
            target = role["Fn::GetAtt"]
            target = target.split(".", 1) if isinstance(target, str) else target
            if isinstance(target, list) and target and target[0] in resolver.template.resources:
                return target[0]
        if "Ref" in role and role["Ref"] in resolver.template.resources:
            return role["Ref"]
        if isinstance(role.get("Fn::Sub"), str):
            inner = role["Fn::Sub"].strip()
            if inner.startswith("${") and inner.endswith(".Arn}"):
                return inner[2:-5]
    return resolver.string(role)


def _role_policies(template: Template, resolver: Resolver, target: str):
    resource = template.resources.get(target)
    if resource is None or resource.get("Type") != "AWS::IAM::Role":
        return [], None, None, [f"role {target} is not defined in the template: its policies are not reviewed"]
    props = resource.get("Properties") if isinstance(resource.get("Properties"), dict) else {}
    base = ("Resources", target, "Properties")
    out: list[SourcedPolicy] = []
    notes: list[str] = []
    for i, entry in enumerate(_list(props.get("Policies"))):
        if isinstance(entry, dict) and isinstance(entry.get("PolicyDocument"), dict):
            out.append(SourcedPolicy(policy=Policy(name=resolver.string(entry.get("PolicyName", f"policy{i}")),
                                                   kind="inline", document=policy_document(resolver.resolve(
                                                       entry["PolicyDocument"]))),
                                     line=template.line(base + ("Policies", i)), origin=f"role {target} Policies[{i}]",
                                     path=base + ("Policies", i, "PolicyDocument")))
    for i, entry in enumerate(_list(props.get("ManagedPolicyArns"))):
        value = resolver.string(entry)
        arn, document = managed_policy(value)
        out.append(SourcedPolicy(policy=Policy(name=arn.rsplit("/", 1)[-1], kind="aws-managed" if document else
                                               "managed", document=document or {}, arn=arn),
                                 line=template.line(base + ("ManagedPolicyArns", i)),
                                 origin=f"role {target} ManagedPolicyArns[{i}]", expanded=document is not None))
    for logical, other in sorted(template.resources.items()):
        if other.get("Type") not in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        oprops = other.get("Properties") if isinstance(other.get("Properties"), dict) else {}
        roles = [r.get("Ref") if isinstance(r, dict) else r for r in _list(oprops.get("Roles"))]
        if target in roles and isinstance(oprops.get("PolicyDocument"), dict):
            out.append(SourcedPolicy(policy=Policy(name=logical, kind="inline" if other["Type"] == "AWS::IAM::Policy"
                                                   else "managed", document=policy_document(resolver.resolve(
                                                       oprops["PolicyDocument"]))),
                                     line=template.line(("Resources", logical, "Properties", "PolicyDocument")),
                                     origin=f"{other['Type']} {logical}",
                                     path=("Resources", logical, "Properties", "PolicyDocument")))
    name = resolver.string(props["RoleName"]) if "RoleName" in props else None
    if name is not None:
        name = resolver.string(props.get("Path", "/")).rstrip("/") + "/" + name
    boundary = _boundary(props, resolver, notes)
    return out, name, boundary, notes


def _connectors(template: Template, resolver: Resolver) -> dict[str, list[SourcedPolicy]]:
    """Connector statements by source function logical id (standalone and embedded connectors)."""
    found: list[tuple[str, dict, tuple]] = []  # (name, properties, path)
    for logical, resource in sorted(template.resources.items()):
        if resource.get("Type") == "AWS::Serverless::Connector" and isinstance(resource.get("Properties"), dict):
            found.append((logical, resource["Properties"], ("Resources", logical)))
        embedded = resource.get("Connectors")
        for name, spec in (embedded.items() if isinstance(embedded, dict) else ()):
            props = spec.get("Properties") if isinstance(spec, dict) else None
            if isinstance(props, dict):
                found.append((f"{logical}{name}", {**props, "Source": {"Id": logical}},
                              ("Resources", logical, "Connectors", name)))
    out: dict[str, list[SourcedPolicy]] = defaultdict(list)
    for name, props, path in found:
        source, destinations = _dict(props.get("Source")), props.get("Destination")
        source_id = source.get("Id") if isinstance(source.get("Id"), str) else None
        source_type = _dict(template.resources.get(source_id)).get("Type")
        if source_type not in (SAM_FUNCTION, LAMBDA_FUNCTION):
            continue
        for destination in destinations if isinstance(destinations, list) else [destinations]:
            document = _connector_document(template, resolver, destination, _list(props.get("Permissions")))
            if document is None:
                continue
            out[source_id].append(SourcedPolicy(policy=Policy(name=f"{name}Policy", kind="inline", document=document),
                                                line=template.line(path), origin=f"connector {name}"))
    return out


def _connector_document(template: Template, resolver: Resolver, destination: Any, permissions: list) -> dict | None:
    if not isinstance(destination, dict):
        return None
    dest_id = destination.get("Id") if isinstance(destination.get("Id"), str) else None
    dest_type = destination.get("Type") or _dict(template.resources.get(dest_id)).get("Type")
    if not isinstance(dest_type, str):
        return None
    if dest_type == "AWS::Serverless::SimpleTable":
        dest_type = "AWS::DynamoDB::Table"
    profile = (_connector_profiles().get("AWS::Lambda::Function") or {}).get(dest_type)
    if profile is None or profile.get("Type") != "AWS_IAM_ROLE_MANAGED_POLICY":
        return None
    values = {"Destination.Arn": resolver.string(destination["Arn"]) if "Arn" in destination else
              resolver.get_att(dest_id, "Arn") if dest_id else "${?}",
              "Destination.Name": resolver.string(destination.get("Name", {"Ref": dest_id} if dest_id else "${?}")),
              "Destination.ResourceId": resolver.string({"Ref": dest_id}) if dest_id else "${?}"}
    statements = []
    for permission in permissions:
        category = profile["Properties"]["AccessCategories"].get(permission) if isinstance(permission, str) else None
        for s in (category or {}).get("Statement", []):
            statements.append(resolver.resolve(_fill(copy.deepcopy(s), values)))
    return {"Version": "2012-10-17", "Statement": statements} if statements else None


def policy_document(value: Any) -> dict:
    """A policy document in the shape expansion reads: a Version and a list of statement mappings
    (whatever a template wrote; a statement that is not a mapping grants nothing)."""
    value = _dict(value)
    raw = value.get("Statement")
    statements = [raw] if isinstance(raw, dict) else [x for x in raw if isinstance(x, dict)] if isinstance(
        raw, list) else []
    return {**value, "Version": value.get("Version", "2012-10-17"), "Statement": [
        {k: _strings(v) if k in ("Action", "NotAction", "Resource", "NotResource") else v for k, v in s.items()}
        for s in statements]}


def _strings(value: Any) -> str | list[str]:
    return value if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(
        value, list) else []


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        for key, v in values.items():
            value = value.replace("%{" + key + "}", v)
        return value
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, values) for k, v in value.items()}
    return value


__all__ = ["Function", "Model", "SourcedPolicy", "TemplateError", "analyse", "expand_sam_template",
           "managed_policy", "sam_policy_templates"]
