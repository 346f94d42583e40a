"""Read SAM and CloudFormation templates (YAML or JSON) safely, keeping line numbers,
and resolve the intrinsic functions that name resources.

Loading is safe by construction: YAML aliases and anchors are refused (CloudFormation does
not use them, and they are how "billion laughs" bombs expand), unknown tags are refused, and
only CloudFormation's short intrinsic tags (``!Ref``, ``!Sub``, ``!GetAtt``, ...) are read, as
the long form (``{"Fn::Sub": ...}``) they stand for.

Resolution is pure: ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::Join``, ``Fn::If``,
``Fn::Select``, ``Fn::Split`` and ``Fn::FindInMap`` become strings where the value can be
built (parameters, pseudo parameters, the names and ARNs of the template's own tables,
buckets, queues, topics, functions, state machines, secrets, parameters and log groups); what
cannot be built stays symbolic, in ``Fn::Sub`` syntax (``${OrdersTable.StreamArn}``), so it
reads well and never matches a real ARN by accident.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lpgen.data_files import load

#: Templates CloudFormation accepts are at most 1 MB (from S3); refuse anything far beyond.
MAX_TEMPLATE_BYTES = 5 * 1024 * 1024

#: Short tags and the long form they stand for.
_TAGS = {"Ref": "Ref", "Condition": "Condition", **{n: f"Fn::{n}" for n in (
    "Base64", "Cidr", "Equals", "FindInMap", "GetAtt", "GetAZs", "If", "ImportValue", "Join", "Not", "And", "Or",
    "Select", "Split", "Sub", "Transform", "Length", "ToJsonString")}}

_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class TemplateError(Exception):
    """A template cannot be read: the message names the file and, where known, the line."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    line: int  # 1-based line of the value
    end_line: int  # last line holding part of the value
    column: int  # 1-based column of the value
    key_line: int | None = None  # line of the mapping key that holds it
    key_column: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Template:
    """A parsed template: plain data (short tags in long form) and where each value is."""

    path: str
    text: str
    data: dict
    spans: dict[tuple, Span] = field(compare=False, repr=False)
    is_json: bool = False

    def line(self, path: tuple) -> int | None:
        """The line of the key (or list item) at ``path``, the nearest enclosing one if it has none."""
        while path:
            span = self.spans.get(path)
            if span is not None:
                return span.key_line or span.line
            path = path[:-1]
        return None

    @property
    def resources(self) -> dict[str, dict]:
        raw = self.data.get("Resources")
        return {k: v for k, v in raw.items() if isinstance(v, dict)} if isinstance(raw, dict) else {}

    @property
    def is_sam(self) -> bool:
        transform = self.data.get("Transform")
        names = transform if isinstance(transform, list) else [transform]
        return any(isinstance(n, str) and n.startswith("AWS::Serverless") for n in names)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and anchors; tags are checked by :func:`_convert`."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise TemplateError(f"line {event.start_mark.line + 1}: YAML alias *{event.anchor} refused "
                                "(aliases and anchors are not CloudFormation and can expand without bound)")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise TemplateError(f"line {event.start_mark.line + 1}: YAML anchor &{event.anchor} refused "
                                "(aliases and anchors are not CloudFormation and can expand without bound)")
        return super().compose_node(parent, index)


def load_template(path: str | Path) -> Template:
    """Read and parse a template file; :class:`TemplateError` with a clear message if it cannot be."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"{path}: {size:,} bytes, more than the {MAX_TEMPLATE_BYTES:,} a template may be")
        raw = path.read_bytes()
    except OSError as exc:
        raise TemplateError(f"{path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return parse_template(text, str(path))


def parse_template(text: str, name: str = "<template>") -> Template:
    if "\x00" in text:
        raise TemplateError(f"{name}: NUL byte at offset {text.index(chr(0))}: not a template")
    loader = _Loader(text)
    spans: dict[tuple, Span] = {}
    try:
        node = loader.get_single_node()
        data = _convert(node, (), spans, loader) if node is not None else None
    except TemplateError as exc:
        raise TemplateError(f"{name}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise TemplateError(f"{name}: {where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise TemplateError(f"{name}: not YAML or JSON ({exc})") from None
    except RecursionError:
        raise TemplateError(f"{name}: nested too deeply to be a template") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise TemplateError(f"{name}: not a template (the top level is not a mapping)")
    if not isinstance(data.get("Resources"), dict):
        raise TemplateError(f"{name}: not a template (no Resources section)")
    return Template(path=name, text=text, data=data, spans=spans, is_json=text.lstrip().startswith("{"))


def _convert(node: yaml.Node, path: tuple, spans: dict, loader: _Loader, key: yaml.Node | None = None) -> Any:
    start, end = node.start_mark, node.end_mark
    end_line = end.line + (0 if end.column else -1) + 1 if not isinstance(node, yaml.ScalarNode) else end.line + 1
    spans[path] = Span(line=start.line + 1, end_line=max(end_line, start.line + 1), column=start.column + 1,
                       key_line=key.start_mark.line + 1 if key is not None else None,
                       key_column=key.start_mark.column + 1 if key is not None else None)
    tag = node.tag
    if tag.startswith("!") and not tag.startswith("!!"):
        name = _TAGS.get(tag[1:])
        if name is None:
            raise TemplateError(f"line {start.line + 1}: unknown tag {tag} (only CloudFormation's short "
                                "intrinsic function tags are read)")
        if isinstance(node, yaml.ScalarNode):
            value: Any = node.value
            if name == "Fn::GetAtt":
                value = value.split(".", 1)
            elif name == "Fn::GetAZs" and value == "":
                value = ""
        elif isinstance(node, yaml.SequenceNode):
            value = [_convert(n, path + (i,), spans, loader) for i, n in enumerate(node.value)]
        else:
            value = _mapping(node, path, spans, loader)
        return {name: value}
    if not isinstance(node, yaml.ScalarNode) and tag not in _COLLECTION_TAGS:
        raise TemplateError(f"line {start.line + 1}: unknown tag {tag} (only CloudFormation's short "
                            "intrinsic function tags are read)")
    if isinstance(node, yaml.MappingNode):
        return _mapping(node, path, spans, loader)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(n, path + (i,), spans, loader, n) for i, n in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as exc:
        raise TemplateError(f"line {start.line + 1}: {exc.problem}") from None


def _mapping(node: yaml.MappingNode, path: tuple, spans: dict, loader: _Loader) -> dict:
    out: dict = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise TemplateError(f"line {key_node.start_mark.line + 1}: a mapping key must be a plain string")
        key = key_node.value
        if key == "<<":
            raise TemplateError(f"line {key_node.start_mark.line + 1}: YAML merge key << refused")
        if key in out:
            raise TemplateError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
        out[key] = _convert(value_node, path + (key,), spans, loader, key_node)
    return out


# -- resolution ---------------------------------------------------------------------------

NO_VALUE = object()  # AWS::NoValue: the property or list item is dropped


@dataclass(frozen=True, slots=True, kw_only=True)
class Pseudo:
    """The pseudo parameters; ``None`` keeps one symbolic (``${AWS::Region}``)."""

    region: str | None = None
    account: str | None = None
    partition: str = "aws"
    stack: str | None = None
    url_suffix: str = "amazonaws.com"


class Resolver:
    """Resolve intrinsic functions against a template, its parameters and the pseudo parameters."""

    def __init__(self, template: Template, parameters: dict[str, str] | None = None, pseudo: Pseudo | None = None):
        self.template = template
        self.pseudo = pseudo or Pseudo()
        self.parameters: dict[str, Any] = {}
        declared = template.data.get("Parameters")
        for name, spec in (declared.items() if isinstance(declared, dict) else ()):
            if isinstance(spec, dict) and "Default" in spec:
                self.parameters[name] = spec["Default"]
        unknown = sorted(set(parameters or {}) - set(declared if isinstance(declared, dict) else ()))
        if unknown:
            raise TemplateError(f"{template.path}: --parameter {', '.join(unknown)}: not a parameter of the template")
        self.parameters.update(parameters or {})
        self._conditions: dict[str, bool | None] = {}

    # Values --------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function resolved (or made symbolic)."""
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (name, arg), = value.items()
            handler = _FUNCTIONS.get(name)
            if handler is not None:
                return handler(self, arg)
        out = {}
        for k, v in value.items():
            r = self.resolve(v)
            if r is not NO_VALUE:
                out[k] = r
        return out

    def string(self, value: Any) -> str:
        r = self.resolve(value)
        if isinstance(r, str):
            return r
        if isinstance(r, bool):
            return "true" if r else "false"
        if isinstance(r, (int, float)):
            return str(r)
        return "${?}"

    def ref(self, name: str) -> Any:
        pseudo = {"AWS::Region": self.pseudo.region, "AWS::AccountId": self.pseudo.account,
                  "AWS::Partition": self.pseudo.partition, "AWS::StackName": self.pseudo.stack,
                  "AWS::URLSuffix": self.pseudo.url_suffix}
        if name in pseudo:
            return pseudo[name] if pseudo[name] is not None else f"${{{name}}}"
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            value = self.parameters[name]
            return ",".join(map(str, value)) if isinstance(value, list) else self.resolve(value)
        resource = self.template.resources.get(name)
        if resource is not None:
            return self._attribute(name, resource, "Ref")
        return f"${{{name}}}"

    def get_att(self, name: str, attribute: str) -> str:
        resource = self.template.resources.get(name)
        if resource is None:
            return f"${{{name}.{attribute}}}"
        return self._attribute(name, resource, attribute)

    def created_attribute(self, logical: str, kind: str, attribute: str) -> str:
        """An attribute of a resource of type ``kind`` that a transform adds to the template (SAM's queue for an
        EventInvokeConfig destination it is not given), named as CloudFormation names it."""
        return self._attribute(logical, {"Type": kind, "Properties": {}}, attribute)

    def _attribute(self, logical: str, resource: dict, attribute: str) -> str:
        spec = resource_spec(resource.get("Type", ""))
        symbolic = f"${{{logical}}}" if attribute == "Ref" else f"${{{logical}.{attribute}}}"
        if spec is None:
            return symbolic
        props = resource.get("Properties") if isinstance(resource.get("Properties"), dict) else {}
        name = self._name(logical, props, spec)
        if name is None:
            return symbolic
        form = spec.get("ref") if attribute == "Ref" else spec.get("attributes", {}).get(attribute)
        if form is None:
            return symbolic
        return self._format(form, name, props)

    def _name(self, logical: str, props: dict, spec: dict) -> str | None:
        prop = spec.get("name")
        if prop and prop in props:
            value = self.string(props[prop])
            return value if "${?}" not in value else None
        if spec.get("generated_name") and self.pseudo.stack:
            # CloudFormation names it <stack>-<LogicalId>-<random>: the suffix is unknown.
            return f"{self.pseudo.stack}-{logical}-*"
        return None

    def _format(self, form: str, name: str, props: dict) -> str:
        values = {"Name": name.lstrip("/") if "parameter/" in form else name, "Partition": self.string(
            {"Ref": "AWS::Partition"}), "Region": self.string({"Ref": "AWS::Region"}),
            "Account": self.string({"Ref": "AWS::AccountId"}), "URLSuffix": self.string({"Ref": "AWS::URLSuffix"}),
            "Path": self.string(props.get("Path", "/"))}
        return re.sub(r"\{(\w+)\}", lambda m: values.get(m[1], m[0]), form)

    # Conditions ----------------------------------------------------------------------
    def condition(self, name: str) -> bool | None:
        """True, False, or None when it depends on something unknown."""
        if name not in self._conditions:
            self._conditions[name] = None  # guards against cycles
            conditions = self.template.data.get("Conditions")
            spec = conditions.get(name) if isinstance(conditions, dict) else None
            self._conditions[name] = self._evaluate(spec)
        return self._conditions[name]

    def _evaluate(self, spec: Any) -> bool | None:
        if not isinstance(spec, dict) or len(spec) != 1:
            return None
        (fn, arg), = spec.items()
        if fn == "Condition":
            return self.condition(arg) if isinstance(arg, str) else None
        if fn == "Fn::Equals" and isinstance(arg, list) and len(arg) == 2:
            a, b = (self.string(x) for x in arg)
            return None if "${" in a + b else a == b
        parts = [self._evaluate(x) for x in arg] if isinstance(arg, list) else []
        if fn == "Fn::Not" and len(parts) == 1:
            return None if parts[0] is None else not parts[0]
        if fn == "Fn::And" and parts:
            return False if False in parts else None if None in parts else True
        if fn == "Fn::Or" and parts:
            return True if True in parts else None if None in parts else False
        return None


def _sub(r: Resolver, arg: Any) -> str:
    text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1]) if (
        isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and isinstance(arg[1], dict)) else (None, {})
    if text is None:
        return "${?}"

    def one(m: re.Match) -> str:
        inner = m[1]
        if inner.startswith("!"):
            return "${" + inner[1:] + "}"
        if inner in variables:
            return r.string(variables[inner])
        if "." in inner and not inner.startswith("AWS::"):
            logical, attribute = inner.split(".", 1)
            return r.get_att(logical, attribute)
        value = r.ref(inner)
        return "${?}" if value is NO_VALUE else r.string(value)

    return re.sub(r"\$\{([^}]*)\}", one, text)


def _get_att(r: Resolver, arg: Any) -> str:
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    if isinstance(arg, list) and len(arg) == 2:
        return r.get_att(r.string(arg[0]), r.string(arg[1]))
    return "${?}"


def _join(r: Resolver, arg: Any) -> str:
    if isinstance(arg, list) and len(arg) == 2:
        items = r.resolve(arg[1])
        if isinstance(items, list):
            return r.string(arg[0]).join(r.string(i) for i in items)
    return "${?}"


def _select(r: Resolver, arg: Any) -> Any:
    if isinstance(arg, list) and len(arg) == 2:
        items = r.resolve(arg[1])
        try:
            index = int(r.string(arg[0]))
        except ValueError:
            return "${?}"
        if isinstance(items, list) and 0 <= index < len(items):
            return items[index]
    return "${?}"


def _split(r: Resolver, arg: Any) -> Any:
    if isinstance(arg, list) and len(arg) == 2:
        text = r.string(arg[1])
        if "${" not in text:
            return text.split(r.string(arg[0]))
    return ["${?}"]


def _if(r: Resolver, arg: Any) -> Any:
    if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
        return "${?}"
    # An undecidable condition takes the true branch: the wider grant, for a review.
    return r.resolve(arg[2] if r.condition(arg[0]) is False else arg[1])


def _find_in_map(r: Resolver, arg: Any) -> Any:
    if isinstance(arg, list) and len(arg) == 3:
        keys = [r.string(a) for a in arg]
        value = r.template.data.get("Mappings") or {}
        for k in keys:
            value = value.get(k) if isinstance(value, dict) else None
        if value is not None:
            return r.resolve(value)
    return "${?}"


_FUNCTIONS = {
    "Ref": lambda r, a: r.ref(a) if isinstance(a, str) else "${?}",
    "Fn::GetAtt": _get_att, "Fn::Sub": _sub, "Fn::Join": _join, "Fn::Select": _select, "Fn::Split": _split,
    "Fn::If": _if, "Fn::FindInMap": _find_in_map,
    "Fn::ImportValue": lambda r, a: "${ImportValue:" + r.string(a) + "}",
    "Fn::Base64": lambda r, a: r.resolve(a), "Fn::GetAZs": lambda r, a: ["${AZ}"],
}


def resource_spec(resource_type: str) -> dict | None:
    """How to build a resource type's name, Ref and ARN (``lpgen/data/cfn_resources.json``)."""
    return load("cfn_resources.json")["types"].get(resource_type)
