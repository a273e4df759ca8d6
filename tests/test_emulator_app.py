"""The server built by ``create_server``, in process, over real sockets.

Covers what the subprocess can not be made to do on purpose: an internal error (a storage
that fails) and the stopping server; plus requests ``http.server`` itself can not parse.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import typing as t

import pytest
import requests

from target_stitch_import.contract import BATCH_PATH, STATUS_PATH
from target_stitch_import.emulator.app import EmulatorServer, ServerSettings, create_server
from target_stitch_import.emulator.storage import BatchOutcome, Storage

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from target_stitch_import.emulator.validation import Batch

HEADERS = {"Authorization": "Bearer any", "Content-Type": "application/json"}
BODY = json.dumps(
    {
        "table_name": "t",
        "schema": {"properties": {}},
        "messages": [{"action": "upsert", "sequence": 1, "data": {"a": 1}}],
    },
).encode()


class FailingStorage(Storage):
    """A real storage whose first write fails unexpectedly."""

    failures = 1

    def apply(self, batch: Batch, *, received_at: str, body_bytes: int) -> BatchOutcome:
        """Fail once, then store."""
        if self.failures:
            self.failures -= 1
            msg = "disk on fire"
            raise RuntimeError(msg)
        return super().apply(batch, received_at=received_at, body_bytes=body_bytes)


class Running(t.NamedTuple):
    """An in-process server, its base URL and its log."""

    server: EmulatorServer
    url: str
    log: io.StringIO


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    """A server on a free port with a storage failing once."""
    log = io.StringIO()
    with FailingStorage(tmp_path / "db.sqlite", create=True) as storage:
        server = create_server("127.0.0.1", 0, storage, ServerSettings(), log=log)
        worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        worker.start()
        try:
            yield Running(server, server.url, log)
        finally:
            server.drain(5)
            server.shutdown()
            server.server_close()
            worker.join()


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes; return everything the server answers until it closes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_an_internal_error_answers_500_and_the_server_keeps_serving(running: Running) -> None:
    with requests.Session() as session:
        failed = session.post(running.url + BATCH_PATH, data=BODY, headers=HEADERS, timeout=10)
        assert (failed.status_code, failed.json()) == (
            500,
            {"error": "emulator internal error: RuntimeError"},
        )
        assert failed.headers["Content-Type"] == "application/json"
        assert session.get(running.url + STATUS_PATH, timeout=10).status_code == 200
        stored = session.post(running.url + BATCH_PATH, data=BODY, headers=HEADERS, timeout=10)
        assert stored.status_code == 201
    log = running.log.getvalue()
    assert "Traceback" in log
    assert "RuntimeError: disk on fire" in log
    assert "POST /v2/import/batch 500" in log
    assert running.server.storage.tables() == {"t": 1}


@pytest.mark.parametrize(
    ("request_bytes", "status", "logged"),
    [
        # http.server answers a request line it can not read as HTTP/0.9: a body, no head.
        (b"GARBAGE\r\n\r\n", None, "unparsable request answered 400"),
        (b"GET /v2/import/status HTTP/9.9\r\n\r\n", None, "unparsable request answered 505"),
        (
            b"BREW /v2/import/status HTTP/1.1\r\nHost: x\r\n\r\n",
            b"501",
            "unparsable request answered 501",
        ),
        (
            (
                b"POST /v2/import/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\n"
                b"Content-Type: application/json\r\nContent-Length: lots\r\n\r\n{}"
            ),
            b"400",
            "POST /v2/import/batch 400",
        ),
    ],
)
def test_unparsable_requests_get_json_errors(
    running: Running, request_bytes: bytes, status: bytes | None, logged: str
) -> None:
    answer = raw_exchange(running.url, request_bytes)
    if status is None:
        assert "error" in json.loads(answer)
    else:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == status
        assert b"Content-Type: application/json" in head
        assert "error" in json.loads(body)
    assert requests.get(running.url + STATUS_PATH, timeout=10).status_code == 200
    assert logged in running.log.getvalue()


def test_head_answers_without_a_body(running: Running) -> None:
    response = requests.head(running.url + STATUS_PATH, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.content == b""


def test_a_stopping_server_refuses_new_requests(running: Running) -> None:
    with requests.Session() as session:
        assert session.get(running.url + STATUS_PATH, timeout=10).status_code == 200
        assert running.server.drain(5)
        refused = session.post(running.url + BATCH_PATH, data=BODY, headers=HEADERS, timeout=10)
    assert (refused.status_code, refused.json()) == (
        503,
        {"error": "the emulator is shutting down"},
    )
    assert refused.headers["Connection"] == "close"
    assert running.server.storage.tables() == {}


def test_an_absurd_content_length_is_refused_at_once(running: Running) -> None:
    request = (
        b"POST " + BATCH_PATH.encode() + b" HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer any\r\nContent-Type: application/json\r\n"
        b"Content-Length: 99999999999999999999\r\n\r\n"
    )
    answer = raw_exchange(running.url, request)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in answer
    assert requests.get(running.url + STATUS_PATH, timeout=10).status_code == 200
