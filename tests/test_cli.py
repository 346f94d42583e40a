"""The command line: each command's behaviour, exit codes, and that the README stays true."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import networkx as nx
import pytest
from click.testing import CliRunner

from lpgen.cli import main

from .conftest import DEMO, ROOT, log_bytes, make_record, write_log

DEMO_LOGS = str(DEMO / "AWSLogs")


def run(*args: str, input: bytes | None = None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("cli") / "usage.db")
    result = run("mine", DEMO_LOGS, "--store", db, "--workers", "2")
    assert result.exit_code == 0, result.output
    return db


def test_mine_prints_a_summary(demo_db, tmp_path):
    result = run("mine", DEMO_LOGS, "--store", str(tmp_path / "s.db"), "--workers", "1")
    assert result.exit_code == 0
    assert "mined 159 of 159 inputs" in result.output and "14 digest files skipped" in result.output
    assert "2,655 events counted" in result.output


def test_mine_json_summary_is_machine_readable(tmp_path):
    result = run("mine", DEMO_LOGS, "--store", str(tmp_path / "s.db"), "--format", "json")
    data = json.loads(result.output)
    assert data["events"] == 2655 and data["duplicates"] == 0 and data["formats"] == {"cloudtrail-log": 159}


def test_second_mine_reads_nothing(demo_db):
    result = run("mine", DEMO_LOGS, "--store", demo_db)
    assert result.exit_code == 0 and "mined 0 of 159 inputs (159 already mined" in result.output


def test_summary_lists_principals_and_coverage(demo_db):
    out = run("summary", "--store", demo_db).output
    assert "arn:aws:iam::210987654321:role/ci/github-deployer [role]" in out
    assert "210987654321 eu-west-1: 2026-11-02" in out and "210987654321 us-east-1" in out
    data = json.loads(run("summary", "--store", demo_db, "--format", "json").output)
    assert data["totals"]["events"] == 2655
    assert {p["principal"] for p in data["principals"]} >= {"arn:aws:iam::210987654321:user/alice"}


def test_bad_input_warns_with_file_and_record_and_still_mines(tmp_path):
    write_log(tmp_path / "in" / "mixed.json.gz", [make_record(name="A"), {"eventVersion": "1"}, make_record(name="B")])
    (tmp_path / "in" / "notes.json").write_text('{"not": "cloudtrail"}')
    result = CliRunner().invoke(main, ["mine", str(tmp_path / "in"), "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 0
    assert re.search(r"warning: .*mixed\.json\.gz record 1: no eventSource/eventName", result.output)
    assert re.search(r"warning: .*notes\.json: JSON but not CloudTrail", result.output)
    assert "2 events counted" in result.output and "Traceback" not in result.output


def test_strict_exits_non_zero_on_any_problem(tmp_path):
    write_log(tmp_path / "in" / "mixed.json.gz", [make_record(), {"eventVersion": "1"}])
    result = CliRunner().invoke(main, ["mine", str(tmp_path / "in"), "--store", str(tmp_path / "s.db"), "--strict"])
    assert result.exit_code == 1


def test_nothing_readable_exits_non_zero_with_a_message(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "junk.txt").write_text("not a log")
    result = CliRunner().invoke(main, ["mine", str(tmp_path / "in"), "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 1 and "no readable CloudTrail records" in result.output


def test_missing_source_is_reported_not_raised(tmp_path):
    result = CliRunner().invoke(main, ["mine", str(tmp_path / "nope"), "--store", str(tmp_path / "s.db")])
    assert result.exit_code == 1 and "no such file or directory" in result.output


def test_stdin_dash(tmp_path):
    result = run("mine", "-", "--store", str(tmp_path / "s.db"), input=log_bytes([make_record(), make_record()]))
    assert result.exit_code == 0 and "2 events counted" in result.output


def test_bad_since_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(main, ["mine", DEMO_LOGS, "--store", str(tmp_path / "s.db"), "--since", "soon"])
    assert result.exit_code == 1 and "neither an ISO date/time nor an age" in result.output


def test_window_and_principal_options(tmp_path):
    result = run("mine", DEMO_LOGS, "--store", str(tmp_path / "s.db"), "--since", "2026-11-03", "--until",
                 "2026-11-03", "--principal", "orders-api-role-*", "--format", "json")
    data = json.loads(result.output)
    assert data["principals"] == 1 and data["first_event"] >= "2026-11-03T00:00:00Z"
    assert data["last_event"] <= "2026-11-03T23:59:59Z" and data["outside_window"] > 0


def test_summary_without_a_store_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(main, ["summary", "--store", str(tmp_path / "none.db")])
    assert result.exit_code == 1 and "no usage store" in result.output


def test_a_file_that_is_not_a_store_is_a_clean_error(tmp_path):
    (tmp_path / "x.db").write_text("hello")
    result = CliRunner().invoke(main, ["summary", "--store", str(tmp_path / "x.db")])
    assert result.exit_code == 1 and "not a usable lpgen store" in result.output


def test_a_store_of_an_older_schema_is_refused_with_what_to_do(tmp_path):
    """Schema 1 keyed usage rows by BLAKE2b hashes and kept callers in every row; its event-ID hashes
    cannot be compared with today's, so it is not read (or silently mixed) but named."""
    import sqlite3

    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
                      "INSERT INTO meta VALUES ('schema', '1');")
    old.close()
    result = CliRunner().invoke(main, ["summary", "--store", str(tmp_path / "old.db")])
    assert result.exit_code == 1
    assert "has store schema 1" in result.output and "mine the trail again into a new store" in result.output


def test_a_new_store_has_16_kib_pages(demo_db):
    """Long rows (S3 object keys) fill 16 KiB pages with less CPU than SQLite's default 4 KiB. The pragma
    only takes effect before the first table and the switch to WAL, so moving it silently drops it."""
    import sqlite3

    db = sqlite3.connect(demo_db)
    try:
        assert db.execute("PRAGMA page_size").fetchone()[0] == 16384
    finally:
        db.close()


def test_the_usage_rows_view_is_the_flat_form_of_the_store(demo_db):
    """sqlite3 users read aggregates with their caller from one view, as lpgen's own readers do."""
    import sqlite3

    db = sqlite3.connect(demo_db)
    try:
        flat = db.execute("SELECT count(*), sum(count) FROM usage_rows").fetchone()
        raw = db.execute("SELECT count(*), sum(count) FROM usage").fetchone()
        callers = db.execute("SELECT count(*) FROM callers").fetchone()[0]
        orphans = db.execute("SELECT count(*) FROM usage WHERE caller NOT IN (SELECT id FROM callers)").fetchone()[0]
    finally:
        db.close()
    assert flat == raw and raw[0] > callers > 0 and orphans == 0


def test_graph_exports_json_and_graphml(demo_db, tmp_path):
    data = json.loads(run("graph", "--store", demo_db, "--principal", "reports-reader-role-*").output)
    assert data["schema"] == 1
    kinds = {n["kind"] for n in data["nodes"]}
    assert kinds == {"principal", "action", "resource"}
    run("graph", "--store", demo_db, "--format", "graphml", "-o", str(tmp_path / "g.graphml"))
    graph = nx.read_graphml(tmp_path / "g.graphml")
    assert "principal:arn:aws:iam::210987654321:user/alice" in graph


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "lpgen", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("lpgen, version")


# -- docs stay true ---------------------------------------------------------------

README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", README)


def test_readme_opens_with_the_two_set_up_commands():
    first, second = readme_commands()[:2]
    assert README.index(first) < README.index(second) < README.index("##")
    assert "pip install" in first and "lpgen generate fixtures/demo/AWSLogs" in first
    assert "'.[test]'" in second and "pytest" in second


def test_ci_runs_the_readmes_test_command_verbatim():
    assert readme_commands()[1] in (ROOT / ".ci" / "run").read_text()


def test_every_command_has_help_and_is_documented():
    commands = sorted(main.commands)
    for name in commands:
        result = run(name, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output
        assert f"lpgen {name}" in README, f"README does not mention `lpgen {name}`"


@pytest.mark.parametrize("command", ["mine", "report", "who"])
def test_every_option_is_documented(command):
    for param in main.commands[command].params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                assert opt in README, f"README does not document {opt}"


# -- mapping commands ----------------------------------------------------------------


def test_explain_head_object_says_get_object_and_why():
    out = run("explain", "s3.amazonaws.com", "HeadObject").output
    assert "→ s3:GetObject" in out and "why:" in out and "HeadObject" in out
    data = json.loads(run("explain", "s3.amazonaws.com", "HeadObject", "--format", "json").output)
    assert data["actions"] == ["s3:GetObject"] and data["status"] == "used"


def test_explain_scopes_resources_from_params():
    data = json.loads(run("explain", "dynamodb.amazonaws.com", "GetItem", "--param", "tableName=orders",
                          "--region", "eu-west-1", "--account", "111122223333", "--format", "json").output)
    assert data["permissions"][0]["resources"] == ["arn:aws:dynamodb:eu-west-1:111122223333:table/orders"]


def test_explain_rejects_a_param_without_value():
    result = CliRunner().invoke(main, ["explain", "s3.amazonaws.com", "GetObject", "--param", "bucketName"])
    assert result.exit_code == 2 and "PATH=VALUE" in result.output


def test_map_prints_one_line_per_event(tmp_path):
    write_log(tmp_path / "log.json.gz", [make_record(name="GetItem"), make_record(name="Bogus"),
                                         {"eventVersion": "1"}])
    result = CliRunner().invoke(main, ["map", str(tmp_path / "log.json.gz")])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    assert [(x["eventName"], x["status"], x["actions"]) for x in lines] == [
        ("GetItem", "used", ["dynamodb:GetItem"]), ("Bogus", "unknown", [])]
    assert lines[0]["principal"].endswith("orders-api-role") and lines[0]["eventID"]
    assert "record 2" in result.output


def test_graph_by_action_and_by_call(demo_db):
    by_action = json.loads(run("graph", "--store", demo_db, "--principal", "orders-api-role-*").output)
    assert "action:dynamodb:GetItem" in {n["id"] for n in by_action["nodes"]}
    by_call = json.loads(run("graph", "--store", demo_db, "--principal", "orders-api-role-*", "--calls").output)
    assert "call:dynamodb.amazonaws.com:GetItem" in {n["id"] for n in by_call["nodes"]}


def test_readme_explain_example_is_what_lpgen_prints():
    block = re.search(r"```\n\$ (lpgen explain [^\n]+)\n(.+?)```", README, re.S)
    args = block.group(1).split()[1:]
    assert run(*args).output == block.group(2)


def test_generate_mines_sources_first_and_prints_one_document_per_principal(tmp_path):
    result = CliRunner().invoke(main, ["generate", DEMO_LOGS, "--store", str(tmp_path / "s.db"), "--explain"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "arn:aws:iam::210987654321:role/service-role/orders-api-role-p9q8r7" in data
    assert "dynamodb:GetItem: " in result.stderr and "calls" in result.stderr


def test_generate_one_principal_prints_its_document(demo_db):
    data = json.loads(run("generate", "--store", demo_db, "--principal", "notifier-role-*").output)
    assert data["Version"] == "2012-10-17" and data["Statement"]


@pytest.mark.parametrize("fmt", ["sam", "terraform", "cloudformation"])
def test_generate_formats(demo_db, fmt):
    out = run("generate", "--store", demo_db, "--principal", "orders-api-role-*", "--format", fmt).output
    assert "dynamodb:GetItem" in out


def test_generate_without_usage_is_a_clean_error(demo_db):
    result = CliRunner().invoke(main, ["generate", "--store", demo_db, "--principal", "nobody"])
    assert result.exit_code == 1 and "no principal" in result.output



def test_progress_line_on_a_terminal_and_silence_elsewhere(tmp_path):
    import os
    import pty

    master, slave = pty.openpty()
    args = [sys.executable, "-m", "lpgen", "mine", DEMO_LOGS, "--store", str(tmp_path / "t.db"), "--workers", "1"]
    on_tty = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, timeout=120)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    assert on_tty.returncode == 0 and b"events/s" in shown
    piped = subprocess.run([*args[:-4], "--store", str(tmp_path / "p.db")], capture_output=True, timeout=120)
    assert piped.returncode == 0 and b"events/s" not in piped.stderr


OTHER_RULES = "field rules of another lpgen"


@pytest.mark.parametrize("recorded", [
    pytest.param("0123456789abcdef", id="other_rules"),
    pytest.param(None, id="from_before_stores_kept_their_rules"),
])
def test_a_store_mined_under_other_field_rules_is_said_to_be_so(tmp_path, recorded):
    # An older lpgen kept fewer request fields (where a function's code is, its layers...), so the store's
    # aggregates lack what this lpgen maps to permissions, and the ledger will not read those logs again.
    import sqlite3

    store = tmp_path / "usage.db"
    write_log(tmp_path / "logs" / "log.json.gz", [make_record()])
    assert run("mine", str(tmp_path / "logs"), "--store", str(store)).exit_code == 0
    assert "request-field rules" not in run("generate", "--store", str(store)).stderr
    with sqlite3.connect(store) as db:
        if recorded is None:
            db.execute("DELETE FROM meta WHERE key = 'fields'")
        else:
            db.execute("UPDATE meta SET value = ? WHERE key = 'fields'", (recorded,))
    for command in (("generate",), ("summary",), ("mine", str(tmp_path / "logs"))):
        result = run(*command, "--store", str(store))
        assert result.exit_code == 0, result.output
        assert f"warning: {store} was mined by an lpgen with other request-field rules" in result.stderr


def test_an_empty_store_takes_this_lpgens_field_rules_when_it_first_mines(tmp_path):
    import sqlite3

    from lpgen.store import UsageStore

    store = tmp_path / "usage.db"
    with UsageStore(store):
        pass
    with sqlite3.connect(store) as db:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('fields', ?)", (OTHER_RULES,))
    write_log(tmp_path / "logs" / "log.json.gz", [make_record()])
    assert "request-field rules" not in run("mine", str(tmp_path / "logs"), "--store", str(store)).stderr
    assert "request-field rules" not in run("generate", "--store", str(store)).stderr
