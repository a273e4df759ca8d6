"""One run's shared parts, owned by the target and handed to every sink.

Data flows one way: reader → target → sink → (sequence, batch) → :class:`Run` → sender →
client. The run holds the settings, the STATE ledger, the sender and its delivery (the
Import API client, ``/validate``, or dry-run files), the per-table state
(:class:`~target_stitch_import.tables.Table`, open batches included), the age flush that
sends batches while the tap is idle, and the memory ceiling across tables. Sinks add
encoded messages to a table; the run cuts batches by bytes, messages, header, age and
memory and hands finished bodies to the sender. Reading waits only where correctness needs
it: when ``max_requests_in_flight`` bodies are outstanding, before an ``activate_version``,
and at the end of input.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import typing as t

from singer_sdk import metrics

from target_stitch_import.batch import Batch, encode_activate_version
from target_stitch_import.checkpoints import StateLedger
from target_stitch_import.client import ImportApiClient
from target_stitch_import.errors import ConfigError
from target_stitch_import.sender import Deliver, Request, Sender, TableStats
from target_stitch_import.sequence import Sequencer
from target_stitch_import.tables import OpenBatch, Table
from target_stitch_import.threads import start_daemon
from target_stitch_import.workers import RecordWorkers

if t.TYPE_CHECKING:
    import logging
    from pathlib import Path

    from target_stitch_import.batch import Body
    from target_stitch_import.settings import Settings

#: Bytes that may join open batches between two checks of the memory ceiling (at most;
#: an eighth of the ceiling when that is smaller).
_CEILING_CHECK_BYTES = 1 << 20
_FILE_NAME_LIMIT = 80
#: Byte counts below this are shown as bytes, larger ones in MB.
_BYTES_SHOWN_AS_IS = 10_000
#: Seconds a stopping run waits for a STATE line being written to be complete.
_STATE_WRITE_GRACE = 5.0


class RunOwner(t.Protocol):
    """What a sink needs of its target: the run."""

    run: Run


def file_name_part(name: str) -> str:
    """Return ``name`` as a safe, short part of a file name (dry-run bodies).

    Anything but ASCII letters, digits, ``.``, ``-`` and ``_`` becomes ``_``; a name that
    had to change or be shortened gets a short hash of the original, so two streams never
    share a file name part.
    """
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    safe = safe.lstrip(".") or "_"
    if safe == name and len(name) <= _FILE_NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{safe[:_FILE_NAME_LIMIT]}-{digest}"


class Run:
    """The shared parts of one run (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        logger: logging.Logger,
        write_state: t.Callable[[t.Any], None],
        on_failure: t.Callable[[BaseException], object] | None = None,
    ) -> None:
        """Set the run up: ledger, delivery, sender (no thread starts before it is needed).

        Args:
            settings: The checked settings.
            logger: The target's logger.
            write_state: Writes one STATE value (only used when something is loaded).
            on_failure: Called once, on a sender thread, with the first delivery failure.

        Raises:
            ConfigError: ``dry_run_dir`` cannot hold the bodies.
        """
        self.settings = settings
        self.logger = logger
        #: The ``version`` of the RECORD being processed (None when it has none).
        self.message_version: int | None = None
        self._write_state = write_state if settings.writes_state else self._skip_state
        self.ledger = StateLedger(self._emit_state)
        #: Records added to tables, messages handed to the sender, and when the last
        #: STATE was written (monotonic; None before the first): for progress lines.
        self.records_read = 0
        self.messages_sent = 0
        self.last_state_at: float | None = None
        self._started = time.monotonic()
        self._progress_at = self._started
        self._progress_acked = 0
        self.client: ImportApiClient | None = None
        self.stopping = threading.Event()
        self._aborted = False
        self._dry_run_count = 0
        self._dry_run_lock = threading.Lock()
        self.sender = Sender(
            self._deliverer(),
            self.ledger,
            settings.max_requests_in_flight,
            on_failure=on_failure,
        )
        self._tables: dict[str, Table] = {}
        #: The record worker processes (they start once large reads brought 2,000 lines).
        self.workers = RecordWorkers(settings.record_workers, logger)
        self._tables_lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._unchecked_bytes = 0
        self._ceiling_step = min(_CEILING_CHECK_BYTES, settings.max_buffered_bytes // 8)

    # Delivery

    def _deliverer(self) -> Deliver:
        settings = self.settings
        if settings.dry_run_dir is not None:
            directory = settings.dry_run_dir
            try:
                directory.mkdir(parents=True, exist_ok=True)
                probe = directory / f".target-stitch-import-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                msg = (
                    f"dry_run_dir '{directory}' cannot hold the request bodies "
                    f"({exc.strerror or type(exc).__name__}); name a writable directory"
                )
                raise ConfigError(msg) from None
            return lambda table, body: self._write_body(directory, table, body)
        client = ImportApiClient(
            settings.base_url,
            settings.token,
            timeout=settings.request_timeout_seconds,
            max_retry_seconds=settings.max_retry_seconds,
            first_contact_seconds=settings.first_contact_seconds,
        )
        self.client = client
        if settings.validate_only:
            return lambda table, body: client.push(table, body, validate_only=True)
        return client.push

    def _write_body(self, directory: Path, table: str, body: Body) -> Path:
        with self._dry_run_lock:
            self._dry_run_count += 1
            number = self._dry_run_count
        path = directory / f"{number:06d}-{file_name_part(table)}.json"
        partial = path.with_name(f".{path.name}.partial")  # a run that stops leaves no half body
        partial.write_bytes(body)
        partial.replace(path)
        return path

    def _emit_state(self, value: t.Any) -> None:  # noqa: ANN401
        self._write_state(value)
        self.last_state_at = time.monotonic()

    def _skip_state(self, value: t.Any) -> None:  # noqa: ANN401
        _ = value
        self.logger.debug("STATE not written (nothing is loaded in this mode)")

    # Tables

    def table(self, name: str) -> Table:
        """Return the run-long state of a table (created on first use)."""
        table = self._tables.get(name)
        if table is None:
            with self._tables_lock:
                table = self._tables.setdefault(
                    name,
                    Table(name, Sequencer(self.settings.sequence_source), self.logger),
                )
        return table

    def tables(self) -> list[Table]:
        """Every table of the run so far."""
        with self._tables_lock:
            return list(self._tables.values())

    # Batching

    def add(self, table: Table, header: bytes, message: bytes) -> None:
        """Add one encoded message to the table's open batch (see :meth:`add_many`)."""
        self.add_many(table, header, (message,))

    def add_segments(
        self,
        table: Table,
        segments: t.Iterable[tuple[bytes, t.Sequence[bytes]]],
    ) -> None:
        """Add messages by batch header, in order (what ``StitchImportSink.take_many`` gives)."""
        for header, messages in segments:
            self.add_many(table, header, messages)

    def add_many(self, table: Table, header: bytes, messages: t.Sequence[bytes]) -> None:
        """Add encoded messages, in order, to the table's open batch; cut it where a limit says.

        The open batch is sent first when a message needs another header (schema or table
        version) or would push it past ``max_batch_bytes``/``batch_size_rows``; a batch that
        reaches ``batch_size_rows`` is sent at once. Blocks only while
        ``max_requests_in_flight`` bodies are outstanding.

        Raises:
            BaseException: A delivery failed (raised on the reading thread).
        """
        self.sender.raise_if_failed()
        ledger = self.ledger
        total = len(messages)
        start = 0
        with table.lock:
            while start < total:
                current = table.open
                end = start
                if current is not None and (
                    current.batch.header is header or current.batch.header == header
                ):
                    end = current.batch.extend(messages, start)
                if current is None or end == start:  # another header, or it does not fit
                    if current is not None:
                        self._send_locked(table)
                    settings = self.settings
                    batch = Batch(header, settings.max_batch_bytes, settings.batch_size_rows)
                    end = batch.extend(messages, start)  # at least one: the sink checked its size
                    current = table.open = OpenBatch(
                        batch, ledger.hold(ledger.position + 1), time.monotonic()
                    )
                    self._start_background()
                ledger.advance(end - start)
                self.records_read += end - start
                start = end
                if current.batch.is_full:
                    self._send_locked(table)
        added = sum(map(len, messages))
        self._unchecked_bytes += added
        if self._unchecked_bytes >= self._ceiling_step:
            self._unchecked_bytes = 0
            self._enforce_ceiling()

    def send(self, table: Table) -> None:
        """Hand the table's open batch (if any) to the sender without waiting."""
        with table.lock:
            self._send_locked(table)

    def send_and_wait(self, table: Table) -> None:
        """Send the open batch and wait until every body of the table is acknowledged."""
        self.send(table)
        self.sender.wait(table.name)

    def activate(self, table: Table, header: bytes, version: int) -> None:
        """Switch the table to ``version`` once all its earlier bodies are acknowledged."""
        self.send_and_wait(table)
        position = self.ledger.next_position()
        batch = Batch(header, self.settings.max_batch_bytes, self.settings.batch_size_rows)
        batch.add(encode_activate_version(table.sequencer.time_based(time.time_ns())))
        self.logger.info("Activating version %s of table '%s'", version, table.name)
        self.sender.submit(Request(table.name, batch.finish(), 1, self.ledger.hold(position)))

    def _send_locked(self, table: Table) -> None:
        current = table.open
        if current is None:
            return
        table.open = None
        batch = current.batch
        self.sender.submit(Request(table.name, batch.take_body(), len(batch), current.hold))
        self.messages_sent += len(batch)

    def _enforce_ceiling(self) -> None:
        """Past ``max_buffered_bytes`` in open batches, send the largest first."""
        tables = self.tables()
        total = sum(table.open_bytes for table in tables)
        ceiling = self.settings.max_buffered_bytes
        for table in sorted(tables, key=lambda tb: tb.open_bytes, reverse=True):
            if total <= ceiling:
                break
            total -= table.open_bytes
            self.logger.debug("Above max_buffered_bytes: sending '%s'", table.name)
            self.send(table)

    # Age flush and progress (one ticker thread)

    def _start_background(self) -> None:
        """At the first open batch: the ticker thread, and the API's status check."""
        if self._ticker is None:
            if self.client is not None and not self.settings.validate_only:
                self.client.check_ready_soon()
            self._ticker = start_daemon(self._tick, "ticker")

    def _tick(self) -> None:
        max_age = self.settings.max_batch_age_seconds
        interval = min(1.0, max_age / 4)
        progress = self.settings.progress_interval_seconds
        while not self.stopping.wait(interval):
            if self.sender.failed:  # the reading thread reports the failure
                return
            now = time.monotonic()
            if progress and now - self._progress_at >= progress:
                self.log_progress(now)
            for table in self.tables():
                with table.lock:
                    current = table.open
                    if current is None or now - current.opened < max_age:
                        continue
                    self.logger.debug("Batch of '%s' reached the maximum age", table.name)
                    try:
                        self._send_locked(table)
                    except Exception:  # noqa: BLE001 - the reading thread raises it
                        return

    def log_progress(self, now: float) -> None:
        """Log one progress line: counts, MB sent, the current rate, the last STATE's age."""
        acked = self.acknowledged
        seconds = max(now - self._progress_at, 1e-9)
        rate = (acked - self._progress_acked) / seconds
        self._progress_at, self._progress_acked = now, acked
        sent_bytes = sum(stats.bytes for stats in self.sender.stats.values())
        if self.last_state_at is None:
            state = "no STATE written yet"
        else:
            state = f"last STATE written {now - self.last_state_at:.0f} s ago"
        self.logger.info(
            "Progress: %s read, %s sent, %s acknowledged (%.1f MB); %s/s over the last %.0f s; %s",
            plural(self.records_read, "record"),
            f"{self.messages_sent:,}",
            f"{acked:,}",
            sent_bytes / 1e6,
            plural(round(rate), "record"),
            seconds,
            state,
        )

    # End of run

    def wait(self) -> None:
        """Wait until every body submitted so far is acknowledged (raise a failure)."""
        self.sender.wait()

    @property
    def acknowledged(self) -> int:
        """Messages acknowledged so far."""
        return sum(stats.messages for stats in self.sender.stats.values())

    def abort(self) -> None:
        """Stop everything now: no more STATE (never half a line), requests, waits; idempotent."""
        if self._aborted:
            return
        self._aborted = True
        self.stopping.set()
        if self.client is not None:
            self.client.cancel()  # ends retry waits and cuts requests in flight
        if not self.ledger.close(_STATE_WRITE_GRACE):
            self.logger.warning("A STATE line being written did not complete in time.")
        self.stop()

    def stop(self) -> None:
        """Stop background work: the age flush, the workers, the connection pool."""
        self.stopping.set()
        self.workers.close()
        self.sender.close()
        if self.client is not None:
            self.client.close()

    def log_summary(self) -> None:
        """Log what was delivered: one line per table and a total; SDK metrics per table."""
        retries = self.client.retries_by_table if self.client is not None else {}
        endpoint = "validate" if self.settings.validate_only else "batch"
        total = TableStats()
        for table, stats in sorted(self.sender.stats.items()):
            self.logger.info(
                "Table '%s': %s in %s, %s (largest %s), %s, %.2f s",
                table,
                plural(stats.messages, "message"),
                plural(stats.requests, "request"),
                megabytes(stats.bytes),
                megabytes(stats.largest),
                plural(retries.get(table, 0), "retry", "retries"),
                stats.seconds,
            )
            with metrics.http_request_counter(table, endpoint) as counter:
                counter.increment(stats.requests)
            total.messages += stats.messages
            total.requests += stats.requests
            total.bytes += stats.bytes
        self.logger.info(
            "Total: %s in %s to %s, %s, %s, %.1f s",
            plural(total.messages, "message"),
            plural(total.requests, "request"),
            plural(len(self.sender.stats), "table"),
            megabytes(total.bytes),
            plural(self.client.retries if self.client is not None else 0, "retry", "retries"),
            time.monotonic() - self._started,
        )
        if self.workers.started:
            self.logger.info(
                "Record workers: %d; they prepared %s of %s read (the rest in the reading "
                "process).",
                self.workers.count,
                plural(self.workers.prepared, "record"),
                f"{self.records_read:,}",
            )
        if self.ledger.unreleased:
            self.logger.warning(
                "%s not written", plural(self.ledger.unreleased, "STATE message"),
            )


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 record``, ``2 records``, ``1,000 retries``: a count with its noun."""
    noun = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {noun}"


def megabytes(count: int) -> str:
    """A byte count for people: ``812 bytes``, ``3.91 MB``."""
    return f"{count:,} bytes" if count < _BYTES_SHOWN_AS_IS else f"{count / 1e6:,.2f} MB"
