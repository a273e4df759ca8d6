"""Unit tests: message shapes, the reader, version completion, the sender's failure path."""

from __future__ import annotations

import io
import logging
import threading
import typing as t

import pytest

from target_stitch_import.checkpoints import StateLedger
from target_stitch_import.errors import InputError, OutputClosedError
from target_stitch_import.messages import (
    activate_version_message,
    batch_message,
    record_message,
    schema_message,
    state_value,
)
from target_stitch_import.reader import LineReader
from target_stitch_import.run import file_name_part
from target_stitch_import.sender import Request, Sender
from target_stitch_import.sequence import Sequencer
from target_stitch_import.tables import Table

PROPS = {"properties": {"id": {"type": "integer"}}}


@pytest.mark.parametrize(
    ("keys", "expected"),
    [(None, []), ("id", ["id"]), (["a", "b"], ["a", "b"]), ([], [])],
)
def test_key_properties_normal_form(keys: object, expected: list[str]) -> None:
    message = {"type": "SCHEMA", "stream": "s", "schema": PROPS, "key_properties": keys}
    assert schema_message(message).key_properties == expected


@pytest.mark.parametrize(
    ("bookmarks", "expected"),
    [(None, ()), ("u", ("u",)), (["u", 1, None, "v"], ("u", "v")), (7, ())],
)
def test_bookmark_properties_are_lenient(bookmarks: object, expected: tuple[str, ...]) -> None:
    message = {"type": "SCHEMA", "stream": "s", "schema": PROPS, "bookmark_properties": bookmarks}
    assert schema_message(message).bookmark_properties == expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "SCHEMA", "schema": PROPS}, 'needs a "stream" name (a non-empty text); got none'),
        ({"type": "SCHEMA", "stream": "", "schema": PROPS}, "got an empty text"),
        ({"type": "SCHEMA", "stream": ["x"], "schema": PROPS}, "got an array"),
        ({"type": "SCHEMA", "stream": "s", "schema": "x"}, 'SCHEMA needs a "schema" object'),
        ({"type": "SCHEMA", "stream": "s", "schema": {}}, 'the schema has no "properties"'),
        ({"type": "SCHEMA", "stream": "s", "schema": {"properties": [1]}}, "got an array"),
        ({"type": "SCHEMA", "stream": "s", "schema": {"properties": {"a": None}}}, "field 'a' must be an object; got null"),
        ({"type": "SCHEMA", "stream": "s", "schema": {"properties": {"a": {"type": 7}}}}, "field 'a' has a \"type\" that"),
        ({"type": "SCHEMA", "stream": "s", "schema": {"properties": {"a": {"anyOf": 5}}}}, 'an "anyOf" that is not a list'),
        ({"type": "SCHEMA", "stream": "s", "schema": {"properties": {"a": {"oneOf": [5]}}}}, 'an "oneOf" that is not'),
        ({"type": "SCHEMA", "stream": "s", "schema": PROPS, "key_properties": [["id"]]}, "it holds an array"),
        ({"type": "SCHEMA", "stream": "s", "schema": PROPS, "key_properties": {"id": 1}}, "it holds an object"),
    ],
)
def test_bad_schema_messages(message: dict[str, t.Any], expected: str) -> None:
    with pytest.raises(InputError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        schema_message(message)


def test_record_activate_state_and_batch_shapes() -> None:
    assert record_message({"type": "RECORD", "stream": "s", "record": {"a": 1}, "version": 3}) == (
        "s", {"a": 1}, 3,
    )
    with pytest.raises(InputError, match="got none"):
        record_message({"type": "RECORD", "stream": "s"})
    with pytest.raises(InputError, match='"version" must be an integer; got a boolean'):
        record_message({"type": "RECORD", "stream": "s", "record": {}, "version": True})
    assert activate_version_message({"type": "ACTIVATE_VERSION", "stream": "s", "version": 5}) == ("s", 5)
    with pytest.raises(InputError, match="got a text"):
        activate_version_message({"type": "ACTIVATE_VERSION", "stream": "s", "version": "5"})
    assert state_value({"type": "STATE", "value": None}) is None
    with pytest.raises(InputError, match='needs a "value"'):
        state_value({"type": "STATE"})
    encoding = {"format": "jsonl"}
    assert batch_message({"type": "BATCH", "stream": "s", "encoding": encoding, "manifest": ["f"]}) == (
        "s", encoding, ["f"],
    )
    with pytest.raises(InputError, match='"manifest" list'):
        batch_message({"type": "BATCH", "stream": "s", "encoding": encoding, "manifest": [1]})


def read(text: str | bytes, **callbacks: t.Callable[[dict], None]) -> LineReader:
    """Run the reader over ``text`` with the given callbacks (by message type)."""
    reader = LineReader()
    source = io.BytesIO(text) if isinstance(text, bytes) else io.StringIO(text)
    reader.process_lines(source, dict(callbacks))  # type: ignore[arg-type]
    return reader


def test_reader_numbers_lines_and_matches_types_in_any_case(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    text = '\n{"type": "record", "n": 1}\n{"type": "Weird"}\n{"type": "WEIRD"}\n  \n{"type": "State"}\n'
    with caplog.at_level(logging.WARNING):
        reader = read(text, RECORD=lambda m: seen.append(m["type"]), STATE=lambda m: seen.append(m["type"]))
    assert seen == ["RECORD", "STATE"]
    assert reader.line_number == 6
    assert [r.message for r in caplog.records].count(
        "Input line 3: messages of type 'Weird' are not part of the Singer spec this target knows; "
        "skipped (warned once per type).",
    ) == 1
    assert len(caplog.records) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b'{"type": "STATE", "value": 1}\n{"type": "STATE", "value": "\xff"}\n', "input line 2"),
        ('{"type": "STATE", "value": 1}\n\n{"a": 1', "input line 3"),
        ("7\n", "input line 1"),
        ('{"type": 7}\n', "input line 1"),
    ],
)
def test_reader_errors_name_the_line(text: str | bytes, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        read(text, STATE=lambda _: None)
    assert caught.value.input_line == expected  # type: ignore[attr-defined]


def test_reader_calls_on_error_before_an_error_leaves() -> None:
    calls: list[int] = []
    reader = LineReader(on_error=lambda: calls.append(1))
    with pytest.raises(InputError):
        reader.process_lines(io.StringIO("[1]\n"), {})
    assert calls == [1]


def stream() -> Table:
    """A fresh per-stream state."""
    return Table("s", Sequencer(), logging.getLogger("test"))


def test_versions_sdk_style_finish_at_end_of_input() -> None:
    s = stream()
    assert s.versions_to_activate(5) == []
    assert s.table_version == 5
    assert s.finish() == 5
    assert s.finish() is None


def test_versions_singer_io_style_close_with_the_second_message() -> None:
    s = stream()
    assert s.versions_to_activate(5) == []
    s.record_versions.add(5)
    assert s.versions_to_activate(5) == [5]
    assert s.finish() is None


def test_versions_resumed_load_closes_with_its_only_message() -> None:
    s = stream()
    s.record_versions.add(9)
    assert s.versions_to_activate(9) == [9]


def test_versions_a_new_version_finishes_the_open_one() -> None:
    s = stream()
    assert s.versions_to_activate(1) == []
    assert s.versions_to_activate(2) == [1]
    assert s.finish() == 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [("orders", "orders"), ("a.b-c_d", "a.b-c_d")],
)
def test_file_name_part_keeps_plain_names(name: str, expected: str) -> None:
    assert file_name_part(name) == expected


@pytest.mark.parametrize("name", ["s" * 300, "a\x00b", "../etc/passwd", "..", "", "Zoë/日本", "a b"])
def test_file_name_part_makes_hostile_names_safe(name: str) -> None:
    part = file_name_part(name)
    assert len(part) <= 100
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in part)
    assert not part.startswith(".")
    assert file_name_part(name + "x") != part


def test_ledger_close_stops_state_for_good() -> None:
    written: list[object] = []
    ledger = StateLedger(written.append)
    position = ledger.next_position()
    hold = ledger.hold(position)
    ledger.add_state({"n": 1})
    assert ledger.close(timeout=1)
    ledger.release(hold)
    ledger.add_state({"n": 2})
    assert written == []


def test_a_failing_state_write_never_leaves_the_sender_waiting() -> None:
    def emit(_: object) -> None:
        msg = "stdout closed"
        raise OutputClosedError(msg)

    ledger = StateLedger(emit)
    failures: list[BaseException] = []
    sender = Sender(lambda _table, _body: None, ledger, 2, on_failure=failures.append)
    hold = ledger.hold(ledger.next_position())
    ledger.add_state({"n": 1})
    sender.submit(Request("t", b"{}", 1, hold))
    done = threading.Event()

    def wait() -> None:
        with pytest.raises(OutputClosedError):
            sender.wait()
        done.set()

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    assert done.wait(5), "Sender.wait() hung after a failed STATE write"
    assert len(failures) == 1
    assert isinstance(failures[0], OutputClosedError)
    sender.close()
