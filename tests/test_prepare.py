"""Preparing a record in one pass (pure): what is prepared, what is left to the full steps."""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import typing as t

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from target_stitch_import.batch import upsert_message
from target_stitch_import.contract import MAX_RECORD_DEPTH
from target_stitch_import.draft4 import compile_draft4
from target_stitch_import.prepare import (
    DECODER,
    Preparer,
    RecordSpec,
    near_limits,
    verdict_follows_classes,
)

SCHEMA: dict[str, t.Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"], "maxLength": 10},
        "price": {"type": ["null", "number"], "multipleOf": decimal.Decimal("0.01")},
        "at": {"type": ["null", "string"], "format": "date-time"},
        "day": {"type": ["null", "string"], "format": "date"},
    },
}
UTC = dt.timezone.utc


def spec(schema: dict[str, t.Any] | None = SCHEMA, bookmark: str | None = "at") -> RecordSpec:
    properties = (schema or SCHEMA)["properties"]
    return RecordSpec(
        stream="s",
        schema=schema,
        fields=tuple(properties),
        datelike=(("at", "date-time"), ("day", "date")),
        keys=("id",),
        bookmark=bookmark,
    )


def message(record: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    return {"type": "RECORD", "stream": "s", "record": record, **extra}


def test_a_plain_record_is_prepared_with_its_base() -> None:
    record = {"id": 1, "name": "a", "price": decimal.Decimal("1.50"), "at": "2024-01-01T00:00:01Z"}
    prepared = Preparer(spec()).prepare(message(record))
    assert prepared is not None
    prepared_record, data, base, version = prepared
    assert prepared_record["at"] == dt.datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert data == b'{"id":1,"name":"a","price":1.50,"at":"2024-01-01T00:00:01Z"}'
    assert base == (1_704_067_201 * 1_000_000)
    assert version is None


def test_naive_date_times_are_utc_and_offsets_kept() -> None:
    preparer = Preparer(spec())
    naive = preparer.prepare(message({"id": 1, "at": "2024-01-01T00:00:00"}))
    offset = preparer.prepare(message({"id": 1, "at": "2024-01-01T02:00:00+02:00"}))
    assert naive is not None
    assert offset is not None
    assert naive[1] == b'{"id":1,"at":"2024-01-01T00:00:00Z"}'
    assert offset[1] == b'{"id":1,"at":"2024-01-01T02:00:00+02:00"}'
    assert naive[2] == offset[2]  # the same instant: the same base


def test_a_null_bookmark_is_time_based_and_a_version_is_kept() -> None:
    prepared = Preparer(spec()).prepare(message({"id": 1, "at": None}, version=7))
    assert prepared is not None
    assert (prepared[2], prepared[3]) == (None, 7)


@pytest.mark.parametrize(
    ("record", "extra"),
    [
        ({"id": 1, "at": "2024-01-01T00:00:00Z", "other": 1}, {}),  # a field without schema
        ({"id": 1, "at": "2024-01-01T00:00:00Z", "_sdc_extracted_at": "x"}, {}),  # SDK metadata
        ({"id": 1, "name": "far too long a name", "at": "2024-01-01T00:00:00Z"}, {}),  # invalid
        ({"id": 1, "price": decimal.Decimal("1.001"), "at": "2024-01-01T00:00:00Z"}, {}),  # multipleOf
        ({"id": None, "at": "2024-01-01T00:00:00Z"}, {}),  # a null key (invalid too)
        ({"name": "no key", "at": "2024-01-01T00:00:00Z"}, {}),  # no key
        ({"id": 1, "at": "yesterday"}, {}),  # not a date-time
        ({"id": 1, "day": "2024-02-30", "at": "2024-01-01T00:00:00Z"}, {}),  # not a date
        ({"id": 1}, {}),  # no bookmark field: noted by the full steps
        ({"id": 1, "at": "1969-12-31T23:59:59Z"}, {}),  # a bookmark before the epoch
        ({"id": 1, "at": None}, {"version": True}),  # a version that is no integer
        ({"id": 1, "at": None}, {"version": -1}),
        ({"id": 1, "at": None}, {"version": 2**63}),
    ],
)
def test_anything_unusual_is_left_to_the_full_steps_untouched(
    record: dict[str, t.Any], extra: dict[str, t.Any],
) -> None:
    original = copy.deepcopy(record)
    assert Preparer(spec()).prepare(message(record, **extra)) is None
    assert record == original


def test_a_record_that_is_no_object_is_left_alone() -> None:
    assert Preparer(spec()).prepare({"type": "RECORD", "stream": "s", "record": [1]}) is None


def test_without_validation_anything_of_the_schema_fields_is_prepared() -> None:
    preparer = Preparer(spec(schema=None))
    prepared = preparer.prepare(message({"id": 1, "name": "far too long a name", "at": None}))
    assert prepared is not None
    assert preparer.near_limits(b"[" * (MAX_RECORD_DEPTH + 1) + b"]" * (MAX_RECORD_DEPTH + 1))


def test_wrap_gives_the_bytes_of_encoding_the_whole_message() -> None:
    record = {"id": 1, "price": decimal.Decimal("1.500"), "at": dt.datetime(2024, 1, 1, tzinfo=UTC)}
    prepared = Preparer(spec(schema=None)).prepare(message({**record, "at": "2024-01-01T00:00:00Z"}))
    assert prepared is not None
    whole = msgspec.json.Encoder(decimal_format="number").encode(
        {"action": "upsert", "sequence": 123, "data": record},
    )
    assert upsert_message(123, prepared[1]) == whole


def test_flat_schemas_are_never_near_the_limits_and_others_are_checked() -> None:
    deep = b"[" * (MAX_RECORD_DEPTH + 1) + b"]" * (MAX_RECORD_DEPTH + 1)
    assert near_limits(deep)
    assert not Preparer(spec()).near_limits(deep)  # validated scalars: one level
    nested = {
        "type": "object",
        "properties": {**SCHEMA["properties"], "more": {"type": ["null", "object"]}},
    }
    assert Preparer(spec(schema=nested)).near_limits(deep)
    listed = {"type": "object", "properties": {**SCHEMA["properties"], "e": {"enum": [[1]]}}}
    assert Preparer(spec(schema=listed)).near_limits(deep)


def test_a_spec_travels_as_json_with_exact_numbers() -> None:
    original = spec()
    copied = RecordSpec.decode(original.encode())
    assert copied == original
    assert copied.schema is not None
    assert copied.schema["properties"]["price"]["multipleOf"] == decimal.Decimal("0.01")
    line = b'{"type":"RECORD","stream":"s","record":{"id":1,"price":0.10,"at":null}}'
    prepared = Preparer(copied).prepare(DECODER.decode(line))
    assert prepared is not None
    assert prepared[1] == b'{"id":1,"price":0.10,"at":null}'


TYPED_ONLY = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"], "description": "a name"},
        "at": {"type": ["null", "string"], "format": "date-time"},
        "any": {},
    },
    "required": ["id"],
}


@pytest.mark.parametrize(
    ("schema", "follows"),
    [
        (TYPED_ONLY, True),
        ({**TYPED_ONLY, "additionalProperties": False}, True),
        ({"properties": {"a": {"type": "object"}, "b": {"type": "array"}}}, True),
        ({**TYPED_ONLY, "additionalProperties": {"type": "string"}}, False),
        ({"properties": {"a": {"type": "string", "maxLength": 3}}}, False),
        ({"properties": {"a": {"type": "integer", "minimum": 0}}}, False),
        ({"properties": {"a": {"enum": [1, 2]}}}, False),
        ({"properties": {"a": {"type": "string", "pattern": "x"}}}, False),
        ({"properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}, False),
        ({"properties": {"a": {"$ref": "#/definitions/x"}}, "definitions": {"x": {}}}, False),
        ({"properties": {"a": {"type": "decimal"}}}, False),
        ({"properties": {"a": {"type": 5}}}, False),
        ({"properties": {"a": True}}, False),
        ({"properties": {"a": {"type": "string"}}, "minProperties": 1}, False),
        (None, False),
    ],
)
def test_verdicts_are_remembered_only_where_names_and_classes_decide_them(
    schema: dict[str, t.Any] | None,
    follows: bool,
) -> None:
    assert verdict_follows_classes(schema) is follows


_FIELDS = ("a", "b", "c", "d")
_KINDS = ("null", "boolean", "integer", "number", "string", "object", "array")
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=3),
    st.just({}),
    st.just([1]),
)


@given(
    kinds=st.fixed_dictionaries(
        {name: st.one_of(st.none(), st.sampled_from(_KINDS), st.lists(st.sampled_from(_KINDS), max_size=3))
         for name in _FIELDS},
    ),
    required=st.lists(st.sampled_from(_FIELDS), unique=True, max_size=2),
    closed=st.booleans(),
    records=st.lists(
        st.dictionaries(st.sampled_from(_FIELDS), _VALUES, max_size=4),
        min_size=1,
        max_size=30,
    ),
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_remembered_verdicts_are_the_validators(
    kinds: dict[str, t.Any],
    required: list[str],
    closed: bool,
    records: list[dict[str, t.Any]],
) -> None:
    properties = {name: ({} if kind is None else {"type": kind}) for name, kind in kinds.items()}
    schema = {"type": "object", "properties": properties, "additionalProperties": not closed}
    if required:
        schema["required"] = required
    assert verdict_follows_classes(schema)
    checker = compile_draft4(schema, check=False)
    preparer = Preparer(
        RecordSpec(stream="s", schema=schema, fields=_FIELDS, datelike=(), keys=(), bookmark=None),
    )
    for record in records * 2:  # the second time, from what was remembered
        expected = checker.is_valid(record)
        assert (preparer.prepare(message(dict(record))) is not None) is expected
