"""Unit tests of the pure sequence encoding."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

from target_stitch_import.contract import MAX_SEQUENCE
from target_stitch_import.sequence import (
    RECENT_VALUES,
    TIEBREAK_SLOTS,
    Sequencer,
    SequenceSource,
    UnencodableError,
    bookmark_base,
    naive_as_utc,
)

NOW = 1_790_000_000_000_000_000  # 2026-09 in nanoseconds
UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("value", "base"),
    [
        (dt.datetime(1970, 1, 1, tzinfo=UTC), 0),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), 1_704_164_645_678_901),
        (dt.datetime(2024, 1, 2, 3, 4, 5, 678901), 1_704_164_645_678_901),  # naive = UTC
        (
            dt.datetime(2024, 1, 2, 5, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            1_704_164_645_678_901,
        ),
        ("2024-01-02T03:04:05.678901Z", 1_704_164_645_678_901),
        ("2024-01-02T03:04:05.678901+00:00", 1_704_164_645_678_901),
        ("2024-01-02 03:04:05.678901", 1_704_164_645_678_901),
        (dt.date(2024, 1, 2), 1_704_153_600_000_000),
        ("2024-01-02", 1_704_153_600_000_000),
        (0, 0),
        (42, 42),
        (decimal.Decimal(42), 42),
        (decimal.Decimal("4.2E+1"), 42),
    ],
)
def test_bookmark_base(value: object, base: int) -> None:
    assert bookmark_base(value) == base


@pytest.mark.parametrize(
    "value",
    [
        True,
        "not a date",
        decimal.Decimal("1.5"),
        decimal.Decimal("NaN"),
        1.5,
        -1,
        dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
        (MAX_SEQUENCE // TIEBREAK_SLOTS) + 1,
        {"a": 1},
    ],
)
def test_unencodable_values(value: object) -> None:
    with pytest.raises(UnencodableError):
        bookmark_base(value)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (decimal.Decimal("1e1000000"), "value 1E+1000000 is outside the sequence range"),
        (decimal.Decimal("-1e1000000"), "value -1E+1000000 is outside the sequence range"),
        (decimal.Decimal("1e-1000000"), "a fractional number (1E-1000000) has no sequence encoding"),
        (10**5000, "an integer of about 5000 digits is outside the sequence range"),
        (decimal.Decimal("Infinity"), "value Infinity has no sequence encoding"),
    ],
    ids=["1e1000000", "-1e1000000", "1e-1000000", "10**5000", "Infinity"],
)
def test_huge_values_are_refused_by_their_size_not_converted(value: object, reason: str) -> None:
    # int(Decimal("1e1000000")) would build a million-digit integer (seconds of CPU).
    with pytest.raises(UnencodableError) as caught:
        bookmark_base(value)
    assert str(caught.value) == reason


def test_datetime_scale_is_nanoseconds_like_time_based_sequences() -> None:
    moment = dt.datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
    sequence = Sequencer().next(moment, NOW)
    expected_ns = int(moment.timestamp()) * 1_000_000_000 + 123_456_000
    assert sequence == expected_ns
    # A time-based sequence taken at that instant is of the same scale.
    assert Sequencer(SequenceSource.TIME).next(moment, expected_ns) == expected_ns


def test_sequences_order_like_the_bookmark() -> None:
    sequencer = Sequencer()
    values = ["2024-01-01T00:00:00.000001Z", "2024-01-01T00:00:00Z", "2023-12-31T23:59:59Z"]
    sequences = [sequencer.next(v, NOW) for v in values]
    assert sequences[0] > sequences[1] > sequences[2]


def test_an_older_value_read_later_gets_a_lower_sequence() -> None:
    sequencer = Sequencer()
    newer = sequencer.next("2024-06-01T00:00:00Z", NOW)
    replayed_older = sequencer.next("2024-01-01T00:00:00Z", NOW + 10**9)
    assert replayed_older < newer


def test_equal_values_never_tie_and_the_later_read_wins() -> None:
    sequencer = Sequencer()
    same = "2024-01-01T00:00:00Z"
    sequences = [sequencer.next(same, NOW) for _ in range(TIEBREAK_SLOTS)]
    assert sequences == sorted(set(sequences))
    # ... and all stay below the next microsecond.
    assert sequences[-1] < sequencer.next("2024-01-01T00:00:00.000001Z", NOW)
    assert not sequencer.saturated


def test_interleaved_values_keep_their_own_tiebreaks() -> None:
    sequencer = Sequencer()
    a1 = sequencer.next(100, NOW)
    b1 = sequencer.next(200, NOW)
    a2 = sequencer.next(100, NOW)
    assert (a1, a2, b1) == (100_000, 100_001, 200_000)


def test_saturation_is_reported() -> None:
    sequencer = Sequencer()
    for _ in range(TIEBREAK_SLOTS + 1):
        last = sequencer.next(7, NOW)
    assert last == 7 * TIEBREAK_SLOTS + TIEBREAK_SLOTS - 1
    assert sequencer.saturated


def test_fallback_is_time_based_increasing_and_remembers_the_reason() -> None:
    sequencer = Sequencer()
    first = sequencer.next("free text", NOW)
    second = sequencer.next(None, NOW)  # same clock reading: still increasing
    third = sequencer.next(None, NOW - 5)  # a clock going back: still increasing
    assert first == NOW
    assert first < second < third
    assert sequencer.fallback_reason is not None
    assert "ISO 8601" in sequencer.fallback_reason


def test_time_source_ignores_bookmarks() -> None:
    sequencer = Sequencer(SequenceSource.TIME)
    assert sequencer.next("2024-01-01T00:00:00Z", NOW) == NOW
    assert sequencer.fallback_reason is None


def test_never_above_the_maximum_or_negative() -> None:
    sequencer = Sequencer()
    top = MAX_SEQUENCE // TIEBREAK_SLOTS - 1
    for _ in range(3):
        assert 0 <= sequencer.next(top, NOW) <= MAX_SEQUENCE
    assert sequencer.next(dt.datetime(2262, 4, 11, tzinfo=UTC), NOW) <= MAX_SEQUENCE
    assert sequencer.next(dt.datetime(1900, 1, 1, tzinfo=UTC), NOW) >= 0


def test_repeat_counts_survive_at_least_recent_values_other_values() -> None:
    """A value seen again after RECENT_VALUES - 1 other values still gets a new tiebreak."""
    sequencer = Sequencer()
    first = sequencer.next(5, 0)
    for round_ in range(3):  # across several generations
        for other in range(RECENT_VALUES - 1):
            sequencer.next(10_000_000 + round_ * RECENT_VALUES + other, 0)
        again = sequencer.next(5, 0)
        assert again == first + round_ + 1
    assert len(sequencer._repeats) + len(sequencer._older) <= 2 * RECENT_VALUES


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 1, 2, 3, 4, 5, 678901),
        dt.datetime(2024, 11, 3, 1, 30, fold=1),
        dt.datetime.min,  # noqa: DTZ901 - naive on purpose
        dt.datetime.max,  # noqa: DTZ901 - naive on purpose
    ],
)
def test_naive_as_utc_is_replace_with_utc(value: dt.datetime) -> None:
    aware = naive_as_utc(value)
    expected = value.replace(tzinfo=dt.timezone.utc)
    assert aware == expected
    assert aware.tzinfo is dt.timezone.utc
    assert aware.fold == expected.fold
    assert type(aware) is dt.datetime
