"""The sink: turns one stream's records into exact Import API messages for its table.

The sink never opens a socket. It checks each record the way Stitch would (keys, shape,
size), gives it its sequence, encodes it once (that encoding is both what is sent and what
is measured) and adds it to its table in the run (:mod:`target_stitch_import.run`), which
cuts batches and hands them to the sender. The SDK never drains a sink by size (batches are
cut by the run's own rules); ``process_batch`` (end of input, a replaced sink) sends what is
left and waits for the table's acknowledgements.
"""

from __future__ import annotations

import copy
import datetime as dt
import sys
import time
import typing as t
from dataclasses import dataclass

import jsonschema
import referencing.exceptions
from singer_sdk.exceptions import MissingKeyPropertiesError
from singer_sdk.helpers._typing import (
    get_datelike_property_type,
    handle_invalid_timestamp_in_record,
)
from singer_sdk.sinks import BatchSink
from singer_sdk.sinks.core import BaseJSONSchemaValidator

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

from target_stitch_import import messages
from target_stitch_import.batch import TableHeader, body_size, encode_json, upsert_message
from target_stitch_import.contract import (
    MAX_DATA_POINTS,
    MAX_RECORD_DEPTH,
    MAX_STRING_KEY_LENGTH,
    record_shape,
)
from target_stitch_import.draft4 import Draft4Checker, compile_draft4, error_pointer
from target_stitch_import.errors import RecordError, SchemaError, at_record
from target_stitch_import.prepare import (
    DATELIKE_PARSERS,
    DECODER,
    Preparer,
    RecordSpec,
    near_limits,
    plain_key,
)
from target_stitch_import.schema import (
    PrecisionFix,
    SchemaMode,
    SchemaProblemError,
    adapt_schema_with_notes,
    apply_precision,
    describe_notes,
    precision_fixes,
)
from target_stitch_import.sequence import SequenceSource, naive_as_utc

if t.TYPE_CHECKING:
    from singer_sdk.helpers.conform import DatetimeErrorTreatmentEnum
    from singer_sdk.target_base import Target

    from target_stitch_import.run import RunOwner
    from target_stitch_import.tables import Table

_KEY_TEXT_LIMIT = 200
#: The record metadata fields dropped from incoming records and schemas (add_record_metadata
#: off), as the SDK drops them, except ``_sdc_deleted_at``: the delete marker of log-based
#: taps is data (the row was deleted at that time).
_SDC_FIELDS = frozenset(
    {
        "_sdc_extracted_at", "_sdc_received_at", "_sdc_batched_at", "_sdc_sequence",
        "_sdc_table_version", "_sdc_sync_started_at",
    },
)  # fmt: skip
#: Rounds of ``multipleOf`` fixes tried on one record (a fix can uncover another failure).
_PRECISION_ROUNDS = 3
#: Records taken by the lean path between two updates of the SDK's counters.
_COUNT_CHUNK = 10_000


def describe_key(record: t.Mapping[str, t.Any], key_names: t.Sequence[str]) -> str:
    """Return a short text naming a record by its key values (or 'without key')."""
    if not key_names:
        return "(table without key)"
    text = ", ".join(f"{name}={record.get(name)!r}" for name in key_names)
    return text if len(text) <= _KEY_TEXT_LIMIT else text[:_KEY_TEXT_LIMIT] + "..."


def key_problem(value: object) -> str | None:
    """Return why Stitch would refuse ``value`` as a key value (None when it is fine)."""
    if value is None:
        return "has no value (Stitch needs non-null keys)"
    if isinstance(value, (dict, list)):
        kind = "an object" if isinstance(value, dict) else "an array"
        return f"holds {kind}; Stitch keys must be scalar values"
    if isinstance(value, str) and len(value) >= MAX_STRING_KEY_LENGTH:
        return (
            f"is {len(value)} characters long; Stitch takes string keys of at most "
            f"{MAX_STRING_KEY_LENGTH - 1}"
        )
    return None


@dataclass(frozen=True)
class _RecordPlan:
    """What the per-record steps need of a schema (date/time and known fields), once."""

    fields: frozenset[str]
    warn_unknown: bool
    datelike: tuple[tuple[str, t.Callable[[str], object], str], ...]

    @classmethod
    def of(cls, schema: t.Mapping[str, t.Any]) -> _RecordPlan:
        properties = schema["properties"]
        datelike = []
        for name, subschema in properties.items():
            kind = get_datelike_property_type(subschema)
            if kind:
                datelike.append((name, DATELIKE_PARSERS[kind], kind))
        return cls(
            fields=frozenset(properties),
            warn_unknown=not schema.get("additionalProperties", False),
            datelike=tuple(datelike),
        )


def _shape_problem(record: dict[str, t.Any]) -> str | None:
    """Return why Stitch would refuse the record's shape (None when it is fine)."""
    points, depth = record_shape(record)
    if points > MAX_DATA_POINTS:
        return f"has {points:,} data points; the Import API takes at most {MAX_DATA_POINTS:,}"
    if depth > MAX_RECORD_DEPTH:
        return f"is nested {depth} levels deep; the Import API takes at most {MAX_RECORD_DEPTH}"
    return None


class Draft4RecordValidator(BaseJSONSchemaValidator):
    """Validates records as Stitch does: JSON Schema Draft 4 against the schema sent."""

    def __init__(
        self,
        schema: dict[str, t.Any],
        stream: str,
        key_names: t.Sequence[str],
        relax: t.Callable[[dict[str, t.Any]], bool] | None = None,
    ) -> None:
        """Compile the validator.

        Args:
            schema: The schema sent (Draft 4).
            stream: The stream's name, for messages.
            key_names: The key properties, each required in every record.
            relax: Asked about a record that fails: True when it has made the schema
                accept the record (relaxed mode's precision fixes), so it is valid.

        Raises:
            SchemaError: The schema itself is not valid Draft 4.
        """
        super().__init__(schema)
        self._stream = stream
        self._key_names = key_names
        self._relax = relax
        try:
            self.checker = compile_draft4(schema)
        except jsonschema.SchemaError as exc:
            msg = (
                f"stream '{stream}': the schema is not valid JSON Schema Draft 4 at "
                f"{error_pointer(exc)}: {exc.message[:300]}"
            )
            raise SchemaError(msg) from None

    def _missing_keys(self, record: dict[str, t.Any]) -> t.NoReturn:
        missing = [name for name in self._key_names if name not in record]
        msg = (
            f"stream '{self._stream}': record {describe_key(record, self._key_names)} "
            f"lacks key propert{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}"
        )
        raise MissingKeyPropertiesError(msg)

    @override
    def validate(self, record: dict[str, t.Any]) -> None:
        """Raise :class:`RecordError` naming stream, key and field when the record fails.

        Raises:
            MissingKeyPropertiesError: A key property is absent (the SDK's own error).
            RecordError: The record does not match the schema that is sent, or is nested
                too deeply to check.
            SchemaError: A ``$ref`` of the schema cannot be resolved (never fetched).
        """
        for name in self._key_names:
            if name not in record:
                self._missing_keys(record)
        try:
            if self.checker.is_valid(record) or (self._relax is not None and self._relax(record)):
                return
            error = self.checker.first_error(record)
        except RecursionError:
            msg = (
                f"stream '{self._stream}': record {describe_key(record, self._key_names)} is "
                "nested too deeply to check against the schema"
            )
            raise RecordError(msg) from None
        except referencing.exceptions.Unresolvable as exc:
            msg = (
                f"stream '{self._stream}': the schema's $ref {str(exc.ref)[:200]!r} cannot be "
                "resolved (remote schemas are never fetched); fix the tap's schema or use "
                "schema_mode=relaxed"
            )
            raise SchemaError(msg) from None
        if error is None:
            return
        hint = ""
        if error.validator == "multipleOf":
            if self._relax is None:
                hint = " (schema_mode=relaxed sends such numbers as they are)"
            else:  # relaxed: the precision was not the problem, name what is
                error = self.checker.first_error(record, ignore=("multipleOf",)) or error
        msg = (
            f"stream '{self._stream}': record {describe_key(record, self._key_names)} does "
            f"not match the schema sent to Stitch at {error_pointer(error)}: "
            f"{error.message[:300]}{hint}"
        )
        raise RecordError(msg)


class StitchImportSink(BatchSink):
    """Builds and hands off the Import API batches of one stream (= one table)."""

    def __init__(
        self,
        target: Target,
        stream_name: str,
        schema: dict,
        key_properties: t.Sequence[str] | None,
    ) -> None:
        """Create the sink of one stream; the run (and the table's state) come from the target."""
        self._run = t.cast("RunOwner", target).run
        self._settings = self._run.settings
        self._sent_schema: dict[str, t.Any] | None = None
        self._schema_notes: list[str] = []
        super().__init__(target, stream_name, schema, key_properties)
        self._table = self._run.table(stream_name)
        self._headers: dict[int | None, bytes] = {}
        self._plan: _RecordPlan | None = None
        self._preparer: Preparer | None = None
        self._treatment = self.datetime_error_treatment
        self._keys = tuple(self.key_properties)
        self._max_bytes = self._settings.max_batch_bytes
        self._uncounted = 0
        _ = self.sent_schema  # built and checked now, also when validate_records is off
        self._warn_schema_notes()

    @property
    def table(self) -> Table:
        """The run-long state of this sink's table."""
        return self._table

    @property
    @override
    def is_full(self) -> bool:
        """Never: batches are cut by the run's own rules, so SDK size drains never wait."""
        return False

    # Schema sent and validation

    @property
    def sent_schema(self) -> dict[str, t.Any]:
        """The schema each batch carries (the stream's schema after ``schema_mode``).

        Built and checked once per sink, when the SCHEMA arrives (see :meth:`get_validator`).
        What relaxed mode loosens beyond its routine rules is logged when the sink is set up:
        one warning per stream and field in a run, however often the SCHEMA is repeated.

        Raises:
            SchemaError: The schema cannot be sent (nested too deeply, too large; in strict
                mode, one Stitch refuses).
        """
        if self._sent_schema is None:
            try:
                adapted = adapt_schema_with_notes(
                    self.schema,
                    self.key_properties,
                    self._settings.schema_mode,
                )
            except SchemaProblemError as exc:
                raise exc.for_stream(self.stream_name) from None
            self._sent_schema = adapted.schema
            self._schema_notes = describe_notes(adapted.notes)
            apply_precision(self._sent_schema, self._run.table(self.stream_name).precision.values())
        return self._sent_schema

    def _warn_schema_notes(self) -> None:
        """Log what relaxed mode loosened beyond its routine rules, once per stream and field."""
        for text in self._schema_notes:
            if self._table.warn_once(f"schema: {text}"):
                self.logger.warning("Stream '%s': %s (schema_mode=relaxed)", self.stream_name, text)
        self._schema_notes = []

    @override
    def get_validator(self) -> BaseJSONSchemaValidator | None:
        """Validate locally against exactly the schema that is sent (Draft 4).

        The SDK calls this when the sink is created, so the schema sent is built (and a
        schema that cannot be sent refused) when the SCHEMA arrives, validation or not.
        """
        schema = self.sent_schema
        if not self.validate_schema:
            return None
        relaxed = self._settings.schema_mode is SchemaMode.RELAXED
        return Draft4RecordValidator(
            schema,
            self.stream_name,
            self.key_properties,
            relax=self._fit_precision if relaxed else None,
        )

    def _fit_precision(self, record: dict[str, t.Any]) -> bool:
        """Relaxed mode: make ``multipleOf`` steps fine enough for a record's numbers.

        Numbers that break only ``multipleOf`` (log-based taps write binary-float
        expansions of decimals) are sent as the tap wrote them; the schema sent gets, for
        each such keyword, the power of ten that divides both the old step and the value
        (see :mod:`target_stitch_import.schema`). From then on every batch of the table
        carries the finer step (the open batch is cut: its header changes). Warned once
        per table and keyword. Returns True when the record now matches the schema.
        """
        validator = t.cast("Draft4RecordValidator", self._validator)
        checker: Draft4Checker = validator.checker
        schema = self.sent_schema
        applied: list[PrecisionFix] = []
        for _ in range(_PRECISION_ROUNDS):
            fixes = precision_fixes(checker.validator.iter_errors(record))
            if schema is self.sent_schema:
                schema = copy.deepcopy(schema)
            changed = apply_precision(schema, fixes)
            if not changed:
                return False
            applied += changed
            checker = compile_draft4(schema, check=False)
            if checker.is_valid(record):
                break
        else:
            return False
        self._sent_schema = schema
        validator.checker = checker
        self._headers.clear()
        self._preparer = None
        for fix in applied:
            self._table.precision[fix.path] = fix
            self._warn_precision(record, fix)
        return True

    def _warn_precision(self, record: dict[str, t.Any], fix: PrecisionFix) -> None:
        where = "/".join(str(part) for part in fix.path[1:-1]) or "the record"
        if not self._table.warn_once(f"precision: {where}"):
            return
        now = (
            f"multipleOf {fix.step} for it (still a decimal column in Stitch)"
            if fix.step is not None
            else "no multipleOf for it (Stitch types the column as floating point)"
        )
        self.logger.warning(
            "Stream '%s': field '%s' holds numbers that are not multiples of the step its "
            "schema declares (record %s; log-based taps write decimals as binary-float "
            "expansions); they are sent as the tap wrote them, and the schema sent to Stitch "
            "now has %s (schema_mode=relaxed).",
            self.stream_name,
            fix.field,
            describe_key(record, self._keys),
            now,
        )

    @override
    def _remove_sdc_metadata_from_schema(self) -> None:
        """Drop the SDK's record metadata fields from the schema, keeping ``_sdc_deleted_at``."""
        properties = self.schema["properties"]
        for name in _SDC_FIELDS:
            properties.pop(name, None)

    @override
    def _remove_sdc_metadata_from_record(self, record: dict) -> None:
        """Drop the SDK's record metadata fields from a record, keeping ``_sdc_deleted_at``."""
        for name in _SDC_FIELDS:
            record.pop(name, None)

    # Records

    def take_many(
        self,
        run: t.Sequence[dict[str, t.Any]],
        indices: t.Iterable[int],
    ) -> list[tuple[bytes, list[bytes]]]:
        """Turn RECORDs of a pass-through stream into upsert messages: the SDK's steps, one loop.

        For a stream whose map is the SDK's pass-through (no stream map, no flattening, no
        record metadata) the target calls this instead of the SDK's record path, with a run
        of consecutive RECORD messages and the indices of this stream's ones, in order. A
        record with nothing unusual is prepared in one pass (:mod:`target_stitch_import.prepare`);
        any other takes the SDK's steps (:meth:`_take_fully`). Either way the result is what
        the SDK's path gives (the bodies are byte-identical), without the record copy, the
        identity transform, the per-record sink lookup and the schema walk per field and
        record; records are counted for the SDK in chunks. The caller adds the messages to
        the run.

        Returns:
            The messages by batch header, in order (a new header starts a new segment).

        Raises:
            Exception: What a record's steps raise, noted with the record's index in ``run``
                (:func:`at_record`).
        """
        return self._collect(self._upserts(run, indices))

    def take_prepared(
        self,
        items: t.Sequence[t.Any],
        indices: t.Iterable[int],
        lines: t.Sequence[bytes | str],
    ) -> list[tuple[bytes, list[bytes]]]:
        """Turn records prepared by a record worker into upsert messages (see :meth:`take_many`).

        ``items[i]`` is ``(stream index, data, base, version)`` as the worker gave it for
        input line ``lines[i]``; ``indices`` are this stream's, in order. A message too large
        for any body stops the run (the line is decoded again to name the record).
        """
        return self._collect(self._wrapped(items, indices, lines))

    def _upserts(
        self,
        run: t.Sequence[dict[str, t.Any]],
        indices: t.Iterable[int],
    ) -> t.Iterator[tuple[bytes, bytes]]:
        """Each RECORD's batch header and upsert message (see :meth:`take_many`)."""
        preparer = self._preparer or self._new_preparer()
        prepare = preparer.prepare
        take_fully = self._take_fully
        sequence_of = self._table.sequence_of
        index = -1
        try:
            for index in indices:
                message = run[index]
                prepared = prepare(message)
                if prepared is None:
                    yield take_fully(message)
                    continue
                record, data, base, version = prepared
                if preparer.near_limits(data):
                    self._check_shape(record)
                yield self._finish(data, sequence_of(base, time.time_ns()), version, record)
        except Exception as exc:
            at_record(exc, index)
            raise

    def _wrapped(
        self,
        items: t.Sequence[t.Any],
        indices: t.Iterable[int],
        lines: t.Sequence[bytes | str],
    ) -> t.Iterator[tuple[bytes, bytes]]:
        """Each prepared record's batch header and upsert message (see :meth:`take_prepared`)."""
        table = self._table
        sequencer = table.sequencer
        headers = self._headers
        room = self._max_bytes - body_size(b"", b"")  # what header + message may take
        index = -1
        try:  # _finish written out: the reading process's per-record path with workers
            for index in indices:
                _, data, base, version = items[index]
                version = table.table_version if version is None else table.version_of(version)
                if base is None or sequencer.saturated:
                    message = upsert_message(table.sequence_of(base, time.time_ns()), data)
                else:
                    message = upsert_message(sequencer.of_base(base), data)
                header = headers.get(version) or self._header(version)
                if len(header) + len(message) > room:
                    self._too_large(lines[index], body_size(header, message))
                yield header, message
        except Exception as exc:
            at_record(exc, index)
            raise

    def _collect(self, upserts: t.Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, list[bytes]]]:
        """Group upsert messages by batch header, in order; count them for the SDK."""
        segments: list[tuple[bytes, list[bytes]]] = []
        header = b""
        pending: list[bytes] = []
        for record_header, message in upserts:
            if record_header is not header:
                header, pending = record_header, []
                segments.append((header, pending))
            pending.append(message)
        self._uncounted += sum(len(messages) for _, messages in segments)
        if self._uncounted >= _COUNT_CHUNK:
            self.count_records()
        return segments

    def _new_preparer(self) -> Preparer:
        """The preparer of the current schema and validator (rebuilt when either changes)."""
        validator = t.cast("Draft4RecordValidator | None", self._validator)
        self._preparer = Preparer(
            self.record_spec(), validator.checker if validator is not None else None
        )
        return self._preparer

    def record_spec(self) -> RecordSpec:
        """What preparing this stream's records needs (:mod:`target_stitch_import.prepare`)."""
        plan = self._plan or self._plan_of(self.schema)
        names = self._table.bookmark_names
        return RecordSpec(
            stream=self.stream_name,
            schema=self.sent_schema if self._validator is not None else None,
            fields=tuple(sorted(plan.fields)),
            datelike=tuple((name, kind) for name, _, kind in plan.datelike),
            keys=self._keys,
            bookmark=(
                names[0]
                if names and self._settings.sequence_source is not SequenceSource.TIME
                else None
            ),
        )

    def _take_fully(self, message: dict[str, t.Any]) -> tuple[bytes, bytes]:
        """A RECORD the preparer did not take: every step of the SDK's path, as it does them.

        Check the message's shape, drop the ``_sdc_*`` metadata fields, validate (relaxed
        mode may fix precision), parse the top-level date/time fields (the same parsers, the
        same ``datetime_error_treatment``), warn once per field without a schema, check the
        key properties, then :meth:`upsert`.
        """
        validator = t.cast("Draft4RecordValidator | None", self._validator)
        plan = self._plan or self._plan_of(self.schema)
        _, record, version = messages.record_message(message)
        known = plan.fields.issuperset(record)  # the schema has no _sdc_* metadata fields
        if not known and not _SDC_FIELDS.isdisjoint(record):
            self._remove_sdc_metadata_from_record(record)
            known = plan.fields.issuperset(record)
        if validator is not None and not validator.checker.is_valid(record):
            validator.validate(record)  # explains the failure (or relaxed mode fixes it)
        if plan.warn_unknown and not known:
            self._warn_unknown_fields(record, plan)
        if plan.datelike:
            self._parse_datelike(record, plan.datelike, self._treatment)
        for name in self._keys:
            if name not in record:
                if validator is not None:
                    validator.validate(record)  # names the key, as the SDK path does
                self._singer_validate_message(record)  # the SDK's own error
        return self.upsert(record, version)

    def _plan_of(self, schema: dict[str, t.Any]) -> _RecordPlan:
        """The record plan of ``schema`` (kept when it is the sink's schema)."""
        plan = _RecordPlan.of(schema)
        if schema is self.schema:
            self._plan = plan
        return plan

    @override
    def _parse_timestamps_in_record(
        self,
        record: dict,
        schema: dict,
        treatment: DatetimeErrorTreatmentEnum,
    ) -> None:
        """Parse top-level date/time fields as the SDK does, with its schema walk done once.

        The same parsers and ``datetime_error_treatment`` as the SDK (both record paths come
        here); a field without a schema is warned about once. A value that cannot be parsed
        (treatment ERROR) stops the run with one line naming stream, record and field.
        """
        plan = self._plan if schema is self.schema else None
        if plan is None:
            plan = self._plan_of(schema)
        if plan.warn_unknown and not plan.fields.issuperset(record):
            self._warn_unknown_fields(record, plan)
        if plan.datelike:
            self._parse_datelike(record, plan.datelike, treatment)

    def _parse_datelike(
        self,
        record: dict[str, t.Any],
        datelike: tuple[tuple[str, t.Callable[[str], object], str], ...],
        treatment: DatetimeErrorTreatmentEnum,
    ) -> None:
        for name, parse, kind in datelike:
            value = record.get(name)
            if value is None:
                continue
            try:
                parsed = parse(value)
            except (ValueError, TypeError) as exc:
                parsed = self._repair_timestamp(
                    record, name=name, value=value, kind=kind, exc=exc, treatment=treatment,
                )
            if type(parsed) is dt.datetime and parsed.tzinfo is None:
                parsed = naive_as_utc(parsed)
            record[name] = parsed

    def _repair_timestamp(  # noqa: PLR0913
        self,
        record: dict[str, t.Any],
        *,
        name: str,
        value: object,
        kind: str,
        exc: Exception,
        treatment: DatetimeErrorTreatmentEnum,
    ) -> object:
        try:
            return handle_invalid_timestamp_in_record(
                record, [name], value, kind, exc, treatment, self.logger,  # type: ignore[arg-type]
            )
        except (ValueError, TypeError):
            msg = (
                f"stream '{self.stream_name}': record {describe_key(record, self.key_properties)}: "
                f"field '{name}' is declared {kind} but holds {str(value)[:60]!r}, which is not "
                f"an ISO 8601 {kind}"
            )
            raise RecordError(msg) from None

    def _warn_unknown_fields(self, record: dict[str, t.Any], plan: _RecordPlan) -> None:
        warned = self._warned_missing_fields
        for name, value in record.items():
            if name not in plan.fields and value is not None and name not in warned:
                self.logger.warning("No schema for record field '%s'", name)
                warned.add(name)

    def count_records(self) -> None:
        """Pass the records taken by :meth:`take_many` to the SDK's tally and metric."""
        count, self._uncounted = self._uncounted, 0
        if count:
            self.tally_record_read(count)
            self.record_counter_metric.increment(count)

    @override
    def process_record(self, record: dict, context: dict) -> None:
        """Encode the record as an upsert message and add it to the table's open batch."""
        header, message = self.upsert(record, self._run.message_version)
        self._run.add(self._table, header, message)

    def upsert(self, record: dict[str, t.Any], version: int | None) -> tuple[bytes, bytes]:
        """Return a checked record's batch header and upsert message (the full steps).

        Checks the key values, the shape near the limits and the size; gives the record
        its table version and sequence.
        """
        for name in self._keys:
            if not plain_key(record.get(name)):
                self._check_key(record, name)
        data = encode_json(record)
        if near_limits(data):
            self._check_shape(record)
        return self._finish(data, self._table.sequence_for(record, time.time_ns()), version, record)

    def _finish(
        self,
        data: bytes,
        sequence: int,
        version: int | None,
        record: dict[str, t.Any] | bytes | str,
    ) -> tuple[bytes, bytes]:
        """Return the batch header and upsert message of checked, encoded ``data``.

        ``record`` names the record if the message is too large for any body (the record,
        or its input line).
        """
        version = self._table.version_of(version)
        message = upsert_message(sequence, data)
        header = self._headers.get(version) or self._header(version)
        needed = body_size(header, message)
        if needed > self._max_bytes:
            self._too_large(record, needed)
        return header, message

    def _too_large(self, record: dict[str, t.Any] | bytes | str, needed: int) -> t.NoReturn:
        """Stop the run: the record (or its input line) needs a body above the limit."""
        if not isinstance(record, dict):
            _, record, _ = messages.record_message(DECODER.decode(record))
        msg = (
            f"stream '{self.stream_name}': record {describe_key(record, self._keys)} "
            f"needs a {needed:,}-byte request body, above "
            f"max_batch_bytes={self._max_bytes:,}; it cannot be sent in any batch"
        )
        raise RecordError(msg)

    def _check_key(self, record: dict[str, t.Any], name: str) -> None:
        problem = key_problem(record.get(name))
        if problem is not None:
            msg = (
                f"stream '{self.stream_name}': record "
                f"{describe_key(record, self.key_properties)}: key property '{name}' {problem}"
            )
            raise RecordError(msg)

    def _check_shape(self, record: dict[str, t.Any]) -> None:
        problem = _shape_problem(record)
        if problem is not None:
            msg = (
                f"stream '{self.stream_name}': record {describe_key(record, self.key_properties)} "
                f"{problem}"
            )
            raise RecordError(msg)

    def _header(self, version: int | None) -> bytes:
        header = self._headers.get(version)
        if header is None:
            header = TableHeader(
                table_name=self.stream_name,
                schema=self.sent_schema,
                key_names=tuple(self.key_properties),
                bookmark_names=self._table.bookmark_names,
                table_version=version,
            ).encode()
            self._headers[version] = header
        return header

    @override
    def process_batch(self, context: dict) -> None:
        """Send what is left and wait until every body of this table is acknowledged."""
        self.count_records()
        self._run.send_and_wait(self._table)

    @override
    def activate_version(self, new_version: int) -> None:
        """Switch the table to ``new_version`` once all its earlier batches are acknowledged.

        The target calls this only once the version's load is complete (see
        :meth:`Table.versions_to_activate`), so the table never shows a partial version.
        """
        self._run.activate(self._table, self._header(new_version), new_version)
