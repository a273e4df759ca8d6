"""Delivery of finished request bodies, several in flight, acknowledged in any order.

Sinks hand finished bodies to the :class:`Sender`; worker threads deliver them (to the
Import API, to ``/validate``, or to files) while reading goes on. ``submit`` blocks while
``max_in_flight`` bodies are outstanding, which bounds memory. An acknowledged body releases
its hold in the :class:`~target_stitch_import.checkpoints.StateLedger`; a failed one keeps
its hold (so no later STATE is ever written) and the failure is raised on the reading
thread at its next call.
"""

from __future__ import annotations

import collections
import queue
import threading
import time
import typing as t
from dataclasses import dataclass

from target_stitch_import.threads import start_daemon

if t.TYPE_CHECKING:
    from target_stitch_import.batch import Body
    from target_stitch_import.checkpoints import StateLedger

Deliver = t.Callable[[str, "Body"], object]


@dataclass(frozen=True)
class Request:
    """One finished body for one table."""

    table: str
    body: Body
    messages: int
    hold: int


@dataclass
class TableStats:
    """What was delivered for one table."""

    requests: int = 0
    messages: int = 0
    bytes: int = 0
    seconds: float = 0.0
    largest: int = 0


class Sender:
    """Keeps up to ``max_in_flight`` requests in flight on daemon worker threads."""

    def __init__(
        self,
        deliver: Deliver,
        ledger: StateLedger,
        max_in_flight: int,
        on_failure: t.Callable[[BaseException], object] | None = None,
    ) -> None:
        """Create a sender (its workers start with the first submitted body).

        Args:
            deliver: Sends one body; returns on acknowledgement, raises on failure.
            ledger: Released as bodies are acknowledged.
            max_in_flight: Bodies outstanding at most (queued or being sent).
            on_failure: Called once, on the worker thread, with the first failure (so the
                reading thread can be woken instead of noticing it at its next record).
        """
        self._deliver = deliver
        self._on_failure = on_failure
        self._ledger = ledger
        self._max_in_flight = max_in_flight
        self._queue: queue.SimpleQueue[Request | None] = queue.SimpleQueue()
        self._changed = threading.Condition()
        self._outstanding: collections.Counter[str] = collections.Counter()
        self._workers: list[threading.Thread] = []
        self._failure: BaseException | None = None
        self.stats: dict[str, TableStats] = collections.defaultdict(TableStats)

    @property
    def failed(self) -> bool:
        """True once any delivery failed."""
        return self._failure is not None

    def raise_if_failed(self) -> None:
        """Raise the first delivery failure, if any.

        Raises:
            BaseException: The error a worker met.
        """
        if self._failure is not None:
            raise self._failure

    def submit(self, request: Request) -> None:
        """Queue a body for delivery (blocks while the in-flight limit is reached).

        Raises:
            BaseException: A delivery failed before or while waiting for a slot.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: self._failure is not None
                or self._outstanding.total() < self._max_in_flight,
            )
            self.raise_if_failed()
            self._outstanding[request.table] += 1
            if len(self._workers) < self._max_in_flight:
                self._start_worker()
        self._queue.put(request)

    def wait(self, table: str | None = None) -> None:
        """Wait until every body submitted so far (for ``table``, or all) is acknowledged.

        Raises:
            BaseException: The first delivery failure, if any.
        """
        with self._changed:
            self._changed.wait_for(
                lambda: self._failure is not None
                or (self._outstanding[table] if table is not None else self._outstanding.total())
                == 0,
            )
        self.raise_if_failed()

    def close(self) -> None:
        """Stop the workers once the queue is empty (they are daemons: exit never waits)."""
        for _ in self._workers:
            self._queue.put(None)
        self._workers = []

    def _start_worker(self) -> None:
        self._workers.append(start_daemon(self._work, f"sender-{len(self._workers) + 1}"))

    def _work(self) -> None:
        while (request := self._queue.get()) is not None:
            self._run(request)

    def _run(self, request: Request) -> None:
        failure: BaseException | None = None
        if self._failure is None:
            started = time.monotonic()
            try:
                self._deliver(request.table, request.body)
                self._record(request, time.monotonic() - started)
                # Writes the STATE this acknowledgement made safe: may fail (stdout closed).
                self._ledger.release(request.hold)
            except BaseException as exc:  # noqa: BLE001 - handed to the reading thread
                failure = exc
        first = False
        with self._changed:
            if failure is not None and self._failure is None:
                self._failure = failure
                first = True
            self._outstanding[request.table] -= 1
            self._changed.notify_all()
        if first and self._on_failure is not None:
            self._on_failure(t.cast("BaseException", failure))

    def _record(self, request: Request, seconds: float) -> None:
        with self._changed:
            stats = self.stats[request.table]
            stats.requests += 1
            stats.messages += request.messages
            stats.bytes += len(request.body)
            stats.seconds += seconds
            stats.largest = max(stats.largest, len(request.body))
