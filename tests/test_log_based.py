"""Log-based (CDC) streams: deletes, several changes of one key, numbers the tap damaged.

The installed command runs against the emulator with what a log-based tap such as
pipelinewise-tap-postgres writes (see ``tests/integration/TAP_QUIRKS.md``): a first run that
copies the table under a full-table version, then a log run whose SCHEMA adds
``_sdc_deleted_at`` and bookmarks on ``lsn`` (never a record field), whose RECORDs carry the
first run's ``version`` without any ACTIVATE_VERSION, and whose decimals arrive as binary-float
expansions that break the ``multipleOf`` the tap declares.
"""

from __future__ import annotations

import decimal
import json
import typing as t

import pytest
from targetrun import activate_version, run_target, schema, state

if t.TYPE_CHECKING:
    from pathlib import Path

    from conftest import Emulator

TOKEN = "test-token"
VERSION = 1_700_000_000_000
#: numeric(12,2) as pipelinewise-tap-postgres declares it.
BALANCE = {
    "type": ["null", "number"],
    "multipleOf": 0.01,
    "maximum": 10_000_000_000,
    "exclusiveMaximum": True,
    "minimum": -10_000_000_000,
    "exclusiveMinimum": True,
}
PROPS: dict[str, t.Any] = {
    "id": {"type": ["integer"]},
    "name": {"type": ["null", "string"]},
    "balance": BALANCE,
    "tags": {"type": ["null", "array"], "items": {"type": ["null", "string"]}},
    "amount": {"type": ["null", "number"], "multipleOf": 1e-38},  # plain numeric
}
LOG_PROPS: dict[str, t.Any] = {
    **PROPS,
    "_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"},
}
#: 111.44 read as a binary float and written out in full.
DAMAGED = "111.43999999999999772626324556767940521240234375"


def config(emulator: Emulator, **extra: t.Any) -> dict[str, t.Any]:
    """A target config pointing at the emulator."""
    return {"token": TOKEN, "api_url": emulator.url, "max_retry_seconds": 30, **extra}


def raw_record(data: str) -> str:
    """A RECORD line of stream ``accounts`` with the record's JSON text as written."""
    return (
        f'{{"type": "RECORD", "stream": "accounts", "version": {VERSION}, '
        f'"time_extracted": "2026-11-30T10:00:00.000000Z", "record": {data}}}'
    )


def first_run() -> list[t.Any]:
    """The full copy: ids 1..5 under version VERSION, activated before and after."""
    rows = [
        raw_record(f'{{"id": {i}, "name": "n{i}", "balance": {i}.25, "tags": ["a"]}}')
        for i in range(1, 6)
    ]
    return [
        schema("accounts", PROPS, ["id"]),
        activate_version("accounts", VERSION),
        *rows,
        activate_version("accounts", VERSION),
        state({"bookmarks": {"accounts": {"lsn": 100, "version": VERSION}}}),
    ]


def log_run() -> list[t.Any]:
    """The log run: updates (id 1 twice), deletes (key-only and full), re-insert, insert."""
    deleted = '"_sdc_deleted_at": "2026-11-30T10:00:01.000000Z"'
    return [
        {**schema("accounts", LOG_PROPS, ["id"], bookmarks=["lsn"])},
        raw_record(f'{{"id": 1, "name": "first", "balance": {DAMAGED}, "tags": []}}'),
        raw_record('{"id": 1, "name": "second", "balance": 0.1000000000000000055511151231257827021181583404541015625, "tags": null}'),
        raw_record(f'{{"id": 2, {deleted}}}'),
        raw_record(f'{{"id": 3, "name": "n3", "balance": 3.25, "tags": ["a"], {deleted}}}'),
        raw_record('{"id": 3, "name": "back", "balance": 7, "tags": ["b"], "_sdc_deleted_at": null}'),
        raw_record('{"id": 4, "name": "changed", "balance": 4.5, "tags": ["a"]}'),
        raw_record(f'{{"id": 4, {deleted}}}'),
        raw_record('{"id": 6, "name": "new", "amount": 98765432109876543488, "tags": ["x"]}'),
        state({"bookmarks": {"accounts": {"lsn": 200, "version": VERSION}}}),
    ]


def visible(emulator: Emulator) -> dict[int, dict[str, t.Any]]:
    """The visible rows of ``accounts`` by id, without empty columns."""
    return {
        row["id"]: {k: v for k, v in row.items() if v is not None}
        for row in emulator.rows("accounts")
    }


@pytest.mark.parametrize("lean", [True, False], ids=["lean-path", "sdk-path"])
def test_log_run_lands_deletes_last_changes_and_damaged_numbers_exactly(
    emulator: Emulator, tmp_path: Path, lean: bool,
) -> None:
    settings = config(emulator, lean_record_path=lean)
    first = run_target(settings, first_run(), tmp_path)
    assert first.returncode == 0, first.stderr
    assert sorted(visible(emulator)) == [1, 2, 3, 4, 5]

    second = run_target(settings, log_run(), tmp_path)
    assert second.returncode == 0, second.stderr
    rows = visible(emulator)
    assert sorted(rows) == [1, 2, 3, 4, 5, 6]  # the copy's rows stay (no activation)
    # The last change of a key wins; numbers arrive exactly as the tap wrote them.
    assert rows[1]["name"] == "second"
    assert str(rows[1]["balance"]) == "0.1000000000000000055511151231257827021181583404541015625"
    assert "_sdc_deleted_at" not in rows[1]
    assert rows[2]["_sdc_deleted_at"].startswith("2026-11-30T10:00:01")  # key-only delete
    assert rows[3]["name"] == "back"  # deleted, then inserted again
    assert "_sdc_deleted_at" not in rows[3]
    assert rows[4]["_sdc_deleted_at"].startswith("2026-11-30T10:00:01")  # updated, then deleted
    assert str(rows[5]["balance"]) == "5.25"  # untouched by the log run
    assert rows[6]["amount"] == decimal.Decimal(98765432109876543488)
    # STATE as the tap wrote it; one warning for the field, no storm about the bookmark.
    assert second.states[-1] == {"bookmarks": {"accounts": {"lsn": 200, "version": VERSION}}}
    warnings = [line for line in second.stderr.splitlines() if "multiple" in line]
    assert len(warnings) == 1, second.stderr
    assert "'balance'" in warnings[0]
    assert "multipleOf 1E-100" in warnings[0]
    assert second.stderr.count("'lsn'") <= 1
    assert "No schema for record field" not in second.stderr


def test_damaged_numbers_keep_the_column_a_decimal_and_exact_ones_keep_their_step(
    emulator: Emulator, tmp_path: Path,
) -> None:
    """Batches before the first damaged number carry the tap's step, later ones a finer one."""
    messages = [
        schema("accounts", PROPS, ["id"]),
        raw_record('{"id": 1, "balance": 1.25}'),
        raw_record(f'{{"id": 2, "balance": {DAMAGED}}}'),
        raw_record('{"id": 3, "balance": 3.5}'),
    ]
    dry = tmp_path / "dry"
    result = run_target(
        {"dry_run_dir": str(dry), "token": TOKEN, "api_url": emulator.url},
        messages,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    bodies = [json.loads(path.read_text()) for path in sorted(dry.iterdir())]
    steps = [body["schema"]["properties"]["balance"]["multipleOf"] for body in bodies]
    assert steps == [0.01, 1e-100]
    sent = [m["data"]["balance"] for body in bodies for m in body["messages"]]
    assert len(sent) == 3
    texts = [path.read_text() for path in sorted(dry.iterdir())]
    assert DAMAGED in texts[1]


def test_strict_mode_refuses_damaged_numbers_with_a_hint(
    emulator: Emulator, tmp_path: Path,
) -> None:
    result = run_target(
        config(emulator, schema_mode="strict"),
        [schema("accounts", PROPS, ["id"]), raw_record(f'{{"id": 2, "balance": {DAMAGED}}}')],
        tmp_path,
    )
    assert result.returncode == 1
    line = result.last_error_line
    assert "stream 'accounts'" in line
    assert "is not a multiple of 0.01" in line
    assert "schema_mode=relaxed" in line
    assert emulator.tables().get("accounts", 0) == 0


def test_a_value_that_breaks_more_than_precision_still_fails(
    emulator: Emulator, tmp_path: Path,
) -> None:
    result = run_target(
        config(emulator),
        [
            schema("accounts", PROPS, ["id"]),
            raw_record('{"id": 2, "balance": 12345678901.439999999999997726}'),
        ],
        tmp_path,
    )
    assert result.returncode == 1
    assert "less than" in result.last_error_line or "maximum" in result.last_error_line


def test_a_later_schema_keeps_the_finer_step(emulator: Emulator, tmp_path: Path) -> None:
    """A repeated SCHEMA (a new sink) starts from the step already made finer: no flip-flop."""
    messages = [
        schema("accounts", PROPS, ["id"]),
        raw_record(f'{{"id": 1, "balance": {DAMAGED}}}'),
        schema("accounts", PROPS, ["id"]),
        raw_record('{"id": 2, "balance": 2.5}'),
    ]
    dry = tmp_path / "dry"
    result = run_target({"dry_run_dir": str(dry), "token": TOKEN}, messages, tmp_path)
    assert result.returncode == 0, result.stderr
    bodies = [json.loads(path.read_text()) for path in sorted(dry.iterdir())]
    steps = {body["schema"]["properties"]["balance"]["multipleOf"] for body in bodies}
    assert steps == {1e-100}
    assert result.stderr.count("not multiples") == 1

