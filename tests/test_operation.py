"""Everyday operation: progress lines, the end-of-run summary, a short first-contact window."""

from __future__ import annotations

import json
import platform
import re
import time
import typing as t

from httpstub import HttpStub
from targetrun import read_line, record, run_target, schema, start_target, state

from target_stitch_import.cli import map_large_buffers

if t.TYPE_CHECKING:
    from pathlib import Path

    import pytest
    from conftest import Emulator

TOKEN = "test-token"


def test_progress_lines_while_running_and_a_summary_at_the_end(
    start_emulator: t.Callable[..., Emulator], tmp_path: Path,
) -> None:
    emulator = start_emulator("--latency", "100", token=TOKEN)
    process = start_target(
        {"token": TOKEN, "api_url": emulator.url, "progress_interval_seconds": 0.5,
         "max_batch_age_seconds": 0.2, "batch_size_rows": 10},
        tmp_path,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(schema("p", {"id": {"type": "integer"}}, ["id"])) + "\n")
    for i in range(25):
        process.stdin.write(json.dumps(record("p", {"id": i})) + "\n")
    process.stdin.write(json.dumps(state({"n": 25})) + "\n")
    process.stdin.flush()
    assert json.loads(read_line(process, timeout=20)) == {"n": 25}
    time.sleep(1.5)  # idle: progress lines keep coming
    process.stdin.close()
    assert process.wait(timeout=30) == 0
    assert process.stderr is not None
    stderr = process.stderr.read()
    progress = re.findall(r"Progress: (.*)", stderr)
    assert progress, stderr
    assert re.search(
        r"25 records read, 25 sent, 25 acknowledged \(0\.0 MB\); \d+ records?/s over the last \d+ s; "
        r"last STATE written \d+ s ago",
        progress[-1],
    ), progress[-1]
    assert re.search(r"Table 'p': 25 messages in 3 requests, [\d,]+ bytes \(largest [\d,]+ bytes\), 0 retries", stderr)
    assert re.search(r"Total: 25 messages in 3 requests to 1 table, ", stderr)
    assert '"metric":"http_request_count"' in stderr or "http_request_count" in stderr


def test_progress_can_be_turned_off(emulator: Emulator, tmp_path: Path) -> None:
    result = run_target(
        {"token": TOKEN, "api_url": emulator.url, "progress_interval_seconds": 0},
        [schema("p", {"id": {"type": "integer"}}, ["id"]), record("p", {"id": 1})],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "Progress:" not in result.stderr
    assert "Table 'p': 1 message in 1 request, " in result.stderr
    # The lean path counts records for the SDK in chunks: the last chunk is counted too.
    assert '"metric":"record_count","value":1,' in result.stderr


def test_an_api_never_reached_is_given_up_after_the_first_contact_window(tmp_path: Path) -> None:
    with HttpStub() as stub:
        url = stub.url  # stopped at once: nothing listens there any more
    started = time.monotonic()
    result = run_target(
        {"token": TOKEN, "api_url": url, "first_contact_seconds": 2, "max_retry_seconds": 600},
        [schema("p", {"id": {"type": "integer"}}, ["id"]), record("p", {"id": 1}), state({"n": 1})],
        tmp_path,
        timeout=120,
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 60  # not max_retry_seconds
    line = result.last_error_line
    assert f"connection to {url}/v2/import/status failed" in line
    assert "first_contact_seconds=2" in line
    assert result.states == []


def test_large_buffers_get_their_own_mapping_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI fixes glibc's mmap threshold (peak memory = what is live), unless told not to."""
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert map_large_buffers() is False  # the user's own setting wins
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    assert map_large_buffers() is (platform.libc_ver()[0] == "glibc")


def test_the_status_check_starts_with_the_first_record(emulator: Emulator, tmp_path: Path) -> None:
    """The API's status is checked while the first batch fills, not once its body is done."""
    process = start_target(
        {"token": TOKEN, "api_url": emulator.url, "max_batch_age_seconds": 600}, tmp_path,
    )
    assert process.stdin is not None
    try:
        process.stdin.write(json.dumps(schema("early", {"id": {"type": "integer"}}, ["id"])) + "\n")
        process.stdin.write(json.dumps(record("early", {"id": 1})) + "\n")
        process.stdin.flush()
        deadline = time.monotonic() + 20
        while "GET /v2/import/status" not in emulator.stderr():
            assert time.monotonic() < deadline, "no status check while the first batch fills"
            time.sleep(0.1)
        assert "POST /v2/import/batch" not in emulator.stderr()  # the batch is still open
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    log = emulator.stderr()
    assert log.count("GET /v2/import/status") == 1
    assert log.count("POST /v2/import/batch") == 1
