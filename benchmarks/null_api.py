#!/usr/bin/env python3
"""A null Stitch Import API for benchmarks: accepts every batch, stores nothing.

    python benchmarks/null_api.py --latency-ms 100

Listens on a free loopback port (HTTP/1.1, keep-alive, one thread per connection) and
prints ``listening on http://127.0.0.1:PORT`` once ready. It answers

* ``GET /v2/import/status``: ``200 {"status": "OK"}``;
* any ``POST``: ``201 {"status": "OK", "message": "Batch Accepted!"}`` once the whole body
  is read (``Content-Length`` or chunked); the body is counted, never parsed;
* ``GET /_bench/stats``: its counters and its own CPU seconds (JSON);
* ``POST /_bench/reset``: counters back to zero.

Each request other than ``/_bench/*`` waits ``--latency-ms`` before its answer; the wait
blocks only its own connection's thread. Only the standard library is used, so the
benchmark driver can start it with any Python.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
STATUS_PATH = "/v2/import/status"
STATS_PATH = "/_bench/stats"
RESET_PATH = "/_bench/reset"
CHUNK = 1 << 20
STATUS_BODY = b'{"name":"pipeline.gate","version":"null","revision":"null","status":"OK","reason":null}'
ACCEPTED_BODY = b'{"status":"OK","message":"Batch Accepted!"}'
NOT_FOUND_BODY = b'{"error":"Not Found"}'


class Counters:
    """Request counters shared by all connection threads."""

    def __init__(self) -> None:
        """Start at zero."""
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Set every counter back to zero."""
        with self._lock:
            self.posts = 0
            self.gets = 0
            self.body_bytes = 0
            self.largest_body = 0

    def add_post(self, size: int) -> None:
        """Count one POST with a body of ``size`` bytes."""
        with self._lock:
            self.posts += 1
            self.body_bytes += size
            self.largest_body = max(self.largest_body, size)

    def add_get(self) -> None:
        """Count one status request."""
        with self._lock:
            self.gets += 1

    def snapshot(self) -> dict[str, float]:
        """The counters and this process's CPU seconds so far."""
        usage = resource.getrusage(resource.RUSAGE_SELF)
        with self._lock:
            return {
                "posts": self.posts,
                "gets": self.gets,
                "body_bytes": self.body_bytes,
                "largest_body": self.largest_body,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
            }


class NullApiServer(ThreadingHTTPServer):
    """A threaded HTTP server holding the latency and the counters."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], latency: float) -> None:
        """Bind to ``address``; every API request waits ``latency`` seconds."""
        super().__init__(address, NullApiHandler)
        self.latency = latency
        self.counters = Counters()


class NullApiHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests (keep-alive)."""

    protocol_version = "HTTP/1.1"
    server: NullApiServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Log nothing (logging would cost CPU on the shared cores)."""

    def do_GET(self) -> None:
        """Status and stats."""
        self._discard_body()
        if self.path == STATS_PATH:
            self._answer(200, json.dumps(self.server.counters.snapshot()).encode())
            return
        self._wait()
        if self.path.split("?", 1)[0] == STATUS_PATH:
            self.server.counters.add_get()
            self._answer(200, STATUS_BODY)
        else:
            self._answer(404, NOT_FOUND_BODY)

    def do_POST(self) -> None:
        """Any batch: read it whole, count it, accept it."""
        size = self._discard_body()
        if self.path == RESET_PATH:
            self.server.counters.reset()
            self._answer(200, b"{}")
            return
        self._wait()
        self.server.counters.add_post(size)
        self._answer(201, ACCEPTED_BODY)

    def _wait(self) -> None:
        if self.server.latency > 0:
            time.sleep(self.server.latency)

    def _discard_body(self) -> int:
        """Read the request body without keeping it; return its size in bytes."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._discard_chunked()
        remaining = int(self.headers.get("Content-Length") or 0)
        size = remaining
        while remaining > 0:
            data = self.rfile.read(min(remaining, CHUNK))
            if not data:
                break
            remaining -= len(data)
        return size - remaining

    def _discard_chunked(self) -> int:
        size = 0
        while True:
            line = self.rfile.readline(1024)
            length = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if length == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return size
            remaining = length
            while remaining > 0:
                data = self.rfile.read(min(remaining, CHUNK))
                if not data:
                    return size
                remaining -= len(data)
                size += len(data)
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    """Serve until terminated."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="wait per request (ms)")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    args = parser.parse_args()
    server = NullApiServer((HOST, args.port), args.latency_ms / 1000)
    sys.stdout.write(f"listening on http://{HOST}:{server.server_address[1]}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        os._exit(0)  # connection threads may be sleeping; do not wait for them


if __name__ == "__main__":
    main()
