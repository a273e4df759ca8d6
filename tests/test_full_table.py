"""Atomic full-table loads: the previous version stays visible until the new one is complete.

The installed command runs against the emulator, which (like Stitch) keeps rows of a table
version out of sight until that version's ``activate_version``.
"""

from __future__ import annotations

import json
import signal
import typing as t

from targetrun import activate_version, read_line, record, run_target, schema, start_target, state

if t.TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from conftest import Emulator

TOKEN = "test-token"
PROPS = {"id": {"type": "integer"}, "name": {"type": "string"}}


def config(emulator: Emulator, **extra: t.Any) -> dict[str, t.Any]:
    """A target config pointing at the emulator."""
    return {"token": TOKEN, "api_url": emulator.url, "max_retry_seconds": 30, **extra}


def feed(process: subprocess.Popen[str], messages: list[dict[str, t.Any]]) -> None:
    """Write messages to a running target's stdin."""
    assert process.stdin is not None
    for message in messages:
        process.stdin.write(json.dumps(message) + "\n")
    process.stdin.flush()


def names(emulator: Emulator) -> list[tuple[int, str]]:
    """The visible rows of table ``full``."""
    return sorted((row["id"], row["name"]) for row in emulator.rows("full"))


def load_first_version(emulator: Emulator, tmp_path: Path) -> list[tuple[int, str]]:
    """Load version 1 (ids 0..4) completely, SDK style; return its rows."""
    result = run_target(
        config(emulator),
        [schema("full", PROPS, ["id"]), activate_version("full", 1)]
        + [record("full", {"id": i, "name": f"v1-{i}"}, version=1) for i in range(5)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = names(emulator)
    assert rows == [(i, f"v1-{i}") for i in range(5)]
    return rows


def test_sdk_style_version_is_invisible_until_the_end_and_lost_if_killed(
    emulator: Emulator, tmp_path: Path,
) -> None:
    old = load_first_version(emulator, tmp_path)
    # Version 2, SDK style: one ACTIVATE_VERSION before the records, none after.
    process = start_target(config(emulator, batch_size_rows=3, max_batch_age_seconds=0.2), tmp_path)
    feed(process, [schema("full", PROPS, ["id"]), activate_version("full", 2)])
    feed(process, [record("full", {"id": i, "name": f"v2-{i}"}, version=2) for i in range(3, 10)])
    feed(process, [state({"half": 1})])
    assert json.loads(read_line(process, timeout=20)) == {"half": 1}  # acknowledged...
    assert emulator.stats()["tables"]["full"]["staged"] == [{"version": 2, "rows": 7}]
    assert names(emulator) == old  # ...yet out of sight
    process.kill()  # the run dies halfway: no activation, ever
    process.wait(timeout=10)
    assert names(emulator) == old
    # A complete run of a newer version replaces the table at its end, all at once.
    result = run_target(
        config(emulator),
        [schema("full", PROPS, ["id"]), activate_version("full", 3)]
        + [record("full", {"id": i, "name": f"v3-{i}"}, version=3) for i in (5, 6)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert names(emulator) == [(5, "v3-5"), (6, "v3-6")]


def test_singer_io_style_version_switches_at_its_closing_activate_version(
    emulator: Emulator, tmp_path: Path,
) -> None:
    old = load_first_version(emulator, tmp_path)
    process = start_target(config(emulator, batch_size_rows=2, max_batch_age_seconds=0.2), tmp_path)
    # singer-io taps: ACTIVATE_VERSION before and after versioned records.
    feed(process, [schema("full", PROPS, ["id"]), activate_version("full", 7)])
    feed(process, [record("full", {"id": i, "name": f"v7-{i}"}, version=7) for i in (1, 2, 8)])
    feed(process, [state({"in_progress": 7})])
    assert json.loads(read_line(process, timeout=20)) == {"in_progress": 7}
    assert names(emulator) == old
    feed(process, [activate_version("full", 7), state({"done": 7})])
    # The STATE after the closing ACTIVATE_VERSION comes only once the switch is acknowledged.
    assert json.loads(read_line(process, timeout=20)) == {"done": 7}
    assert names(emulator) == [(1, "v7-1"), (2, "v7-2"), (8, "v7-8")]
    assert process.stdin is not None
    process.stdin.close()
    assert process.wait(timeout=30) == 0


def test_a_resumed_version_closes_with_its_only_activate_version(emulator: Emulator, tmp_path: Path) -> None:
    old = load_first_version(emulator, tmp_path)
    first = start_target(config(emulator, batch_size_rows=2, max_batch_age_seconds=0.2), tmp_path)
    feed(first, [schema("full", PROPS, ["id"]), activate_version("full", 4)])
    feed(first, [record("full", {"id": i, "name": f"v4-{i}"}, version=4) for i in (1, 2)])
    feed(first, [state({"version": 4, "last_id": 2})])
    assert json.loads(read_line(first, timeout=20)) == {"version": 4, "last_id": 2}
    first.send_signal(signal.SIGTERM)  # stopped halfway (e.g. a deployment)
    assert first.wait(timeout=10) == 128 + signal.SIGTERM
    assert names(emulator) == old
    # The tap resumes version 4 from its STATE: versioned records, then one ACTIVATE_VERSION.
    result = run_target(
        config(emulator),
        [schema("full", PROPS, ["id"])]
        + [record("full", {"id": i, "name": f"v4-{i}"}, version=4) for i in (3, 4)]
        + [activate_version("full", 4)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert names(emulator) == [(i, f"v4-{i}") for i in (1, 2, 3, 4)]


def test_a_new_version_finishes_the_open_one(emulator: Emulator, tmp_path: Path) -> None:
    result = run_target(
        config(emulator),
        [
            schema("full", PROPS, ["id"]),
            activate_version("full", 1),
            record("full", {"id": 1, "name": "v1"}, version=1),
            activate_version("full", 2),
            record("full", {"id": 2, "name": "v2"}, version=2),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert names(emulator) == [(2, "v2")]
    assert emulator.stats()["tables"]["full"]["active_version"] == 2
