"""Unit tests of :mod:`target_stitch_import.schema` (``adapt_schema``), table-driven.

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
from target_stitch_import.schema import DRAFT4_TYPES, SchemaMode, adapt_schema

D = decimal.Decimal
RELAXED = SchemaMode.RELAXED


def relaxed(schema: dict[str, t.Any], keys: t.Sequence[str] = ()) -> dict[str, t.Any]:
    """``adapt_schema`` in relaxed mode, checked to be valid Draft 4."""
    adapted = adapt_schema(schema, keys, RELAXED)
    jsonschema.Draft4Validator.check_schema(adapted)
    return adapted


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


@pytest.mark.parametrize("schema", ALL_SCHEMAS)
@pytest.mark.parametrize("mode", list(SchemaMode))
def test_input_is_never_mutated(schema: dict[str, t.Any], mode: SchemaMode) -> None:
    before = copy.deepcopy(schema)
    adapted = adapt_schema(schema, ["id"], mode)
    assert schema == before
    adapted.setdefault("properties", {})["new"] = {}
    assert schema == before  # no structure shared with the input


@pytest.mark.parametrize("schema", ALL_SCHEMAS)
def test_strict_is_an_equal_copy(schema: dict[str, t.Any]) -> None:
    adapted = adapt_schema(schema, ["id"], SchemaMode.STRICT)
    assert adapted == schema
    assert adapted is not schema


def test_mode_may_be_given_as_text() -> None:
    assert adapt_schema(MODERN, [], "strict") == MODERN
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
