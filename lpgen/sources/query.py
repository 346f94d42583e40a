"""Athena (``athena:DATABASE.TABLE``) and CloudTrail Lake (``lake:EVENT_DATA_STORE``): the aggregation runs there.

Not a :class:`~lpgen.sources.base.BlobSource`: no records come back, only the aggregates
of :func:`lpgen.pushdown.build_sql`, which go straight into the store. The ledger knows
each query by the table, the filters other than time (``--account``, ``--region``,
``--principal``: the scope) and the time range it covered (the key), so a re-run asks only
for the time no earlier query of that table and scope covered: nothing is counted twice,
and a periodic run queries only what is new. A range ends an hour before now at the
latest (:data:`SETTLE`), so events CloudTrail delivers late are not missed by the next run.
A failed query leaves no ledger entry: the next run tries again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from lpgen.aws import error_message
from lpgen.filters import FilterError, Window
from lpgen.model import Problem
from lpgen.sources.base import AggregateSource
from lpgen.pushdown import Partitions, QuerySpec, aggregate, build_sql, table_name
from lpgen.store import InputRecord, UsageStore

#: How long before now a range ends: CloudTrail delivers events within about 15 minutes.
SETTLE = timedelta(hours=1)
#: Polling a running query: first wait, growth, longest wait (seconds), and when to give up.
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.5, 1.5, 10.0
DEFAULT_TIMEOUT = 3600.0
PAGE_SIZE = 1000
_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class QueryFailed(Exception):
    """A query that failed, was cancelled, timed out, or could not be started or read; the message says which."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryResult:
    rows: list[dict[str, str | None]]
    scanned_bytes: int
    query_id: str


def _poll(describe: Callable[[], tuple[str, dict]], done: str, failed: tuple[str, ...], what: str,
          sleep: Callable[[float], None], timeout: float) -> dict:
    """Call ``describe`` with growing waits until the state is ``done``; raise on a failed state."""
    wait, waited = POLL_FIRST, 0.0
    while True:
        state, details = describe()
        if state == done:
            return details
        if state in failed:
            reason = details.get("reason") or "no reason given"
            raise QueryFailed(f"{what} {state.lower().replace('_', ' ')}: {reason}")
        if waited >= timeout:
            raise QueryFailed(f"{what} still {state.lower()} after {timeout:.0f} s: lpgen stopped waiting "
                              "(the query may still finish in the service)")
        sleep(wait)
        waited += wait
        wait = min(wait * POLL_GROWTH, POLL_MAX)


def run_athena(client: Any, sql: str, *, database: str, workgroup: str | None = None,
               output_location: str | None = None, sleep: Callable[[float], None] = time.sleep,
               timeout: float = DEFAULT_TIMEOUT) -> QueryResult:
    """StartQueryExecution, GetQueryExecution until it ends, then every page of GetQueryResults."""
    request: dict[str, Any] = {"QueryString": sql, "QueryExecutionContext": {"Database": database}}
    if workgroup:
        request["WorkGroup"] = workgroup
    if output_location:
        request["ResultConfiguration"] = {"OutputLocation": output_location}
    query_id = client.start_query_execution(**request)["QueryExecutionId"]

    def describe() -> tuple[str, dict]:
        execution = client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
        status = execution.get("Status", {})
        return status.get("State", "UNKNOWN"), {"reason": status.get("StateChangeReason"),
                                                "scanned": execution.get("Statistics", {}).get("DataScannedInBytes")}

    details = _poll(describe, "SUCCEEDED", ("FAILED", "CANCELLED"), f"Athena query {query_id}", sleep, timeout)
    rows: list[dict[str, str | None]] = []
    columns: list[str] | None = None
    request = {"QueryExecutionId": query_id, "MaxResults": PAGE_SIZE}
    while True:
        page = client.get_query_results(**request)
        result = page.get("ResultSet", {})
        if columns is None:
            columns = [c["Name"] for c in result.get("ResultSetMetadata", {}).get("ColumnInfo", [])]
            body = result.get("Rows", [])[1:]  # the first row of a SELECT's first page holds the column names
        else:
            body = result.get("Rows", [])
        rows += [dict(zip(columns, [d.get("VarCharValue") for d in row.get("Data", [])])) for row in body]
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    return QueryResult(rows=rows, scanned_bytes=int(details.get("scanned") or 0), query_id=query_id)


def run_lake(client: Any, sql: str, *, sleep: Callable[[float], None] = time.sleep,
             timeout: float = DEFAULT_TIMEOUT) -> QueryResult:
    """StartQuery, DescribeQuery until it ends, then every page of GetQueryResults."""
    query_id = client.start_query(QueryStatement=sql)["QueryId"]

    def describe() -> tuple[str, dict]:
        query = client.describe_query(QueryId=query_id)
        return query.get("QueryStatus", "UNKNOWN"), {"reason": query.get("ErrorMessage"),
                                                     "scanned": query.get("QueryStatistics", {}).get("BytesScanned")}

    details = _poll(describe, "FINISHED", ("FAILED", "CANCELLED", "TIMED_OUT"), f"CloudTrail Lake query {query_id}",
                    sleep, timeout)
    rows: list[dict[str, str | None]] = []
    request: dict[str, Any] = {"QueryId": query_id, "MaxQueryResults": PAGE_SIZE}
    while True:
        page = client.get_query_results(**request)
        for row in page.get("QueryResultRows", []):
            merged: dict[str, str | None] = {}
            for cell in row:  # a row is a list of one-entry {column: value} maps
                merged.update(cell)
            rows.append(merged)
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    return QueryResult(rows=rows, scanned_bytes=int(details.get("scanned") or 0), query_id=query_id)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _parse(text: str) -> datetime:
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def uncovered(window: tuple[str | None, str], covered: list[tuple[str | None, str]]) -> list[Window]:
    """The parts of ``window`` (since may be None: the beginning) that no covered range holds."""
    second = timedelta(seconds=1)
    start, end = window
    out: list[Window] = []
    for c_start, c_end in sorted(covered, key=lambda c: c[0] or ""):
        if start is not None and c_end < start:
            continue
        if c_start is not None and (start is None or c_start > start):
            gap_end = min(end, (_parse(c_start) - second).strftime(_FORMAT))
            if start is None or gap_end >= start:
                out.append(Window(since=start, until=gap_end))
        if c_end >= end:
            return out
        start = max(start or c_end, (_parse(c_end) + second).strftime(_FORMAT))
    out.append(Window(since=start, until=end))
    return out


def _overlaps(window: Window, ranges: list[tuple[str | None, str]]) -> bool:
    return any((window.since is None or window.since <= until) and (since is None or since <= window.until)
               for since, until in ranges)


class QuerySource(AggregateSource):
    """``athena:DATABASE.TABLE`` or ``lake:EVENT_DATA_STORE`` (an id or an event data store ARN)."""

    def __init__(self, spec: str, *, accounts: tuple[str, ...] = (), regions: tuple[str, ...] = (),
                 partitions: Partitions | None = None, workgroup: str | None = None,
                 output_location: str | None = None, dedupe: bool = True,
                 client_options: dict[str, Any] | None = None,
                 client_factory: Callable[[str], Any] | None = None, now: datetime | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        engine, _, table = spec.partition(":")
        if engine not in ("athena", "lake") or not table:
            raise FilterError(f"{spec}: expected athena:DATABASE.TABLE or lake:EVENT_DATA_STORE")
        self.label, self.engine, self.table = spec, engine, table
        # the ledger's name of the table: Athena's names are case-insensitive, a Lake store is its id
        self.ledger_name = f"{engine}:{table_name(engine, table) if engine == 'lake' else table.lower()}"
        self.accounts, self.regions = tuple(sorted(set(accounts))), tuple(sorted(set(regions)))
        self.partitions = partitions or Partitions()
        self.workgroup, self.output_location, self.dedupe = workgroup, output_location, dedupe
        self.client_options = dict(client_options or {})
        self._factory, self.now, self.sleep = client_factory, now, sleep
        QuerySpec(engine=engine, table=table, accounts=self.accounts)  # check the names now, not after listing

    def spec(self, windows: tuple[Window, ...], principals: tuple[str, ...]) -> QuerySpec:
        return QuerySpec(engine=self.engine, table=self.table, windows=windows, accounts=self.accounts,
                         regions=self.regions, principals=principals, partitions=self.partitions, dedupe=self.dedupe)

    def scope(self, principals: tuple[str, ...]) -> str:
        """The ledger scope: what the query selects besides time."""
        return "query:" + json.dumps([list(self.accounts), list(self.regions), sorted(set(principals))])

    def _client(self):
        if self._factory is None:
            from lpgen.aws import client_factory

            options = dict(self.client_options)
            if self.engine == "lake" and self.table.startswith("arn:") and not options.get("region"):
                options["region"] = self.table.split(":")[3]  # the store's own region
            self._factory = client_factory(**options)
        return self._factory("athena" if self.engine == "athena" else "cloudtrail")

    def run(self, sql: str) -> QueryResult:
        try:
            if self.engine == "athena":
                return run_athena(self._client(), sql, database=self.table.split(".", 1)[0],
                                  workgroup=self.workgroup, output_location=self.output_location, sleep=self.sleep)
            return run_lake(self._client(), sql, sleep=self.sleep)
        except (BotoCoreError, ClientError) as exc:  # after botocore's retries (throttling included)
            raise QueryFailed(f"{'Athena' if self.engine == 'athena' else 'CloudTrail Lake'}: "
                              f"{error_message(exc)}") from None

    def mine_into(self, store: UsageStore, window: Window, principals: tuple[str, ...], report) -> None:
        """Query what the ledger does not hold yet and commit it, or report why not (never raises)."""
        report.inputs += 1
        now = self.now or datetime.now(UTC)
        settled = (now - SETTLE).strftime(_FORMAT)
        end = min(window.until, settled) if window.until else settled
        if window.until and window.until > settled:
            report.notes.append(f"{self.label}: the window ends at {settled}, an hour ago: later events may "
                                "not be delivered yet")
        scope = self.scope(principals)
        prefix = f"{self.ledger_name}#"
        covered, clashes = [], []
        for key, other_scope in store.input_keys(prefix):
            if not key.startswith(prefix):
                continue
            since, _, until = key[len(prefix):].partition("..")
            (covered if other_scope == scope else clashes).append((None if since == "-" else since, until))
        if window.since is not None and window.since > end:
            report.notes.append(f"{self.label}: nothing to query: the window starts after {end}")
            return
        todo = uncovered((window.since, end), covered)
        if not todo:
            report.known += 1
            return
        if any(_overlaps(w, clashes) for w in todo):  # the same events under other filters: counted twice
            report.problems.append(Problem(path=self.label, reason=(
                "this store already holds a query of this table over an overlapping time with other --account, "
                "--region or --principal filters; mining it again would count events twice: use the same "
                "filters or another --store")))
            return
        sql = build_sql(self.spec(tuple(todo), principals))
        try:
            result = self.run(sql)
            agg = aggregate(result.rows, engine=self.engine, principals=principals)
        except QueryFailed as exc:
            report.problems.append(Problem(path=self.label, reason=str(exc)))
            return
        except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:  # rows of another shape than lpgen's
            report.problems.append(Problem(path=self.label, reason=f"unexpected query result: {exc!r}"))
            return
        engine = "Athena DataScannedInBytes" if self.engine == "athena" else "CloudTrail Lake BytesScanned"
        report.notes.append(f"{self.label}: query {result.query_id} scanned {human_bytes(result.scanned_bytes)} "
                            f"({engine}), returned {len(result.rows):,} rows")
        first, last = agg.span()
        stamp = datetime.now(UTC).strftime(_FORMAT)
        run = store.start_run(started=stamp, sources=[self.label], scope=scope)
        inputs = [InputRecord(
            key=f"{prefix}{w.since or '-'}..{w.until}", scope=scope, size=len(result.rows),
            version=hashlib.sha256(sql.encode()).hexdigest()[:16], kind=f"{self.engine}-query",
            # the counts go with the first range: one query answered them all
            records=agg.records if i == 0 else 0, counted=agg.events if i == 0 else 0, duplicates=0, problems=0,
            first_time=first, last_time=last, ids=b"") for i, w in enumerate(todo)]
        store.write_batch(run=run, inputs=inputs, keys=agg.keys, usage=agg.usage, principals=agg.principals,
                          coverage=agg.coverage, problems=[])
        store.finish_run(run, finished=datetime.now(UTC).strftime(_FORMAT))
        report.mined += 1
        report.queries += 1
        report.kinds[f"{self.engine}-query"] += 1
        report.records += agg.records
        report.events += agg.events
        report.principals.update(p for p in agg.principals if not p.startswith("service:"))
        if first and (report.first_time is None or first < report.first_time):
            report.first_time = first
        if last and (report.last_time is None or last > report.last_time):
            report.last_time = last
