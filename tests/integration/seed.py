"""The seeded database and how its rows are read back exactly.

The tables hold what breaks naive loaders: NULL array elements, nested ``jsonb`` with
nulls, numerics wider than a double (``12345678901234567890.123456789``, ``1E-9``,
``-2341.62`` in a ``numeric(12,2)``), timestamps with and without time zone, dates, and
a table without a primary key that holds two identical rows.

Rows are read with ``row_to_json`` through ``psql`` and parsed with ``Decimal`` for
every non-integer, so numbers stay exact; :func:`normalize_row` puts database rows and
emulator rows in one comparable form (timestamps as one RFC 3339 UTC string).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import typing as t
from collections import Counter

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from pg import PgServer

#: The tables, their primary keys, and the columns that hold timestamps or dates.
ITEMS = "items"
EVENTS = "events_nopk"
KEYS: dict[str, tuple[str, ...]] = {ITEMS: ("id",), EVENTS: ()}
TIMESTAMP_COLUMNS: dict[str, frozenset[str]] = {
    ITEMS: frozenset({"updated_at", "created_naive", "created_tz"}),
    EVENTS: frozenset({"happened_at"}),
}
DATE_COLUMNS: dict[str, frozenset[str]] = {ITEMS: frozenset({"day"}), EVENTS: frozenset()}

#: How many generated rows ``items`` gets besides the hand-written ones.
GENERATED_ITEMS = 120

SCHEMA_SQL = """
CREATE TABLE items (
    id integer PRIMARY KEY,
    updated_at timestamptz NOT NULL,
    name text,
    tags text[],
    scores integer[],
    doc jsonb,
    price numeric(12, 2),
    amount numeric,
    ratio double precision,
    flag boolean,
    created_naive timestamp,
    created_tz timestamptz,
    day date
);
CREATE TABLE events_nopk (
    kind text,
    payload jsonb,
    qty numeric(10, 3),
    happened_at timestamp
);
"""

SEED_SQL = f"""
INSERT INTO items VALUES
  (1, '2024-01-01 00:00:01+00', 'nulls in arrays', '{{a,NULL,"b c"}}', '{{1,NULL,3}}',
   '{{"a": {{"b": [1, null, {{"c": "x"}}]}}, "n": null, "s": "é\\u00e9",
    "wide": 12345678901234567890.123456789, "tiny": 1E-30, "neg": -2341.62}}',
   -2341.62, 12345678901234567890.123456789, 0.1, true,
   '2024-02-29 23:59:59.123456', '2024-03-10 02:30:00.5+05:30', '2024-02-29'),
  (2, '2024-01-01 00:00:02+00', NULL, '{{}}', '{{}}', '[]', 0.01, 1E-9, -1.5e300, false,
   '1999-12-31 23:59:59', '1999-12-31 23:59:59.999999-08', '1970-01-01'),
  (3, '2024-01-01 00:00:02+00', 'same updated_at as 2', NULL, '{{NULL}}', 'null', NULL, NULL,
   NULL, NULL, NULL, NULL, NULL),
  (4, '2024-01-01 00:00:04+00', 'all nulls in array', '{{NULL,NULL}}', NULL,
   '{{"deep": {{"deeper": {{"deepest": [[null], {{}}]}}}}}}', 9999999999.99, -0.000000000000000001,
   3.141592653589793, true, '2024-06-01 12:00:00', '2024-06-01 12:00:00+00', '2000-01-01'),
  (5, '2024-01-01 00:00:05+00', 'quote '' and "dq" and \\\\ backslash', '{{"x,y","{{}}"}}',
   '{{-2147483648,2147483647}}', '{{"k": "v", "list": [1, 2.5, "three", false]}}', -0.01,
   -98765432109876543210.98765432109876543210, 1e-10, false, '2024-01-01 00:00:00.000001',
   '2024-01-01 00:00:00.000001+00', '2024-12-31');
INSERT INTO items
SELECT 100 + g,
       timestamptz '2024-02-01 00:00:00+00' + g * interval '1 minute',
       'row ' || g,
       ARRAY['t' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'u' END],
       ARRAY[g, NULL],
       jsonb_build_object('g', g, 'half', g / 2.0, 'nested', jsonb_build_object('odd', g % 2 = 1, 'none', NULL)),
       (g * 1.01)::numeric(12, 2),
       (g::numeric * 1000000000000.000000001),
       g / 4.0,
       g % 2 = 0,
       timestamp '2023-05-05 05:05:05.5' + g * interval '1 hour 1 second',
       timestamptz '2023-05-05 05:05:05.25+02' + g * interval '1 day',
       date '2023-01-01' + g
FROM generate_series(1, {GENERATED_ITEMS}) AS g;
INSERT INTO events_nopk VALUES
  ('signup', '{{"user": 1, "tags": [null, "a"]}}', 1.5, '2024-01-01 10:00:00'),
  ('signup', '{{"user": 1, "tags": [null, "a"]}}', 1.5, '2024-01-01 10:00:00'),
  ('refund', NULL, -2341.625, '2024-01-02 11:30:00.25'),
  (NULL, '{{}}', NULL, NULL);
"""

#: Rows the later phase updates (bumping ``updated_at`` past the daylight saving change,
#: so the bookmark's UTC offset changes too) and the row it inserts.
UPDATED_IDS = (1, 4, 110, 150)
INSERTED_ID = 1000
UPDATE_SQL = f"""
UPDATE items SET name = 'updated ' || id, tags = ARRAY[NULL, 'new'], doc = '{{"v": 2, "x": [null]}}',
                 amount = coalesce(amount, 0) * 2 + 0.000000001, price = -2341.62,
                 updated_at = timestamptz '2024-07-01 00:00:00+00' + id * interval '1 second'
 WHERE id IN {UPDATED_IDS};
INSERT INTO items (id, updated_at, name, tags, price, amount, created_tz)
VALUES ({INSERTED_ID}, '2024-07-02 00:00:00+00', 'inserted later', '{{NULL}}', 42.42,
        55555555555555555555.5555555555, '2024-07-02 01:02:03.456789+00');
"""

#: Changes only a full-table sync can see: deleted rows (in both tables).
DELETE_SQL = """
DELETE FROM items WHERE id IN (2, 105);
DELETE FROM events_nopk WHERE kind = 'refund';
INSERT INTO events_nopk VALUES ('late', '[1, null]', 0.001, '2024-07-01 00:00:00');
"""

#: The row whose ``updated_at`` is the older bookmark of the replay test: rows from the
#: 30th generated row on are replayed (unchanged), and so are the updated ones.
OLDER_BOOKMARK_ID = 130


def read_rows(server: PgServer, database: str, table: str) -> list[dict[str, t.Any]]:
    """Return a table's rows as ``row_to_json`` sees them; non-integers as ``Decimal``."""
    sql = f"SELECT row_to_json(t) FROM {table} AS t"
    out = server.psql(sql, database=database)
    return [
        json.loads(line, parse_float=decimal.Decimal) for line in out.splitlines() if line.strip()
    ]


def read_columns(server: PgServer, database: str, table: str) -> list[str]:
    """Return a table's column names in order."""
    sql = (
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = 'public' AND table_name = '{table}' ORDER BY ordinal_position"
    )
    return [line for line in server.psql(sql, database=database).splitlines() if line]


def normalize_timestamp(value: object) -> object:
    """Return one RFC 3339 UTC form (``2024-01-01T00:00:00.000000Z``) of a timestamp text.

    Naive timestamps (``timestamp without time zone``) are read as UTC, as taps send them.
    Anything that is not a timestamp text is returned as it is.
    """
    if not isinstance(value, str):
        return value
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def normalize_date(value: object) -> object:
    """Return ``YYYY-MM-DD`` for a date or a midnight timestamp text (taps send either)."""
    if not isinstance(value, str):
        return value
    try:
        return dt.datetime.fromisoformat(value).date().isoformat()
    except ValueError:
        return value


def normalize_row(
    table: str,
    row: Mapping[str, t.Any],
    columns: Iterable[str],
    json_text: Iterable[str] = (),
) -> dict[str, t.Any]:
    """Return ``row`` restricted to ``columns`` with timestamps and dates in one form.

    Args:
        table: The table (says which columns hold timestamps and dates).
        row: A database or emulator row.
        columns: The columns compared; those the row lacks become ``None``.
        json_text: Columns that hold JSON as text (singer-io's ``jsonb``), parsed here.
    """
    stamps = TIMESTAMP_COLUMNS.get(table, frozenset())
    dates = DATE_COLUMNS.get(table, frozenset())
    texts = frozenset(json_text)
    out: dict[str, t.Any] = {}
    for name in columns:
        value = row.get(name)
        if name in texts and isinstance(value, str):
            value = json.loads(value, parse_float=decimal.Decimal)
        if name in stamps:
            value = normalize_timestamp(value)
        elif name in dates:
            value = normalize_date(value)
        out[name] = value
    return out


def canonical(value: object) -> str:
    """A text form equal for equal JSON values (``1 == 1.0 == Decimal('1.00')``)."""
    return json.dumps(_exactly(value), sort_keys=True, ensure_ascii=False)


def _exactly(value: object) -> object:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | decimal.Decimal):
        number = (
            decimal.Decimal(value) if not isinstance(value, float) else decimal.Decimal(repr(value))
        )
        text = (
            format(number.normalize(), "f")
            if number == number.to_integral_value()
            else str(number.normalize())
        )
        return {"#number": text}
    if isinstance(value, dict):
        return {str(k): _exactly(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exactly(v) for v in value]
    return {"#other": repr(value)}


def keyed_differences(
    table: str,
    expected: Iterable[Mapping[str, t.Any]],
    actual: Iterable[Mapping[str, t.Any]],
    columns: Sequence[str],
    json_text: Iterable[str] = (),
) -> list[str]:
    """Describe how ``actual`` rows differ from ``expected`` ones, matched by primary key.

    Returns:
        One line per missing, unexpected, duplicated or different row; empty when equal.
    """
    key = KEYS[table]
    texts = tuple(json_text)
    want: dict[str, dict[str, t.Any]] = {}
    for row in expected:
        want[canonical([row.get(k) for k in key])] = normalize_row(table, row, columns, texts)
    have: dict[str, dict[str, t.Any]] = {}
    problems: list[str] = []
    for row in actual:
        extra = set(row) - set(columns)
        if extra:
            problems.append(f"row {dict(row)!r} has columns the table lacks: {sorted(extra)}")
        ident = canonical([row.get(k) for k in key])
        if ident in have:
            problems.append(f"key {ident} is loaded twice")
        have[ident] = normalize_row(table, row, columns, texts)
    for ident in sorted(want.keys() - have.keys()):
        problems.append(f"missing row {ident}: {want[ident]!r}")
    for ident in sorted(have.keys() - want.keys()):
        problems.append(f"unexpected row {ident}: {have[ident]!r}")
    for ident in sorted(want.keys() & have.keys()):
        if canonical(want[ident]) != canonical(have[ident]):
            diff = {
                name: (want[ident][name], have[ident][name])
                for name in columns
                if canonical(want[ident][name]) != canonical(have[ident][name])
            }
            problems.append(f"row {ident} differs (database, emulator): {diff!r}")
    return problems


def multiset_differences(
    table: str,
    expected: Iterable[Mapping[str, t.Any]],
    actual: Iterable[Mapping[str, t.Any]],
    columns: Sequence[str],
    *,
    times: int = 1,
    json_text: Iterable[str] = (),
) -> list[str]:
    """Compare a table without key: ``actual`` must hold each expected row ``times`` times.

    Without ``key_names`` Stitch appends: equal rows (and repeated loads of one row) all
    stay, so the comparison counts rows instead of matching them by key.
    """
    texts = tuple(json_text)
    want: Counter[str] = Counter()
    for row in expected:
        want[canonical(normalize_row(table, row, columns, texts))] += times
    have = Counter(canonical(normalize_row(table, row, columns, texts)) for row in actual)
    problems = [f"missing {n} x {row}" for row, n in (want - have).items()]
    problems += [f"unexpected {n} x {row}" for row, n in (have - want).items()]
    return problems
