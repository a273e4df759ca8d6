"""The emulator's HTTP server: the Import API endpoints of ``shared/import-api.md``.

:func:`create_server` builds a :class:`~http.server.ThreadingHTTPServer` (HTTP/1.1 keep-alive,
daemon threads) given its storage and settings; nothing is global. Each POST to ``/batch``
or ``/validate`` goes through, in order: reading the body (an oversized one is read and
discarded in chunks so the connection stays usable), the injected fault and latency, the
bearer token (401/403), the Content-Type (415), the size (413, or 411 without a
Content-Length), validation (400), conflicts with the stored table (400), then storage:
``/batch`` answers 201 only after the batch's transaction committed; ``/validate`` answers
200 and stores nothing. Every answer is JSON. An unexpected exception answers 500 (with a
traceback in the log) and the server keeps serving; whatever a client got wrong answers 4xx.
One access log line per request goes to the log stream; it never holds the Authorization
header or a body, and client-chosen text in it (path, table name) has its control
characters escaped, so no request can forge a line.

Memory: bodies are read as they come (a slow client holds only its own connection), but at
most ``max_concurrent_bodies`` are parsed, validated and stored at once; the others wait
for a slot. A parsed body takes up to about 30 times its size in memory, so the peak stays
near ``max_concurrent_bodies * 30 * max_body_bytes`` plus the raw bodies waiting.

Tokens: a ``/v2`` POST is accepted with a ``tokens`` value (``--token``) or a token created
through the Connect API and not revoked; any non-empty token is accepted only while there
are neither (no ``--token`` given, no token ever created, revoked ones included).

Connect API (``/v4``, see the end of ``shared/import-api.md``): served only with a
``connect_token`` (``--connect-token``), which every ``/v4`` request must bear; without one,
every ``/v4`` request answers 401. ``GET /v4/source-types/import_api`` (the report card),
``POST /v4/sources``, ``GET /v4/sources/{id}``, and ``POST``/``GET /v4/sources/{id}/tokens``,
``DELETE /v4/sources/{id}/tokens/{token_id}``. Sources and tokens are kept in the database
(tokens as digests only; see :mod:`~target_stitch_import.emulator.storage`). Every source's
data lands in the emulator's one schema, whatever the source's ``name``. Errors answer
``{"error": {"type": ..., "message": ...}}``; faults and latency never apply to ``/v4``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import json
import random
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import traceback
import typing as t
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from target_stitch_import.__version__ import __version__
from target_stitch_import.contract import BATCH_PATH, MAX_BODY_BYTES, STATUS_PATH, VALIDATE_PATH
from target_stitch_import.emulator.faults import FaultKind, FaultPlan, FaultSettings
from target_stitch_import.emulator.storage import BatchRejectedError, SourceExistsError
from target_stitch_import.emulator.text import escape_raw_controls, log_field
from target_stitch_import.emulator.validation import (
    Answer,
    Batch,
    BatchValidator,
    bad_request,
    content_type_rejection,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from target_stitch_import.emulator.storage import Source, Storage

#: Bodies declared larger than this many times the limit are not drained before the 413.
_DRAIN_FACTOR = 16
_SOCKET_TIMEOUT = 120
_CHUNK = 1 << 16
_NOT_AUTHORIZED = Answer(401, {"message": "Not Authorized"})
_INACTIVE = Answer(403, {"error": "Forbidden", "errors": {"error": "Connection is not active."}})
_ALLOWED_METHODS = {STATUS_PATH: "GET", BATCH_PATH: "POST", VALIDATE_PATH: "POST"}
#: Bodies parsed, validated and stored at once, by default (see the module docstring).
MAX_CONCURRENT_BODIES = 2
_ASCII_DIGITS = frozenset("0123456789")
CONNECT_PREFIX = "/v4/"
IMPORT_API_TYPE = "import_api"
#: Connect API request bodies larger than this are refused (413).
_CONNECT_BODY_LIMIT = 65_536
#: Longest display name of a source.
MAX_DISPLAY_NAME = 255
#: Longest id in a ``/v4`` path (larger numbers are no id: 404).
_MAX_ID_DIGITS = 18
_NOT_ALPHANUMERIC = re.compile("[^a-z0-9]")
_FORM_STEP = {
    "type": "form",
    "properties": [
        {
            "name": "display_name",
            "is_required": True,
            "provided": False,
            "json_schema": {"type": "string", "maxLength": MAX_DISPLAY_NAME},
        },
    ],
}
_DONE_STEP = {"type": "fully_configured", "properties": []}


@dataclass(frozen=True)
class ServerSettings:
    """How the emulator answers.

    Attributes:
        tokens: Accepted bearer tokens; empty accepts any non-empty token.
        inactive_tokens: Tokens of a paused integration (answered with 403).
        max_body_bytes: Larger request bodies are answered with 413.
        max_concurrent_bodies: Bodies parsed, validated and stored at once; more wait.
        faults: The fault injection settings.
        connect_token: The Connect API token ``/v4`` requests must bear; None: every
            ``/v4`` request answers 401.
    """

    tokens: frozenset[str] = frozenset()
    inactive_tokens: frozenset[str] = frozenset()
    max_body_bytes: int = MAX_BODY_BYTES
    max_concurrent_bodies: int = MAX_CONCURRENT_BODIES
    faults: FaultSettings = field(default_factory=FaultSettings)
    connect_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Check the limits.

        Raises:
            ValueError: A body limit or a number of concurrent bodies below 1.
        """
        if self.max_body_bytes < 1:
            msg = f"the body size limit must be at least 1 byte, not {self.max_body_bytes}"
            raise ValueError(msg)
        if self.max_concurrent_bodies < 1:
            msg = f"at least 1 body must be parsed at once, not {self.max_concurrent_bodies}"
            raise ValueError(msg)


def utc_timestamp(moment: dt.datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC with microseconds (``...T12:00:00.000001Z``)."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def schema_name(display_name: str) -> str:
    """Return a source's schema name: lower case, each character but a-z and 0-9 as ``_``.

    ``Import API`` gives ``import_api``.
    """
    return _NOT_ALPHANUMERIC.sub("_", display_name.lower())


def report_card(*, configured: bool) -> dict[str, t.Any]:
    """Return the Import API's report card: at its form, or (``configured``) at its end."""
    step = 2 if configured else 1
    return {
        "type": IMPORT_API_TYPE,
        "current_step": step,
        "current_step_type": _DONE_STEP["type"] if configured else _FORM_STEP["type"],
        "steps": [_FORM_STEP, _DONE_STEP],
    }


def source_object(source: Source) -> dict[str, t.Any]:
    """Return the Connect API's Source object of a source."""
    return {
        "id": source.id,
        "name": source.name,
        "display_name": source.display_name,
        "type": IMPORT_API_TYPE,
        "created_at": source.created_at,
        "updated_at": source.created_at,
        "paused_at": None,
        "deleted_at": None,
        "report_card": report_card(configured=True),
    }


class ConnectReply(t.NamedTuple):
    """A Connect API answer: the status, the JSON body (an object or a list), the Allow header."""

    status: int
    body: dict[str, t.Any] | list[t.Any]
    allow: str | None = None


def connect_error(status: int, kind: str, message: str) -> ConnectReply:
    """Return a Connect API error answer: ``{"error": {"type": kind, "message": message}}``."""
    return ConnectReply(status, {"error": {"type": kind, "message": message}})


class EmulatorServer(ThreadingHTTPServer):
    """A threading HTTP server holding the emulator's storage, settings and fault plan."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(  # noqa: PLR0913 - the server's collaborators
        self,
        address: tuple[str, int],
        *,
        storage: Storage,
        settings: ServerSettings,
        plan: FaultPlan,
        validator: BatchValidator,
        log: t.TextIO,
    ) -> None:
        """Bind the server (it serves once :meth:`serve_forever` runs)."""
        self.storage = storage
        self.settings = settings
        self.plan = plan
        self.validator = validator
        self.stopping = threading.Event()
        self.body_slots = threading.BoundedSemaphore(settings.max_concurrent_bodies)
        self._log = log
        self._log_lock = threading.Lock()
        self._in_flight = 0
        self._idle = threading.Condition()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, EmulatorHandler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup of ``HTTPServer.server_bind``."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    @property
    def url(self) -> str:
        """The base URL the server listens on (the real port when 0 was asked for)."""
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def log(self, line: str) -> None:
        """Write one line to the log stream, control characters escaped."""
        with self._log_lock:
            self._log.write(escape_raw_controls(line) + "\n")
            self._log.flush()

    def log_exception(self, exc: BaseException) -> None:
        """Write a traceback, each line starting with ``| `` (so none reads as a request)."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        with self._log_lock:
            for line in text.rstrip("\n").split("\n"):
                self._log.write("| " + escape_raw_controls(line) + "\n")
            self._log.flush()

    @contextlib.contextmanager
    def request_slot(self) -> Iterator[bool]:
        """Count a request in flight; yields False once the server is stopping."""
        with self._idle:
            admitted = not self.stopping.is_set()
            if admitted:
                self._in_flight += 1
        try:
            yield admitted
        finally:
            if admitted:
                with self._idle:
                    self._in_flight -= 1
                    self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Stop admitting requests and wait for those in flight; False on timeout."""
        with self._idle:
            self.stopping.set()
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout)


def create_server(  # noqa: PLR0913 - what the server needs, rng and log for tests
    host: str,
    port: int,
    storage: Storage,
    settings: ServerSettings,
    *,
    rng: random.Random | None = None,
    log: t.TextIO | None = None,
) -> EmulatorServer:
    """Create the emulator's HTTP server, bound but not yet serving.

    Args:
        host: The address to listen on.
        port: The port (0: a free one; see :attr:`EmulatorServer.url`).
        storage: Where accepted batches go.
        settings: Tokens, body limit and faults.
        rng: The fault plan's random source (default: seeded from ``settings.faults.seed``).
        log: Where access log lines and tracebacks go (default: standard error).
    """
    plan = FaultPlan(settings.faults, rng or random.Random(settings.faults.seed))  # noqa: S311
    return EmulatorServer(
        (host, port),
        storage=storage,
        settings=settings,
        plan=plan,
        validator=BatchValidator(),
        log=log or sys.stderr,
    )


class _Body(t.NamedTuple):
    """A request body as read: the bytes kept (None when absent or discarded)."""

    data: bytes | None
    length: int | None
    oversized: bool


class EmulatorHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests (keep-alive)."""

    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK hold the body back for ~40 ms.
    disable_nagle_algorithm = True
    server_version = f"stitch-import-emulator/{__version__}"
    # Socket timeout: an idle keep-alive connection, or a client that stops sending its
    # body, frees its thread after this many seconds.
    timeout = _SOCKET_TIMEOUT

    def do_GET(self) -> None:
        """Answer a GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Answer a POST."""
        self._dispatch()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = do_GET  # noqa: N815 - http.server's names

    # Plumbing

    def _dispatch(self) -> None:
        started = time.monotonic()
        self._status: int | str = "-"
        self._note = {"table": "-", "messages": "-", "bytes": "-"}
        path = urlsplit(self.path).path
        with self.server.request_slot() as admitted:
            try:
                if admitted:
                    self._route(path)
                elif self._read_body(limit=None) is not None:
                    self.close_connection = True
                    self._send(Answer(503, {"error": "the emulator is shutting down"}))
            except (ConnectionError, TimeoutError):
                self.close_connection = True
                self._status = "client-gone"
            except Exception as exc:  # noqa: BLE001 - the server must keep serving
                self.server.log_exception(exc)
                self.close_connection = True
                if self._status == "-":
                    error = f"emulator internal error: {type(exc).__name__}"
                    with contextlib.suppress(OSError):
                        self._send(Answer(500, {"error": error}))
        elapsed = (time.monotonic() - started) * 1000
        note = self._note
        self.server.log(
            f"{log_field(self.command or '-')} {log_field(path)} {self._status} "
            f"table={log_field(note['table'])} messages={note['messages']} "
            f"bytes={note['bytes']} ms={elapsed:.1f}",
        )

    def _send(self, answer: Answer, headers: t.Mapping[str, str] | None = None) -> None:
        payload = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        self.wfile.flush()
        self._status = answer.status

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer a request ``http.server`` could not parse, as JSON; close the connection."""
        _ = explain
        self.close_connection = True
        text = message or HTTPStatus(code).phrase
        if not hasattr(self, "_status"):
            self._status = "-"
        self.server.log(f"unparsable request answered {code}: {text}")
        self._send(Answer(code, {"error": text}))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing here: :meth:`_dispatch` writes one line per request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        """Write ``http.server``'s own messages to the server log."""
        self.server.log(format % args)

    def _read_body(self, *, limit: int | None) -> _Body | None:
        """Read the body; None when it is unreadable (already answered, connection closing).

        Args:
            limit: Bodies longer than this are read and discarded (None: discard all).
        """
        if self.headers.get("Transfer-Encoding"):
            # Chunked bodies are not read: the connection can not be reused afterwards.
            self.close_connection = True
            return _Body(None, None, oversized=False)
        length = self._declared_length()
        if length is None:
            return _Body(None, None, oversized=False)
        if isinstance(length, str):  # where the body ends is unknown: close after answering
            self.close_connection = True
            self._send(bad_request(length))
            return None
        if limit is not None and length <= limit:
            data = self.rfile.read(length)
            if len(data) < length:
                raise ConnectionResetError
            return _Body(data, length, oversized=False)
        if limit is not None and length > _DRAIN_FACTOR * limit:
            # Far too large to be worth reading: answer at once and close the connection.
            self.close_connection = True
            return _Body(None, length, oversized=True)
        remaining = length
        while remaining:
            chunk = self.rfile.read(min(_CHUNK, remaining))
            if not chunk:
                raise ConnectionResetError
            remaining -= len(chunk)
        return _Body(None, length, oversized=True)

    def _declared_length(self) -> int | str | None:
        """Return the Content-Length, None without one, or why it is unusable."""
        declared = {value.strip() for value in self.headers.get_all("Content-Length") or ()}
        if not declared:
            return None
        if len(declared) > 1:
            return ("Content-Length headers disagree: " + ", ".join(sorted(declared)))[:200]
        text = declared.pop()
        if not text or not set(text) <= _ASCII_DIGITS:  # "٣" is a digit to str.isdigit
            return "Content-Length is not a number"
        return int(text)

    # Endpoints

    def _route(self, path: str) -> None:
        if path.startswith(CONNECT_PREFIX):
            self._connect(path)
            return
        allowed = _ALLOWED_METHODS.get(path)
        if allowed == "POST" and self.command == "POST":
            self._post(validate=path == VALIDATE_PATH)
            return
        if self._read_body(limit=None) is None:  # any body is discarded: keep-alive goes on
            return
        if allowed is None:
            self._send(Answer(404, {"error": f"Not Found: {path}"}))
        elif self.command != allowed:
            self._send(Answer(405, {"error": "Method Not Allowed"}), {"Allow": allowed})
        else:
            self._status_endpoint()

    def _status_endpoint(self) -> None:
        answer = {
            "name": "pipeline.gate",
            "version": __version__,
            "revision": "emulator",
            "status": "OK",
            "reason": None,
        }
        if self.server.plan.status_unavailable():
            answer.update(status="ERROR", reason="Injected fault: the Import API is unavailable")
            retry = {"Retry-After": str(self.server.settings.faults.retry_after)}
            self._send(Answer(503, answer), retry)
            return
        self._send(Answer(200, answer))

    def _post(self, *, validate: bool) -> None:
        settings = self.server.settings
        body = self._read_body(limit=settings.max_body_bytes)
        if body is None:
            return
        self._note["bytes"] = str(body.length) if body.length is not None else "-"
        fault = self.server.plan.draw(validate=validate)
        if fault is FaultKind.DROP:
            self.close_connection = True
            self._status = "dropped"
            return
        if fault is FaultKind.STALL:
            self.server.stopping.wait(settings.faults.stall_seconds)
        latency = self.server.plan.latency_seconds()
        if latency:
            self.server.stopping.wait(latency)
        if fault is not None and fault.status is not None:
            headers = {}
            if fault in (FaultKind.HTTP_429, FaultKind.HTTP_503):
                headers["Retry-After"] = str(settings.faults.retry_after)
            phrase = HTTPStatus(fault.status).phrase
            error = {"error": f"Injected fault: {fault.status} {phrase}"}
            self._send(Answer(fault.status, error), headers)
            return
        self._send(self._answer(body, validate=validate))

    def _answer(self, body: _Body, *, validate: bool) -> Answer:
        """Check the request, then store (or just check) the batch; return the answer.

        Parsing, validation and storage hold one of the server's body slots; nothing parsed
        outlives it.
        """
        rejection = self._rejection(body)
        if rejection is not None:
            return rejection
        data = t.cast("bytes", body.data)
        with self.server.body_slots:
            checked = self.server.validator.validate(data, self.headers.get("Content-Type"))
            if isinstance(checked, Answer):
                return checked
            self._note.update(table=checked.table_name, messages=str(len(checked.messages)))
            return self._accept(checked, len(data), validate=validate)

    def _rejection(self, body: _Body) -> Answer | None:
        """Run the checks before validation, in the contract's order: auth, type, size."""
        auth = self._auth_rejection()
        if auth is not None:
            return auth
        content_type = self.headers.get("Content-Type")
        rejection = content_type_rejection(content_type)
        if rejection is not None:
            return rejection
        if body.oversized:
            message = f"Request rejected: request size ({body.length} bytes) exceeds the maximum"
            return Answer(413, {"status": "ERROR", "message": message})
        if body.data is None:
            return Answer(411, {"error": "Length Required: send a Content-Length header"})
        return None

    def _auth_rejection(self) -> Answer | None:
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _NOT_AUTHORIZED
        settings = self.server.settings
        if token in settings.inactive_tokens:
            return _INACTIVE
        storage = self.server.storage
        if token in settings.tokens or storage.token_is_live(token):
            return None
        if settings.tokens or storage.tokens_created:
            return _NOT_AUTHORIZED
        return None  # neither --token nor created tokens: any non-empty token

    def _accept(self, batch: Batch, size: int, *, validate: bool) -> Answer:
        storage = self.server.storage
        try:
            if validate:
                storage.check(batch)
                return Answer(200, {"status": "OK", "message": "Batch is valid!"})
            received_at = utc_timestamp(dt.datetime.now(dt.timezone.utc))
            storage.apply(batch, received_at=received_at, body_bytes=size)
        except BatchRejectedError as exc:
            return bad_request(str(exc))
        return Answer(201, {"status": "OK", "message": "Batch Accepted!"})

    # Connect API (/v4)

    def _connect(self, path: str) -> None:
        """Answer a Connect API request (a body is read, bounded, whatever the method)."""
        body = self._read_body(limit=_CONNECT_BODY_LIMIT)
        if body is None:
            return
        if not self._connect_authorized():
            reply = connect_error(401, "unauthorized", "Not Authorized")
        elif body.oversized:
            message = f"request body larger than {_CONNECT_BODY_LIMIT} bytes"
            reply = connect_error(413, "request_too_large", message)
        else:
            reply = self._connect_answer(path.removeprefix(CONNECT_PREFIX).split("/"), body)
        # A list (the tokens) goes out as JSON like any other body.
        answer = Answer(reply.status, t.cast("dict[str, t.Any]", reply.body))
        self._send(answer, {"Allow": reply.allow} if reply.allow else None)

    def _connect_authorized(self) -> bool:
        expected = self.server.settings.connect_token
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        token = token.strip()
        if expected is None or scheme.lower() != "bearer" or not token:
            return False
        return hmac.compare_digest(token.encode("utf-8", "surrogatepass"), expected.encode())

    def _connect_answer(self, parts: list[str], body: _Body) -> ConnectReply:
        """Route a Connect API request by its path's parts (after ``/v4/``)."""
        method = self.command
        if parts == ["source-types", IMPORT_API_TYPE]:
            return _allowed(method, "GET") or ConnectReply(200, report_card(configured=False))
        if parts == ["sources"]:
            return _allowed(method, "POST") or self._create_source(body)
        if not 2 <= len(parts) <= 4 or parts[0] != "sources":  # noqa: PLR2004
            return _not_found(parts)
        source_id = _path_id(parts[1])
        source = self.server.storage.source(source_id) if source_id is not None else None
        if source is None:
            return connect_error(404, "not_found", f"no source with id {parts[1][:40]}")
        return self._source_answer(source, parts[2:])

    def _source_answer(self, source: Source, parts: list[str]) -> ConnectReply:  # noqa: PLR0911 - one answer per route
        """Answer ``sources/{id}`` and what is below it (``parts``: the path after the id)."""
        method = self.command
        storage = self.server.storage
        if not parts:
            return _allowed(method, "GET") or ConnectReply(200, source_object(source))
        if parts[0] != "tokens":
            return _not_found(["sources", str(source.id), *parts])
        if len(parts) == 1:
            if method == "GET":
                return ConnectReply(200, storage.tokens(source.id))
            return _allowed(method, "GET, POST") or self._create_token(source)
        rejection = _allowed(method, "DELETE")
        if rejection is not None:
            return rejection
        token_id = _path_id(parts[1])
        now = utc_timestamp(dt.datetime.now(dt.timezone.utc))
        if token_id is None or not storage.revoke_token(source.id, token_id, revoked_at=now):
            message = f"no token with id {parts[1][:40]} of source {source.id}"
            return connect_error(404, "not_found", message)
        return ConnectReply(200, source_object(source))

    def _create_source(self, body: _Body) -> ConnectReply:
        try:
            request = json.loads(body.data or b"")
        except ValueError:
            request = None
        problem = source_request_problem(request)
        if problem is not None:
            return connect_error(400, "bad_request", problem)
        display_name = request["display_name"]
        now = utc_timestamp(dt.datetime.now(dt.timezone.utc))
        try:
            source = self.server.storage.create_source(
                display_name, schema_name(display_name), created_at=now
            )
        except SourceExistsError as exc:
            return connect_error(400, "bad_request", str(exc))
        return ConnectReply(200, source_object(source))

    def _create_token(self, source: Source) -> ConnectReply:
        token = secrets.token_hex(32)
        now = utc_timestamp(dt.datetime.now(dt.timezone.utc))
        token_id = self.server.storage.create_token(source.id, token, created_at=now)
        return ConnectReply(200, {"id": token_id, "access_token": token})


def source_request_problem(request: object) -> str | None:  # noqa: PLR0911 - one per check
    """Return what is wrong with a ``POST /v4/sources`` body, or None when it is right."""
    if not isinstance(request, dict):
        return "the body must be a JSON object"
    extra = sorted(set(request) - {"type", "display_name", "properties"})
    display_name = request.get("display_name")
    if extra:
        return f"unknown keys: {', '.join(extra)}"[:200]
    if request.get("type") != IMPORT_API_TYPE:
        return f"type must be {IMPORT_API_TYPE} (the only source type of the emulator)"
    if not isinstance(display_name, str) or not display_name.strip():
        return "display_name must be a non-empty string"
    if len(display_name) > MAX_DISPLAY_NAME:
        return f"display_name must be at most {MAX_DISPLAY_NAME} characters"
    if not isinstance(request.get("properties", {}), dict):
        return "properties must be an object"
    if not schema_name(display_name).strip("_"):
        return "display_name must hold a letter or a digit (a-z, 0-9)"
    return None


def _allowed(method: str | None, allowed: str) -> ConnectReply | None:
    """Return a 405 answer unless ``method`` is among ``allowed`` (comma-separated)."""
    if method in allowed.split(", "):
        return None
    return connect_error(405, "method_not_allowed", "Method Not Allowed")._replace(allow=allowed)


def _not_found(parts: list[str]) -> ConnectReply:
    path = CONNECT_PREFIX + "/".join(parts)
    return connect_error(404, "not_found", f"Not Found: {path[:200]}")


def _path_id(text: str) -> int | None:
    """Return the id a path part holds (ASCII digits, not too many), or None."""
    if not text or len(text) > _MAX_ID_DIGITS or not set(text) <= _ASCII_DIGITS:
        return None
    return int(text)
