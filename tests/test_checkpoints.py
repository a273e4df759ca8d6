"""Unit tests of STATE release in acknowledgement order."""

from __future__ import annotations

from target_stitch_import.checkpoints import StateLedger


def make() -> tuple[StateLedger, list[object]]:
    out: list[object] = []
    return StateLedger(out.append), out


def test_state_before_any_record_is_written_at_once() -> None:
    ledger, out = make()
    ledger.add_state({"bookmarks": {"a": 1}})
    assert out == [{"bookmarks": {"a": 1}}]


def test_empty_states_are_never_written() -> None:
    ledger, out = make()
    ledger.add_state({})
    ledger.add_state(None)
    assert out == []


def test_state_waits_for_every_earlier_record() -> None:
    ledger, out = make()
    # Stream A: records 1-2 in one open batch; stream B: record 3.
    hold_a = ledger.hold(ledger.next_position())
    ledger.next_position()
    hold_b = ledger.hold(ledger.next_position())
    ledger.add_state({"s": 1})
    ledger.release(hold_b)  # B acknowledged first: A still holds position 1
    assert out == []
    ledger.release(hold_a)
    assert out == [{"s": 1}]


def test_only_the_latest_releasable_state_is_written() -> None:
    ledger, out = make()
    hold = ledger.hold(ledger.next_position())
    ledger.add_state({"s": 1})
    ledger.next_position()
    ledger.add_state({"s": 2})
    ledger.add_state({"s": 3})  # same position as s=2: replaces it
    later = ledger.hold(ledger.next_position())
    ledger.add_state({"s": 4})
    ledger.release(hold)
    assert out == [{"s": 3}]
    assert ledger.unreleased == 1
    ledger.release(later)
    assert out == [{"s": 3}, {"s": 4}]
    assert ledger.unreleased == 0


def test_acknowledged_in_any_order() -> None:
    ledger, out = make()
    holds = [ledger.hold(ledger.next_position()) for _ in range(3)]
    ledger.add_state({"s": "end"})
    for hold in reversed(holds):
        assert out == []
        ledger.release(hold)
    assert out == [{"s": "end"}]


def test_same_value_is_not_written_twice() -> None:
    ledger, out = make()
    ledger.add_state({"s": 1})
    ledger.next_position()
    ledger.add_state({"s": 1})
    assert out == [{"s": 1}]
