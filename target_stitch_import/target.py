"""The target: reads Singer messages and hands them to its sinks and its run.

The SDK drives reading. This class adds what it lacks: checked message shapes, the bookmark
properties of each stream (for sequences), the ``version`` of singer-io RECORDs, atomic
full-table versions, BATCH files read through the RECORD path, STATE written in
acknowledgement order (by the run's :class:`~target_stitch_import.checkpoints.StateLedger`,
never after a drain), and a bad day handled in one place: a failed delivery wakes the
reading thread, SIGTERM/SIGINT stop at once, and every failure stops the run
(:meth:`TargetStitchImport.abort`) before it is reported.
"""

from __future__ import annotations

import gzip
import os
import signal
import sys
import threading
import typing as t

import fsspec  # type: ignore[import-untyped]
from singer_sdk.exceptions import MappingError, RecordsWithoutSchemaException
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchFileFormat
from singer_sdk.helpers.capabilities import PluginCapabilities
from singer_sdk.mapper import SameRecordTransform
from singer_sdk.target_base import Target
from singer_sdk.typing import DEFAULT_JSONSCHEMA_VALIDATOR, extend_validator_with_defaults

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

from target_stitch_import import messages
from target_stitch_import.batch import encode_json
from target_stitch_import.errors import (
    ConfigError,
    DeliveryError,
    InputError,
    OutputClosedError,
    StoppedError,
    at_record,
)
from target_stitch_import.prepare import DECODER
from target_stitch_import.reader import LineReader, at_line, decode_json
from target_stitch_import.run import Run
from target_stitch_import.schema import SchemaProblemError, check_nesting
from target_stitch_import.settings import CONFIG_JSONSCHEMA, Settings
from target_stitch_import.sink import StitchImportSink

if t.TYPE_CHECKING:
    from collections.abc import Iterator
    from types import FrameType

    from target_stitch_import.prepare import RecordSpec
    from target_stitch_import.workers import Result

#: Signal a sender thread uses to wake the reading thread when a delivery failed.
_WAKE_SIGNAL: signal.Signals | None = getattr(signal, "SIGUSR1", None)
#: The SDK's config validator: fills in declared defaults while validating.
_CONFIG_VALIDATOR = extend_validator_with_defaults(DEFAULT_JSONSCHEMA_VALIDATOR)


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
        """Create the target and its run (settings, ledger, sender)."""
        kwargs.setdefault(
            "message_reader",
            LineReader(
                on_error=self.abort,
                on_records=self._process_record_messages,
                on_prepared=self._process_prepared,
            ),
        )
        super().__init__(*args, **kwargs)
        self._reader: LineReader = self.message_reader  # type: ignore[assignment]
        self.settings = Settings.from_config(self.config)
        self.run = Run(self.settings, self.logger, self._write_state_line, self._wake_reader)
        self._reader.workers = self.run.workers
        #: Per stream: its sink when its RECORDs take the lean path, else False.
        self._lean_sinks: dict[str, StitchImportSink | t.Literal[False]] = {}
        #: Per pass-through stream: how record workers prepare its records.
        self._specs: dict[str, RecordSpec] = {}
        #: The reading (main) thread's id when a failed delivery can wake it, else None.
        self._wake_ident: int | None = None
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
        if "stream_maps" in self._config and self._config["stream_maps"] is None:
            del self._config["stream_maps"]  # null: none (the SDK's mapper fails on it)
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

    # STATE

    def _write_state_line(self, value: t.Any) -> None:  # noqa: ANN401
        try:
            sys.stdout.write(encode_json(value).decode() + "\n")
            sys.stdout.flush()
        except (OSError, ValueError) as exc:  # EPIPE, or a closed stream
            _silence_stdout()
            msg = (
                f"standard output was closed ({type(exc).__name__}), so STATE can no longer "
                "be written; stopping. Whatever reads the target's output (an orchestrator, "
                "a pipe) went away: the last STATE it got covers only acknowledged records"
            )
            raise OutputClosedError(msg) from None

    @override
    def _process_state_message(self, message_dict: dict) -> None:
        self.run.ledger.add_state(messages.state_value(message_dict))

    @override
    def _write_state_message(self, state: dict) -> None:
        """STATE goes out through the ledger only (never after a drain by itself)."""
        _ = state

    # Streams

    @override
    def _process_schema_message(self, message_dict: dict) -> None:
        message = messages.schema_message(message_dict)
        try:  # before the SDK copies the schema recursively
            check_nesting(message.schema)
        except SchemaProblemError as exc:
            raise exc.for_stream(message.stream) from None
        try:
            super()._process_schema_message(
                {
                    **message_dict,
                    "schema": message.schema,
                    "key_properties": message.key_properties,
                },
            )
        except MappingError as exc:
            raise _stream_maps_error(message.stream, exc) from exc
        for stream_map in self.mapper.stream_maps[message.stream]:
            self.run.table(stream_map.stream_alias).bookmark_names = message.bookmark_properties
        self._lean_sinks.pop(message.stream, None)  # the sink or the maps may have changed
        if self.run.workers.enabled:
            self._update_spec(message.stream)

    def _update_spec(self, stream: str) -> None:
        """Tell the record workers how to prepare a stream's records now (after its SCHEMA).

        Each stream keeps its place among the specs, so a SCHEMA that changes nothing
        (taps repeat them) leaves the workers' results usable.
        """
        lean = self._lean_sink(stream)
        if lean:
            self._specs[stream] = lean.record_spec()
        else:
            self._specs.pop(stream, None)
        self.run.workers.set_specs(self._specs.values())

    def _process_record_messages(self, run: list[dict[str, t.Any]]) -> None:
        """Take consecutive RECORD messages; pass-through streams' in one loop per stream.

        When every stream of the run takes the lean path, each stream's records are turned
        into messages by its sink in one loop (in input order within the stream), and only
        once all of them are, the messages are added to the run: a bad record stops the run
        before anything read after it can be sent. The error is the first bad record's.
        Otherwise the records go one by one, in input order. An error names the record it
        is about (:func:`at_record`), for the reader.
        """
        groups: dict[str, list[int]] = {}
        for index, message in enumerate(run):
            stream = message.get("stream")
            group = groups.get(stream) if type(stream) is str else None
            if group is None:
                if type(stream) is not str or not self._lean_of(message):
                    self._process_one_by_one(run)
                    return
                group = groups[stream] = []
            group.append(index)
        self._take_groups(
            [(t.cast("StitchImportSink", self._lean_sinks[s]), g) for s, g in groups.items()],
            len(run),
            lambda sink, indices: sink.take_many(run, indices),
        )

    def _process_prepared(self, items: list[Result], lines: list[bytes]) -> None:
        """Take consecutive RECORDs a record worker prepared, as :meth:`_process_record_messages`.

        Each item is ``(stream index, data, base, version)`` for the line at its index.
        """
        groups: dict[int, list[int]] = {}
        for index, item in enumerate(items):
            group = groups.get(item[0])  # type: ignore[index]
            if group is None:
                group = groups[item[0]] = []  # type: ignore[index]
            group.append(index)
        workers = self.run.workers
        sinks = []
        for number, indices in groups.items():
            lean = self._lean_of_stream(workers.stream(number))
            if not lean:  # cannot happen while the specs are current; taken fully then
                self._process_record_messages([DECODER.decode(line) for line in lines])
                return
            sinks.append((lean, indices))
        workers.prepared += len(items)
        self._take_groups(
            sinks,
            len(items),
            lambda sink, indices: sink.take_prepared(items, indices, lines),
        )

    def _take_groups(
        self,
        groups: list[tuple[StitchImportSink, list[int]]],
        size: int,
        take: t.Callable[[StitchImportSink, t.Iterable[int]], list[tuple[bytes, list[bytes]]]],
    ) -> None:
        """Turn each stream's records of a run into messages; add them once all are good."""
        taken: list[tuple[StitchImportSink, list[tuple[bytes, list[bytes]]]]] = []
        failure: Exception | None = None
        limit = size
        for sink, indices in groups:
            try:
                taken.append((sink, take(sink, (i for i in indices if i < limit))))
            except (StoppedError, DeliveryError):  # noqa: PERF203 - once per stream of a run
                raise
            except Exception as exc:  # noqa: BLE001 - kept, raised once every stream is seen
                failure = exc  # a record of a later stream may be bad earlier in the run
                limit = getattr(exc, "record_index", limit)
        if failure is not None:
            raise failure
        for sink, segments in taken:
            self.run.add_segments(sink.table, segments)

    def _process_one_by_one(self, run: list[dict[str, t.Any]]) -> None:
        """Take a run's RECORDs one at a time, in input order (some take the SDK's path)."""
        index = 0
        try:
            for index, message in enumerate(run):  # noqa: B007 - read on failure
                self._process_record_message(message)
        except Exception as exc:
            at_record(exc, index)
            raise

    @override
    def _process_record_message(self, message_dict: dict) -> None:
        lean = self._lean_of(message_dict)
        if not lean:
            self._process_sdk_record(message_dict)
            return
        self.run.add_segments(lean.table, lean.take_many((message_dict,), (0,)))

    def _lean_of(self, message: dict[str, t.Any]) -> StitchImportSink | t.Literal[False]:
        """The sink of the message's stream when it takes the lean path, else False."""
        stream = message.get("stream")
        return self._lean_of_stream(stream) if type(stream) is str else False

    def _lean_of_stream(self, stream: str) -> StitchImportSink | t.Literal[False]:
        """The sink of ``stream`` when its RECORDs take the lean path, else False."""
        lean = self._lean_sinks.get(stream)
        return self._lean_sink(stream) if lean is None else lean

    def _process_sdk_record(self, message_dict: dict[str, t.Any]) -> None:
        """A RECORD through the SDK's path (stream maps, flattening, record metadata)."""
        stream, _, version = messages.record_message(message_dict)
        self.run.message_version = version
        if stream not in self.mapper.stream_maps:
            msg = (
                f"stream '{stream}': a RECORD came before the stream's SCHEMA; a tap must "
                "send each stream's SCHEMA first"
            )
            raise RecordsWithoutSchemaException(msg)
        try:  # (not a context manager: this runs for every record of the SDK's path)
            super()._process_record_message(message_dict)
        except MappingError as exc:
            raise _stream_maps_error(stream, exc) from exc

    def _lean_sink(self, stream: str) -> StitchImportSink | t.Literal[False]:
        """The sink of a pass-through stream, whose RECORDs may skip the SDK's path.

        Pass-through: one stream map, the SDK's identity map (no ``stream_maps`` for it, no
        flattening), under the stream's own name, and no record metadata added. Anything
        else takes the SDK's path. Worked out once per stream and SCHEMA.
        """
        result: StitchImportSink | t.Literal[False] = False
        stream_maps = self.mapper.stream_maps.get(stream) or []
        if len(stream_maps) == 1 and self.settings.lean_record_path:
            stream_map = stream_maps[0]
            sink = self._sinks_active.get(stream)
            if (
                type(stream_map) is SameRecordTransform
                and not stream_map.flattening_enabled
                and stream_map.stream_alias == stream
                and isinstance(sink, StitchImportSink)
                and not sink.include_sdc_metadata_properties
            ):
                result = sink
        if stream in self.mapper.stream_maps:  # not before its SCHEMA: that is an error
            self._lean_sinks[stream] = result
        return result

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
            for finished in sink.table.versions_to_activate(version):
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

    # Running, stopping

    def _install_wake_signal(self) -> None:
        """Let sender threads wake the reading thread (the main one) when a delivery fails."""
        if _WAKE_SIGNAL is None or threading.current_thread() is not threading.main_thread():
            return
        signal.signal(_WAKE_SIGNAL, self._on_wake)
        self._wake_ident = threading.get_ident()

    def _wake_reader(self, failure: BaseException) -> None:
        """A delivery failed: make the reading thread raise it now, even while it waits."""
        _ = failure
        ident = self._wake_ident
        if ident is not None and _WAKE_SIGNAL is not None and threading.get_ident() != ident:
            signal.pthread_kill(ident, _WAKE_SIGNAL)

    def _on_wake(self, signum: int, frame: FrameType | None) -> None:
        _ = signum, frame
        run = self.run
        if run.sender.failed and not run.stopping.is_set():  # not while already ending
            run.abort()
            run.sender.raise_if_failed()

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
        if self.run.stopping.is_set():  # already ending (a second signal, or the run is done)
            return
        self.abort()
        name = signal.Signals(signum).name
        acknowledged = self.run.acknowledged
        read = self.run.ledger.positions
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
        run: Run | None = getattr(self, "run", None)  # None while the target is being built
        if run is not None:
            run.abort()

    @override
    def process_endofpipe(self) -> None:
        """Drain every sink, finish open table versions, wait for every acknowledgement."""
        run = self.run
        run.workers.close()  # every read handed out was taken: their exit overlaps the drain
        try:
            for taken in (*self._sinks_to_clear, *self._sinks_active.values()):
                if isinstance(taken, StitchImportSink):
                    taken.count_records()  # lean records: the SDK drains every sink that took any
            super().process_endofpipe()
            for table in run.tables():
                version = table.finish()
                sink = self._sinks_active.get(table.name)
                if version is not None and isinstance(sink, StitchImportSink):
                    sink.activate_version(version)
            run.wait()
        except BaseException:
            run.abort()
            raise
        finally:
            run.stop()
        run.log_summary()


def _stream_maps_error(stream: str, exc: MappingError) -> ConfigError:
    """The error of a stream's maps, naming the stream and the setting (the user's doing).

    An expression that does not parse or fails on a record, a name clash.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return ConfigError(f"stream '{stream}': stream_maps: {text}")


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
    try:
        with fsspec.open(url, mode="rb") as raw:
            gzipped = encoding.compression == "gzip"
            lines = gzip.open(raw) if gzipped else raw  # noqa: SIM115 - closed with raw
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
