"""Reading never waits for the API where correctness does not need it (no timing is asserted
beyond the order of events), and parallel, reordered, retried requests land exactly what a
sequential run lands.
"""

from __future__ import annotations

import json
import threading
import time
import typing as t

from httpstub import Exchange, HttpStub, answer, head
from targetrun import record, run_target, schema, state

if t.TYPE_CHECKING:
    from pathlib import Path

    from conftest import Emulator

TOKEN = "test-token"
STATUS_OK = answer(200, {"status": "OK"})


class SlowApi:
    """Answers each POST 201 after ``delay`` seconds, recording when it arrived and left."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.arrived: list[float] = []
        self.answered: list[float] = []
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> None:
        body = exchange.read_body()
        with self._lock:
            self.arrived.append(time.monotonic())
            self.bodies.append(body)
        exchange.stub.stopping.wait(self.delay)
        data = b'{"status": "OK", "message": "Batch Accepted!"}'
        with self._lock:
            self.answered.append(time.monotonic())
        exchange.write(head(201, {"Content-Type": "application/json"}, data) + data)


def test_reading_goes_on_while_requests_are_outstanding(tmp_path: Path) -> None:
    api = SlowApi(delay=1.0)
    messages: list[dict[str, t.Any]] = [schema("s", {"id": {"type": "integer"}}, ["id"])]
    for i in range(400):
        messages.append(record("s", {"id": i}))
        if i % 50 == 49:
            messages.append(state({"upto": i}))
    with HttpStub(STATUS_OK, api) as stub:
        result = run_target(
            {"token": TOKEN, "api_url": stub.url, "batch_size_rows": 50}, messages, tmp_path,
        )
    assert result.returncode == 0, result.stderr
    first_answer = min(api.answered)
    # Before the first body was acknowledged, the target had read and sent the records of
    # three more bodies (max_requests_in_flight defaults to 4): the SDK's size drains no
    # longer wait for the API.
    assert sum(1 for arrival in api.arrived if arrival < first_answer) == 4
    ids = sorted(m["data"]["id"] for body in api.bodies for m in json.loads(body)["messages"])
    assert ids == list(range(400))
    assert all(len(json.loads(body)["messages"]) == 50 for body in api.bodies)
    assert result.states[-1] == {"upto": 399}


def mixed_input() -> list[dict[str, t.Any]]:
    """Two keyed streams with repeated updates across batches, one keyless, STATE often."""
    props = {"id": {"type": "integer"}, "v": {"type": "integer"}, "u": {"type": "string", "format": "date-time"}}
    messages: list[dict[str, t.Any]] = [
        schema("a", props, ["id"], ["u"]),
        schema("b", props, ["id"]),
        schema("log", {"n": {"type": "integer"}}),
    ]
    for step in range(300):
        key = step % 37
        stamp = f"2024-01-01T00:{step // 60:02d}:{step % 60:02d}Z"
        messages.append(record("a", {"id": key, "v": step, "u": stamp}))
        messages.append(record("b", {"id": step % 11, "v": step, "u": stamp}))
        if step % 3 == 0:
            messages.append(record("log", {"n": step}))
        if step % 25 == 24:
            messages.append(state({"step": step}))
    return messages


def landed(emulator: Emulator) -> dict[str, list[dict[str, t.Any]]]:
    """Every table's rows, keyed tables sorted by key, the log sorted by value."""
    rows: dict[str, list[dict[str, t.Any]]] = {}
    for table in ("a", "b"):
        rows[table] = sorted(emulator.rows(table), key=lambda row: row["id"])
    rows["log"] = sorted(emulator.rows("log"), key=lambda row: row["n"])
    return rows


def test_parallel_reordered_and_retried_requests_land_like_a_sequential_run(
    start_emulator: t.Callable[..., Emulator], tmp_path: Path,
) -> None:
    messages = mixed_input()
    sent_states = [m["value"] for m in messages if m["type"] == "STATE"]
    calm = start_emulator(token=TOKEN)
    sequential = run_target(
        {"token": TOKEN, "api_url": calm.url, "batch_size_rows": 10, "max_requests_in_flight": 1},
        messages, tmp_path,
    )
    assert sequential.returncode == 0, sequential.stderr
    stormy = start_emulator(
        "--latency", "0-300", "--fault", "503:0.15", "--fault", "429:0.1", "--fault", "drop:0.05",
        "--seed", "7", token=TOKEN,
    )
    parallel = run_target(
        {"token": TOKEN, "api_url": stormy.url, "batch_size_rows": 10, "max_requests_in_flight": 8,
         "max_retry_seconds": 120},
        messages, tmp_path, timeout=300,
    )
    assert parallel.returncode == 0, parallel.stderr
    assert "retrying in" in parallel.stderr  # faults were injected and survived
    assert landed(stormy) == landed(calm)
    assert stormy.stats()["ties"] == 0
    for result in (sequential, parallel):
        # Each STATE line is one the tap sent, in the tap's order, never repeated, the
        # last one last: whatever order the answers came back in.
        positions = [sent_states.index(value) for value in result.states]
        assert positions == sorted(set(positions))
        assert result.states[-1] == sent_states[-1]
