"""A RECORD's encoded ``data`` in one pass, when nothing about it is unusual (pure: no I/O).

A pass-through stream's record whose fields are all in the schema, that matches the schema
sent, whose top-level date/time fields parse, whose keys are usable and whose bookmark
orders becomes here its encoded ``data`` and its sequence base. :class:`Preparer` does it in
the reading process (the sink's lean loop) and in record worker processes
(:mod:`target_stitch_import.workers`), from one :class:`RecordSpec`. Any other record gets
``None``, and the sink's full steps take it (they say what is wrong, or repair what
``datetime_error_treatment`` and ``schema_mode`` allow). The upsert message is always
:func:`~target_stitch_import.batch.upsert_message` of the encoded ``data``, so both ways
give byte-identical messages.

This module imports neither the SDK nor anything slow: a worker process starts in a
fraction of a second.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sys
import typing as t
from dataclasses import dataclass

import msgspec

from target_stitch_import.batch import encode_json
from target_stitch_import.contract import (
    MAX_DATA_POINTS,
    MAX_RECORD_DEPTH,
    MAX_SEQUENCE,
    MAX_STRING_KEY_LENGTH,
)
from target_stitch_import.draft4 import Draft4Checker, compile_draft4
from target_stitch_import.sequence import naive_as_utc, quick_base

if sys.version_info < (3, 11):  # the SDK's parsers: the backport takes what 3.11's does
    from backports.datetime_fromisoformat import MonkeyPatch  # type: ignore[import-not-found]

    MonkeyPatch.patch_fromisoformat()

#: Lines and records decoded as the SDK's reader does: floats as ``Decimal`` (exact).
DECODER = msgspec.json.Decoder(float_hook=decimal.Decimal)
#: The parsers of the SDK for each date/time ``format`` (top-level fields only, as the SDK).
DATELIKE_PARSERS: dict[str, t.Callable[[str], object]] = {
    "date-time": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
}
#: An upsert message around its data adds fewer bytes than this.
_WRAP_BYTES = 64
#: Encoded data this short holds fewer than MAX_DATA_POINTS scalars (each takes at least
#: one character and one separator).
_POINTS_SURELY_BELOW_LIMIT = 2 * MAX_DATA_POINTS - 2 - _WRAP_BYTES
#: Encoded data this short nests at most MAX_RECORD_DEPTH deep (every level takes an
#: opening and a closing bracket).
_DEPTH_SURELY_BELOW_LIMIT = 2 * MAX_RECORD_DEPTH

#: Types and keywords of a property that, once validated, holds one scalar.
_SCALAR_TYPES = frozenset({"null", "string", "integer", "number", "boolean"})
_SCALAR_KEYWORDS = frozenset(
    {
        "type", "format", "description", "title", "maxLength", "minLength", "pattern",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    },
)  # fmt: skip

#: A prepared record: the record (date/times parsed), its encoded data, its sequence base
#: (None: time-based) and its table version (None: the table's).
Prepared: t.TypeAlias = "tuple[dict[str, t.Any], bytes, int | None, int | None]"


def plain_key(value: object) -> bool:
    """True for the key values that need no closer look: integers and short texts."""
    kind = type(value)
    return kind is int or (kind is str and len(value) < MAX_STRING_KEY_LENGTH)  # type: ignore[arg-type]


def near_limits(data: bytes) -> bool:
    """True when encoded data may break a shape limit (points, depth): check it exactly."""
    size = len(data)
    return size >= _POINTS_SURELY_BELOW_LIMIT or (
        size > _DEPTH_SURELY_BELOW_LIMIT
        and data.count(b"{") + data.count(b"[") > MAX_RECORD_DEPTH
    )


def _type_names(subschema: dict[str, t.Any], missing: object) -> list[str] | None:
    """A property's ``type`` as a list of names (``missing`` when absent); None: malformed."""
    kinds = subschema.get("type", missing)
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if not isinstance(kinds, list) or not all(isinstance(kind, str) for kind in kinds):
        return None
    return kinds


def _is_flat(schema: t.Mapping[str, t.Any] | None) -> bool:
    """True when a valid record of ``schema`` without unknown fields is one level of scalars."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or len(properties) >= MAX_DATA_POINTS:
        return False
    for subschema in properties.values():
        if not isinstance(subschema, dict) or not subschema.keys() <= _SCALAR_KEYWORDS:
            return False
        kinds = _type_names(subschema, None)
        if not kinds or not _SCALAR_TYPES.issuperset(kinds):
            return False
    return True


#: Keywords that never change a verdict (formats are not checked).
_ANNOTATIONS = frozenset({"title", "description", "default", "format", "examples", "$comment"})
_ROOT_KEYWORDS = frozenset(
    {"type", "properties", "required", "additionalProperties", "$schema", *_ANNOTATIONS},
)
_DRAFT4_TYPES = frozenset({"null", "boolean", "integer", "number", "string", "object", "array"})
#: Verdicts remembered per stream at most (distinct field lists and value classes).
_MAX_VERDICTS = 4_096


def verdict_follows_classes(schema: t.Mapping[str, t.Any] | None) -> bool:
    """True when validity under ``schema`` follows from field names and value classes alone.

    So for a schema of typed fields without any other constraint (bounds, lengths, patterns,
    enums, nested properties): ``required``, a boolean ``additionalProperties`` and the
    ``type`` of each field look at nothing else.
    """
    if not isinstance(schema, dict) or not schema.keys() <= _ROOT_KEYWORDS:
        return False
    properties = schema.get("properties", {})
    additional = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or type(additional) is not bool:
        return False
    for subschema in properties.values():
        if not isinstance(subschema, dict) or not subschema.keys() <= {"type", *_ANNOTATIONS}:
            return False
        kinds = _type_names(subschema, [])
        if kinds is None or not _DRAFT4_TYPES.issuperset(kinds):
            return False
    return True


@dataclass(frozen=True)
class RecordSpec:
    """What preparing a stream's records needs: plain data, the same in every process."""

    #: The stream's name.
    stream: str
    #: The schema records are validated against (the schema sent); None: no validation.
    schema: dict[str, t.Any] | None
    #: The schema's top-level property names.
    fields: tuple[str, ...]
    #: Top-level date/time fields and their format ("date-time", "date", "time").
    datelike: tuple[tuple[str, str], ...]
    #: The key properties.
    keys: tuple[str, ...]
    #: The bookmark property sequences come from; None: time-based sequences.
    bookmark: str | None

    def encode(self) -> bytes:
        """The spec as JSON (numbers of the schema exact)."""
        return encode_json(
            [self.stream, self.schema, self.fields, self.datelike, self.keys, self.bookmark],
        )

    @classmethod
    def decode(cls, data: bytes) -> RecordSpec:
        """The spec :meth:`encode` wrote."""
        stream, schema, fields, datelike, keys, bookmark = DECODER.decode(data)
        return cls(
            stream,
            schema,
            tuple(fields),
            tuple((name, kind) for name, kind in datelike),
            tuple(keys),
            bookmark,
        )


class Preparer:
    """Prepares the records of one stream (see the module docstring). Not thread-safe."""

    def __init__(self, spec: RecordSpec, checker: Draft4Checker | None = None) -> None:
        """Build the preparer; ``checker`` is the spec's schema compiled (else compiled here)."""
        self.spec = spec
        if checker is None and spec.schema is not None:
            checker = compile_draft4(spec.schema, check=False)
        self._is_valid = checker.is_valid if checker is not None else None
        self._fields = frozenset(spec.fields)
        self._keys = spec.keys
        self._datelike = tuple((name, DATELIKE_PARSERS[kind]) for name, kind in spec.datelike)
        self._bookmark = spec.bookmark
        #: Prepared records are far below every shape limit (validated flat scalars).
        self._flat = checker is not None and _is_flat(spec.schema)
        #: Verdicts by field names and value classes, when those decide them (None: they
        #: do not; every record is checked).
        self._verdicts: dict[tuple[object, ...], bool] | None = (
            {} if checker is not None and verdict_follows_classes(spec.schema) else None
        )

    def near_limits(self, data: bytes) -> bool:
        """:func:`near_limits` of a prepared record's data (never, for a flat schema)."""
        return not self._flat and near_limits(data)

    def prepare(self, message: t.Mapping[str, t.Any]) -> Prepared | None:  # noqa: C901, PLR0911, PLR0912
        """Prepare a RECORD message of the stream; None when the full steps must take it.

        The record is changed (its date/time fields parsed) only when it is prepared.
        """
        record = message.get("record")
        version = message.get("version")
        if type(record) is not dict or not (
            version is None or (type(version) is int and 0 <= version <= MAX_SEQUENCE)
        ):
            return None
        if not self._fields.issuperset(record):  # unknown or _sdc_* metadata fields
            return None
        for name in self._keys:
            if not plain_key(record.get(name)):
                return None
        is_valid = self._is_valid
        if is_valid is not None:
            verdicts = self._verdicts
            signature = (*record, *map(type, record.values())) if verdicts is not None else ()
            valid = verdicts.get(signature) if verdicts is not None else None
            if valid is None:
                try:
                    valid = is_valid(record)
                except Exception:  # noqa: BLE001 - too deep, an unresolvable $ref: the full steps say
                    return None
                if verdicts is not None and len(verdicts) < _MAX_VERDICTS:
                    verdicts[signature] = valid
            if not valid:
                return None
        parsed: list[tuple[str, object]] = []
        for name, parse in self._datelike:
            value = record.get(name)
            if value is None:
                continue
            try:
                value = parse(value)
            except (ValueError, TypeError):
                return None
            if type(value) is dt.datetime and value.tzinfo is None:
                value = naive_as_utc(value)
            parsed.append((name, value))
        base = None
        bookmark = self._bookmark
        if bookmark is not None:
            if bookmark not in record:
                return None  # noted by the full steps
            value = record[bookmark]
            for name, parsed_value in parsed:
                if name == bookmark:
                    value = parsed_value
            if value is not None:
                base = quick_base(value)
                if base is None:
                    return None
        for name, value in parsed:
            record[name] = value
        return record, encode_json(record), base, version
