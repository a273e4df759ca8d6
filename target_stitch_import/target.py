"""The target: reads Singer messages and coordinates sinks, delivery and STATE.

The SDK drives reading and draining. This class adds what it lacks: the bookmark
properties of each stream (for sequences), the ``version`` of singer-io RECORDs, a batch
age flush that also works while the tap is idle, and STATE written in acknowledgement order
by the :class:`~target_stitch_import.checkpoints.StateLedger` instead of after each drain.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
import typing as t
from dataclasses import dataclass, field

import msgspec
from singer_sdk.contrib.msgspec import MsgSpecReader
from singer_sdk.contrib.msgspec import decoder as _singer_decoder
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.singerlib.exceptions import InvalidInputLine
from singer_sdk.target_base import Target

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

from target_stitch_import.checkpoints import StateLedger
from target_stitch_import.client import ImportApiClient
from target_stitch_import.sender import Deliver, Sender
from target_stitch_import.sequence import Sequencer, first_bookmark
from target_stitch_import.settings import CONFIG_JSONSCHEMA, Settings
from target_stitch_import.sink import StitchImportSink

if t.TYPE_CHECKING:
    import collections
    import logging
    from pathlib import Path

    from singer_sdk.sinks import Sink

_STATE_ENCODER = msgspec.json.Encoder(decimal_format="number")
#: Bytes that may join open batches between two checks of the memory ceiling (at most;
#: an eighth of the ceiling when that is smaller).
_CEILING_CHECK_BYTES = 1 << 20
_SAFE_NAME = str.maketrans(dict.fromkeys('/\\:*?"<>| ', "_"))


class LineReader(MsgSpecReader):
    """The SDK's msgspec reader (numbers as Decimal): blank lines skipped, errors in one line."""

    @override
    def process_lines(
        self,
        file_input: t.IO[str] | None,
        callbacks: dict[str, t.Callable[[dict], None]],
    ) -> collections.Counter[str]:
        lines = file_input or self.default_input
        return super().process_lines((line for line in lines if line.strip()), callbacks)  # type: ignore[arg-type]

    @override
    def _process_unknown_message(self, message_dict: dict) -> None:
        msg = f"unknown Singer message type {str(message_dict.get('type'))[:40]!r}"
        raise InvalidInputLine(msg)

    @override
    def deserialize_json(self, line: str) -> dict:
        try:
            message = _singer_decoder.decode(line)
        except msgspec.DecodeError as exc:
            msg = f"input line is not valid JSON ({exc}): {line[:80]!r}..."
            raise InvalidInputLine(msg) from None
        if not isinstance(message, dict):
            msg = f"input line is not a JSON object: {line[:80]!r}"
            raise InvalidInputLine(msg)
        return message


@dataclass
class StreamState:
    """What outlives a stream's sink (a SCHEMA change replaces the sink, not this)."""

    name: str
    sequencer: Sequencer
    logger: logging.Logger
    bookmark_names: tuple[str, ...] = ()
    table_version: int | None = None
    _warned: set[str] = field(default_factory=set)

    def sequence_for(self, record: t.Mapping[str, t.Any]) -> int:
        """Return the sequence of the next record of this stream."""
        sequencer = self.sequencer
        sequence = sequencer.next(first_bookmark(record, self.bookmark_names), time.time_ns())
        if sequencer.fallback_reason is not None and "fallback" not in self._warned:
            self._warned.add("fallback")
            self.logger.warning(
                "Stream '%s': bookmark '%s' value cannot order sequences (%s); records "
                "with such values get time-based sequences.",
                self.name,
                self.bookmark_names[0],
                sequencer.fallback_reason,
            )
        if sequencer.saturated and "saturated" not in self._warned:
            self._warned.add("saturated")
            self.logger.warning(
                "Stream '%s': more than 1,000 records share one '%s' value; repeats of "
                "one key among them may share a sequence.",
                self.name,
                self.bookmark_names[0],
            )
        return sequence


class TargetStitchImport(Target):
    """Singer target for the Stitch Import API."""

    name = "target-stitch-import"
    config_jsonschema = CONFIG_JSONSCHEMA
    default_sink_class = StitchImportSink
    message_reader_class = LineReader
    capabilities: t.ClassVar[list] = [
        *Target.capabilities,
        PluginCapabilities.ACTIVATE_VERSION,
    ]
    # Batches are cut by size and age here; the SDK's fixed full drain is not needed.
    _MAX_RECORD_AGE_IN_MINUTES = float("inf")

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:  # noqa: ANN401
        """Create the target and its run: settings, ledger, sender."""
        super().__init__(*args, **kwargs)
        self.settings = Settings.from_config(self.config)
        self.record_version: int | None = None
        self._bookmarks: dict[str, tuple[str, ...]] = {}
        self._streams: dict[str, StreamState] = {}
        self._client: ImportApiClient | None = None
        self._dry_run_count = 0
        self._dry_run_lock = threading.Lock()
        self._stop = threading.Event()
        self._age_thread: threading.Thread | None = None
        self._unchecked_bytes = 0
        self._ceiling_step = min(_CEILING_CHECK_BYTES, self.settings.max_buffered_bytes // 8)
        emit = self._write_state_line if self.settings.writes_state else self._skip_state
        self.ledger = StateLedger(emit)
        self.sender = Sender(self._deliverer(), self.ledger, self.settings.max_requests_in_flight)
        if not self.settings.writes_state:
            self.logger.warning(
                "validate_only/dry_run_dir: nothing is loaded, so no STATE is written.",
            )

    # Delivery

    def _deliverer(self) -> Deliver:
        settings = self.settings
        if settings.dry_run_dir is not None:
            settings.dry_run_dir.mkdir(parents=True, exist_ok=True)
            return functools.partial(self._write_body, settings.dry_run_dir)
        self._client = ImportApiClient(
            settings.base_url,
            settings.token,
            timeout=settings.request_timeout_seconds,
            max_retry_seconds=settings.max_retry_seconds,
            sleep=self._stop.wait,
        )
        client = self._client
        if settings.validate_only:
            return lambda table, body: client.push(table, body, validate_only=True)
        return client.push

    def _write_body(self, directory: Path, table: str, body: bytes) -> Path:
        with self._dry_run_lock:
            self._dry_run_count += 1
            number = self._dry_run_count
        path = directory / f"{number:06d}-{table.translate(_SAFE_NAME)}.json"
        path.write_bytes(body)
        return path

    # STATE

    def _write_state_line(self, value: t.Any) -> None:  # noqa: ANN401
        sys.stdout.write(_STATE_ENCODER.encode(value).decode() + "\n")
        sys.stdout.flush()

    def _skip_state(self, value: t.Any) -> None:  # noqa: ANN401
        _ = value
        self.logger.debug("STATE not written (nothing is loaded in this mode)")

    @override
    def _process_state_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"value"})
        self.ledger.add_state(message_dict["value"])

    @override
    def _write_state_message(self, state: dict) -> None:
        """STATE goes out through the ledger only (never after a drain by itself)."""
        _ = state

    # Streams

    def stream_state(self, stream_name: str) -> StreamState:
        """Return the run-long state of a stream (created on first use)."""
        stream = self._streams.get(stream_name)
        if stream is None:
            stream = StreamState(
                name=stream_name,
                sequencer=Sequencer(self.settings.sequence_source),
                logger=self.logger,
            )
            self._streams[stream_name] = stream
        stream.bookmark_names = self._bookmark_names(stream_name)
        return stream

    def _bookmark_names(self, alias: str) -> tuple[str, ...]:
        for source, stream_maps in self.mapper.stream_maps.items():
            if any(stream_map.stream_alias == alias for stream_map in stream_maps):
                return self._bookmarks.get(source, ())
        return self._bookmarks.get(alias, ())

    @override
    def _process_schema_message(self, message_dict: dict) -> None:
        bookmarks = message_dict.get("bookmark_properties") or ()
        if isinstance(bookmarks, str):  # some taps send one name, not a list
            bookmarks = (bookmarks,)
        self._bookmarks[message_dict.get("stream", "")] = tuple(
            name for name in bookmarks if isinstance(name, str)
        )
        super()._process_schema_message(message_dict)

    @override
    def get_sink(
        self,
        stream_name: str,
        *,
        record: dict | None = None,
        schema: dict | None = None,
        key_properties: t.Sequence[str] | None = None,
    ) -> Sink:
        """Send a replaced sink's open batch right away instead of at the next drain."""
        existing = self._sinks_active.get(stream_name)
        sink = super().get_sink(
            stream_name,
            record=record,
            schema=schema,
            key_properties=key_properties,
        )
        if existing is not None and sink is not existing and isinstance(existing, StitchImportSink):
            existing.send_pending()
        self._start_age_flush()
        return sink

    @override
    def _process_record_message(self, message_dict: dict) -> None:
        version = message_dict.get("version")
        self.record_version = version if isinstance(version, int) else None
        super()._process_record_message(message_dict)

    @override
    def _process_activate_version_message(self, message_dict: dict) -> None:
        self._assert_line_requires(message_dict, requires={"stream", "version"})
        stream_maps = self.mapper.stream_maps.get(message_dict["stream"])
        if stream_maps is None:
            msg = f"ACTIVATE_VERSION for stream '{message_dict['stream']}' before its SCHEMA"
            raise InvalidInputLine(msg)
        for stream_map in stream_maps:
            sink = self.get_sink(stream_map.stream_alias)
            if not sink.process_activate_version_messages:
                self.logger.info(
                    "ACTIVATE_VERSION for '%s' ignored (process_activate_version_messages "
                    "is off).",
                    stream_map.stream_alias,
                )
                continue
            sink.activate_version(message_dict["version"])

    # Memory ceiling

    def buffered(self, size: int) -> None:
        """Count bytes added to open batches; past the ceiling, send the largest batches."""
        self._unchecked_bytes += size
        if self._unchecked_bytes < self._ceiling_step:
            return
        self._unchecked_bytes = 0
        sinks = [
            sink
            for sink in (*self._sinks_active.values(), *self._sinks_to_clear)
            if isinstance(sink, StitchImportSink)
        ]
        total = sum(sink.open_bytes for sink in sinks)
        ceiling = self.settings.max_buffered_bytes
        for sink in sorted(sinks, key=lambda s: s.open_bytes, reverse=True):
            if total <= ceiling:
                break
            total -= sink.open_bytes
            self.logger.debug("Above max_buffered_bytes: sending '%s'", sink.stream_name)
            sink.send_pending()

    # Age flush

    def _start_age_flush(self) -> None:
        if self._age_thread is None:
            self._age_thread = threading.Thread(
                target=self._age_flush_loop,
                name="age-flush",
                daemon=True,
            )
            self._age_thread.start()

    def _age_flush_loop(self) -> None:
        max_age = self.settings.max_batch_age_seconds
        interval = min(1.0, max_age / 4)
        while not self._stop.wait(interval):
            if self.sender.failed:  # the reading thread reports the failure
                return
            try:
                sinks = [*self._sinks_active.values(), *self._sinks_to_clear]
            except RuntimeError:  # the reading thread changed the sinks: next tick
                continue
            now = time.monotonic()
            for sink in sinks:
                if isinstance(sink, StitchImportSink):
                    try:
                        sink.send_if_older(now, max_age)
                    except Exception:  # noqa: BLE001 - the reading thread raises it
                        return

    # End of run

    @override
    def process_endofpipe(self) -> None:
        """Drain every sink, wait for every acknowledgement, then report."""
        try:
            super().process_endofpipe()
            self.sender.wait()
        finally:
            self.stop()
        self._log_summary()

    def stop(self) -> None:
        """Stop background work: the age flush, retries' waits, the workers."""
        self._stop.set()
        self.sender.close()
        if self._client is not None:
            self._client.close()

    def _log_summary(self) -> None:
        for table, stats in sorted(self.sender.stats.items()):
            self.logger.info(
                "Table '%s': %d messages in %d requests, %s bytes (largest %s), %.2f s",
                table,
                stats.messages,
                stats.requests,
                f"{stats.bytes:,}",
                f"{stats.largest:,}",
                stats.seconds,
            )
        if self._client is not None and self._client.retries:
            self.logger.info("Requests retried: %d", self._client.retries)
        if self.ledger.unreleased:
            self.logger.warning("%d STATE message(s) were not written", self.ledger.unreleased)
