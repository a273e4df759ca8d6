"""The package's one error tree.

Every error carries what a user needs to act on it (the stream or table, the HTTP status,
Stitch's own message) and never the token or a request body.
"""

from __future__ import annotations

import contextlib


class StitchImportError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(StitchImportError):
    """The settings cannot work (bad region, unreachable combination, ...)."""


class ConnectError(StitchImportError):
    """A ``target-stitch-import connect`` command failed (Connect API, Import API check, file)."""


class RecordError(StitchImportError):
    """A record cannot be sent as it is (too large for any batch, bad key, bad field)."""


class SchemaError(StitchImportError):
    """A stream's schema cannot be sent (nested too deeply; in strict mode, one Stitch refuses)."""


class InputError(StitchImportError):
    """A Singer message on the input cannot be used (malformed, wrong shape, unreadable)."""


class DeliveryError(StitchImportError):
    """Delivery of request bodies or STATE failed; raised where it is noticed, not on a line."""


class OutputClosedError(DeliveryError):
    """Standard output was closed: STATE cannot be written, so the run stops."""


class StoppedError(BaseException):
    """The run was stopped by a signal (SIGTERM, SIGINT).

    Like ``KeyboardInterrupt``, not an ``Exception``: the signal handler raises it wherever
    the reading thread is, and an ``except Exception`` there (a fast path falling back to a
    slow one) must not take it for its own failure and go on reading.

    Attributes:
        signum: The signal's number (the exit code is ``128 + signum``).
    """

    def __init__(self, signum: int, message: str) -> None:
        """Build the error for ``signum`` with the text shown to the user."""
        super().__init__(message)
        self.signum = signum


class ApiError(DeliveryError):
    """The Import API answered with an error, or could not be reached.

    Attributes:
        table: The destination table of the request, or None for status checks.
        status: The HTTP status, or None when no response came back.
        api_message: Stitch's own message from the response body (or the transport error).
    """

    def __init__(self, table: str | None, status: int | None, api_message: str) -> None:
        """Build the error; its text names the table, the status and Stitch's message."""
        self.table = table
        self.status = status
        self.api_message = api_message
        where = f"table '{table}'" if table is not None else "Import API"
        what = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"{where}: {what}: {api_message}")


class RetriableApiError(ApiError):
    """A 5xx, a 429, a dropped connection or a timeout: worth trying again."""

    def __init__(
        self,
        table: str | None,
        status: int | None,
        api_message: str,
        retry_after: float | None = None,
    ) -> None:
        """Build the error; ``retry_after`` is the server's ``Retry-After`` in seconds."""
        super().__init__(table, status, api_message)
        self.retry_after = retry_after


class FatalApiError(ApiError):
    """Any other 4xx (or retries exhausted): the run must stop."""


class CancelledError(DeliveryError):
    """``cancel()`` stopped the client before the Import API acknowledged ``table``'s request."""

    def __init__(self, table: str | None) -> None:
        """Build the error; its text names the table that was not acknowledged."""
        self.table = table
        what = f"table '{table}'" if table is not None else "the status check"
        super().__init__(f"stopped before the Import API acknowledged {what}")


def at_record(exc: BaseException, index: int) -> None:
    """Note on ``exc`` which record of a run of RECORD messages it is about (first note wins).

    The reader turns it into the record's input line (see ``reader.at_line``).
    """
    if not hasattr(exc, "record_index"):
        with contextlib.suppress(AttributeError):  # an exception type with __slots__
            exc.record_index = index  # type: ignore[attr-defined]
