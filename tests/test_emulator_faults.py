"""The fault plan's pure decisions (no server): shares, limits, seeds, latency, status 503."""

from __future__ import annotations

import random

import pytest

from target_stitch_import.emulator.faults import (
    FaultKind,
    FaultPlan,
    FaultSettings,
    parse_fault,
    parse_latency,
)


def plan(*shares: tuple[FaultKind, float], seed: int = 1, **options: object) -> FaultPlan:
    """A plan with a seeded random source."""
    return FaultPlan(FaultSettings(shares=shares, **options), random.Random(seed))  # type: ignore[arg-type]  # noqa: S311


def test_no_faults_by_default() -> None:
    quiet = plan()
    assert [quiet.draw() for _ in range(100)] == [None] * 100
    assert quiet.latency_seconds() == 0
    assert not quiet.status_unavailable()


def test_share_one_with_limit_fails_exactly_the_first_requests() -> None:
    limited = plan((FaultKind.HTTP_503, 1.0), limit=2)
    assert [limited.draw() for _ in range(4)] == [
        FaultKind.HTTP_503,
        FaultKind.HTTP_503,
        None,
        None,
    ]
    assert limited.injected == 2


def test_validate_never_gets_503_and_is_not_counted() -> None:
    limited = plan((FaultKind.HTTP_503, 1.0), limit=1)
    assert limited.draw(validate=True) is None
    assert limited.injected == 0
    assert limited.draw() is FaultKind.HTTP_503
    other = plan((FaultKind.HTTP_500, 1.0))
    assert other.draw(validate=True) is FaultKind.HTTP_500


def test_shares_stack_and_seeds_reproduce() -> None:
    shares = ((FaultKind.HTTP_500, 0.25), (FaultKind.DROP, 0.25))
    first = plan(*shares, seed=7)
    second = plan(*shares, seed=7)
    sequence = [first.draw() for _ in range(4000)]
    assert sequence == [second.draw() for _ in range(4000)]
    assert sequence != [plan(*shares, seed=8).draw() for _ in range(4000)]
    for kind in (FaultKind.HTTP_500, FaultKind.DROP):
        assert 0.21 < sequence.count(kind) / len(sequence) < 0.29
    assert 0.46 < sequence.count(None) / len(sequence) < 0.54


def test_full_shares_always_fault() -> None:
    mixed = plan((FaultKind.HTTP_429, 0.5), (FaultKind.STALL, 0.5))
    draws = [mixed.draw() for _ in range(200)]
    assert None not in draws
    assert set(draws) == {FaultKind.HTTP_429, FaultKind.STALL}


def test_latency_fixed_and_range() -> None:
    assert plan(latency_ms=(100.0, 100.0)).latency_seconds() == pytest.approx(0.1)
    ranged = plan(latency_ms=(10.0, 20.0))
    assert all(0.01 <= ranged.latency_seconds() <= 0.02 for _ in range(100))


@pytest.mark.parametrize(
    ("status_503", "expected"),
    [(0, [False] * 4), (2, [True, True, False, False]), (-1, [True] * 4)],
)
def test_status_503(status_503: int, expected: list[bool]) -> None:
    unavailable = plan(status_503=status_503)
    assert [unavailable.status_unavailable() for _ in expected] == expected


def test_fault_kind_status() -> None:
    assert [kind.status for kind in FaultKind] == [500, 502, 503, 429, None, None]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("503:1", (FaultKind.HTTP_503, 1.0)),
        ("drop:0.5", (FaultKind.DROP, 0.5)),
        ("STALL:0", (FaultKind.STALL, 0.0)),
    ],
)
def test_parse_fault(text: str, expected: tuple[FaultKind, float]) -> None:
    assert parse_fault(text) == expected


@pytest.mark.parametrize("text", ["503", "404:1", "drop:x", ":1"])
def test_parse_fault_refuses(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the texts are argparse's concern
        parse_fault(text)


def test_parse_latency() -> None:
    assert parse_latency("250") == (250.0, 250.0)
    assert parse_latency("10-20") == (10.0, 20.0)
    with pytest.raises(ValueError):  # noqa: PT011
        parse_latency("fast")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"shares": ((FaultKind.DROP, 1.5),)}, "between 0 and 1"),
        ({"shares": ((FaultKind.DROP, 0.6), (FaultKind.HTTP_500, 0.6))}, "more than 1"),
        ({"limit": -1}, "can not be negative"),
        ({"latency_ms": (20.0, 10.0)}, "MIN-MAX"),
        ({"status_503": -2}, "--status-503"),
    ],
)
def test_settings_refuse(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FaultSettings(**options)  # type: ignore[arg-type]
