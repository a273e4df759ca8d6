"""Log-based (CDC) replication end to end: PostgreSQL WAL -> pipelinewise-tap-postgres -> target.

PostgreSQL 15 with ``wal_level=logical`` and Debian's ``postgresql-15-wal2json`` (installed
by :func:`pg.ensure_installed` when missing), a wal2json slot named as the tap expects, and
``pipelinewise-tap-postgres`` 2.1.0 from PyPI in its own venv (``taps.PIPELINEWISE``). The
tables and the changes are in ``cdc.py``; what the tap emits is in ``TAP_QUIRKS.md``.

The test runs ``tap | target-stitch-import`` three times against one emulator:

1. first sync: the tap's full copy (ACTIVATE_VERSION before and after the rows);
2. after :data:`cdc.CHANGES`, the log sync from the first run's final STATE: updates (one
   key twice), deletes under both replica identities, a delete then a re-insert, an insert
   then a delete, several changes of one key in one transaction, inserts;
3. the same log sync again from the second run's final STATE (its ``lsn`` points one
   change back, so the tap resends the last transactions).

After each, the emulator's tables must equal PostgreSQL's rows exactly:

* a row that exists in PostgreSQL: equal in every column, ``_sdc_deleted_at`` null;
* a deleted row stays, with ``_sdc_deleted_at`` set (to the time the tap sent). Its other
  columns are what its last RECORD said, as Stitch replaces a row by each new version and
  leaves the columns a version lacks null: under ``REPLICA IDENTITY FULL`` the delete
  carries the row as it was when deleted (:func:`cdc.apply_changes` records it); under the
  default identity the delete carries only the key, so every other column is null;
* except values the tap itself damaged: wal2json numbers read as binary floats
  (``111.44`` -> ``111.43999999999999772626324556767940521240234375``, a 21-digit numeric
  -> ``98765432109876543488``) and jsonb numbers parsed as floats. Such a value must be
  exactly what the tap's last RECORD of that key sent, and equal the database's through a
  double: nothing else may differ;
* NULL ``text[]`` arrives as ``[]`` from this tap (both paths), so it is compared as ``[]``.

Also: every run exits 0, the target writes only the tap's STATEs and ends with its last,
no two records of one key in one run share a sequence (the emulator's ``ties``), and the
target warns at most once per stream and field in a run (no warning per record).
"""

from __future__ import annotations

import contextlib
import subprocess
import typing as t
import uuid

import cdc
import pg
import pytest
import seed
import taps
from harness import Database, Emulator, target_command, write_json

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from pathlib import Path

#: Generous limit for one ``tap | target`` pipe (a log sync takes ~6 s: 5 s of it is the
#: tap polling for more WAL, ``logical_poll_total_seconds``).
PIPE_TIMEOUT = 300
SERVER_TIMEZONE = "America/New_York"
LOGICAL_SETTINGS: dict[str, str | int] = {
    "wal_level": "logical",
    "max_replication_slots": 4,
    "max_wal_senders": 4,
}
WAL2JSON = "postgresql-{major}-wal2json"
#: Database table -> the tap's stream (and so the emulator's table).
STREAMS = {table: f"public-{table}" for table in cdc.TABLES}
ARRAY_COLUMNS = ("tags",)


@pytest.fixture(scope="module")
def logical_server() -> Iterator[pg.PgServer]:
    """A PostgreSQL server with logical decoding (wal2json) and a REPLICATION test user."""
    server = pg.start(
        timezone=SERVER_TIMEZONE,
        settings=LOGICAL_SETTINGS,
        extra_packages=(WAL2JSON,),
        replication=True,
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pipelinewise() -> taps.Tap:
    """pipelinewise-tap-postgres 2.1.0 in its cached venv."""
    return taps.install(taps.PIPELINEWISE)


@pytest.fixture
def cdc_database(logical_server: pg.PgServer) -> Iterator[Database]:
    """A database with the CDC tables seeded and the tap's replication slot created."""
    name = f"tsi_cdc_{uuid.uuid4().hex[:12]}"
    logical_server.create_database(name)
    db = Database(logical_server, name)
    db.execute(cdc.SCHEMA_SQL + cdc.SEED_SQL)
    cdc.create_slot(db)
    yield db
    # A failed run may leave the slot busy; the module's server is removed anyway.
    with contextlib.suppress(subprocess.CalledProcessError):
        cdc.drop_slot(db)
        logical_server.drop_database(name)


def messages_of(result: taps.PipeResult, kind: str) -> list[dict[str, t.Any]]:
    """The tap's messages of one type, numbers exact."""
    lines = result.tap_output.read_text(encoding="utf-8").splitlines()
    return [m for m in cdc.tap_records(lines) if m["type"] == kind]


def assert_state_is_taps_latest(result: taps.PipeResult) -> None:
    """The target wrote only the tap's STATEs, in order, ending with the tap's last."""
    tap_states = [m["value"] for m in messages_of(result, "STATE")]
    written = result.target_states()
    assert tap_states, "the tap sent no STATE"
    assert written, f"the target wrote no STATE\n{result.diagnostics()}"
    assert cdc.same(written[-1], tap_states[-1]), (written[-1], tap_states[-1])
    remaining = iter(tap_states)
    assert all(any(cdc.same(state, sent) for sent in remaining) for state in written), (
        "the target wrote a STATE the tap did not send, or out of order"
    )


class CdcSync:
    """Runs ``tap | target`` against one database and one emulator; checks the tables."""

    def __init__(self, tap: taps.Tap, db: Database, emulator: Emulator, workdir: Path) -> None:
        self.tap = tap
        self.db = db
        self.emulator = emulator
        self.workdir = workdir
        config = taps.pipelinewise_config(db.server, db.name)
        self.config = write_json(workdir / "tap-config.json", config)
        discovered = taps.discover(tap, self.config)
        catalog = taps.select(discovered, dict.fromkeys(cdc.TABLES, ("LOG_BASED", None)))
        self.catalog = write_json(workdir / "catalog.json", catalog)
        target_config = {"token": emulator.token, "api_url": emulator.url}
        self.target_config = write_json(workdir / "target-config.json", target_config)
        #: Per table, the last RECORD the tap sent for each key (over all runs so far).
        self.sent: dict[str, dict[int, dict[str, t.Any]]] = {table: {} for table in cdc.TABLES}
        #: Per table, each key's row as it last existed in the database.
        self.last_known: dict[str, dict[int, dict[str, t.Any]]] = {
            table: cdc.read_rows(db, table) for table in cdc.TABLES
        }

    def run(self, label: str, state: Mapping[str, t.Any] | None) -> taps.PipeResult:
        """One sync into the target; it must exit 0 and pass the tap's STATE on."""
        state_path = write_json(self.workdir / f"{label}.in-state.json", state) if state else None
        result = taps.pipe(
            taps.tap_command(self.tap, self.config, self.catalog, state_path),
            target_command(self.target_config),
            self.workdir,
            label,
            timeout=PIPE_TIMEOUT,
        )
        assert result.returncode == 0, f"{label}: tap | target failed\n{result.diagnostics()}"
        assert_state_is_taps_latest(result)
        self.assert_no_warning_storm(label, result)
        by_stream = {stream: table for table, stream in STREAMS.items()}
        for message in messages_of(result, "RECORD"):
            record = message["record"]
            self.sent[by_stream[message["stream"]]][record[cdc.KEY]] = record
        return result

    def assert_no_warning_storm(self, label: str, result: taps.PipeResult) -> None:
        """At most one warning per stream and field (not one per record)."""
        text = result.target_stderr.read_text(encoding="utf-8", errors="replace")
        warnings = [line for line in text.splitlines() if "WARNING" in line]
        fields = max(len(self.db.columns(table)) for table in cdc.TABLES) + 1  # _sdc_deleted_at
        limit = len(STREAMS) * fields
        assert len(warnings) <= limit, f"{label}: {len(warnings)} warnings:\n" + "\n".join(
            warnings[:10]
        )

    def change(self) -> None:
        """Apply :data:`cdc.CHANGES`, one transaction each, remembering deleted rows."""
        cdc.apply_changes(self.db, cdc.CHANGES, self.last_known)

    def expected(self, table: str) -> dict[int, dict[str, t.Any]]:
        """What the emulator's table must hold (see the module docstring)."""
        current = cdc.read_rows(self.db, table)
        rows: dict[int, dict[str, t.Any]] = {}
        for key, row in self.last_known[table].items():
            if key in current:
                rows[key] = {**current[key], cdc.DELETED_AT: None}
            elif cdc.TABLES[table] == "FULL":
                rows[key] = {**row, cdc.DELETED_AT: "deleted"}
            else:  # the default replica identity: a delete carries the key only
                rows[key] = {cdc.KEY: key, cdc.DELETED_AT: "deleted"}
        for row in rows.values():
            for column in ARRAY_COLUMNS:
                if cdc.KEY in row and column in row and row[column] is None:
                    row[column] = []  # the tap sends NULL arrays as []
        return rows

    def assert_tables_match(self, *, deletes: bool) -> None:
        """Every table holds exactly the expected rows; deleted ones as the tap said."""
        problems: list[str] = []
        for table, stream in STREAMS.items():
            columns = [*self.db.columns(table), *([cdc.DELETED_AT] if deletes else [])]
            actual = self.emulator.rows(stream)
            expected = self.expected(table)
            problems += cdc.differences(table, expected, actual, columns, self.sent[table])
            for row in actual:
                key = row[cdc.KEY]
                if expected.get(key, {}).get(cdc.DELETED_AT) is None:
                    continue
                sent = self.sent[table].get(key, {}).get(cdc.DELETED_AT)
                stamp = seed.normalize_timestamp(row.get(cdc.DELETED_AT))
                if stamp != seed.normalize_timestamp(sent):
                    problems.append(
                        f"{table}: row {key}: {cdc.DELETED_AT} {row.get(cdc.DELETED_AT)!r}, "
                        f"the tap sent {sent!r}"
                    )
        assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:40])

    def assert_no_ties(self) -> None:
        """No two upserts of one key carried the same sequence."""
        stats = self.emulator.stats()["tables"]
        for stream in STREAMS.values():
            assert stats[stream]["ties"] == 0, (stream, stats[stream])


def test_log_based_sync_lands_updates_deletes_and_damaged_numbers(
    pipelinewise: taps.Tap,
    cdc_database: Database,
    emulator: Emulator,
    workdir: Path,
) -> None:
    sync = CdcSync(pipelinewise, cdc_database, emulator, workdir)

    # 1. The first sync is a full copy, in table versions.
    first = sync.run("first", None)
    schemas = messages_of(first, "SCHEMA")
    assert {m["stream"] for m in schemas} == set(STREAMS.values())
    assert all(cdc.DELETED_AT not in m["schema"]["properties"] for m in schemas)
    assert all(m["bookmark_properties"] == [] for m in schemas)
    activations = messages_of(first, "ACTIVATE_VERSION")
    assert len(activations) == 2 * len(STREAMS), "one before and one after each table's rows"
    sync.assert_tables_match(deletes=False)
    sync.assert_no_ties()

    # 2. Changes, then the log sync from the first run's final STATE (as the target wrote it).
    sync.change()
    second = sync.run("second", first.target_states()[-1])
    schemas = messages_of(second, "SCHEMA")
    assert all(cdc.DELETED_AT in m["schema"]["properties"] for m in schemas)
    assert all(m["bookmark_properties"] == ["lsn"] for m in schemas)
    assert not messages_of(second, "ACTIVATE_VERSION")
    records = messages_of(second, "RECORD")
    versions = {m["stream"]: m["version"] for m in activations}
    assert all(m["version"] == versions[m["stream"]] for m in records), "the copy's versions"
    key_only = [m for m in records if set(m["record"]) == {cdc.KEY, cdc.DELETED_AT}]
    assert {m["stream"] for m in key_only} == {STREAMS["accounts"]}, "default identity deletes"
    damaged = [
        m for m in records if str(m["record"].get("balance")).startswith("111.4399999999999977")
    ]
    assert damaged, "the tap's float expansion under test (numeric(12,2) 111.44)"
    assert len({m["time_extracted"] for m in records}) == 1
    sync.assert_tables_match(deletes=True)
    sync.assert_no_ties()

    # 3. The same log sync again from the second run's final STATE: the tap resends the
    # last changes (its lsn points one change back); the tables stay as they are.
    rerun = sync.run("rerun", second.target_states()[-1])
    assert messages_of(rerun, "RECORD"), "the rerun resent nothing: the premise changed"
    sync.assert_tables_match(deletes=True)
    sync.assert_no_ties()
