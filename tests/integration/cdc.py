"""Log-based (CDC) replication with ``pipelinewise-tap-postgres`` 2.1.0: data and helpers.

Two tables with the same columns, one per replica identity:

* ``accounts``: ``REPLICA IDENTITY DEFAULT`` (the primary key): a delete reaches the tap
  with the key only, so its RECORD holds the key and ``_sdc_deleted_at`` and nothing else.
* ``ledger``: ``REPLICA IDENTITY FULL``: a delete carries every column of the old row.

:data:`CHANGES` is what happens between the first sync (a full copy) and the second (read
from the WAL through wal2json), one transaction per item, in commit order: keys updated
twice in separate transactions, deletes, a delete then a re-insert of the same key, an
update then a delete, an insert then a delete, inserts, several changes of one key inside
one transaction, ``numeric(12,2)`` values such as ``111.44`` and plain ``numeric`` values
wider than a double, ``bigint`` keys above 2^53, NULL ``text[]`` and jsonb, timestamps
around a daylight saving change. The last item changes one row only, so that a rerun from
the final STATE (whose ``lsn`` points one change back) resends a harmless change.

:func:`apply_changes` runs them one by one and remembers each key's last known row, so a
test knows what a deleted row looked like when it was deleted.
"""

from __future__ import annotations

import decimal
import json
import typing as t

import seed

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from harness import Database

#: Table -> replica identity.
TABLES: dict[str, str] = {"accounts": "DEFAULT", "ledger": "FULL"}
KEY = "id"
TIMESTAMP_COLUMNS = frozenset({"updated_at", "created_naive"})
DATE_COLUMNS = frozenset({"day"})
NUMERIC_COLUMNS = frozenset({"balance", "amount"})
#: What the tap adds to every LOG_BASED stream's schema (and every log RECORD).
DELETED_AT = "_sdc_deleted_at"

BIG_KEY = 9007199254740993  # 2^53 + 1: not a double
MAX_KEY = 9223372036854775807  # bigint's maximum

_COLUMNS = """
    id bigint PRIMARY KEY,
    name text,
    balance numeric(12, 2),
    amount numeric,
    ratio double precision,
    tags text[],
    doc jsonb,
    active boolean,
    updated_at timestamptz,
    created_naive timestamp,
    day date
"""

SCHEMA_SQL = "".join(
    f"CREATE TABLE {table} ({_COLUMNS});\nALTER TABLE {table} REPLICA IDENTITY {identity};\n"
    for table, identity in TABLES.items()
)

_SEED_ROWS = f"""
  (1, 'plain', 10.50, 1.5, 0.1, '{{a,b}}', '{{"n": 1}}', true,
   '2024-01-01 00:00:01+00', '2024-01-01 00:00:01', '2024-01-01'),
  (2, 'arrays to be nulled', 0.01, 1E-9, -1.5e300, '{{a,NULL,"b c"}}', '{{"k": [1, null]}}', false,
   '2024-01-01 00:00:02+00', '1999-12-31 23:59:59.999999', '1999-12-31'),
  (3, 'updated twice', 111.43, 12345678901234567890.123456789, 3.141592653589793, '{{x}}', '{{}}',
   true, '2024-01-01 00:00:03.5+00', '2024-02-29 23:59:59.123456', '2024-02-29'),
  (4, 'untouched', -2341.62, -98765432109876543210.98765432109876543210, 2.5, NULL, NULL, NULL,
   '2024-01-01 00:00:04+00', NULL, NULL),
  (5, 'deleted', 5.55, 5.5, 5.5, '{{NULL}}', '{{"wide": 12345678901234567890.123456789}}', true,
   '2024-01-01 00:00:05+00', '2024-01-01 00:00:05', '2024-01-05'),
  (6, 'deleted then re-inserted', 6.66, 6.000006, 6.5, '{{six}}', '[6]', false,
   '2024-01-01 00:00:06+00', '2024-01-01 00:00:06', '2024-01-06'),
  (7, 'updated then deleted', 7.77, 7, 7.5, '{{}}', '"seven"', true,
   '2024-01-01 00:00:07+00', '2024-01-01 00:00:07', '2024-01-07'),
  (8, 'last change', 8.88, 8.08, 8.5, '{{eight}}', 'null', true,
   '2024-01-01 00:00:08+00', '2024-01-01 00:00:08', '2024-01-08'),
  ({BIG_KEY}, 'key above 2^53', 0.99, 0.5, 0.25, '{{big}}', '{{"big": {BIG_KEY}}}', true,
   '2024-01-01 00:00:09+00', '2024-01-01 00:00:09', '2024-01-09'),
  ({MAX_KEY}, 'max bigint, deleted', 1.00, 1, 1, NULL, NULL, false,
   '2024-01-01 00:00:10+00', '2024-01-01 00:00:10', '2024-01-10')
"""

SEED_SQL = "".join(f"INSERT INTO {table} VALUES {_SEED_ROWS};\n" for table in TABLES)

#: The value the issue is about: ``numeric(12,2)`` 111.44 arrives as the double's expansion.
NUMERIC_12_2 = "111.44"
#: Beyond a double: arrives as ``98765432109876543488``.
WIDE_NUMERIC = "98765432109876543210.000000000001"


def _changes_of(table: str) -> list[str]:
    return [
        # One key updated twice, in separate transactions.
        (
            f"UPDATE {table} SET balance = {NUMERIC_12_2}, name = 'first update',"
            " updated_at = '2024-03-10 06:59:59.999999+00' WHERE id = 3"
        ),
        (
            f"UPDATE {table} SET balance = 0.07, amount = {WIDE_NUMERIC}, name = 'second update',"
            " updated_at = '2024-03-10 07:00:00+00', ratio = 0.30000000000000004 WHERE id = 3"
        ),
        # NULL text[] and jsonb.
        f"UPDATE {table} SET tags = NULL, doc = NULL, name = 'nulled' WHERE id = 2",
        # A delete.
        f"DELETE FROM {table} WHERE id = 5",
        # A delete, then the same key inserted again (another transaction).
        f"DELETE FROM {table} WHERE id = 6",
        (
            f"INSERT INTO {table} VALUES (6, 're-inserted', 66.60, 0.000000000000000000001, 6.25,"
            " '{again,NULL}', '{\"again\": true}', true, '2024-11-03 05:30:00+00',"
            " '2024-11-03 01:30:00', '2024-11-03')"
        ),
        # An update, then a delete.
        f"UPDATE {table} SET name = 'updated, then deleted', balance = 77.70 WHERE id = 7",
        f"DELETE FROM {table} WHERE id = 7",
        # Inserts (one with NULL array and numbers the tap damages).
        (
            f"INSERT INTO {table} VALUES (11, 'inserted', {NUMERIC_12_2}, {WIDE_NUMERIC}, 1e-300,"
            " NULL, '{\"n\": 0.1}', NULL, '2024-03-10 07:30:00+00', '2024-03-10 02:30:00',"
            " '2024-03-10')"
        ),
        f"INSERT INTO {table} (id, name) VALUES (13, 'inserted, then deleted')",
        f"DELETE FROM {table} WHERE id = 13",
        # Keys above 2^53.
        f"UPDATE {table} SET balance = 9999999999.99, name = 'big key updated' WHERE id = {BIG_KEY}",
        f"DELETE FROM {table} WHERE id = {MAX_KEY}",
        # Several changes of one key in one transaction.
        (
            f"BEGIN; INSERT INTO {table} (id, name, balance)"
            " VALUES (12, 'inserted in a transaction', 1.10);"
            f" UPDATE {table} SET name = 'updated in the same transaction', balance = 1.20,"
            " tags = '{}' WHERE id = 12; COMMIT"
        ),
    ]


#: Each item is one transaction; the two tables' changes are interleaved.
CHANGES: list[str] = [
    change
    for pair in zip(*(_changes_of(table) for table in TABLES), strict=True)
    for change in pair
] + [
    # The last change: one row, so the rerun from the final STATE resends only it.
    "UPDATE ledger SET name = 'the very last change', balance = 888.88 WHERE id = 8",
]


def slot_name(database: str) -> str:
    """The replication slot pipelinewise-tap-postgres looks for (no ``tap_id`` configured)."""
    return f"pipelinewise_{database}".lower()


def create_slot(db: Database) -> None:
    """Create the tap's wal2json slot in ``db`` (before the first sync, as its README says)."""
    db.execute(f"SELECT pg_create_logical_replication_slot('{slot_name(db.name)}', 'wal2json')")


def drop_slot(db: Database) -> None:
    """Drop the slot (if a tap still reads it, this fails: so would ``DROP DATABASE``)."""
    db.server.admin_psql(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        f"WHERE slot_name = '{slot_name(db.name)}'"
    )


def read_rows(db: Database, table: str) -> dict[int, dict[str, t.Any]]:
    """The table's rows by key, exactly (non-integers as ``Decimal``)."""
    return {row[KEY]: row for row in seed.read_rows(db.server, db.name, table)}


def apply_changes(
    db: Database,
    changes: Sequence[str],
    last_known: dict[str, dict[int, dict[str, t.Any]]],
) -> None:
    """Run each change as its own transaction; update each key's last known row.

    ``last_known[table][key]`` ends as the row as it last existed in the database (for a
    deleted key: as it was when it was deleted).
    """
    for change in changes:
        db.execute(change + ";")
        for table in TABLES:
            last_known.setdefault(table, {}).update(read_rows(db, table))


def tap_records(lines: Sequence[str] | t.Iterable[str]) -> list[dict[str, t.Any]]:
    """The Singer messages of a tap output, numbers exactly as written (``Decimal``)."""
    return [json.loads(line, parse_float=decimal.Decimal) for line in lines if line.strip()]


def as_double(value: object) -> object:
    """``value`` with every number made a double (what a float round trip leaves)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float | decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: as_double(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_double(v) for v in value]
    return value


def normalize(column: str, value: object) -> object:
    """One comparable form: timestamps as a UTC instant, dates as ``YYYY-MM-DD``."""
    if column in TIMESTAMP_COLUMNS:
        return seed.normalize_timestamp(value)
    if column in DATE_COLUMNS:
        return seed.normalize_date(value)
    return value


def same(a: object, b: object) -> bool:
    """Exactly equal as JSON values (``1 == 1.0 == Decimal('1.00')``)."""
    return seed.canonical(a) == seed.canonical(b)


def differences(
    table: str,
    expected: Mapping[int, Mapping[str, t.Any]],
    actual: Sequence[Mapping[str, t.Any]],
    columns: Sequence[str],
    sent: Mapping[int, Mapping[str, t.Any]],
) -> list[str]:
    """How the emulator's rows differ from the expected ones, by key.

    ``_sdc_deleted_at`` must be set exactly where the expected row has it set. Where the
    tap itself damaged a value (its last RECORD of that key, in ``sent``, holds another
    value, equal to the expected one only through a double, nested jsonb numbers included),
    the emulator must hold exactly what the tap sent: not the database's value, not a
    rounded one.
    """
    problems: list[str] = []
    have: dict[t.Any, Mapping[str, t.Any]] = {}
    for row in actual:
        if row.get(KEY) in have:
            problems.append(f"{table}: key {row.get(KEY)} is loaded twice")
        have[row.get(KEY)] = row
        extra = set(row) - set(columns)
        if extra:
            problems.append(f"{table}: row {row.get(KEY)} has unexpected columns {sorted(extra)}")
    for key in sorted(expected.keys() - have.keys()):
        problems.append(f"{table}: missing row {key}: {dict(expected[key])!r}")
    for key in sorted(have.keys() - expected.keys(), key=str):
        problems.append(f"{table}: unexpected row {key!r}: {dict(have[key])!r}")
    for key in sorted(expected.keys() & have.keys()):
        for column in columns:
            problem = _column_problem(column, expected[key], have[key], sent.get(key, {}))
            if problem:
                problems.append(f"{table}: row {key}: {problem}")
    return problems


def _column_problem(
    column: str,
    want: Mapping[str, t.Any],
    got: Mapping[str, t.Any],
    sent: Mapping[str, t.Any],
) -> str | None:
    """What is wrong with one column of one row (see :func:`differences`), or None."""
    if column == DELETED_AT:
        deleted = want.get(DELETED_AT) is not None
        if deleted == (got.get(DELETED_AT) is not None):
            return None
        return f"{DELETED_AT} is {got.get(DELETED_AT)!r}, expected " + (
            "a time" if deleted else "null"
        )
    w, g = normalize(column, want.get(column)), normalize(column, got.get(column))
    if column in sent:
        tap_value = normalize(column, sent[column])
        if not same(w, tap_value):
            # The tap changed the value on its way: the emulator must hold exactly what
            # the tap sent, and that may only be the value through a double.
            if not same(as_double(w), as_double(tap_value)):
                return (
                    f"column {column}: the tap sent {tap_value!r} for {w!r} "
                    "(not a float rounding: the test's premise changed)"
                )
            w = tap_value
    if same(w, g):
        return None
    return (
        f"column {column}: expected {w!r} (database or last known: {want.get(column)!r}), "
        f"emulator {g!r}"
    )
