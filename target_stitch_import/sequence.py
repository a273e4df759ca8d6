"""Import API sequences derived from bookmarks (pure: no I/O, no clock, no config).

Stitch keeps, per primary key, the row with the highest ``sequence``. A sequence derived
from the stream's bookmark (its replication key) makes a replayed older row lose against a
newer one, whatever order the requests arrive in.

Encoding (documented in the README):

* ``date-time`` / ``date`` bookmark values (``datetime``/``date`` objects or ISO 8601 text)
  map to their instant in **nanoseconds since the Unix epoch** at microsecond precision:
  ``sequence = microseconds * 1000 + tiebreak``. That is the scale of time-based sequences,
  so a table loaded earlier with time-based sequences keeps taking updates. Naive values are
  taken as UTC, dates as midnight UTC.
* integer bookmark values: ``sequence = value * 1000 + tiebreak``.
* ``tiebreak`` (0..999) counts earlier messages of the stream that carried the same bookmark
  value, so two messages for one key with one bookmark value (a bulk ``UPDATE`` giving many
  rows the same ``updated_at``, a tap paging on ``>=``) never share a sequence and the
  later-read one wins. More than 1,000 messages with one value keep 999 (reported once).
* no usable bookmark value: the time-based sequence ``now`` in nanoseconds, strictly
  increasing within the run.

Sequences are never negative and never above ``2**63 - 1``; a bookmark value outside that
range (or of a type that has no order here, such as free text) falls back to time-based.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum

from target_stitch_import.contract import MAX_SEQUENCE

#: Tiebreak slots below the bookmark's unit (nanoseconds below one microsecond).
TIEBREAK_SLOTS = 1000
#: Distinct recent bookmark values whose repeat counts are surely remembered (between this
#: many and twice as many are: the counts live in two generations of this size).
RECENT_VALUES = 10_000

_UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
_MAX_BASE = (MAX_SEQUENCE - (TIEBREAK_SLOTS - 1)) // TIEBREAK_SLOTS
_MAX_BASE_DIGITS = len(str(_MAX_BASE))


class SequenceSource(str, enum.Enum):
    """Where sequences come from (the ``sequence_source`` setting)."""

    BOOKMARK = "bookmark"
    TIME = "time"


class UnencodableError(ValueError):
    """A bookmark value that cannot be turned into a sequence (the reason is the text)."""


def naive_as_utc(value: dt.datetime) -> dt.datetime:
    """Return a naive date-time as the same wall time in UTC (a naive value means UTC).

    ``combine`` of its date and time (fold included) is about four times as fast as
    ``value.replace(tzinfo=...)``, and this runs for every naive date-time field read.
    """
    return dt.datetime.combine(value.date(), value.time(), _UTC)


def _datetime_micros(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = naive_as_utc(value)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _parse_text(value: str) -> dt.datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat does not take "Z"
        text = text[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        msg = f"text {value[:40]!r} is not an ISO 8601 date or date-time"
        raise UnencodableError(msg) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def bookmark_base(value: object) -> int:
    """Return the ordering base of a bookmark value (microseconds or the integer itself).

    Args:
        value: A non-null bookmark value as the sink sees it.

    Returns:
        ``base`` such that ``base * 1000 + tiebreak`` is the sequence.

    Raises:
        UnencodableError: The value has no sequence encoding (wrong type, out of range).
    """
    if isinstance(value, bool):
        msg = "a boolean has no order as a sequence"
        raise UnencodableError(msg)
    if isinstance(value, dt.datetime):
        base = _datetime_micros(value)
    elif isinstance(value, dt.date):
        base = _datetime_micros(dt.datetime(value.year, value.month, value.day, tzinfo=_UTC))
    elif isinstance(value, int):
        base = value
    elif isinstance(value, decimal.Decimal):
        base = _decimal_base(value)
    elif isinstance(value, str):
        base = _datetime_micros(_parse_text(value))
    else:
        msg = f"a {type(value).__name__} value has no sequence encoding"
        raise UnencodableError(msg)
    if not 0 <= base <= _MAX_BASE:
        raise _out_of_range(value)
    return base


def _out_of_range(value: object) -> UnencodableError:
    if isinstance(value, int) and value.bit_length() > _MAX_BASE.bit_length() + 8:
        text = f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    else:
        text = f"value {value!s:.40}"
    return UnencodableError(f"{text} is outside the sequence range")


def _decimal_base(value: decimal.Decimal) -> int:
    if not value.is_finite():
        msg = f"value {value} has no sequence encoding"
        raise UnencodableError(msg)
    # Range first: int() of 1e1000000 would build a million-digit integer.
    if not value.is_zero() and value.adjusted() > _MAX_BASE_DIGITS:
        raise _out_of_range(value)
    if value != value.to_integral_value():
        msg = f"a fractional number ({value!s:.40}) has no sequence encoding"
        raise UnencodableError(msg)
    return int(value)


def quick_base(value: object) -> int | None:
    """Return the base of the common bookmark values (aware ``datetime``, ``int``), else None.

    None also for a value out of range: :func:`bookmark_base` says why.
    """
    kind = type(value)
    if kind is dt.datetime and value.tzinfo is not None:  # type: ignore[attr-defined]
        base = (value - _EPOCH) // _MICROSECOND  # type: ignore[operator]  # one C division
    elif kind is int:
        base = value
    else:
        return None
    return base if 0 <= base <= _MAX_BASE else None


class Sequencer:
    """Issues the sequences of one stream, in read order. Not thread-safe.

    The caller passes the clock reading (``now_ns``) in, so this class stays pure.
    """

    def __init__(self, source: SequenceSource = SequenceSource.BOOKMARK) -> None:
        """Create a sequencer.

        Args:
            source: ``bookmark`` to derive sequences from bookmark values, ``time`` for
                arrival time only.
        """
        self.source = source
        self._time_only = source is SequenceSource.TIME
        self._last_time = -1
        #: Repeat counts of recent bases: the current generation and the one before.
        self._repeats: dict[int, int] = {}
        self._older: dict[int, int] = {}
        #: The first reason a bookmark value fell back to time (None while none did).
        self.fallback_reason: str | None = None
        #: True once more than TIEBREAK_SLOTS messages shared one bookmark value.
        self.saturated = False

    def time_based(self, now_ns: int) -> int:
        """Return the next time-based sequence: ``now_ns``, kept strictly increasing.

        Args:
            now_ns: The current time in nanoseconds since the epoch.

        Returns:
            A sequence larger than every time-based one issued before.
        """
        sequence = max(now_ns, self._last_time + 1)
        self._last_time = min(sequence, MAX_SEQUENCE)
        return self._last_time

    def next(self, bookmark: object, now_ns: int) -> int:
        """Return the sequence of the next message.

        Args:
            bookmark: The record's value of the stream's first bookmark property, or
                None when the stream has none or the record holds none.
            now_ns: The current time in nanoseconds since the epoch.

        Returns:
            The sequence for the message.
        """
        if bookmark is None or self._time_only:
            return self.time_based(now_ns)
        base = quick_base(bookmark)
        if base is None:
            try:
                base = bookmark_base(bookmark)
            except UnencodableError as exc:
                if self.fallback_reason is None:
                    self.fallback_reason = str(exc)
                return self.time_based(now_ns)
        return self.of_base(base)

    def of_base(self, base: int) -> int:
        """Return the sequence of the next message, whose bookmark value has ``base``.

        Args:
            base: The value's :func:`bookmark_base` (or :func:`quick_base`).

        Returns:
            ``base * 1000 + tiebreak``.
        """
        repeats = self._repeats
        if base not in repeats and base not in self._older:  # not seen recently: tiebreak 0
            repeats[base] = 0
            if len(repeats) >= RECENT_VALUES:
                self._older, self._repeats = repeats, {}
            return base * TIEBREAK_SLOTS
        return base * TIEBREAK_SLOTS + self._tiebreak(base)

    def _tiebreak(self, base: int) -> int:
        """The tiebreak of a value seen before (counted; the value becomes the most recent)."""
        repeats = self._repeats
        seen = (repeats[base] if base in repeats else self._older.pop(base)) + 1
        repeats[base] = seen
        if len(repeats) >= RECENT_VALUES:
            self._older, self._repeats = repeats, {}
        if seen >= TIEBREAK_SLOTS:
            self.saturated = True
            return TIEBREAK_SLOTS - 1
        return seen

