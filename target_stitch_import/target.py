"""The target: reads Singer messages and coordinates sinks, delivery and STATE.

The SDK drives reading and draining. This class adds what it lacks: the bookmark
properties of each stream (for sequences), the ``version`` of singer-io RECORDs, a batch
age flush that also works while the tap is idle, and STATE written in acknowledgement order
by the :class:`~target_stitch_import.checkpoints.StateLedger` instead of after each drain.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import signal
import sys
import threading
import time
import typing as t
from dataclasses import dataclass, field

import fsspec  # type: ignore[import-untyped]
import msgspec
from singer_sdk.exceptions import RecordsWithoutSchemaException
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchFileFormat
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.target_base import Target
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR, extend_validator_with_defaults

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

from target_stitch_import import messages
from target_stitch_import.checkpoints import StateLedger
from target_stitch_import.client import ImportApiClient
from target_stitch_import.errors import (
    ConfigError,
    InputError,
    OutputClosedError,
    StoppedError,
)
from target_stitch_import.reader import LineReader, at_line, decode_json
from target_stitch_import.schema import SchemaProblemError, check_nesting
from target_stitch_import.sender import Deliver, Sender
from target_stitch_import.sequence import Sequencer, first_bookmark
from target_stitch_import.settings import CONFIG_JSONSCHEMA, Settings
from target_stitch_import.sink import StitchImportSink

if t.TYPE_CHECKING:
    import logging
    from collections.abc import Iterator
    from pathlib import Path
    from types import FrameType

    from singer_sdk.sinks import Sink

_STATE_ENCODER = msgspec.json.Encoder(decimal_format="number")
#: Bytes that may join open batches between two checks of the memory ceiling (at most;
#: an eighth of the ceiling when that is smaller).
_CEILING_CHECK_BYTES = 1 << 20
_FILE_NAME_LIMIT = 80
#: Seconds a stopping run waits for a STATE line being written to be complete.
_STATE_WRITE_GRACE = 5.0
#: Signal a sender thread uses to wake the reading thread when a delivery failed.
_WAKE_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
#: The SDK's config validator: fills in declared defaults while validating.
_CONFIG_VALIDATOR = extend_validator_with_defaults(DEFAULT_JSONSCHEMA_VALIDATOR)


def file_name_part(name: str) -> str:
    """Return ``name`` as a safe, short part of a file name (dry-run bodies).

    Anything but ASCII letters, digits, ``.``, ``-`` and ``_`` becomes ``_``; a name that
    had to change or be shortened gets a short hash of the original, so two streams never
    share a file name part.
    """
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    safe = safe.lstrip(".") or "_"
    if safe == name and len(name) <= _FILE_NAME_LIMIT:
        return name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{safe[:_FILE_NAME_LIMIT]}-{digest}"


@dataclass
class StreamState:
    """What outlives a stream's sink (a SCHEMA change replaces the sink, not this)."""

    name: str
    sequencer: Sequencer
    logger: logging.Logger
    bookmark_names: tuple[str, ...] = ()
    #: The version records without their own ``version`` are loaded into.
    table_version: int | None = None
    #: A version announced by ACTIVATE_VERSION whose load is not finished yet.
    pending_version: int | None = None
    #: Versions RECORDs carried since the last activation (singer-io taps' style).
    record_versions: set[int] = field(default_factory=set)
    _warned: set[str] = field(default_factory=set)

    def warn_once(self, key: str) -> bool:
        """Return True the first time ``key`` is given in this run (then warn), else False."""
        if key in self._warned:
            return False
        self._warned.add(key)
        return True

    def versions_to_activate(self, version: int) -> list[int]:
        """Take an ACTIVATE_VERSION; return the versions whose load it finishes, in order.

        A full-table version is activated only once it is complete, so the table never
        shows a partial version: an ACTIVATE_VERSION *opens* a version (SDK taps send one
        before the records; singer-io taps one before and one after) unless it closes one,
        that is it repeats the open version or names a version the records already carried.
        A new version finishes the open one. The end of input finishes any open version
        (:meth:`finish`).
        """
        done: list[int] = []
        if self.pending_version is not None and self.pending_version != version:
            done.append(self.pending_version)
            self.pending_version = None
        self.table_version = version
        if version == self.pending_version or version in self.record_versions:
            done.append(version)
            self.pending_version = None
            self.record_versions.clear()
        else:
            self.pending_version = version
        return done

    def finish(self) -> int | None:
        """End of input: return the open version (now complete), if any."""
        version, self.pending_version = self.pending_version, None
        self.record_versions.clear()
        return version

    def sequence_for(self, record: t.Mapping[str, t.Any]) -> int:
        """Return the sequence of the next record of this stream."""
        sequencer = self.sequencer
        sequence = sequencer.next(first_bookmark(record, self.bookmark_names), time.time_ns())
        if sequencer.fallback_reason is not None and self.warn_once("fallback"):
            self.logger.warning(
                "Stream '%s': bookmark '%s' value cannot order sequences (%s); records "
                "with such values get time-based sequences.",
                self.name,
                self.bookmark_names[0],
                sequencer.fallback_reason,
            )
        if sequencer.saturated and self.warn_once("saturated"):
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
        PluginCapabilities.BATCH,
    ]
    # Batches are cut by size and age here; the SDK's fixed full drain is not needed.
    _MAX_RECORD_AGE_IN_MINUTES = float("inf")

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:  # noqa: ANN401
        """Create the target and its run: settings, ledger, sender."""
        kwargs.setdefault("message_reader", LineReader(on_error=self.abort))
        super().__init__(*args, **kwargs)
        self._reader: LineReader = self.message_reader  # type: ignore[assignment]
        self.settings = Settings.from_config(self.config)
        self.record_version: int | None = None
        self._bookmarks: dict[str, tuple[str, ...]] = {}
        self._streams: dict[str, StreamState] = {}
        self._client: ImportApiClient | None = None
        self._dry_run_count = 0
        self._dry_run_lock = threading.Lock()
        self._stop = threading.Event()
        self._aborted = False
        self._age_thread: threading.Thread | None = None
        self._unchecked_bytes = 0
        self._ceiling_step = min(_CEILING_CHECK_BYTES, self.settings.max_buffered_bytes // 8)
        emit = self._write_state_line if self.settings.writes_state else self._skip_state
        self.ledger = StateLedger(emit)
        self.sender = Sender(
            self._deliverer(),
            self.ledger,
            self.settings.max_requests_in_flight,
            on_failure=self._wake_reader,
        )
        self._reader_thread = threading.current_thread()
        self._install_wake_signal()
        if not self.settings.writes_state:
            self.logger.warning(
                "validate_only/dry_run_dir: nothing is loaded, so no STATE is written.",
            )

    # Settings

    @override
    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Check the config against the settings' schema; never echo a secret value.

        Raises:
            ConfigError: Every problem found, in one line.
        """
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        secret = {
            name
            for name, spec in schema.get("properties", {}).items()
            if isinstance(spec, dict) and spec.get("secret")
        }
        problems = []
        for error in _CONFIG_VALIDATOR(schema).iter_errors(self._config):
            path = "".join(f"[{part!r}]" for part in error.absolute_path)
            if error.absolute_path and error.absolute_path[0] in secret:
                expected = error.schema.get("type") if isinstance(error.schema, dict) else None
                if isinstance(expected, list):
                    expected = " or ".join(map(str, expected))
                what = f"must be a {expected}" if expected else "is not valid"
                problems.append(f"config{path} {what} (its value is secret and not shown)")
            else:
                problems.append(f"{error.message}" + (f" in config{path}" if path else ""))
        if problems and raise_errors:
            raise ConfigError("; ".join(sorted(problems)))
        return problems

    # Delivery

    def _deliverer(self) -> Deliver:
        settings = self.settings
        if settings.dry_run_dir is not None:
            directory = settings.dry_run_dir
            try:
                directory.mkdir(parents=True, exist_ok=True)
                probe = directory / f".target-stitch-import-{os.getpid()}"
                probe.write_bytes(b"")
                probe.unlink()
            except OSError as exc:
                msg = (
                    f"dry_run_dir '{directory}' cannot hold the request bodies "
                    f"({exc.strerror or type(exc).__name__}); name a writable directory"
                )
                raise ConfigError(msg) from None
            return functools.partial(self._write_body, directory)
        self._client = ImportApiClient(
            settings.base_url,
            settings.token,
            timeout=settings.request_timeout_seconds,
            max_retry_seconds=settings.max_retry_seconds,
        )
        client = self._client
        if settings.validate_only:
            return lambda table, body: client.push(table, body, validate_only=True)
        return client.push

    def _write_body(self, directory: Path, table: str, body: bytes) -> Path:
        with self._dry_run_lock:
            self._dry_run_count += 1
            number = self._dry_run_count
        path = directory / f"{number:06d}-{file_name_part(table)}.json"
        path.write_bytes(body)
        return path

    # STATE

    def _write_state_line(self, value: t.Any) -> None:  # noqa: ANN401
        try:
            sys.stdout.write(_STATE_ENCODER.encode(value).decode() + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as exc:  # EPIPE, or a closed stream
            _silence_stdout()
            msg = (
                f"standard output was closed ({type(exc).__name__}), so STATE can no longer "
                "be written; stopping. Whatever reads the target's output (an orchestrator, "
                "a pipe) went away: the last STATE it got covers only acknowledged records"
            )
            raise OutputClosedError(msg) from None

    def _skip_state(self, value: t.Any) -> None:  # noqa: ANN401
        _ = value
        self.logger.debug("STATE not written (nothing is loaded in this mode)")

    @override
    def _process_state_message(self, message_dict: dict) -> None:
        self.ledger.add_state(messages.state_value(message_dict))

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
        message = messages.schema_message(message_dict)
        try:  # before the SDK copies the schema recursively
            check_nesting(message.schema)
        except SchemaProblemError as exc:
            raise exc.for_stream(message.stream) from None
        self._bookmarks[message.stream] = message.bookmark_properties
        super()._process_schema_message(
            {
                **message_dict,
                "schema": message.schema,
                "key_properties": message.key_properties,
            },
        )

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
        stream, _, version = messages.record_message(message_dict)
        if stream not in self.mapper.stream_maps:
            msg = (
                f"stream '{stream}': a RECORD came before the stream's SCHEMA; a tap must "
                "send each stream's SCHEMA first"
            )
            raise RecordsWithoutSchemaException(msg)
        self.record_version = version
        super()._process_record_message(message_dict)

    def _stream_sinks(self, kind: str, stream: str) -> Iterator[StitchImportSink]:
        """The sinks a stream's messages go to (one per stream map alias)."""
        stream_maps = self.mapper.stream_maps.get(stream)
        if stream_maps is None:
            msg = f"stream '{stream}': {kind} came before the stream's SCHEMA"
            raise InputError(msg)
        for stream_map in stream_maps:
            sink = self.get_sink(stream_map.stream_alias)
            if isinstance(sink, StitchImportSink):
                yield sink

    @override
    def _process_activate_version_message(self, message_dict: dict) -> None:
        stream, version = messages.activate_version_message(message_dict)
        for sink in self._stream_sinks("ACTIVATE_VERSION", stream):
            if not sink.process_activate_version_messages:
                self.logger.info(
                    "ACTIVATE_VERSION for '%s' ignored (process_activate_version_messages "
                    "is off).",
                    sink.stream_name,
                )
                continue
            for finished in self.stream_state(sink.stream_name).versions_to_activate(version):
                sink.activate_version(finished)

    # BATCH messages (SDK taps with batch_config)

    @override
    def _process_batch_message(self, message_dict: dict) -> None:
        """Load each record of the batch's files through the same path as a RECORD."""
        stream, encoding_dict, manifest = messages.batch_message(message_dict)
        try:
            encoding = BaseBatchFileEncoding.from_dict(encoding_dict)
        except (TypeError, ValueError, KeyError) as exc:
            msg = (
                f"stream '{stream}': BATCH encoding {encoding_dict.get('format')!r} is not "
                f"known ({exc})"
            )
            raise InputError(msg) from None
        if encoding.format != BatchFileFormat.JSONL:
            msg = (
                f"stream '{stream}': BATCH files in format {encoding.format!r} cannot be read; "
                "set the tap's batch_config encoding format to jsonl"
            )
            raise InputError(msg)
        for url in manifest:
            for number, record in enumerate(_batch_file_records(stream, url, encoding), 1):
                self._process_batch_record(stream, record, f" (BATCH file {url}, record {number})")

    def _process_batch_record(self, stream: str, record: dict[str, t.Any], where: str) -> None:
        try:
            self._process_record_message({"type": "RECORD", "stream": stream, "record": record})
        except Exception as exc:
            at_line(exc, self._reader.line_number, where)
            raise

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

    # Running, stopping

    def _install_wake_signal(self) -> None:
        """Let sender threads wake the reading thread (the main one) when a delivery fails."""
        if _WAKE_SIGNAL is None or threading.current_thread() is not threading.main_thread():
            return
        self._reader_thread = threading.current_thread()
        signal.signal(_WAKE_SIGNAL, self._on_wake)

    def _wake_reader(self, failure: BaseException) -> None:
        """A delivery failed: make the reading thread raise it now, even while it waits."""
        _ = failure
        if _WAKE_SIGNAL is not None and threading.current_thread() is not self._reader_thread:
            ident = self._reader_thread.ident
            if ident is not None and self._reader_thread is threading.main_thread():
                signal.pthread_kill(ident, _WAKE_SIGNAL)

    def _on_wake(self, signum: int, frame: FrameType | None) -> None:
        _ = signum, frame
        if self.sender.failed and not self._stop.is_set():  # not while already ending
            self.abort()
            self.sender.raise_if_failed()

    @override
    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: stop reading and waiting at once; the run ends non-zero.

        Every STATE that acknowledged records made safe is out already (the ledger writes
        it as acknowledgements arrive); nothing read after the signal is sent. A signal that
        arrives while the run is already ending is ignored.

        Raises:
            StoppedError: Always, on the reading thread.
        """
        _ = frame
        if self._stop.is_set():  # already ending (a second signal, or the run is complete)
            return
        self.abort()
        name = signal.Signals(signum).name
        acknowledged = sum(stats.messages for stats in self.sender.stats.values())
        read = self.ledger.positions
        msg = (
            f"stopped by {name}: {read - min(acknowledged, read):,} of {read:,} records read "
            "were not acknowledged and are not covered by the last STATE written; the next "
            "run sends them again"
        )
        raise StoppedError(signum, msg)

    def abort(self) -> None:
        """Stop everything now: no more STATE (never half a line), requests, waits.

        Called wherever the run fails or is stopped (reading, the end of input, a signal, a
        failed delivery noticed by the wake signal); idempotent.
        """
        if self._aborted:
            return
        self._aborted = True
        self._stop.set()
        if self._client is not None:
            self._client.cancel()  # ends retry waits and cuts requests in flight
        if not self.ledger.close(_STATE_WRITE_GRACE):
            self.logger.warning("A STATE line being written did not complete in time.")
        self.stop()

    @override
    def process_endofpipe(self) -> None:
        """Drain every sink, finish open table versions, wait for every acknowledgement."""
        try:
            super().process_endofpipe()
            for stream_name, stream in list(self._streams.items()):
                version = stream.finish()
                if version is not None:
                    sink = self._sinks_active.get(stream_name)
                    if isinstance(sink, StitchImportSink):
                        sink.activate_version(version)
            self.sender.wait()
        except BaseException:
            self.abort()
            raise
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _batch_file_records(
    stream: str,
    url: str,
    encoding: BaseBatchFileEncoding,
) -> Iterator[dict[str, t.Any]]:
    """Yield the records of one BATCH file (JSON Lines, optionally gzip), numbers exact.

    Raises:
        InputError: The file cannot be read, or a line is not a JSON object.
    """
    compression = "gzip" if encoding.compression == "gzip" else None
    try:
        with fsspec.open(url, mode="rb") as raw:
            lines = gzip.open(raw) if compression else raw  # noqa: SIM115 - closed with raw
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = decode_json(line)
                except InputError as exc:
                    msg = f"stream '{stream}': BATCH file {url} line {number}: {exc}"
                    raise InputError(msg) from None
                if not isinstance(record, dict):
                    msg = f"stream '{stream}': BATCH file {url} line {number} is not a JSON object"
                    raise InputError(msg)
                yield record
    except (OSError, EOFError, ValueError) as exc:
        msg = f"stream '{stream}': BATCH file {url} cannot be read ({exc})"
        raise InputError(msg) from None
