"""Pick the request fields that name resources or decide the IAM action.

The usage store aggregates by these fields (see ``lpgen/data/request_fields.json``
for which and why), so they must name resources without varying per call.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from typing import Any, NamedTuple

import msgspec

from lpgen.data_files import load, values

Fields = tuple[tuple[str, str], ...]


class _Rules(NamedTuple):
    """``request_fields.json``, its names in lower case (keys are matched case-insensitively)."""

    suffixes: tuple[str, ...]
    keys: frozenset[str]
    top_keys: frozenset[str]
    excluded: frozenset[str]
    skipped: frozenset[str]
    facts: dict[str, str]
    paired: dict[str, str]
    role_values: frozenset[str]
    limits: dict[str, int]


@functools.cache
def _rules() -> _Rules:
    name = "request_fields.json"
    lower = lambda part: frozenset(k.lower() for k in values(name, part))
    return _Rules(
        suffixes=tuple(s.lower() for s in values(name, "identifier_suffixes")),
        keys=lower("identifier_keys"), top_keys=lower("top_level_keys"), excluded=lower("exclude_keys"),
        skipped=lower("skip_subtrees"),
        facts={k.lower(): mode for k, mode in values(name, "facts").items()},
        paired={k.lower(): v for k, v in values(name, "paired_facts").items()},
        role_values=lower("role_values"), limits=values(name, "limits"))


def role_value_keys() -> frozenset[str]:
    """Keys (lower case) kept only when they hold a role ARN: whatever their name, it is a role handed over."""
    return _rules().role_values


@functools.cache
def rules_fingerprint() -> str:
    """A short digest of the field rules (their values, not their notes).

    The usage store aggregates by the fields these rules keep, so a store mined under other rules
    lacks what this lpgen's rules would keep (and mapping reads): the store records the digest.
    """
    data = load("request_fields.json")
    rules = {k: v["values"] for k, v in sorted(data.items()) if isinstance(v, dict) and "values" in v}
    return hashlib.sha256(json.dumps(rules, sort_keys=True).encode()).hexdigest()[:16]


# What to do with a key, decided once per distinct key name.
_SKIP, _DESCEND, _KEEP, _FACT_VALUE, _FACT_FIRST_WORD, _FACT_PRESENT, _TOP_ONLY, _ROLE_ONLY = range(8)

#: An IAM role's ARN: the only value a 'role_values' key keeps (its other values are documents or settings).
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+")
_decisions: dict[str, int] = {}


def _decide(key: str) -> int:
    rules = _rules()
    low = key.lower()
    if low in rules.skipped:
        decision = _SKIP
    elif low in rules.role_values:
        decision = _ROLE_ONLY
    elif low in rules.facts:
        decision = {"value": _FACT_VALUE, "first-word": _FACT_FIRST_WORD, "present": _FACT_PRESENT}[rules.facts[low]]
    elif low in rules.excluded:
        decision = _DESCEND
    elif low in rules.keys or low.endswith(rules.suffixes):
        decision = _KEEP
    elif low in rules.top_keys:
        decision = _TOP_ONLY
    else:
        decision = _DESCEND
    if len(_decisions) < 10_000:
        _decisions[key] = decision
    return decision


def request_fields(parameters: Any) -> Fields:
    """The (dotted path, value) pairs worth keeping from a decoded ``requestParameters``."""
    return tuple(sorted(_request_field_set(parameters)))


def _request_field_set(parameters: Any) -> set[tuple[str, str]]:
    paired, max_depth, max_len, max_fields = _limits()
    found: set[tuple[str, str]] = set()
    _walk(parameters, "", 0, found, paired, max_depth, max_len)
    if len(found) > max_fields:  # bound the request's share of the key, whatever it holds
        found = set(sorted(found)[:max_fields])
    return found


@functools.cache
def _limits() -> tuple[dict, int, int, int]:
    rules = _rules()
    return rules.paired, rules.limits["depth"], rules.limits["value_length"], rules.limits["fields"]


def _walk(node: Any, path: str, depth: int, found: set, paired: dict, max_depth: int, max_len: int) -> None:
    """Add the fields under ``node`` to ``found`` (a plain function: a recursive closure is a reference cycle)."""
    if isinstance(node, list):
        if depth < max_depth:
            for item in node:
                _walk(item, path, depth + 1, found, paired, max_depth, max_len)
        return
    if not isinstance(node, dict):
        return
    decisions = _decisions
    for key, value in node.items():
        decision = decisions.get(key)
        if decision is None:
            decision = _decide(key) if isinstance(key, str) else _SKIP
        if decision == _ROLE_ONLY:
            if isinstance(value, str) and ROLE_ARN.fullmatch(value.strip()):
                found.add((f"{path}.{key}" if path else key, value.strip()))
            continue
        if isinstance(value, str) and (decision == _KEEP or (decision == _TOP_ONLY and not path)):
            if value:  # the common case first: a name or an ARN
                text = value.strip()
                found.add((f"{path}.{key}" if path else key, text if len(text) <= max_len else text[:max_len] + "…"))
            continue
        if decision == _SKIP:
            continue
        here = f"{path}.{key}" if path else key
        if decision == _DESCEND or (decision == _TOP_ONLY and path):
            if isinstance(value, (dict, list)) and depth < max_depth:
                _walk(value, here, depth + 1, found, paired, max_depth, max_len)
            continue
        if decision == _FACT_PRESENT:
            if value is None or value == "":  # not set (an empty list or map is set: DynamoDB authorizes
                continue  # CreateTable with an empty tag list as tagging)
            text = "present"
        elif isinstance(value, str):  # a fact (names and ARNs were kept above)
            text = value.strip()
        elif isinstance(value, (int, float, bool)):
            if decision in (_KEEP, _TOP_ONLY):
                continue
            text = str(value)
        elif isinstance(value, (dict, list)) and decision in (_KEEP, _TOP_ONLY):
            if isinstance(value, list):  # a list of names or ARNs: keep each
                for item in value:
                    if isinstance(item, str) and item:
                        found.add((here, item if len(item) <= max_len else item[:max_len] + "…"))
            if depth < max_depth:
                _walk(value, here, depth + 1, found, paired, max_depth, max_len)
            continue
        else:
            continue
        if decision == _FACT_FIRST_WORD and text:
            text = text.split(None, 1)[0].upper()
        elif decision == _FACT_VALUE:
            partner = paired.get(key.lower())
            if partner is not None and isinstance(node.get(partner), str):
                text = f"{text}:{node[partner]}"
        found.add((here, text if len(text) <= max_len else text[:max_len] + "…"))


class _Resource(msgspec.Struct):
    ARN: Any = None
    ARNPrefix: Any = None


_resources_decoder = msgspec.json.Decoder(list[_Resource])


def resource_fields(resources: Any) -> Fields:
    """The ARNs of a record's ``resources[]`` (``ARN`` or, for prefixes, ``ARNPrefix``)."""
    found: set[tuple[str, str]] = set()
    if isinstance(resources, list):
        _add_resources(found, [_Resource(ARN=e.get("ARN"), ARNPrefix=e.get("ARNPrefix")) if isinstance(e, dict) else e
                               for e in resources])
    return tuple(sorted(found))


def _add_resources(found: set, entries: list) -> None:
    """Add the ARNs of decoded ``resources[]`` entries to ``found`` (entries of another type are no resource)."""
    for entry in entries:
        if isinstance(entry, _Resource):
            arn, prefix = entry.ARN, entry.ARNPrefix
            if isinstance(arn, str) and arn:
                found.add(("arn", arn))
            if isinstance(prefix, str) and prefix:
                found.add(("arnPrefix", prefix))


_EMPTY = (b"null", b"{}", b"[]", b"")


def _empty(part: bytes | msgspec.Raw) -> bool:
    """Whether an undecoded part holds nothing (copied only when short enough to be one of _EMPTY)."""
    return len(part) <= 4 and bytes(part) in _EMPTY
#: Field-name prefix of identifiers a call created (from responseElements): evidence for
#: ``lpgen who``, never input to the mapping (see lpgen/data/created_resources.json).
CREATED = "created:"


#: The API-version suffixes CloudTrail appends to Lambda and CloudFront eventNames (CreateFunction20150331).
_VERSION_SUFFIX = re.compile(r"(?:\d{8}(?:v\d+)?|\d{4}_\d{2}_\d{2})")


@functools.lru_cache(maxsize=4096)
def created_keys(source: str, name: str) -> tuple[str, ...]:
    """The responseElements keys that hold what this call created; () for most calls.

    Runs in mining workers, so it never loads the catalogue: a versioned eventName matches a
    table entry of its service when what follows the operation is an API-version suffix.
    """
    table = values("created_resources.json", "calls")
    keys = table.get(f"{source} {name}")
    if keys is None and source in ("lambda.amazonaws.com", "cloudfront.amazonaws.com"):
        for entry, candidate in table.items():
            service, _, operation = entry.partition(" ")
            if service == source and name.startswith(operation) and _VERSION_SUFFIX.fullmatch(name[len(operation):]):
                keys = candidate
    return tuple(keys or ())


def created_fields(response: Any, keys: tuple[str, ...]) -> Fields:
    """``(created:<key>, value)`` for every string under one of ``keys``, at any depth."""
    found: set[tuple[str, str]] = set()
    _walk_created(response, 0, set(keys), found, _limits()[1])
    return tuple(sorted(found))


def _walk_created(node: Any, depth: int, wanted: set[str], found: set, max_depth: int) -> None:
    if depth > max_depth:
        return
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if key in wanted and isinstance(value, str) and value:
            found.add((CREATED + key, value))
        elif isinstance(value, (dict, list)):
            _walk_created(value, depth + 1, wanted, found, max_depth)


def event_fields(parameters: bytes | msgspec.Raw, resources: bytes | msgspec.Raw = b"null",
                 response: bytes | msgspec.Raw = b"null", created: tuple[str, ...] = ()) -> Fields:
    """Request fields and resource ARNs of one record, from its undecoded JSON parts; with
    ``created`` (see :func:`created_keys`), the identifiers the call created."""
    return tuple(sorted(_field_set(parameters, resources, response, created)))


def event_fields_json(parameters: bytes | msgspec.Raw, resources: bytes | msgspec.Raw = b"null",
                      response: bytes | msgspec.Raw = b"null", created: tuple[str, ...] = ()) -> str:
    """:func:`event_fields` as the JSON text the usage store keeps (mining's form: no tuple between)."""
    return _encode(sorted(_field_set(parameters, resources, response, created))).decode()


_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _field_set(parameters: bytes | msgspec.Raw, resources: bytes | msgspec.Raw, response: bytes | msgspec.Raw,
               created: tuple[str, ...]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    try:
        if not _empty(parameters):
            found = _request_field_set(_decode(parameters))
        if not _empty(resources):
            try:
                _add_resources(found, _resources_decoder.decode(resources))
            except msgspec.ValidationError:  # not a list of objects: read it loosely
                found.update(resource_fields(_decode(resources)))
        if created and not _empty(response):
            found.update(created_fields(_decode(response), created))
    except (msgspec.DecodeError, RecursionError):
        pass  # the record decoded, so its parts are JSON; never fail a record over them
    return found
