"""The emulator facing a hostile client, over real HTTP to the ``serve`` subprocess.

Each hostile request is sent while a second client measures ``GET /v2/import/status``: the
status answers stay fast, the hostile request gets its 4xx (a valid one its 2xx) quickly,
and the emulator serves normally afterwards. Also: the memory bound under 24 concurrent
4 MB bodies (the subprocess's peak RSS), control characters in the access log and in
``show``, the command line's checks, and one identity per numeric key value.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import subprocess
import sys
import threading
import time
import typing as t
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from target_stitch_import.contract import BATCH_PATH, STATUS_PATH, VALIDATE_PATH
from target_stitch_import.emulator.text import display_width, escape_controls, log_field

if t.TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conftest import Emulator

TOKEN = "test-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
COMMAND = [sys.executable, "-m", "target_stitch_import.emulator.cli"]
#: Slowest acceptable status answer while a hostile request runs.
STATUS_SECONDS = 0.2
#: The peak RSS the README promises for 24 concurrent 4 MB bodies (default settings).
PEAK_RSS_BYTES = 400 * 2**20


def body(schema: dict[str, t.Any], *data: dict[str, t.Any], table: str = "t") -> bytes:
    """A batch of upserts (sequence 1, 2...) with these properties."""
    messages = [
        {"action": "upsert", "sequence": number, "data": each}
        for number, each in enumerate(data, start=1)
    ]
    document = {"table_name": table, "schema": {"properties": schema}, "messages": messages}
    return json.dumps(document).encode()


def raw_body(properties: str, data: str) -> bytes:
    """A one-record batch written by hand (numbers JSON can hold but Python must not expand)."""
    return (
        f'{{"table_name":"t","schema":{{"properties":{properties}}},'
        f'"messages":[{{"action":"upsert","sequence":1,"data":{data}}}]}}'
    ).encode()


def nested(levels: int) -> str:
    return '{"items":' * levels + "{}" + "}" * levels


def raw_request(url: str, request: bytes) -> bytes:
    """Send raw bytes; return the answer's status line and headers."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


class StatusProbe:
    """Measures ``GET /status`` latency from a second client, in a thread."""

    def __init__(self, url: str) -> None:
        self._url = url + STATUS_PATH
        self._stop = threading.Event()
        self._samples: list[tuple[float, float]] = []  # (start, seconds)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                started = time.monotonic()
                assert session.get(self._url, timeout=30).status_code == 200
                self._samples.append((started, time.monotonic() - started))
                self._stop.wait(0.02)

    def slowest_between(self, start: float, end: float) -> float:
        """The slowest status answer begun during [start, end], and of the next three."""
        while sum(1 for begun, _ in self._samples if begun >= start) < 3:
            time.sleep(0.01)
        after = [(begun, seconds) for begun, seconds in self._samples if begun >= start]
        return max(
            seconds for number, (begun, seconds) in enumerate(after) if number < 3 or begun <= end
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def probe_of(start_emulator: Callable[..., Emulator]) -> Iterator[tuple[Emulator, StatusProbe]]:
    emulator = start_emulator()
    probe = StatusProbe(emulator.url)
    yield emulator, probe
    probe.stop()


# (name, body, status, text in the answer)
HOSTILE: list[tuple[str, bytes, int, str]] = [
    # 155 bytes that used to stall every client for 10 s: 10**10000000 is a multiple of 0.01
    ("multipleOf-huge", raw_body('{"x":{"multipleOf":0.01}}', '{"x":1e10000000}'), 200, "valid"),
    (
        "multipleOf-tiny",
        raw_body('{"x":{"multipleOf":0.01}}', '{"x":1e-10000000}'),
        400,
        "multiple",
    ),
    ("multipleOf-of-tiny", raw_body('{"x":{"multipleOf":1e-10000000}}', '{"x":0.5}'), 200, "valid"),
    ("exponent-out-of-range", raw_body("{}", '{"x":1e999999999999999999999}'), 400, "range"),
    ("integer-of-5000-digits", raw_body("{}", '{"x":' + "9" * 5000 + "}"), 400, "digits"),
    (
        "pattern-backtracking",
        body({"x": {"pattern": "^(a+)+$"}}, {"x": "a" * 24 + "!"}),
        400,
        "does not match",
    ),
    (
        "pattern-over-budget",
        body({"x": {"pattern": "^(a|aa)+$"}}, {"x": "a" * 60 + "!"}),
        400,
        "budget of 2 s",
    ),
    ("pattern-too-large", body({"x": {"pattern": "a{100000}"}}, {"x": "a"}), 400, "units"),
    (
        "patternProperties-unmodelled",
        body({"x": {"patternProperties": {"(?i)(a)\\1": {}}}}, {"x": {}}),
        400,
        "backreference",
    ),
    ("ref-not-a-string", body({"x": {"$ref": 5}}, {"x": 1}), 400, "$ref"),
    ("schema-nested-976", raw_body('{"x":' + nested(976) + "}", '{"x":1}'), 400, "nested"),
]


def test_hostile_requests_get_4xx_at_once_and_others_are_served(
    probe_of: tuple[Emulator, StatusProbe],
) -> None:
    emulator, probe = probe_of
    with requests.Session() as session:
        for name, data, status, text in HOSTILE:
            started = time.monotonic()
            answer = session.post(
                emulator.url + VALIDATE_PATH, data=data, headers=HEADERS, timeout=60
            )
            ended = time.monotonic()
            assert (answer.status_code, name) == (status, name), answer.text
            assert text in answer.text, (name, answer.text)
            assert ended - started < 8, name
            assert probe.slowest_between(started, ended) < STATUS_SECONDS, name
        ok = session.post(
            emulator.url + BATCH_PATH, data=body({"x": {}}, {"x": 1}), headers=HEADERS
        )
        assert ok.status_code == 201
    assert "Traceback" not in emulator.stderr()


CONTENT_LENGTHS = [
    ("non-ASCII digit", b"Content-Length: \xb2\r\n", b"not a number"),
    ("Arabic-Indic digit", "Content-Length: ٣\r\n".encode(), b"not a number"),
    ("disagreeing", b"Content-Length: 2\r\nContent-Length: 3\r\n", b"disagree"),
    ("empty", b"Content-Length: \r\n", b"not a number"),
]


@pytest.mark.parametrize(("name", "header", "text"), CONTENT_LENGTHS)
def test_unusable_content_length_is_400(
    shared_emulator: Emulator,
    name: str,
    header: bytes,
    text: bytes,
) -> None:
    request = (
        b"POST /v2/import/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\n"
        b"Content-Type: application/json\r\n" + header + b"\r\n{}"
    )
    answer = raw_request(shared_emulator.url, request)
    assert answer.startswith(b"HTTP/1.1 400 "), (name, answer)
    assert b"Connection: close" in answer
    assert requests.get(shared_emulator.url + STATUS_PATH, timeout=10).status_code == 200
    assert "Traceback" not in shared_emulator.stderr()


def _memory_body() -> bytes:
    """Just under 4 MB: 20,000 small records, the shape the target sends most."""
    data = [
        {
            "id": i,
            "a": 1.5,
            "b": "xy",
            "c": True,
            "d": None,
            "e": 12345,
            "f": "2026-01-01",
            "g": 0.25,
        }
        for i in range(20_000)
    ]
    schema = {name: {} for name in "abcdefg"} | {"id": {"type": "integer"}}
    document = json.loads(body(schema, *data))
    document["key_names"] = ["id"]
    encoded = json.dumps(document).encode()
    padding = 3_990_000 - len(encoded)
    document["messages"][0]["data"]["pad"] = "p" * padding
    document["schema"]["properties"]["pad"] = {}
    return json.dumps(document).encode()


def _peak_rss(pid: int) -> int:
    with Path(f"/proc/{pid}/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    pytest.skip("no VmHWM in /proc (not Linux)")
    return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")
def test_memory_bound_under_24_concurrent_4_mb_bodies(
    start_emulator: Callable[..., Emulator],
) -> None:
    emulator = start_emulator()
    data = _memory_body()
    assert 3_900_000 < len(data) < 4_000_000

    def send(_: int) -> int:
        url = emulator.url + VALIDATE_PATH
        return requests.post(url, data=data, headers=HEADERS, timeout=120).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        statuses = list(pool.map(send, range(24)))
    assert statuses == [200] * 24
    peak = _peak_rss(t.cast("subprocess.Popen[bytes]", emulator._process).pid)
    assert peak < PEAK_RSS_BYTES, f"peak RSS {peak / 2**20:.0f} MB"
    assert requests.get(emulator.url + STATUS_PATH, timeout=10).status_code == 200


# Control characters, widths, pipes


def test_text_helpers() -> None:
    assert escape_controls("a\nb\x1b[2J\\\u2028\u202e\x9b\té") == (
        "a\\nb\\x1b[2J\\\\\\u2028\\u202e\\x9b\\té"
    )
    assert log_field("t") == "t"
    assert log_field("a b") == '"a b"'
    assert log_field("x\ny=1") == '"x\\ny=1"'
    assert log_field("") == '""'
    assert display_width("表a\u0301") == 3


FORGED = "x\nPOST /v2/import/batch 201 table=forged messages=1 bytes=1 ms=0.1"


def test_access_log_lines_can_not_be_forged(shared_emulator: Emulator) -> None:
    for table in (FORGED, "\x1b[2J\x1b]0;pwned\x07", "a\u2028b"):
        answer = requests.post(
            shared_emulator.url + BATCH_PATH,
            data=body({"x": {}}, {"x": 1}, table=table),
            headers=HEADERS,
            timeout=30,
        )
        assert answer.status_code == 201
    deadline = time.monotonic() + 10  # a request's line is written after its answer
    while 'table="a\\u2028b" ' not in shared_emulator.stderr() and time.monotonic() < deadline:
        time.sleep(0.02)
    log = shared_emulator.stderr()
    assert not any(
        line.startswith("POST /v2/import/batch 201 table=forged") for line in log.split("\n")
    )
    assert '201 table="x\\nPOST /v2/import/batch 201 table=forged' in log
    assert 'table="\\x1b[2J\\x1b]0;pwned\\x07" ' in log
    assert 'table="a\\u2028b" ' in log
    assert not any(char in log for char in "\x1b\x07\u2028")


def run(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_show_escapes_aligns_and_stops_quietly(start_emulator: Callable[..., Emulator]) -> None:
    emulator = start_emulator()
    rows = [
        {"id": 1, "name": "\x1b[2J", "note": "a\nb"},
        {"id": 2, "name": "表表表", "note": "\u202eevil"},
        {"id": 3, "name": "é", "note": {"k": "\x9b"}},
    ]
    tables = {"\x1b[31mred": rows, "many": [{"id": n, "v": "x" * 40} for n in range(5000)]}
    for table, data in tables.items():
        answer = requests.post(
            emulator.url + BATCH_PATH,
            data=body({"id": {}, "name": {}, "note": {}, "v": {}}, *data, table=table),
            headers=HEADERS,
            timeout=60,
        )
        assert answer.status_code == 201, answer.text
    listing = run("show", "--database", emulator.database)
    assert "\\x1b[31mred" in listing.stdout
    shown = run("show", "\x1b[31mred", "--database", emulator.database)
    assert shown.returncode == 0, shown.stderr
    for text in (
        shown.stdout,
        listing.stdout,
        run("show", "--database", emulator.database, "--json").stdout,
    ):
        assert not any(char in text for char in "\x1b\x9b\u202e")
    lines = shown.stdout.splitlines()
    assert lines[1].startswith("1   \\x1b[2J  a\\nb")
    assert lines[2].startswith("2   表表表   \\u202eevil")
    # the note column starts at the same terminal column on every line
    starts = {
        display_width(line[: line.index(note)])
        for line, note in zip(lines[1:], ("a\\nb", "\\u202e", "{"), strict=True)
    }
    assert len(starts) == 1
    as_json = json.loads(
        run("show", "\x1b[31mred", "--database", emulator.database, "--json").stdout
    )
    assert as_json[2]["note"] == {"k": "\x9b"}

    with subprocess.Popen(
        [*COMMAND, "show", "many", "--database", str(emulator.database)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as reader:
        assert reader.stdout is not None
        assert reader.stderr is not None
        reader.stdout.readline()  # like `show | head -1`
        reader.stdout.close()
        assert reader.wait(timeout=60) == 0
        assert reader.stderr.read() == b""


@pytest.mark.parametrize(
    ("options", "text"),
    [
        (["--port", "99999"], "from 0 to 65535"),
        (["--port", "-1"], "from 0 to 65535"),
        (["--max-body-bytes", "-1"], "at least 1"),
        (["--max-body-bytes", "0"], "at least 1"),
        (["--max-concurrent-bodies", "0"], "at least 1"),
        (["--retry-after", "-5"], "at least 0"),
        (["--stall-seconds", "nan"], "seconds"),
        (["--status-503", "-2"], "at least -1"),
    ],
)
def test_serve_options_are_checked(tmp_path: Path, options: list[str], text: str) -> None:
    result = run("serve", "--database", tmp_path / "db.sqlite", *options)
    assert result.returncode == 2
    assert text in result.stderr
    assert "Traceback" not in result.stderr


def test_equal_numbers_are_one_key(shared_emulator: Emulator) -> None:
    values = ["1", "1.0", "1E+0", "0.1E1", "0", "-0", "-0.0", "0E-7", "1e10000000", "10E9999999"]
    messages = ",".join(
        f'{{"action":"upsert","sequence":{n},"data":{{"id":{value},"n":{n}}}}}'
        for n, value in enumerate(values, start=1)
    )
    data = (
        '{"table_name":"numeric_keys","key_names":["id"],"schema":{"properties":{"id":{},"n":{}}},'
        f'"messages":[{messages}]}}'
    ).encode()
    answer = requests.post(shared_emulator.url + BATCH_PATH, data=data, headers=HEADERS, timeout=30)
    assert answer.status_code == 201, answer.text
    rows = shared_emulator.rows("numeric_keys", system=True)
    assert [(row["_sdc_primary_key"], row["n"]) for row in rows] == [
        ("[1]", 4),
        ("[0]", 8),
        ("[1E+10000000]", 10),
    ]
    assert rows[0]["id"] == Decimal("0.1E1")
    assert shared_emulator.stats()["tables"]["numeric_keys"]["ties"] == 0
