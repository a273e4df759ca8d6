"""End to end: the installed target, real stdin/stdout, against the emulator on loopback."""

from __future__ import annotations

import decimal
import json
import os
import subprocess
import time
import typing as t
from pathlib import Path

import pytest
from targetrun import (
    COMMAND,
    activate_version,
    lines,
    read_line,
    record,
    run_target,
    schema,
    start_target,
    state,
)

if t.TYPE_CHECKING:
    from conftest import Emulator

TOKEN = "test-token"
D = decimal.Decimal

ORDERS_PROPERTIES = {
    "id": {"type": "integer"},
    "customer": {"type": ["null", "string"]},
    "amount": {"type": ["null", "number"]},
    "tiny": {"type": ["null", "number"]},
    "placed_at": {"type": ["null", "string"], "format": "date-time"},
    "lines": {
        "type": ["null", "array"],
        "items": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}},
        },
    },
    "address": {
        "type": ["null", "object"],
        "properties": {
            "city": {"type": ["null", "string"]},
            "geo": {"type": ["null", "object"], "properties": {"lat": {"type": "number"}}},
        },
    },
    "updated_at": {"type": ["null", "string"], "format": "date-time"},
}


def config(emulator: Emulator, **extra: t.Any) -> dict[str, t.Any]:
    """A target config pointing at the emulator."""
    return {"token": TOKEN, "api_url": emulator.url, "max_retry_seconds": 30, **extra}


def assert_clean(stderr: str) -> None:
    """The token never shows up in what the target prints."""
    assert TOKEN not in stderr


def test_multi_stream_input_lands_exactly(emulator: Emulator, tmp_path: Path) -> None:
    orders = [
        {
            "id": 1,
            "customer": "Zoë Ångström 🐍",
            "amount": "@AMOUNT@",  # replaced below by exact number text
            "tiny": "@TINY@",
            "placed_at": "2024-03-01T12:34:56.789012+00:00",
            "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}],
            "address": {"city": "Zürich", "geo": {"lat": 47.3769}},
            "updated_at": "2024-03-01T12:35:00Z",
        },
        {
            "id": 2,
            "customer": None,
            "amount": -2341.62,
            "tiny": None,
            "placed_at": None,
            "lines": [],
            "address": None,
            "updated_at": "2024-03-02T00:00:00Z",
        },
    ]
    text_lines = [
        json.dumps(schema("orders", ORDERS_PROPERTIES, ["id"], ["updated_at"])),
        json.dumps(schema("people", {"name": {"type": "string"}, "tags": {"type": "array"}}, ["name"])),
    ]
    for order in orders:
        line = json.dumps(record("orders", order))
        text_lines.append(
            line.replace('"@AMOUNT@"', "12345678901234567890.123456789").replace(
                '"@TINY@"', "1E-9",
            ),
        )
    text_lines.append(json.dumps(record("people", {"name": "Ünïcødé", "tags": ["a", "ß", "日本"]})))
    text_lines.append(json.dumps(state({"bookmarks": {"orders": "2024-03-02T00:00:00Z"}})))
    result = run_target(config(emulator), text_lines, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_clean(result.stderr)
    assert result.states == [{"bookmarks": {"orders": "2024-03-02T00:00:00Z"}}]

    rows = {row["id"]: row for row in emulator.rows("orders")}
    assert rows[1]["amount"] == D("12345678901234567890.123456789")
    assert rows[1]["tiny"] == D("1E-9")
    assert rows[1]["customer"] == "Zoë Ångström 🐍"
    assert rows[1]["placed_at"] == "2024-03-01T12:34:56.789012Z"
    assert rows[1]["lines"] == [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}]
    assert rows[1]["address"] == {"city": "Zürich", "geo": {"lat": D("47.3769")}}
    assert rows[2]["amount"] == D("-2341.62")
    assert rows[2]["customer"] is None
    assert rows[2]["lines"] == []
    assert emulator.rows("people") == [{"name": "Ünïcødé", "tags": ["a", "ß", "日本"]}]


def test_a_stale_replay_never_wins(emulator: Emulator, tmp_path: Path) -> None:
    props = {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "updated_at": {"type": "string", "format": "date-time"},
    }
    head = schema("customers", props, ["id"], ["updated_at"])
    first = run_target(
        config(emulator),
        [
            head,
            record("customers", {"id": 1, "name": "Finn v2", "updated_at": "2024-05-02T00:00:00Z"}),
            record("customers", {"id": 2, "name": "Jake v1", "updated_at": "2024-05-01T00:00:00Z"}),
            # In the same run, an older version read later:
            record("customers", {"id": 1, "name": "Finn v1", "updated_at": "2024-05-01T00:00:00Z"}),
        ],
        tmp_path,
    )
    assert first.returncode == 0, first.stderr
    # A later run replays from an older bookmark: older rows, and one newer.
    second = run_target(
        config(emulator),
        [
            head,
            record("customers", {"id": 1, "name": "Finn v1", "updated_at": "2024-05-01T00:00:00Z"}),
            record("customers", {"id": 2, "name": "Jake v2", "updated_at": "2024-05-03T00:00:00Z"}),
        ],
        tmp_path,
    )
    assert second.returncode == 0, second.stderr
    names = {row["id"]: row["name"] for row in emulator.rows("customers")}
    assert names == {1: "Finn v2", 2: "Jake v2"}


def test_same_bookmark_value_later_read_wins(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "v": {"type": "integer"}, "u": {"type": "integer"}}
    messages = [schema("bulk", props, ["id"], ["u"])]
    messages += [record("bulk", {"id": i, "v": 1, "u": 5}) for i in range(50)]
    messages += [record("bulk", {"id": 7, "v": 2, "u": 5})]
    result = run_target(config(emulator), messages, tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["id"]: row["v"] for row in emulator.rows("bulk")}
    assert len(rows) == 50
    assert rows[7] == 2
    assert emulator.stats()["ties"] == 0


def test_bodies_respect_byte_and_message_limits(start_emulator: t.Callable[..., Emulator], tmp_path: Path) -> None:
    max_bytes = 5_000
    emulator = start_emulator("--max-body-bytes", str(max_bytes), token=TOKEN)
    props = {"id": {"type": "integer"}, "text": {"type": "string"}}
    messages = [schema("sized", props, ["id"])]
    messages += [record("sized", {"id": i, "text": "é" * (i % 97)}) for i in range(600)]
    result = run_target(
        config(emulator, max_batch_bytes=max_bytes, batch_size_rows=25), messages, tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert len(emulator.rows("sized")) == 600
    assert emulator.stats()["batches"] >= 600 // 25

    dry = tmp_path / "bodies"
    dry_run = run_target(
        {"token": TOKEN, "api_url": emulator.url, "dry_run_dir": str(dry),
         "max_batch_bytes": max_bytes, "batch_size_rows": 25},
        messages,
        tmp_path,
    )
    assert dry_run.returncode == 0, dry_run.stderr
    bodies = sorted(dry.iterdir())
    ids = []
    for path in bodies:
        raw = path.read_bytes()
        assert len(raw) <= max_bytes
        body = json.loads(raw)
        assert 1 <= len(body["messages"]) <= 25
        ids += [m["data"]["id"] for m in body["messages"]]
    assert sorted(ids) == list(range(600))
    # Byte-cut bodies were filled: adding their successor's first message would not fit.
    assert max(len(p.read_bytes()) for p in bodies) > max_bytes * 0.8


def test_a_record_too_large_for_any_batch_stops_the_run(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "string"}, "blob": {"type": "string"}}
    result = run_target(
        config(emulator, max_batch_bytes=2_000),
        [schema("big", props, ["id"]), record("big", {"id": "k-42", "blob": "x" * 5_000})],
        tmp_path,
    )
    assert result.returncode == 1
    last = result.last_error_line
    assert "stream 'big'" in last
    assert "k-42" in last
    assert "max_batch_bytes" in last


def test_age_flush_sends_while_the_tap_is_idle(emulator: Emulator, tmp_path: Path) -> None:
    process = start_target(config(emulator, max_batch_age_seconds=0.5), tmp_path)
    assert process.stdin is not None
    assert process.stdout is not None
    props = {"id": {"type": "integer"}}
    process.stdin.write(json.dumps(schema("slow", props, ["id"])) + "\n")
    for i in range(3):
        process.stdin.write(json.dumps(record("slow", {"id": i})) + "\n")
    process.stdin.write(json.dumps(state({"at": 3})) + "\n")
    process.stdin.flush()
    # The tap goes idle; the batch must go out by age, and its STATE right after.
    line = read_line(process, timeout=15)
    assert json.loads(line) == {"at": 3}
    assert len(emulator.rows("slow")) == 3
    process.stdin.write(json.dumps(record("slow", {"id": 3})) + "\n")
    process.stdin.close()
    assert process.wait(timeout=60) == 0
    assert len(emulator.rows("slow")) == 4


def test_state_only_after_acknowledgement_in_order(start_emulator: t.Callable[..., Emulator], tmp_path: Path) -> None:
    emulator = start_emulator("--latency", "150", token=TOKEN)
    process = start_target(
        config(emulator, batch_size_rows=10, max_batch_age_seconds=0.3), tmp_path,
    )
    assert process.stdin is not None
    props = {"id": {"type": "integer"}}
    process.stdin.write(json.dumps(schema("a", props, ["id"])) + "\n")
    process.stdin.write(json.dumps(schema("b", props, ["id"])) + "\n")
    for step in range(1, 4):
        for i in range(25):
            process.stdin.write(json.dumps(record("a", {"id": step * 100 + i})) + "\n")
        process.stdin.write(json.dumps(record("b", {"id": step})) + "\n")
        process.stdin.write(json.dumps(state({"step": step})) + "\n")
        process.stdin.flush()
        line = read_line(process, timeout=20)
        # When a STATE appears, every record read before it is in the database.
        a_ids = {row["id"] for row in emulator.rows("a")}
        b_ids = {row["id"] for row in emulator.rows("b")}
        assert {s * 100 + i for s in range(1, step + 1) for i in range(25)} <= a_ids
        assert set(range(1, step + 1)) <= b_ids
        assert json.loads(line) == {"step": step}
    process.stdin.close()
    assert process.wait(timeout=60) == 0
    assert process.stdout is not None
    assert process.stdout.read() == ""  # the latest was written already; nothing repeated


def test_states_are_ordered_latest_last_and_never_empty(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}}
    messages: list[dict[str, t.Any]] = [state({"bookmarks": {"echo": 1}}), schema("s", props, ["id"]), state({})]
    for i in range(5):
        messages += [record("s", {"id": i}), state({"n": i})]
    result = run_target(config(emulator, batch_size_rows=2), messages, tmp_path)
    assert result.returncode == 0, result.stderr
    states = result.states
    assert states[0] == {"bookmarks": {"echo": 1}}  # a STATE before any SCHEMA comes out unchanged
    assert states[-1] == {"n": 4}
    assert {} not in states
    numbers = [s["n"] for s in states[1:]]
    assert numbers == sorted(numbers)


def test_activate_version_replaces_the_table(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "name": {"type": "string"}}
    head = schema("full", props, ["id"])
    first = run_target(
        config(emulator),
        [head, activate_version("full", 1)]
        + [record("full", {"id": i, "name": f"v1-{i}"}) for i in range(5)],
        tmp_path,
    )
    assert first.returncode == 0, first.stderr
    # SDK style: one ACTIVATE_VERSION before the records.
    second = run_target(
        config(emulator),
        [head, activate_version("full", 2)]
        + [record("full", {"id": i, "name": f"v2-{i}"}) for i in (3, 4, 5)],
        tmp_path,
    )
    assert second.returncode == 0, second.stderr
    assert sorted((r["id"], r["name"]) for r in emulator.rows("full")) == [
        (3, "v2-3"), (4, "v2-4"), (5, "v2-5"),
    ]
    # singer-io style: versioned records, ACTIVATE_VERSION after them.
    third = run_target(
        config(emulator),
        [head]
        + [record("full", {"id": i, "name": f"v3-{i}"}, version=3) for i in (5, 6)]
        + [activate_version("full", 3)],
        tmp_path,
    )
    assert third.returncode == 0, third.stderr
    assert sorted((r["id"], r["name"]) for r in emulator.rows("full")) == [(5, "v3-5"), (6, "v3-6")]


def test_validate_only_sends_nothing_to_batch(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}}
    result = run_target(
        config(emulator, validate_only=True),
        [schema("v", props, ["id"]), record("v", {"id": 1}), state({"x": 1})],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.states == []  # nothing loaded, so no STATE
    assert emulator.tables() == {}
    assert emulator.stats()["batches"] == 0


def test_validate_only_reports_what_stitch_would_reject(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "n": {"type": "integer"}}
    result = run_target(
        config(emulator, validate_only=True, validate_records=False),
        [schema("v", props, ["id"]), record("v", {"id": 1, "n": "not a number"})],
        tmp_path,
    )
    assert result.returncode == 1
    last = result.last_error_line
    assert "table 'v'" in last
    assert "HTTP 400" in last


def test_dry_run_sends_nothing(emulator: Emulator, tmp_path: Path) -> None:
    out = tmp_path / "dry"
    props = {"id": {"type": "integer"}}
    result = run_target(
        {"token": TOKEN, "api_url": emulator.url, "dry_run_dir": str(out)},
        [schema("d", props, ["id"]), record("d", {"id": 1}), state({"x": 1})],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.states == []
    assert emulator.stats()["batches"] == 0
    (body_file,) = out.iterdir()
    body = json.loads(body_file.read_text())
    assert body["table_name"] == "d"
    assert body["key_names"] == ["id"]
    assert body["messages"][0]["data"] == {"id": 1}


def test_a_400_stops_the_run_with_one_readable_line(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "n": {"type": "integer"}}
    result = run_target(
        config(emulator, validate_records=False),
        [
            schema("bad", props, ["id"]),
            record("bad", {"id": 1, "n": "not a number"}),
            state({"never": True}),
        ],
        tmp_path,
    )
    assert result.returncode == 1
    assert result.states == []
    assert_clean(result.stderr)
    last = result.last_error_line
    assert last.startswith("target-stitch-import: error: table 'bad': HTTP 400: ")
    assert "did not conform to schema" in last
    assert "Traceback" not in result.stderr


def test_local_validation_names_stream_key_and_field(emulator: Emulator, tmp_path: Path) -> None:
    props = {"id": {"type": "integer"}, "n": {"type": "integer"}}
    result = run_target(
        config(emulator),
        [schema("bad", props, ["id"]), record("bad", {"id": 7, "n": "x"})],
        tmp_path,
    )
    assert result.returncode == 1
    last = result.last_error_line
    assert "stream 'bad'" in last
    assert "id=7" in last
    assert "#/n" in last
    assert emulator.stats()["batches"] == 0


def test_wrong_token_stops_the_run_without_printing_it(start_emulator: t.Callable[..., Emulator], tmp_path: Path) -> None:
    emulator = start_emulator(token="the-right-one")
    result = run_target(
        config(emulator),
        [schema("t", {"id": {"type": "integer"}}, ["id"]), record("t", {"id": 1})],
        tmp_path,
    )
    assert result.returncode == 1
    assert_clean(result.stderr)
    assert "HTTP 401" in result.last_error_line
    assert "Not Authorized" in result.stderr


@pytest.mark.parametrize(
    "fault",
    [
        ["--fault", "503:1", "--fault-limit", "2"],
        ["--fault", "500:1", "--fault-limit", "1"],
        ["--fault", "429:1", "--fault-limit", "2", "--retry-after", "1"],
        ["--fault", "drop:1", "--fault-limit", "2"],
        ["--status-503", "2"],
    ],
    ids=["503", "500", "429", "drop", "status-503"],
)
def test_retries_survive_a_flaky_api(
    start_emulator: t.Callable[..., Emulator], tmp_path: Path, fault: list[str],
) -> None:
    emulator = start_emulator(*fault, token=TOKEN)
    props = {"id": {"type": "integer"}}
    started = time.monotonic()
    result = run_target(
        config(emulator),
        [schema("f", props, ["id"])] + [record("f", {"id": i}) for i in range(10)] + [state({"ok": 1})],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.states == [{"ok": 1}]
    assert len(emulator.rows("f")) == 10
    if "429" in fault:
        assert time.monotonic() - started >= 2  # Retry-After: 1, twice
    assert_clean(result.stderr)


def test_timeouts_are_retried(start_emulator: t.Callable[..., Emulator], tmp_path: Path) -> None:
    emulator = start_emulator("--fault", "stall:1", "--fault-limit", "1", "--stall-seconds", "3", token=TOKEN)
    props = {"id": {"type": "integer"}}
    result = run_target(
        config(emulator, request_timeout_seconds=1),
        [schema("slow", props, ["id"]), record("slow", {"id": 1}), state({"ok": 1})],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.states == [{"ok": 1}]
    assert len(emulator.rows("slow")) == 1


def test_retries_give_up_after_max_retry_seconds(start_emulator: t.Callable[..., Emulator], tmp_path: Path) -> None:
    emulator = start_emulator("--fault", "503:1", token=TOKEN)
    result = run_target(
        config(emulator, max_retry_seconds=2),
        [schema("down", {"id": {"type": "integer"}}, ["id"]), record("down", {"id": 1}), state({"x": 1})],
        tmp_path,
    )
    assert result.returncode == 1
    assert result.states == []
    last = result.last_error_line
    assert "table 'down': HTTP 503" in last
    assert "gave up" in last


def test_null_key_is_refused_before_sending(emulator: Emulator, tmp_path: Path) -> None:
    result = run_target(
        config(emulator),
        [schema("k", {"id": {"type": ["null", "integer"]}}, ["id"]), record("k", {"id": None})],
        tmp_path,
    )
    assert result.returncode == 1
    assert "key property 'id'" in result.last_error_line


def test_config_from_environment(emulator: Emulator, tmp_path: Path) -> None:
    env = {**os.environ, "TARGET_STITCH_IMPORT_TOKEN": TOKEN, "TARGET_STITCH_IMPORT_API_URL": emulator.url}
    done = subprocess.run(
        [*COMMAND, "--config", "ENV"],
        input=lines([schema("env", {"id": {"type": "integer"}}, ["id"]), record("env", {"id": 1})]),
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert emulator.rows("env") == [{"id": 1}]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"type": "RECORD", oops', "input line 2: not valid JSON"),
        ("[1, 2]", "input line 2: a Singer message is a JSON object; this line holds an array"),
        ('{"foo": 1}', 'input line 2: a Singer message needs a "type"'),
        ('{"type": "RECORD", "stream": "nope", "record": {"id": 1}}', "stream 'nope': a RECORD came before"),
        ('{"type": "STATE"}', 'input line 2: a STATE message needs a "value"'),
        ('{"type": "ACTIVATE_VERSION", "stream": "x", "version": 1}', "ACTIVATE_VERSION came before"),
    ],
)
def test_bad_input_lines_end_with_one_line(emulator: Emulator, tmp_path: Path, line: str, expected: str) -> None:
    secret_line = line.replace('"id": 1', '"id": "do-not-echo"')
    result = run_target(config(emulator), [state({"first": 1}), secret_line], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert expected in result.last_error_line
    assert "do-not-echo" not in result.stderr  # the line's data is never repeated


def test_blank_lines_are_skipped(emulator: Emulator, tmp_path: Path) -> None:
    result = run_target(
        config(emulator),
        ["", json.dumps(schema("b", {"id": {"type": "integer"}}, ["id"])), "  ", json.dumps(record("b", {"id": 1}))],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert emulator.rows("b") == [{"id": 1}]


def test_state_values_keep_exact_numbers(emulator: Emulator, tmp_path: Path) -> None:
    # The SDK's own STATE writer crashes on floats (read as Decimal); ours writes them exactly.
    value_line = '{"type": "STATE", "value": {"rate": 0.1, "big": 12345678901234567890.5, "n": 3}}'
    result = run_target(config(emulator), [value_line], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"rate":0.1,"big":12345678901234567890.5,"n":3}'


def test_sigterm_stops_at_once_with_the_acknowledged_state(emulator: Emulator, tmp_path: Path) -> None:
    process = start_target(config(emulator, max_batch_age_seconds=1), tmp_path)
    assert process.stdin is not None
    assert process.stdout is not None

    def send(first: int, upto: int) -> None:
        for i in range(first, upto + 1):
            process.stdin.write(json.dumps(record("term", {"id": i})) + "\n")
        process.stdin.write(json.dumps(state({"upto": upto})) + "\n")
        process.stdin.flush()

    process.stdin.write(json.dumps(schema("term", {"id": {"type": "integer"}}, ["id"])) + "\n")
    send(0, 4)
    assert json.loads(read_line(process, timeout=20)) == {"upto": 4}  # running, handlers set
    send(5, 9)
    time.sleep(0.3)  # read at once, but younger than the age limit: not sent
    process.send_signal(15)
    assert process.wait(timeout=10) == 128 + 15
    assert process.stdout.read() == ""  # nothing unacknowledged is covered by a STATE
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert "Traceback" not in stderr
    assert "| stopped by SIGTERM: " in stderr  # the error line's text, as it is
    assert sorted(row["id"] for row in emulator.rows("term")) == list(range(5))


def test_a_single_bookmark_name_as_text_is_understood(emulator: Emulator, tmp_path: Path) -> None:
    head = schema("one", {"id": {"type": "integer"}, "u": {"type": "integer"}}, ["id"])
    head["bookmark_properties"] = "u"  # not a list, as some taps write it
    result = run_target(
        config(emulator),
        [head, record("one", {"id": 1, "u": 9}), record("one", {"id": 1, "u": 3})],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert emulator.rows("one") == [{"id": 1, "u": 9}]


@pytest.mark.parametrize(
    ("key", "expected"),
    [({"a": 1}, "holds an object"), ([1], "holds an array"), ("k" * 256, "256 characters long")],
    ids=["object", "array", "long-string"],
)
def test_keys_stitch_would_refuse_stop_the_run(
    emulator: Emulator, tmp_path: Path, key: object, expected: str,
) -> None:
    result = run_target(
        config(emulator, validate_records=False),
        [schema("keys", {"id": {}}, ["id"]), record("keys", {"id": key})],
        tmp_path,
    )
    assert result.returncode == 1
    assert "stream 'keys'" in result.last_error_line
    assert expected in result.last_error_line


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"max_batch_bytes": 4_000_001}, "max_batch_bytes must be between"),
        ({"batch_size_rows": 20_001}, "batch_size_rows must be between"),
        ({"max_requests_in_flight": 0}, "max_requests_in_flight must be between"),
        ({"max_buffered_bytes": 3_999_999}, "max_buffered_bytes must be at least max_batch_bytes"),
        ({"api_url": "ftp://example"}, "api_url must start with http"),
        ({"validate_only": True, "dry_run_dir": "out"}, "cannot be used together"),
        ({"region": "mars"}, "'mars' is not one of ['us', 'eu']"),
        ({"token": None}, "'token' is a required property"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, settings: dict[str, t.Any], expected: str) -> None:
    cfg = {"token": TOKEN, "api_url": "http://127.0.0.1:9", **settings}
    result = run_target({k: v for k, v in cfg.items() if v is not None}, [], tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_memory_ceiling_sends_the_largest_open_batch(emulator: Emulator, tmp_path: Path) -> None:
    process = start_target(
        config(emulator, max_batch_bytes=100_000, max_buffered_bytes=100_000, max_batch_age_seconds=600),
        tmp_path,
    )
    assert process.stdin is not None
    props = {"id": {"type": "integer"}, "pad": {"type": "string"}}
    process.stdin.write(json.dumps(schema("a", props, ["id"])) + "\n")
    process.stdin.write(json.dumps(schema("b", props, ["id"])) + "\n")
    for i in range(60):  # ~60 KB open in table a
        process.stdin.write(json.dumps(record("a", {"id": i, "pad": "x" * 1_000})) + "\n")
    process.stdin.write(json.dumps(state({"after": "a"})) + "\n")
    for i in range(50):  # ~50 KB more in table b: together above the ceiling
        process.stdin.write(json.dumps(record("b", {"id": i, "pad": "y" * 1_000})) + "\n")
    process.stdin.flush()
    # Neither batch is full nor old: only the ceiling can send a's batch and free its STATE.
    assert json.loads(read_line(process, timeout=20)) == {"after": "a"}
    assert len(emulator.rows("a")) == 60
    process.stdin.close()
    assert process.wait(timeout=60) == 0
    assert len(emulator.rows("b")) == 50
