"""Hostile schemas: too deep, $ref loops and chains, odd shapes. One line, never a traceback.

Unit tests of the pure checks in :mod:`target_stitch_import.schema` (and that the checker of
:mod:`target_stitch_import.draft4` stays inside the recursion limit at the depth limit),
then the installed command run as a user would (a dry run: nothing goes over the network).
"""

from __future__ import annotations

import copy
import json
import time
import typing as t

import jsonschema
import pytest
from targetrun import ERROR_PREFIX, record, run_target, schema

from target_stitch_import.draft4 import compile_draft4
from target_stitch_import.schema import (
    MAX_SCHEMA_DEPTH,
    MAX_SUBSCHEMAS,
    SchemaMode,
    SchemaProblemError,
    adapt_schema,
    adapt_schema_with_notes,
    check_nesting,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

RELAXED, STRICT = SchemaMode.RELAXED, SchemaMode.STRICT
TOO_DEEP = f"the schema is nested deeper than {MAX_SCHEMA_DEPTH} levels at "
FIX = "fix the tap's schema or use schema_mode=relaxed"


def nested(levels: int, wrap: Callable[[dict[str, t.Any]], dict[str, t.Any]]) -> dict[str, t.Any]:
    """``levels`` times ``wrap`` around a string schema, under top-level field ``d``."""
    inner: dict[str, t.Any] = {"type": "string"}
    for _ in range(levels):
        inner = wrap(inner)
    return {"type": "object", "properties": {"d": inner}}


def objects(inner: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"type": "object", "properties": {"x": inner}}


#: One nesting step of each kind, and the JSON levels it adds.
SHAPES: dict[str, tuple[Callable[[dict[str, t.Any]], dict[str, t.Any]], int]] = {
    "properties": (objects, 2),
    "items": (lambda s: {"type": "array", "items": s}, 1),
    "tuple items": (lambda s: {"type": "array", "items": [s]}, 2),
    "additionalProperties": (lambda s: {"type": "object", "additionalProperties": s}, 1),
    "anyOf": (lambda s: {"anyOf": [s, {"type": "null"}]}, 2),
    "allOf": (lambda s: {"allOf": [s]}, 2),
    "not": (lambda s: {"not": s}, 1),
    "dependencies": (lambda s: {"dependencies": {"a": s}}, 2),
}


def at_limit(shape: str) -> dict[str, t.Any]:
    """The deepest schema of ``shape`` within the limit (``properties/d`` takes 2 levels)."""
    wrap, levels = SHAPES[shape]
    return nested((MAX_SCHEMA_DEPTH - 2) // levels, wrap)


def with_frames_used(frames: int, run: Callable[[], object]) -> object:
    """Call ``run`` ``frames`` Python frames deeper (the target calls from ~40 deep)."""
    if frames:
        return with_frames_used(frames - 1, run)
    return run()


def deep_value(levels: int) -> object:
    """A JSON value nested ``levels`` arrays deep, built without recursion."""
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


# --- the depth limit -----------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_one_level_more_than_the_limit_is_refused_naming_where(shape: str) -> None:
    wrap, levels = SHAPES[shape]
    deep = nested(MAX_SCHEMA_DEPTH // levels + 1, wrap)
    for mode in SchemaMode:
        with pytest.raises(SchemaProblemError, match="^" + TOO_DEEP + "#/properties/d/"):
            adapt_schema(deep, [], mode)


def test_the_message_names_the_stream_the_place_and_what_to_do() -> None:
    with pytest.raises(SchemaProblemError) as caught:
        adapt_schema(nested(250, objects), [], RELAXED)
    assert str(caught.value.for_stream("s")) == (
        f"stream 's': {TOO_DEEP}#/properties/d/properties/x/properties/x/properties/x/...; "
        "Stitch's destinations cannot load data nested that deep: simplify the tap's schema "
        'there (for example declare that field as {"type": "object"} without properties)'
    )


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("a default value", {"properties": {"a": {"default": deep_value(120)}}}),
        ("an enum value", {"properties": {"a": {"enum": [deep_value(120)]}}}),
        ("a vendor keyword", {"properties": {"a": {"x-meta": deep_value(120)}}}),
        ("far past any recursion limit", {"properties": {"a": {"x": deep_value(50_000)}}}),
    ],
)
def test_deep_values_inside_a_schema_are_refused_too(name: str, document: dict[str, t.Any]) -> None:
    _ = name
    with pytest.raises(SchemaProblemError, match="^" + TOO_DEEP + "#/properties/a/"):
        check_nesting(document)
    for mode in SchemaMode:
        with pytest.raises(SchemaProblemError):
            adapt_schema(document, [], mode)


@pytest.mark.parametrize("shape", list(SHAPES))
def test_at_the_limit_every_step_stays_inside_the_recursion_limit(shape: str) -> None:
    document = at_limit(shape)
    check_nesting(document)
    copy.deepcopy(document)  # what the SDK does with every SCHEMA

    def pipeline() -> None:
        adapted = adapt_schema(document, [], RELAXED)
        for sent in (adapted, document):
            checker = compile_draft4(sent, check=False)
            jsonschema.Draft4Validator.check_schema(sent)
            for value in ({"d": None}, {"d": 5}, {"d": {"x": [1]}}, {"d": [[["x"]]]}):
                checker.is_valid(value)
                checker.first_error(value)
        adapt_schema(document, [], STRICT)

    with_frames_used(120, pipeline)


def test_records_as_deep_as_the_schema_allows_are_checked() -> None:
    document = at_limit("properties")
    value: object = "leaf"
    for _ in range((MAX_SCHEMA_DEPTH - 2) // 2):
        value = {"x": value}
    wrong = json.loads(json.dumps(value).replace('"leaf"', "5"))
    for mode in SchemaMode:
        checker = compile_draft4(adapt_schema(document, [], mode))

        def check(checker: t.Any = checker) -> None:
            assert checker.is_valid({"d": value})
            assert checker.first_error({"d": wrong}) is not None

        with_frames_used(120, check)


# --- $ref chains, loops and expansion --------------------------------------------------


def ref_chain(links: int, fan: int = 1) -> dict[str, t.Any]:
    """A schema whose field ``x`` goes through ``links`` definitions, each used ``fan`` times."""
    definitions: dict[str, t.Any] = {
        f"d{i}": {
            "type": "object",
            "properties": {f"p{j}": {"$ref": f"#/definitions/d{i + 1}"} for j in range(fan)},
        }
        for i in range(links)
    }
    definitions[f"d{links}"] = {"type": "string"}
    return {
        "type": "object",
        "properties": {"x": {"$ref": "#/definitions/d0"}},
        "definitions": definitions,
    }


@pytest.mark.parametrize("mode", list(SchemaMode))
def test_a_short_ref_chain_is_fine(mode: SchemaMode) -> None:
    adapt_schema(ref_chain(20), [], mode)


@pytest.mark.parametrize(
    ("mode", "where"),
    [
        (RELAXED, "#/properties/x/properties/p0/properties/p0/properties/p0/..."),
        (STRICT, "#/definitions/d24/properties/p0"),
    ],
)
def test_a_ref_chain_nesting_past_the_limit_is_refused(mode: SchemaMode, where: str) -> None:
    with pytest.raises(SchemaProblemError) as caught:
        adapt_schema(ref_chain(80), [], mode)
    assert str(caught.value).startswith(f"{TOO_DEEP}{where} once its $refs are followed; ")


def test_refs_that_multiply_are_refused_in_relaxed_mode_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(SchemaProblemError, match=f"grows past {MAX_SUBSCHEMAS:,} subschemas"):
        adapt_schema(ref_chain(17, fan=2), [], RELAXED)  # 2**17 copies of the last one
    assert time.perf_counter() - started < 5


def test_refs_that_multiply_are_sent_as_they_are_in_strict_mode() -> None:
    document = ref_chain(17, fan=2)
    started = time.perf_counter()
    assert adapt_schema(document, [], STRICT) == document
    checker = compile_draft4(document)
    assert checker.is_valid({"x": {"p0": {"p1": {}}}})
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(
    ("name", "loop"),
    [
        ("itself", {"a": {"$ref": "#/definitions/a"}}),
        ("a pair", {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}),
        ("through anyOf", {"a": {"anyOf": [{"type": "string"}, {"$ref": "#/definitions/a"}]}}),
        ("through not", {"a": {"not": {"$ref": "#/definitions/a"}}}),
        ("through dependencies", {"a": {"dependencies": {"k": {"$ref": "#/definitions/a"}}}}),
    ],
)
def test_ref_loops(name: str, loop: dict[str, t.Any]) -> None:
    _ = name
    document = {
        "type": "object",
        "properties": {"x": {"$ref": "#/definitions/a"}},
        "definitions": loop,
    }
    with pytest.raises(SchemaProblemError, match=r"^field 'x' has a loop of \$refs that never"):
        adapt_schema(document, [], STRICT)
    adapted = adapt_schema_with_notes(document, [], RELAXED)
    jsonschema.Draft4Validator.check_schema(adapted.schema)
    compile_draft4(adapted.schema).is_valid({"x": {"k": 1}})  # ends
    if name != "through not":  # relaxed mode drops ``not`` before it could loop
        assert any("in a loop of $refs" in note.found for note in adapted.notes)


# --- odd shapes: a note (relaxed) or one line (strict), never anything else ------------

KEYWORDS = [
    *("type", "enum", "const", "properties", "patternProperties", "additionalProperties"),
    *("items", "additionalItems", "prefixItems", "allOf", "anyOf", "oneOf", "not"),
    *("dependencies", "required", "minimum", "maximum", "exclusiveMinimum"),
    *("exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "format"),
    *("minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties", "$ref"),
    *("definitions", "$defs", "if", "then", "else", "contains", "propertyNames"),
    *("dependentSchemas", "unevaluatedProperties", "title", "default", "id", "$id"),
]
ODD_VALUES: list[object] = [5, -1, 1.5, "x", "[", None, True, [], {}, [5], ["x"], {"a": 5}]


@pytest.mark.parametrize("keyword", KEYWORDS)
def test_odd_values_in_every_keyword(keyword: str) -> None:
    for value in ODD_VALUES:
        document = {"type": "object", "properties": {"f": {keyword: value}, "g": value}}
        adapted = adapt_schema(document, [], RELAXED)
        jsonschema.Draft4Validator.check_schema(adapted)
        checker = compile_draft4(adapted)
        for instance in ({"f": 1, "g": "x"}, {"f": {"a": [1]}}, {"f": None}):
            checker.first_error(instance)
        refusal = ""
        try:
            strict = adapt_schema(document, [], STRICT)
        except SchemaProblemError as problem:
            refusal = str(problem)
        else:
            checker = compile_draft4(strict)
            for instance in ({"f": 1, "g": "x"}, {"f": {"a": [1]}}, {"f": None}):
                checker.first_error(instance)
        assert not refusal or refusal.endswith(FIX), refusal


# --- end to end: the installed command ----------------------------------------------


def dry_run(tmp_path: Path, **settings: t.Any) -> dict[str, t.Any]:
    """A config that writes bodies under ``tmp_path/out`` instead of sending them."""
    return {
        "token": "t",
        "api_url": "http://127.0.0.1:9",
        "dry_run_dir": str(tmp_path / "out"),
        **settings,
    }


def bodies(tmp_path: Path) -> list[Path]:
    out = tmp_path / "out"
    return sorted(out.iterdir()) if out.exists() else []


def deep_schema_message(levels: int) -> str:
    """A SCHEMA line nested ``levels`` objects deep under ``d`` (text: json cannot nest 1,000)."""
    inner = '{"type":"object","properties":{"x":' * levels + '{"type":"string"}' + "}}" * levels
    return (
        '{"type":"SCHEMA","stream":"deep","key_properties":[],'
        f'"schema":{{"type":"object","properties":{{"d":{inner}}}}}}}'
    )


DEEP_LINE = (
    f"stream 'deep': {TOO_DEEP}#/properties/d/properties/x/properties/x/properties/x/...; "
    "Stitch's destinations cannot load data nested that deep"
)


def assert_one_line(result: t.Any, text: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    line = result.last_error_line  # also asserts there is exactly one
    assert line.startswith(ERROR_PREFIX)
    assert text in line, line


@pytest.mark.parametrize(("mode", "validate"), [("relaxed", True), ("strict", False)])
def test_too_deep_schema_ends_in_one_line(tmp_path: Path, mode: str, validate: bool) -> None:
    messages: list[dict[str, t.Any] | str] = [deep_schema_message(60), record("deep", {"d": None})]
    result = run_target(
        dry_run(tmp_path, schema_mode=mode, validate_records=validate), messages, tmp_path
    )
    assert_one_line(result, DEEP_LINE)
    assert bodies(tmp_path) == []


def test_far_too_deep_schema_ends_in_one_line_naming_the_stream(tmp_path: Path) -> None:
    messages: list[dict[str, t.Any] | str] = [deep_schema_message(250), record("deep", {"d": None})]
    result = run_target(dry_run(tmp_path), messages, tmp_path)
    assert_one_line(result, DEEP_LINE)


STRICT_CASES = {
    "ref loop": (
        {"x": {"$ref": "#/definitions/a"}},
        {"definitions": {"a": {"$ref": "#/definitions/a"}}},
        (
            "stream 'orders': field 'x' has a loop of $refs that never reaches a schema ($ref "
            f"'#/definitions/a' at #/definitions/a); {FIX}"
        ),
    ),
    "missing ref": (
        {"x": {"$ref": "#/definitions/missing"}},
        {},
        (
            "stream 'orders': field 'x' has $ref '#/definitions/missing', which names nothing in "
            f"the schema; {FIX}"
        ),
    ),
    "remote ref": (
        {"x": {"$ref": "http://example.com/s.json"}},
        {},
        (
            "stream 'orders': field 'x' has $ref 'http://example.com/s.json' to another document, "
            f"which is never fetched; {FIX}"
        ),
    ),
    "unknown type": (
        {"qty": {"type": "integr"}},
        {},
        (
            "stream 'orders': field 'qty' has unknown type 'integr' (Stitch answers 'Invalid JSON "
            f"schema: unknown type'); {FIX}"
        ),
    ),
}


@pytest.mark.parametrize("validate", [True, False])
@pytest.mark.parametrize("case", list(STRICT_CASES))
def test_strict_refuses_before_anything_is_sent(tmp_path: Path, case: str, validate: bool) -> None:
    properties, extra, expected = STRICT_CASES[case]
    message = schema("orders", {"id": {"type": "integer"}, **properties}, keys=["id"])
    message["schema"].update(extra)
    records = [record("orders", {"id": 1, "x": 1, "qty": 1})]
    config = dry_run(tmp_path, schema_mode="strict", validate_records=validate)
    result = run_target(config, [message, *records], tmp_path)
    assert_one_line(result, expected)
    assert bodies(tmp_path) == []


RELAXED_SCHEMA = {
    "id": {"type": "integer"},
    "qty": {"type": "integr"},
    "note": {"type": ["null", "strng"], "not": {"const": ""}},
    "x": {"$ref": "#/definitions/missing"},
    "lines": {"type": "array", "items": 5},
    "fine": {"type": "string", "description": "routine", "examples": ["a"]},
}


def warnings(stderr: str) -> list[str]:
    return [
        line.split(" | ", 3)[-1] for line in stderr.splitlines() if "schema_mode=relaxed" in line
    ]


def test_relaxed_warns_once_per_stream_and_field(tmp_path: Path) -> None:
    first = schema("orders", RELAXED_SCHEMA, keys=["id"])
    changed = schema("orders", {**RELAXED_SCHEMA, "more": {"type": "string"}}, keys=["id"])
    other = schema("refunds", {"id": {"type": "integer"}, "qty": {"type": "integr"}}, ["id"])
    rows = [record("orders", {"id": i, "qty": "7", "note": 3, "lines": [1]}) for i in range(3)]
    messages = [
        first,
        *rows,
        first,  # repeated as is
        record("orders", {"id": 4, "qty": 4.5}),
        changed,  # a new sink for the stream
        record("orders", {"id": 5}),
        other,
        record("refunds", {"id": 1, "qty": "x"}),
    ]
    result = run_target(dry_run(tmp_path), messages, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    any_value = "it is sent as accepting any value (schema_mode=relaxed)"
    assert sorted(warnings(result.stderr)) == sorted(
        [
            f"Stream 'orders': field 'qty' has unknown type 'integr'; {any_value}",
            (
                "Stream 'orders': field 'note' has unknown type 'strng' (it is sent as accepting "
                "any value) and 'not' (it is dropped, so values it refuses are accepted) "
                "(schema_mode=relaxed)"
            ),
            (
                "Stream 'orders': field 'x' has $ref '#/definitions/missing', which names nothing "
                f"in the schema; {any_value}"
            ),
            (
                "Stream 'orders': field 'lines' has 'items': 5, which is not valid Draft 4; it is "
                "dropped (schema_mode=relaxed)"
            ),
            f"Stream 'refunds': field 'qty' has unknown type 'integr'; {any_value}",
        ],
    )
    sent = [json.loads(path.read_bytes()) for path in bodies(tmp_path)]
    assert sum(len(body["messages"]) for body in sent) == 6
    assert all(body["schema"]["properties"]["qty"] == {} for body in sent)


def test_routine_relaxations_warn_nothing(tmp_path: Path) -> None:
    properties = {
        "id": {"type": "integer"},
        "o": {
            "type": "object",
            "required": ["a"],
            "additionalProperties": False,
            "properties": {"a": {"const": 1}},
        },
        "n": {"type": "number", "exclusiveMinimum": 0, "examples": [1]},
    }
    message = schema("orders", properties, keys=["id"])
    message["schema"]["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    result = run_target(
        dry_run(tmp_path), [message, record("orders", {"id": 1, "o": {"a": None}})], tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert warnings(result.stderr) == []
