"""The emulator's SQLite database: one integration schema, one SQL table per ``table_name``.

SQL text is built only from :func:`quote`-d identifiers and constants; every value is a bound
parameter.

Layout:
    * Each ``table_name`` is a SQL table of exactly that name. Every top-level property seen in
      a record becomes a column (created with the table, or added by ``ALTER TABLE``), declared
      without a type, so values keep the storage class they are given: ``str`` as TEXT, ``int``
      within int64 as INTEGER, anything else (booleans, non-integer or huge numbers, objects,
      arrays) as a BLOB holding its exact JSON text, Decimals digit for digit. Reading decodes
      by storage class, so every value round-trips exactly; NULL is None.
    * System columns: ``_sdc_sequence``, ``_sdc_table_version`` (NULL when the batch had
      none), ``_sdc_received_at`` (RFC 3339) and, for tables with a key,
      ``_sdc_primary_key`` (canonical JSON array of the key values, UNIQUE). A record property
      whose name matches a system column (ASCII case-insensitively) is ignored: the system
      value wins.
    * Column and table names are compared ASCII case-insensitively by SQLite; a property that
      differs from an existing column only by case is refused (:class:`BatchRejectedError`),
      as is a table name that differs from an existing table's only by case.
    * Metadata tables: ``_emulator_meta`` (the schema name), ``_emulator_tables`` (key names,
      active table version, creation time) and ``_emulator_batches`` (one row per accepted
      batch: time, table, messages, bytes, stale messages ignored, sequence ties). Statistics
      are sums over the batch log.

Rules applied per message, in order, each batch in ONE transaction:
    * With key names, per key the row with the higher ``(table_version, sequence)`` wins (a
      missing table version ranks below any version): higher replaces the whole row, lower is
      ignored (``stale_ignored``), equal replaces it and counts a ``tie`` (the sender's error).
    * Without key names, every upsert appends a row.
    * Upserts whose table version (or lack of one) ranks below the table's active version are
      ignored as stale.
    * ``activate_version`` with table version N deletes the rows whose version is NULL or below
      N and makes N the active version; activating a version older than the active one is
      ignored as stale.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import typing as t
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import simplejson

from target_stitch_import.emulator.validation import ACTIVATE_VERSION, canonical_json
from target_stitch_import.errors import StitchImportError

if t.TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

    from target_stitch_import.emulator.validation import Batch, Message

DEFAULT_SCHEMA = "import_api"
SEQUENCE = "_sdc_sequence"
TABLE_VERSION = "_sdc_table_version"
RECEIVED_AT = "_sdc_received_at"
PRIMARY_KEY = "_sdc_primary_key"
SYSTEM_COLUMNS = (SEQUENCE, TABLE_VERSION, RECEIVED_AT, PRIMARY_KEY)
#: Columns a table may have (SQLite's default SQLITE_MAX_COLUMN).
MAX_COLUMNS = 2000

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_KEYS_PER_QUERY = 500
_ROWID_ALIASES = ("rowid", "_rowid_", "oid")
_COUNTERS = ("messages", "bytes", "stale_ignored", "ties")
_TOTALS = "count(*), " + ", ".join(f"coalesce(sum({name}), 0)" for name in _COUNTERS)
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SYSTEM_FOLDED = frozenset(name.translate(_ASCII_FOLD) for name in SYSTEM_COLUMNS)
_CREATE_METADATA = (
    "CREATE TABLE IF NOT EXISTS _emulator_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    (
        "CREATE TABLE IF NOT EXISTS _emulator_tables (name TEXT PRIMARY KEY, "
        "key_names TEXT NOT NULL, active_version INTEGER, created_at TEXT NOT NULL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS _emulator_batches (id INTEGER PRIMARY KEY, "
        "received_at TEXT NOT NULL, table_name TEXT NOT NULL, messages INTEGER NOT NULL, "
        "bytes INTEGER NOT NULL, stale_ignored INTEGER NOT NULL, ties INTEGER NOT NULL)"
    ),
)


class StorageError(StitchImportError):
    """The emulator database cannot be used as asked."""


class UnknownTableError(StorageError):
    """No table of that name was ever loaded."""


class BatchRejectedError(StorageError):
    """A valid batch conflicts with the stored table; the emulator answers 400 with its text."""


@dataclass(frozen=True)
class BatchOutcome:
    """What applying one batch did.

    Attributes:
        stale_ignored: Messages ignored because newer data was already stored.
        ties: Upserts whose (table version, sequence) equalled the stored row's.
    """

    stale_ignored: int
    ties: int


def quote(identifier: str) -> str:
    """Quote an SQL identifier (any characters but NUL)."""
    return '"' + identifier.replace('"', '""') + '"'


def fold(name: str) -> str:
    """Fold a name the way SQLite compares identifiers (ASCII letters only)."""
    return name.translate(_ASCII_FOLD)


def encode_value(value: object) -> object:
    """Return the SQLite value that stores a parsed JSON value losslessly."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    text = simplejson.dumps(value, use_decimal=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def decode_value(value: object) -> object:
    """Return the JSON value a stored SQLite value stands for (inverse of :func:`encode_value`)."""
    if isinstance(value, bytes):
        return json.loads(value, parse_float=Decimal)
    return value


def _rank(version: int | None, sequence: int) -> tuple[bool, int, int]:
    return (version is not None, version or 0, sequence)


def _primary_key(message: Message, key_names: t.Sequence[str]) -> str:
    """Return the canonical JSON array of a record's key values."""
    data = t.cast("dict[str, t.Any]", message.data)
    values = [data[name] for name in key_names]
    try:
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    except TypeError:  # Decimals: written digit for digit
        return canonical_json(values)


def _new_columns(columns: t.Mapping[str, str], batch: Batch) -> list[str]:
    """Return the batch's properties that need a new column, in first-seen order.

    Args:
        columns: The table's columns by folded name.
        batch: The batch.

    Raises:
        BatchRejectedError: A property differs from a column (or another property) by case,
            or the table would have more than :data:`MAX_COLUMNS` columns.
    """
    known = dict(columns)
    new: list[str] = []
    for message in batch.messages:
        for name in message.data or ():
            folded = fold(name)
            existing = known.get(folded)
            if folded in _SYSTEM_FOLDED or existing == name:
                continue
            if existing is not None:
                msg = (
                    f"property {name} differs from the column {existing} of table "
                    f"{batch.table_name} only by case; column names are case-insensitive"
                )
                raise BatchRejectedError(msg)
            known[folded] = name
            new.append(name)
    total = len(known) + (0 if columns else len(SYSTEM_COLUMNS))
    if new and total > MAX_COLUMNS:
        msg = (
            f"table {batch.table_name} would have {total} columns, more than SQLite's {MAX_COLUMNS}"
        )
        raise BatchRejectedError(msg)
    return new


@dataclass
class _Table:
    """A table's stored metadata while a batch is applied."""

    name: str
    key_names: tuple[str, ...]
    active_version: int | None
    columns: dict[str, str]  # folded name -> column name


class Storage:
    """The emulator database: writes batches, and reads tables, rows and statistics.

    Thread-safe: one connection, used under a lock. Use as a context manager or call
    :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = False,
        schema_name: str | None = None,
    ) -> None:
        """Open (or with ``create``, create) an emulator database.

        Args:
            path: The SQLite file.
            create: Create the file and its metadata tables when missing.
            schema_name: The integration schema's name; stored on creation (default
                ``import_api``). When given, it must match the stored one.

        Raises:
            StorageError: The file is missing (without ``create``), is not an emulator
                database, or holds another schema.
        """
        self.path = Path(path)
        if not create and not self.path.is_file():
            msg = f"no emulator database at {self.path}"
            raise StorageError(msg)
        try:
            self._conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=30,
            )
        except sqlite3.Error as exc:
            msg = f"cannot open the emulator database {self.path}: {exc}"
            raise StorageError(msg) from None
        self._lock = threading.Lock()
        try:
            self.schema_name = self._prepare(create=create, schema_name=schema_name)
        except BaseException:
            self._conn.close()
            raise

    def _prepare(self, *, create: bool, schema_name: str | None) -> str:
        conn = self._conn
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            if create:
                conn.execute("PRAGMA journal_mode = WAL")
                for statement in _CREATE_METADATA:
                    conn.execute(statement)
                conn.execute(
                    "INSERT OR IGNORE INTO _emulator_meta (name, value) VALUES ('schema', ?)",
                    (schema_name or DEFAULT_SCHEMA,),
                )
            conn.execute("PRAGMA synchronous = FULL")
            row = conn.execute("SELECT value FROM _emulator_meta WHERE name = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            msg = f"{self.path} is not an emulator database: {exc}"
            raise StorageError(msg) from None
        if row is None:
            msg = f"{self.path} is not an emulator database (no schema name)"
            raise StorageError(msg)
        stored = str(row[0])
        if schema_name is not None and schema_name != stored:
            msg = f"the database {self.path} holds the schema {stored!r}, not {schema_name!r}"
            raise StorageError(msg)
        return stored

    def __enter__(self) -> Self:
        """Return the storage itself."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the storage."""
        self.close()

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._conn.close()

    # Writing

    def apply(self, batch: Batch, *, received_at: str, body_bytes: int) -> BatchOutcome:
        """Apply a validated batch in one transaction, committed when this returns.

        Args:
            batch: The validated batch.
            received_at: When the request arrived (RFC 3339), stored with each row.
            body_bytes: The request body's size, for the batch log.

        Raises:
            BatchRejectedError: The batch conflicts with the stored table; nothing is stored.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                outcome = self._apply(batch, received_at, body_bytes)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return outcome

    def check(self, batch: Batch) -> None:
        """Check a validated batch against the stored tables without storing anything.

        Raises:
            BatchRejectedError: The batch conflicts with the stored table.
        """
        with self._lock:
            table = self._existing_table(batch)
            _new_columns(table.columns if table else {}, batch)

    def _apply(self, batch: Batch, received_at: str, body_bytes: int) -> BatchOutcome:
        table = self._existing_table(batch)
        new_columns = _new_columns(table.columns if table else {}, batch)
        if table is None:
            table = self._create_table(batch, received_at, new_columns)
            new_columns = []
        for name in new_columns:
            try:
                self._conn.execute(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(name)}")
            except sqlite3.OperationalError as exc:  # a build with a lower column limit
                if "too many columns" not in str(exc):
                    raise
                msg = f"table {table.name} would have more columns than SQLite allows"
                raise BatchRejectedError(msg) from None
            table.columns[fold(name)] = name
        stale = 0
        ties = 0
        upserts: list[Message] = []
        for message in (*batch.messages, None):
            if message is not None and message.action != ACTIVATE_VERSION:
                upserts.append(message)
                continue
            run_stale, run_ties = self._upsert_run(table, upserts, batch.table_version, received_at)
            stale, ties, upserts = stale + run_stale, ties + run_ties, []
            if message is not None:
                stale += self._activate(table, t.cast("int", batch.table_version))
        self._conn.execute(
            "INSERT INTO _emulator_batches (received_at, table_name, messages, bytes, "
            "stale_ignored, ties) VALUES (?, ?, ?, ?, ?, ?)",
            (received_at, batch.table_name, len(batch.messages), body_bytes, stale, ties),
        )
        return BatchOutcome(stale_ignored=stale, ties=ties)

    def _existing_table(self, batch: Batch) -> _Table | None:
        """Return the batch's stored table, or None when it is new.

        Raises:
            BatchRejectedError: Other key names, or a new name that differs only by case.
        """
        name = batch.table_name
        row = self._conn.execute(
            "SELECT key_names, active_version FROM _emulator_tables WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            for (other,) in self._conn.execute("SELECT name FROM _emulator_tables"):
                if fold(other) == fold(name):
                    msg = (
                        f"table_name {name} differs from the existing table {other} only by "
                        "case; table names are case-insensitive"
                    )
                    raise BatchRejectedError(msg)
            return None
        stored_keys = tuple(json.loads(row[0]))
        if stored_keys != batch.key_names:
            msg = (
                f"key_names {json.dumps(list(batch.key_names), ensure_ascii=False)} do not "
                f"match the primary key {json.dumps(list(stored_keys), ensure_ascii=False)} "
                f"of table {name}"
            )
            raise BatchRejectedError(msg)
        return _Table(name, stored_keys, row[1], self._columns(name))

    def _create_table(self, batch: Batch, received_at: str, columns: list[str]) -> _Table:
        name = batch.table_name
        definitions = [f"{quote(SEQUENCE)} INTEGER", f"{quote(TABLE_VERSION)} INTEGER"]
        definitions.append(f"{quote(RECEIVED_AT)} TEXT")
        if batch.key_names:
            definitions.append(f"{quote(PRIMARY_KEY)} TEXT UNIQUE")
        definitions.extend(map(quote, columns))
        self._conn.execute(f"CREATE TABLE {quote(name)} ({', '.join(definitions)})")
        self._conn.execute(
            "INSERT INTO _emulator_tables (name, key_names, active_version, created_at) "
            "VALUES (?, ?, NULL, ?)",
            (name, json.dumps(list(batch.key_names)), received_at),
        )
        return _Table(name, batch.key_names, None, self._columns(name))

    def _columns(self, table: str) -> dict[str, str]:
        rows = self._conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        return {fold(row[1]): row[1] for row in rows}

    def _activate(self, table: _Table, version: int) -> int:
        """Activate ``version``; return 1 when it is stale, else 0."""
        if table.active_version is not None and version < table.active_version:
            return 1
        self._conn.execute(
            f"DELETE FROM {quote(table.name)} WHERE {quote(TABLE_VERSION)} IS NULL "  # noqa: S608
            f"OR {quote(TABLE_VERSION)} < ?",
            (version,),
        )
        self._conn.execute(
            "UPDATE _emulator_tables SET active_version = ? WHERE name = ?",
            (version, table.name),
        )
        table.active_version = version
        return 0

    def _upsert_run(
        self,
        table: _Table,
        messages: list[Message],
        version: int | None,
        received_at: str,
    ) -> tuple[int, int]:
        """Apply consecutive upserts (as if one by one); return (stale ignored, ties)."""
        if _rank(version, 0) < _rank(table.active_version, 0):
            return len(messages), 0
        if not table.key_names:
            self._write(table, [(message, None) for message in messages], version, received_at)
            return 0, 0
        keys = [_primary_key(message, table.key_names) for message in messages]
        ranks = self._stored_ranks(table, set(keys))
        winners: dict[str, Message] = {}
        stale = 0
        ties = 0
        for key, message in zip(keys, messages, strict=True):
            new = _rank(version, message.sequence)
            old = ranks.get(key)
            if old is not None and new < old:
                stale += 1
                continue
            ties += old == new
            ranks[key] = new
            winners.pop(key, None)  # a replaced row moves to the end, as REPLACE does
            winners[key] = message
        self._write(
            table, [(message, key) for key, message in winners.items()], version, received_at
        )
        return stale, ties

    def _stored_ranks(self, table: _Table, keys: set[str]) -> dict[str, tuple[bool, int, int]]:
        ranks: dict[str, tuple[bool, int, int]] = {}
        pending = list(keys)
        for start in range(0, len(pending), _KEYS_PER_QUERY):
            chunk = pending[start : start + _KEYS_PER_QUERY]
            rows = self._conn.execute(
                f"SELECT {quote(PRIMARY_KEY)}, {quote(TABLE_VERSION)}, {quote(SEQUENCE)} "  # noqa: S608
                f"FROM {quote(table.name)} WHERE {quote(PRIMARY_KEY)} IN "
                f"({', '.join('?' * len(chunk))})",
                chunk,
            )
            ranks.update((key, _rank(version, sequence)) for key, version, sequence in rows)
        return ranks

    def _write(
        self,
        table: _Table,
        rows: list[tuple[Message, str | None]],
        version: int | None,
        received_at: str,
    ) -> None:
        """Insert rows in order (replacing those with the same primary key)."""
        runs: list[tuple[tuple[str, ...], list[list[object]]]] = []
        for message, key in rows:
            data = t.cast("dict[str, t.Any]", message.data)
            names = tuple(name for name in data if fold(name) not in _SYSTEM_FOLDED)
            values: list[object] = [message.sequence, version, received_at]
            if key is not None:
                values.append(key)
            values.extend(encode_value(data[name]) for name in names)
            if not runs or runs[-1][0] != names:
                runs.append((names, []))
            runs[-1][1].append(values)
        verb = "INSERT OR REPLACE" if table.key_names else "INSERT"
        system = [SEQUENCE, TABLE_VERSION, RECEIVED_AT]
        if table.key_names:
            system.append(PRIMARY_KEY)
        statements: dict[tuple[str, ...], str] = {}
        for names, values_list in runs:
            statement = statements.get(names)
            if statement is None:
                columns = [*system, *names]
                statement = (
                    f"{verb} INTO {quote(table.name)} ({', '.join(map(quote, columns))}) "
                    f"VALUES ({', '.join('?' * len(columns))})"
                )
                statements[names] = statement
            self._conn.executemany(statement, values_list)

    # Reading

    def tables(self) -> dict[str, int]:
        """Return each loaded table's name and row count, by name."""
        with self._lock:
            names = [row[0] for row in self._conn.execute("SELECT name FROM _emulator_tables")]
            return {
                name: self._conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]  # noqa: S608
                for name in sorted(names)
            }

    def rows(self, table: str, *, system: bool = False) -> list[dict[str, t.Any]]:
        """Return a table's rows in insertion order, values decoded exactly.

        Args:
            table: The table name.
            system: Include the ``_sdc_*`` system columns.

        Raises:
            UnknownTableError: No such table was loaded.
        """
        with self._lock:
            self._require_table(table)
            # A data column may be named rowid: order by an alias of the rowid it does not hide.
            columns = self._columns(table)
            alias = next((name for name in _ROWID_ALIASES if name not in columns), None)
            order = f" ORDER BY {alias}" if alias else ""
            cursor = self._conn.execute(f"SELECT * FROM {quote(table)}{order}")  # noqa: S608
            names = [column[0] for column in cursor.description]
            keep = [i for i, name in enumerate(names) if system or name not in SYSTEM_COLUMNS]
            return [{names[i]: decode_value(row[i]) for i in keep} for row in cursor]

    def table_info(self, table: str) -> dict[str, t.Any]:
        """Return a table's key names, active version and creation time.

        Raises:
            UnknownTableError: No such table was loaded.
        """
        with self._lock:
            self._require_table(table)
            key_names, active, created = self._conn.execute(
                "SELECT key_names, active_version, created_at FROM _emulator_tables WHERE name = ?",
                (table,),
            ).fetchone()
        return {"key_names": json.loads(key_names), "active_version": active, "created_at": created}

    def stats(self) -> dict[str, t.Any]:
        """Return totals of accepted batches, overall and per table.

        Returns:
            ``{"batches", "messages", "bytes", "stale_ignored", "ties": int, "tables": {name:
            {"rows", "batches", "messages", "bytes", "stale_ignored", "ties": int}}}``.
        """
        counts = self.tables()
        with self._lock:
            total = self._conn.execute(f"SELECT {_TOTALS} FROM _emulator_batches").fetchone()  # noqa: S608
            per_table = self._conn.execute(
                f"SELECT table_name, {_TOTALS} FROM _emulator_batches GROUP BY table_name",  # noqa: S608
            ).fetchall()
        fields = ("batches", *_COUNTERS)
        tables: dict[str, dict[str, int]] = {
            name: {"rows": rows, **dict.fromkeys(fields, 0)} for name, rows in counts.items()
        }
        for name, *values in per_table:
            tables.setdefault(name, {"rows": 0}).update(zip(fields, values, strict=True))
        return {**dict(zip(fields, total, strict=True)), "tables": tables}

    def _require_table(self, table: str) -> None:
        found = self._conn.execute(
            "SELECT 1 FROM _emulator_tables WHERE name = ?",
            (table,),
        ).fetchone()
        if found is None:
            msg = f"no table {table!r} in the emulator database"
            raise UnknownTableError(msg)
