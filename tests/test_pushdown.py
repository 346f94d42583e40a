"""The push-down query, proven by running it.

The demo trail is loaded into DuckDB twice: as Athena's standard CloudTrail table (structs,
``requestparameters`` as JSON text, partition columns ``account``, ``region`` and
``timestamp`` from the delivery path) and in CloudTrail Lake's shape (``eventtime`` a
timestamp, ``requestparameters`` a ``map<string,string>`` with nested documents as JSON
text, ``useridentity.identityprovider``). lpgen's Trino SQL is transpiled with sqlglot to
DuckDB and run; its rows, turned into store rows, must equal what mining the same files
gives, row by row.

Running it: Athena through moto's server (seeded with the rows DuckDB computed; moto does not
page results, so paging is shown with botocore's Stubber), CloudTrail Lake through the Stubber
(moto has no Lake): polling, pages, failed, cancelled, timed-out and throttled queries, the
ledger's time ranges, and the permissions of lpgen's own policy.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lpgen.filters import FilterError, Window
from lpgen.mine import MineOptions, mine
from lpgen.pushdown import Aggregate, Partitions, QuerySpec, aggregate, build_sql
from lpgen.sources.local import LocalSource
from lpgen.store import UsageStore

from .conftest import DEMO, assumed_role, make_record, moto_server, seed

duckdb = pytest.importorskip("duckdb")
sqlglot = pytest.importorskip("sqlglot")

LAKE_STORE = "EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE"
LQ = "0f5e7a2c-1d4b-4c8e-9a3f-6b2d8e1c4a7f"  # a Lake query id
_ISSUER = "STRUCT(type VARCHAR, principalid VARCHAR, arn VARCHAR, accountid VARCHAR, username VARCHAR)"
_SESSION = (f"STRUCT(attributes STRUCT(mfaauthenticated VARCHAR, creationdate VARCHAR), sessionissuer {_ISSUER},"
            " ec2roledelivery VARCHAR, webidfederationdata STRUCT(federatedprovider VARCHAR,"
            " attributes MAP(VARCHAR, VARCHAR)))")
_IDENTITY = ("type VARCHAR, principalid VARCHAR, arn VARCHAR, accountid VARCHAR, invokedby VARCHAR,"
             f" accesskeyid VARCHAR, username VARCHAR, sessioncontext {_SESSION}")
_COMMON = [("eventsource", "VARCHAR"), ("eventname", "VARCHAR"), ("awsregion", "VARCHAR"), ("errorcode", "VARCHAR"),
           ("eventid", "VARCHAR"), ("eventtype", "VARCHAR"), ("recipientaccountid", "VARCHAR"),
           ("eventcategory", "VARCHAR")]
ATHENA_COLUMNS = [("useridentity", f"STRUCT({_IDENTITY})"), ("eventtime", "VARCHAR"), *_COMMON,
                  ("requestparameters", "VARCHAR"), ("responseelements", "VARCHAR"),
                  ("resources", "STRUCT(arn VARCHAR, accountid VARCHAR, type VARCHAR)[]"),
                  ("account", "VARCHAR"), ("region", "VARCHAR"), ("timestamp", "VARCHAR")]
LAKE_COLUMNS = [("useridentity", f"STRUCT({_IDENTITY}, identityprovider VARCHAR)"), ("eventtime", "TIMESTAMP"),
                *_COMMON, ("requestparameters", "MAP(VARCHAR, VARCHAR)"), ("responseelements", "MAP(VARCHAR, VARCHAR)"),
                ("resources", "STRUCT(accountid VARCHAR, type VARCHAR, arn VARCHAR, arnprefix VARCHAR)[]")]
_LAYOUT = re.compile(r"AWSLogs/(?:o-[a-z0-9]+/)?(\d{12})/CloudTrail/([a-z0-9-]+)/(\d{4}/\d\d/\d\d)/")


def _get(node, *path):
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _identity(ui: dict | None, *, lake: bool) -> dict | None:
    if ui is None:
        return None
    context = ui.get("sessionContext")
    issuer = _get(context, "sessionIssuer")
    out = {
        "type": ui.get("type"), "principalid": ui.get("principalId"), "arn": ui.get("arn"),
        "accountid": ui.get("accountId"), "invokedby": ui.get("invokedBy"), "accesskeyid": ui.get("accessKeyId"),
        "username": ui.get("userName"),
        "sessioncontext": None if context is None else {
            "attributes": {"mfaauthenticated": _get(context, "attributes", "mfaAuthenticated"),
                           "creationdate": _get(context, "attributes", "creationDate")},
            "sessionissuer": None if not issuer else {
                k.lower(): issuer.get(k) for k in ("type", "principalId", "arn", "accountId", "userName")},
            "ec2roledelivery": None,
            "webidfederationdata": None,
        },
    }
    if lake:
        out["identityprovider"] = ui.get("identityProvider")
    return out


def _common(r: dict) -> list:
    return [r.get("eventSource"), r.get("eventName"), r.get("awsRegion"), r.get("errorCode"), r.get("eventID"),
            r.get("eventType"), r.get("recipientAccountId"), r.get("eventCategory")]


def athena_row(r: dict, path: str) -> list:
    """A record as the CloudTrail SerDe presents it, with the partition columns of its delivery path."""
    m = _LAYOUT.search(path)
    resources = r.get("resources")
    text = lambda part: None if r.get(part) is None else json.dumps(r[part], separators=(",", ":"))
    return [_identity(r.get("userIdentity"), lake=False), r.get("eventTime"), *_common(r),
            text("requestParameters"), text("responseElements"),
            None if resources is None else [{"arn": x.get("ARN"), "accountid": x.get("accountId"), "type": x.get("type")}
                                            for x in resources],
            m[1], m[2], m[3]]


def _map_value(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def lake_row(r: dict) -> list:
    """A record as a Lake event data store holds it."""
    resources = r.get("resources")
    as_map = lambda part: None if r.get(part) is None else {k: _map_value(v) for k, v in r[part].items()}
    when = r.get("eventTime")
    return [_identity(r.get("userIdentity"), lake=True), when and when.replace("T", " ").rstrip("Z"), *_common(r),
            as_map("requestParameters"), as_map("responseElements"),
            None if resources is None else [{"accountid": x.get("accountId"), "type": x.get("type"),
                                             "arn": x.get("ARN"), "arnprefix": x.get("ARNPrefix")} for x in resources]]


def demo_records():
    for path in sorted((DEMO / "AWSLogs").rglob("*.json.gz")):
        if "CloudTrail-Digest" in path.as_posix():
            continue
        for record in json.loads(gzip.decompress(path.read_bytes()))["Records"]:
            yield record, path.as_posix()


def _table(db, name: str, columns: list[tuple[str, str]], rows: list[list], folder: Path) -> None:
    """A DuckDB table with these typed columns, bulk-loaded from JSON Lines (row inserts are slow)."""
    path = folder / f"{name}.jsonl"
    path.write_text("".join(json.dumps(dict(zip([c for c, _ in columns], row))) + "\n" for row in rows))
    types = ", ".join(f"'{c}': '{t}'" for c, t in columns)
    db.execute(f"CREATE TABLE {name} AS SELECT * FROM read_json('{path}', format = 'newline_delimited',"
               f" columns = {{{types}}})")


def load(db, records: list[tuple[dict, str]], folder: Path) -> None:
    _table(db, "cloudtrail", ATHENA_COLUMNS, [athena_row(r, p) for r, p in records], folder)
    _table(db, "lake", LAKE_COLUMNS, [lake_row(r) for r, _ in records], folder)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = duckdb.connect()
    load(db, list(demo_records()), tmp_path_factory.mktemp("duckdb"))
    yield db
    db.close()


def to_duckdb(sql: str) -> str:
    """lpgen's Trino SQL as DuckDB runs it; the tables are ``cloudtrail`` and ``lake`` here.

    A Lake event data store id is a bare name with hyphens, which no SQL parser takes as
    one identifier: it is swapped for the DuckDB table's name before transpiling.
    """
    sql = sql.replace(f"FROM {LAKE_STORE}", "FROM lake").replace('FROM "trail"."cloudtrail"', "FROM cloudtrail")
    return sqlglot.transpile(sql, read="trino", write="duckdb")[0]


def run(db, spec: QuerySpec) -> list[dict]:
    cursor = db.execute(to_duckdb(build_sql(spec)))
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, [None if v is None else str(v) for v in row])) for row in cursor.fetchall()]


def athena(**kwargs) -> QuerySpec:
    return QuerySpec(engine="athena", table="trail.cloudtrail", **kwargs)


def lake(**kwargs) -> QuerySpec:
    return QuerySpec(engine="lake", table=LAKE_STORE, **kwargs)


def store_of(tmp_path: Path, agg: Aggregate) -> dict:
    with UsageStore(tmp_path / "pushdown.db") as store:
        run_id = store.start_run(started="2026-11-20T00:00:00Z", sources=["query"], scope="")
        store.write_batch(run=run_id, inputs=[], keys=agg.keys, usage=agg.usage, principals=agg.principals,
                          coverage=agg.coverage, problems=[])
        return store.contents()


def local_store(tmp_path: Path, source: Path, options: MineOptions | None = None) -> dict:
    with UsageStore(tmp_path / "local.db") as store:
        mine([LocalSource(source)], store, options or MineOptions())
        return store.contents()


def both_ways(records: list[tuple[dict, str]], spec: QuerySpec, folder: Path) -> tuple[dict, dict]:
    """The store pushing ``spec`` down over these records gives, and the one mining them as a file gives."""
    trail = folder / "trail.json"
    trail.write_text(json.dumps({"Records": [r for r, _ in records]}))
    db = duckdb.connect()
    load(db, records, folder)
    return store_of(folder, aggregate(run(db, spec), engine=spec.engine)), local_store(folder, trail)


@pytest.fixture(scope="module")
def demo_local(tmp_path_factory):
    return local_store(tmp_path_factory.mktemp("local"), DEMO / "AWSLogs")


@pytest.mark.parametrize("spec", [athena(), lake()], ids=["athena", "lake"])
def test_the_query_aggregates_the_demo_trail_exactly_as_mining_its_files(spec, demo_db, demo_local, tmp_path):
    rows = run(demo_db, spec)
    pushed = store_of(tmp_path, aggregate(rows, engine=spec.engine))
    assert pushed["usage"] and pushed["usage"] == demo_local["usage"]
    assert pushed["principals"] == demo_local["principals"]
    assert pushed["coverage"] == demo_local["coverage"]
    # aggregated in the engine: far fewer rows come back than there are events
    assert len(rows) < sum(r[8] for r in demo_local["usage"]) / 4


WINDOW = Window(since="2026-11-03T06:00:00Z", until="2026-11-04T23:59:59Z")
WINDOW_WEEK = Window(since="2026-11-02T00:00:00Z", until="2026-11-08T23:59:59Z")


@pytest.mark.parametrize("spec", [athena(windows=(WINDOW,)), lake(windows=(WINDOW,))], ids=["athena", "lake"])
def test_a_window_prunes_partitions_and_counts_what_mining_with_that_window_counts(spec, demo_db, tmp_path):
    sql = build_sql(spec)
    if spec.engine == "athena":  # delivery days, a day's slack each side
        assert "\"timestamp\" >= '2026/11/02' AND \"timestamp\" <= '2026/11/05'" in sql
    else:
        assert "eventtime >= TIMESTAMP '2026-11-03 06:00:00' AND eventtime < TIMESTAMP '2026-11-05 00:00:00'" in sql
    pushed = store_of(tmp_path, aggregate(run(demo_db, spec), engine=spec.engine))
    local = local_store(tmp_path, DEMO / "AWSLogs", MineOptions(window=WINDOW))
    assert pushed["usage"] and pushed["usage"] == local["usage"]
    assert {day for _, _, day, *_ in pushed["coverage"]} == {"2026-11-03", "2026-11-04"}


def test_a_principal_filter_keeps_coverage_of_everyone_and_usage_of_the_principal(demo_db, tmp_path):
    spec = athena(principals=("orders-api*",))
    assert "principal LIKE '%/orders-api%' ESCAPE" in build_sql(spec)
    pushed = store_of(tmp_path, aggregate(run(demo_db, spec), engine="athena", principals=spec.principals))
    local = local_store(tmp_path, DEMO / "AWSLogs", MineOptions(principals=spec.principals))
    assert pushed["usage"] == local["usage"]
    assert {r[1].rsplit("/", 1)[-1][:15] for r in pushed["usage"]} == {"orders-api-role"}
    assert pushed["coverage"] == local["coverage"]


def test_accounts_and_regions_prune_partitions_and_keep_us_east_1(demo_db):
    spec = athena(accounts=("210987654321",), regions=("eu-west-1",))
    sql = build_sql(spec)
    assert "\"account\" IN ('210987654321')" in sql and "\"region\" IN ('eu-west-1', 'us-east-1')" in sql
    regions = {r["region"] for r in run(demo_db, spec)}
    assert regions == {"eu-west-1", "us-east-1"}
    assert run(demo_db, athena(accounts=("111122223333",))) == []
    assert {r["region"] for r in run(demo_db, lake(regions=("eu-central-1",)))} == {"us-east-1"}


HOSTILE = "x' OR '1'='1'); DROP TABLE cloudtrail; --"


def test_hostile_values_stay_inside_literals(demo_db):
    spec = athena(regions=(HOSTILE,), principals=(HOSTILE, "50%_off\\*"),
                  windows=(Window(since="2026-11-02T00:00:00Z"),))
    sql = build_sql(spec)
    statements = sqlglot.parse(sql, read="trino")
    assert len(statements) == 1
    literals = {lit.this for lit in statements[0].find_all(sqlglot.exp.Literal) if lit.is_string}
    assert HOSTILE in literals and "50\\%\\_off\\\\%" in literals
    rows = run(demo_db, spec)  # no region and no principal of that name: only us-east-1's coverage
    assert {(r["kind"], r["region"]) for r in rows} == {("coverage", "us-east-1")}
    assert demo_db.execute("SELECT count(*) FROM cloudtrail").fetchone()[0] > 0


@pytest.mark.parametrize("table, engine", [
    ('trail"; DROP TABLE x; --.t', "athena"), ("no_database", "athena"), ("trail.t x", "athena"),
    ("store; DROP", "lake"), ("arn:aws:s3:::bucket", "lake"),
], ids=["quote-in-database", "no-database", "space-in-table", "statement-in-store", "not-a-store-arn"])
def test_table_names_are_checked_not_quoted_blindly(table, engine):
    with pytest.raises(FilterError):
        QuerySpec(engine=engine, table=table)


def test_a_store_arn_names_its_id_and_accounts_are_account_ids():
    arn = f"arn:aws:cloudtrail:eu-west-1:210987654321:eventdatastore/{LAKE_STORE}"
    assert f"FROM {LAKE_STORE}\n" in build_sql(QuerySpec(engine="lake", table=arn))
    with pytest.raises(FilterError, match="12-digit"):
        athena(accounts=("1' OR 1=1",))


# Identity shapes the demo does not hold: each resolves in SQL as lpgen.normalize resolves it.
IDENTITIES = {
    "assumed-role-without-issuer": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/batch/i-0ab",
                                    "accountId": "111122223333"},
    "assumed-role-in-china": assumed_role("arn:aws-cn:iam::111122223333:role/app/worker"),
    "user-without-arn": {"type": "IAMUser", "accountId": "111122223333", "userName": "alice"},
    "root": {"type": "Root", "arn": "arn:aws:iam::111122223333:root", "accountId": "111122223333"},
    "root-without-arn": {"type": "Root", "accountId": "111122223333"},
    "federated-user": {"type": "FederatedUser", "arn": "arn:aws:sts::111122223333:federated-user/bob",
                       "accountId": "111122223333", "sessionContext": {"sessionIssuer": {
                           "type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/broker"}}},
    "federated-user-without-issuer": {"type": "FederatedUser", "arn": "arn:aws:sts::111122223333:federated-user/bob"},
    "other-account": {"type": "AWSAccount", "accountId": "444455556666", "principalId": "AIDA:x"},
    "service": {"type": "AWSService", "invokedBy": "events.amazonaws.com"},
    "unknown-type": {"type": "IdentityCenterUser", "principalId": "abc"},
    "no-identity": None,
}


@pytest.mark.parametrize("spec", [athena(), lake()], ids=["athena", "lake"])
def test_every_identity_shape_resolves_as_normalize_resolves_it(spec, tmp_path):
    records = [(make_record(identity=identity, region="cn-north-1" if "china" in name else "eu-west-1",
                            params={"bucketName": "b", "key": f"k/{name}", "encrypted": True}),
                f"AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/{name}.json.gz")
               for name, identity in IDENTITIES.items()]
    records.append((make_record(identity=assumed_role(), eventType="AwsServiceEvent", source="kms.amazonaws.com"),
                    "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/service-event.json.gz"))
    # records mining skips as problems, which the query leaves out
    records += [(make_record(name="NoTime", time=None), "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/x"),
                (make_record(source=""), "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/y")]
    pushed, local = both_ways(records, spec, tmp_path)
    assert pushed["principals"] == local["principals"]
    assert pushed["usage"] == local["usage"]
    assert len(local["principals"]) == len(records) - 3  # "service" and the service event share one


# -- running it: Athena through moto's server, CloudTrail Lake through botocore's Stubber -------------

def athena_pages(rows: list[dict]) -> dict:
    """DuckDB's result as Athena returns it: VarCharValue strings, NULL as no value, a header row first."""
    columns = list(rows[0])
    data = [{"Data": [{"VarCharValue": c} for c in columns]}]
    data += [{"Data": [{} if r[c] is None else {"VarCharValue": r[c]} for c in columns]} for r in rows]
    return {"rows": data, "column_info": [{"Name": c, "Type": "varchar"} for c in columns]}


@pytest.fixture(scope="module")
def athena_rows(demo_db):
    return run(demo_db, athena())


def test_mine_athena_runs_the_query_in_athena_and_a_rerun_asks_for_nothing(athena_rows, demo_local, tmp_path):
    import requests
    from click.testing import CliRunner

    from lpgen.cli import main

    with moto_server() as endpoint:
        requests.post(f"{endpoint}/moto-api/static/athena/query-results", timeout=10,
                      json={"results": [athena_pages(athena_rows)]}).raise_for_status()
        seed("athena", endpoint).create_work_group(
            Name="audit", Configuration={"ResultConfiguration": {"OutputLocation": "s3://results/"}})
        args = ["mine", "athena:trail.cloudtrail", "--until", "2026-11-10", "--store", str(tmp_path / "s.db"),
                "--endpoint-url", endpoint,
                "--workgroup", "audit", "--output-location", "s3://results/lpgen/"]
        first = CliRunner().invoke(main, args)
        second = CliRunner().invoke(main, args)
        athena_api = seed("athena", endpoint)  # the test's own look at what Athena received
        executions = athena_api.list_query_executions()["QueryExecutionIds"]
        query = athena_api.get_query_execution(QueryExecutionId=executions[0])["QueryExecution"]
    assert first.exit_code == 0, first.output
    assert "scanned 0 bytes (Athena DataScannedInBytes), returned" in first.output
    assert len(executions) == 1 and second.exit_code == 0  # the re-run found the range in the ledger
    assert "1 already mined" in second.output
    assert query["WorkGroup"] == "audit" and query["ResultConfiguration"]["OutputLocation"].startswith(
        "s3://results/lpgen/")
    assert query["QueryExecutionContext"]["Database"] == "trail" and "GROUPING SETS" in query["Query"]
    with UsageStore(tmp_path / "s.db") as store:
        mined = store.contents()
        assert [i.kind for i in store.inputs()] == ["athena-query"]
    assert mined["usage"] == demo_local["usage"] and mined["coverage"] == demo_local["coverage"]


def test_athena_is_polled_until_the_query_ends(athena_rows, tmp_path):
    import requests

    from lpgen.aws import client_factory
    from lpgen.sources.query import run_athena

    with moto_server() as endpoint:
        requests.post(f"{endpoint}/moto-api/state-manager/set-transition", timeout=10, json={
            "model_name": "athena::execution", "transition": {"progression": "manual", "times": 3}})
        requests.post(f"{endpoint}/moto-api/static/athena/query-results", timeout=10,
                      json={"results": [athena_pages(athena_rows)]}).raise_for_status()
        waits = []
        result = run_athena(client_factory(endpoint_url=endpoint)("athena"), "SELECT 1", database="trail",
                            sleep=waits.append)
        requests.post(f"{endpoint}/moto-api/state-manager/unset-transition", timeout=10,
                      json={"model_name": "athena::execution"})
    assert result.rows == athena_rows
    assert len(waits) >= 2 and waits == sorted(waits)  # growing waits between polls


def stubbed(service: str):
    import boto3
    from botocore.stub import Stubber

    client = boto3.client(service, region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    return client, Stubber(client)


def test_athena_results_are_read_page_by_page(athena_rows):
    from lpgen.sources.query import run_athena

    client, stub = stubbed("athena")
    pages = athena_pages(athena_rows)
    header, body = pages["rows"][0], pages["rows"][1:]
    meta = {"ColumnInfo": pages["column_info"]}
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_execution", {"QueryExecution": {
        "QueryExecutionId": "q-1", "Status": {"State": "SUCCEEDED"}, "Statistics": {"DataScannedInBytes": 5_368_709}}})
    stub.add_response("get_query_results", {"ResultSet": {"Rows": [header, *body[:100]], "ResultSetMetadata": meta},
                                            "NextToken": "p2"}, {"QueryExecutionId": "q-1", "MaxResults": 1000})
    stub.add_response("get_query_results", {"ResultSet": {"Rows": body[100:], "ResultSetMetadata": meta}},
                      {"QueryExecutionId": "q-1", "MaxResults": 1000, "NextToken": "p2"})
    with stub:
        result = run_athena(client, "SELECT 1", database="trail", sleep=lambda s: None)
    assert result.rows == athena_rows and result.scanned_bytes == 5_368_709


def lake_rows(rows: list[dict]) -> list[list[dict]]:
    """DuckDB's result as Lake returns it: each row a list of one-entry {column: value} maps."""
    return [[{c: v} for c, v in r.items() if v is not None] for r in rows]


def lake_source(client, **kwargs):
    from lpgen.sources.query import QuerySource

    return QuerySource(f"lake:{LAKE_STORE}", client_factory=lambda service: client, sleep=lambda s: None, **kwargs)


def test_mine_lake_polls_reads_every_page_and_prints_the_bytes_scanned(demo_db, demo_local, tmp_path):
    rows = lake_rows(run(demo_db, lake()))
    client, stub = stubbed("cloudtrail")
    stub.add_response("start_query", {"QueryId": LQ})
    for state in ("QUEUED", "RUNNING"):
        stub.add_response("describe_query", {"QueryId": LQ, "QueryStatus": state}, {"QueryId": LQ})
    stub.add_response("describe_query", {"QueryId": LQ, "QueryStatus": "FINISHED",
                                         "QueryStatistics": {"BytesScanned": 123_456_789}}, {"QueryId": LQ})
    stub.add_response("get_query_results", {"QueryResultRows": rows[:50], "NextToken": "page-2"},
                      {"QueryId": LQ, "MaxQueryResults": 1000})
    stub.add_response("get_query_results", {"QueryResultRows": rows[50:]},
                      {"QueryId": LQ, "MaxQueryResults": 1000, "NextToken": "page-2"})
    # One instant for both runs: each queries up to an hour before now, so a second run a second later would ask for
    # that second (and fail the stub) rather than find the window known.
    from datetime import UTC, datetime

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with stub, UsageStore(tmp_path / "s.db") as store:
        report = mine([lake_source(client, now=now)], store)
        again = mine([lake_source(client, now=now)], store)  # no response left: a second query would fail the stub
        mined = store.contents()
    assert not report.problems and report.records == sum(r[3] for r in demo_local["coverage"])
    assert "scanned 117.7 MiB (CloudTrail Lake BytesScanned)" in " ".join(report.notes)
    assert again.known == 1 and again.records == 0
    assert mined["usage"] == demo_local["usage"] and mined["principals"] == demo_local["principals"]


@pytest.mark.parametrize("engine, responses, message", [
    ("lake", [("start_query", {"QueryId": LQ}), ("describe_query", {"QueryStatus": "FAILED",
                                                                      "ErrorMessage": "Column eventtim not found"})],
     "CloudTrail Lake query " + LQ + " failed: Column eventtim not found"),
    ("lake", [("start_query", {"QueryId": LQ}), ("describe_query", {"QueryStatus": "TIMED_OUT"})],
     "CloudTrail Lake query " + LQ + " timed out: no reason given"),
    ("lake", [("start_query", "ThrottlingException")], "CloudTrail Lake: ThrottlingException: Rate exceeded"),
    ("athena", [("start_query_execution", {"QueryExecutionId": "aq"}), ("get_query_execution", {"QueryExecution": {
        "Status": {"State": "FAILED", "StateChangeReason": "TABLE_NOT_FOUND: trail.cloudtrail"}}})],
     "Athena query aq failed: TABLE_NOT_FOUND: trail.cloudtrail"),
    ("athena", [("start_query_execution", {"QueryExecutionId": "aq"}),
                ("get_query_execution", {"QueryExecution": {"Status": {"State": "CANCELLED"}}})],
     "Athena query aq cancelled"),
    ("athena", [("start_query_execution", {"QueryExecutionId": "aq"}), ("get_query_execution", "ThrottlingException")],
     "Athena: ThrottlingException: Rate exceeded"),
], ids=["lake-failed", "lake-timed-out", "lake-throttled", "athena-failed", "athena-cancelled", "athena-throttled"])
def test_failed_cancelled_and_throttled_queries_are_one_clear_problem_and_no_ledger_entry(
        engine, responses, message, tmp_path):
    from lpgen.sources.query import QuerySource

    client, stub = stubbed("cloudtrail" if engine == "lake" else "athena")
    for operation, response in responses:
        if isinstance(response, str):  # after botocore's own retries, the error reaches lpgen
            stub.add_client_error(operation, service_error_code=response, service_message="Rate exceeded")
        else:
            stub.add_response(operation, response)
    source = QuerySource(f"lake:{LAKE_STORE}" if engine == "lake" else "athena:trail.cloudtrail",
                         client_factory=lambda service: client, sleep=lambda s: None)
    with stub, UsageStore(tmp_path / "s.db") as store:
        report = mine([source], store)
        assert store.inputs() == []  # the next run tries again
    assert [p.path for p in report.problems] == [source.label]
    assert report.problems[0].reason.startswith(message)
    assert report.found_nothing


def test_a_later_run_queries_only_the_time_no_earlier_query_covered(tmp_path):
    from datetime import UTC, datetime

    from lpgen.sources.query import QueryResult, QuerySource

    asked = []

    class Recording(QuerySource):
        def run(self, sql):
            asked.append(sql)
            return QueryResult(rows=[], scanned_bytes=0, query_id="q")

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    week = Window(since="2026-11-02T00:00:00Z", until="2026-11-08T23:59:59Z")
    with UsageStore(tmp_path / "s.db") as store:
        for window in (week, Window(since="2026-11-01T00:00:00Z", until="2026-11-10T23:59:59Z"), week):
            mine([Recording("athena:trail.cloudtrail", now=now)], store, MineOptions(window=window))
        report = mine([Recording("athena:trail.cloudtrail", now=now)], store, MineOptions(window=Window()))
        keys = sorted(i.key for i in store.inputs())
    assert len(asked) == 3  # the third run had nothing new to ask
    assert not report.found_nothing  # an empty answer is an answer: a periodic run exits 0
    assert ("eventtime >= '2026-11-01T00:00:00Z' AND eventtime <= '2026-11-01T23:59:59Z'" in asked[1]
            and "eventtime >= '2026-11-09T00:00:00Z' AND eventtime <= '2026-11-10T23:59:59Z'" in asked[1])
    assert "eventtime <= '2026-10-31T23:59:59Z'" in asked[2] and "'2026-11-20T11:00:00Z'" in asked[2]
    assert keys[0] == "athena:trail.cloudtrail#-..2026-10-31T23:59:59Z"


def test_sql_command_prints_the_query_and_refuses_a_bad_table_cleanly():
    from click.testing import CliRunner

    from lpgen.cli import main

    args = ["sql", "--engine", "athena", "--table", "trail.cloudtrail", "--since", "2026-11-02", "--until",
            "2026-11-08", "--region", "eu-west-1", "--principal", "orders-api*", "--partition-date", "dt",
            "--partition-date-format", "%Y-%m-%d"]
    printed = CliRunner().invoke(main, args)
    expected = build_sql(athena(windows=(WINDOW_WEEK,), regions=("eu-west-1",), principals=("orders-api*",),
                                partitions=Partitions(date="dt", date_format="%Y-%m-%d")))
    assert printed.exit_code == 0 and printed.output == expected
    assert "\"dt\" >= '2026-11-01' AND \"dt\" <= '2026-11-09'" in printed.output
    bad = CliRunner().invoke(main, ["sql", "--engine", "lake", "--table", "x; DROP TABLE y"])
    assert bad.exit_code == 1 and bad.output.startswith("Error: ") and "is not an event data store id" in bad.output


@pytest.mark.parametrize("window, covered, expected", [
    (("2026-11-02T00:00:00Z", "2026-11-08T23:59:59Z"), [], [("2026-11-02T00:00:00Z", "2026-11-08T23:59:59Z")]),
    (("2026-11-02T00:00:00Z", "2026-11-08T23:59:59Z"), [("2026-11-01T00:00:00Z", "2026-11-09T00:00:00Z")], []),
    ((None, "2026-11-08T23:59:59Z"), [(None, "2026-11-05T23:59:59Z")],
     [("2026-11-06T00:00:00Z", "2026-11-08T23:59:59Z")]),
    (("2026-11-01T00:00:00Z", "2026-11-30T23:59:59Z"),
     [("2026-11-02T00:00:00Z", "2026-11-08T23:59:59Z"), ("2026-11-10T00:00:00Z", "2026-11-12T23:59:59Z")],
     [("2026-11-01T00:00:00Z", "2026-11-01T23:59:59Z"), ("2026-11-09T00:00:00Z", "2026-11-09T23:59:59Z"),
      ("2026-11-13T00:00:00Z", "2026-11-30T23:59:59Z")]),
    ((None, "2026-11-08T23:59:59Z"), [("2026-11-02T00:00:00Z", "2026-11-30T23:59:59Z")],
     [(None, "2026-11-01T23:59:59Z")]),
    (("2026-11-05T00:00:00Z", "2026-11-06T00:00:00Z"), [("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")],
     [("2026-11-05T00:00:00Z", "2026-11-06T00:00:00Z")]),
], ids=["nothing-covered", "all-covered", "from-the-beginning-then-later", "gaps-between-two-ranges",
        "only-before-a-covered-month", "covered-range-before-the-window"])
def test_a_run_queries_exactly_the_time_no_range_in_the_ledger_covers(window, covered, expected):
    from lpgen.sources.query import uncovered

    assert [(w.since, w.until) for w in uncovered(window, covered)] == expected


def test_other_filters_over_the_same_time_are_refused_rather_than_counted_twice(tmp_path):
    from datetime import UTC, datetime

    from lpgen.sources.query import QueryResult, QuerySource

    class Empty(QuerySource):
        def run(self, sql):
            return QueryResult(rows=[], scanned_bytes=0, query_id="q")

    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with UsageStore(tmp_path / "s.db") as store:
        first = mine([Empty("lake:" + LAKE_STORE, now=now, regions=("eu-west-1",))], store)
        other = mine([Empty("lake:" + LAKE_STORE, now=now)], store)
        assert len(store.inputs()) == 1
    assert not first.problems
    assert "other --account, --region or --principal filters" in other.problems[0].reason


@pytest.mark.parametrize("engine", ["athena", "lake"])
def test_an_event_delivered_by_two_trails_counts_once_as_when_mining_both_copies(engine, tmp_path):
    import shutil

    archive = tmp_path / "both"
    shutil.copytree(DEMO / "AWSLogs", archive / "AWSLogs")
    shutil.copytree(DEMO / "AWSLogs/210987654321", archive / "AWSLogs/o-abcdef1234/210987654321")
    records = [(r, p) for r, p in demo_records()]
    records += [(r, p.replace("AWSLogs/", "AWSLogs/o-abcdef1234/")) for r, p in records]
    db = duckdb.connect()
    load(db, records, tmp_path)
    spec = athena() if engine == "athena" else lake()
    pushed = store_of(tmp_path, aggregate(run(db, spec), engine=engine))
    local = local_store(tmp_path, archive)
    assert pushed["usage"] == local["usage"] and pushed["coverage"] == local["coverage"]
    twice = store_of(tmp_path / "twice", aggregate(run(db, QuerySpec(engine=engine, table=spec.table, dedupe=False)),
                                                    engine=engine))
    assert sum(r[8] for r in twice["usage"]) == 2 * sum(r[8] for r in local["usage"])


# Object keys and names as users write them: quotes, backslashes, apostrophes, tabs, non-ASCII.
AWKWARD = ['report "final".csv', 'a\\"c', "dir\\file", 'q\\\\"z', "ünïcødé/ключ", "it's", "tab\tnew\nline", "x]{y"]


@pytest.mark.parametrize("spec", [athena(), lake()], ids=["athena", "lake"])
def test_values_with_quotes_and_backslashes_are_grouped_whole_at_any_depth(spec, tmp_path):
    shapes = {
        "GetObject": lambda v, w: {"bucketName": "b", "key": v, "versionId": w},
        "PutBucketThing": lambda v, w: {"bucketName": "b", "config": {"roleArn": v, "prefix": w}},
        "TransactWriteItems": lambda v, w: {"transactItems": [{"put": {"tableName": v, "operation": w}}]},
        "CreateSubnets": lambda v, w: {"subnetIds": [v, w]},
    }
    records = [(make_record(name=name, params=shape(v, w)), "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/a")
               for name, shape in shapes.items() for v in AWKWARD for w in AWKWARD[:3]]
    pushed, local = both_ways(records, spec, tmp_path)
    assert len(local["usage"]) > 2 * len(AWKWARD) * len(shapes)  # most calls named something of their own
    assert pushed["usage"] == local["usage"]


@pytest.mark.parametrize("spec", [athena(), lake()], ids=["athena", "lake"])
def test_tags_set_empty_null_and_absent_are_grouped_as_when_mining(spec, tmp_path):
    # 'tags' is kept as a fact (present or not), never its content: calls that differ only in their tags
    # are one aggregate, and calls with tags (even empty ones) and without (or null) are told apart as
    # the local path tells them apart, or the query would lose a tag-on-create permission.
    tags = [{"env": "prod"}, {"env": "test", "team": "a"}, {}, [], [{"key": "k", "value": "v"}], None]
    records = [(make_record(name="CreateFunction20150331", source="lambda.amazonaws.com",
                            params={"functionName": "f", **({} if t is None else {"tags": t})}),
                "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/a") for t in tags for _ in range(2)]
    pushed, local = both_ways(records, spec, tmp_path)
    assert sorted(json.loads(row[7]) for row in local["usage"]) == [
        [["functionName", "f"]], [["functionName", "f"], ["tags", "present"]]]
    assert pushed["usage"] == local["usage"]


@pytest.mark.parametrize("spec", [athena(), lake()], ids=["athena", "lake"])
def test_attribute_values_are_grouped_by_the_role_they_hand_over_and_nothing_else(spec, tmp_path):
    # attributeValue is kept only when it is a role ARN (request_fields.json, role_values): topic policies set
    # through the same call are one aggregate, each feedback role one of its own, as the local path keeps them.
    values = [("LambdaSuccessFeedbackRoleArn", "arn:aws:iam::111122223333:role/sns-feedback"),
              ("LambdaFailureFeedbackRoleArn", "arn:aws:iam::111122223333:role/sns-failures"),
              ("Policy", '{"Statement": [{"Effect": "Allow"}]}'), ("Policy", '{"Statement": []}'),
              ("DisplayName", "Orders")]
    records = [(make_record(name="SetTopicAttributes", source="sns.amazonaws.com",
                            params={"topicArn": "arn:aws:sns:eu-west-1:111122223333:orders", "attributeName": name,
                                    "attributeValue": value}),
                "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/02/a") for name, value in values]
    pushed, local = both_ways(records, spec, tmp_path)
    assert len(local["usage"]) == 3  # two roles, and every other attribute
    assert pushed["usage"] == local["usage"]


@pytest.mark.parametrize("command", ["map", "verify"])
def test_commands_that_read_records_refuse_a_query_source_cleanly(command):
    from click.testing import CliRunner

    from lpgen.cli import main

    result = CliRunner().invoke(main, [command, "athena:trail.cloudtrail"])
    assert result.exit_code == 1 and "return aggregates, not records" in result.output
    assert isinstance(result.exception, SystemExit)  # a message, not a traceback


def test_a_query_still_running_after_the_timeout_is_reported_not_waited_for_forever():
    from lpgen.sources.query import QueryFailed, run_lake

    client, stub = stubbed("cloudtrail")
    stub.add_response("start_query", {"QueryId": LQ})
    for _ in range(3):
        stub.add_response("describe_query", {"QueryId": LQ, "QueryStatus": "RUNNING"}, {"QueryId": LQ})
    waits = []
    with stub, pytest.raises(QueryFailed, match=f"CloudTrail Lake query {LQ} still running after 1 s"):
        run_lake(client, "SELECT 1", sleep=waits.append, timeout=1.0)
    assert waits == [0.5, 0.75]


_LIKE = duckdb.connect()


@st.composite
def principal_and_matching_glob(draw):
    """A principal, and a glob built from it (or from its name) that fnmatch matches: each character kept,
    or turned into ?, a class holding it ([x], [!y]) or part of a *."""
    name = draw(st.text(alphabet="ab-_%\\[]!", min_size=1, max_size=10))  # a name holds no : or /
    principal = draw(st.sampled_from([name, f"arn:aws:iam::1:role/p/{name}", f"service:{name}"]))
    glob, chars = [], list(draw(st.sampled_from([principal, name])))
    while chars:
        ch = chars.pop(0)
        how = draw(st.sampled_from(["keep", "keep", "?", "class", "not", "star"]))
        if how == "keep" and ch not in "*?[":
            glob.append(ch)
        elif how == "class" and ch != "!":
            glob.append(f"[{ch}]")
        elif how == "not":
            glob.append("[!" + ("a" if ch != "a" else "b") + "]")
        elif how == "star":
            del chars[:draw(st.integers(0, len(chars)))]
            glob.append("*")
        else:
            glob.append("?")
    return principal, "".join(glob)


@settings(max_examples=300, deadline=None)
@given(pair=principal_and_matching_glob())
def test_the_sql_principal_filter_keeps_everything_the_glob_keeps(pair):
    from lpgen.filters import principal_matcher
    from lpgen.pushdown import like_pattern

    principal, glob = pair
    assert principal_matcher((glob,))(principal)  # the strategy built a matching glob
    forms = [like_pattern(glob), "%/" + like_pattern(glob), "%:" + like_pattern(glob)]
    assert any(_LIKE.execute("SELECT ? LIKE ? ESCAPE '\\'", [principal, f]).fetchone()[0] for f in forms)


def test_mine_athena_needs_only_the_athena_permissions_of_lpgens_own_policy(athena_rows, tmp_path):
    """As a user holding only `mine (Athena source)`'s policy, under moto's IAM enforcement; and refused
    with another command's policy, with a clear message."""
    import requests
    from click.testing import CliRunner
    from moto import settings as moto_settings

    from lpgen import own_policy
    from lpgen.cli import main

    from .test_own_policy import for_moto

    previous = moto_settings.INITIAL_NO_AUTH_ACTION_COUNT
    enforce = lambda endpoint, on: requests.post(f"{endpoint}/moto-api/reset-auth",
                                                 data=b"0" if on else b"inf", timeout=10)
    with moto_server() as endpoint:
        try:
            requests.post(f"{endpoint}/moto-api/static/athena/query-results", timeout=10,
                          json={"results": [athena_pages(athena_rows)]}).raise_for_status()
            iam = seed("iam", endpoint)
            iam.create_user(UserName="lpgen-runner")
            key = iam.create_access_key(UserName="lpgen-runner")["AccessKey"]
            env = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
            results = {}
            for command in ("mine (Athena source)", "mine (CloudTrail Lake source)"):
                enforce(endpoint, False)
                iam.put_user_policy(UserName="lpgen-runner", PolicyName="lpgen", PolicyDocument=json.dumps(
                    for_moto(own_policy.policy(command, {"WorkGroup": "primary"}))))
                enforce(endpoint, True)
                results[command] = CliRunner().invoke(main, [
                    "mine", "athena:trail.cloudtrail", "--until", "2026-11-10", "--endpoint-url", endpoint,
                    "--store", str(tmp_path / f"{len(results)}.db")], env=env)
        finally:
            requests.post(f"{endpoint}/moto-api/reset-auth", data=str(previous).encode(), timeout=10)
    allowed, refused = results.values()
    assert allowed.exit_code == 0, allowed.output
    # moto answers this JSON API's denial in XML, which botocore shows raw: the code is in it
    assert refused.exit_code == 1 and "warning: athena:trail.cloudtrail: Athena: " in refused.output
    assert "AccessDenied" in refused.output and "Traceback" not in refused.output


GOOD_ROW = {"kind": "usage", "principal": "arn:aws:iam::1:role/r", "source": "s3.amazonaws.com", "name": "GetObject",
            "error_class": "ok", "region": "eu-west-1", "events": "1", "first_seen": "2026-11-02T00:00:00Z",
            "last_seen": "2026-11-02T00:00:00Z"}


@pytest.mark.parametrize("row, reason", [
    ({"kind": "usage", "principal": "p", "events": "1"}, "ValueError('a usage row without source, name"),
    ({**GOOD_ROW, "samples": "[not json"}, "DecodeError("),
    ({**GOOD_ROW, "events": "many"}, "ValueError(\"invalid literal"),
], ids=["missing-columns", "bad-json", "bad-count"])
def test_rows_of_another_shape_are_one_problem_and_no_ledger_entry(row, reason, tmp_path):
    client, stub = stubbed("cloudtrail")
    stub.add_response("start_query", {"QueryId": LQ})
    stub.add_response("describe_query", {"QueryId": LQ, "QueryStatus": "FINISHED"}, {"QueryId": LQ})
    stub.add_response("get_query_results", {"QueryResultRows": [[{k: v} for k, v in row.items()]]})
    with stub, UsageStore(tmp_path / "s.db") as store:
        report = mine([lake_source(client)], store)
        assert store.inputs() == [] and list(store.usage()) == []
    assert report.problems[0].reason.startswith(f"unexpected query result: {reason}")
