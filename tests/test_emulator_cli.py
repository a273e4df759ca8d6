"""The ``stitch-import-emulator`` command line, run as a subprocess: ``show`` and ``serve``."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import typing as t
from decimal import Decimal

import pytest
import requests

from target_stitch_import.contract import BATCH_PATH

if t.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conftest import Emulator

COMMAND = [sys.executable, "-m", "target_stitch_import.emulator.cli"]
HEADERS = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}
CUSTOMERS = (
    b'{"table_name": "customers", "key_names": ["id"], "schema": {"properties": {"id": {}, '
    b'"name": {}, "balance": {}, "tags": {}}}, "messages": ['
    b'{"action": "upsert", "sequence": 2, "data": {"id": 1, "name": "Ada", '
    b'"balance": 12345678901234567890.123456789, "tags": ["a", {"b": 1E-9}]}}, '
    b'{"action": "upsert", "sequence": 1, "data": {"id": 2, "name": "Bo", "balance": -0.10}}, '
    b'{"action": "upsert", "sequence": 1, "data": {"id": 1, "name": "stale"}}]}'
)
EVENTS = (
    b'{"table_name": "events", "schema": {"properties": {}}, "messages": ['
    b'{"action": "upsert", "sequence": 1, "data": {"kind": "click"}}]}'
)


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``stitch-import-emulator ARGS``."""
    result = subprocess.run(
        [*COMMAND, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def loaded(shared_emulator: Emulator) -> Emulator:
    """An emulator whose database holds ``customers`` (2 rows) and ``events`` (1 row)."""
    for body in (CUSTOMERS, EVENTS):
        response = requests.post(
            shared_emulator.url + BATCH_PATH, data=body, headers=HEADERS, timeout=30
        )
        assert response.status_code == 201, response.text
    return shared_emulator


def test_show_tables(loaded: Emulator) -> None:
    text = run("show", "--database", loaded.database).stdout
    assert text == "schema: import_api\ntable      rows\ncustomers  2\nevents     1\n"
    document = json.loads(run("show", "--database", loaded.database, "--json").stdout)
    assert document == {"schema": "import_api", "tables": {"customers": 2, "events": 1}}


def test_show_stats(loaded: Emulator) -> None:
    lines = run("show", "--database", loaded.database, "--stats").stdout.splitlines()
    assert lines[0] == "schema: import_api"
    assert lines[1].split() == [
        "table",
        "rows",
        "batches",
        "messages",
        "bytes",
        "stale_ignored",
        "ties",
        "active_version",
        "staged",
    ]
    assert lines[2].split() == ["customers", "2", "1", "3", str(len(CUSTOMERS)), "1", "0", "-", "-"]
    assert lines[3].split() == ["events", "1", "1", "1", str(len(EVENTS)), "0", "0", "-", "-"]
    assert lines[4].split() == [
        "(total)",
        "3",
        "2",
        "4",
        str(len(CUSTOMERS) + len(EVENTS)),
        "1",
        "0",
    ]
    document = json.loads(run("show", "--database", loaded.database, "--stats", "--json").stdout)
    assert document["stats"] == loaded.stats()
    assert document["stats"]["stale_ignored"] == 1


def test_show_rows_as_text(loaded: Emulator) -> None:
    text = run("show", "customers", "--database", loaded.database).stdout
    assert text.splitlines() == [
        "id  name  balance                         tags",
        '1   Ada   12345678901234567890.123456789  ["a",{"b":1E-9}]',
        "2   Bo    -0.10                           null",
    ]
    system = run("show", "customers", "--database", loaded.database, "--system").stdout
    assert system.splitlines()[0].split()[:4] == [
        "_sdc_sequence",
        "_sdc_table_version",
        "_sdc_received_at",
        "_sdc_primary_key",
    ]


def test_show_rows_as_json_keeps_exact_numbers(loaded: Emulator) -> None:
    text = run("show", "customers", "--database", loaded.database, "--json").stdout
    assert "12345678901234567890.123456789" in text
    assert "1E-9" in text
    assert "-0.10" in text
    assert json.loads(text, parse_float=Decimal) == loaded.rows("customers")
    assert json.loads(text, parse_float=Decimal)[0]["balance"] == Decimal(
        "12345678901234567890.123456789"
    )
    document = json.loads(
        run("show", "events", "--database", loaded.database, "--json", "--stats").stdout
    )
    assert document == {
        "table": "events",
        "rows": [{"kind": "click"}],
        "stats": {
            "rows": 1,
            "batches": 1,
            "messages": 1,
            "bytes": len(EVENTS),
            "stale_ignored": 0,
            "ties": 0,
            "active_version": None,
            "staged": [],
        },
    }
    stats_text = run("show", "events", "--database", loaded.database, "--stats").stdout.splitlines()
    assert stats_text[0] == "kind"
    expected = ["events", "1", "1", "1", str(len(EVENTS)), "0", "0", "-", "-"]
    assert stats_text[-1].split() == expected


def test_show_stats_reports_a_pending_full_table_load(
    start_emulator: Callable[..., Emulator],
) -> None:
    emulator = start_emulator()

    def send(version: int, *messages: dict[str, t.Any]) -> None:
        document = {
            "table_name": "full",
            "key_names": ["id"],
            "schema": {"properties": {"id": {}}},
            "table_version": version,
            "messages": list(messages),
        }
        response = requests.post(
            emulator.url + BATCH_PATH, data=json.dumps(document), headers=HEADERS, timeout=30
        )
        assert response.status_code == 201, response.text

    def upsert(sequence: int, key: int) -> dict[str, t.Any]:
        return {"action": "upsert", "sequence": sequence, "data": {"id": key}}

    activate = {"action": "activate_version", "sequence": 9}
    send(1, upsert(1, 1), activate)
    send(2, upsert(2, 2), upsert(2, 3))
    send(3, upsert(3, 4))
    lines = run("show", "--database", emulator.database, "--stats").stdout.splitlines()
    assert lines[2].split()[:2] == ["full", "1"]
    assert lines[2].split()[-2:] == ["1", "v2:2,v3:1"]
    assert run("show", "full", "--database", emulator.database).stdout.splitlines() == ["id", "1"]
    document = json.loads(run("show", "--database", emulator.database, "--stats", "--json").stdout)
    assert document["stats"]["tables"]["full"]["staged"] == [
        {"version": 2, "rows": 2},
        {"version": 3, "rows": 1},
    ]
    send(2, activate)
    table = run("show", "full", "--database", emulator.database, "--stats").stdout.splitlines()
    assert table[:3] == ["id", "2", "3"]
    assert table[-1].split()[-2:] == ["2", "v3:1"]


def test_show_unknown_table_and_missing_database(loaded: Emulator, tmp_path: Path) -> None:
    unknown = run("show", "nope", "--database", loaded.database, check=False)
    assert unknown.returncode == 1
    assert "no table 'nope'" in unknown.stderr
    assert unknown.stdout == ""
    missing = run("show", "--database", tmp_path / "missing.sqlite", check=False)
    assert missing.returncode == 1
    assert "no emulator database at" in missing.stderr
    assert not (tmp_path / "missing.sqlite").exists()
    other = tmp_path / "other.sqlite"
    other.write_bytes(b"not a database at all" * 100)
    assert run("show", "--database", other, check=False).returncode == 1


def test_schema_name(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator("--schema", "my_source")
    emulator.stop()
    assert run("show", "--database", emulator.database).stdout.startswith("schema: my_source\n")
    clash = run(
        "serve", "--port", "0", "--database", emulator.database, "--schema", "other", check=False
    )
    assert clash.returncode == 1
    assert "holds the schema 'my_source', not 'other'" in clash.stderr
    emulator.args = []
    emulator.start()
    assert emulator.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--fault", "404:1"], "unknown fault kind"),
        (["--fault", "drop"], "expected KIND:SHARE"),
        (["--fault", "500:0.7", "--fault", "503:0.7"], "add up to more than 1"),
        (["--fault", "500:2"], "between 0 and 1"),
        (["--latency", "20-10"], "MIN-MAX"),
        (["--latency", "soon"], "--latency"),
    ],
)
def test_serve_refuses_bad_options(tmp_path: Path, options: list[str], message: str) -> None:
    result = run(
        "serve", "--port", "0", "--database", tmp_path / "db.sqlite", *options, check=False
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_serve_reports_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", port, "--database", tmp_path / "db.sqlite", check=False)
    assert result.returncode == 1
    assert "stitch-import-emulator:" in result.stderr


def test_stop_finishes_requests_in_flight(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator("--latency", "500")
    answers: list[requests.Response] = []
    sender = threading.Thread(
        target=lambda: answers.append(
            requests.post(emulator.url + BATCH_PATH, data=EVENTS, headers=HEADERS, timeout=30),
        ),
    )
    sender.start()
    time.sleep(0.2)
    emulator.stop()
    sender.join()
    assert emulator.returncode == 0
    assert answers[0].status_code == 201
    assert emulator.rows("events") == [{"kind": "click"}]


def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*COMMAND, "serve", "--port", "0", "--database", str(tmp_path / "db.sqlite")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert (
            t.cast("t.IO[str]", process.stdout)
            .readline()
            .startswith("listening on http://127.0.0.1:")
        )
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert "any non-empty bearer token" in t.cast("t.IO[str]", process.stderr).read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
