"""The emulator's SQLite database: one integration schema, one SQL table per ``table_name``.

SQL text is built only from :func:`quote`-d identifiers and constants; every value is a bound
parameter.

Layout:
    * Each ``table_name`` is a SQL table of exactly that name holding what a Stitch user sees:
      the rows of the table's active version or, for a table whose version was never
      activated, the rows loaded without ``table_version``. Every top-level property seen in a
      record becomes a column (created with the table, or added by ``ALTER TABLE``), declared
      without a type, so values keep the storage class they are given: ``str`` as TEXT, ``int``
      within int64 as INTEGER, anything else (booleans, non-integer or huge numbers, objects,
      arrays) as a BLOB holding its exact JSON text, Decimals digit for digit. Reading decodes
      by storage class, so every value round-trips exactly; NULL is None.
    * Staged versions: rows of a version that is not (yet) active are kept out of sight in a
      SQL table per table and version, ``_emulator_version_<N>_<table_name>`` (see
      :func:`stage_name`), listed in ``_emulator_versions``. A staged table has the visible
      table's columns (added to it as the visible table gains some) plus those of its own
      records, and follows the same rules. It lasts across requests and restarts until its
      version is activated or discarded, so a full-table load may span many batches and runs.
    * System columns: ``_sdc_sequence``, ``_sdc_table_version`` (NULL when the batch had
      none), ``_sdc_received_at`` (RFC 3339) and, for tables with a key,
      ``_sdc_primary_key`` (canonical JSON array of the key values, UNIQUE; equal numbers
      are one key, ``1`` and ``1.0`` or ``0`` and ``-0.0``: see :func:`canonical_number`).
      A record property whose name matches a system column (ASCII case-insensitively) is
      ignored: the system value wins.
    * Column and table names are compared ASCII case-insensitively by SQLite; a property that
      differs from an existing column (of the visible table or any staged version) only by
      case is refused (:class:`BatchRejectedError`), as is a table name that differs from an
      existing table's only by case.
    * Metadata tables: ``_emulator_meta`` (the schema name), ``_emulator_tables`` (key names,
      active table version, creation time), ``_emulator_versions`` (the staged versions: table,
      version, staged table, creation time) and ``_emulator_batches`` (one row per accepted
      batch: time, table, messages, bytes, stale messages ignored, sequence ties). Statistics
      are sums over the batch log.
    * Connect API tables: ``_emulator_sources`` (the sources created through ``/v4``: id,
      schema name, display name, creation time) and ``_emulator_tokens`` (their Import API
      tokens: id, source, creation and revocation times, and only the SHA-256 of the token,
      so nothing stored can be shown or used as a token). Revoked tokens stay, marked, so a
      revoked token stays refused across restarts.

Rules applied per message, in order, each batch in ONE transaction. With ``A`` the table's
active version (None before the first activation) and ``V`` the batch's ``table_version``:
    * Where an upsert goes: with ``V`` equal to ``A``, or with neither, to the visible table;
      with ``V`` above ``A`` (or any ``V`` while ``A`` is None), to the staged version ``V``;
      otherwise (``V`` below ``A``, or no ``V`` once a version is active: a missing version
      ranks below any version) it is ignored as stale (``stale_ignored``).
    * With key names, per key the row with the higher sequence wins: higher replaces the
      whole row, lower is ignored (``stale_ignored``), equal replaces it and counts a ``tie``
      (the sender's error). Without key names, every upsert appends a row.
    * ``activate_version`` with table version ``N`` above ``A`` (or while ``A`` is None):
      the staged rows of ``N`` replace the visible table's rows (none staged: the table is
      emptied), ``N`` becomes the active version and staged versions up to ``N`` are dropped.
      Activating ``A`` again changes nothing; activating a version below ``A`` is ignored as
      stale.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import typing as t
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import simplejson

from target_stitch_import.emulator.validation import ACTIVATE_VERSION
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
#: The start of the names of the SQL tables holding staged versions.
STAGE_PREFIX = "_emulator_version_"
#: Integral key values up to this many digits are written as digits (a JSON integer has at
#: most 4,300 in Python, so an integer and an equal decimal meet).
PLAIN_KEY_DIGITS = 4300

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_KEYS_PER_QUERY = 500
_ROWID_ALIASES = ("rowid", "_rowid_", "oid")
_COUNTERS = ("messages", "bytes", "stale_ignored", "ties")
_TOTALS = "count(*), " + ", ".join(f"coalesce(sum({name}), 0)" for name in _COUNTERS)
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_SYSTEM_FOLDED = frozenset(name.translate(_ASCII_FOLD) for name in SYSTEM_COLUMNS)
_SYSTEM_TYPES = {
    SEQUENCE: "INTEGER",
    TABLE_VERSION: "INTEGER",
    RECEIVED_AT: "TEXT",
    PRIMARY_KEY: "TEXT UNIQUE",
}
_CREATE_VERSIONS = (
    "CREATE TABLE IF NOT EXISTS _emulator_versions (table_name TEXT NOT NULL, "
    "version INTEGER NOT NULL, stage TEXT NOT NULL, created_at TEXT NOT NULL, "
    "PRIMARY KEY (table_name, version))"
)
_CREATE_CONNECT = (
    (
        "CREATE TABLE IF NOT EXISTS _emulator_sources (id INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL, created_at TEXT NOT NULL)"
    ),
    (
        "CREATE TABLE IF NOT EXISTS _emulator_tokens (id INTEGER PRIMARY KEY, "
        "source_id INTEGER NOT NULL REFERENCES _emulator_sources (id), "
        "token_sha256 TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, revoked_at TEXT)"
    ),
)
_CREATE_METADATA = (
    "CREATE TABLE IF NOT EXISTS _emulator_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    (
        "CREATE TABLE IF NOT EXISTS _emulator_tables (name TEXT PRIMARY KEY, "
        "key_names TEXT NOT NULL, active_version INTEGER, created_at TEXT NOT NULL)"
    ),
    _CREATE_VERSIONS,
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


class SourceExistsError(StorageError):
    """A source with that schema name exists; the emulator answers 400 with its text."""


@dataclass(frozen=True)
class Source:
    """A source created through the Connect API.

    Attributes:
        id: Its id.
        name: Its destination schema name (derived from the display name).
        display_name: The name it was given.
        created_at: When it was created (RFC 3339).
    """

    id: int
    name: str
    display_name: str
    created_at: str


def token_digest(token: str) -> str:
    """Return what is stored of an Import API token: the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


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


def stage_name(table: str, version: int) -> str:
    """Return the name of the SQL table holding the staged rows of ``table``'s ``version``."""
    return f"{STAGE_PREFIX}{version}_{table}"


def canonical_number(value: int | Decimal) -> str:
    """Return one text per numeric value: ``1``, ``1.0`` and ``1E+0`` all give ``1``.

    As in a warehouse's numeric column, equal numbers are one key: trailing zeros are
    dropped, ``-0`` is ``0``, and an integral value is written as its digits (up to
    :data:`PLAIN_KEY_DIGITS` of them, as a JSON integer can be; beyond, as ``1E+4400``).
    A fraction is written as :class:`~decimal.Decimal` writes it reduced (``0.5``, ``1E-7``).
    The cost follows the number's digits, never its exponent.
    """
    if isinstance(value, int):
        return str(value)
    if not value:
        return "0"
    sign, digits, exponent = value.as_tuple()
    end = len(digits)
    while digits[end - 1] == 0:
        end -= 1
    exponent = t.cast("int", exponent) + len(digits) - end
    digits = digits[:end]
    if exponent >= 0 and len(digits) + exponent <= PLAIN_KEY_DIGITS:
        return ("-" if sign else "") + "".join(map(str, digits)) + "0" * exponent
    return str(Decimal((sign, digits, exponent)))


def _key_text(value: object) -> str:
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return canonical_number(value)
    return json.dumps(value, ensure_ascii=False)  # str, bool (scalars only: validated)


def _primary_key(message: Message, key_names: t.Sequence[str]) -> str:
    """Return the canonical JSON array of a record's key values (numbers canonical too)."""
    data = t.cast("dict[str, t.Any]", message.data)
    return "[" + ",".join(_key_text(data[name]) for name in key_names) + "]"


def _property_names(batch: Batch) -> list[str]:
    """Return the batch's distinct record properties in first-seen order, system names left out."""
    seen: dict[str, object] = {}
    for message in batch.messages:
        if message.data:
            seen.update(message.data)
    return [name for name in seen if fold(name) not in _SYSTEM_FOLDED]


def _check_columns(columns: t.Mapping[str, str], names: t.Iterable[str], table: str) -> None:
    """Check that a batch's properties fit a table's columns.

    Args:
        columns: The table's columns by folded name (visible and staged), empty when new.
        names: The batch's properties (see :func:`_property_names`).
        table: The table name, for messages.

    Raises:
        BatchRejectedError: A property differs from a column (or another property) by case,
            or the table would have more than :data:`MAX_COLUMNS` columns.
    """
    known = dict(columns)
    added = False
    for name in names:
        folded = fold(name)
        existing = known.get(folded)
        if existing == name:
            continue
        if existing is not None:
            msg = (
                f"property {name} differs from the column {existing} of table "
                f"{table} only by case; column names are case-insensitive"
            )
            raise BatchRejectedError(msg)
        known[folded] = name
        added = True
    total = len(known) + (0 if columns else len(SYSTEM_COLUMNS))
    if added and total > MAX_COLUMNS:
        msg = f"table {table} would have {total} columns, more than SQLite's {MAX_COLUMNS}"
        raise BatchRejectedError(msg)


@dataclass
class _Store:
    """One SQL table holding rows of a table: the visible one or a staged version."""

    name: str
    columns: dict[str, str]  # folded name -> column name, in table order


@dataclass
class _Table:
    """A table's stored metadata while a batch is applied."""

    name: str
    key_names: tuple[str, ...]
    active_version: int | None
    visible: _Store
    staged: dict[int, _Store]  # by version

    def known_columns(self) -> dict[str, str]:
        """Return the columns of the visible table and of every staged version."""
        known = dict(self.visible.columns)
        for store in self.staged.values():
            known.update(store.columns)
        return known


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
        conn.execute(_CREATE_VERSIONS)  # missing from databases made before staged versions
        for statement in _CREATE_CONNECT:  # missing from databases made before the Connect API
            conn.execute(statement)
        self._load_tokens()
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

    # Connect API: sources and their tokens

    def _load_tokens(self) -> None:
        """Read which tokens are live, and whether any was ever created."""
        rows = self._conn.execute("SELECT token_sha256, revoked_at FROM _emulator_tokens")
        live: set[str] = set()
        created = False
        for digest, revoked_at in rows:
            created = True
            if revoked_at is None:
                live.add(digest)
        self._live_tokens = frozenset(live)
        #: Whether a token was ever created through the Connect API (revoked ones count).
        self.tokens_created = created

    def token_is_live(self, token: str) -> bool:
        """Whether ``token`` was created through the Connect API and not revoked.

        Answered from memory (no lock, no query): the set is read when the storage opens
        and kept up to date by :meth:`create_token` and :meth:`revoke_token`.
        """
        return token_digest(token) in self._live_tokens

    def create_source(self, display_name: str, name: str, *, created_at: str) -> Source:
        """Store a new source.

        Raises:
            SourceExistsError: A source with the schema name ``name`` exists.
        """
        with self._lock:
            try:
                cursor = self._conn.execute(
                    "INSERT INTO _emulator_sources (name, display_name, created_at) "
                    "VALUES (?, ?, ?)",
                    (name, display_name, created_at),
                )
            except sqlite3.IntegrityError:
                msg = f"a source with the schema name {name} already exists"
                raise SourceExistsError(msg) from None
        return Source(t.cast("int", cursor.lastrowid), name, display_name, created_at)

    def source(self, source_id: int) -> Source | None:
        """Return the source with this id, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, name, display_name, created_at FROM _emulator_sources WHERE id = ?",
                (source_id,),
            ).fetchone()
        return Source(*row) if row is not None else None

    def create_token(self, source_id: int, token: str, *, created_at: str) -> int:
        """Store a new live token of a source (its SHA-256 only); return its id."""
        digest = token_digest(token)
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO _emulator_tokens (source_id, token_sha256, created_at) "
                "VALUES (?, ?, ?)",
                (source_id, digest, created_at),
            )
            self._live_tokens = self._live_tokens | {digest}
            self.tokens_created = True
        return t.cast("int", cursor.lastrowid)

    def tokens(self, source_id: int) -> list[dict[str, t.Any]]:
        """Return the live tokens of a source: ``[{"id": int, "created_at": str}]`` by id."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, created_at FROM _emulator_tokens "
                "WHERE source_id = ? AND revoked_at IS NULL ORDER BY id",
                (source_id,),
            ).fetchall()
        return [{"id": token_id, "created_at": created_at} for token_id, created_at in rows]

    def revoke_token(self, source_id: int, token_id: int, *, revoked_at: str) -> bool:
        """Revoke a live token of a source for good; False when there is no such live token."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute(
                    "SELECT token_sha256 FROM _emulator_tokens "
                    "WHERE id = ? AND source_id = ? AND revoked_at IS NULL",
                    (token_id, source_id),
                ).fetchone()
                if row is not None:
                    self._conn.execute(
                        "UPDATE _emulator_tokens SET revoked_at = ? WHERE id = ?",
                        (revoked_at, token_id),
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            if row is None:
                return False
            self._live_tokens = self._live_tokens - {row[0]}
        return True

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
            columns = table.known_columns() if table else {}
            _check_columns(columns, _property_names(batch), batch.table_name)

    def _apply(self, batch: Batch, received_at: str, body_bytes: int) -> BatchOutcome:
        names = _property_names(batch)
        table = self._existing_table(batch)
        _check_columns(table.known_columns() if table else {}, names, batch.table_name)
        if table is None:
            # A versioned load shows nothing before its activation, not even its columns.
            columns = names if batch.table_version is None else []
            table = self._create_table(batch, received_at, columns)
        stale = 0
        ties = 0
        upserts: list[Message] = []
        for message in (*batch.messages, None):
            if message is not None and message.action != ACTIVATE_VERSION:
                upserts.append(message)
                continue
            if upserts:
                run_stale, run_ties = self._upsert_run(
                    table, upserts, batch.table_version, names, received_at
                )
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
        """Return the batch's stored table with its staged versions, or None when it is new.

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
        staged = self._conn.execute(
            "SELECT version, stage FROM _emulator_versions WHERE table_name = ?",
            (name,),
        ).fetchall()
        return _Table(
            name,
            stored_keys,
            row[1],
            _Store(name, self._columns(name)),
            {version: _Store(stage, self._columns(stage)) for version, stage in staged},
        )

    def _create_table(self, batch: Batch, received_at: str, columns: list[str]) -> _Table:
        name = batch.table_name
        system = [SEQUENCE, TABLE_VERSION, RECEIVED_AT]
        if batch.key_names:
            system.append(PRIMARY_KEY)
        visible = self._create_store(name, [*system, *columns])
        self._conn.execute(
            "INSERT INTO _emulator_tables (name, key_names, active_version, created_at) "
            "VALUES (?, ?, NULL, ?)",
            (name, json.dumps(list(batch.key_names)), received_at),
        )
        return _Table(name, batch.key_names, None, visible, {})

    def _create_store(self, name: str, columns: list[str]) -> _Store:
        """Create a SQL table with these columns (system ones typed, the others not)."""
        definitions = [
            f"{quote(column)} {_SYSTEM_TYPES[column]}" if column in _SYSTEM_TYPES else quote(column)
            for column in columns
        ]
        self._conn.execute(f"CREATE TABLE {quote(name)} ({', '.join(definitions)})")
        return _Store(name, {fold(column): column for column in columns})

    def _columns(self, table: str) -> dict[str, str]:
        rows = self._conn.execute(f"PRAGMA table_info({quote(table)})").fetchall()
        return {fold(row[1]): row[1] for row in rows}

    def _destination(
        self,
        table: _Table,
        version: int | None,
        names: list[str],
        received_at: str,
    ) -> _Store | None:
        """Return where upserts of ``version`` go (a new staged version is created), or None.

        None means they are stale: older than the active version, or without a version once
        one is active.
        """
        active = table.active_version
        if version == active:
            return table.visible
        if version is None or (active is not None and version < active):
            return None
        store = table.staged.get(version)
        if store is None:
            columns = list(table.visible.columns.values())
            columns += (name for name in names if fold(name) not in table.visible.columns)
            store = self._create_store(stage_name(table.name, version), columns)
            self._conn.execute(
                "INSERT INTO _emulator_versions (table_name, version, stage, created_at) "
                "VALUES (?, ?, ?, ?)",
                (table.name, version, store.name, received_at),
            )
            table.staged[version] = store
        return store

    def _add_columns(self, table: _Table, store: _Store, names: list[str]) -> None:
        """Add the properties ``store`` lacks; the visible table's also go to staged versions.

        Raises:
            BatchRejectedError: SQLite was built with a lower column limit.
        """
        for name in names:
            folded = fold(name)
            if folded in store.columns:
                continue
            targets = [store]
            if store is table.visible:
                targets += (
                    staged for staged in table.staged.values() if folded not in staged.columns
                )
            for target in targets:
                try:
                    self._conn.execute(f"ALTER TABLE {quote(target.name)} ADD COLUMN {quote(name)}")
                except sqlite3.OperationalError as exc:  # a build with a lower column limit
                    if "too many columns" not in str(exc):
                        raise
                    msg = f"table {table.name} would have more columns than SQLite allows"
                    raise BatchRejectedError(msg) from None
                target.columns[folded] = name

    def _activate(self, table: _Table, version: int) -> int:
        """Activate ``version``: its staged rows replace the table's; return 1 when it is stale.

        Returns:
            1 for a version below the active one (nothing changes), else 0; activating the
            active version again changes nothing either.
        """
        active = table.active_version
        if active is not None and version <= active:
            return int(version < active)
        visible = quote(table.name)
        store = table.staged.pop(version, None)
        if store is None:
            self._conn.execute(f"DELETE FROM {visible}")  # noqa: S608
        else:
            self._conn.execute(f"DROP TABLE {visible}")
            self._conn.execute(f"ALTER TABLE {quote(store.name)} RENAME TO {visible}")
            table.visible = _Store(table.name, store.columns)
        for older in [staged for staged in table.staged if staged < version]:
            self._conn.execute(f"DROP TABLE {quote(table.staged.pop(older).name)}")
        self._conn.execute(
            "DELETE FROM _emulator_versions WHERE table_name = ? AND version <= ?",
            (table.name, version),
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
        names: list[str],
        received_at: str,
    ) -> tuple[int, int]:
        """Apply consecutive upserts (as if one by one); return (stale ignored, ties).

        Args:
            table: The table.
            messages: The upserts.
            version: The batch's table version.
            names: The batch's properties (see :func:`_property_names`).
            received_at: When the request arrived.
        """
        store = self._destination(table, version, names, received_at)
        if store is None:
            return len(messages), 0
        self._add_columns(table, store, names)
        if not table.key_names:
            self._write(store, [(message, None) for message in messages], version, received_at)
            return 0, 0
        keys = [_primary_key(message, table.key_names) for message in messages]
        sequences = self._stored_sequences(store, set(keys))
        winners: dict[str, Message] = {}
        stale = 0
        ties = 0
        for key, message in zip(keys, messages, strict=True):
            new = message.sequence
            old = sequences.get(key)
            if old is not None and new < old:
                stale += 1
                continue
            ties += old == new
            sequences[key] = new
            winners.pop(key, None)  # a replaced row moves to the end, as REPLACE does
            winners[key] = message
        self._write(
            store, [(message, key) for key, message in winners.items()], version, received_at
        )
        return stale, ties

    def _stored_sequences(self, store: _Store, keys: set[str]) -> dict[str, int]:
        """Return the stored sequence of each of these primary keys that has a row."""
        sequences: dict[str, int] = {}
        pending = list(keys)
        for start in range(0, len(pending), _KEYS_PER_QUERY):
            chunk = pending[start : start + _KEYS_PER_QUERY]
            rows = self._conn.execute(
                f"SELECT {quote(PRIMARY_KEY)}, {quote(SEQUENCE)} FROM {quote(store.name)} "  # noqa: S608
                f"WHERE {quote(PRIMARY_KEY)} IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            sequences.update(rows)
        return sequences

    def _write(
        self,
        store: _Store,
        rows: list[tuple[Message, str | None]],
        version: int | None,
        received_at: str,
    ) -> None:
        """Insert rows in order (replacing those with the same primary key, given with keys)."""
        runs: list[tuple[tuple[str, ...], list[list[object]]]] = []
        keyed = bool(rows) and rows[0][1] is not None
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
        verb = "INSERT OR REPLACE" if keyed else "INSERT"
        system = [SEQUENCE, TABLE_VERSION, RECEIVED_AT]
        if keyed:
            system.append(PRIMARY_KEY)
        statements: dict[tuple[str, ...], str] = {}
        for names, values_list in runs:
            statement = statements.get(names)
            if statement is None:
                columns = [*system, *names]
                statement = (
                    f"{verb} INTO {quote(store.name)} ({', '.join(map(quote, columns))}) "
                    f"VALUES ({', '.join('?' * len(columns))})"
                )
                statements[names] = statement
            self._conn.executemany(statement, values_list)

    # Reading

    def tables(self) -> dict[str, int]:
        """Return each loaded table's name and row count (visible rows only), by name."""
        with self._lock:
            return self._row_counts()

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
        """Return a table's key names, active version, creation time and staged versions.

        Returns:
            ``{"key_names": [str], "active_version": int | None, "created_at": str,
            "staged": [{"version": int, "rows": int}]}``, staged versions in ascending order.

        Raises:
            UnknownTableError: No such table was loaded.
        """
        with self._lock:
            self._require_table(table)
            key_names, active, created = self._conn.execute(
                "SELECT key_names, active_version, created_at FROM _emulator_tables WHERE name = ?",
                (table,),
            ).fetchone()
            staged = self._staged().get(table, [])
        return {
            "key_names": json.loads(key_names),
            "active_version": active,
            "created_at": created,
            "staged": staged,
        }

    def stats(self) -> dict[str, t.Any]:
        """Return totals of accepted batches, overall and per table, from one snapshot.

        Returns:
            ``{"batches", "messages", "bytes", "stale_ignored", "ties": int, "tables": {name:
            {"rows", "batches", "messages", "bytes", "stale_ignored", "ties": int,
            "active_version": int | None, "staged": [{"version": int, "rows": int}]}}}``;
            ``rows`` counts the visible rows, ``staged`` the versions loaded but not active.
        """
        fields = ("batches", *_COUNTERS)
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                counts = self._row_counts()
                staged = self._staged()
                active = dict(
                    self._conn.execute("SELECT name, active_version FROM _emulator_tables")
                )
                total = self._conn.execute(f"SELECT {_TOTALS} FROM _emulator_batches").fetchone()  # noqa: S608
                per_table = {
                    name: values
                    for name, *values in self._conn.execute(
                        f"SELECT table_name, {_TOTALS} FROM _emulator_batches GROUP BY table_name",  # noqa: S608
                    )
                }
            finally:
                self._conn.execute("COMMIT")
        tables = {
            name: {
                "rows": rows,
                **dict(zip(fields, per_table.get(name, [0] * len(fields)), strict=True)),
                "active_version": active[name],
                "staged": staged.get(name, []),
            }
            for name, rows in counts.items()
        }
        return {**dict(zip(fields, total, strict=True)), "tables": tables}

    def _row_counts(self) -> dict[str, int]:
        names = [row[0] for row in self._conn.execute("SELECT name FROM _emulator_tables")]
        return {
            name: self._conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]  # noqa: S608
            for name in sorted(names)
        }

    def _staged(self) -> dict[str, list[dict[str, int]]]:
        """Return the staged versions of every table that has some, with their row counts."""
        staged: dict[str, list[dict[str, int]]] = {}
        rows = self._conn.execute(
            "SELECT table_name, version, stage FROM _emulator_versions ORDER BY table_name, version"
        ).fetchall()
        for table, version, stage in rows:
            count = self._conn.execute(f"SELECT count(*) FROM {quote(stage)}").fetchone()[0]  # noqa: S608
            staged.setdefault(table, []).append({"version": version, "rows": count})
        return staged

    def _require_table(self, table: str) -> None:
        found = self._conn.execute(
            "SELECT 1 FROM _emulator_tables WHERE name = ?",
            (table,),
        ).fetchone()
        if found is None:
            msg = f"no table {table!r} in the emulator database"
            raise UnknownTableError(msg)
