"""Unit tests of exact body building."""

from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest

from target_stitch_import.batch import (
    Batch,
    TableHeader,
    body_size,
    encode_activate_version,
    encode_json,
    upsert_message,
)


def header(**kwargs: object) -> bytes:
    fields = {"table_name": "t", "schema": {"properties": {"id": {"type": "integer"}}}}
    fields.update(kwargs)
    return TableHeader(**fields).encode()  # type: ignore[arg-type]


def test_upsert_encoding_is_exact() -> None:
    data = {
        "id": 1,
        "amount": decimal.Decimal("12345678901234567890.123456789"),
        "tiny": decimal.Decimal("1E-9"),
        "at": dt.datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=dt.timezone.utc),
        "at_tz": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        "day": dt.date(2024, 1, 2),
        "name": "Zoë 🐍",
        "nested": {"list": [1, None, "x"]},
        "big": 2**70,
    }
    encoded = upsert_message(5, encode_json(data))
    assert b'"amount":12345678901234567890.123456789' in encoded
    assert b'"tiny":1E-9' in encoded
    assert b'"big":1180591620717411303424' in encoded
    message = json.loads(encoded, parse_float=decimal.Decimal)
    assert message["action"] == "upsert"
    assert message["sequence"] == 5
    assert message["data"]["at"] == "2024-01-02T03:04:05.006000Z"
    assert message["data"]["at_tz"] == "2024-01-02T03:04:05+02:00"
    assert message["data"]["day"] == "2024-01-02"
    assert message["data"]["name"] == "Zoë 🐍"
    assert message["data"]["amount"] == decimal.Decimal("12345678901234567890.123456789")


def test_header_fields() -> None:
    body = Batch(header(key_names=("id",), bookmark_names=("u",), table_version=3), 10**6, 10)
    body.add(encode_activate_version(9))
    decoded = json.loads(body.finish())
    assert decoded == {
        "table_name": "t",
        "schema": {"properties": {"id": {"type": "integer"}}},
        "key_names": ["id"],
        "bookmark_names": ["u"],
        "table_version": 3,
        "messages": [{"action": "activate_version", "sequence": 9}],
    }
    plain = json.loads(header() + b"]}")
    assert plain["key_names"] == []
    assert "table_version" not in plain
    assert "bookmark_names" not in plain


def test_size_is_exact_and_limits_hold() -> None:
    head = header()
    messages = [upsert_message(i, encode_json({"id": i, "pad": "x" * (i % 17)})) for i in range(200)]
    limit = 1_500
    bodies: list[bytes] = []
    batch = Batch(head, limit, 7)
    for message in messages:
        if not batch.extend([message]):
            bodies.append(batch.finish())
            batch = Batch(head, limit, 7)
            assert batch.extend([message]) == 1
        assert len(batch.finish()) == batch.size
        if batch.is_full:
            bodies.append(batch.finish())
            batch = Batch(head, limit, 7)
    if len(batch):
        bodies.append(batch.finish())
    sent = [m for body in bodies for m in json.loads(body)["messages"]]
    assert [m["sequence"] for m in sent] == list(range(200))
    assert all(len(body) <= limit for body in bodies)
    assert all(len(json.loads(body)["messages"]) <= 7 for body in bodies)
    # Cut only when needed: each body but the last could not take the next message.
    assert len(bodies) >= 200 // 7


@pytest.mark.parametrize("limit", [10, 100])
def test_a_message_that_never_fits(limit: int) -> None:
    head = header()
    message = upsert_message(1, encode_json({"id": 1, "pad": "x" * 200}))
    assert body_size(head, message) > limit
    batch = Batch(head, limit, 10)
    assert batch.extend([message]) == 0
    assert (len(batch), batch.finish()) == (0, head + b"]}")


def test_a_finished_batch_can_take_more_messages() -> None:
    """``finish`` leaves the batch as it was: the body so far, then more messages."""
    batch = Batch(b'{"table_name":"t","messages":[', 1000, 10)
    assert batch.finish() == b'{"table_name":"t","messages":[]}'
    batch.add(b"1")
    assert batch.finish() == b'{"table_name":"t","messages":[1]}'
    assert batch.extend([b"2"]) == 1
    body = batch.finish()
    assert body == b'{"table_name":"t","messages":[1,2]}'
    assert len(body) == batch.size
    assert type(body) is bytes
    assert len(batch) == 2


@pytest.mark.parametrize("start", [0, 3])
def test_extend_takes_what_fits_in_one_go(start: int) -> None:
    """``extend`` stops at the first message that would break a limit; same body as ``add``."""
    head = b'{"table_name":"t","messages":['
    messages = [b"%d" % (i * 1111) for i in range(40)]
    one_by_one = Batch(head, 80, 12)
    expected_end = start
    for message in messages[start:]:
        if one_by_one.is_full or one_by_one.size + len(message) + bool(len(one_by_one)) > 80:
            break
        one_by_one.add(message)
        expected_end += 1
    batch = Batch(head, 80, 12)
    assert batch.extend(messages, start) == expected_end
    assert batch.finish() == one_by_one.finish()
    assert batch.size == len(batch.finish()) <= 80
    # It goes on where it stopped: the next batch takes the next messages.
    following = Batch(head, 80, 12)
    assert following.extend(messages, expected_end) > expected_end


def test_take_body_hands_over_the_buffer_itself() -> None:
    """The body leaves without a copy; it equals what finish() would have given."""
    batch = Batch(b'{"table_name":"t","messages":[', 1000, 10)
    batch.add(b"1")
    batch.add(b"2")
    expected = batch.finish()
    body = batch.take_body()
    assert type(body) is bytearray
    assert body == expected
    assert len(body) == batch.size
    assert len(batch) == 2
