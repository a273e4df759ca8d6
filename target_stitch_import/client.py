"""HTTP client of the Stitch Import API: one pooled session, bounded retries.

The client knows nothing of Singer: it takes a table name and the exact body bytes. It is
the one place where ``requests`` errors become the package's own (:mod:`errors`).
Retried: 5xx, 429 (honouring ``Retry-After``), dropped connections and timeouts, with
exponential backoff and full jitter until ``max_retry_seconds`` have passed. Any other 4xx
raises :class:`FatalApiError` at once. The token is only ever placed in the session's
``Authorization`` header; no message built here contains it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import threading
import time
import typing as t

import backoff
import requests

from target_stitch_import.__version__ import __version__
from target_stitch_import.contract import BATCH_PATH, STATUS_PATH, VALIDATE_PATH
from target_stitch_import.errors import ApiError, FatalApiError, RetriableApiError

LOGGER = logging.getLogger("target_stitch_import.client")
_MESSAGE_LIMIT = 500


def api_message(response: requests.Response) -> str:
    """Return Stitch's own message from an error response (never the request)."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip() or response.reason or "no message"
        return text[:_MESSAGE_LIMIT]
    if not isinstance(body, dict):
        return str(body)[:_MESSAGE_LIMIT]
    parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
    errors = body.get("errors")
    if isinstance(errors, dict) and errors.get("error"):
        parts.append(str(errors["error"]))
    return (": ".join(parts) or json.dumps(body))[:_MESSAGE_LIMIT]


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


class ImportApiClient:
    """Talks to one Import API base URL with one token."""

    def __init__(  # noqa: PLR0913
        self,
        base_url: str,
        token: str,
        *,
        timeout: float,
        max_retry_seconds: float,
        backoff_factor: float = 0.5,
        sleep: t.Callable[[float], object] = time.sleep,
    ) -> None:
        """Create a client.

        Args:
            base_url: The API's base URL, e.g. ``https://api.stitchdata.com``.
            token: The Import API access token.
            timeout: Seconds to wait for a connection and for each read.
            max_retry_seconds: Give up retrying once this much time has passed.
            backoff_factor: First backoff wait in seconds (doubles each try, jittered).
            sleep: Waits between tries (tests may pass a recorder).
        """
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_retry_seconds = max_retry_seconds
        self.backoff_factor = backoff_factor
        self._sleep = sleep
        self._session = requests.Session()
        self._session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "User-Agent": f"target-stitch-import/{__version__}",
            },
        )
        self._ready = False
        self._ready_lock = threading.Lock()
        #: Tries that were retried (for the end-of-run summary).
        self.retries = 0

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

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
        """
        self._request("GET", STATUS_PATH, None, None)

    def wait_until_ready(self) -> None:
        """Before the first post: check status until it is OK (503: wait, check again)."""
        with self._ready_lock:
            if self._ready:
                return
            self._retrying(self.status)
            self._ready = True

    def push(self, table: str, body: bytes, *, validate_only: bool = False) -> dict[str, t.Any]:
        """Send one batch body, retrying what is worth retrying.

        Args:
            table: The body's ``table_name`` (for errors and logs).
            body: The exact request body.
            validate_only: Post to ``/v2/import/validate`` instead of ``/batch``.

        Returns:
            The decoded 2xx response body.
        """
        if not validate_only:
            self.wait_until_ready()
        path = VALIDATE_PATH if validate_only else BATCH_PATH
        return self._retrying(lambda: self._request("POST", path, table, body))

    # Internals

    def _request(
        self,
        method: str,
        path: str,
        table: str | None,
        body: bytes | None,
    ) -> dict[str, t.Any]:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                data=body,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout as exc:
            msg = f"no answer within {self.timeout:g} s ({type(exc).__name__})"
            raise RetriableApiError(table, None, msg) from None
        except requests.ConnectionError as exc:
            msg = f"connection failed ({type(exc).__name__})"
            raise RetriableApiError(table, None, msg) from None
        except requests.RequestException as exc:
            raise FatalApiError(table, None, f"request failed ({type(exc).__name__})") from None
        status = response.status_code
        if 200 <= status < 300:  # noqa: PLR2004
            try:
                decoded = response.json()
            except ValueError:
                decoded = {}
            return decoded if isinstance(decoded, dict) else {}
        message = api_message(response)
        if status == 429 or status >= 500:  # noqa: PLR2004
            raise RetriableApiError(table, status, message, retry_after_seconds(response))
        raise FatalApiError(table, status, message)

    def _retrying(
        self,
        attempt: t.Callable[[], dict[str, t.Any] | None],
    ) -> t.Any:  # noqa: ANN401
        deadline = time.monotonic() + self.max_retry_seconds
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
                if time.monotonic() + wait > deadline:
                    raise self._gave_up(exc, tries) from None
                self.retries += 1
                LOGGER.warning("%s; retrying in %.1f s (try %d)", exc, wait, tries + 1)
                self._sleep(wait)

    def _gave_up(self, exc: ApiError, tries: int) -> FatalApiError:
        message = (
            f"{exc.api_message} (gave up after {tries} tries within "
            f"max_retry_seconds={self.max_retry_seconds:g})"
        )
        return FatalApiError(exc.table, exc.status, message)
