"""The bad day: hostile input, a closed stdout, signals and failures while the tap is idle.

Each test runs the installed command with real stdin/stdout against the emulator and checks
the exit code, the one error line, that nothing read after a fatal line was sent and that no
STATE moved past unacknowledged records.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import typing as t
from pathlib import Path

import pytest
from targetrun import COMMAND, Result, record, run_target, schema, start_target, state, write_config

if t.TYPE_CHECKING:
    from conftest import Emulator

TOKEN = "test-token"
ID = {"id": {"type": "integer"}}
TAPS = Path(__file__).parent / "taps"


def config(emulator: Emulator, **extra: t.Any) -> dict[str, t.Any]:
    """A target config pointing at the emulator."""
    return {"token": TOKEN, "api_url": emulator.url, "max_retry_seconds": 30, **extra}


def feed(process: subprocess.Popen[str], *messages: dict[str, t.Any] | str) -> None:
    """Write messages to a running target's stdin."""
    assert process.stdin is not None
    for message in messages:
        process.stdin.write((message if isinstance(message, str) else json.dumps(message)) + "\n")
    process.stdin.flush()


def finish(process: subprocess.Popen[str], timeout: float) -> Result:
    """Wait for a running target (``timeout`` s at most) and collect what it printed."""
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"the target did not end within {timeout} s")
    return Result(process.returncode, stdout or "", stderr or "")


# BATCH messages


def test_batch_messages_load_like_records(emulator: Emulator, tmp_path: Path) -> None:
    tap_config = tmp_path / "tap.json"
    tap_config.write_text(
        json.dumps(
            {
                "count": 25,
                "batch_config": {
                    "encoding": {"format": "jsonl", "compression": "gzip"},
                    "storage": {"root": (tmp_path / "files").as_uri(), "prefix": "b-"},
                    "batch_size": 10,
                },
            },
        ),
    )
    tap = subprocess.run(
        [sys.executable, str(TAPS / "sdk_batch_tap.py"), "--config", str(tap_config)],
        capture_output=True, text=True, timeout=120, check=True,
    )
    kinds = [json.loads(line)["type"] for line in tap.stdout.splitlines()]
    assert kinds.count("BATCH") == 3
    assert "RECORD" not in kinds
    result = run_target(config(emulator, batch_size_rows=7), tap.stdout.splitlines(), tmp_path)
    assert result.returncode == 0, result.stderr
    rows = sorted(emulator.rows("items"), key=lambda row: row["id"])
    assert [row["id"] for row in rows] == list(range(25))
    assert str(rows[4]["price"]) == "4.10"  # exact, as the tap wrote it
    assert rows[4]["updated_at"] == "2024-01-01T00:00:04Z"
    last_state = json.loads(tap.stdout.splitlines()[-1])["value"]
    assert result.states[-1] == last_state


@pytest.mark.parametrize(
    ("encoding", "manifest", "expected"),
    [
        ({"format": "jsonl", "compression": "gzip"}, ["file:///nonexistent/x.json.gz"], "cannot be read"),
        ({"format": "parquet", "compression": "gzip"}, ["file:///nonexistent/x.parquet"], "set the tap's batch_config"),
        ({"format": "jsonl"}, "file:///x", 'needs a "manifest" list'),
    ],
    ids=["missing-file", "parquet", "bad-manifest"],
)
def test_unreadable_batch_stops_before_any_later_state(
    emulator: Emulator, tmp_path: Path, encoding: dict[str, t.Any], manifest: object, expected: str,
) -> None:
    batch = {"type": "BATCH", "stream": "b", "encoding": encoding, "manifest": manifest}
    result = run_target(
        config(emulator),
        [schema("b", ID, ["id"]), record("b", {"id": 1}), batch, state({"after": "batch"}), record("b", {"id": 2})],
        tmp_path,
    )
    assert result.returncode == 1
    assert result.last_error_line.startswith("target-stitch-import: error: input line 3: stream 'b':")
    assert expected in result.last_error_line
    assert result.states == []
    assert emulator.stats()["batches"] == 0


# A closed stdout, failures while the tap is idle, signals


def test_a_closed_stdout_ends_the_run_promptly(emulator: Emulator, tmp_path: Path) -> None:
    process = start_target(config(emulator, max_batch_age_seconds=0.2), tmp_path)
    assert process.stdout is not None
    process.stdout.close()  # `target | head -0`: the reader of STATE went away
    feed(process, schema("s", ID, ["id"]), record("s", {"id": 1}), state({"n": 1}))
    # stdin stays open: the tap is idle, yet the run must end (not at the next record).
    assert process.wait(timeout=20) == 1
    assert process.stdin is not None
    process.stdin.close()
    assert process.stderr is not None
    result = Result(1, "", process.stderr.read())
    assert "standard output was closed" in result.last_error_line


def test_a_closed_stdout_at_the_first_state(emulator: Emulator, tmp_path: Path) -> None:
    path = write_config(tmp_path, config(emulator))
    process = subprocess.Popen(
        [*COMMAND, "--config", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    process.stdout.close()
    result = finish_with_input(process, [state({"echo": 1}), schema("s", ID, ["id"]), record("s", {"id": 1})])
    assert result.returncode == 1
    assert "standard output was closed" in result.last_error_line
    assert "BrokenPipeError" in result.last_error_line
    assert "Exception ignored" not in result.stderr


def finish_with_input(process: subprocess.Popen[str], messages: list[dict[str, t.Any]]) -> Result:
    """Write all messages (ignoring a target that stopped reading), then wait."""
    assert process.stdin is not None
    try:
        for message in messages:
            process.stdin.write(json.dumps(message) + "\n")
        process.stdin.close()
    except BrokenPipeError:
        pass
    process.wait(timeout=30)
    assert process.stderr is not None
    return Result(process.returncode, "", process.stderr.read())


def test_an_api_error_ends_an_idle_run_promptly(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "n": {"type": "integer"}}
    process = start_target(config(emulator, validate_records=False, max_batch_age_seconds=0.2), tmp_path)
    feed(process, schema("bad", props, ["id"]), record("bad", {"id": 1, "n": "x"}), state({"never": 1}))
    # The tap stays idle with stdin open; the 400 must still end the run at once.
    assert process.wait(timeout=20) == 1
    result = finish(process, timeout=5)
    assert result.states == []
    assert "table 'bad': HTTP 400" in result.last_error_line


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_retry_waits_at_once(
    start_emulator: t.Callable[..., Emulator], tmp_path: Path, signum: int,
) -> None:
    emulator = start_emulator("--fault", "503:1", "--retry-after", "30", token=TOKEN)
    process = start_target(config(emulator, max_retry_seconds=600), tmp_path)
    feed(process, schema("s", ID, ["id"]), record("s", {"id": 1}), state({"n": 1}))
    assert process.stdin is not None
    process.stdin.close()  # end of input: the target now waits for the acknowledgement
    process.stdin = None  # (closed: communicate() must not flush it)
    time.sleep(2)  # the first try was answered 503 with Retry-After: 30
    process.send_signal(signum)
    result = finish(process, timeout=10)
    assert result.returncode == 128 + signum
    assert result.states == []
    name = signal.Signals(signum).name
    assert f"stopped by {name}: 1 of 1 records read were not acknowledged" in result.last_error_line
    assert TOKEN not in result.stderr


def test_input_without_line_breaks_is_refused_before_it_fills_the_memory(tmp_path: Path) -> None:
    out = tmp_path / "bodies"
    process = start_target({"token": TOKEN, "dry_run_dir": str(out)}, tmp_path)
    feed(process, schema("s", ID, ["id"]), *(record("s", {"id": i}) for i in range(3)))
    stdin = process.stdin
    assert stdin is not None

    def endless() -> None:  # a tap gone wrong: bytes without end, no line break
        with contextlib.suppress(OSError, ValueError):
            while True:
                stdin.write("x" * 65536)

    threading.Thread(target=endless, daemon=True).start()
    process.stdin = None  # the writer owns it (communicate() must not touch it)
    result = finish(process, timeout=60)
    assert result.returncode == 1
    assert result.last_error_line.startswith(
        "target-stitch-import: error: input line 5: a line longer than 67,108,864 bytes",
    )


# Hostile input lines


def deep_record(depth: int) -> str:
    """A RECORD whose data nests ``depth`` objects."""
    return '{"type": "RECORD", "stream": "s", "record": {"id": 2, "d": ' + '{"x": ' * depth + "1" + "}" * depth + "}}"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"type": "SCHEMA", "stream": "k", "schema": {"properties": {}}, "key_properties": [1]}',
         "stream 'k': key_properties must be a list of property names (texts); it holds a number"),
        ('{"type": "SCHEMA", "stream": "k", "schema": {"properties": []}}', '"properties" must be an object'),
        ('{"type": "SCHEMA", "stream": "k", "schema": [1]}', 'SCHEMA needs a "schema" object'),
        ('{"type": "SCHEMA", "stream": "k", "schema": {"properties": {"a": 5}}}', "field 'a' must be an object"),
        ('{"type": "SCHEMA", "stream": 7, "schema": {"properties": {}}}', 'needs a "stream" name'),
        ('{"type": "RECORD", "stream": "s", "record": [1]}', "stream 's': a RECORD's \"record\" must be a JSON object"),
        ('{"type": "RECORD", "stream": "s", "record": {"id": 2}, "version": "v1"}', '"version" must be an integer'),
        ('{"type": "ACTIVATE_VERSION", "stream": "s", "version": 1.5}', 'needs an integer "version"'),
        ('{"type": "BATCH", "stream": "s", "manifest": []}', 'needs an "encoding" object'),
        (deep_record(1_100), "nested too deeply"),
        (deep_record(600), "record id=2 is nested 601 levels deep; the Import API takes at most 100"),
        ('{"type": "RECORD", "stream": "s", "record": {"id": 2, "d": [' + ",".join(["0"] * 10_000) + "]}}",
         "record id=2 has 10,001 data points; the Import API takes at most 10,000"),
        ('{"type": "STATE", "value": "\xff"}', "not valid JSON"),
    ],
    ids=[
        "key-not-text", "properties-array", "schema-array", "field-schema-number", "stream-number",
        "record-array", "version-text", "version-float", "batch-no-encoding", "record-1100-deep",
        "record-600-deep", "10001-points", "invalid-utf8",
    ],
)
def test_hostile_lines_end_with_one_line_and_nothing_after_is_sent(
    emulator: Emulator, tmp_path: Path, line: str, expected: str,
) -> None:
    head = [schema("s", ID, ["id"]), record("s", {"id": 1}), state({"before": 1})]
    path = write_config(tmp_path, config(emulator))
    text = "".join(json.dumps(m) + "\n" for m in head) + line + "\n"
    text += json.dumps(record("s", {"id": 3})) + "\n" + json.dumps(state({"after": 1})) + "\n"
    done = subprocess.run(
        [*COMMAND, "--config", str(path)],
        input=text.encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"),
        capture_output=True, timeout=120, check=False,
    )
    result = Result(done.returncode, done.stdout.decode(), done.stderr.decode(errors="replace"))
    assert result.returncode == 1
    assert result.last_error_line.startswith("target-stitch-import: error: input line 4: ")
    assert expected in result.last_error_line
    assert result.states == []
    stored = {row["id"] for row in emulator.rows("s")} if emulator.tables() else set()
    assert 3 not in stored


def test_message_types_are_case_insensitive_and_unknown_ones_skipped(emulator: Emulator, tmp_path: Path) -> None:
    messages = [
        {**schema("c", ID, ["id"]), "type": "schema"},
        {"type": "FOO", "anything": 1},
        {**record("c", {"id": 1}), "type": "Record"},
        {"type": "foo"},
        {"type": "Bar"},
        {**state({"n": 1}), "type": "state"},
    ]
    result = run_target(config(emulator), messages, tmp_path)
    assert result.returncode == 0, result.stderr
    assert emulator.rows("c") == [{"id": 1}]
    assert result.states == [{"n": 1}]
    assert result.stderr.count("are not part of the Singer spec") == 2  # FOO (any case), BAR


def test_key_properties_given_as_one_name(emulator: Emulator, tmp_path: Path) -> None:
    head = schema("one", {"id": {"type": "integer"}, "v": {"type": "integer"}})
    head["key_properties"] = "id"  # not a list: one name, not the keys 'i' and 'd'
    result = run_target(
        config(emulator), [head, record("one", {"id": 1, "v": 1}), record("one", {"id": 1, "v": 2})], tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert emulator.rows("one") == [{"id": 1, "v": 2}]


def test_a_bookmark_far_beyond_any_sequence_is_taken_at_once(emulator: Emulator, tmp_path: Path) -> None:
    head = schema("big", {"id": {"type": "integer"}, "u": {"type": "number"}}, ["id"], ["u"])
    lines = [json.dumps(head), '{"type": "RECORD", "stream": "big", "record": {"id": 1, "u": 1e1000000}}']
    result = run_target(config(emulator), lines, tmp_path, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "is outside the sequence range" in result.stderr
    assert len(emulator.rows("big")) == 1


# Settings and dry-run files


def test_hostile_stream_names_in_dry_run(tmp_path: Path) -> None:
    out = tmp_path / "bodies"
    names = ["s" * 300, "a\x00b/../c", "..", "ok_name"]
    messages: list[dict[str, t.Any]] = []
    for name in names:
        messages += [schema(name, ID, ["id"]), record(name, {"id": 1})]
    result = run_target({"token": TOKEN, "dry_run_dir": str(out)}, messages, tmp_path)
    assert result.returncode == 0, result.stderr
    files = sorted(out.iterdir())
    assert len(files) == len(names)
    assert all(path.parent == out and len(path.name) < 120 for path in files)
    assert sorted(json.loads(path.read_text())["table_name"] for path in files) == sorted(names)


def test_dry_run_dir_naming_a_file_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    result = run_target({"token": TOKEN, "dry_run_dir": str(a_file)}, [], tmp_path)
    assert result.returncode == 1
    assert "dry_run_dir" in result.last_error_line
    assert "writable directory" in result.last_error_line


def test_a_config_file_that_is_not_there_is_named_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-config.json"
    result = subprocess.run(
        [*COMMAND, "--config", str(missing)],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert str(missing) in errors[0]
    assert "bug" not in errors[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 +* ((", "input line 1: stream 's': stream_maps: Failed to parse expression 1 +* (("),
        ("no_such_name + 1", "input line 2: stream 's': stream_maps: Failed to evaluate"),
    ],
    ids=["does-not-parse", "fails-on-a-record"],
)
def test_a_bad_stream_map_is_named_in_one_line(tmp_path: Path, expression: str, expected: str) -> None:
    out = tmp_path / "bodies"
    settings = {"token": TOKEN, "dry_run_dir": str(out), "stream_maps": {"s": {"x": expression}}}
    result = run_target(settings, [schema("s", ID, ["id"]), record("s", {"id": 1})], tmp_path)
    assert result.returncode == 1
    assert result.last_error_line.startswith("target-stitch-import: error: " + expected)
    assert not out.exists() or not any(out.iterdir())


def test_stream_maps_set_to_null_means_none(tmp_path: Path) -> None:
    out = tmp_path / "bodies"
    settings = {"token": TOKEN, "dry_run_dir": str(out), "stream_maps": None}
    result = run_target(settings, [schema("s", ID, ["id"]), record("s", {"id": 1})], tmp_path)
    assert result.returncode == 0, result.stderr
    assert [json.loads(path.read_text())["messages"][0]["data"] for path in out.iterdir()] == [{"id": 1}]


@pytest.mark.parametrize("token", [123456789, ["secret-in-a-list"], {"value": "secret-in-an-object"}])
def test_a_token_of_the_wrong_type_is_never_echoed(tmp_path: Path, token: object) -> None:
    result = run_target({"token": token, "api_url": "http://127.0.0.1:9"}, [], tmp_path)
    assert result.returncode == 1
    assert "config['token'] must be a string (its value is secret and not shown)" in result.last_error_line
    for secret in ("123456789", "secret-in"):
        assert secret not in result.stderr
