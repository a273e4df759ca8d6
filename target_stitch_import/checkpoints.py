"""STATE released in acknowledgement order.

Every record (and every ``activate_version``) read takes the next *position*. A STATE read
after position ``p`` may be written only once nothing at a position ``<= p`` is still
unacknowledged. Records are unacknowledged from the moment they are read: first while they
wait in a table's open batch, then while their request is in flight. Each such group is a
*hold* on the position of its first record; a hold is released when its request is
acknowledged (2xx). Whenever the lowest open hold moves up, the latest STATE below it is
written — only the latest, never an empty one, never the same value twice in a row.

Thread-safe: holds are released from sender threads.
"""

from __future__ import annotations

import itertools
import threading
import typing as t


class StateLedger:
    """Tracks positions, holds and pending STATE values; writes STATE through ``emit``."""

    def __init__(self, emit: t.Callable[[t.Any], None]) -> None:
        """Create a ledger.

        Args:
            emit: Writes one STATE value (called under the ledger's lock, in order).
        """
        self._emit = emit
        self._lock = threading.Lock()
        self._position = 0
        self._holds: dict[int, int] = {}
        self._hold_ids = itertools.count(1)
        self._pending: list[tuple[int, t.Any]] = []
        self._last_emitted: t.Any = None
        self._closed = False
        self.emitted = 0

    @property
    def position(self) -> int:
        """The position of the last record read (0 before the first)."""
        return self._position

    def next_position(self) -> int:
        """Count one more record read; return its position (1, 2, ...)."""
        self._position += 1
        return self._position

    def advance(self, records: int) -> None:
        """Count ``records`` more records read (their positions follow the last one).

        Called by the reading thread only (the one thread that writes ``_position``); the
        other threads never read it, so no lock is needed on this per-record path.
        """
        self._position += records

    def hold(self, position: int) -> int:
        """Open a hold on ``position``; return its id for :meth:`release`."""
        with self._lock:
            hold_id = next(self._hold_ids)
            self._holds[hold_id] = position
            return hold_id

    def release(self, hold_id: int) -> None:
        """Release a hold (its records are acknowledged) and write what became safe."""
        with self._lock:
            del self._holds[hold_id]
            self._flush()

    def add_state(self, value: t.Any) -> None:  # noqa: ANN401
        """Register a STATE value read after every position issued so far."""
        if not value:  # never an empty STATE
            return
        with self._lock:
            if self._pending and self._pending[-1][0] == self._position:
                self._pending[-1] = (self._position, value)
            else:
                self._pending.append((self._position, value))
            self._flush()

    def close(self, timeout: float) -> bool:
        """Write no STATE from now on; return False if a write in progress did not end.

        Waits up to ``timeout`` seconds for a STATE being written (under the lock) to be
        complete, so a run that stops never leaves half a STATE line.
        """
        if not self._lock.acquire(timeout=timeout):
            self._closed = True
            return False
        try:
            self._closed = True
        finally:
            self._lock.release()
        return True

    @property
    def positions(self) -> int:
        """Positions issued so far (records and activations read)."""
        return self._position

    @property
    def unreleased(self) -> int:
        """Number of STATE values read but not yet safe to write."""
        with self._lock:
            return len(self._pending)

    def _flush(self) -> None:
        if not self._pending or self._closed:
            return
        low = min(self._holds.values(), default=None)
        released = None
        keep = 0
        for position, value in self._pending:
            if low is not None and position >= low:
                break
            released = value
            keep += 1
        if released is None:
            return
        del self._pending[:keep]
        if released != self._last_emitted:
            self._last_emitted = released
            self.emitted += 1
            self._emit(released)
