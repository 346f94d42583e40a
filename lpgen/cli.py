"""The command line: options → a library call → a rendered string → an exit code."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lpgen import __version__
from lpgen.attached import AttachedError, AuthorizationDetails, live_attached, live_principals
from lpgen.filters import FilterError, Window, parse_instant, principal_matcher
from lpgen.findings import SEVERITIES, at_least
from lpgen.mine import MineOptions, MineReport, mine
from lpgen.model import Problem
from lpgen.normalize import BadRecord
from lpgen.pushdown import Partitions, QuerySpec, build_sql
from lpgen.sources.base import AggregateSource
from lpgen.sources.formats import DEFAULT_MAX_BYTES, decode
from lpgen.sources.local import open_source
from lpgen.store import DEFAULT_PATH, StoreError, UsageStore
from lpgen.summary import render_mine_report, render_summary, summarize

if TYPE_CHECKING:  # the commands import what they need, so that `lpgen mine` starts fast
    from lpgen.integrity import IntegrityReport

#: Warnings printed one per line before the rest are only counted.
SHOWN_WARNINGS = 50


def store_option(f):
    return click.option(
        "--store", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_PATH, show_default=True,
        envvar="LPGEN_STORE", help="Usage store (SQLite file); env LPGEN_STORE.")(f)


def window_options(f):
    f = click.option("--until", metavar="WHEN", help="Latest event time: ISO date/time or age (7d); a bare date counts whole.")(f)
    f = click.option("--since", metavar="WHEN", help="Earliest event time: ISO date/time or age (90d, 12h, 2w).")(f)
    return f


def principal_option(f):
    return click.option(
        "--principal", "principals", multiple=True, metavar="ARN|NAME|GLOB",
        help="Only these principals (repeatable): an ARN, a role or user name, or a glob of either.")(f)


_PARTITIONS = Partitions()


def query_options(f):
    """How a push-down query reads its table: partition columns of an Athena CloudTrail table
    (lpgen.pushdown.Partitions; '' for none), and whether duplicates are dropped."""
    f = click.option("--no-dedupe", is_flag=True,
                     help="athena:/lake: do not drop events delivered twice (faster on a table of one trail).")(f)
    f = click.option("--partition-account", default=_PARTITIONS.account, show_default=True, metavar="COLUMN",
                     help="Athena: the account partition column, used with --account ('' if none).")(f)
    f = click.option("--partition-region", default=_PARTITIONS.region, show_default=True, metavar="COLUMN",
                     help="Athena: the region partition column, used with --region ('' if none).")(f)
    f = click.option("--partition-date-format", default=_PARTITIONS.date_format, show_default=True, metavar="FORMAT",
                     help="Athena: how the date partition spells a day (strftime).")(f)
    f = click.option("--partition-date", default=_PARTITIONS.date, show_default=True, metavar="COLUMN",
                     help="Athena: the date partition column, used with --since/--until ('' if none).")(f)
    return f


def make_partitions(date: str, date_format: str, region: str, account: str) -> Partitions:
    return Partitions(date=date, date_format=date_format, region=region, account=account)


def format_option(*choices: str):
    def decorate(f):
        return click.option("--format", "fmt", type=click.Choice(choices), default=choices[0], show_default=True,
                            help="Output format.")(f)
    return decorate


def bucket_options(f):
    """Where AWS-side sources are read: accounts and regions of a trail bucket, profile, endpoint."""
    f = click.option("--endpoint-url", help="AWS endpoint for the AWS sources (tests, private endpoints).")(f)
    f = click.option("--profile", help="AWS profile for the AWS sources.")(f)
    f = click.option("--region", "regions", multiple=True, metavar="REGION",
                     help="s3://, athena: and lake: sources: only these regions (us-east-1 is always read: global "
                          "services log there); cloudtrail:lookup and logs: sources: the first is the API's region.")(f)
    f = click.option("--account", "accounts", multiple=True, metavar="ID",
                     help="s3://, athena: and lake: sources: only these accounts (repeatable).")(f)
    return f


def open_sources(specs, window: Window, accounts, regions, profile, endpoint_url, cache: Path | None = None,
                 query: dict | None = None):
    """The sources named on the command line, AWS-side ones with the window, accounts and regions
    (``cache`` for s3:// sources, ``query`` the options of athena: and lake: sources)."""
    options = {"window": window, "accounts": tuple(accounts), "regions": tuple(regions),
               "client_options": {"profile": profile, "endpoint_url": endpoint_url}, "cache": cache, "query": query}
    return [open_source(s, **options) for s in specs]


def log_sources(sources: list, command: str) -> list:
    """``sources``, refusing athena: and lake: ones: they return aggregates, not the records ``command`` reads."""
    for source in sources:
        if isinstance(source, AggregateSource):
            raise click.ClickException(f"{source.label}: athena: and lake: sources return aggregates, not records "
                                       f"or log files: `lpgen {command}` cannot read them")
    return sources


def run_verify(sources, window: Window, profile, endpoint_url) -> IntegrityReport:
    """Integrity of ``sources``; digest signatures are checked against CloudTrail's keys for s3:// ones."""
    from lpgen.aws import client_factory
    from lpgen.integrity import verify
    from lpgen.live import public_key_lookup
    keys = public_key_lookup(lambda region: client_factory(profile=profile, region=region, endpoint_url=endpoint_url))
    return verify(sources, window=window, public_keys=keys)


def library_errors(f):
    """Turn the library's expected errors into clean messages (no tracebacks)."""
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except (StoreError, FilterError, AttachedError) as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


def make_window(since: str | None, until: str | None) -> Window:
    return Window(since=parse_instant(since) if since else None,
                  until=parse_instant(until, end=True) if until else None)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lpgen")
def main() -> None:
    """Least-privilege IAM policies from what principals really did, per CloudTrail."""


@main.command("mine")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@store_option
@window_options
@principal_option
@click.option("--workers", type=click.IntRange(min=1), default=min(4, os.cpu_count() or 1), show_default=True,
              help="Worker processes.")
@bucket_options
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="s3:// sources: keep downloaded objects under DIR (by key and ETag); later runs read them there.")
@click.option("--workgroup", help="athena: sources: the Athena workgroup.")
@click.option("--output-location", metavar="S3_URL",
              help="athena: sources: where Athena writes results (unless the workgroup sets it).")
@query_options
@click.option("--strict", is_flag=True, help="Exit non-zero when any input or record had a problem.")
@click.option("--verify", "check_integrity", is_flag=True,
              help="First check the logs against their digest files (as `lpgen verify`); exit 1 if that fails.")
@click.option("--max-inflate", type=click.IntRange(min=1), default=DEFAULT_MAX_BYTES, show_default=True,
              metavar="BYTES", help="Refuse inputs that decompress beyond this size.")
@format_option("text", "json")
@library_errors
def mine_command(sources, store, since, until, principals, workers, accounts, regions, profile, endpoint_url, cache,
                 workgroup, output_location, no_dedupe, partition_date, partition_date_format, partition_region,
                 partition_account, strict, check_integrity, max_inflate, fmt):
    """Read CloudTrail logs into the usage store.

    SOURCE is a file, a directory tree (such as a copy of a trail bucket's
    AWSLogs/ folder), - for standard input, s3://bucket[/prefix] (a trail
    bucket: only the days, accounts and regions asked for are listed),
    cloudtrail:lookup[:ATTRIBUTE=VALUE] (LookupEvents),
    logs:LOG_GROUP[:STREAM_PREFIX] (a trail's CloudWatch Logs group), or
    athena:DATABASE.TABLE or lake:EVENT_DATA_STORE (the aggregation runs as one
    query there; see `lpgen sql`). Delivered log files (.json or
    .json.gz), JSON Lines, `aws cloudtrail lookup-events` output, CloudTrail
    Lake and Athena result exports are recognised by their content; digest
    files are skipped. Inputs already mined are not read again.
    """
    from lpgen.integrity import render_integrity
    options = MineOptions(window=make_window(since, until), principals=tuple(principals), max_inflate=max_inflate)
    show_progress = sys.stderr.isatty() and fmt == "text"
    if cache is not None:
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.ClickException(f"cannot use {cache} as a cache: {exc.strerror}") from None
    query = {"workgroup": workgroup, "output_location": output_location, "dedupe": not no_dedupe,
             "partitions": make_partitions(partition_date, partition_date_format, partition_region, partition_account)}
    opened = open_sources(sources, options.window, accounts, regions, profile, endpoint_url, cache, query)
    integrity = None
    if check_integrity:  # query sources have no log files to check
        integrity = run_verify([s for s in opened if not isinstance(s, AggregateSource)], options.window, profile,
                               endpoint_url)
        click.echo(render_integrity(integrity), err=True, nl=False)
    with _opened(store) as usage_store:
        report = mine(opened, usage_store, options, workers=workers,
                      progress=_ProgressLine() if show_progress else None)
    if show_progress:
        click.echo("\r\033[K", nl=False, err=True)
    _warn(report.problems)
    click.echo(render_mine_report(report, fmt), nl=False)
    if report.found_nothing:
        raise click.ClickException("no readable CloudTrail records in the given sources")
    if report.unread:
        raise click.ClickException(f"{report.unread:,} inputs could not be read (warnings above name them); what "
                                   "was read is kept, and the next run reads them")
    if integrity is not None and not integrity.ok:
        raise click.ClickException("the logs failed the integrity check (above); what they hold was mined")
    if strict and report.problems:
        sys.exit(1)


@main.command("verify")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@window_options
@bucket_options
@format_option("text", "json")
@library_errors
def verify_command(sources, since, until, accounts, regions, profile, endpoint_url, fmt):
    """Check CloudTrail log files against their digest files: missing, modified, unlisted, the chain, signatures.

    SOURCE is a directory tree holding AWSLogs/ (log files and CloudTrail-Digest/) or a trail
    bucket s3://bucket[/prefix]; for buckets the digest signatures are checked against
    CloudTrail's public keys (ListPublicKeys). Exit status 1 when anything fails.
    """
    from lpgen.integrity import render_integrity
    window = make_window(since, until)
    report = run_verify(log_sources(open_sources(sources, window, accounts, regions, profile, endpoint_url), "verify"),
                        window, profile, endpoint_url)
    click.echo(render_integrity(report, fmt), nl=False)
    if not report.ok:
        sys.exit(1)


class _ProgressLine:
    """One self-rewriting line on a terminal: inputs, events, events/s."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, report: MineReport) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        click.echo(f"\r\033[K{report.mined:,} inputs, {report.records:,} events, "
                   f"{report.records / elapsed:,.0f} events/s", nl=False, err=True)


def _evidence(store: Path, sources: tuple[str, ...]) -> tuple[list, list, int]:
    """Mine ``sources`` (if any) into ``store``; its rows (service rows included), coverage and problem count."""
    with _opened(store, create=bool(sources)) as usage_store:
        if sources:
            _warn(mine([open_source(s) for s in sources], usage_store).problems)
        return list(usage_store.usage(include_service=True)), usage_store.coverage(), usage_store.totals()["problems"]


def judgement_options(f):
    """When a grant may be called unused: shared by `diff` and `report`."""
    f = click.option("--data-events", metavar="PREFIXES",
                     help="IAM prefixes whose data events the trail logged (s3,lambda,...); default: seen in the "
                          "store.")(f)
    f = click.option("--min-days", type=click.IntRange(min=0), default=30, show_default=True,
                     help="Call nothing unused when the window covers fewer days.")(f)
    return f


def _prefixes(text: str | None) -> frozenset[str] | None:
    return frozenset(p.strip() for p in text.split(",") if p.strip()) if text else None


@contextlib.contextmanager
def _opened(path: Path, *, create: bool = True) -> Iterator[UsageStore]:
    """The usage store at ``path``, with a warning when its aggregates were keyed under other field rules."""
    with UsageStore(path, create=create) as store:
        if store.other_field_rules():
            click.echo(f"warning: {path} was mined by an lpgen with other request-field rules: its aggregates may "
                       "lack fields that this lpgen maps to permissions (where a Lambda function's code, layers and "
                       "destinations are, ...), so generated policies may lack them too; mine the trail again into a "
                       "new store (--store NEW_PATH) to apply this lpgen's rules", err=True)
        yield store


def _warn(problems: list[Problem]) -> None:
    for p in problems[:SHOWN_WARNINGS]:
        click.echo(f"warning: {p}", err=True)
    if len(problems) > SHOWN_WARNINGS:
        click.echo(f"warning: ... and {len(problems) - SHOWN_WARNINGS:,} more (`lpgen summary` lists them)", err=True)


@main.command("sql")
@click.option("--engine", type=click.Choice(["athena", "lake"]), required=True, help="Where the query runs.")
@click.option("--table", required=True, metavar="DATABASE.TABLE|EVENT_DATA_STORE",
              help="The Athena CloudTrail table, or the CloudTrail Lake event data store (id or ARN).")
@window_options
@click.option("--account", "accounts", multiple=True, metavar="ID", help="Only these accounts (repeatable).")
@click.option("--region", "regions", multiple=True, metavar="REGION",
              help="Only these regions (repeatable; us-east-1 is always included: global services log there).")
@principal_option
@query_options
@library_errors
def sql_command(engine, table, since, until, accounts, regions, principals, no_dedupe, partition_date,
                partition_date_format, partition_region, partition_account):
    """Print the aggregation query `lpgen mine athena:...|lake:...` runs, without running it."""
    spec = QuerySpec(engine=engine, table=table, windows=(make_window(since, until),), accounts=tuple(accounts),
                     regions=tuple(regions), principals=tuple(principals),
                     partitions=make_partitions(partition_date, partition_date_format, partition_region,
                                                partition_account), dedupe=not no_dedupe)
    click.echo(build_sql(spec), nl=False)


@main.command("summary")
@store_option
@format_option("text", "json")
@library_errors
def summary_command(store, fmt):
    """Print what the usage store holds: principals, coverage, problems."""
    with _opened(store, create=False) as usage_store:
        click.echo(render_summary(summarize(usage_store), fmt), nl=False)


@main.command("graph")
@store_option
@principal_option
@format_option("json", "graphml")
@click.option("--calls", is_flag=True, help="Nodes for CloudTrail calls instead of the IAM actions they map to.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not to stdout.")
@library_errors
def graph_command(store, principals, fmt, calls, output):
    """Export the usage graph (principal → IAM action → resource)."""
    from lpgen.graph import UsageGraph
    from lpgen.mapping import iam_paths, row_mapper
    with _opened(store, create=False) as usage_store:
        rows = list(usage_store.usage())
    mapper = None if calls else row_mapper(iam_paths(rows))  # every principal's rows show IAM entities' paths
    if principals:
        wanted = principal_matcher(tuple(principals))
        rows = [r for r in rows if wanted(r.principal)]
    graph = UsageGraph.from_rows(rows, mapper=mapper)
    text = graph.to_json() if fmt == "json" else graph.to_graphml()
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@main.command("explain")
@click.argument("event_source")
@click.argument("event_name")
@click.option("--param", "params", multiple=True, metavar="PATH=VALUE",
              help="A request field, as the store keeps it (e.g. bucketName=b, key=k, versionId=present).")
@click.option("--region", default="us-east-1", show_default=True, help="Region for ARNs built from names.")
@click.option("--account", default="123456789012", show_default=True, help="Account for ARNs built from names.")
@format_option("text", "json")
def explain_command(event_source, event_name, params, region, account, fmt):
    """Show which IAM actions a CloudTrail call needs, on what, and why."""
    from lpgen.mapping import explain, render_explanation
    fields = []
    for param in params:
        path, sep, value = param.partition("=")
        if not sep:
            raise click.BadParameter(f"{param!r} is not PATH=VALUE", param_hint="--param")
        fields.append((path, value))
    result = explain(event_source, event_name, tuple(sorted(fields)), region=region, account=account)
    click.echo(render_explanation(result, fmt), nl=False)


@main.command("map")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@format_option("jsonl")
@click.option("--max-inflate", type=click.IntRange(min=1), default=DEFAULT_MAX_BYTES, show_default=True,
              metavar="BYTES", help="Refuse inputs that decompress beyond this size.")
def map_command(sources, fmt, max_inflate):
    """Print, per event, the IAM actions it needed (one JSON object per line)."""
    from lpgen.mapping import map_record, mapping_dict
    problems: list[Problem] = []
    for spec in sources:
        (source,) = log_sources([open_source(spec)], "map")
        listing = source.list()
        problems.extend(listing.problems)
        for blob in listing.blobs:
            try:
                decoded = decode(source.read(blob), blob.key, max_bytes=max_inflate)
            except OSError as exc:
                problems.append(Problem(path=blob.key, reason=f"cannot read: {exc.strerror or exc}"))
                continue
            problems.extend(decoded.problems)
            for i, record in enumerate(decoded.records):
                try:
                    event, mapped = map_record(record)
                except BadRecord as exc:
                    problems.append(Problem(path=blob.key, record=decoded.position(i), reason=str(exc)))
                    continue
                click.echo(json.dumps({"eventID": event.event_id, "principal": event.principal,
                                       **mapping_dict(mapped)}, sort_keys=True))
    _warn(problems)


@main.command("generate")
@click.argument("sources", nargs=-1, metavar="[SOURCE...]")
@store_option
@window_options
@principal_option
@format_option("json", "sam", "terraform", "cloudformation")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not to stdout.")
@click.option("--include-denied", is_flag=True, help="Also grant what was wanted and denied (marked in the Sid).")
@click.option("--conditions", is_flag=True,
              help="Add iam:PassedToService, kms:ViaService and aws:RequestedRegion conditions.")
@click.option("--compact", is_flag=True, help="Action wildcards, only where every action under one was observed.")
@click.option("--generalize", type=click.Choice(["account", "region", "account,region", "region,account"]),
              help="Replace accounts and/or regions in ARNs by *.")
@click.option("--prefix-threshold", type=click.IntRange(min=1), default=10, show_default=True,
              help="Distinct object keys or ids before they collapse to a common prefix.")
@click.option("--no-baseline", is_flag=True, help="Leave out what the Lambda service needs on a role's behalf.")
@click.option("--explain", "show_evidence", is_flag=True, help="Print the evidence of every action on stderr.")
@click.option("--workers", type=click.IntRange(min=1), default=min(4, os.cpu_count() or 1), show_default=True,
              help="Worker processes when mining SOURCEs first.")
@library_errors
def generate_command(sources, store, since, until, principals, fmt, output, include_denied, conditions, compact,
                     generalize, prefix_threshold, no_baseline, show_evidence, workers):
    """Print the minimal policy that allows exactly what each principal did.

    With SOURCEs, mines them into the store first. With one principal, prints
    its policy document; otherwise a JSON object keyed by principal ARN.
    """
    from lpgen.generate import INLINE_POLICIES_LIMIT, MANAGED_POLICY_LIMIT, GenerateOptions, generate, size
    from lpgen.policy_formats import render as render_policies
    from lpgen.policy_formats import render_evidence
    window = make_window(since, until)
    with _opened(store, create=bool(sources)) as usage_store:
        if sources:
            report = mine([open_source(s) for s in sources], usage_store, MineOptions(window=window), workers=workers)
            _warn(report.problems)
        wanted = principal_matcher(tuple(principals))
        rows = [r for r in usage_store.usage(include_service=True)
                if (wanted is None or r.principal.startswith("service:") or wanted(r.principal))
                and (window.since is None or r.last_seen >= window.since)
                and (window.until is None or r.first_seen <= window.until)]
    options = GenerateOptions(include_denied=include_denied, conditions=conditions, compact=compact,
                              generalize=frozenset((generalize or "").split(",")) - {""},
                              prefix_threshold=prefix_threshold, baseline=not no_baseline)
    policies = generate(rows, options)
    if wanted is not None:
        policies = {p: g for p, g in policies.items() if wanted(p)}
    if not policies:
        raise click.ClickException("no principal with usage in the store matches")
    text = render_policies(policies, fmt)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    if show_evidence:
        click.echo(render_evidence(policies), err=True, nl=False)
    for principal, policy in policies.items():
        parts = policy.split()
        if len(parts) > 1:
            click.echo(f"note: the policy of {principal} exceeds {MANAGED_POLICY_LIMIT:,} characters: "
                       f"split into {len(parts)} managed policies", err=True)
        if size(policy.document()) > INLINE_POLICIES_LIMIT:
            click.echo(f"note: the policy of {principal} exceeds the {INLINE_POLICIES_LIMIT:,} characters a role's "
                       "inline policies may total: attach it as managed policies", err=True)


def attached_options(f):
    f = click.option("--endpoint-url", help="AWS endpoint (for tests and private endpoints).")(f)
    f = click.option("--region", help="AWS region for --live.")(f)
    f = click.option("--profile", help="AWS profile for --live.")(f)
    f = click.option("--live", is_flag=True, help="Read the attached policies from IAM (read-only calls).")(f)
    f = click.option("--attached", "attached_file", type=click.Path(dir_okay=False, path_type=Path),
                     help="An `aws iam get-account-authorization-details` output.")(f)
    return f


def _load_attached(principal, attached_file, live, profile, region, endpoint_url):
    from botocore.exceptions import BotoCoreError, ClientError

    from lpgen.aws import client_factory
    if bool(attached_file) == bool(live):
        raise click.UsageError("give exactly one of --attached FILE or --live")
    if live:
        try:
            return live_attached(principal, client_factory(profile=profile, region=region, endpoint_url=endpoint_url))
        except (BotoCoreError, ClientError) as exc:
            raise click.ClickException(f"reading IAM: {exc}") from None
    return AuthorizationDetails.load(attached_file).attached(principal)


@main.command("attached")
@click.option("--principal", required=True, metavar="ARN", help="The role or user ARN.")
@attached_options
@format_option("text", "json")
@library_errors
def attached_command(principal, attached_file, live, profile, region, endpoint_url, fmt):
    """Print what a principal is granted, expanded to concrete actions."""
    from lpgen.expand import expand
    expanded = expand(_load_attached(principal, attached_file, live, profile, region, endpoint_url))
    if fmt == "json":
        click.echo(json.dumps({"principal": principal, "notes": list(expanded.notes),
                               "unknown_actions": list(expanded.unknown_actions),
                               "grants": {a: expanded.patterns(a) for a in expanded.actions()}},
                              indent=2, sort_keys=True))
        return
    click.echo(f"{principal}: {len(expanded.grants):,} actions granted")
    for note in expanded.notes:
        click.echo(f"note: {note}")
    for action in expanded.actions():
        click.echo(f"  {action} on {', '.join(expanded.patterns(action)) or '*'}")


@main.command("diff")
@click.argument("sources", nargs=-1, metavar="[SOURCE...]")
@click.option("--principal", required=True, metavar="ARN", help="The role or user ARN.")
@store_option
@attached_options
@judgement_options
@click.option("--access-advisor-days", type=click.IntRange(min=1), default=90, show_default=True,
              help="With --live: a service Access Advisor saw used within these days is not called unused.")
@click.option("--fail-on", type=click.Choice(["unused", "over-broad", "missing"]),
              help="Exit 1 when the diff has findings of this category (for CI).")
@format_option("text", "json", "md")
@library_errors
def diff_command(sources, principal, store, attached_file, live, profile, region, endpoint_url, min_days,
                 data_events, access_advisor_days, fail_on, fmt):
    """Compare what a principal is granted with what it used: used, unused, unobservable, over-broad, missing."""
    from botocore.exceptions import BotoCoreError, ClientError

    from lpgen.aws import client_factory
    from lpgen.diff import DiffOptions, diff, render_diff
    from lpgen.expand import expand
    from lpgen.live import logged_data_prefixes, recently_accessed_services
    attached = _load_attached(principal, attached_file, live, profile, region, endpoint_url)
    rows, coverage, _ = _evidence(store, sources)
    logged = _prefixes(data_events)
    recent = None
    if live:
        factory = client_factory(profile=profile, region=region, endpoint_url=endpoint_url)
        try:
            if logged is None:
                logged = logged_data_prefixes(factory)
            recent = recently_accessed_services(principal, factory, days=access_advisor_days)
        except (BotoCoreError, ClientError, TimeoutError) as exc:
            raise click.ClickException(f"reading the account: {exc}") from None
    options = DiffOptions(min_days=min_days, data_events=logged, recently_accessed=recent)
    result = diff(principal, rows, expand(attached), coverage, options, attached_documents=attached.documents())
    click.echo(render_diff(result, fmt), nl=False)
    if fail_on and result.counts()[fail_on]:
        sys.exit(1)


@main.command("report")
@click.argument("sources", nargs=-1, metavar="[SOURCE...]")
@store_option
@attached_options
@principal_option
@judgement_options
@click.option("--format", "fmt", type=click.Choice(["text", "html", "md", "json", "sarif"]), default="text",
              show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE, not stdout.")
@click.option("--fail-on", type=click.Choice(list(SEVERITIES)), metavar="SEVERITY",
              help="Exit 1 when a finding is this severe or more (info, low, medium, high, critical).")
@click.option("--date", "report_date", metavar="YYYY-MM-DD", help="The report's date (default: today), for "
              "reproducible output.")
@library_errors
def report_command(sources, store, attached_file, live, profile, region, endpoint_url, principals, min_days,
                   data_events, fmt, output, fail_on, report_date):
    """Report every principal of the account: the diff's figures and findings, riskiest first."""
    from botocore.exceptions import BotoCoreError, ClientError

    from lpgen.aws import client_factory, error_message
    from lpgen.diff import DiffOptions
    from lpgen.live import logged_data_prefixes
    from lpgen.report import build_report
    from lpgen.report_render import render_report
    if bool(attached_file) == bool(live):
        raise click.UsageError("give exactly one of --attached FILE or --live")
    if report_date:
        try:
            date.fromisoformat(report_date)
        except ValueError:
            raise click.BadParameter(f"{report_date!r} is not a YYYY-MM-DD date", param_hint="--date") from None
    rows, coverage, problems = _evidence(store, sources)
    logged = _prefixes(data_events)
    try:
        if live:
            factory = client_factory(profile=profile, region=region, endpoint_url=endpoint_url)
            known = live_principals(factory)
            if logged is None:
                logged = logged_data_prefixes(factory)

            def attached(principal):
                return live_attached(principal, factory) if principal in known else None
        else:
            details = AuthorizationDetails.load(attached_file)
            known = details.principals()

            def attached(principal):
                return details.attached(principal) if principal in known else None

        report = build_report(rows, coverage, attached, known, options=DiffOptions(min_days=min_days,
                              data_events=logged), date=report_date, problems=problems,
                              only=principal_matcher(principals))
    except (BotoCoreError, ClientError) as exc:
        raise click.ClickException(f"reading IAM: {error_message(exc)}") from None
    text = render_report(report, fmt, source=str(attached_file or "lpgen://iam"))
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output} ({len(report.principals)} principals, {len(report.findings)} findings)", err=True)
    else:
        click.echo(text, nl=False)
    if fail_on and any(at_least(f.severity, fail_on) for f in report.findings):
        sys.exit(1)


@main.command("who")
@click.argument("resource")
@click.argument("sources", nargs=-1, metavar="[SOURCE...]")
@store_option
@format_option("text", "json")
@library_errors
def who_command(resource, sources, store, fmt):
    """Which principals touched RESOURCE (an ARN, an instance id, a bucket, function, table or queue name), when."""
    from lpgen.who import render_who, who
    rows, _, _ = _evidence(store, sources)
    click.echo(render_who(resource, who(rows, resource), fmt), nl=False)


# -- lpgen sam ------------------------------------------------------------------------------------


def _pairs(values: tuple[str, ...], option: str) -> tuple[tuple[str, str], ...]:
    out = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint=option)
        out.append((key, rest))
    return tuple(out)


@main.command("sam")
@click.argument("template", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("sources", nargs=-1, metavar="[SOURCE...]")
@store_option
@click.option("--stack", metavar="NAME", help="The deployed stack: matches functions to roles (--live: "
              "ListStackResources; offline: role names <stack>-<LogicalId>Role-<suffix>).")
@click.option("--map", "role_map", multiple=True, metavar="LOGICALID=ROLEARN",
              help="The role a function runs as (repeatable); wins over every other match.")
@click.option("--parameter", "parameters", multiple=True, metavar="KEY=VALUE",
              help="A template parameter's value (repeatable); otherwise its Default.")
@click.option("--region", help="AWS::Region (default: where the matched roles were used).")
@click.option("--account-id", help="AWS::AccountId (default: the matched roles' account).")
@click.option("--partition", default="aws", show_default=True, help="AWS::Partition.")
@click.option("--live", is_flag=True, help="Match functions to roles with the stack's resources (read-only calls).")
@click.option("--profile", help="AWS profile for --live.")
@click.option("--endpoint-url", help="AWS endpoint for --live (tests, private endpoints).")
@click.option("--min-days", type=click.IntRange(min=0), default=30, show_default=True,
              help="Call nothing unused when the window covers fewer days.")
@click.option("--patch", "patch_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the unified diff to the template's Policies: here ('-': standard output).")
@click.option("--fail-on", type=click.Choice(["info", "low", "medium", "high", "critical"]),
              help="Exit 1 when a finding has this severity or more (for CI).")
@format_option("text", "json", "md", "sarif")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not to stdout.")
@library_errors
def sam_command(template, sources, store, stack, role_map, parameters, region, account_id, partition, live, profile,
                endpoint_url, min_days, patch_file, fail_on, fmt, output):
    """Review a SAM or CloudFormation template: what each function is granted, and with
    CloudTrail (SOURCEs or --store), what it used and the tightest Policies: as a patch."""
    from botocore.exceptions import BotoCoreError, ClientError

    from lpgen.aws import client_factory
    from lpgen.diff import DiffOptions
    from lpgen.sam_report import PatchError, fails, render_patch
    from lpgen.sam_report import render as render_review
    from lpgen.sam_review import ReviewOptions, match_live, review
    from lpgen.template import Pseudo, TemplateError, load_template

    options = ReviewOptions(parameters=_pairs(parameters, "--parameter"), role_map=_pairs(role_map, "--map"),
                            pseudo=Pseudo(region=region, account=account_id, partition=partition, stack=stack),
                            diff=DiffOptions(min_days=min_days))
    if live and not stack:
        raise click.UsageError("--live needs --stack NAME")
    use_store = bool(sources) or click.get_current_context().get_parameter_source("store").name != "DEFAULT"
    if patch_file and not use_store:
        raise click.UsageError("--patch needs CloudTrail: give SOURCEs to mine or --store")
    try:
        loaded = load_template(template)
        rows = coverage = matches = None
        if use_store:
            with _opened(store, create=bool(sources)) as usage_store:
                if sources:
                    _warn(mine([open_source(s) for s in sources], usage_store).problems)
                rows, coverage = list(usage_store.usage(include_service=True)), usage_store.coverage()
        if live:
            from lpgen.sam import analyse

            factory = client_factory(profile=profile, region=region, endpoint_url=endpoint_url)
            try:
                matches = dict(match_live(analyse(loaded, dict(options.parameters), options.pseudo), stack, factory))
            except (BotoCoreError, ClientError) as exc:
                raise click.ClickException(f"reading stack {stack}: {exc}") from None
            matches.update({k: (v, "--map") for k, v in options.role_map})
            rows = rows if rows is not None else []
        result = review(loaded, options, rows, coverage, matches)
        text = render_review(result, fmt)
        if patch_file:
            diff_text = render_patch(result)
            if str(patch_file) == "-":
                click.echo(diff_text, nl=False)
            else:
                patch_file.write_text(diff_text, encoding="utf-8")
    except (TemplateError, PatchError) as exc:
        raise click.ClickException(str(exc)) from None
    if output:
        output.write_text(text, encoding="utf-8")
    elif str(patch_file) != "-":
        click.echo(text, nl=False)
    if fails(result, fail_on):
        sys.exit(1)
