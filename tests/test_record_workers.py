"""Record workers: the same bodies, STATE, warnings and errors as one process, on a bad day too.

Every run here is the installed command with a large input (the workers take reads of many
lines once they are up), compared with the same input taken with ``record_workers: 0``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import typing as t
from pathlib import Path

import pytest
from targetrun import COMMAND, Result, read_line, record, run_target, schema, start_target, state
from test_record_paths import PROPS, bodies, warnings

if t.TYPE_CHECKING:
    from conftest import Emulator

_PREPARED = re.compile(r"Record workers: (\d+); they prepared ([\d,]+) records? of ([\d,]+) read")


def varied_input(blocks: int = 40, per_block: int = 500) -> list[dict[str, t.Any] | str]:
    """Many records of three streams, the unusual ones sprinkled in, a SCHEMA change halfway."""
    lines: list[dict[str, t.Any] | str] = [
        schema("t", PROPS, ["id"], ["u"]),
        schema("k", {"n": {"type": "integer"}, "v": {"type": ["null", "number"]}}),
        schema("s", {"code": {"type": "string"}, "at": {"type": "string", "format": "date-time"}},
               ["code"], ["at"]),
    ]
    number = 0
    for block in range(blocks):
        if block == blocks // 2:  # a new field: the workers get new specs, nothing is lost
            lines.append(schema("t", {**PROPS, "added": {"type": ["null", "integer"]}}, ["id"], ["u"]))
        for i in range(per_block):
            number += 1
            day = 1 + number % 28
            data: dict[str, t.Any] = {
                "id": number % 7000,  # repeats: ties broken in read order
                "name": f"n{number}",
                "price": 1.5,
                "at": f"2024-03-{day:02d}T12:34:56.789012Z",
                "u": f"2024-03-{day:02d}T00:00:00Z",
            }
            if i % 97 == 0:
                data["at"] = "2024-03-01T12:34:56"  # naive: taken as UTC
            if i % 89 == 0:
                data["u"] = None  # no bookmark value: time-based
            if i % 83 == 0:
                data["_sdc_extracted_at"] = "2024-01-01T00:00:00Z"  # SDK metadata: dropped
            if i % 79 == 0:
                data["extra"] = "no schema"  # warned once
            if i % 73 == 0:
                data["day"] = "2024-03-01"
                data["clock"] = "12:34:56"
            version = 5 if i % 71 == 0 else None
            lines.append(record("t", data, version))
            if i % 5 == 0:
                lines.append(record("k", {"n": number, "v": 12345678901234567890.123456789}))
            if i % 11 == 0:
                lines.append('{"type":"RECORD","stream":"s","record":{"code":"c%d","at":"2024-01-0%dT00:00:00+05:30"}}'
                             % (number % 50, 1 + number % 9))
            if i % 7 == 0:
                lines.append('{"type": "RECORD", "stream": "t", "record": {"id": %d, "price": 1.500, '
                             '"u": "2024-03-03T00:00:00Z"}}' % (number % 7000))  # spaces, digits kept
        lines.append(state({"block": block}))
    return lines


def with_workers_up(
    config: dict[str, t.Any],
    lines: list[dict[str, t.Any] | str],
    directory: Path,
    command: t.Sequence[str] = (),
) -> Result:
    """Run the command with the input's first 3,000 lines, then the rest once the workers are up
    (so they surely take part, however busy the machine)."""
    process = start_target(config, directory, command)
    try:
        _feed(process, lines[:3000])
        if Path("/proc/self/task").exists():
            _wait_for_workers(process.pid, int(config.get("record_workers", 2)))
        time.sleep(1.0)  # they are ready well within this (a fraction of a second)
        _feed(process, lines[3000:])
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    return Result(process.returncode, stdout, stderr)


def prepared(result: Result) -> tuple[int, int]:
    """(records the workers prepared, records read) from the run's summary line."""
    match = _PREPARED.search(result.stderr)
    assert match, "the workers did not start"
    return int(match.group(2).replace(",", "")), int(match.group(3).replace(",", ""))


def one_and_many(
    tmp_path: Path,
    lines: list[dict[str, t.Any] | str],
    **settings: t.Any,
) -> tuple[Result, Result, list[bytes]]:
    """Run without and with workers; the bodies must be the same. Returns both results."""
    outputs = []
    results = []
    for workers in (0, 2):
        out = tmp_path / f"workers-{workers}"
        config = {"token": "t", "dry_run_dir": str(out), "record_workers": workers, **settings}
        result = run_target(config, lines, tmp_path) if not workers else with_workers_up(config, lines, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        results.append(result)
        outputs.append(bodies(out))
    assert outputs[0] == outputs[1]
    return results[0], results[1], outputs[0]


def test_workers_give_the_bodies_and_warnings_of_one_process(tmp_path: Path) -> None:
    lines = varied_input()
    alone, shared, sent = one_and_many(tmp_path, lines)
    assert warnings(alone) == warnings(shared)
    assert "Record workers" not in alone.stderr
    done, read = prepared(shared)
    records = sum(1 for line in lines if "RECORD" in (line if isinstance(line, str) else line["type"]))
    assert read == records
    assert done > records // 2, "most records should have been prepared by the workers"
    assert shared.states == alone.states == []  # dry runs write no STATE
    assert len(sent) > 3


def test_workers_without_validation(tmp_path: Path) -> None:
    _, shared, _ = one_and_many(tmp_path, varied_input(blocks=16), validate_records=False)
    assert prepared(shared)[0] > 0


def test_state_and_rows_match_one_process(
    start_emulator: t.Callable[..., Emulator], tmp_path: Path,
) -> None:
    """Through the emulator: the same STATE lines, in order, and the same rows."""
    lines = varied_input(blocks=20)
    landed = []
    for workers in (0, 2):
        emulator = start_emulator()
        config = {"token": "test-token", "api_url": emulator.url, "record_workers": workers}
        result = with_workers_up(config, lines, tmp_path) if workers else run_target(config, lines, tmp_path)
        assert result.returncode == 0, result.stderr
        rows = {name: sorted(emulator.rows(name), key=repr) for name in ("t", "k", "s")}
        landed.append((result.states, rows))
    assert landed[0][0] == landed[1][0]
    assert landed[0][0][-1] == {"block": 19}
    assert landed[0][1] == landed[1][1]


@pytest.mark.parametrize(
    ("bad_line", "error"),
    [
        (record("t", {"id": "not a number", "u": "2024-03-01T00:00:00Z"}), "stream 't': record id='not a number'"),
        ('{"type": "RECORD", "stream": "t", "record": {"id": 1,', "not valid JSON"),
        ('{"type": "RECORD", "stream": "t", "record": [1, 2]}', "stream 't': a RECORD's \"record\" must be"),
    ],
)
def test_a_bad_line_deep_in_the_input_is_named_and_nothing_after_it_is_sent(
    tmp_path: Path, bad_line: dict[str, t.Any] | str, error: str,
) -> None:
    lines = varied_input(blocks=10)
    bad = len(lines) - 300
    lines.insert(bad, bad_line)
    first_after = min(_number(line) for line in lines[bad + 1 :] if _number(line) is not None)
    errors = []
    for workers in (0, 2):
        out = tmp_path / f"out-{workers}"
        config = {"token": "t", "dry_run_dir": str(out), "record_workers": workers}
        result = with_workers_up(config, lines, tmp_path) if workers else run_target(config, lines, tmp_path)
        assert result.returncode == 1
        errors.append(result.last_error_line)
        for path in out.glob("0*.json") if out.exists() else []:  # complete bodies: nothing read later
            body = json.loads(path.read_bytes())
            names = [m["data"].get("name") for m in body["messages"] if "data" in m]
            assert all(int(name[1:]) < first_after for name in names if name), path.name
    assert errors[0] == errors[1]
    assert errors[0].startswith(f"target-stitch-import: error: input line {bad + 1}: {error}")


def _number(line: dict[str, t.Any] | str) -> int | None:
    """The running number of a varied_input RECORD of stream t (its ``name``), else None."""
    if isinstance(line, dict) and line.get("type") == "RECORD" and "name" in line["record"]:
        return int(line["record"]["name"][1:])
    return None


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text(encoding="utf-8")
        found.update(int(p) for p in text.split())
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


def _wait_for_workers(pid: int, count: int) -> set[int]:
    deadline = time.monotonic() + 30
    while len(children := _children(pid)) < count:
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.05)
    return children


def _feed(process: t.Any, lines: list[dict[str, t.Any] | str]) -> None:  # noqa: ANN401
    process.stdin.write("".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in lines))
    process.stdin.flush()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_a_worker_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    lines = varied_input()
    half = len(lines) // 2
    expected_dir = tmp_path / "alone"
    alone = run_target({"token": "t", "dry_run_dir": str(expected_dir), "record_workers": 0}, lines, tmp_path)
    assert alone.returncode == 0, alone.stderr
    out = tmp_path / "killed"
    process = start_target({"token": "t", "dry_run_dir": str(out), "record_workers": 2}, tmp_path)
    try:
        _feed(process, lines[:half])
        victim = min(_wait_for_workers(process.pid, 2))
        time.sleep(0.3)  # the workers are taking reads
        os.kill(victim, signal.SIGKILL)
        _feed(process, lines[half:])
        process.stdin.close()
        assert process.wait(timeout=120) == 0
        stderr = process.stderr.read()
    finally:
        process.kill()
    assert "A record worker stopped; the rest of the input is prepared in the reading process" in stderr
    assert "Traceback" not in stderr
    assert bodies(out) == bodies(expected_dir)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_workers_never_outlive_the_run(tmp_path: Path, how: signal.Signals) -> None:
    process = start_target({"token": "t", "dry_run_dir": str(tmp_path / "out"), "record_workers": 2}, tmp_path)
    try:
        _feed(process, varied_input(blocks=10))
        workers = _wait_for_workers(process.pid, 2)
        os.kill(process.pid, how)
        process.wait(timeout=30)
        stderr = process.stderr.read()
    finally:
        process.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived the run"
        time.sleep(0.05)
    assert "Traceback" not in stderr


def test_a_burst_is_sent_before_the_next_one_arrives(emulator: Emulator, tmp_path: Path) -> None:
    """Reads handed to workers are taken before the reader waits for more input."""
    config = {"token": "test-token", "api_url": emulator.url, "record_workers": 2,
              "max_batch_age_seconds": 0.5}
    process = start_target(config, tmp_path)
    try:
        _feed(process, [schema("b", {"id": {"type": "integer"}}, ["id"])])
        for burst in range(3):
            _feed(process, [record("b", {"id": burst * 5000 + i}) for i in range(5000)])
            _feed(process, [state({"burst": burst})])
            assert json.loads(read_line(process, 30)) == {"burst": burst}
            assert emulator.tables()["b"] == (burst + 1) * 5000
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()


#: Runs the command given after it with every descriptor up to 1,100 taken (inherited), so
#: the target's pipes to its workers get numbers above select()'s limit of 1,024.
_OCCUPY_LOW_DESCRIPTORS = """
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (4096 if hard == resource.RLIM_INFINITY else min(4096, hard), hard))
while (fd := os.open(os.devnull, os.O_RDONLY)) < 1100:
    os.set_inheritable(fd, True)
os.execv(sys.argv[1], sys.argv[1:])
"""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_workers_work_with_descriptor_numbers_above_select_limits(tmp_path: Path) -> None:
    import resource  # noqa: PLC0415 - POSIX only

    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 2048:
        pytest.skip("the hard limit of open files is too low")
    lines = varied_input(blocks=8)
    out = tmp_path / "high"
    config = {"token": "t", "dry_run_dir": str(out), "record_workers": 2}
    command = [sys.executable, "-c", _OCCUPY_LOW_DESCRIPTORS, *COMMAND]  # COMMAND[0]: a path
    result = with_workers_up(config, lines, tmp_path, command)
    assert result.returncode == 0, result.stderr
    assert "record worker stopped" not in result.stderr
    assert prepared(result)[0] > 0
    alone = tmp_path / "alone"
    run_target({"token": "t", "dry_run_dir": str(alone), "record_workers": 0}, lines, tmp_path)
    assert bodies(out) == bodies(alone)
