"""HTTP client of the Stitch Import API: one pooled session, bounded retries.

The client knows nothing of Singer: it takes a table name and the exact body bytes. It is
the one place where ``requests`` errors become the package's own (:mod:`errors`).
Retried: 5xx, 429 (honouring ``Retry-After``), dropped connections and timeouts, with
exponential backoff and full jitter until ``max_retry_seconds`` have passed. Any other 4xx
raises :class:`FatalApiError` at once, and so does any 3xx: redirects are never followed
(``requests`` would repeat a POST as a GET and take the GET's 200 for an acknowledgement).

Each try has an overall deadline of ``timeout`` seconds (connect, upload and the whole
answer): a watchdog shuts down the socket of a try that outlives it, which also aborts
tries at once after :meth:`ImportApiClient.cancel`. The token is only ever placed in the
session's ``Authorization`` header, and every message built here goes through
:func:`redact`, so a server echoing the header cannot leak it.
"""

from __future__ import annotations

import collections
import contextlib
import email.utils
import json
import logging
import re
import socket
import threading
import time
import typing as t
from urllib.parse import urljoin, urlsplit, urlunsplit

import backoff
import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

from target_stitch_import.__version__ import __version__
from target_stitch_import.contract import BATCH_PATH, STATUS_PATH, VALIDATE_PATH
from target_stitch_import.errors import (
    ApiError,
    CancelledError,
    FatalApiError,
    RetriableApiError,
)
from target_stitch_import.threads import start_daemon

if t.TYPE_CHECKING:
    from target_stitch_import.batch import Body

LOGGER = logging.getLogger("target_stitch_import.client")
_MESSAGE_LIMIT = 500
_REDACTED = "[redacted]"
#: ``Bearer <credential>`` in any case, the credential ending at white space or a delimiter.
_BEARER = re.compile(r"\bbearer\s+(?:\[redacted\]|[^\s\"'<>,;()\[\]{}]+)", re.IGNORECASE)
#: A watchdog thread with nothing to watch exits after this many seconds.
_WATCHDOG_IDLE_SECONDS = 30.0
#: How often a cut try whose connection has no socket yet (still connecting) is re-checked.
_CUT_RECHECK_SECONDS = 0.05
_DEADLINE = "deadline"
_CANCELLED = "cancelled"
#: Import API and Connect API answers are short JSON objects: of a longer body (a
#: misdirected api_url, a hostile or broken server) only this much is read and kept.
MAX_ANSWER_BYTES = 1 << 20
_ANSWER_CHUNK = 64 * 1024


def read_answer(response: requests.Response, limit: int = MAX_ANSWER_BYTES) -> bool:
    """Read a streamed answer's body, at most ``limit`` bytes; ``.json()`` and ``.text`` use it.

    Returns:
        Whether the body was longer: only its first ``limit`` bytes are kept (an endless or
        huge answer never fills the memory); close the response, never reuse its connection.

    Raises:
        requests.RequestException: The body broke off.
    """
    data = bytearray()
    longer = False
    for chunk in response.iter_content(_ANSWER_CHUNK):
        data += chunk
        if len(data) > limit:
            longer = True
            break
    response._content = bytes(data[:limit])  # noqa: SLF001 - requests' cache of the body
    return longer


def redact(text: str, token: str) -> str:
    """Hide the token and anything that looks like a bearer credential in ``text``.

    Args:
        text: A message that may quote a server's answer or a request's headers.
        token: The Import API token (an empty token hides nothing more than bearer values).

    Returns:
        ``text`` with every occurrence of ``token`` and every ``Bearer <credential>``
        replaced by ``[redacted]``.
    """
    if token:
        text = text.replace(token, _REDACTED)
    return _BEARER.sub(f"Bearer {_REDACTED}", text)


def api_message(response: requests.Response, token: str = "") -> str:
    """Return Stitch's own message from an error response (never the request).

    Args:
        response: The error response, its body already read.
        token: The token to hide should the body echo it.

    Returns:
        One line of at most 500 characters, redacted before it is cut.
    """
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip() or response.reason or "no message"
    else:
        if isinstance(body, dict):
            parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
            errors = body.get("errors")
            if isinstance(errors, dict) and errors.get("error"):
                parts.append(str(errors["error"]))
            text = ": ".join(parts) or json.dumps(body)
        else:
            text = str(body)
    return redact(" ".join(text.split()), token)[:_MESSAGE_LIMIT]


def retry_after_seconds(response: requests.Response) -> float | None:
    """Parse a ``Retry-After`` header (seconds or an HTTP date) into seconds."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _shut_down(conn: object) -> bool:
    """Shut down a connection's socket (unblocking any send or recv on it).

    Returns:
        False when the connection has no socket yet (it is still connecting).
    """
    sock = getattr(conn, "sock", None)
    if sock is None:
        return False
    raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
    if isinstance(raw, socket.socket):
        # OSError: already closed or never connected, nothing left to unblock.
        with contextlib.suppress(OSError):
            # The plain socket's shutdown: on a TLS socket it works on the descriptor too.
            socket.socket.shutdown(raw, socket.SHUT_RDWR)
    return True


class _Try:
    """One try under watch: when it must end, the connection it uses, why it was cut."""

    __slots__ = ("conn", "cut", "deadline", "shut")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.conn: object | None = None
        self.cut: str | None = None
        self.shut = False


class _Watchdog:
    """Cuts tries that outlive their deadline, or all of them once cancelled.

    Cutting shuts down the socket of the try's connection, so a blocked send or recv
    returns at once (a connect in progress is cut as soon as it completes). One daemon
    thread per watchdog, started on demand; it exits after idling for a while, or when
    the watchdog is closed and nothing is left to watch. Its one lock is re-entrant, so
    :meth:`cancel` may even run in a signal handler that interrupted the lock's holder.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._tries: set[_Try] = set()
        self._current = threading.local()
        self._thread: threading.Thread | None = None
        self._closing = False
        #: Set for good by :meth:`cancel`: every try is cut, including later ones.
        self.cancelled = False

    def start(self, seconds: float) -> _Try:
        """Watch the calling thread's next try, which must end within ``seconds``."""
        watch = _Try(time.monotonic() + seconds)
        with self._cond:
            if self.cancelled:
                watch.cut = _CANCELLED
            self._tries.add(watch)
            self._closing = False
            if self._thread is None:
                self._thread = start_daemon(self._run, "import-api-watchdog")
            self._cond.notify_all()
        self._current.watch = watch
        return watch

    def note(self, conn: object) -> None:
        """Record that the calling thread's try now uses ``conn`` (from the pool)."""
        watch: _Try | None = getattr(self._current, "watch", None)
        if watch is None:
            return
        with self._cond:
            for other in self._tries:
                if other.conn is conn:  # a finished try's connection, now reused
                    other.conn = None
            watch.conn = conn
            if watch.cut is not None:
                watch.shut = _shut_down(conn)

    def finish(self, watch: _Try) -> str | None:
        """Stop watching a try.

        Returns:
            Why it was cut (deadline or cancelled), or None when it was not.
        """
        self._current.watch = None
        with self._cond:
            self._tries.discard(watch)
            return watch.cut

    def cancel(self) -> None:
        """Cut every try, now and later, and end every :meth:`pause`."""
        with self._cond:
            self.cancelled = True
            for watch in self._tries:
                self._cut(watch, _CANCELLED)
            self._cond.notify_all()

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if :meth:`cancel` is called meanwhile."""
        with self._cond:
            self._cond.wait_for(lambda: self.cancelled, seconds)

    def close(self) -> None:
        """Let the thread exit once nothing is watched (at once when nothing is)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread if not self._tries else None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1)

    def _cut(self, watch: _Try, why: str) -> None:
        if watch.cut is None:
            watch.cut = why
        if not watch.shut and watch.conn is not None:
            watch.shut = _shut_down(watch.conn)

    def _run(self) -> None:
        idle_since = time.monotonic()
        with self._cond:
            while self._thread is threading.current_thread():
                now = time.monotonic()
                if self._tries:
                    idle_since = now
                elif self._closing or now - idle_since >= _WATCHDOG_IDLE_SECONDS:
                    self._thread = None
                    return
                wait = _WATCHDOG_IDLE_SECONDS - (now - idle_since)
                for watch in self._tries:
                    if watch.cut is None and now >= watch.deadline:
                        self._cut(watch, _DEADLINE)
                    elif watch.cut is not None:
                        self._cut(watch, watch.cut)  # still connecting last time: try again
                    if watch.cut is None:
                        wait = min(wait, watch.deadline - now)
                    elif not watch.shut:
                        wait = min(wait, _CUT_RECHECK_SECONDS)
                self._cond.wait(max(wait, 0.0))


class _WatchedHTTPPool(HTTPConnectionPool):
    """A pool that tells its watchdog which connection each try takes."""

    watchdog: t.ClassVar[_Watchdog]

    def _get_conn(self, timeout: float | None = None) -> t.Any:  # noqa: ANN401 - as urllib3's
        conn = super()._get_conn(timeout)
        self.watchdog.note(conn)
        return conn


class _WatchedHTTPSPool(_WatchedHTTPPool, HTTPSConnectionPool):
    """The HTTPS variant of :class:`_WatchedHTTPPool`."""


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose pools (direct and through HTTP proxies) report to a watchdog."""

    def __init__(self, watchdog: _Watchdog) -> None:
        # Classes made for this adapter's watchdog (urllib3 instantiates pools itself).
        self._pool_classes = {
            scheme: t.cast(
                "type[HTTPConnectionPool]",
                type(f"Watched{base.__name__}", (base,), {"watchdog": watchdog}),
            )
            for scheme, base in (("http", _WatchedHTTPPool), ("https", _WatchedHTTPSPool))
        }
        super().__init__()

    def init_poolmanager(
        self,
        connections: int,
        maxsize: int,
        block: bool = False,  # noqa: FBT001, FBT002 - requests' signature
        **pool_kwargs: t.Any,  # noqa: ANN401 - requests' signature
    ) -> None:
        """Create the pool manager with watched pools."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: t.Any) -> t.Any:  # noqa: ANN401
        """Return the proxy manager for ``proxy``, with watched pools unless it is SOCKS."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):
            manager.pool_classes_by_scheme = self._pool_classes
        return manager

    def close(self) -> None:
        """Drop the pools and close their idle connections now.

        urllib3 2.x only forgets pools on ``clear()``; their sockets would stay open until
        the pools are garbage-collected (which a kept traceback can postpone indefinitely).
        """
        managers = [self.poolmanager, *self.proxy_manager.values()]
        pools = [manager.pools.get(key) for manager in managers for key in manager.pools.keys()]  # noqa: SIM118 - no iteration
        super().close()
        for pool in pools:
            if pool is not None:
                pool.close()


class ImportApiClient:
    """Talks to one Import API base URL with one token.

    Safe to share between threads; :meth:`cancel` may be called from any of them.
    """

    def __init__(  # noqa: PLR0913
        self,
        base_url: str,
        token: str,
        *,
        timeout: float,
        max_retry_seconds: float,
        first_contact_seconds: float | None = None,
        backoff_factor: float = 0.5,
        sleep: t.Callable[[float], object] | None = None,
    ) -> None:
        """Create a client.

        Args:
            base_url: The API's base URL, e.g. ``https://api.stitchdata.com``.
            token: The Import API access token.
            timeout: Seconds each try may take overall (connect, upload, whole answer).
            max_retry_seconds: Give up retrying once this much time has passed.
            first_contact_seconds: Before the API was ever reached, give up on a
                connection that cannot be made (refused, unknown host, timeout) after this
                long instead (None: ``max_retry_seconds``). A 503 of the status check still
                waits up to ``max_retry_seconds``: that API is up and asks to wait.
            backoff_factor: First backoff wait in seconds (doubles each try, jittered).
            sleep: Waits between tries (tests may pass a recorder). By default the wait
                ends at once on :meth:`cancel`; a given ``sleep`` must end itself.
        """
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retry_seconds = max_retry_seconds
        self.first_contact_seconds = first_contact_seconds
        self.backoff_factor = backoff_factor
        self._token = token
        self._sleep = sleep
        self._watchdog = _Watchdog()
        self._session = requests.Session()
        adapter = _WatchedAdapter(self._watchdog)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "User-Agent": f"target-stitch-import/{__version__}",
            },
        )
        self._ready = False
        self._ready_error: BaseException | None = None
        self._ready_lock = threading.Lock()
        #: Tries that were retried (for the end-of-run summary).
        self.retries = 0
        #: The same, per table (None: the status check).
        self.retries_by_table: collections.Counter[str | None] = collections.Counter()

    def cancel(self) -> None:
        """Stop: end backoff waits, start no new try, abort tries in flight.

        Every pending and later :meth:`push` raises :class:`CancelledError` (unless its
        answer was already a 2xx). Idempotent; callable from any thread, and it takes
        only a re-entrant lock, so also from a signal handler.
        """
        self._watchdog.cancel()

    def close(self) -> None:
        """Close the connection pool (and let the watchdog thread end)."""
        self._session.close()
        self._watchdog.close()

    def __enter__(self) -> ImportApiClient:  # noqa: PYI034
        """Use the client as a context manager."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the connection pool."""
        self.close()

    # Requests

    def status(self) -> None:
        """Check ``GET /v2/import/status`` once.

        Raises:
            RetriableApiError: The API is unavailable (503, 5xx, no connection).
            FatalApiError: Any other non-2xx answer.
            CancelledError: :meth:`cancel` was called.
        """
        self._request("GET", STATUS_PATH, None, None)

    def wait_until_ready(self) -> None:
        """Before the first post: check status until it is OK (503: wait, check again).

        Checked once per client: a check that gave up raises its error again.
        """
        with self._ready_lock:
            if self._ready:
                return
            if self._ready_error is not None:
                raise self._ready_error
            try:
                self._retrying(
                    self.status,
                    None,
                    f"GET {self.base_url}{STATUS_PATH}",
                    unreachable_seconds=self.first_contact_seconds,
                )
            except BaseException as exc:
                self._ready_error = exc
                raise
            self._ready = True

    def check_ready_soon(self) -> None:
        """Start the status check now, on its own thread, so the first post need not wait.

        The check's round trip overlaps with building the first body; the first
        :meth:`push` waits for it (and raises what it raised).
        """

        def check() -> None:
            with contextlib.suppress(BaseException):  # the first push raises it
                self.wait_until_ready()

        start_daemon(check, "status-check")

    def push(self, table: str, body: Body, *, validate_only: bool = False) -> dict[str, t.Any]:
        """Send one batch body, retrying what is worth retrying.

        Args:
            table: The body's ``table_name`` (for errors and logs).
            body: The exact request body.
            validate_only: Post to ``/v2/import/validate`` instead of ``/batch``.

        Returns:
            The decoded 2xx response body.

        Raises:
            CancelledError: :meth:`cancel` was called before a 2xx answer.
        """
        if not validate_only:
            try:
                self.wait_until_ready()
            except CancelledError:
                raise CancelledError(table) from None
        path = VALIDATE_PATH if validate_only else BATCH_PATH
        return self._retrying(
            lambda: self._request("POST", path, table, body),
            table,
            f"POST {self.base_url}{path}",
        )

    # Internals

    def _request(
        self,
        method: str,
        path: str,
        table: str | None,
        body: Body | None,
    ) -> dict[str, t.Any]:
        """One try: a 2xx answer's decoded body, or the error that says what happened."""
        if self._watchdog.cancelled:
            raise CancelledError(table)
        url = self.base_url + path
        watch = self._watchdog.start(self.timeout)
        try:
            response, failure = self._exchange(method, url, body)
        finally:
            cut = self._watchdog.finish(watch)
        if response is not None and 200 <= response.status_code < 300:  # noqa: PLR2004
            return self._acknowledged(response, failure, table)
        if cut == _CANCELLED:
            raise CancelledError(table)
        if failure is None and response is not None:
            raise self._answer_error(method, path, table, response)
        if cut == _DEADLINE or failure is None:  # (no response and no failure: never)
            message = f"no complete answer from {url} within {self.timeout:g} s"
            raise RetriableApiError(table, None, self._clean(message))
        raise self._transport_error(table, url, failure)

    def _exchange(
        self,
        method: str,
        url: str,
        body: Body | None,
    ) -> tuple[requests.Response | None, requests.RequestException | None]:
        """Send a request and read its whole answer, never following a redirect.

        Returns:
            The response (None when none came) and the error that broke the exchange
            (None when the whole answer was read).
        """
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = self._session.request(
                method,
                url,
                # A bytearray body goes out as it is: requests sets its Content-Length and
                # urllib3 hands the buffer to one sendall (no copy of the 4 MB body).
                data=t.cast("bytes | None", body),
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.RequestException as exc:
            return None, exc
        try:
            if read_answer(response):
                LOGGER.debug("%s answered with over %d bytes: kept those", url, MAX_ANSWER_BYTES)
        except requests.RequestException as exc:
            return response, exc
        finally:
            response.close()  # releases the connection to the pool once fully read
        return response, None

    def _acknowledged(
        self,
        response: requests.Response,
        failure: requests.RequestException | None,
        table: str | None,
    ) -> dict[str, t.Any]:
        """A 2xx status line means the data is safe with Stitch, even if the body broke."""
        if failure is not None:
            where = f"table '{table}'" if table is not None else "Import API"
            LOGGER.warning(
                "%s: HTTP %d (acknowledged), but the rest of the answer was cut off (%s)",
                where,
                response.status_code,
                type(failure).__name__,
            )
            return {}
        try:
            decoded = response.json()
        except ValueError:
            decoded = {}
        return decoded if isinstance(decoded, dict) else {}

    def _transport_error(
        self,
        table: str | None,
        url: str,
        exc: requests.RequestException,
    ) -> ApiError:
        """Translate a ``requests`` error; the message names the URL, never the token."""
        kind = type(exc).__name__
        if isinstance(exc, requests.Timeout):
            message = f"no answer from {url} within {self.timeout:g} s ({kind})"
            return RetriableApiError(table, None, self._clean(message))
        if isinstance(exc, (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
            message = f"connection to {url} failed ({kind})"
            return RetriableApiError(table, None, self._clean(message))
        return FatalApiError(table, None, self._clean(f"request to {url} failed ({kind})"))

    def _answer_error(
        self,
        method: str,
        path: str,
        table: str | None,
        response: requests.Response,
    ) -> ApiError:
        """Translate a non-2xx answer into the error to raise."""
        status = response.status_code
        if 300 <= status < 400:  # noqa: PLR2004
            return FatalApiError(table, status, self._redirect_message(method, path, response))
        message = api_message(response, self._token)
        if status == 401:  # noqa: PLR2004
            message += (
                "; the token is wrong or revoked, or belongs to another region than "
                f"region/api_url ({self.base_url})"
            )
        elif status == 403:  # noqa: PLR2004
            message += "; check that the Import API integration is active in Stitch"
        if status == 429 or status >= 500:  # noqa: PLR2004
            return RetriableApiError(
                table,
                status,
                self._clean(message),
                retry_after_seconds(response),
            )
        return FatalApiError(table, status, self._clean(message))

    def _redirect_message(self, method: str, path: str, response: requests.Response) -> str:
        url = self.base_url + path
        stored = ", nothing was stored" if method == "POST" else ""
        location = response.headers.get("Location")
        if not location:
            return self._clean(
                f"the Import API answered {method} {url} with a redirect without a Location; "
                f"redirects are not followed{stored}; check api_url ({self.base_url})",
            )
        target = urljoin(url, location)
        parts = urlsplit(target)
        if parts.path.endswith(path):
            final = urlunsplit((parts.scheme, parts.netloc, parts.path[: -len(path)], "", ""))
            fix = f"set api_url to the final URL ({final})"
        else:
            fix = f"check api_url ({self.base_url})"
        return self._clean(
            f"the Import API redirected {method} {url} to {target}; "
            f"redirects are not followed{stored}; {fix}",
        )

    def _clean(self, message: str) -> str:
        """One line, the token and bearer credentials redacted."""
        return redact(" ".join(message.split()), self._token)

    def _retrying(
        self,
        attempt: t.Callable[[], dict[str, t.Any] | None],
        table: str | None,
        what: str,
        *,
        unreachable_seconds: float | None = None,
    ) -> t.Any:  # noqa: ANN401
        started = time.monotonic()
        deadline = started + self.max_retry_seconds
        waits = backoff.expo(factor=self.backoff_factor, max_value=60)
        next(waits)  # backoff's generators first yield a priming 0
        tries = 0
        while True:
            tries += 1
            try:
                return attempt()
            except RetriableApiError as exc:
                wait = backoff.full_jitter(next(waits))
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                limit = deadline
                if exc.status is None and unreachable_seconds is not None:
                    limit = min(deadline, started + unreachable_seconds)
                if time.monotonic() + wait > limit:
                    setting = (
                        "max_retry_seconds" if limit == deadline else "first_contact_seconds"
                    )
                    raise self._gave_up(exc, tries, what, setting) from None
                self.retries += 1
                self.retries_by_table[table] += 1
                LOGGER.warning("%s; retrying in %.1f s (try %d)", exc, wait, tries + 1)
                self._pause(wait, table)

    def _pause(self, seconds: float, table: str | None) -> None:
        """Wait between tries; raise at once if cancelled."""
        if self._sleep is None:
            self._watchdog.pause(seconds)
        else:
            self._sleep(seconds)
        if self._watchdog.cancelled:
            raise CancelledError(table)

    def _gave_up(
        self,
        exc: ApiError,
        tries: int,
        what: str,
        setting: str = "max_retry_seconds",
    ) -> FatalApiError:
        seconds = getattr(self, setting)
        message = (
            f"{exc.api_message} (gave up on {what} after {tries} "
            f"{'try' if tries == 1 else 'tries'} within {setting}={seconds:g})"
        )
        return FatalApiError(exc.table, exc.status, self._clean(message))
