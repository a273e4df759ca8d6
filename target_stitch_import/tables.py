"""What the run keeps per destination table: sequences, table versions, the open batch.

A :class:`Table` outlives the SDK's sinks (a new SCHEMA replaces the sink, not the table):
its sequencer keeps counting, a full-table version stays open across sinks, and its open
batch is cut when the next message needs another header (a new schema or table version)
or would break a limit. The clock is passed in; nothing here does I/O.
"""

from __future__ import annotations

import threading
import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    import logging

    from target_stitch_import.batch import Batch
    from target_stitch_import.schema import PrecisionFix
    from target_stitch_import.sequence import Sequencer


@dataclass
class OpenBatch:
    """A table's batch being filled, with what delivery needs to know of it."""

    batch: Batch
    #: The ledger hold of its first record (released when the body is acknowledged).
    hold: int
    #: When its first record joined (monotonic seconds), for the age limit.
    opened: float


@dataclass
class Table:
    """The run-long state of one destination table (one stream alias)."""

    name: str
    sequencer: Sequencer
    logger: logging.Logger
    bookmark_names: tuple[str, ...] = ()
    #: The version records without their own ``version`` are loaded into.
    table_version: int | None = None
    #: A version announced by ACTIVATE_VERSION whose load is not finished yet.
    pending_version: int | None = None
    #: Versions RECORDs carried since the last activation (singer-io taps' style).
    record_versions: set[int] = field(default_factory=set)
    #: The ``multipleOf`` steps relaxed mode made finer, by keyword path (kept for the
    #: stream's later SCHEMA messages).
    precision: dict[tuple[str | int, ...], PrecisionFix] = field(default_factory=dict)
    #: The batch being filled (guarded by :attr:`lock`).
    open: OpenBatch | None = None
    #: Guards :attr:`open` (the age flush runs on another thread).
    lock: threading.Lock = field(default_factory=threading.Lock)
    _warned: set[str] = field(default_factory=set)

    @property
    def open_bytes(self) -> int:
        """Bytes of the open batch's body so far (0 when none is open)."""
        current = self.open
        return current.batch.size if current is not None else 0

    def warn_once(self, key: str) -> bool:
        """Return True the first time ``key`` is given in this run (then warn), else False."""
        if key in self._warned:
            return False
        self._warned.add(key)
        return True

    def sequence_for(self, record: t.Mapping[str, t.Any], now_ns: int) -> int:
        """Return the sequence of the next record of this table (warning once per cause)."""
        sequencer = self.sequencer
        names = self.bookmark_names
        if names:
            bookmark = record.get(names[0])
            if bookmark is None and names[0] not in record:
                self._note_absent_bookmark()
            sequence = sequencer.next(bookmark, now_ns)
        else:
            sequence = sequencer.time_based(now_ns)
        if sequencer.fallback_reason is not None or sequencer.saturated:
            self._warn_sequencer()
        return sequence

    def sequence_of(self, base: int | None, now_ns: int) -> int:
        """Return the sequence of the next record, a prepared one (``base`` None: time-based)."""
        sequencer = self.sequencer
        if base is None:
            return sequencer.time_based(now_ns)
        sequence = sequencer.of_base(base)
        if sequencer.saturated:
            self._warn_sequencer()
        return sequence

    def _warn_sequencer(self) -> None:
        """Warn once per cause when sequences stop following the bookmark exactly."""
        sequencer = self.sequencer
        if sequencer.fallback_reason is not None and self.warn_once("fallback"):
            self.logger.warning(
                "Stream '%s': bookmark '%s' value cannot order sequences (%s); records "
                "with such values get time-based sequences.",
                self.name,
                self.bookmark_names[0],
                sequencer.fallback_reason,
            )
        if sequencer.saturated and self.warn_once("saturated"):
            self.logger.warning(
                "Stream '%s': more than 1,000 records share one '%s' value; repeats of "
                "one key among them may share a sequence.",
                self.name,
                self.bookmark_names[0],
            )

    def _note_absent_bookmark(self) -> None:
        """Say once that the bookmark is not a record field (log-based taps: ``lsn``)."""
        if self.warn_once("bookmark absent"):
            self.logger.info(
                "Stream '%s': its bookmark '%s' is not a field of its records (log-based "
                "taps keep it in the STATE only); records without it get time-based "
                "sequences, in read order, so the last change of a key read wins.",
                self.name,
                self.bookmark_names[0],
            )

    def version_of(self, record_version: int | None) -> int | None:
        """Return the table version a record goes to (its own ``version``, else the table's)."""
        if record_version is None:
            return self.table_version
        self.record_versions.add(record_version)
        return record_version

    def versions_to_activate(self, version: int) -> list[int]:
        """Take an ACTIVATE_VERSION; return the versions whose load it finishes, in order.

        A full-table version is activated only once it is complete, so the table never
        shows a partial version: an ACTIVATE_VERSION *opens* a version (SDK taps send one
        before the records; singer-io taps one before and one after) unless it closes one,
        that is it repeats the open version or names a version the records already carried.
        A new version finishes the open one. The end of input finishes any open version
        (:meth:`finish`).
        """
        done: list[int] = []
        if self.pending_version is not None and self.pending_version != version:
            done.append(self.pending_version)
            self.pending_version = None
        self.table_version = version
        if version == self.pending_version or version in self.record_versions:
            done.append(version)
            self.pending_version = None
            self.record_versions.clear()
        else:
            self.pending_version = version
        return done

    def finish(self) -> int | None:
        """End of input: return the open version (now complete), if any."""
        version, self.pending_version = self.pending_version, None
        self.record_versions.clear()
        return version
