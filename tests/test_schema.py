"""Unit tests of :mod:`target_stitch_import.schema` (``adapt_schema``), table-driven.

Hostile schemas (too deep, $ref loops, odd shapes), end to end too: test_schema_hostile.py.

The schemas are the shapes real taps send (meltanolabs-tap-postgres, singer-io
tap-postgres, SDK taps writing JSON Schema 2020-12); the records are what those taps
really emit. Records are validated as Stitch does: JSON Schema Draft 4 with exact numbers
(:mod:`target_stitch_import.draft4`, shared with the emulator).
"""

from __future__ import annotations

import copy
import decimal
import json
import time
import typing as t

import jsonschema
import pytest

from target_stitch_import.draft4 import ExactDraft4Validator
from target_stitch_import.schema import (
    DRAFT4_TYPES,
    SchemaMode,
    SchemaProblemError,
    adapt_schema,
    adapt_schema_with_notes,
    describe_notes,
)

D = decimal.Decimal
RELAXED = SchemaMode.RELAXED


def relaxed(schema: dict[str, t.Any], keys: t.Sequence[str] = ()) -> dict[str, t.Any]:
    """``adapt_schema`` in relaxed mode, checked to be valid Draft 4."""
    adapted = adapt_schema(schema, keys, RELAXED)
    jsonschema.Draft4Validator.check_schema(adapted)
    return adapted


def warnings_of(schema: t.Mapping[str, t.Any], keys: t.Sequence[str] = ()) -> list[str]:
    """The texts relaxed mode's notes on ``schema`` become (one per field)."""
    return describe_notes(adapt_schema_with_notes(schema, keys, RELAXED).notes)


def errors(schema: t.Mapping[str, t.Any], record: t.Any) -> list[str]:
    """Draft 4 validation errors of ``record`` (exact ``multipleOf``, as Stitch/emulator)."""
    return [e.message for e in ExactDraft4Validator(schema).iter_errors(record)]


def obj(properties: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    """A top-level object schema."""
    return {"type": "object", "properties": properties, **extra}


# What meltanolabs-tap-postgres 0.10.0 sends for a table with text[], int[] and jsonb.
MELTANOLABS_ITEMS = {
    "properties": {
        "id": {"type": ["integer"]},
        "updated_at": {"format": "date-time", "type": ["string", "null"]},
        "tags": {"items": {"type": ["string"]}, "type": ["array", "null"]},
        "scores": {"items": {"type": ["integer"]}, "type": ["array", "null"]},
        "doc": {
            "type": ["string", "number", "integer", "array", "object", "boolean", "null"],
            "additionalProperties": True,
        },
        "amount": {"type": ["number", "null"]},
    },
    "type": "object",
    "required": ["id"],
    "$schema": "https://json-schema.org/draft/2020-12/schema",
}

# What singer-io tap-postgres 0.2.1 sends: definitions with recursive $ref, numeric bounds.
SINGER_IO_ITEMS = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer"], "minimum": -2147483648, "maximum": 2147483647},
        "tags": {
            "type": ["null", "array"],
            "items": {"$ref": "#/definitions/sdc_recursive_string_array"},
        },
        "price": {
            "type": ["null", "number"],
            "exclusiveMaximum": True,
            "maximum": 10000000000,
            "multipleOf": 0.01,
            "exclusiveMinimum": True,
            "minimum": -10000000000,
        },
        "amount": {"type": ["null", "number"], "multipleOf": 1e-38},
    },
    "definitions": {
        "sdc_recursive_string_array": {
            "type": ["null", "string", "array"],
            "items": {"$ref": "#/definitions/sdc_recursive_string_array"},
        },
    },
}

# An SDK tap writing 2020-12: $defs, const, numeric exclusiveMinimum, prefixItems.
MODERN = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.com/order.json",
    "type": "object",
    "required": ["id", "status", "lines"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string"},
        "status": {"const": "open"},
        "total": {"type": "number", "exclusiveMinimum": 0},
        "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}]},
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
        "customer": {"$ref": "#/$defs/customer"},
    },
    "$defs": {
        "line": {
            "type": "object",
            "required": ["sku"],
            "additionalProperties": False,
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
        },
        "customer": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


# --- each quirk: (name, input schema, keys, expected output) --------------------------

QUIRKS: list[tuple[str, dict[str, t.Any], list[str], dict[str, t.Any]]] = [
    (
        "top-level property becomes nullable; key keeps its type",
        obj({"id": {"type": "integer"}, "name": {"type": "string"}}),
        ["id"],
        obj({"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}, required=["id"]),
    ),
    (
        "key declared nullable stays as declared",
        obj({"id": {"type": ["string", "null"]}}),
        ["id"],
        obj({"id": {"type": ["string", "null"]}}, required=["id"]),
    ),
    (
        "array items (text[] with NULL elements)",
        obj({"tags": {"type": ["array"], "items": {"type": ["string"]}}}),
        [],
        obj({"tags": {"type": ["array", "null"], "items": {"type": ["string", "null"]}}}),
    ),
    (
        "tuple items and additionalItems",
        obj(
            {
                "p": {
                    "type": "array",
                    "items": [{"type": "number"}],
                    "additionalItems": {"type": "string"},
                }
            }
        ),
        [],
        obj(
            {
                "p": {
                    "type": ["array", "null"],
                    "items": [{"type": ["number", "null"]}],
                    "additionalItems": {"type": ["string", "null"]},
                },
            },
        ),
    ),
    (
        "nested object properties, required and additionalProperties false dropped",
        obj(
            {
                "o": {
                    "type": "object",
                    "required": ["a"],
                    "additionalProperties": False,
                    "properties": {"a": {"type": "integer"}},
                },
            },
            required=["o"],
            additionalProperties=False,
        ),
        [],
        obj(
            {"o": {"type": ["object", "null"], "properties": {"a": {"type": ["integer", "null"]}}}}
        ),
    ),
    (
        "patternProperties and additionalProperties schemas",
        obj(
            {
                "m": {
                    "type": "object",
                    "patternProperties": {"^x": {"type": "integer"}},
                    "additionalProperties": {"type": "string"},
                },
            },
        ),
        [],
        obj(
            {
                "m": {
                    "type": ["object", "null"],
                    "patternProperties": {"^x": {"type": ["integer", "null"]}},
                    "additionalProperties": {"type": ["string", "null"]},
                },
            },
        ),
    ),
    (
        "anyOf branches nullable",
        obj({"v": {"anyOf": [{"type": "integer"}, {"type": "string", "format": "date-time"}]}}),
        [],
        obj(
            {
                "v": {
                    "anyOf": [
                        {"type": ["integer", "null"]},
                        {"type": ["string", "null"], "format": "date-time"},
                    ]
                }
            }
        ),
    ),
    (
        "oneOf becomes anyOf (nullable branches overlap on null)",
        obj({"v": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}),
        [],
        obj({"v": {"anyOf": [{"type": ["integer", "null"]}, {"type": ["number", "null"]}]}}),
    ),
    (
        "enum gains null",
        obj({"e": {"type": "string", "enum": ["a", "b"]}}),
        [],
        obj({"e": {"type": ["string", "null"], "enum": ["a", "b", None]}}),
    ),
    (
        "enum on a key keeps no null",
        obj({"e": {"type": "string", "enum": ["a", "b"]}}),
        ["e"],
        obj({"e": {"type": "string", "enum": ["a", "b"]}}, required=["e"]),
    ),
    (
        "const becomes enum (+ null)",
        obj({"c": {"const": 5}}),
        [],
        obj({"c": {"enum": [5, None]}}),
    ),
    (
        "numeric exclusiveMinimum/exclusiveMaximum (draft 6+)",
        obj({"n": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10}}),
        [],
        obj(
            {
                "n": {
                    "type": ["number", "null"],
                    "minimum": 0,
                    "exclusiveMinimum": True,
                    "maximum": 10,
                    "exclusiveMaximum": True,
                },
            },
        ),
    ),
    (
        "numeric exclusiveMinimum next to a stricter minimum keeps the minimum",
        obj({"n": {"type": "number", "minimum": 5, "exclusiveMinimum": 1}}),
        [],
        obj({"n": {"type": ["number", "null"], "minimum": 5}}),
    ),
    (
        "Draft 4 boolean exclusiveMinimum stays",
        obj({"n": {"type": "number", "minimum": 0, "exclusiveMinimum": True}}),
        [],
        obj({"n": {"type": ["number", "null"], "minimum": 0, "exclusiveMinimum": True}}),
    ),
    (
        "multipleOf and format stay",
        obj(
            {
                "n": {"type": "number", "multipleOf": 1e-38},
                "t": {"type": "string", "format": "date-time"},
            }
        ),
        [],
        obj(
            {
                "n": {"type": ["number", "null"], "multipleOf": 1e-38},
                "t": {"type": ["string", "null"], "format": "date-time"},
            }
        ),
    ),
    (
        "unknown type names dropped",
        obj({"x": {"type": ["string", "money", "null"]}, "y": {"type": "any"}}),
        [],
        obj({"x": {"type": ["string", "null"]}, "y": {}}),
    ),
    (
        "unknown type next to null only: no type is left, not a null-only field",
        obj({"x": {"type": ["null", "strng"]}, "y": {"type": ["integr", "null", 7]}}),
        [],
        obj({"x": {}, "y": {}}),
    ),
    (
        "pattern and patternProperties names that are not regular expressions dropped",
        obj({"s": {"type": "string", "pattern": "["}, "m": {"patternProperties": {"(": {}}}}),
        [],
        obj({"s": {"type": ["string", "null"]}, "m": {"patternProperties": {}}}),
    ),
    (
        "values that are not schemas where a schema belongs",
        obj({"l": {"type": "array", "items": 5}, "o": {"properties": {"p": 5}}, "t": {"type": 7}}),
        [],
        obj({"l": {"type": ["array", "null"]}, "o": {"properties": {"p": {}}}, "t": {}}),
    ),
    (
        "duplicate type names merged",
        obj({"x": {"type": ["string", "null", "string"]}}),
        [],
        obj({"x": {"type": ["string", "null"]}}),
    ),
    (
        "draft 6+ keywords dropped",
        obj(
            {
                "x": {
                    "type": "string",
                    "$comment": "c",
                    "examples": ["a"],
                    "deprecated": True,
                    "readOnly": True,
                    "writeOnly": False,
                    "contentMediaType": "text/plain",
                    "contentEncoding": "base64",
                },
                "o": {
                    "type": "object",
                    "unevaluatedProperties": False,
                    "dependentRequired": {"a": ["b"]},
                    "dependentSchemas": {"a": {"required": ["c"]}},
                    "propertyNames": {"maxLength": 3},
                    "if": {"required": ["a"]},
                    "then": {"required": ["b"]},
                },
            },
            **{
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": "urn:x",
                "$comment": "top",
            },
        ),
        [],
        obj({"x": {"type": ["string", "null"]}, "o": {"type": ["object", "null"]}}),
    ),
    (
        "prefixItems becomes tuple items; 2020-12 items becomes additionalItems",
        obj(
            {
                "p": {
                    "type": "array",
                    "prefixItems": [{"type": "integer"}],
                    "items": {"type": "string"},
                }
            }
        ),
        [],
        obj(
            {
                "p": {
                    "type": ["array", "null"],
                    "items": [{"type": ["integer", "null"]}],
                    "additionalItems": {"type": ["string", "null"]},
                },
            },
        ),
    ),
    (
        "$defs ref resolved inline",
        {
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/n"}},
            "$defs": {"n": {"type": "integer"}},
        },
        [],
        obj({"a": {"type": ["integer", "null"]}}),
    ),
    (
        "definitions ref on a key property keeps it non-null",
        {
            "type": "object",
            "properties": {"id": {"$ref": "#/definitions/i"}},
            "definitions": {"i": {"type": "integer"}},
        },
        ["id"],
        obj({"id": {"type": "integer"}}, required=["id"]),
    ),
    (
        "recursive ref becomes {} below its first expansion",
        {
            "type": "object",
            "properties": {"tree": {"$ref": "#/definitions/node"}},
            "definitions": {
                "node": {
                    "type": "object",
                    "properties": {
                        "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}}
                    },
                },
            },
        },
        [],
        obj(
            {
                "tree": {
                    "type": ["object", "null"],
                    "properties": {"kids": {"type": ["array", "null"], "items": {}}},
                }
            }
        ),
    ),
    (
        "ref to the root (#) is recursive",
        {"type": "object", "properties": {"self": {"$ref": "#"}}},
        [],
        obj({"self": {}}),
    ),
    (
        "unresolvable and remote refs accept anything",
        obj({"a": {"$ref": "#/definitions/missing"}, "b": {"$ref": "https://example.com/x.json"}}),
        [],
        obj({"a": {}, "b": {}}),
    ),
    (
        "$ref siblings (2019+) are kept next to the inlined target",
        {
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/s", "description": "d", "maxLength": 3}},
            "$defs": {"s": {"type": "string"}},
        },
        [],
        obj({"a": {"type": ["string", "null"], "description": "d", "maxLength": 3}}),
    ),
    (
        "boolean subschemas (draft 6+) become {}",
        obj({"anything": True, "nothing": False}),
        [],
        obj({"anything": {}, "nothing": {}}),
    ),
    (
        "OpenAPI nullable and not dropped",
        obj({"x": {"type": "string", "nullable": True, "not": {"type": "null"}}}),
        [],
        obj({"x": {"type": ["string", "null"]}}),
    ),
    (
        "missing properties and type are added at the top",
        {},
        [],
        {"type": "object", "properties": {}},
    ),
    (
        "top-level type keeps object",
        {"type": ["object", "null"], "properties": {}},
        [],
        {"type": ["object", "null"], "properties": {}},
    ),
    (
        "required becomes exactly the keys",
        obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, required=["b"]),
        ["a", "b", "a"],
        obj({"a": {"type": "integer"}, "b": {"type": "integer"}}, required=["a", "b"]),
    ),
    (
        "count keywords made Draft 4 integers",
        obj({"s": {"type": "string", "maxLength": 255.0, "minLength": -1}}),
        [],
        obj({"s": {"type": ["string", "null"], "maxLength": 255}}),
    ),
    (
        "empty enum, empty anyOf and empty tuple dropped (invalid Draft 4)",
        obj({"s": {"type": "string", "enum": [], "anyOf": [], "items": []}}),
        [],
        obj({"s": {"type": ["string", "null"]}}),
    ),
    (
        "duplicate enum values merged as JSON sees them",
        obj({"e": {"enum": [1, 1.0, True, "1", None]}}),
        [],
        obj({"e": {"enum": [1, True, "1", None]}}),
    ),
    (
        "property names that look like keywords are names",
        obj(
            {
                "type": {"type": "string"},
                "$ref": {"type": "integer"},
                "required": {"type": "boolean"},
            }
        ),
        ["type"],
        obj(
            {
                "type": {"type": "string"},
                "$ref": {"type": ["integer", "null"]},
                "required": {"type": ["boolean", "null"]},
            },
            required=["type"],
        ),
    ),
    (
        "top-level $ref to the row definition, keys stay non-null",
        {
            "$ref": "#/$defs/row",
            "$defs": {"row": obj({"id": {"type": "integer"}, "v": {"type": "string"}})},
        },
        ["id"],
        obj({"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}, required=["id"]),
    ),
    (
        "$ref siblings that clash with the target go to allOf",
        {
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/s", "type": "string", "maxLength": 3}},
            "$defs": {"s": {"type": ["string", "integer"]}},
        },
        [],
        obj(
            {
                "a": {
                    "allOf": [
                        {"type": ["string", "integer", "null"]},
                        {"type": ["string", "null"], "maxLength": 3},
                    ],
                },
            },
        ),
    ),
    (
        "allOf branches nullable; key properties inside allOf keep their type",
        {"allOf": [obj({"id": {"type": "integer"}}), obj({"v": {"type": "string"}})]},
        ["id"],
        {
            "allOf": [
                {"type": "object", "properties": {"id": {"type": "integer"}}},
                {"type": "object", "properties": {"v": {"type": ["string", "null"]}}},
            ],
            "properties": {},
            "type": "object",
            "required": ["id"],
        },
    ),
    (
        "vendor keywords kept",
        obj({"x": {"type": "string", "x-sql-datatype": "text", "inclusion": "available"}}),
        [],
        obj(
            {"x": {"type": ["string", "null"], "x-sql-datatype": "text", "inclusion": "available"}}
        ),
    ),
]


@pytest.mark.parametrize(
    ("schema", "keys", "expected"), [q[1:] for q in QUIRKS], ids=[q[0] for q in QUIRKS]
)
def test_quirk(schema: dict[str, t.Any], keys: list[str], expected: dict[str, t.Any]) -> None:
    assert relaxed(schema, keys) == expected


ALL_SCHEMAS = [MELTANOLABS_ITEMS, SINGER_IO_ITEMS, MODERN, *(q[1] for q in QUIRKS)]


#: The quirks strict mode refuses: not Draft 4 (Stitch answers "Invalid JSON schema"), a
#: ``$ref`` to nothing, a pattern that is not a regular expression. MODERN too (2020-12).
STRICT_REFUSED_QUIRKS = {
    "numeric exclusiveMinimum/exclusiveMaximum (draft 6+)",
    "numeric exclusiveMinimum next to a stricter minimum keeps the minimum",
    "unknown type names dropped",
    "unknown type next to null only: no type is left, not a null-only field",
    "pattern and patternProperties names that are not regular expressions dropped",
    "values that are not schemas where a schema belongs",
    "duplicate type names merged",
    "unresolvable and remote refs accept anything",
    "boolean subschemas (draft 6+) become {}",
    "count keywords made Draft 4 integers",
    "empty enum, empty anyOf and empty tuple dropped (invalid Draft 4)",
    "duplicate enum values merged as JSON sees them",
}
#: The schemas strict mode sends as they are.
STRICT_SCHEMAS = [
    MELTANOLABS_ITEMS,
    SINGER_IO_ITEMS,
    *(q[1] for q in QUIRKS if q[0] not in STRICT_REFUSED_QUIRKS),
]


@pytest.mark.parametrize(
    ("mode", "schema"),
    [*((RELAXED, s) for s in ALL_SCHEMAS), *((SchemaMode.STRICT, s) for s in STRICT_SCHEMAS)],
)
def test_input_is_never_mutated(mode: SchemaMode, schema: dict[str, t.Any]) -> None:
    before = copy.deepcopy(schema)
    adapted = adapt_schema(schema, ["id"], mode)
    assert schema == before
    adapted.setdefault("properties", {})["new"] = {}
    assert schema == before  # no structure shared with the input


@pytest.mark.parametrize("schema", STRICT_SCHEMAS)
def test_strict_is_an_equal_copy(schema: dict[str, t.Any]) -> None:
    adapted = adapt_schema_with_notes(schema, ["id"], SchemaMode.STRICT)
    assert adapted.schema == schema
    assert adapted.schema is not schema
    assert adapted.notes == ()


@pytest.mark.parametrize("schema", [s for s in ALL_SCHEMAS if s not in STRICT_SCHEMAS])
def test_strict_refuses_what_stitch_refuses(schema: dict[str, t.Any]) -> None:
    with pytest.raises(SchemaProblemError, match=r"; fix the tap's schema or use schema_mode="):
        adapt_schema(schema, ["id"], SchemaMode.STRICT)


def test_mode_may_be_given_as_text() -> None:
    assert adapt_schema(SINGER_IO_ITEMS, [], "strict") == SINGER_IO_ITEMS
    assert adapt_schema(MODERN, [], "relaxed") == adapt_schema(MODERN, [], RELAXED)
    with pytest.raises(ValueError, match="lenient"):
        adapt_schema(MODERN, [], "lenient")


def _walk(schema: dict[str, t.Any]) -> t.Iterator[dict[str, t.Any]]:
    """Every subschema of a Draft 4 schema (schema positions only, not property names)."""
    yield schema
    for keyword in ("properties", "patternProperties", "dependencies"):
        for sub in schema.get(keyword, {}).values():
            if isinstance(sub, dict):
                yield from _walk(sub)
    items = schema.get("items")
    for sub in items if isinstance(items, list) else [items]:
        if isinstance(sub, dict):
            yield from _walk(sub)
    for keyword in ("additionalItems", "additionalProperties", "not"):
        if isinstance(schema.get(keyword), dict):
            yield from _walk(schema[keyword])
    for keyword in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(keyword, []):
            yield from _walk(sub)


@pytest.mark.parametrize("schema", ALL_SCHEMAS)
def test_relaxed_output_is_draft4_without_later_keywords(schema: dict[str, t.Any]) -> None:
    adapted = relaxed(schema, [])
    assert "object" in (adapted["type"] if isinstance(adapted["type"], list) else [adapted["type"]])
    assert isinstance(adapted["properties"], dict)
    for node in _walk(adapted):
        assert (
            not {"$ref", "$defs", "definitions", "$schema", "$id", "const", "prefixItems"}
            & node.keys()
        )
        for flag in ("exclusiveMinimum", "exclusiveMaximum"):
            if flag in node:
                assert node[flag] is True
        types = node.get("type")
        if isinstance(types, list):
            assert set(types) <= DRAFT4_TYPES


# --- records: real taps' records fail the declared schema, pass the adapted one --------

REAL_RECORDS: list[tuple[str, dict[str, t.Any], list[str], dict[str, t.Any]]] = [
    (
        "meltanolabs: NULL text[] and int[] elements",
        MELTANOLABS_ITEMS,
        ["id"],
        {
            "id": 1,
            "updated_at": "2024-01-01T00:00:01+00:00",
            "tags": ["a", None, "b c"],
            "scores": [1, None],
        },
    ),
    (
        "meltanolabs: nested jsonb with nulls, wide numerics",
        MELTANOLABS_ITEMS,
        ["id"],
        {
            "id": 2,
            "updated_at": None,
            "tags": [None, None],
            "doc": {"a": {"b": [1, None, {"c": "x"}]}, "n": None},
            "amount": D("12345678901234567890.123456789"),
        },
    ),
    (
        "2020-12: $defs refs with null nested values and extra fields",
        MODERN,
        ["id"],
        {
            "id": "o-1",
            "status": None,
            "total": None,
            "lines": [{"sku": None, "qty": None, "note": "extra"}, None],
            "customer": {"name": None, "tags": ["vip", None]},
            "extra_top_level_field": 1,
        },
    ),
    (
        "2020-12: missing required fields and a const violated by null",
        MODERN,
        ["id"],
        {"id": "o-2", "lines": [{"qty": 3}]},
    ),
]


@pytest.mark.parametrize(
    ("schema", "keys", "record"),
    [r[1:] for r in REAL_RECORDS],
    ids=[r[0] for r in REAL_RECORDS],
)
def test_real_records_fail_the_declared_schema_and_pass_the_adapted_one(
    schema: dict[str, t.Any],
    keys: list[str],
    record: dict[str, t.Any],
) -> None:
    assert errors(schema, record), "the tap's own schema should reject this record"
    assert errors(relaxed(schema, keys), record) == []


def test_singer_io_records_pass_with_exact_multiple_of() -> None:
    adapted = relaxed(SINGER_IO_ITEMS, ["id"])
    record = {
        "id": 7,
        "tags": ["a", None, ["nested", None]],
        "price": D("-2341.62"),
        "amount": D("12345678901234567890.123456789"),
    }
    assert errors(adapted, record) == []
    assert errors(adapted, {"id": 8, "price": D("0.001")})  # multipleOf 0.01 is kept
    assert errors(adapted, {"id": 8, "price": D("10000000000")})  # exclusiveMaximum kept
    assert errors(adapted, {"id": 8, "amount": D("1E-39")})  # multipleOf 1e-38 is kept


WRONG_TYPES: list[tuple[str, dict[str, t.Any], dict[str, t.Any]]] = [
    ("string in an integer column", MELTANOLABS_ITEMS, {"id": 1, "scores": ["one"]}),
    ("number in a text[] element", MELTANOLABS_ITEMS, {"id": 1, "tags": ["a", 3]}),
    ("object where a timestamp goes", MELTANOLABS_ITEMS, {"id": 1, "updated_at": {"t": 1}}),
    ("null key", MELTANOLABS_ITEMS, {"id": None}),
    ("missing key", MELTANOLABS_ITEMS, {"tags": []}),
    ("string key where an integer key goes", SINGER_IO_ITEMS, {"id": "7"}),
    ("integer out of the int4 range", SINGER_IO_ITEMS, {"id": 2147483648}),
    ("number in a nested $defs string", MODERN, {"id": "o", "lines": [{"sku": 5}]}),
    ("integer below a nested minimum", MODERN, {"id": "o", "lines": [{"sku": "a", "qty": 0}]}),
    ("const violated by another value", MODERN, {"id": "o", "status": "closed"}),
    ("numeric exclusiveMinimum translated", MODERN, {"id": "o", "total": 0}),
    ("tuple element of the wrong type", MODERN, {"id": "o", "point": ["x", 1]}),
    ("scalar where an array goes", MODERN, {"id": "o", "lines": "l-1"}),
]


@pytest.mark.parametrize(
    ("schema", "record"), [w[1:] for w in WRONG_TYPES], ids=[w[0] for w in WRONG_TYPES]
)
def test_records_with_wrong_types_still_fail(
    schema: dict[str, t.Any], record: dict[str, t.Any]
) -> None:
    keys = ["id"]
    assert errors(relaxed(schema, keys), record)


def test_output_is_json_and_independent_of_input_objects() -> None:
    adapted = relaxed(SINGER_IO_ITEMS, ["id"])
    assert json.loads(json.dumps(adapted)) == adapted
    again = relaxed(SINGER_IO_ITEMS, ["id"])
    assert again == adapted
    assert again is not adapted


def test_wide_schema_adapts_quickly() -> None:
    # A 2,000-column table with nested objects, arrays and refs: once per SCHEMA message.
    defs = {
        f"d{i}": {
            "type": "object",
            "properties": {"v": {"type": "string"}, "w": {"$ref": "#/$defs/leaf"}},
        }
        for i in range(50)
    }
    defs["leaf"] = {"type": "array", "items": {"type": "integer"}}
    properties = {
        f"c{i}": (
            {"$ref": f"#/$defs/d{i % 50}"}
            if i % 3 == 0
            else {
                "type": "object",
                "properties": {"a": {"type": "array", "items": {"type": "string"}}},
            }
        )
        for i in range(2000)
    }
    schema = {"type": "object", "properties": properties, "$defs": defs}
    started = time.perf_counter()
    adapted = adapt_schema(schema, ["c1"], RELAXED)
    elapsed = time.perf_counter() - started
    assert len(adapted["properties"]) == 2000
    assert elapsed < 1.0, f"adapt_schema took {elapsed:.3f}s for 2,000 columns"


# --- notes: what relaxed mode loosens beyond its routine rules, one text per field -----

#: A schema using every routine relaxation at once: none of it is worth a warning.
ROUTINE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://example.com/routine.json",
    "$comment": "routine",
    "type": "object",
    "required": ["id", "o"],
    "additionalProperties": False,
    "unevaluatedProperties": False,
    "properties": {
        "id": {"type": "integer", "description": "key", "examples": [1]},
        "o": {
            "type": "object",
            "nullable": True,
            "required": ["a"],
            "dependencies": {"a": ["b"]},
            "dependentRequired": {"a": ["b"]},
            "additionalProperties": False,
            "properties": {"a": {"const": 1, "deprecated": True}, "b": {"readOnly": True}},
        },
        "t": {"type": "array", "prefixItems": [{"type": "string"}], "items": False},
        "r": {"$ref": "#/$defs/tree"},
        "u": {"oneOf": [{"type": "integer"}, {"type": "number", "exclusiveMinimum": 0}]},
        "s": {"type": "string", "maxLength": 255.0, "contentMediaType": "text/plain"},
        "e": {"enum": [1, 1.0, "a"]},
        "b": True,
    },
    "$defs": {
        "tree": {
            "type": "object",
            "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/tree"}}},
        },
    },
}


@pytest.mark.parametrize("schema", [MELTANOLABS_ITEMS, SINGER_IO_ITEMS, MODERN, ROUTINE])
def test_routine_relaxations_make_no_notes(schema: dict[str, t.Any]) -> None:
    assert adapt_schema_with_notes(schema, ["id"], RELAXED).notes == ()


ANY = "it is sent as accepting any value"
LOOSER = "it is dropped, so values it refuses are accepted"

NOTES: list[tuple[str, dict[str, t.Any], list[str]]] = [
    (
        "unknown type",
        obj({"qty": {"type": "integr"}}),
        [f"field 'qty' has unknown type 'integr'; {ANY}"],
    ),
    (
        "unknown type next to null",
        obj({"n": {"type": ["null", "strng"]}}),
        [f"field 'n' has unknown type 'strng'; {ANY}"],
    ),
    (
        "unknown type next to a known one",
        obj({"x": {"type": ["string", "money"]}}),
        ["field 'x' has unknown type 'money'; it is dropped from its types"],
    ),
    (
        "unknown types, one not even a text",
        obj({"x": {"type": ["integr", 7, "integr"]}}),
        [f"field 'x' has unknown types 'integr', 7; {ANY}"],
    ),
    (
        "field paths through objects, arrays and maps",
        obj(
            {
                "a": {
                    "type": "object",
                    "properties": {
                        "b": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"c": {"type": "strng"}}},
                        },
                        "m": {"additionalProperties": {"type": "txt"}},
                    },
                },
            },
        ),
        [
            f"field 'a.b[].c' has unknown type 'strng'; {ANY}",
            f"field 'a.m.*' has unknown type 'txt'; {ANY}",
        ],
    ),
    (
        "not dropped",
        obj({"x": {"type": "string", "not": {"enum": ["a"]}}}),
        [f"field 'x' has 'not'; {LOOSER}"],
    ),
    (
        "if/then/else dropped",
        obj({"x": {"if": {"type": "string"}, "then": {"maxLength": 3}, "else": {"minimum": 0}}}),
        [
            (
                "field 'x' has 'if', 'then', 'else'; they are dropped, so values they refuse are "
                "accepted"
            )
        ],
    ),
    (
        "later drafts' constraints dropped",
        obj(
            {
                "d": {"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}},
                "c": {"type": "array", "contains": {"type": "string"}},
                "p": {"type": "object", "propertyNames": {"maxLength": 3}},
                "u": {"type": "object", "unevaluatedProperties": {"type": "string"}},
            },
        ),
        [
            f"field 'd' has 'dependentSchemas'; {LOOSER}",
            f"field 'c' has 'contains'; {LOOSER}",
            f"field 'p' has 'propertyNames'; {LOOSER}",
            f"field 'u' has 'unevaluatedProperties'; {LOOSER}",
        ],
    ),
    (
        "values Draft 4 refuses",
        obj(
            {
                "e": {"enum": []},
                "s": {"type": "string", "maxLength": -1, "minLength": 1.5},
                "n": {"type": "number", "multipleOf": 0, "minimum": "0"},
                "t": {"type": 7},
                "l": {"type": "array", "items": 5, "uniqueItems": "yes"},
                "o": {"type": "object", "properties": [], "additionalProperties": "no"},
                "a": {"anyOf": [], "allOf": {"type": "string"}},
            },
        ),
        [
            "field 'e' has 'enum': [], which is not valid Draft 4; it is dropped",
            (
                "field 's' has 'maxLength': -1, which is not valid Draft 4 (it is dropped) and "
                "'minLength': 1.5, which is not valid Draft 4 (it is dropped)"
            ),
            (
                "field 'n' has 'multipleOf': 0, which is not valid Draft 4 (it is dropped) and "
                "'minimum': '0', which is not valid Draft 4 (it is dropped)"
            ),
            "field 't' has 'type': 7, which is not valid Draft 4; it is dropped",
            (
                "field 'l' has 'items': 5, which is not valid Draft 4 (it is dropped) and "
                "'uniqueItems': 'yes', which is not valid Draft 4 (it is dropped)"
            ),
            (
                "field 'o' has 'properties': [], which is not valid Draft 4 (it is dropped) and "
                "'additionalProperties': 'no', which is not valid Draft 4 (it is dropped)"
            ),
            (
                "field 'a' has 'anyOf': [], which is not valid Draft 4 (it is dropped) and "
                '\'allOf\': {"type": "string"}, which is not valid Draft 4 (it is dropped)'
            ),
        ],
    ),
    (
        "patterns that are not regular expressions",
        obj({"s": {"pattern": "["}, "m": {"patternProperties": {"(": {"type": "string"}}}}),
        [
            "field 's' has pattern '[', not a regular expression; it is dropped",
            "field 'm' has patternProperties '(', not a regular expression; it is dropped",
        ],
    ),
    (
        "something else where a schema belongs",
        obj({"o": {"type": "object", "properties": {"p": 5, "q": "x"}}, "a": {"anyOf": [None]}}),
        [
            f"field 'o.p' has 5 where a schema belongs; {ANY}",
            f"field 'o.q' has 'x' where a schema belongs; {ANY}",
            f"field 'a' has null where a schema belongs; {ANY}",
        ],
    ),
    (
        "refs that resolve to nothing, or only to themselves",
        {
            "type": "object",
            "properties": {
                "m": {"$ref": "#/definitions/missing"},
                "r": {"$ref": "https://example.com/other.json#/x"},
                "l": {"$ref": "#/definitions/loop"},
                "k": {"anyOf": [{"type": "string"}, {"$ref": "#/definitions/knot"}]},
            },
            "definitions": {
                "loop": {"$ref": "#/definitions/loop"},
                "knot": {"anyOf": [{"type": "integer"}, {"$ref": "#/definitions/knot"}]},
            },
        },
        [
            f"field 'm' has $ref '#/definitions/missing', which names nothing in the schema; {ANY}",
            (
                "field 'r' has $ref 'https://example.com/other.json#/x' to another document, which "
                f"is never fetched; {ANY}"
            ),
            (
                "field 'l' has $ref '#/definitions/loop' in a loop of $refs that never reaches a "
                f"schema; {ANY}"
            ),
            (
                "field 'k' has $ref '#/definitions/knot' in a loop of $refs that never reaches a "
                f"schema; {ANY}"
            ),
        ],
    ),
    (
        "the top level",
        {"type": "object", "properties": {}, "not": {"required": ["x"]}},
        [f"the schema's top level has 'not'; {LOOSER}"],
    ),
    (
        "several problems of one field in one text; the same problem once",
        obj({"qty": {"anyOf": [{"type": "integr"}, {"type": "integr", "not": {}}]}}),
        [f"field 'qty' has unknown type 'integr' ({ANY}) and 'not' ({LOOSER})"],
    ),
    (
        "a definition used by two fields: a text for each",
        {
            "type": "object",
            "properties": {"a": {"$ref": "#/$defs/q"}, "b": {"$ref": "#/$defs/q"}},
            "$defs": {"q": {"type": "integr"}, "unused": {"type": "bogus"}},
        },
        [
            f"field 'a' has unknown type 'integr'; {ANY}",
            f"field 'b' has unknown type 'integr'; {ANY}",
        ],
    ),
]


@pytest.mark.parametrize(("schema", "expected"), [n[1:] for n in NOTES], ids=[n[0] for n in NOTES])
def test_notes(schema: dict[str, t.Any], expected: list[str]) -> None:
    assert warnings_of(schema) == expected
    relaxed(schema)  # and the schema sent is valid Draft 4


# --- strict: refused before anything is sent, one line each ---------------------------

FIX = "fix the tap's schema or use schema_mode=relaxed"

STRICT_REFUSALS: list[tuple[str, dict[str, t.Any], str]] = [
    (
        "unknown type",
        obj({"qty": {"type": "integr"}}),
        (
            f"field 'qty' has unknown type 'integr' (Stitch answers 'Invalid JSON schema: unknown "
            f"type'); {FIX}"
        ),
    ),
    (
        "unknown type in a list, nested",
        obj({"a": {"type": "array", "items": {"type": ["null", "strng"]}}}),
        (
            f"field 'a[]' has unknown type 'strng' (Stitch answers 'Invalid JSON schema: unknown "
            f"type'); {FIX}"
        ),
    ),
    (
        "unknown type at the top level",
        {"type": "objekt", "properties": {}},
        (
            "the schema's top level has unknown type 'objekt' (Stitch answers 'Invalid JSON "
            f"schema: unknown type'); {FIX}"
        ),
    ),
    (
        "a $ref loop",
        {
            "type": "object",
            "properties": {"x": {"$ref": "#/definitions/a"}},
            "definitions": {"a": {"$ref": "#/definitions/a"}},
        },
        (
            "field 'x' has a loop of $refs that never reaches a schema ($ref '#/definitions/a' at "
            f"#/definitions/a); {FIX}"
        ),
    ),
    (
        "a loop through allOf at the top",
        {"type": "object", "properties": {}, "allOf": [{"$ref": "#"}]},
        (
            "the schema's top level has a loop of $refs that never reaches a schema ($ref '#' at "
            f"#/allOf/0); {FIX}"
        ),
    ),
    (
        "a $ref to nothing",
        obj({"x": {"$ref": "#/definitions/missing"}}),
        f"field 'x' has $ref '#/definitions/missing', which names nothing in the schema; {FIX}",
    ),
    (
        "a remote $ref (never fetched)",
        obj({"x": {"$ref": "http://example.com/s.json"}}),
        (
            "field 'x' has $ref 'http://example.com/s.json' to another document, which is never "
            f"fetched; {FIX}"
        ),
    ),
    (
        "a $ref to something that is not a schema",
        obj({"x": {"$ref": "#/required"}}, required=["x"]),
        f"field 'x' has $ref '#/required', which names something that is not a schema; {FIX}",
    ),
    (
        "a pattern that is not a regular expression",
        obj({"s": {"type": "string", "pattern": "["}}),
        (
            "field 's' has pattern '[', which is not a regular expression (unterminated character "
            f"set at position 0); {FIX}"
        ),
    ),
    (
        "anything else the metaschema refuses, with where",
        obj({"o": {"type": "object", "properties": {"p": {"type": "array", "items": 5}}}}),
        (
            "field 'o.p' is not valid JSON Schema Draft 4 at #/properties/o/properties/p/items "
            f"(5 is not valid under any of the given schemas); {FIX}"
        ),
    ),
    (
        "the metaschema inside definitions: no field, a pointer",
        {"type": "object", "properties": {}, "definitions": {"d": {"maxLength": -1}}},
        (
            "the schema is not valid JSON Schema Draft 4 at "
            f"#/definitions/d/maxLength (-1 is less than the minimum of 0); {FIX}"
        ),
    ),
]


@pytest.mark.parametrize(
    ("schema", "expected"), [r[1:] for r in STRICT_REFUSALS], ids=[r[0] for r in STRICT_REFUSALS]
)
def test_strict_refusals(schema: dict[str, t.Any], expected: str) -> None:
    with pytest.raises(SchemaProblemError) as caught:
        adapt_schema(schema, [], SchemaMode.STRICT)
    assert str(caught.value) == expected
    assert str(caught.value.for_stream("orders")) == f"stream 'orders': {expected}"


STRICT_ACCEPTS: list[tuple[str, dict[str, t.Any]]] = [
    ("singer-io's recursive array", SINGER_IO_ITEMS),
    (
        "a tree: recursion that goes down into the data",
        {
            "type": "object",
            "properties": {"t": {"$ref": "#/definitions/n"}},
            "definitions": {
                "n": {
                    "type": "object",
                    "properties": {"kids": {"type": "array", "items": {"$ref": "#/definitions/n"}}},
                },
            },
        },
    ),
    (
        "a ref through an id anchor and the root's own id",
        {
            "id": "http://example.com/root.json",
            "type": "object",
            "properties": {
                "a": {"$ref": "#num"},
                "b": {"$ref": "http://example.com/root.json#/definitions/n"},
            },
            "definitions": {"n": {"id": "#num", "type": "number"}},
        },
    ),
]


@pytest.mark.parametrize(
    "schema", [a[1] for a in STRICT_ACCEPTS], ids=[a[0] for a in STRICT_ACCEPTS]
)
def test_strict_accepts(schema: dict[str, t.Any]) -> None:
    assert adapt_schema(schema, [], SchemaMode.STRICT) == schema


def test_json_document_columns_take_any_json_value() -> None:
    """pipelinewise declares json/jsonb as object-or-array; jsonb also holds scalars."""
    schema = {
        "type": "object",
        "properties": {
            "doc": {"type": ["null", "object", "array"]},
            "shaped": {"type": ["null", "object", "array"], "properties": {"a": {"type": "integer"}}},
            "obj": {"type": ["null", "object"]},
        },
    }
    out = relaxed(schema)
    assert out["properties"]["doc"] == {}
    validator = ExactDraft4Validator(out)
    for value in ("seven", 7, True, None, {"k": [1]}, [1, "a"]):
        assert validator.is_valid({"doc": value})
    assert not validator.is_valid({"shaped": "seven"})  # said something of its members
    assert not validator.is_valid({"obj": "seven"})
