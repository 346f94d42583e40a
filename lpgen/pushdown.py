"""The aggregation query pushed down to Athena or CloudTrail Lake, and its result as store rows.

Pure: :func:`build_sql` writes one query (Trino SQL, which both engines speak) from a
:class:`QuerySpec`; :func:`aggregate` turns the rows it returns into the usage store's
keys and totals, the very ones mining the same events from files gives.

How the query mirrors the local path (``lpgen.normalize`` and ``lpgen.fields``):

- the principal, its type, the error class, the region, ``invokedBy`` and the
  service-initiated rule are CASE expressions written from the same rules and tables;
- the request fields: SQL cannot walk a JSON document of unknown shape, so the query
  groups by the *candidate tokens* of ``requestParameters`` (every ``"key": value``
  whose key could name a resource or decide an action under ``request_fields.json``,
  found by one regular expression, in document order) and returns one representative
  document per group; lpgen then applies :func:`lpgen.fields.event_fields` to it, the
  same code the local path runs. Calls whose candidate tokens are equal give the same
  fields, so the representative speaks for its group; groups that end with equal fields
  are merged here. ``resources[]`` ARNs are grouped as they are, and so are the created
  identifiers in ``responseElements`` of the calls ``created_resources.json`` names;
- the window, ``--account`` and ``--region`` are WHERE clauses, with partition pruning;
  ``--principal`` is a HAVING clause (LIKE patterns, a superset of the glob) re-checked
  exactly here, so coverage still counts every principal's records, as locally;
- coverage (per account, region and day) comes from a second grouping set of the same
  query: one scan.

Every value from the command line is a quoted SQL literal (``'`` doubled) and every
identifier is checked, so no input can change the query's structure.
"""

from __future__ import annotations

import functools
import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import msgspec

from lpgen.data_files import values
from lpgen.fields import created_keys, event_fields
from lpgen.filters import FilterError, Window, principal_matcher
from lpgen.model import DENIED, ERROR, OK
from lpgen.normalize import account_of
from lpgen.store import MAX_SAMPLES, Totals, merge_totals, row_hash

ENGINES = ("athena", "lake")
MAX_ERROR_CODES = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class Partitions:
    """The partition columns of an Athena CloudTrail table; an empty name: not partitioned by it.

    The defaults fit a table with partition projection over
    ``AWSLogs/<account>/CloudTrail/<region>/<yyyy/MM/dd>``: ``account``, ``region`` and
    ``timestamp`` (a string in ``date_format``). A column is used only when its filter is given.
    """

    date: str = "timestamp"
    date_format: str = "%Y/%m/%d"
    region: str = "region"
    account: str = "account"


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySpec:
    engine: str  # athena | lake
    table: str  # DATABASE.TABLE (Athena) or an event data store id or ARN (Lake)
    windows: tuple[Window, ...] = (Window(),)  # OR-ed time ranges (a re-run asks only for what is new)
    accounts: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    principals: tuple[str, ...] = ()
    partitions: Partitions = field(default_factory=Partitions)
    dedupe: bool = True  # drop events delivered twice (costs a shuffle by eventID, not bytes scanned)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise FilterError(f"engine {self.engine!r}: expected one of {', '.join(ENGINES)}")
        table_name(self.engine, self.table)  # fail early on a bad name
        for account in self.accounts:
            if not re.fullmatch(r"\d{12}", account):
                raise FilterError(f"--account {account!r} is not a 12-digit account id")
        if not self.windows:
            raise FilterError("a query needs at least one time range")


# -- quoting --------------------------------------------------------------------


def literal(text: str) -> str:
    """A SQL string literal: the only way any user value enters a query."""
    if "\x00" in text:
        raise FilterError(f"{text!r}: NUL characters cannot be queried")
    return "'" + text.replace("'", "''") + "'"


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_STORE_ID = re.compile(r"(?:arn:[\w-]+:cloudtrail:[a-z0-9-]+:\d{12}:eventdatastore/)?([A-Za-z0-9-]{1,128})")


def identifier(name: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise FilterError(f"{name!r} is not a table or column name (letters, digits, _ and -)")
    return f'"{name}"'


def table_name(engine: str, table: str) -> str:
    """The FROM clause's name: ``"db"."table"`` for Athena, the event data store id for Lake."""
    if engine == "lake":
        m = _STORE_ID.fullmatch(table)
        if not m:
            raise FilterError(f"{table!r} is not an event data store id or ARN")
        return m[1]
    database, dot, name = table.partition(".")
    if not dot:
        raise FilterError(f"{table!r}: expected DATABASE.TABLE")
    return f"{identifier(database)}.{identifier(name)}"


def like_pattern(glob: str) -> str:
    """A LIKE pattern (escape ``\\``) matching at least what the glob matches.

    ``*`` → ``%``, ``?`` and a class such as ``[ab]`` or ``[!0-9]`` → ``_`` (any one character);
    lpgen re-checks each row with the exact glob.
    """
    out, i = [], 0
    while i < len(glob):
        ch = glob[i]
        end = -1
        if ch == "[":  # where fnmatch ends the class: a ] right after [ or [! is part of it
            j = i + 2 if glob[i + 1:i + 2] == "!" else i + 1
            end = glob.find("]", j + 1 if glob[j:j + 1] == "]" else j)
        if end != -1:
            out.append("_")
            i = end + 1
            continue
        out.append("\\" + ch if ch in "%_\\" else "%" if ch == "*" else "_" if ch == "?" else ch)
        i += 1
    return "".join(out)


# -- the request-field candidates -------------------------------------------------


@functools.cache
def candidate_regex() -> str:
    """One regular expression for every ``"key": value`` that ``request_fields`` could keep.

    Keys are matched case-insensitively, as ``lpgen.fields`` does; quotes may be escaped
    (Lake's ``requestParameters`` map holds nested documents as JSON text). Values: a JSON
    string, a nested-escaped string, an array of scalars, a scalar, or the start of an object.
    """
    name = "request_fields.json"
    exact = list(values(name, "identifier_keys")) + list(values(name, "facts")) + list(values(name, "top_level_keys"))
    exact += list(values(name, "paired_facts").values()) + list(values(name, "role_values"))
    suffixes = "|".join(re.escape(s) for s in values(name, "identifier_suffixes"))
    keys = "|".join([f'[^"\\\\]*(?:{suffixes})'] + sorted({re.escape(k) for k in exact}))
    # an object or array of objects: only its opening and first character, which tell empty from not
    # (a fact such as 'tags' is kept as present, whatever it holds)
    value = rf'(?:{_STRING}|{_ARRAY}|true|false|null|-?[0-9][0-9.eE+-]*|[\[{{]\s*[^\s])'
    return f'(?i)\\\\?"(?:{keys})\\\\?"\\s*:\\s*{value}'


#: A JSON string; or a JSON string inside another one (Lake's maps hold nested documents as text),
#: where its quotes are ``\"`` and its escapes ``\\"``, ``\\\\`` or ``\\n``. Both exact, never lazy:
#: a value with quotes or backslashes is one token, whole.
_STRING = r'(?:"(?:[^"\\]|\\.)*"|\\"(?:[^"\\]|\\\\(?:\\["\\]|[^"\\]))*\\")'
#: An array of scalars, its strings in either form.
_ARRAY = rf'\[(?:{_STRING}|[^\[\]{{}}"\\])*\]'


@functools.cache
def created_regex() -> str:
    """Every ``"key": "string"`` of ``responseElements`` that ``lpgen.fields.created_fields`` could keep.

    Created identifiers do not depend on where they sit in the response, so calls whose
    matches are equal have equal created fields.
    """
    keys = sorted({k for ks in values("created_resources.json", "calls").values() for k in ks})
    return f'\\\\?"(?:{"|".join(re.escape(k) for k in keys)})\\\\?"\\s*:\\s*{_STRING}'


def _creating_calls() -> str:
    """A condition true for the calls ``created_resources.json`` names (versioned Lambda and CloudFront names too)."""
    exact, prefixed = [], []
    for call in sorted(values("created_resources.json", "calls")):
        source, name = call.split(" ", 1)
        exact.append(literal(call))
        if source in ("lambda.amazonaws.com", "cloudfront.amazonaws.com"):  # CreateFunction20150331
            prefixed.append(f"(eventsource = {literal(source)} AND eventname LIKE {literal(like_pattern(name) + '%')}"
                            " ESCAPE '\\')")
    return " OR ".join([f"eventsource || ' ' || eventname IN ({', '.join(exact)})", *prefixed])


# -- the query ----------------------------------------------------------------------


def _principal_rules(provider: str) -> list[tuple[str, str, str]]:
    """(condition, principal, type) in the order ``lpgen.normalize.resolve_principal`` tries them."""
    partition = ("CASE WHEN awsregion LIKE 'cn-%' THEN 'aws-cn' WHEN awsregion LIKE 'us-gov-%' THEN 'aws-us-gov'"
                 " WHEN awsregion LIKE 'us-iso-%' THEN 'aws-iso' WHEN awsregion LIKE 'us-isob-%' THEN 'aws-iso-b'"
                 " ELSE 'aws' END")
    ui, issuer = "useridentity", "useridentity.sessioncontext.sessionissuer.arn"
    assumed = r"'^arn:([\w-]+):sts::(\d+):assumed-role/([^/]+)/'"
    federated = r"'^arn:[\w-]+:sts::\d+:federated-user/'"
    kind = f"{ui}.type"
    set_ = lambda column: f"coalesce({column}, '') <> ''"
    return [
        (f"{kind} = 'AWSService'", f"'service:' || coalesce(nullif({ui}.invokedby, ''), 'unknown')", "service"),
        ("eventtype = 'AwsServiceEvent'", f"'service:' || coalesce(nullif({ui}.invokedby, ''), eventsource)",
         "service"),
        (f"{ui} IS NULL", "'unknown'", "unknown"),
        (f"{kind} = 'AssumedRole' AND {issuer} LIKE '%:role/%'", issuer, "role"),
        (f"{kind} = 'AssumedRole' AND regexp_like(coalesce({ui}.arn, ''), {assumed})",
         " || ".join(["'arn:'", f"regexp_extract({ui}.arn, {assumed}, 1)", "':iam::'",
                      f"regexp_extract({ui}.arn, {assumed}, 2)", "':role/'", f"regexp_extract({ui}.arn, {assumed}, 3)"]),
         "role"),
        (f"{kind} = 'IAMUser' AND {set_(ui + '.arn')}", f"{ui}.arn", "user"),
        (f"{kind} = 'IAMUser' AND {set_(ui + '.accountid')} AND {set_(ui + '.username')}",
         f"'arn:' || {partition} || ':iam::' || {ui}.accountid || ':user/' || {ui}.username", "user"),
        (f"{kind} = 'Root' AND {set_(ui + '.arn')}", f"{ui}.arn", "root"),
        (f"{kind} = 'Root' AND {set_(ui + '.accountid')}", f"'arn:' || {partition} || ':iam::' || {ui}.accountid || ':root'",
         "root"),
        (f"{kind} = 'FederatedUser' AND {issuer} LIKE '%:user/%'", issuer, "user"),
        (f"{kind} = 'FederatedUser' AND regexp_like(coalesce({ui}.arn, ''), {federated})", f"{ui}.arn",
         "federated-user"),
        (f"{kind} = 'AWSAccount' AND {set_(ui + '.accountid')}",
         f"'arn:' || {partition} || ':iam::' || {ui}.accountid || ':root'", "account"),
        (f"{kind} = 'WebIdentityUser'", f"'web-identity:' || coalesce({provider}, 'unknown')", "webidentity"),
        (f"{kind} = 'SAMLUser'", f"'saml:' || coalesce({provider}, 'unknown')", "saml"),
        (set_(ui + ".arn"), f"{ui}.arn", "unknown"),
    ]


def _case(rules: list[tuple[str, str, str]], pick: int, otherwise: str) -> str:
    whens = "\n".join(f"      WHEN {rule[0]} THEN {rule[pick] if pick == 1 else literal(rule[2])}" for rule in rules)
    return f"CASE\n{whens}\n      ELSE {otherwise}\n    END"


def _provider(engine: str) -> str:
    """Who vouched for a web-identity or SAML caller.

    Lake has ``useridentity.identityprovider``; Athena's standard table has not, so the
    provider comes from ``webidfederationdata`` or, for OIDC, from the principal id
    (``<provider ARN>:<audience>:<subject>``).
    """
    if engine == "lake":
        return "nullif(useridentity.identityprovider, '')"
    oidc = r"'^(arn:[\w-]+:iam::\d+:oidc-provider/[^:]+)'"
    return ("coalesce(nullif(useridentity.sessioncontext.webidfederationdata.federatedprovider, ''),"
            f" CASE WHEN regexp_like(coalesce(useridentity.principalid, ''), {oidc})"
            f" THEN regexp_extract(useridentity.principalid, {oidc}, 1) END)")


def _day_bounds(window: Window) -> tuple[date | None, date | None]:
    """Delivery days that can hold the window's events (a day's slack each side, as the S3 source)."""
    first = date.fromisoformat(window.since[:10]) - timedelta(days=1) if window.since else None
    last = date.fromisoformat(window.until[:10]) + timedelta(days=1) if window.until else None
    return first, last


def _time_conditions(spec: QuerySpec) -> list[str]:
    ranges = []
    for window in spec.windows:
        parts = []
        for bound, op in ((window.since, ">="), (window.until, "<=")):
            if bound is None:
                continue
            if spec.engine == "lake":  # a timestamp, perhaps with a fraction: since <= t < until + 1 s
                later = timedelta(seconds=1 if op == "<=" else 0)
                moment = datetime.strptime(bound, "%Y-%m-%dT%H:%M:%SZ") + later
                parts.append(f"eventtime {op.rstrip('=') if later else op} TIMESTAMP "
                             f"{literal(moment.strftime('%Y-%m-%d %H:%M:%S'))}")
            else:
                parts.append(f"eventtime {op} {literal(bound)}")
        column = spec.partitions.date
        if spec.engine == "athena" and column:
            first, last = _day_bounds(window)
            fmt = spec.partitions.date_format
            if first is not None:
                parts.insert(0, f"{identifier(column)} >= {literal(first.strftime(fmt))}")
            if last is not None:
                parts.insert(1 if first else 0, f"{identifier(column)} <= {literal(last.strftime(fmt))}")
        if parts:
            ranges.append("(" + " AND ".join(parts) + ")")
        else:
            return []  # one range without bounds: every time
    return ["(" + " OR ".join(ranges) + ")"] if ranges else []


def _in(column: str, items: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(literal(i) for i in sorted(set(items)))})"


def where_conditions(spec: QuerySpec) -> list[str]:
    """The WHERE clause: records lpgen can use, the window, accounts and regions (with partitions)."""
    # the records mining keeps: an API call with a time (others are problems there, skipped here)
    conditions = ["coalesce(eventsource, '') <> ''", "coalesce(eventname, '') <> ''", "eventtime IS NOT NULL"]
    conditions += _time_conditions(spec)
    if spec.accounts:
        if spec.engine == "athena" and spec.partitions.account:
            conditions.append(_in(identifier(spec.partitions.account), spec.accounts))
        conditions.append(_in("recipientaccountid", spec.accounts))
    if spec.regions:
        regions = set(spec.regions) | {"us-east-1"}  # global services log there, as the S3 source reads it
        if spec.engine == "athena" and spec.partitions.region:
            conditions.append(_in(identifier(spec.partitions.region), regions))
        conditions.append(_in("awsregion", regions))
    return conditions


def _principal_having(principals: tuple[str, ...]) -> str | None:
    if not principals:
        return None
    tests = []
    for glob in principals:
        pattern = like_pattern(glob)
        for form in (pattern, "%/" + pattern, "%:" + pattern):
            tests.append(f"principal LIKE {literal(form)} ESCAPE '\\'")
    return "grouping(principal) = 1 OR " + " OR ".join(tests)


def _unique(events: str) -> str:
    """The events without the second copy of any event delivered twice (an organisation trail and an
    account trail in one table): usage counts it once, coverage (records seen) twice, as mining files
    does. Records without an eventID are all kept."""
    return f"""(
  SELECT * FROM (
    SELECT *,
      row_number() OVER (PARTITION BY eventid ORDER BY event_time) AS copy,
      CASE WHEN eventid IS NULL THEN 1 ELSE count(*) OVER (PARTITION BY eventid) END AS copies
    FROM {textwrap.indent(events, "    ").lstrip()}) AS numbered
  WHERE copy = 1 OR eventid IS NULL
) AS unique_events"""


def build_sql(spec: QuerySpec) -> str:
    """The aggregation query for ``spec``, in Trino SQL (Athena engine 3, CloudTrail Lake)."""
    lake = spec.engine == "lake"
    rules = _principal_rules(_provider(spec.engine))
    denied = ", ".join(literal(c) for c in sorted(values("error_codes.json", "denied")))
    parameters = "json_format(CAST(requestparameters AS JSON))" if lake else "requestparameters"
    response = (f"CASE WHEN {_creating_calls()} THEN "
                f"{'json_format(CAST(responseelements AS JSON))' if lake else 'responseelements'} END")
    event_time = "date_format(eventtime, '%Y-%m-%dT%H:%i:%sZ')" if lake else "eventtime"
    resource = "ARRAY[r.arn, r.arnprefix]" if lake else "ARRAY[r.arn]"
    where = "\n  AND ".join(where_conditions(spec))
    # Subqueries rather than WITH, and no comment before SELECT: CloudTrail Lake takes SELECT statements.
    events = f"""(
  SELECT
    {_case(rules, 1, "'unknown:' || coalesce(nullif(useridentity.type, ''), 'no-type') || ':' || "
                     "coalesce(useridentity.principalid, '')")} AS principal,
    {_case(rules, 2, "'unknown'")} AS principal_type,
    eventsource AS source,
    eventname AS name,
    CASE WHEN coalesce(errorcode, '') = '' THEN {literal(OK)}
         WHEN errorcode IN ({denied}) THEN {literal(DENIED)} ELSE {literal(ERROR)} END AS error_class,
    coalesce(nullif(awsregion, ''), 'unknown') AS region,
    CASE WHEN useridentity.type = 'AWSService' OR eventtype = 'AwsServiceEvent' THEN ''
         ELSE coalesce(useridentity.invokedby, '') END AS invoked_by,
    coalesce(nullif(recipientaccountid, ''), nullif(useridentity.accountid, ''), 'unknown') AS account,
    {event_time} AS event_time,
    eventid,
    errorcode,
    eventcategory AS category,
    {parameters} AS parameters,
    regexp_extract_all(coalesce({parameters}, ''), {literal(candidate_regex())}) AS parameter_key,
    transform(resources, r -> {resource}) AS resource_key,
    {response} AS response,
    regexp_extract_all(coalesce({response}, ''), {literal(created_regex())}) AS response_key,
    substr({event_time}, 1, 10) AS day
  FROM {table_name(spec.engine, spec.table)}
  WHERE {where}
) AS events"""
    having = _principal_having(spec.principals)
    return f"""SELECT
  CASE WHEN grouping(principal) = 0 THEN 'usage' ELSE 'coverage' END AS kind,
  principal, min(principal_type) AS principal_type, source, name, error_class, region, invoked_by,
  min(account) AS principal_account,
  min(parameters) AS parameters,
  min(response) AS response,
  json_format(CAST(resource_key AS JSON)) AS resources,
  count(*) AS events,
  {"sum(copies)" if spec.dedupe else "count(*)"} AS records,
  min(event_time) AS first_seen,
  max(event_time) AS last_seen,
  min(category) AS category,
  json_format(CAST(array_agg(DISTINCT errorcode) AS JSON)) AS error_codes,
  json_format(CAST(min(eventid, {MAX_SAMPLES}) AS JSON)) AS samples,
  account, day
FROM {_unique(events) if spec.dedupe else events}
GROUP BY GROUPING SETS (
  (principal, source, name, error_class, region, invoked_by, parameter_key, resource_key, response_key),
  (account, region, day)
){f'''
HAVING {having}''' if having else ""}
"""


# -- the result, as store rows --------------------------------------------------------


@dataclass(slots=True)
class Aggregate:
    """What a query returned, in the shapes :meth:`lpgen.store.UsageStore.write_batch` takes."""

    keys: dict[int, tuple] = field(default_factory=dict)
    usage: dict[int, Totals] = field(default_factory=dict)
    principals: dict[str, tuple[str, str]] = field(default_factory=dict)
    coverage: dict[tuple[str, str, str], list] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(t[0] for t in self.usage.values())

    @property
    def records(self) -> int:
        return sum(c[0] for c in self.coverage.values())

    def span(self) -> tuple[str | None, str | None]:
        firsts = [t[1] for t in self.usage.values()]
        lasts = [t[2] for t in self.usage.values()]
        return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def _json_list(text: str | None) -> list:
    if not text:
        return []
    value = msgspec.json.decode(text)
    return value if isinstance(value, list) else []


def _lake_document(text: str) -> bytes:
    """Lake's ``map<string,string>`` (request parameters, response elements) as the document CloudTrail
    wrote: nested JSON and booleans restored."""
    flat = msgspec.json.decode(text)
    if not isinstance(flat, dict):
        return b"null"
    document = {}
    for key, value in flat.items():
        if isinstance(value, str) and value[:1] in ("{", "["):
            try:
                value = msgspec.json.decode(value)
            except msgspec.DecodeError:
                pass
        elif value in ("true", "false"):
            value = value == "true"
        document[key] = value
    return msgspec.json.encode(document)


def _fields(engine: str, row: dict[str, str | None]) -> str:
    """The store's fields of a result row, computed by the code the local path runs."""
    def document(text: str | None) -> bytes:
        if not text:
            return b"null"
        return _lake_document(text) if engine == "lake" else text.encode()

    arns = []
    for entry in _json_list(row.get("resources")):
        if isinstance(entry, list) and entry:
            item = {"ARN": entry[0]}
            if len(entry) > 1 and entry[1]:
                item["ARNPrefix"] = entry[1]
            arns.append(item)
    fields = event_fields(document(row.get("parameters")), msgspec.json.encode(arns) if arns else b"null",
                          document(row.get("response")), created_keys(row.get("source") or "", row.get("name") or ""))
    return msgspec.json.encode(fields).decode()


_REQUIRED = ("principal", "source", "name", "error_class", "region", "first_seen", "last_seen")


def aggregate(rows: Iterable[dict[str, str | None]], *, engine: str, principals: tuple[str, ...] = ()) -> Aggregate:
    """Store rows from the query's result rows (column name → text, as both APIs return them; Lake leaves
    NULL columns out)."""
    out = Aggregate()
    wanted = principal_matcher(principals)
    for row in rows:
        if row.get("kind") == "coverage":  # one row per account, region and day: the query grouped them
            key = (row.get("account") or "unknown", row.get("region") or "unknown", row.get("day") or "")
            records = row.get("records") or row.get("events") or 0
            out.coverage[key] = [int(records), row.get("first_seen"), row.get("last_seen")]
            continue
        missing = [c for c in _REQUIRED if not row.get(c)]
        if missing:  # not what lpgen's query returns: say so rather than store half a row
            raise ValueError(f"a usage row without {', '.join(missing)}")
        principal = row["principal"]
        if wanted is not None and not wanted(principal):
            continue
        key = (principal, row.get("source"), row.get("name"), row.get("error_class"), row.get("region"),
               row.get("invoked_by") or "", _fields(engine, row))
        codes = sorted({c for c in _json_list(row.get("error_codes")) if c})[:MAX_ERROR_CODES]
        samples = sorted({s for s in _json_list(row.get("samples")) if s})[:MAX_SAMPLES]
        totals = [int(row.get("events") or 0), row.get("first_seen"), row.get("last_seen"), row.get("category") or None,
                  codes, samples]
        h = row_hash(key)
        mine = out.usage.get(h)
        if mine is None:
            out.usage[h], out.keys[h] = totals, key
        else:  # groups the query kept apart (finer candidate tokens) that end with equal fields
            merge_totals(mine, totals)
        account = account_of(principal, row.get("principal_account") or "unknown")
        out.principals.setdefault(principal, (row.get("principal_type") or "unknown", account))
    return out
