"""Exact request bodies for ``POST /v2/import/batch`` (pure: no I/O, no clock, no config).

A body is ``header + message ("," message)* + "]}"``, where the header holds every field
but ``messages``. The builder knows the exact byte size of the body it would produce, so a
batch is cut *before* a message would push it over the byte or message limit. Numbers are
written digit for digit (Decimals as JSON numbers), date-times as RFC 3339 text.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from dataclasses import dataclass, field

import msgspec

_UTC = dt.timezone.utc
_ENCODER = msgspec.json.Encoder(decimal_format="number")
_SUFFIX = b"]}"


#: Encode a value as compact JSON, Decimals as exact numbers, date-times as RFC 3339.
encode_json: t.Callable[[t.Any], bytes] = _ENCODER.encode
#: An upsert message, ``UPSERT_FORMAT % (sequence, encoded data)`` (see :func:`upsert_message`).
UPSERT_FORMAT = b'{"action":"upsert","sequence":%d,"data":%s}'


def _utc_if_naive(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=_UTC) if value.tzinfo is None else value


def encode_upsert(sequence: int, data: t.Mapping[str, t.Any]) -> bytes:
    """Encode one upsert message.

    Naive top-level date-times (the SDK parses top-level ``date-time`` fields) are
    written as UTC so that every date-time leaves as RFC 3339.

    Args:
        sequence: The message's sequence.
        data: The record.

    Returns:
        The message's JSON bytes.
    """
    for value in data.values():
        if type(value) is dt.datetime and value.tzinfo is None:
            data = {k: _utc_if_naive(v) if type(v) is dt.datetime else v for k, v in data.items()}
            break
    return upsert_message(sequence, _ENCODER.encode(data))


def upsert_message(sequence: int, data: bytes) -> bytes:
    """Return the upsert message of already encoded ``data`` (see :func:`encode_json`).

    The caller makes date-times aware first (the sink's timestamp parsing does): a naive
    one would be written without an offset.
    """
    return UPSERT_FORMAT % (sequence, data)


def encode_activate_version(sequence: int) -> bytes:
    """Encode one ``activate_version`` message."""
    return b'{"action":"activate_version","sequence":%d}' % sequence


@dataclass(frozen=True)
class TableHeader:
    """Every field of a batch body except ``messages``."""

    table_name: str
    schema: t.Mapping[str, t.Any]
    key_names: tuple[str, ...] = ()
    bookmark_names: tuple[str, ...] = ()
    table_version: int | None = None

    def encode(self) -> bytes:
        """Return the body's opening bytes, up to and including ``"messages":[``."""
        fields: dict[str, t.Any] = {
            "table_name": self.table_name,
            "schema": self.schema,
            "key_names": list(self.key_names),
        }
        if self.bookmark_names:
            fields["bookmark_names"] = list(self.bookmark_names)
        if self.table_version is not None:
            fields["table_version"] = self.table_version
        return _ENCODER.encode(fields)[:-1] + b',"messages":['


def body_size(header: bytes, message: bytes) -> int:
    """Return the size of a body holding only ``message``."""
    return len(header) + len(message) + len(_SUFFIX)


@dataclass
class Batch:
    """A batch being filled; ``finish()`` returns its exact body."""

    header: bytes
    max_bytes: int
    max_messages: int
    messages: list[bytes] = field(default_factory=list)
    size: int = 0

    def __post_init__(self) -> None:
        """Start at the size of an empty body."""
        self.size = len(self.header) + len(_SUFFIX)

    def __len__(self) -> int:
        """Return the number of messages."""
        return len(self.messages)

    def fits(self, message: bytes) -> bool:
        """Tell whether ``message`` can join without breaking a limit."""
        if not self.messages:
            return self.size + len(message) <= self.max_bytes
        return (
            len(self.messages) < self.max_messages
            and self.size + 1 + len(message) <= self.max_bytes
        )

    def try_add(self, message: bytes) -> bool:
        """Append ``message`` if it fits; return whether it did (:meth:`fits`, :meth:`add`)."""
        messages = self.messages
        if not messages:
            if self.size + len(message) > self.max_bytes:
                return False
            self.size += len(message)
        else:  # the per-record case, written out
            size = self.size + 1 + len(message)
            if size > self.max_bytes or len(messages) >= self.max_messages:
                return False
            self.size = size
        messages.append(message)
        return True

    def add(self, message: bytes) -> None:
        """Append a message (the caller checked ``fits``)."""
        self.size += len(message) + (1 if self.messages else 0)
        self.messages.append(message)

    @property
    def is_full(self) -> bool:
        """True when no further message can join (the message limit is reached)."""
        return len(self.messages) >= self.max_messages

    def finish(self) -> bytes:
        """Return the exact request body (its length equals ``size``)."""
        return b"".join((self.header, b",".join(self.messages), _SUFFIX))
