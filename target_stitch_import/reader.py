"""Reading Singer messages: one JSON object per line, exact numbers, errors in one line.

The SDK's msgspec reader, made safe for hostile input:

* Lines are read as bytes (stdin's buffer), so invalid UTF-8 is reported with its line
  number instead of being replaced or crashing later; text input (``--input``, tests) works
  too.
* Every error names the input line (``input line 12: ...``) and never repeats the line's
  content (records may hold personal data).
* Message types are matched case-insensitively (the Singer spec); a message of an unknown
  type is skipped with one warning per type.
* A message nested too deeply to process ends the run with one line, not a
  ``RecursionError``.
* Consecutive RECORD lines that are already in the input buffer go to the target
  together (``on_records``), so a pass-through stream's records are taken in one loop;
  nothing waits for a line that has not arrived yet (each read returns what is there).
* With record workers (:mod:`target_stitch_import.workers`), whole reads are handed to
  them a few reads ahead; their results are taken in input order, stretches of prepared
  RECORDs at once and every other line as above, and every read handed out is taken
  before the reader would wait for more input.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import select
import sys
import typing as t

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.singerlib.encoding.base import SingerMessageType

from target_stitch_import.errors import DeliveryError, InputError, StoppedError
from target_stitch_import.messages import json_kind
from target_stitch_import.prepare import DECODER

if t.TYPE_CHECKING:
    from target_stitch_import.workers import RecordWorkers, Result, Ticket

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

LOGGER = logging.getLogger("target_stitch_import.reader")
_KNOWN_TYPES = frozenset(kind.value for kind in SingerMessageType)
_TYPE_TEXT_LIMIT = 40
#: Bytes asked of the input per read (a read returns what is there, at most this much;
#: large reads mean fewer, larger hand-overs to record workers).
_READ_SIZE = 1 << 18
#: A line longer than this is refused as it is read (input without line breaks, say, would
#: otherwise fill the memory). No Singer message comes near it: a RECORD's data must fit a
#: 4 MB request body, and the SCHEMA of 10,000 columns or a large STATE are a few MB.
MAX_LINE_BYTES = 1 << 26
_T = t.TypeVar("_T")
#: A read with fewer lines is taken in the reading process (not worth a worker's round trip).
_PREPARE_MIN_LINES = 64


def _more_input(source: object) -> t.Callable[[], bool]:
    """A check whether the next read of ``source`` returns at once (input is waiting)."""
    try:
        fd = source.fileno()  # type: ignore[attr-defined]
        select.select([fd], [], [], 0)
    except (AttributeError, OSError, ValueError):  # an in-memory source: always there
        return lambda: True

    def more() -> bool:
        try:
            return bool(select.select([fd], [], [], 0)[0])
        except (OSError, ValueError):
            return False

    return more


def _chunks(read: t.Callable[[int], bytes]) -> t.Iterator[list[bytes]]:
    """The input's complete lines, as many at a time as each read brings.

    A read returns what the input has (waiting only while it has nothing), so a line is
    never held back waiting for the lines after it. A last line without a newline counts.

    Raises:
        InputError: A line grew past :data:`MAX_LINE_BYTES` (every line before it was
            given out already).
    """
    partial: list[bytes] = []  # the start of a line longer than one read
    held = 0
    while True:
        data = read(_READ_SIZE)
        if not data:
            if partial:
                yield [b"".join(partial)]
            return
        lines = data.split(b"\n")
        if len(lines) == 1:
            partial.append(data)
            held += len(data)
            if held > MAX_LINE_BYTES:
                msg = (
                    f"a line longer than {MAX_LINE_BYTES:,} bytes (no line break so far); no "
                    "Singer message is that long: is the input a Singer stream?"
                )
                raise InputError(msg)
            continue
        if partial:
            partial.append(lines[0])
            lines[0] = b"".join(partial)
            partial, held = [], 0
        last = lines.pop()
        if last:
            partial.append(last)
            held = len(last)
        yield lines


def decode_json(data: bytes | str) -> object:
    """Decode JSON as the SDK does (floats as Decimal, big integers exact).

    Raises:
        InputError: The text is not JSON or not UTF-8 (the message says where, not what).
    """
    try:
        return DECODER.decode(data)
    except msgspec.DecodeError as exc:
        msg = f"not valid JSON ({exc})"
        raise InputError(msg) from None
    except RecursionError:
        msg = "JSON nested too deeply to process"
        raise InputError(msg) from None


def at_line(exc: BaseException, line: int, where: str = "") -> None:
    """Note on ``exc`` the input line (and place) it is about, unless it is not about input.

    Errors of delivery (the API, stdout) and stops are raised on the reading thread where
    they are noticed, not because of the line being read: they get no line.
    """
    if isinstance(exc, (DeliveryError, StoppedError)) or hasattr(exc, "input_line"):
        return
    with contextlib.suppress(AttributeError):  # an exception type with __slots__
        exc.input_line = f"input line {line}{where}"  # type: ignore[attr-defined]


def _about_line(exc: Exception, line: int) -> InputError | None:
    """Name input line ``line`` on ``exc``; return the error to raise instead, if any.

    A ``RecursionError`` (a message nested too deeply) is replaced by one line's error.
    """
    if isinstance(exc, RecursionError):
        error = InputError("the message is nested too deeply to process")
        at_line(error, line)
        return error
    at_line(exc, line)
    return None


class LineReader(MsgSpecReader):
    """Reads Singer messages line by line; see the module docstring."""

    def __init__(
        self,
        on_error: t.Callable[[], object] | None = None,
        on_records: t.Callable[[list[dict[str, t.Any]]], object] | None = None,
        on_prepared: t.Callable[[list[Result], list[bytes]], object] | None = None,
    ) -> None:
        """Create a reader at line 0.

        Args:
            on_error: Called before any error leaves :meth:`process_lines` (the target stops
                its background work there, before the error is reported).
            on_records: Takes a run of consecutive RECORD messages, in order (else each
                goes to the RECORD callback). An error it raises names the record it is
                about with :func:`~target_stitch_import.errors.at_record`.
            on_prepared: Takes a run of consecutive lines a record worker (:attr:`workers`)
                prepared: the results and the lines, in order (errors as for
                ``on_records``).
        """
        super().__init__()
        self._on_error = on_error
        self._on_records = on_records
        self._on_prepared = on_prepared
        #: Record workers that prepare whole reads of lines (used with ``on_prepared``).
        self.workers: RecordWorkers | None = None
        #: The number of the line being processed (1-based; 0 before the first).
        self.line_number = 0
        self._skipped_types: set[str] = set()

    @override
    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> collections.Counter[str]:
        try:
            return self._process_lines(file_input, callbacks)
        except BaseException:
            if self._on_error is not None:
                self._on_error()
            raise

    def _process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> collections.Counter[str]:
        source: t.Any = file_input if file_input is not None else sys.stdin
        source = getattr(source, "buffer", source)  # bytes: no decoding twice, no replacement
        read = getattr(source, "read1", None)
        chunks = _chunks(read) if read is not None else self._single_lines(source)
        counts: collections.Counter[str] = collections.Counter()
        records = 0
        try:
            for chunk, ticket, results in self._with_results(
                t.cast("t.Iterator[list[bytes | str]]", chunks), source
            ):
                if ticket is None or results is None:
                    records += self._read_lines(chunk, callbacks, counts)
                else:
                    records += self._read_prepared(chunk, ticket, results, callbacks, counts)
        except InputError as exc:  # a line too long to read: every line before it is taken
            at_line(exc, self.line_number + 1)
            raise
        counts["RECORD"] += records
        return counts

    def _read_lines(
        self,
        lines: list[bytes | str],
        callbacks: dict[str, t.Callable[[dict], None]],
        counts: collections.Counter[str],
    ) -> int:
        """Take lines in order; return how many were RECORDs (counted by the caller)."""
        on_record = callbacks.get("RECORD")
        take_records = self._on_records or (lambda run: [on_record(m) for m in run])  # type: ignore[misc]
        decode = DECODER.decode
        records = 0
        run: list[dict[str, t.Any]] = []
        for line in lines:
            # The common case first: a RECORD line, decoded once, joins the run.
            try:
                message = decode(line)
            except (msgspec.DecodeError, RecursionError):
                message = None  # the careful path below says what is wrong
            if type(message) is dict and message.get("type") == "RECORD" and on_record:
                run.append(message)
                continue
            if run:
                records += self._take_run(take_records, run)
                run = []
            self.line_number += 1
            if message is None and not line.strip():
                continue
            self._current_message = line  # type: ignore[assignment]
            kind = self._take(self._dispatch_line, line, message, callbacks)
            if kind is not None:
                counts[kind] += 1
        if run:
            records += self._take_run(take_records, run)
        return records

    def _read_prepared(
        self,
        chunk: list[bytes | str],
        ticket: Ticket,
        results: list[Result],
        callbacks: dict[str, t.Callable[[dict], None]],
        counts: collections.Counter[str],
    ) -> int:
        """Take a read a worker prepared: stretches of prepared RECORDs, the rest line by line.

        Once a line taken here changed the streams (a SCHEMA), the rest of the read is
        taken line by line too: it was prepared for the streams as they were.
        """
        on_prepared = t.cast("t.Callable[..., object]", self._on_prepared)
        workers = t.cast("RecordWorkers", self.workers)
        records = 0
        position, end = 0, len(chunk)
        while position < end:
            if not workers.is_current(ticket):  # prepared for streams as they no longer are
                return records + self._read_lines(chunk[position:], callbacks, counts)
            try:
                stop = results.index(None, position)
            except ValueError:
                stop = end
            if stop > position:
                records += self._take_run(on_prepared, results[position:stop], chunk[position:stop])
                position = stop
                continue
            stop = next((i for i in range(position + 1, end) if results[i] is not None), end)
            records += self._read_lines(chunk[position:stop], callbacks, counts)
            position = stop
        return records

    def _with_results(
        self,
        chunks: t.Iterable[list[bytes | str]],
        source: object,
    ) -> t.Iterator[tuple[list[bytes | str], Ticket | None, list[Result] | None]]:
        """Each read with the results of the workers it was handed to (or None), in order.

        Up to ``workers.depth`` reads are out at once while more input is there; before
        the reader would wait for input, every read handed out is taken, so a line is never
        held back waiting for the lines after it.
        """
        workers = self.workers
        if workers is None or self._on_prepared is None or not workers.enabled:
            for chunk in chunks:
                yield chunk, None, None
            return
        pending: collections.deque[tuple[list[bytes | str], Ticket | None]] = collections.deque()
        more = _more_input(source)
        try:
            for chunk in chunks:
                ticket = None
                if len(chunk) >= _PREPARE_MIN_LINES and type(chunk[0]) is bytes:
                    ticket = workers.submit(t.cast("list[bytes]", chunk))
                pending.append((chunk, ticket))
                while pending and (
                    pending[0][1] is None or len(pending) > workers.depth or not more()
                ):
                    yield self._taken(pending.popleft())
        except (InputError, OSError):  # the input cannot be read on: what was read goes first
            while pending:
                yield self._taken(pending.popleft())
            raise
        while pending:
            yield self._taken(pending.popleft())

    def _taken(
        self,
        entry: tuple[list[bytes | str], Ticket | None],
    ) -> tuple[list[bytes | str], Ticket | None, list[Result] | None]:
        chunk, ticket = entry
        if ticket is None:
            return chunk, None, None
        results = t.cast("RecordWorkers", self.workers).result(ticket)
        if results is None or len(results) != len(chunk):
            return chunk, None, None
        return chunk, ticket, results

    def _single_lines(self, source: t.Iterable[bytes | str]) -> t.Iterator[list[bytes | str]]:
        """The input one line at a time (a source that cannot read what is there)."""
        lines = iter(source)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:  # text input that is not UTF-8
                error = InputError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                at_line(error, self.line_number + 1)
                raise error from None
            yield [line]

    def _take_run(self, take: t.Callable[..., object], run: list[t.Any], *args: t.Any) -> int:  # noqa: ANN401
        """Pass consecutive RECORDs on (``take(run, *args)``); errors name the record's line."""
        first = self.line_number + 1
        try:
            take(run, *args)
        except Exception as exc:
            self.line_number = first + getattr(exc, "record_index", 0)
            replacement = _about_line(exc, self.line_number)
            if replacement is None:
                raise
            raise replacement from None
        self.line_number = first + len(run) - 1
        return len(run)

    def _take(self, step: t.Callable[..., _T], *args: t.Any) -> _T:  # noqa: ANN401
        """Run one step of the current line; its errors name the line (too deep: one line)."""
        try:
            return step(*args)
        except Exception as exc:
            replacement = _about_line(exc, self.line_number)
            if replacement is None:
                raise
            raise replacement from None

    def _dispatch_line(
        self,
        line: bytes | str,
        message: object,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> str | None:
        """Dispatch a decoded line; a line that is no JSON object is decoded again to say why."""
        if not isinstance(message, dict):
            message = self.deserialize_json(line)  # type: ignore[arg-type]
        return self._dispatch(message, callbacks)

    def _dispatch(
        self,
        message: dict[str, t.Any],
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> str | None:
        kind = message.get("type")
        if not isinstance(kind, str):
            msg = (
                'a Singer message needs a "type" text (SCHEMA, RECORD, STATE, ...); '
                f"this line has {'none' if kind is None else type(kind).__name__}"
            )
            raise InputError(msg)
        name = kind.upper()
        callback = callbacks.get(name) if name in _KNOWN_TYPES else None
        if callback is None:
            if name not in self._skipped_types:
                self._skipped_types.add(name)
                LOGGER.warning(
                    "Input line %d: messages of type %r are not part of the Singer spec this "
                    "target knows; skipped (warned once per type).",
                    self.line_number,
                    kind[:_TYPE_TEXT_LIMIT],
                )
            return None
        message["type"] = name
        callback(message)
        return name

    @override
    def deserialize_json(self, line: str) -> dict:
        message = decode_json(line)
        if not isinstance(message, dict):
            msg = f"a Singer message is a JSON object; this line holds {json_kind(message)}"
            raise InputError(msg)
        return message

