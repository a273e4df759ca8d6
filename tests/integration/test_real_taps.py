"""End to end with real taps: PostgreSQL -> tap -> ``target-stitch-import`` -> emulator.

Each test gets its own copy of the seeded database (NULL array elements, nested jsonb,
numerics wider than a double, timestamps with and without time zone, a table without a
primary key) and its own emulator, runs ``tap | target-stitch-import --config cfg.json``
and then compares the emulator's table with the database's rows exactly: every number as
a ``Decimal`` (or int), every timestamp as one RFC 3339 UTC instant.

What equality means:

* Tables with a primary key: the emulator holds exactly one row per database row, equal
  in every column, and no other rows.
* A table without a primary key is loaded with ``key_names: []``, which Stitch appends.
  After a full-table sync that sends ACTIVATE_VERSION (singer-io), the active version
  holds the database's rows as a multiset (two identical rows stay two rows). A tap that
  sends no ACTIVATE_VERSION (meltanolabs FULL_TABLE) appends on every run, so after ``k``
  runs the emulator holds every database row ``k`` times.
* STATE: the last STATE line the target writes is the tap's last STATE, and every line
  it writes is one the tap sent, in the tap's order.
"""

from __future__ import annotations

import json
import re
import time
import typing as t
from dataclasses import dataclass
from pathlib import Path

import pytest
import seed
import taps
from harness import Database, Emulator, TapVenvs, target_command, write_json

if t.TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from pg import PgServer

#: Generous limit for one ``tap | target`` pipe (they take seconds).
PIPE_TIMEOUT = 300


@dataclass(frozen=True)
class Family:
    """How one tap family is configured and what it names things."""

    tap: taps.Tap
    config: Callable[[PgServer, str], dict[str, t.Any]]
    #: Database table -> the stream (and so emulator table) name the tap uses.
    streams: Mapping[str, str]
    #: Columns the tap sends as JSON text instead of JSON (singer-io's jsonb).
    json_text: tuple[str, ...] = ()
    #: Array columns whose SQL NULL the tap sends as ``[]`` (singer-io's ``elem or []``).
    null_array_as_empty: tuple[str, ...] = ()

    def as_sent(self, row: Mapping[str, t.Any]) -> dict[str, t.Any]:
        """A database row as this tap represents it (its documented lossy spots applied)."""
        out = dict(row)
        for column in self.null_array_as_empty:
            if out.get(column) is None:
                out[column] = []
        return out


def meltanolabs(venvs: TapVenvs) -> Family:
    """meltanolabs-tap-postgres: ``<schema>-<table>`` streams, jsonb as JSON."""
    return Family(
        venvs.meltanolabs,
        taps.meltanolabs_config,
        {seed.ITEMS: f"public-{seed.ITEMS}", seed.EVENTS: f"public-{seed.EVENTS}"},
    )


def singer_io(venvs: TapVenvs) -> Family:
    """singer-io tap-postgres: streams named after the table, jsonb as text."""
    return Family(
        venvs.singer_io,
        taps.singer_io_config,
        {seed.ITEMS: seed.ITEMS, seed.EVENTS: seed.EVENTS},
        json_text=("doc", "payload"),
        null_array_as_empty=("tags", "scores"),
    )


@dataclass(frozen=True)
class Sync:
    """Runs ``tap | target`` for one test: one family, one database, one emulator."""

    family: Family
    database: Database
    emulator: Emulator
    workdir: Path

    def run(
        self,
        label: str,
        tables: Mapping[str, tuple[str, str | None]],
        *,
        state: Mapping[str, t.Any] | None = None,
        target_settings: Mapping[str, t.Any] | None = None,
        expect_success: bool = True,
    ) -> taps.PipeResult:
        """Discover, select ``tables`` (method, replication key), and pipe into the target."""
        work = self.workdir
        config = write_json(
            work / f"{label}.tap-config.json",
            self.family.config(self.database.server, self.database.name),
        )
        catalog = taps.select(taps.discover(self.family.tap, config), tables)
        catalog_path = write_json(work / f"{label}.catalog.json", catalog)
        state_path = write_json(work / f"{label}.in-state.json", state) if state else None
        result = taps.pipe(
            taps.tap_command(self.family.tap, config, catalog_path, state_path),
            target_command(self.target_config(label, target_settings)),
            work,
            label,
            timeout=PIPE_TIMEOUT,
        )
        if expect_success:
            assert result.returncode == 0, f"{label}: tap | target failed\n{result.diagnostics()}"
        return result

    def replay(self, label: str, singer_file: Path) -> taps.PipeResult:
        """Feed a saved tap output to the target again."""
        result = taps.replay(
            singer_file,
            target_command(self.target_config(label, None)),
            self.workdir,
            label,
            timeout=PIPE_TIMEOUT,
        )
        assert result.returncode == 0, f"{label}: replay failed\n{result.diagnostics()}"
        return result

    def target_config(self, label: str, settings: Mapping[str, t.Any] | None) -> Path:
        """The target's config file: the emulator's URL and token (plus ``settings``)."""
        config = {"token": self.emulator.token, "api_url": self.emulator.url, **(settings or {})}
        return write_json(self.workdir / f"{label}.target-config.json", config)

    def assert_keyed_table_matches(self, table: str) -> None:
        """The emulator's table holds exactly the database's rows (by primary key)."""
        problems = seed.keyed_differences(
            table,
            [self.family.as_sent(row) for row in self.database.rows(table)],
            self.emulator.rows(self.family.streams[table]),
            self.database.columns(table),
            self.family.json_text,
        )
        assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:25])

    def assert_unkeyed_table_matches(self, table: str, *, times: int = 1) -> None:
        """The emulator's table holds each database row ``times`` times (append)."""
        problems = seed.multiset_differences(
            table,
            [self.family.as_sent(row) for row in self.database.rows(table)],
            self.emulator.rows(self.family.streams[table]),
            self.database.columns(table),
            times=times,
            json_text=self.family.json_text,
        )
        assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:25])


def messages_of(result: taps.PipeResult, kind: str) -> list[dict[str, t.Any]]:
    """The tap's messages of one type."""
    return [m for m in result.messages() if m["type"] == kind]


def assert_state_is_taps_latest(result: taps.PipeResult) -> None:
    """The target wrote only the tap's STATEs, in order, ending with the tap's last."""
    tap_states = [m["value"] for m in messages_of(result, "STATE")]
    written = result.target_states()
    assert tap_states, "the tap sent no STATE"
    assert written, f"the target wrote no STATE\n{result.diagnostics()}"
    assert written[-1] == tap_states[-1]
    remaining = iter(tap_states)
    assert all(any(state == sent for sent in remaining) for state in written), (
        "the target wrote a STATE the tap did not send, or out of order"
    )


def null_array_elements(result: taps.PipeResult, column: str) -> int:
    """How many of the tap's records hold a NULL element in array ``column``."""
    return sum(
        1
        for m in messages_of(result, "RECORD")
        if isinstance(m["record"].get(column), list) and None in m["record"][column]
    )


# meltanolabs-tap-postgres: INCREMENTAL, replays from an older state, stale replays


def test_meltanolabs_incremental_then_replay_from_older_state(
    tap_venvs: TapVenvs,
    database: Database,
    emulator: Emulator,
    workdir: Path,
) -> None:
    sync = Sync(meltanolabs(tap_venvs), database, emulator, workdir)
    incremental = {seed.ITEMS: ("INCREMENTAL", "updated_at")}
    stream = sync.family.streams[seed.ITEMS]

    first = sync.run("first", incremental)
    schema = messages_of(first, "SCHEMA")[0]
    assert schema["schema"]["properties"]["tags"]["items"]["type"] == ["string"]
    assert null_array_elements(first, "tags") > 0, "the quirk under test: NULLs in text[]"
    assert schema["bookmark_properties"] == ["updated_at"]
    sync.assert_keyed_table_matches(seed.ITEMS)
    assert_state_is_taps_latest(first)

    # Rows change (their updated_at moves past the DST change); then the tap runs from a
    # bookmark OLDER than the first run's end: unchanged rows come again, changed ones
    # come with their new values. The older bookmark is a value the tap itself sent,
    # in its own text form (it compares bookmarks as text: see TAP_QUIRKS.md).
    database.execute(seed.UPDATE_SQL)
    older_value = next(
        m["record"]["updated_at"]
        for m in messages_of(first, "RECORD")
        if m["record"]["id"] == seed.OLDER_BOOKMARK_ID
    )
    older = {
        "bookmarks": {
            stream: {"replication_key": "updated_at", "replication_key_value": older_value},
        },
    }
    second = sync.run("older-state", incremental, state=older)
    replayed = {m["record"]["id"] for m in messages_of(second, "RECORD")}
    assert set(seed.UPDATED_IDS) | {seed.INSERTED_ID} <= replayed
    assert replayed - set(seed.UPDATED_IDS) - {seed.INSERTED_ID}, "no unchanged row replayed"
    sync.assert_keyed_table_matches(seed.ITEMS)
    assert_state_is_taps_latest(second)
    final_bookmark = second.target_states()[-1]["bookmarks"][stream]["replication_key_value"]
    assert final_bookmark.startswith("2024-07-")

    # A stale replay (the first run's output, sent again) must not overwrite newer rows.
    sync.replay("stale-replay", first.tap_output)
    sync.assert_keyed_table_matches(seed.ITEMS)
    stats = emulator.stats()["tables"][stream]
    assert stats["stale_ignored"] >= len(seed.UPDATED_IDS), stats


def test_meltanolabs_table_without_primary_key_appends(
    tap_venvs: TapVenvs,
    database: Database,
    emulator: Emulator,
    workdir: Path,
) -> None:
    sync = Sync(meltanolabs(tap_venvs), database, emulator, workdir)
    full_table = {seed.EVENTS: ("FULL_TABLE", None)}

    first = sync.run("first", full_table)
    assert messages_of(first, "SCHEMA")[0]["key_properties"] == []
    assert not messages_of(first, "ACTIVATE_VERSION"), "meltanolabs sends no ACTIVATE_VERSION"
    sync.assert_unkeyed_table_matches(seed.EVENTS, times=1)  # the two equal rows both stay
    assert_state_is_taps_latest(first)

    second = sync.run("second", full_table)
    sync.assert_unkeyed_table_matches(seed.EVENTS, times=2)  # appended, as Stitch does
    assert_state_is_taps_latest(second)


def test_strict_schema_mode_rejects_what_the_tap_really_sends(
    tap_venvs: TapVenvs,
    database: Database,
    emulator: Emulator,
    workdir: Path,
) -> None:
    sync = Sync(meltanolabs(tap_venvs), database, emulator, workdir)
    result = sync.run(
        "strict",
        {seed.ITEMS: ("INCREMENTAL", "updated_at")},
        target_settings={"schema_mode": "strict"},
        expect_success=False,
    )
    assert result.returncode != 0, "strict mode loaded records its schema forbids"
    error = result.target_stderr.read_text(encoding="utf-8")
    assert sync.family.streams[seed.ITEMS] in error, error[-2000:]


# singer-io tap-postgres: FULL_TABLE with table versions


def test_singer_io_full_table_exact_rows_then_deleted_rows_vanish(
    tap_venvs: TapVenvs,
    database: Database,
    emulator: Emulator,
    workdir: Path,
) -> None:
    sync = Sync(singer_io(tap_venvs), database, emulator, workdir)
    full_table = {seed.ITEMS: ("FULL_TABLE", None), seed.EVENTS: ("FULL_TABLE", None)}

    first = sync.run("first", full_table)
    records = messages_of(first, "RECORD")
    assert records
    assert all("version" in m for m in records), "singer-io sends table versions"
    assert messages_of(first, "ACTIVATE_VERSION")
    schemas = {m["stream"]: m["schema"] for m in messages_of(first, "SCHEMA")}
    assert "definitions" in schemas[seed.ITEMS], "the $ref quirk under test"
    assert null_array_elements(first, "tags") > 0
    sync.assert_keyed_table_matches(seed.ITEMS)
    sync.assert_unkeyed_table_matches(seed.EVENTS)
    assert_state_is_taps_latest(first)

    # Rows change and some are deleted; the next full-table sync (a new version) must
    # leave exactly the database's rows, in the keyed table and in the one without key.
    database.execute(seed.UPDATE_SQL + seed.DELETE_SQL)
    state = first.target_states()[-1]
    second = sync.run("second", full_table, state=state)
    sync.assert_keyed_table_matches(seed.ITEMS)
    sync.assert_unkeyed_table_matches(seed.EVENTS)
    assert_state_is_taps_latest(second)


@pytest.mark.parametrize("family", ["meltanolabs", "singer-io"])
def test_state_written_matches_tap_state_with_nothing_to_sync(
    tap_venvs: TapVenvs,
    database: Database,
    emulator: Emulator,
    workdir: Path,
    family: str,
) -> None:
    """An empty table still gets the tap's STATE through the target (no records to wait on)."""
    database.execute(f"DELETE FROM {seed.EVENTS}")
    chosen = meltanolabs(tap_venvs) if family == "meltanolabs" else singer_io(tap_venvs)
    sync = Sync(chosen, database, emulator, workdir)
    result = sync.run("empty", {seed.EVENTS: ("FULL_TABLE", None)})
    assert not messages_of(result, "RECORD")
    assert_state_is_taps_latest(result)
    assert json.dumps(result.target_states()[-1])  # plain JSON, no Decimal surprises


# Both record paths give the same bodies on what real taps send


_SEQUENCE = re.compile(rb'"sequence":(\d+)')


def _dry_run_bodies(
    tap_output: Path, workdir: Path, label: str, *, lean: bool, workers: int = 0,
) -> list[bytes]:
    """Replay a saved tap output as a dry run; the bodies, time-based sequences masked."""
    out = workdir / f"{label}-bodies"
    config = write_json(
        workdir / f"{label}.target-config.json",
        {"token": "t", "dry_run_dir": str(out), "lean_record_path": lean, "record_workers": workers},
    )
    result = taps.replay(tap_output, target_command(config), workdir, label, timeout=PIPE_TIMEOUT)
    assert result.returncode == 0, result.diagnostics()
    if workers:
        stderr = result.target_stderr.read_text(encoding="utf-8")
        prepared = re.search(r"they prepared ([\d,]+) records? of", stderr)
        assert prepared, "the record workers did not start"
        assert int(prepared.group(1).replace(",", "")) > 0, "no record went through a worker"
    recent = time.time_ns() - 86_400 * 10**9  # the seeded bookmarks are years older

    def mask(match: re.Match[bytes]) -> bytes:
        return b'"sequence":0' if int(match.group(1)) > recent else match.group(0)

    return sorted(_SEQUENCE.sub(mask, path.read_bytes()) for path in out.iterdir())


@pytest.mark.parametrize("family", ["meltanolabs", "singer-io"])
def test_lean_and_sdk_record_paths_give_identical_bodies(
    tap_venvs: TapVenvs,
    database: Database,
    emulator: Emulator,
    workdir: Path,
    family: str,
) -> None:
    chosen = meltanolabs(tap_venvs) if family == "meltanolabs" else singer_io(tap_venvs)
    sync = Sync(chosen, database, emulator, workdir)
    tables = {
        seed.ITEMS: ("INCREMENTAL", "updated_at") if family == "meltanolabs" else ("FULL_TABLE", None),
        seed.EVENTS: ("FULL_TABLE", None),
    }
    # Every seeded row 200 times more (new ids): enough for the record workers to take part.
    database.execute(
        f"INSERT INTO {seed.ITEMS} SELECT (jsonb_populate_record(NULL::{seed.ITEMS}, to_jsonb(i) "
        f"|| jsonb_build_object('id', i.id + 100000 * k))).* FROM {seed.ITEMS} i, "
        "generate_series(1, 200) AS k"
    )
    first = sync.run("source", tables)
    assert messages_of(first, "RECORD")
    lean = _dry_run_bodies(first.tap_output, workdir, "lean", lean=True)
    sdk = _dry_run_bodies(first.tap_output, workdir, "sdk", lean=False)
    workers = _dry_run_bodies(first.tap_output, workdir, "workers", lean=True, workers=2)
    assert lean
    assert lean == sdk == workers
