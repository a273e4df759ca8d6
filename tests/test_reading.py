"""Reading: lines as each read brings them, runs of RECORDs, errors at the first bad line.

The reader takes what the input has (never waiting for lines that have not arrived) and
hands consecutive RECORD lines to the target together; a pass-through stream's records are
taken in one loop per stream. These tests pin what that must never change: records of an
idle tap still go out, a line split across reads is one line, a run with bad records stops
at the first bad line and nothing read after it is sent.
"""

from __future__ import annotations

import json
import time
import typing as t

import pytest
from targetrun import record, run_target, schema, start_target

from target_stitch_import.reader import _chunks

if t.TYPE_CHECKING:
    from pathlib import Path

    from conftest import Emulator

TOKEN = "test-token"
PROPS = {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}


def config(emulator: Emulator, **extra: t.Any) -> dict[str, t.Any]:
    """A target config pointing at the emulator."""
    return {"token": TOKEN, "api_url": emulator.url, "max_retry_seconds": 30, **extra}


def reads(*pieces: bytes) -> t.Callable[[int], bytes]:
    """A ``read1`` returning the pieces one by one, then b"" (end of input)."""
    queue = list(pieces)

    def read(size: int) -> bytes:
        assert size > 0
        return queue.pop(0) if queue else b""

    return read


@pytest.mark.parametrize(
    ("pieces", "lines"),
    [
        ((b"a\nb\n",), [[b"a", b"b"]]),
        ((b"a\nb",), [[b"a"], [b"b"]]),  # the last line needs no newline
        ((b"a", b"b", b"c\nd\n"), [[b"abc", b"d"]]),  # a line across three reads
        ((b"a\n", b"", b"b\n"), [[b"a"]]),  # an empty read is the end of input
        ((b"\n\n",), [[b"", b""]]),  # blank lines are lines (the reader skips them)
        ((b'{"x":1}\r\n',), [[b'{"x":1}\r']]),  # CRLF: the CR is JSON whitespace
        ((b"a\n", b"\nb"), [[b"a"], [b""], [b"b"]]),
    ],
)
def test_chunks_are_complete_lines(pieces: tuple[bytes, ...], lines: list[list[bytes]]) -> None:
    assert list(_chunks(reads(*pieces))) == lines


def test_a_long_line_is_joined_once() -> None:
    piece = b"x" * 10_000
    chunks = list(_chunks(reads(*([piece] * 50), b"\n")))
    assert chunks == [[piece * 50]]


def test_an_idle_tap_mid_line_still_gets_its_records_sent(
    emulator: Emulator, tmp_path: Path,
) -> None:
    """Records already read go out by age while the next line is half written."""
    process = start_target(config(emulator, max_batch_age_seconds=0.5), tmp_path)
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(schema("idle", PROPS, ["id"])) + "\n")
        for i in range(3):
            process.stdin.write(json.dumps(record("idle", {"id": i, "name": f"n{i}"})) + "\n")
        half = json.dumps(record("idle", {"id": 3, "name": "split"}))
        process.stdin.write(half[:20])  # the tap stops in the middle of a line
        process.stdin.flush()
        deadline = time.monotonic() + 20
        while emulator.tables().get("idle", 0) < 3:
            assert time.monotonic() < deadline, "records of an idle tap were not sent"
            time.sleep(0.1)
        process.stdin.write(half[20:] + "\n")
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    rows = sorted((row["id"], row["name"]) for row in emulator.rows("idle"))
    assert rows == [(0, "n0"), (1, "n1"), (2, "n2"), (3, "split")]


def test_interleaved_streams_land_in_order_within_each_stream(
    emulator: Emulator, tmp_path: Path,
) -> None:
    """Several streams in one run: every record lands, the last change of a key wins."""
    messages: list[dict[str, t.Any]] = [schema(s, PROPS, ["id"]) for s in ("a", "b", "c")]
    for i in range(3000):
        messages.append(record("abc"[i % 3], {"id": i % 7, "name": f"v{i}"}))
    result = run_target(config(emulator, batch_size_rows=50), messages, tmp_path)
    assert result.returncode == 0, result.stderr
    for offset, stream in enumerate("abc"):
        last = {}
        for i in range(offset, 3000, 3):
            last[i % 7] = f"v{i}"
        assert {row["id"]: row["name"] for row in emulator.rows(stream)} == last


def test_the_first_bad_line_is_reported_and_nothing_after_it_is_sent(
    emulator: Emulator, tmp_path: Path,
) -> None:
    """Bad records in two streams of one run: the earlier line is named, later lines never land."""
    messages: list[dict[str, t.Any]] = [schema(s, PROPS, ["id"]) for s in ("a", "b")]
    for i in range(40):
        stream = "ab"[i % 2]
        data: dict[str, t.Any] = {"id": i, "name": f"v{i}"}
        if i in {21, 30}:  # line 2 + 1 + i: b's record 21 (line 24), a's record 30 (line 33)
            data["name"] = 5
        messages.append(record(stream, data))
    result = run_target(config(emulator, batch_size_rows=1), messages, tmp_path)
    assert result.returncode == 1
    line = result.last_error_line
    assert "input line 24:" in line, line
    assert "stream 'b'" in line
    tables = emulator.tables()
    landed = {row["id"] for stream in "ab" if stream in tables for row in emulator.rows(stream)}
    assert all(i < 21 for i in landed), sorted(landed)


def test_a_record_before_its_schema_in_a_run_is_named(
    emulator: Emulator, tmp_path: Path,
) -> None:
    messages = [
        schema("a", PROPS, ["id"]),
        record("a", {"id": 1}),
        record("late", {"id": 2}),
        record("a", {"id": 3}),
    ]
    result = run_target(config(emulator), messages, tmp_path)
    assert result.returncode == 1
    assert "input line 3: stream 'late': a RECORD came before" in result.last_error_line


def test_a_run_mixing_mapped_and_pass_through_streams_lands_both(
    emulator: Emulator, tmp_path: Path,
) -> None:
    """One stream takes the SDK's path (a stream map), the other the lean one, interleaved."""
    messages: list[dict[str, t.Any]] = [
        schema("plain", PROPS, ["id"]),
        schema("mapped", {**PROPS, "secret": {"type": ["null", "string"]}}, ["id"]),
    ]
    for i in range(200):
        messages.append(record("plain", {"id": i, "name": f"p{i}"}))
        messages.append(record("mapped", {"id": i, "name": f"m{i}", "secret": "s"}))
    settings = config(emulator, stream_maps={"mapped": {"secret": "__NULL__"}})
    result = run_target(settings, messages, tmp_path)
    assert result.returncode == 0, result.stderr
    plain = {row["id"]: row["name"] for row in emulator.rows("plain")}
    mapped = emulator.rows("mapped")
    assert plain == {i: f"p{i}" for i in range(200)}
    assert sorted(row["id"] for row in mapped) == list(range(200))
    assert all(row.get("secret") is None for row in mapped)
