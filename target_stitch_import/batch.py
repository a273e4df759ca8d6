"""Exact request bodies for ``POST /v2/import/batch`` (pure: no I/O, no clock, no config).

A body is ``header + message ("," message)* + "]}"``, where the header holds every field
but ``messages``. The builder knows the exact byte size of the body it would produce, so a
batch is cut *before* a message would push it over the byte or message limit. Numbers are
written digit for digit (Decimals as JSON numbers), date-times as RFC 3339 text.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

import msgspec

_ENCODER = msgspec.json.Encoder(decimal_format="number")
#: A finished request body: the batch's own buffer (bytes-like, sent as it is) or bytes.
Body: t.TypeAlias = "bytes | bytearray"
_SUFFIX = b"]}"


#: Encode a value as compact JSON: Decimals as exact numbers, date-times as RFC 3339 (the
#: caller makes them aware first: a naive one would be written without an offset).
encode_json: t.Callable[[t.Any], bytes] = _ENCODER.encode


def upsert_message(sequence: int, data: bytes) -> bytes:
    """Return the upsert message ``{"action":"upsert","sequence":N,"data":...}``.

    ``data`` is the record as :func:`encode_json` wrote it. Every record path builds its
    messages here, so their bodies are byte-identical.
    """
    return b'{"action":"upsert","sequence":%d,"data":%b}' % (sequence, data)


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
        return encode_json(fields)[:-1] + b',"messages":['


def body_size(header: bytes, message: bytes) -> int:
    """Return the size of a body holding only ``message``."""
    return len(header) + len(message) + len(_SUFFIX)


class Batch:
    """A batch being filled; ``finish()`` returns its exact body.

    The body is written as messages join, into one growing buffer: one large allocation
    per batch instead of one small object per message, which the allocator gives back to
    the system once the batch is sent (many small objects of interleaved tables would
    leave the memory fragmented).
    """

    __slots__ = ("_body", "count", "header", "max_bytes", "max_messages", "size")

    def __init__(self, header: bytes, max_bytes: int, max_messages: int) -> None:
        """Start an empty batch under ``header`` (limits: body bytes, messages)."""
        self.header = header
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        #: The number of messages.
        self.count = 0
        #: The body's size once finished.
        self.size = len(header) + len(_SUFFIX)
        self._body = bytearray(header)

    def __len__(self) -> int:
        """Return the number of messages."""
        return self.count

    def extend(self, messages: t.Sequence[bytes], start: int = 0) -> int:
        """Append ``messages[start:]`` while they fit; return the index of the first left out."""
        count, size, limit = self.count, self.size, self.max_bytes
        room = self.max_messages - count
        end, total = start, min(len(messages), start + room)
        separator = 1 if count else 0
        while end < total:
            grown = size + len(messages[end]) + separator
            if grown > limit:
                break
            size, separator = grown, 1
            end += 1
        if end > start:
            body = self._body
            if count:
                body += b","
            body += b",".join(messages[start:end])
            self.size = size
            self.count = count + end - start
        return end

    def add(self, message: bytes) -> None:
        """Append a message that fits (alone in a new batch: the sink checked its size)."""
        if self.count:
            self.size += 1
            self._body += b","
        self.size += len(message)
        self._body += message
        self.count += 1

    @property
    def is_full(self) -> bool:
        """True when no further message can join (the message limit is reached)."""
        return self.count >= self.max_messages

    def take_body(self) -> bytearray:
        """Return the exact request body without copying it; the batch is done with.

        The body's buffer itself (bytes-like: sent, written and measured as it is), so a
        cut never holds the body twice.
        """
        body = self._body
        body += _SUFFIX
        self._body = bytearray()
        return body

    def finish(self) -> bytes:
        """Return the exact request body (its length equals ``size``)."""
        body = self._body
        body += _SUFFIX
        try:
            return bytes(body)
        finally:
            del body[-len(_SUFFIX) :]
