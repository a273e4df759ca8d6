"""Request validation: every rejection text, checked on the pure validator and over real HTTP."""

from __future__ import annotations

import decimal
import json
import typing as t

import pytest
import requests

from target_stitch_import.contract import BATCH_PATH, MAX_SEQUENCE, VALIDATE_PATH
from target_stitch_import.emulator.validation import Answer, Batch, BatchValidator, Message

if t.TYPE_CHECKING:
    from conftest import Emulator

JSON = "application/json"
SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["null", "string"]},
        "n": {"type": "number", "minimum": 1},
        "address": {"type": "object", "properties": {"zip": {"type": "string"}}},
    },
}
_ABSENT = object()


def upsert(sequence: object, data: object) -> dict[str, object]:
    """An upsert message."""
    return {"action": "upsert", "sequence": sequence, "data": data}


def body(*messages: object, **fields: object) -> dict[str, object]:
    """A batch body for table ``t`` keyed on ``id``; ``field=_ABSENT`` leaves a field out."""
    document: dict[str, object] = {
        "table_name": "t",
        "schema": SCHEMA,
        "messages": list(messages) or [upsert(1, {"id": 1})],
        "key_names": ["id"],
    }
    document.update(fields)
    return {key: value for key, value in document.items() if value is not _ABSENT}


def records(count: int) -> list[dict[str, object]]:
    """``count`` valid upserts."""
    return [upsert(i, {"id": i}) for i in range(count)]


def _v(text: str) -> str:
    return f"Request failed validation:{text}"


REJECTED: list[tuple[str, object, str]] = [
    ("not-json", b"{nope", "Request failed validation: body is not valid JSON"),
    ("empty-body", b"", "Request failed validation: body is not valid JSON"),
    ("nan", b'{"table_name": NaN}', "Request failed validation: body is not valid JSON"),
    ("not-utf8", b'{"table_name": "\xff"}', "Request failed validation: body is not valid JSON"),
    ("array", [], _v("#: expected type: JSONObject, found: JSONArray")),
    ("string", "x", _v("#: expected type: JSONObject, found: String")),
    ("no-table", body(table_name=_ABSENT), _v("#: required key [table_name] not found")),
    ("no-schema", body(schema=_ABSENT), _v("#: required key [schema] not found")),
    ("no-messages", body(messages=_ABSENT), _v("#: required key [messages] not found")),
    ("extraneous", body(x=1), _v("#: extraneous key [x] is not permitted")),
    ("table-int", body(table_name=5), _v("#/table_name: expected type: String, found: Integer")),
    ("table-empty", body(table_name=""), _v("#/table_name: expected minLength: 1, actual: 0")),
    (
        "table-reserved",
        body(table_name="_emulator_batches"),
        _v(
            "#/table_name: _emulator_batches is reserved: table names starting with "
            "_emulator_ or sqlite_ are not permitted",
        ),
    ),
    (
        "table-sqlite",
        body(table_name="SQLite_master"),
        _v(
            "#/table_name: SQLite_master is reserved: table names starting with "
            "_emulator_ or sqlite_ are not permitted",
        ),
    ),
    ("schema-array", body(schema=[]), _v("#/schema: expected type: JSONObject, found: JSONArray")),
    (
        "messages-object",
        body(messages={}),
        _v("#/messages: expected type: JSONArray, found: JSONObject"),
    ),
    ("messages-0", body(messages=[]), _v("#/messages: expected minimum item count: 1, found: 0")),
    (
        "messages-20001",
        body(*records(20_001)),
        _v("#/messages: expected maximum item count: 20000, found: 20001"),
    ),
    (
        "message-string",
        body(upsert(1, {"id": 1}), "x"),
        _v("#/messages/1: expected type: JSONObject, found: String"),
    ),
    (
        "no-data",
        body(*records(3), {"action": "upsert", "sequence": 3}),
        _v("#/messages/3: required key [data] not found"),
    ),
    (
        "no-action",
        body({"sequence": 3, "data": {}}),
        _v("#/messages/0: required key [action] not found"),
    ),
    (
        "no-sequence",
        body({"action": "upsert", "data": {}}),
        _v("#/messages/0: required key [sequence] not found"),
    ),
    (
        "message-extraneous",
        body(*records(3), {**upsert(3, {"id": 3}), "x": 1}),
        _v("#/messages/3: extraneous key [x] is not permitted"),
    ),
    (
        "action-enum",
        body(*records(3), {**upsert(3, {"id": 3}), "action": "foo"}),
        _v("#/messages/3/action: foo is not a valid enum value"),
    ),
    (
        "action-type",
        body({**upsert(3, {"id": 3}), "action": 1}),
        _v("#/messages/0/action: expected type: String, found: Integer"),
    ),
    (
        "sequence-string",
        body(*records(3), upsert("3", {"id": 3})),
        _v("#/messages/3/sequence: expected type: Integer, found: String"),
    ),
    (
        "sequence-bool",
        body(upsert(True, {"id": 3})),
        _v("#/messages/0/sequence: expected type: Integer, found: Boolean"),
    ),
    (
        "sequence-float",
        (
            b'{"table_name": "t", "schema": {"properties": {}}, "messages": '
            b'[{"action": "upsert", "sequence": 1.0, "data": {}}]}'
        ),
        _v("#/messages/0/sequence: expected type: Integer, found: Number"),
    ),
    (
        "sequence-negative",
        body(*records(3), upsert(-1, {"id": 3})),
        _v("#/messages/3/sequence: -1 is not greater or equal to 0"),
    ),
    (
        "sequence-2**63",
        body(upsert(MAX_SEQUENCE + 1, {"id": 3})),
        "Request failed validation:#: sequence can not be above 9223372036854775807",
    ),
    (
        "data-array",
        body(upsert(1, [])),
        _v("#/messages/0/data: expected type: JSONObject, found: JSONArray"),
    ),
    (
        "activate-data",
        body({"action": "activate_version", "sequence": 1, "data": {}}, table_version=1),
        _v("#/messages/0: extraneous key [data] is not permitted"),
    ),
    (
        "activate-no-version",
        body({"action": "activate_version", "sequence": 1}),
        _v("#: required key [table_version] not found"),
    ),
    (
        "keys-string",
        body(key_names="id"),
        _v("#/key_names: expected type: JSONArray, found: String"),
    ),
    ("keys-int", body(key_names=[1]), _v("#/key_names/0: expected type: String, found: Integer")),
    (
        "keys-not-in-schema",
        body(key_names=["nope"]),
        _v("#/key_names: key property nope is not a property of the schema"),
    ),
    (
        "version-string",
        body(table_version="1"),
        _v("#/table_version: expected type: Integer, found: String"),
    ),
    (
        "version-negative",
        body(table_version=-1),
        _v("#/table_version: -1 is not greater or equal to 0"),
    ),
    (
        "version-2**63",
        body(table_version=MAX_SEQUENCE + 1),
        _v("#/table_version: 9223372036854775808 is not less or equal to 9223372036854775807"),
    ),
    (
        "bookmarks-int",
        body(bookmark_names=[1]),
        _v("#/bookmark_names/0: expected type: String, found: Integer"),
    ),
    (
        "schema-unknown-type",
        body(schema={"properties": {"d": {"type": "date"}}}, key_names=[]),
        "Invalid JSON schema: unknown type: [date]",
    ),
    (
        "schema-unknown-type-nested",
        body(
            schema={
                "properties": {
                    "type": {"type": "string"},
                    "a": {"type": "array", "items": {"anyOf": [{"type": ["null", "datetime"]}]}},
                },
            },
            key_names=[],
        ),
        "Invalid JSON schema: unknown type: [datetime]",
    ),
    (
        "schema-metaschema",
        body(schema={"properties": {"n": {"minimum": "x"}}}, key_names=[]),
        "Invalid JSON schema: #/properties/n/minimum: 'x' is not of type 'number'",
    ),
    (
        "schema-pattern-properties",
        body(schema={"properties": {}, "patternProperties": {"(": {}}}, key_names=[]),
        (
            "Invalid JSON schema: patternProperties: ( is not a 'regex': missing ), unterminated "
            "subpattern at position 0"
        ),
    ),
    (
        "schema-no-properties",
        body(schema={"type": "object"}, key_names=[]),
        "Invalid JSON schema: required key [properties] not found",
    ),
    (
        "schema-unresolvable-ref",
        body(
            upsert(1, {"a": 1}),
            schema={"properties": {"a": {"$ref": "#/definitions/missing"}}},
            key_names=[],
        ),
        "Invalid JSON schema: $ref /definitions/missing can not be resolved",
    ),
    (
        "data-points",
        body(upsert(1, {"id": 1, "list": list(range(10_000))})),
        "Record 0 has 10001 data points, more than the maximum of 10000",
    ),
    (
        "missing-key",
        body(*records(2), upsert(2, {"name": "x"})),
        "Record is missing key property id",
    ),
    ("null-key", body(upsert(2, {"id": None})), "Record is missing key property id"),
    (
        "nested-key",
        body(upsert(2, {"id": {"a": 1}}), schema={"properties": {"id": {}}}),
        "Record 0 key property id must be a scalar, found: JSONObject",
    ),
    (
        "long-key",
        body(*records(5), upsert(5, {"id": "x" * 256}), schema={"properties": {"id": {}}}),
        "Record 5 key property id is 256 characters or longer",
    ),
    (
        "type",
        body(upsert(1, {"id": "1"})),
        "Record 0 did not conform to schema: #/id: expected: Integer, found: String",
    ),
    (
        "type-decimal-integer",
        (
            b'{"table_name": "t", "schema": {"properties": {"id": {"type": "integer"}}}, '
            b'"messages": [{"action": "upsert", "sequence": 1, "data": {"id": 1.5}}]}'
        ),
        "Record 0 did not conform to schema: #/id: expected: Integer, found: Number",
    ),
    (
        "type-bool-integer",
        body(upsert(1, {"id": 1}), upsert(2, {"id": True})),
        "Record 1 did not conform to schema: #/id: expected: Integer, found: Boolean",
    ),
    (
        "type-union",
        body(upsert(1, {"id": 1, "name": 5})),
        "Record 0 did not conform to schema: #/name: expected: Null or String, found: Integer",
    ),
    (
        "type-nested",
        body(upsert(1, {"id": 1, "address": {"zip": 12345}})),
        "Record 0 did not conform to schema: #/address/zip: expected: String, found: Integer",
    ),
    (
        "minimum",
        (
            b'{"table_name": "t", "schema": {"properties": {"n": {"minimum": 1}}}, "messages": '
            b'[{"action": "upsert", "sequence": 1, "data": {"n": 2}}, '
            b'{"action": "upsert", "sequence": 2, "data": {"n": 0.5}}]}'
        ),
        "Record 1 did not conform to schema: #/n: 0.5 is less than the minimum of 1",
    ),
    (
        "multiple-of",
        (
            b'{"table_name": "t", "schema": {"properties": {"p": {"multipleOf": 0.01}}}, '
            b'"messages": [{"action": "upsert", "sequence": 1, "data": {"p": 0.015}}]}'
        ),
        "Record 0 did not conform to schema: #/p: 0.015 is not a multiple of 0.01",
    ),
    (
        "first-failing-record",
        body(*records(2), upsert(2, {"id": "a"}), upsert(3, {"id": 3}), upsert(4, {"id": "b"})),
        "Record 2 did not conform to schema: #/id: expected: Integer, found: String",
    ),
    (
        "nested-too-deep-json",
        b"[" * 100_000 + b"]" * 100_000,
        "Request failed validation: body is nested too deeply",
    ),
    (
        "nested-too-deep-record",
        json.dumps(body(upsert(1, {"id": 1, "x": json.loads("[" * 150 + "]" * 150)}))).encode(),
        "Record 0 is nested 151 levels deep, more than the maximum of 100",
    ),
    (
        "lone-surrogate",
        b'{"table_name": "t\\ud800", "schema": {"properties": {}}, "messages": []}',
        "Request failed validation: body contains a lone UTF-16 surrogate (not Unicode)",
    ),
    (
        "nul-property",
        body(upsert(1, {"id": 1, "a\x00b": 1})),
        "Record 0 has a property name containing the NUL character",
    ),
]

ACCEPTED: list[tuple[str, object]] = [
    ("one-message", body()),
    ("20000-messages", body(*records(20_000))),
    ("sequence-max", body(upsert(MAX_SEQUENCE, {"id": 1}))),
    ("no-keys", body(upsert(1, {"name": "x"}), key_names=[])),
    ("keys-absent", body(upsert(1, {"name": "x"}), key_names=_ABSENT)),
    ("data-points-10000", body(upsert(1, {"id": 1, "list": list(range(9_999))}))),
    ("key-255", body(upsert(1, {"id": "x" * 255}), schema={"properties": {"id": {}}})),
    (
        "activate",
        body(upsert(1, {"id": 1}), {"action": "activate_version", "sequence": 2}, table_version=3),
    ),
    ("all-fields", body(table_version=0, bookmark_names=["id"])),
    (
        "multiple-of-exact",
        (
            b'{"table_name": "t", "schema": {"properties": {'
            b'"p": {"type": "number", "multipleOf": 0.01}, "q": {"multipleOf": 0.1}, '
            b'"r": {"multipleOf": 1E-38}}}, "messages": [{"action": "upsert", "sequence": 1, '
            b'"data": {"p": -2341.62, "q": 0.3, "r": 12345678901234567890.123456789}}]}'
        ),
    ),
    (
        "formats-not-checked",
        body(
            upsert(1, {"id": 1, "when": "not a date"}),
            schema={"properties": {"id": {}, "when": {"type": "string", "format": "date-time"}}},
        ),
    ),
    ("unicode", body(upsert(1, {"id": 1, "name": "Zoë 🎉 客户"}), table_name="Kunden ü 客户")),
]


def encode(document: object) -> bytes:
    """The request body for a case (bytes are sent as they are)."""
    return document if isinstance(document, bytes) else json.dumps(document).encode()


@pytest.fixture(scope="module")
def validator() -> BatchValidator:
    """One validator for the module (its schema cache is shared, as in the server)."""
    return BatchValidator()


@pytest.mark.parametrize(
    ("document", "text"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED]
)
def test_validator_rejects(validator: BatchValidator, document: object, text: str) -> None:
    assert validator.validate(encode(document), JSON) == Answer(400, {"error": text})


@pytest.mark.parametrize("document", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_validator_accepts(validator: BatchValidator, document: object) -> None:
    assert isinstance(validator.validate(encode(document), JSON), Batch)


@pytest.mark.parametrize(
    ("document", "text"),
    [c[1:] for c in REJECTED],
    ids=[c[0] for c in REJECTED],
)
def test_http_rejects(shared_emulator: Emulator, document: object, text: str) -> None:
    for path in (BATCH_PATH, VALIDATE_PATH):
        response = requests.post(
            shared_emulator.url + path,
            data=encode(document),
            headers={"Authorization": "Bearer test-token", "Content-Type": JSON},
            timeout=30,
        )
        assert (response.status_code, response.json()) == (400, {"error": text})
        assert response.headers["Content-Type"] == JSON


@pytest.mark.parametrize(("name", "document"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_http_accepts(shared_emulator: Emulator, name: str, document: object) -> None:
    headers = {"Authorization": "Bearer test-token", "Content-Type": JSON}
    # One table per case: the cases differ in key names.
    data = encode(document).replace(b'"table_name": "t"', f'"table_name": "{name}"'.encode())
    url = shared_emulator.url
    validate = requests.post(url + VALIDATE_PATH, data=data, headers=headers, timeout=30)
    assert (validate.status_code, validate.json()) == (
        200,
        {"status": "OK", "message": "Batch is valid!"},
    )
    batch = requests.post(url + BATCH_PATH, data=data, headers=headers, timeout=30)
    assert (batch.status_code, batch.json()) == (
        201,
        {"status": "OK", "message": "Batch Accepted!"},
    )


def test_parsed_batch_keeps_exact_numbers(validator: BatchValidator) -> None:
    raw = (
        b'{"table_name": "t", "schema": {"properties": {"p": {}}}, "key_names": [], '
        b'"table_version": 7, "bookmark_names": ["p"], "messages": [{"action": "upsert", '
        b'"sequence": 9223372036854775807, "data": {"p": 12345678901234567890.123456789}}]}'
    )
    batch = validator.validate(raw, "application/json; charset=utf-8")
    assert batch == Batch(
        table_name="t",
        schema={"properties": {"p": {}}},
        messages=(
            Message(
                "upsert", MAX_SEQUENCE, {"p": decimal.Decimal("12345678901234567890.123456789")}
            ),
        ),
        key_names=(),
        table_version=7,
        bookmark_names=("p",),
    )
    assert isinstance(batch, Batch)
    assert (
        str(t.cast("dict[str, t.Any]", batch.messages[0].data)["p"])
        == "12345678901234567890.123456789"
    )


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/jsonx", "multipart/form-data"]
)
def test_validator_refuses_other_content_types(
    validator: BatchValidator, content_type: str | None
) -> None:
    expected = Answer(415, {"error": "Content-Type must be application/json"})
    assert validator.validate(encode(body()), content_type) == expected


def test_schema_validators_are_cached() -> None:
    validator = BatchValidator(cache_size=2)
    properties = t.cast("dict[str, object]", SCHEMA["properties"])
    reordered = {"properties": dict(reversed(properties.items())), "type": "object"}
    for schema in (SCHEMA, reordered, SCHEMA):
        assert isinstance(validator.validate(encode(body(schema=schema)), JSON), Batch)
    assert validator.cached_schemas == 1
    for number in range(3):
        other: dict[str, object] = {"properties": {"id": {}, f"p{number}": {}}}
        assert isinstance(validator.validate(encode(body(schema=other)), JSON), Batch)
    assert validator.cached_schemas == 2
