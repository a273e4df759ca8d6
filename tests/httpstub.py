"""A tiny scripted HTTP/1.1 server on a free loopback port, for the client's fault tests.

``HttpStub(*answers)`` listens on ``127.0.0.1:<free port>``; the n-th request gets the n-th
answer (the last one repeats). An answer is a function of the :class:`Exchange` that writes
what it likes to the socket: a normal JSON answer, a redirect, headers or a body trickled a
byte at a time, a stall, or reading the upload slowly. Every request (request line and
headers) is recorded in :attr:`HttpStub.exchanges` as soon as it arrives, its body once read.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import subprocess
import threading
import time
import typing as t
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

if t.TYPE_CHECKING:
    from pathlib import Path

Answer = t.Callable[["Exchange"], None]


class Exchange:
    """One request as the stub saw it, and the means to answer it."""

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler
        self.method = handler.command
        self.path = handler.path
        self.headers = dict(handler.headers.items())
        self.connection = handler.connection_number
        self.body: bytes | None = None

    @property
    def stub(self) -> HttpStub:
        return self.handler.server.stub  # type: ignore[attr-defined]

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.handler.rfile.read(length)
        return self.body

    def write(self, data: bytes) -> None:
        self.handler.wfile.write(data)
        self.handler.wfile.flush()

    def trickle(self, data: bytes, delay: float) -> None:
        """Write one byte per ``delay`` seconds until done, the client leaves or the stub stops."""
        for i in range(len(data)):
            if self.stub.stopping.wait(delay):
                return
            try:
                self.write(data[i : i + 1])
            except OSError:
                return


def head(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> Answer:
    """Read the request's body, then answer ``status`` with ``body`` (JSON unless bytes)."""
    if body is None:
        body = {"status": "OK", "message": "Batch Accepted!"}
    data = body if isinstance(body, bytes) else json.dumps(body).encode()

    def run(exchange: Exchange) -> None:
        exchange.read_body()
        exchange.write(head(status, {"Content-Type": "application/json", **(headers or {})}, data) + data)

    return run


def redirect(status: int, location: str) -> Answer:
    return answer(status, b"", {"Location": location})


def trickle_headers(delay: float) -> Answer:
    """Answer a 201 whose status line and headers arrive one byte per ``delay`` seconds."""

    def run(exchange: Exchange) -> None:
        exchange.read_body()
        exchange.trickle(head(201, {"X-Padding": "x" * 200}, b"{}") + b"{}", delay)
        exchange.handler.close_connection = True

    return run


def trickle_body(status: int, delay: float) -> Answer:
    """Answer ``status`` at once with a 200-byte body that arrives one byte per ``delay`` s."""

    def run(exchange: Exchange) -> None:
        exchange.read_body()
        body = json.dumps({"error": "x" * 200}).encode()
        exchange.write(head(status, {"Content-Type": "application/json"}, body))
        exchange.trickle(body, delay)
        exchange.handler.close_connection = True

    return run


def read_slowly(delay: float, chunk: int = 1024) -> Answer:
    """Read the upload ``chunk`` bytes per ``delay`` seconds, then answer 201."""

    def run(exchange: Exchange) -> None:
        left = int(exchange.headers.get("Content-Length") or 0)
        while left > 0:
            if exchange.stub.stopping.wait(delay):
                return
            try:
                got = exchange.handler.connection.recv(min(chunk, left))
            except OSError:
                return
            if not got:
                return
            left -= len(got)
        exchange.write(head(201, {}, b"{}") + b"{}")

    return run


def endless_body(status: int) -> Answer:
    """Answer ``status`` with a chunked body that never ends (until the client leaves)."""

    def run(exchange: Exchange) -> None:
        exchange.read_body()
        exchange.handler.close_connection = True
        exchange.write(
            f"HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode(),
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b'{"error": "' + b"x" * (65536 - 11))
        with contextlib.suppress(OSError):  # the client left
            while not exchange.stub.stopping.is_set():
                exchange.write(chunk)

    return run


def stall(exchange: Exchange) -> None:
    """Read the request, never answer (until the stub stops)."""
    exchange.read_body()
    exchange.stub.stopping.wait()
    exchange.handler.close_connection = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connection_number = 0

    def setup(self) -> None:
        super().setup()
        self.connection_number = self.server.stub.connected()  # type: ignore[attr-defined]

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True

    def dispatch(self) -> None:
        stub: HttpStub = self.server.stub  # type: ignore[attr-defined]
        exchange = Exchange(self)
        stub.arrived(exchange)(exchange)

    do_GET = do_POST = do_PUT = dispatch  # noqa: N815

    def log_message(self, format: str, *args: t.Any) -> None:  # noqa: A002
        pass


class HttpStub:
    """A running scripted server; use as a context manager (stops and joins at exit)."""

    def __init__(
        self, *answers: Answer, receive_buffer: int | None = None, tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answers = list(answers) or [answer(201)]
        self.exchanges: list[Exchange] = []
        self.connections = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        if receive_buffer is not None:  # accepted sockets inherit it: uploads block sooner
            self._server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self._server.server_bind()
        self._server.server_activate()
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._server.stub = self  # type: ignore[attr-defined]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def connected(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def arrived(self, exchange: Exchange) -> Answer:
        with self._lock:
            self.exchanges.append(exchange)
            return self.answers[min(len(self.exchanges), len(self.answers)) - 1]

    def requests(self, method: str | None = None) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if method is None or e.method == method]

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> HttpStub:  # noqa: PYI034
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def self_signed(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A certificate for 127.0.0.1 made with the openssl CLI: its file and a server context."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return cert, context


def wait_for(condition: t.Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``condition`` until it holds or ``seconds`` pass."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
