"""The compiled Draft 4 checker gives jsonschema's verdicts (``target_stitch_import.draft4``).

Every table case is checked three ways: the expected verdict, the jsonschema validator's
verdict and the compiled checker's. The property test draws random Draft 4 schemas (every
keyword the compiler models, nested up to three deep, with local and recursive ``$ref``) and
random JSON-like values (Decimals included) and requires the two verdicts to agree. Set
``DRAFT4_EXAMPLES`` to run more examples than the suite does.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import fractions
import os
import subprocess
import sys
import typing as t

import jsonschema
import pytest
import referencing.exceptions
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema._utils import uniq

from target_stitch_import.draft4 import (
    _APPLIED,
    _TYPE_CLASSES,
    ExactDraft4Validator,
    check_schema,
    compile_draft4,
    draft4_validator,
)

D = decimal.Decimal
EXAMPLES = int(os.environ.get("DRAFT4_EXAMPLES", "300"))

# (schema, [(instance, valid), ...]) per keyword.
CASES: dict[str, tuple[dict[str, t.Any], list[tuple[object, bool]]]] = {
    "type-integer": (
        {"type": "integer"},
        [
            (1, True),
            (-(2**80), True),
            (True, False),
            (1.0, False),
            (D("1"), False),
            (D("1.0"), False),
            (None, False),
            ("1", False),
        ],
    ),
    "type-number": (
        {"type": "number"},
        [
            (1, True),
            (1.5, True),
            (D("-2341.62"), True),
            (True, False),
            ("1", False),
            (fractions.Fraction(1, 3), True),
            (complex(1, 2), True),
        ],
    ),
    "type-boolean": ({"type": "boolean"}, [(True, True), (False, True), (0, False)]),
    "type-null": ({"type": "null"}, [(None, True), (0, False), ("", False), (False, False)]),
    "type-string": (
        {"type": "string"},
        [("", True), ("x", True), (b"x", False), (dt.date(2026, 1, 1), False)],
    ),
    "type-object": (
        {"type": "object"},
        [({}, True), (collections.OrderedDict(a=1), True), ([], False), ("{}", False)],
    ),
    "type-array": ({"type": "array"}, [([], True), ((), False), ({}, False)]),
    "type-list": (
        {"type": ["null", "string"]},
        [
            (None, True),
            ("a", True),
            (1, False),
            (dt.datetime(2026, 1, 1), False),
            (dt.time(1, 2), False),
        ],
    ),
    "type-integer-or-boolean": (
        {"type": ["integer", "boolean"]},
        [(True, True), (3, True), (D("3"), False), (3.0, False)],
    ),
    "properties": (
        {"properties": {"a": {"type": "integer"}, "b/c": {"type": "string"}}},
        [
            ({"a": 1}, True),
            ({"a": "x"}, False),
            ({}, True),
            ("not an object", True),
            ({"b/c": 1}, False),
            ({"z": "anything"}, True),
            (collections.OrderedDict(a="x"), False),
        ],
    ),
    "pattern-properties": (
        {"patternProperties": {"^x": {"type": "string"}, "y$": {"minimum": 0}}},
        [
            ({"xa": 1}, False),
            ({"ax": 1}, True),
            ({"xy": "s"}, True),
            ({"ay": -1}, False),
            ({"xy": -1}, False),
        ],
    ),
    "additional-properties-false": (
        {"properties": {"a": {}}, "additionalProperties": False},
        [({"a": 1}, True), ({"b": 1}, False), ({}, True), ([1], True)],
    ),
    "additional-properties-with-patterns": (
        {
            "properties": {"a": {}},
            "patternProperties": {"^b": {}, "c$": {"type": "null"}},
            "additionalProperties": False,
        },
        [({"a": 1, "b1": 2}, True), ({"d": 1}, False), ({"xc": None}, True), ({"xc": 1}, False)],
    ),
    "additional-properties-schema": (
        {"properties": {"a": {}}, "additionalProperties": {"type": "integer"}},
        [({"a": "x", "c": 1}, True), ({"c": "x"}, False), ({"c": True}, False)],
    ),
    # jsonschema joins the patterns into one regex: an empty pattern covers nothing there.
    "additional-properties-empty-pattern": (
        {"patternProperties": {"": {}}, "additionalProperties": False},
        [({"a": 1}, False), ({}, True)],
    ),
    "required": (
        {"required": ["a", "b"]},
        [({"a": None, "b": 0}, True), ({"a": 1}, False), ({}, False), ([], True)],
    ),
    "required-with-properties": (
        {"properties": {"a": {"type": "string"}}, "required": ["a"]},
        [({"a": "x"}, True), ({}, False), ({"a": 1}, False)],
    ),
    "min-max-properties": (
        {"minProperties": 1, "maxProperties": 2},
        [({}, False), ({"a": 1}, True), ({"a": 1, "b": 2, "c": 3}, False), ("abc", True)],
    ),
    "dependencies": (
        {"dependencies": {"a": ["b"], "c": {"required": ["d"], "minProperties": 3}}},
        [
            ({"a": 1}, False),
            ({"a": 1, "b": 2}, True),
            ({"b": 1}, True),
            ({"c": 1, "d": 2}, False),
            ({"c": 1, "d": 2, "e": 3}, True),
            ("a", True),
        ],
    ),
    "items-schema": (
        {"items": {"type": "integer"}},
        [([1, 2], True), ([1, "x"], False), ([], True), ((1, "x"), True), ("x", True)],
    ),
    "items-tuple": (
        {"items": [{"type": "integer"}, {"type": "string"}]},
        [([1, "a"], True), ([1], True), (["a"], False), ([1, "a", None], True)],
    ),
    "additional-items-false": (
        {"items": [{"type": "integer"}], "additionalItems": False},
        [([1], True), ([1, 2], False), ([], True)],
    ),
    "additional-items-schema": (
        {"items": [{}, {}], "additionalItems": {"type": "null"}},
        [([1, 2, None, None], True), ([1, 2, 3], False), ([1], True)],
    ),
    # Draft 4: additionalItems only counts after an items array.
    "additional-items-without-items": (
        {"additionalItems": False},
        [([1, 2], True)],
    ),
    "additional-items-after-items-schema": (
        {"items": {}, "additionalItems": False},
        [([1, 2], True)],
    ),
    "min-max-items": (
        {"minItems": 1, "maxItems": 2},
        [([], False), ([1], True), ([1, 2, 3], False), ({}, True)],
    ),
    "unique-items": (
        {"uniqueItems": True},
        [
            ([1, True], True),
            ([0, False], True),
            ([1, 1], False),
            ([1, D("1.0")], False),
            ([1, 1.0], False),
            ([{"a": 1}, {"a": 1}], False),
            ([{"a": 1}, {"a": True}], True),
            ([[1], [True]], True),
            (["1", 1], True),
            ([None, None], False),
            ("aa", True),
        ],
    ),
    "unique-items-false": ({"uniqueItems": False}, [([1, 1], True)]),
    "enum": (
        {"enum": [1, "a", None, [1, {"a": True}]]},
        [
            (1, True),
            (D("1.0"), True),
            (1.0, True),
            (True, False),
            ("a", True),
            ("b", False),
            (None, True),
            ([1, {"a": True}], True),
            ([True, {"a": True}], False),
            ([1, {"a": 1}], False),
            ({"a": 1}, False),
        ],
    ),
    "enum-false-is-not-zero": ({"enum": [False]}, [(False, True), (0, False), (D(0), False)]),
    "minimum": (
        {"minimum": 0},
        [
            (0, True),
            (-1, False),
            (D("-0.0000001"), False),
            (D("-0"), True),
            ("x", True),
            (True, True),
        ],
    ),
    "exclusive-minimum": (
        {"minimum": 0, "exclusiveMinimum": True},
        [(0, False), (D("0.00"), False), (D("1E-30"), True), (0.0, False)],
    ),
    "maximum": ({"maximum": D("10.5")}, [(D("10.5"), True), (10.51, False), (10, True)]),
    "exclusive-maximum": (
        {"maximum": 10, "exclusiveMaximum": True},
        [(10, False), (D("9.999999999999999999999999999"), True), (D("10.000"), False)],
    ),
    # Decimals compare with float bounds exactly: 0.1 is 0.1000000000000000055511...
    "maximum-float-exact": (
        {"maximum": 0.1},
        [(D("0.1"), True), (D("0.10000000000000001"), False), (0.1, True)],
    ),
    "multiple-of-cents": (
        {"multipleOf": D("0.01")},
        [
            (D("-2341.62"), True),
            (D("-2341.625"), False),
            (5, True),
            (D("1E+3"), True),
            (D("Infinity"), False),
            (True, True),
            ("x", True),
            (0.07, True),
        ],
    ),
    "multiple-of-float-cents": (
        {"multipleOf": 0.01},
        [(D("-2341.62"), True), (D("0.001"), False), (19.99, True)],
    ),
    "multiple-of-1e-38": (
        {"multipleOf": D("1E-38")},
        [
            (D("12345678901234567890.123456789"), True),
            (D("1E-39"), False),
            (D("1234567890123456789012345678901234567890.1"), True),
            (10**40, True),
        ],
    ),
    "multiple-of-float-1e-38": (
        {"multipleOf": 1e-38},
        [(D("12345678901234567890.123456789"), True), (D("1E-39"), False)],
    ),
    "multiple-of-integer": (
        {"multipleOf": 2},
        [
            (4, True),
            (3, False),
            (D("4.0"), True),
            (4.5, False),
            (2**100, True),
            (fractions.Fraction(4, 1), True),
            (fractions.Fraction(1, 2), False),
        ],
    ),
    "multiple-of-half": ({"multipleOf": D("0.5")}, [(1.5, True), (D("-7.5"), True), (0.2, False)]),
    "min-length-code-points": (
        {"minLength": 2},
        [("é", False), ("😀😀", True), ("ab", True), (["a"], True)],
    ),
    "max-length-code-points": ({"maxLength": 1}, [("😀", True), ("ab", False), ("", True)]),
    "pattern-searches": (
        {"pattern": "b"},
        [("abc", True), ("xyz", False), (1, True)],
    ),
    "pattern-anchored": ({"pattern": "^a"}, [("ab", True), ("ba", False)]),
    "all-of": (
        {"allOf": [{"type": "integer"}, {"minimum": 2}]},
        [(2, True), (1, False), (2.5, False)],
    ),
    "any-of": (
        {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 2}]},
        [(None, True), ("ab", True), ("abc", False), (1, False)],
    ),
    "one-of": (
        {"oneOf": [{"type": "integer"}, {"minimum": 0}]},
        [(1, False), (-1, True), (D("0.5"), True), ("x", True), (D("-0.5"), False)],
    ),
    "not": ({"not": {"type": "string"}}, [(1, True), ("a", False), (None, True)]),
    "ref-definitions": (
        {
            "definitions": {"positive": {"type": "number", "minimum": 0}},
            "properties": {"a": {"$ref": "#/definitions/positive"}},
        },
        [({"a": 1}, True), ({"a": -1}, False), ({"a": "x"}, False)],
    ),
    "ref-siblings-ignored": (
        {
            "definitions": {"s": {"type": "string"}},
            "properties": {"a": {"$ref": "#/definitions/s", "maxLength": 1, "type": "null"}},
        },
        [({"a": "long"}, True), ({"a": None}, False)],
    ),
    "ref-escaped-pointers": (
        {
            "definitions": {"a/b": {"type": "integer"}, "c~d": {"type": "string"}},
            "properties": {
                "x": {"$ref": "#/definitions/a~1b"},
                "y": {"$ref": "#/definitions/c~0d"},
                "z": {"$ref": "#/allOf/1"},
            },
            "allOf": [{}, {"type": "null"}],
        },
        [
            ({"x": 1, "y": "s"}, False),
            ({"x": 1, "y": "s", "z": None}, False),
            (None, True),
            ({"x": "1"}, False),
            ({"y": 1}, False),
        ],
    ),
    "ref-percent-encoded": (
        {"definitions": {"e f": {"type": "null"}}, "items": {"$ref": "#/definitions/e%20f"}},
        [([None], True), ([1], False)],
    ),
    "ref-recursive": (
        {
            "type": "object",
            "required": ["v"],
            "properties": {"v": {"type": "integer"}, "child": {"$ref": "#"}},
        },
        [
            ({"v": 1, "child": {"v": 2, "child": {"v": 3}}}, True),
            ({"v": 1, "child": {"v": 2, "child": {"v": "3"}}}, False),
            ({"v": 1, "child": {"child": {"v": 3}}}, False),
        ],
    ),
    "ref-mutually-recursive": (
        {
            "definitions": {
                "tree": {"type": "object", "properties": {"kids": {"$ref": "#/definitions/kids"}}},
                "kids": {"type": "array", "items": {"$ref": "#/definitions/tree"}},
            },
            "$ref": "#/definitions/tree",
        },
        [({"kids": [{"kids": []}, {}]}, True), ({"kids": [{"kids": [1]}]}, False)],
    ),
    "format-not-checked": (
        {"format": "date-time", "properties": {"e": {"format": "email"}}},
        [("not a date", True), ({"e": "not an email"}, True)],
    ),
    "annotations-ignored": (
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "title": "t",
            "description": "d",
            "default": 5,
            "x-vendor": {"type": "string"},
            "definitions": {"unused": {"type": "string"}},
            "type": "integer",
        },
        [(5, True), ("5", False)],
    ),
    "relaxed-record": (
        {
            "type": "object",
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": ["null", "string"]},
                "amount": {"type": ["null", "number"], "multipleOf": D("0.01")},
                "updated_at": {"type": ["null", "string"], "format": "date-time"},
            },
            "required": ["id"],
        },
        [
            ({"id": 1, "name": None, "amount": D("-2341.62"), "updated_at": "x"}, True),
            ({"id": 1, "amount": D("0.001")}, False),
            ({"name": "x"}, False),
            ({"id": 1, "updated_at": dt.datetime(2026, 1, 1)}, False),
        ],
    ),
}

TABLE = [
    pytest.param(schema, instance, valid, id=f"{name}-{index}")
    for name, (schema, checks) in CASES.items()
    for index, (instance, valid) in enumerate(checks)
]


@pytest.mark.parametrize(("schema", "instance", "valid"), TABLE)
def test_verdicts(schema: dict[str, t.Any], instance: object, valid: bool) -> None:
    checker = compile_draft4(schema)
    assert checker.compiled
    assert draft4_validator(schema).is_valid(instance) is valid
    assert checker.is_valid(instance) is valid
    assert (checker.first_error(instance) is None) is valid


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, 2**70, 0.0, 1.0, D("1"), D("1.0"), D("-2.5"), "x", {"a": 1}, [1]],
)
def test_json_classes_are_typed_as_jsonschema_types_them(value: object) -> None:
    for name, classes in _TYPE_CLASSES.items():
        assert (type(value) in classes) is ExactDraft4Validator.TYPE_CHECKER.is_type(value, name)


def test_the_keywords_applied_are_those_of_jsonschemas_draft4_validator() -> None:
    assert frozenset(ExactDraft4Validator.VALIDATORS) - {"$ref"} == _APPLIED


def test_compiling_and_verdicts_need_no_jsonschema() -> None:
    """A record worker compiles flat and nested schemas and gives verdicts without it."""
    code = (
        "import sys\n"
        "from target_stitch_import.draft4 import compile_draft4\n"
        "schema = {'type': 'object', 'properties': {'id': {'type': 'integer', 'minimum': 0},\n"
        "    'n': {'type': ['null', 'string'], 'maxLength': 3},\n"
        "    'x': {'type': 'object', 'properties': {'p': {'type': 'number', 'multipleOf': 0.01}},\n"
        "          'additionalProperties': False}}, 'required': ['id']}\n"
        "checker = compile_draft4(schema, check=False)\n"
        "assert checker.compiled\n"
        "assert checker.is_valid({'id': 1, 'n': 'abc', 'x': {'p': 1.25}})\n"
        "assert not checker.is_valid({'id': -1})\n"
        "assert not checker.is_valid({'id': 1, 'x': {'q': 1}})\n"
        "assert 'jsonschema' not in sys.modules, 'jsonschema was imported'\n"
        "assert checker.first_error({'id': -1}) is not None\n"
        "assert 'jsonschema' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


# Schemas the compiler leaves to jsonschema, with verdicts that must still be right.
FALLBACKS: dict[str, tuple[dict[str, t.Any], list[tuple[object, bool]]]] = {
    "id": ({"id": "http://example.com/s.json", "type": "string"}, [("x", True), (1, False)]),
    "nested-id": (
        {"properties": {"a": {"id": "a.json", "type": "string"}}},
        [({"a": "x"}, True), ({"a": 1}, False)],
    ),
    "remote-ref-to-metaschema": (
        {"$ref": "http://json-schema.org/draft-04/schema#"},
        [({"type": "string"}, True), ({"type": 5}, False)],
    ),
    "ref-through-object-with-id-key": (
        {"definitions": {"id": {"type": "integer"}}, "items": {"$ref": "#/definitions/id"}},
        [([1], True), (["x"], False)],
    ),
}


@pytest.mark.parametrize(
    ("schema", "instance", "valid"),
    [
        pytest.param(schema, instance, valid, id=f"{name}-{index}")
        for name, (schema, checks) in FALLBACKS.items()
        for index, (instance, valid) in enumerate(checks)
    ],
)
def test_fallback_verdicts(schema: dict[str, t.Any], instance: object, valid: bool) -> None:
    checker = compile_draft4(schema)
    assert not checker.compiled
    assert checker.is_valid(instance) is valid
    assert (checker.first_error(instance) is None) is valid


def test_unresolvable_ref_raises_as_jsonschema_does() -> None:
    checker = compile_draft4({"properties": {"a": {"$ref": "#/definitions/missing"}}})
    assert not checker.compiled
    assert checker.is_valid({"b": 1})
    with pytest.raises(referencing.exceptions.Unresolvable):
        checker.is_valid({"a": 1})


def test_endless_ref_raises_recursion_error_as_jsonschema_does() -> None:
    checker = compile_draft4({"allOf": [{"$ref": "#"}]})
    assert checker.compiled
    with pytest.raises(RecursionError):
        checker.validator.is_valid(1)
    with pytest.raises(RecursionError):
        checker.is_valid(1)


def test_value_the_fast_path_cannot_compare_goes_to_jsonschema() -> None:
    checker = compile_draft4({"minimum": 0})
    assert checker.compiled
    with pytest.raises(TypeError):  # jsonschema's own verdict: complex numbers do not order
        checker.is_valid(complex(1, 1))


def test_invalid_schema_is_refused_unless_unchecked() -> None:
    with pytest.raises(jsonschema.SchemaError):
        compile_draft4({"type": "text"})
    checker = compile_draft4({"minLength": -1, "type": "string"}, check=False)
    assert checker.is_valid("") is draft4_validator({"minLength": -1}, check=False).is_valid("")


def test_first_error_is_jsonschemas_best_match() -> None:
    schema = CASES["relaxed-record"][0]
    record = {"id": "1", "amount": D("0.001")}
    error = compile_draft4(schema).first_error(record)
    expected = jsonschema.exceptions.best_match(draft4_validator(schema).iter_errors(record))
    assert error is not None
    assert expected is not None
    assert (error.message, list(error.absolute_path)) == (
        expected.message,
        list(expected.absolute_path),
    )


# The property test: random schemas against random values.

NAMES = ("a", "b", "c")
KEYS = (*NAMES, "ab", "ba", "x")
STRINGS = ("", "a", "b", "ab", "ba", "aab", "é", "😀x", "2026-01-01T00:00:00Z")
DECIMALS = tuple(
    D(text)
    for text in (
        "0",
        "-0.0",
        "1.0",
        "2",
        "0.5",
        "0.01",
        "-2341.62",
        "-2341.625",
        "1E-38",
        "1E+2",
        "12345678901234567890.123456789",
    )
)
PATTERNS = ("^a", "b", "^a$", "", "a|b", "^(a+)+$", "[0-9]")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.sampled_from((2**64, -(2**70), 10**40)),
    st.sampled_from(DECIMALS),
    st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-100, max_value=100),
    st.sampled_from((0.5, 1.0, -2.25, 0.1)),
    st.sampled_from(STRINGS),
)
exotic = st.sampled_from((dt.datetime(2026, 1, 1), dt.date(2026, 1, 1), (1, 2)))
values = st.recursive(
    st.one_of(scalars, exotic),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from(DECIMALS[:5])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2),
        st.dictionaries(st.sampled_from(NAMES), inner, max_size=2),
    ),
    max_leaves=4,
)
TYPES = ("array", "boolean", "integer", "null", "number", "object", "string")
counts = st.integers(0, 3)
bounds = st.one_of(st.integers(-2, 3), st.sampled_from((*DECIMALS[:9], 0.1, 2.5)))
multiples = st.sampled_from((D("0.01"), D("0.5"), D("1E-38"), 2, 3, 0.01, 0.5, 1e-38))
name_lists = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True)
KEYWORDS = (
    "type",
    "enum",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "multipleOf",
    "properties",
    "patternProperties",
    "additionalProperties",
    "required",
    "minProperties",
    "maxProperties",
    "dependencies",
    "items",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "format",
    "$ref",
)


LEAVES: dict[str, st.SearchStrategy[t.Any]] = {
    "type": st.one_of(
        st.sampled_from(TYPES),
        st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True),
    ),
    "enum": st.lists(json_values, min_size=1, max_size=4).filter(uniq),
    "minLength": counts,
    "maxLength": counts,
    "pattern": st.sampled_from(PATTERNS),
    "minimum": bounds,
    "maximum": bounds,
    "multipleOf": multiples,
    "required": name_lists,
    "minProperties": counts,
    "maxProperties": counts,
    "minItems": counts,
    "maxItems": counts,
    "uniqueItems": st.booleans(),
    "format": st.sampled_from(("date-time", "email", "ipv4")),
}


def _compound(
    same: st.SearchStrategy[dict[str, t.Any]],
    inner: st.SearchStrategy[dict[str, t.Any]],
) -> dict[str, st.SearchStrategy[t.Any]]:
    """Keywords holding subschemas: ``same`` applies to the value, ``inner`` to a part."""
    return {
        "allOf": st.lists(same, min_size=1, max_size=3),
        "anyOf": st.lists(same, min_size=1, max_size=3),
        "oneOf": st.lists(same, min_size=1, max_size=3),
        "not": same,
        "properties": st.dictionaries(st.sampled_from(NAMES), inner, max_size=3),
        "patternProperties": st.dictionaries(st.sampled_from(PATTERNS), inner, max_size=2),
        "additionalProperties": st.one_of(st.booleans(), inner),
        "dependencies": st.dictionaries(
            st.sampled_from(NAMES),
            st.one_of(name_lists, same),
            max_size=2,
        ),
        "items": st.one_of(inner, st.lists(inner, min_size=1, max_size=3)),
        "additionalItems": st.one_of(st.booleans(), inner),
    }


@st.composite
def schemas(draw: st.DrawFn, depth: int, *, shrunk: bool, refs: bool) -> dict[str, t.Any]:
    """A Draft 4 schema; ``shrunk``: under a keyword that descends into the value.

    ``$ref`` to the definitions (``refs``) may appear anywhere; ``$ref: "#"`` only where
    the value has shrunk, so that validation always ends.
    """
    choices = dict(LEAVES)
    if depth:
        same = schemas(depth - 1, shrunk=shrunk, refs=refs)
        choices.update(_compound(same, schemas(depth - 1, shrunk=True, refs=refs)))
    targets = [*(["#/definitions/d0", "#/definitions/d1"] if refs else []), *(["#"] * shrunk)]
    if targets:
        choices["$ref"] = st.sampled_from(targets)
    keywords = draw(st.lists(st.sampled_from(KEYWORDS), max_size=4, unique=True))
    schema = {keyword: draw(choices[keyword]) for keyword in keywords if keyword in choices}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if bound in schema and draw(st.booleans()):
            schema[exclusive] = draw(st.booleans())
    return schema


@st.composite
def root_schemas(draw: st.DrawFn) -> dict[str, t.Any]:
    """A schema up to three deep, with two definitions it may refer to."""
    depth = draw(st.integers(0, 3))
    schema = draw(schemas(depth, shrunk=False, refs=True))
    definitions = st.fixed_dictionaries(
        {"d0": schemas(1, shrunk=False, refs=False), "d1": schemas(2, shrunk=False, refs=False)},
    )
    schema.setdefault("definitions", draw(definitions))
    return schema


def _outcome(is_valid: t.Callable[[object], bool], value: object) -> object:
    try:
        return is_valid(value)
    except RecursionError:
        return RecursionError


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(schema=root_schemas(), instances=st.lists(values, min_size=1, max_size=6))
def test_random_schemas_agree_with_jsonschema(
    schema: dict[str, t.Any],
    instances: list[object],
) -> None:
    check_schema(schema)
    checker = compile_draft4(schema)
    assert checker.compiled
    reference = draft4_validator(schema, check=False)
    for instance in instances:
        assert _outcome(checker.is_valid, instance) == _outcome(reference.is_valid, instance)
