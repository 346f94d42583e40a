"""``lpgen who RESOURCE``: which principals touched a resource, with which actions, when.

The operator's question about a forgotten resource ("who created this instance?"), answered
from the usage graph. A resource is named by its ARN or by what people call it: an instance
or volume id, a bucket, a function, table, queue or topic name. A call's own resources come
from its request and ``resources[]``; what it created (an instance's id exists only in the
RunInstances response) from the ``created:`` fields mining keeps (lpgen/data/created_resources.json).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from dataclasses import dataclass

from lpgen.catalog import Catalog, load_catalog
from lpgen.graph import UsageGraph
from lpgen.mapping import iam_paths, iam_twin, row_mapper
from lpgen.store import UsageRow


@dataclass(frozen=True, slots=True, kw_only=True)
class Touch:
    principal: str
    action: str  # the IAM action (or the call, when it maps to none)
    resource: str  # the graph's resource name that matched
    calls: tuple[str, ...]  # eventSource:eventName
    count: int
    denied: int
    first_seen: str
    last_seen: str
    regions: tuple[str, ...]
    samples: tuple[str, ...]
    created: bool = False  # the call created the resource (its id came from the response)


def matcher(resource: str) -> Callable[[str], bool]:
    """A predicate over the graph's resource names for what the user typed.

    An ARN matches itself and what lies under it (a bucket's objects, a table's indexes); a bare
    name matches the last part of an ARN's resource (``i-0abc`` ↔ ``...:instance/i-0abc``,
    ``orders`` ↔ ``...:table/orders`` or ``...:function:orders``), a bucket's ARN and keys, a
    queue URL's last segment, and identifier fields (``instanceId=i-0abc``).
    """
    wanted = resource.strip()
    if wanted.startswith("arn:"):
        base = wanted.rstrip("/*")
        # an IAM entity a call named without its path (KIND/*/NAME) is the one of that name, wherever it is
        return lambda name: (name == wanted or name.startswith((base + "/", base + ":"))
                             or "/*/" in name and iam_twin(name) is not None and fnmatch.fnmatchcase(wanted, name))

    def matches(name: str) -> bool:
        if name == wanted:
            return True
        if "=" in name and not name.startswith(("arn:", "http")):
            return name.split("=", 1)[1] == wanted
        if name.startswith("https://"):  # an SQS queue URL
            return name.rstrip("/").rsplit("/", 1)[-1] == wanted
        if not name.startswith("arn:"):
            return False
        parts = name.split(":", 5)
        if len(parts) < 6:
            return False
        service, rest = parts[2], parts[5]
        if service == "s3":
            return rest == wanted or rest.startswith(wanted + "/")
        if service == "lambda" and rest.startswith("function:"):
            return rest.split(":")[1] == wanted
        segments = [s for piece in rest.split(":") for s in piece.split("/")]
        return wanted in segments[1:] or (len(segments) == 1 and segments[0] == wanted)

    return matches


def who(rows: list[UsageRow], resource: str, catalog: Catalog | None = None) -> list[Touch]:
    """Every principal's touches of ``resource``, earliest first."""
    graph = UsageGraph.from_rows((r for r in rows if not r.principal.startswith("service:")),
                                 mapper=row_mapper(iam_paths(rows), catalog or load_catalog()))
    return [Touch(principal=t["principal"], action=t["via"], resource=t["resource"], calls=tuple(t["calls"]),
                  count=t["count"], denied=t["denied"], first_seen=t["first_seen"], last_seen=t["last_seen"],
                  regions=tuple(t["regions"]), samples=tuple(t["samples"]), created=t["created"])
            for t in graph.touching(matcher(resource))]


def render_who(resource: str, touches: list[Touch], fmt: str = "text") -> str:
    if fmt == "json":
        return json.dumps({"resource": resource, "touches": [
            {"principal": t.principal, "action": t.action, "resource": t.resource, "calls": list(t.calls),
             "count": t.count, "denied": t.denied, "first_seen": t.first_seen, "last_seen": t.last_seen,
             "regions": list(t.regions), "samples": list(t.samples), "created": t.created} for t in touches]},
            indent=2, sort_keys=True) + "\n"
    if not touches:
        return f"no principal in the store touched {resource}\n"
    principals: dict[str, list[Touch]] = {}
    for t in touches:  # earliest toucher first
        principals.setdefault(t.principal, []).append(t)
    lines = [f"{resource}: {len(principals)} principal(s)"]
    for principal, theirs in sorted(principals.items(), key=lambda kv: min(t.first_seen for t in kv[1])):
        lines.append(f"  {principal}")
        for t in sorted(theirs, key=lambda t: (t.first_seen, t.action)):
            denied = f", {t.denied:,} denied" if t.denied else ""
            what = f"{t.action} (created it)" if t.created else t.action
            lines.append(f"    {t.first_seen} .. {t.last_seen}  {what} on {t.resource}: {t.count:,} call(s){denied} "
                         f"({', '.join(t.calls)}); regions {', '.join(t.regions)}"
                         + (f"; e.g. {', '.join(t.samples)}" if t.samples else ""))
    return "\n".join(lines) + "\n"
