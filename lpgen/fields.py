"""Pick the request fields that name resources or decide the IAM action.

The usage store aggregates by these fields (see ``lpgen/data/request_fields.json``
for which and why), so they must name resources without varying per call.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from lpgen.data_files import values

Fields = tuple[tuple[str, str], ...]


@functools.cache
def _rules() -> tuple:
    name = "request_fields.json"
    return (
        tuple(s.lower() for s in values(name, "identifier_suffixes")),
        frozenset(k.lower() for k in values(name, "identifier_keys")),
        frozenset(k.lower() for k in values(name, "top_level_keys")),
        frozenset(k.lower() for k in values(name, "exclude_keys")),
        frozenset(k.lower() for k in values(name, "skip_subtrees")),
        {k.lower(): mode for k, mode in values(name, "facts").items()},
        values(name, "limits"),
    )


def request_fields(parameters: Any) -> Fields:
    """The (dotted path, value) pairs worth keeping from a decoded ``requestParameters``."""
    suffixes, keys, top_keys, excluded, skipped, facts, limits = _rules()
    found: set[tuple[str, str]] = set()
    max_depth, max_len = limits["depth"], limits["value_length"]

    def keep(path: str, value: str) -> None:
        if len(value) > max_len:
            value = value[:max_len] + "…"
        found.add((path, value))

    def walk(node: Any, path: str, depth: int) -> None:
        if depth > max_depth:
            return
        if isinstance(node, list):
            for item in node:
                walk(item, path, depth + 1)
            return
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if not isinstance(key, str):
                continue
            low = key.lower()
            here = f"{path}.{key}" if path else key
            if low in skipped:
                continue
            fact = facts.get(low)
            if fact is not None:
                if fact == "present":
                    keep(here, "present")
                elif isinstance(value, (str, int, float, bool)):
                    text = str(value).strip()
                    keep(here, text.split(None, 1)[0].upper() if fact == "first-word" and text else text)
                continue
            if isinstance(value, (dict, list)):
                walk(value, here, depth + 1)
            elif (isinstance(value, str) and value and low not in excluded
                  and (low in keys or low.endswith(suffixes) or (low in top_keys and not path))):
                keep(here, value)

    walk(parameters, "", 0)
    if len(found) > limits["fields"]:
        found = set(sorted(found)[: limits["fields"]])
    return tuple(sorted(found))


def resource_fields(resources: Any) -> Fields:
    """The ARNs of a record's ``resources[]`` (``ARN`` or, for prefixes, ``ARNPrefix``)."""
    found = set()
    if isinstance(resources, list):
        for entry in resources:
            if isinstance(entry, dict):
                if isinstance(entry.get("ARN"), str) and entry["ARN"]:
                    found.add(("arn", entry["ARN"]))
                if isinstance(entry.get("ARNPrefix"), str) and entry["ARNPrefix"]:
                    found.add(("arnPrefix", entry["ARNPrefix"]))
    return tuple(sorted(found))


_cache: dict[tuple[bytes, bytes], Fields] = {}
_CACHE_LIMIT = 100_000
_EMPTY = (b"null", b"{}", b"[]", b"")


def event_fields(parameters: bytes | msgspec.Raw, resources: bytes | msgspec.Raw = b"null") -> Fields:
    """Request fields and resource ARNs of one record, from undecoded JSON.

    Memoised on the raw bytes: most calls repeat their parameters exactly, and
    a dictionary lookup is far cheaper than decoding and walking them again.
    """
    key = (bytes(parameters), bytes(resources))
    hit = _cache.get(key)
    if hit is not None:
        return hit
    result: Fields = ()
    try:
        if key[0] not in _EMPTY:
            result = request_fields(msgspec.json.decode(key[0]))
        if key[1] not in _EMPTY:
            arns = resource_fields(msgspec.json.decode(key[1]))
            if arns:
                result = tuple(sorted(set(result).union(arns)))
    except msgspec.DecodeError:
        pass  # the record decoded, so its parts are JSON; never fail a record over them
    if len(_cache) >= _CACHE_LIMIT:
        _cache.clear()
    _cache[key] = result
    return result
