"""UsageGraph: who did what to which resource, as a graph.

Nodes are typed by a key prefix and a ``kind`` attribute: ``principal:<arn>``,
``call:<eventSource>:<eventName>`` (until calls are mapped to IAM actions,
then ``action:<prefix:Action>``), and ``resource:<arn or field=value>``.
Edges carry count, first and last seen, regions, denied count and sample
event IDs. Callers never touch networkx directly.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from typing import Any

import networkx as nx

from lpgen.fields import CREATED
from lpgen.model import DENIED
from lpgen.store import UsageRow

SCHEMA_VERSION = 1


class UsageGraph:
    """Aggregated usage as principal → call → resource."""

    def __init__(self) -> None:
        self._g = nx.MultiDiGraph(schema=SCHEMA_VERSION)

    @classmethod
    def from_rows(cls, rows: Iterable[UsageRow], *, mapper: Callable[[UsageRow], Any] | None = None) -> UsageGraph:
        """The graph of aggregates; with ``mapper`` (row → :class:`lpgen.mapping.Mapping`), by IAM action."""
        graph = cls()
        for row in rows:
            mapping = mapper(row) if mapper is not None else None
            if mapping is not None and mapping.permissions:
                graph.add_permissions(row, mapping)
            else:
                graph.add_call(row)
        return graph

    def add_call(self, row: UsageRow) -> None:
        principal = self._node("principal", row.principal)
        call = self._node("call", f"{row.source}:{row.name}")
        self._edge(principal, call, row)
        for resource in resource_names(row.fields):
            self._edge(call, self._node("resource", resource), row, via=row.principal)

    def add_permissions(self, row: UsageRow, mapping: Any) -> None:
        principal = self._node("principal", row.principal)
        created = created_names(row.fields)
        for permission in mapping.permissions:
            action = self._node("action", permission.action)
            self._g.nodes[action]["provenance"] = permission.provenance
            self._edge(principal, action, row)
            for resource in permission.resources:
                self._edge(action, self._node("resource", resource), row, via=row.principal)
            if not permission.side:  # what the call created hangs off the actions that created it
                for resource in created:
                    node = self._node("resource", resource)
                    self._edge(action, node, row, via=row.principal)
                    self._g.edges[action, node, row.principal]["created"] = True

    def _node(self, kind: str, name: str) -> str:
        key = f"{kind}:{name}"
        if key not in self._g:
            self._g.add_node(key, kind=kind, name=name)
        return key

    def _edge(self, u: str, v: str, row: UsageRow, via: str | None = None) -> None:
        key = via or "uses"
        if not self._g.has_edge(u, v, key):
            self._g.add_edge(u, v, key, count=0, denied=0, first_seen=row.first_seen, last_seen=row.last_seen,
                             regions=set(), samples=set(), calls=set())
        data = self._g.edges[u, v, key]
        data["count"] += row.count
        if row.error_class == DENIED:
            data["denied"] += row.count
        data["first_seen"] = min(data["first_seen"], row.first_seen)
        data["last_seen"] = max(data["last_seen"], row.last_seen)
        data["regions"].add(row.region)
        data["calls"].add(f"{row.source}:{row.name}")
        data["samples"] = set(sorted(data["samples"].union(row.samples))[:3])

    # -- queries -------------------------------------------------------------

    def nodes(self, kind: str | None = None) -> list[str]:
        return sorted(n for n, d in self._g.nodes(data=True) if kind is None or d["kind"] == kind)

    def principals(self) -> list[str]:
        return [self._g.nodes[n]["name"] for n in self.nodes("principal")]

    def calls_of(self, principal: str) -> dict[str, dict[str, Any]]:
        """The calls a principal made: ``source:name`` → edge totals."""
        node = f"principal:{principal}"
        if node not in self._g:
            return {}
        return {self._g.nodes[v]["name"]: dict(d) for _, v, d in sorted(self._g.out_edges(node, data=True))}

    def resources_of(self, principal: str) -> list[str]:
        """Resources a principal's calls named."""
        return sorted({self._g.nodes[v]["name"] for _, v, k in self._g.edges(keys=True)
                       if k == principal and self._g.nodes[v]["kind"] == "resource"})

    def touching(self, matches: Callable[[str], bool]) -> list[dict[str, Any]]:
        """Every (principal, action or call, resource) edge whose resource ``matches``, with its totals."""
        out = []
        for node in self.nodes("resource"):
            name = self._g.nodes[node]["name"]
            if not matches(name):
                continue
            for u, _, principal, data in self._g.in_edges(node, keys=True, data=True):
                out.append({"principal": principal, "via": self._g.nodes[u]["name"], "resource": name,
                            "created": False, **_plain(data)})
        return sorted(out, key=lambda t: (t["resource"], t["first_seen"], t["principal"], t["via"]))

    def __len__(self) -> int:
        return self._g.number_of_nodes()

    # -- exports -------------------------------------------------------------

    def to_json(self) -> str:
        """Node-link JSON with sorted nodes and edges, versioned."""
        nodes = [{"id": n, **self._g.nodes[n]} for n in sorted(self._g)]
        edges = sorted(
            ({"source": u, "target": v, "key": k, **_plain(d)} for u, v, k, d in self._g.edges(keys=True, data=True)),
            key=lambda e: (e["source"], e["target"], e["key"]))
        return json.dumps({"schema": SCHEMA_VERSION, "directed": True, "nodes": nodes, "edges": edges},
                          indent=2, sort_keys=True) + "\n"

    def to_graphml(self) -> str:
        flat = nx.MultiDiGraph(schema=SCHEMA_VERSION)
        for n in sorted(self._g):
            flat.add_node(n, **self._g.nodes[n])
        for u, v, k, d in sorted(self._g.edges(keys=True, data=True), key=lambda e: e[:3]):
            flat.add_edge(u, v, k, **{a: ",".join(b) if isinstance(b, list) else b for a, b in _plain(d).items()})
        buffer = io.BytesIO()
        nx.write_graphml(flat, buffer)
        return buffer.getvalue().decode("utf-8")


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, set) else v for k, v in data.items()}


def resource_names(fields: tuple[tuple[str, str], ...]) -> list[str]:
    """Resources named by an aggregate's fields: its ARNs, else its identifier fields; and what it created."""
    asked = [(k, v) for k, v in fields if not k.startswith(CREATED)]
    arns = sorted({v for k, v in asked if k in ("arn", "arnPrefix") or (v.startswith("arn:") and k.lower().endswith("arn"))})
    named = arns or sorted(f"{k}={v}" for k, v in asked if v != "present")
    return named + created_names(fields)


def created_names(fields: tuple[tuple[str, str], ...]) -> list[str]:
    """Identifiers the call created (``i-0abc...``, an ARN, a queue URL), as resource names."""
    return sorted({v for k, v in fields if k.startswith(CREATED)})
