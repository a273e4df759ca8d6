"""Validation of Import API request bodies, exactly as the emulator answers them.

Pure: :meth:`BatchValidator.validate` takes the raw body bytes and the request's
``Content-Type`` and returns either a parsed :class:`Batch` or an :class:`Answer` (the HTTP
status and JSON body of the refusal). Nothing here does I/O or reads a clock.

Texts follow Stitch's (everit-style) messages from ``shared/import-api.md``; where Stitch
documents none, the same style is used. Checks run in this order and the first failure is
reported: the body is JSON; the envelope (required, extraneous and mistyped keys, each
message, sequences, ``table_version``); the schema (known types, the Draft 4 metaschema, a
``properties`` object, ``key_names`` among its properties); then each record in turn (an
object, at most 10,000 data points, nesting depth, key properties present, non-null, scalar
and shorter than 256 characters, property names usable as columns, conformance to the
schema as JSON Schema Draft 4 with formats not checked). Numbers are parsed as
:class:`~decimal.Decimal`, so validation and storage see the exact digits sent; the shared
:mod:`target_stitch_import.draft4` validator checks ``multipleOf`` exactly.

Every request costs a bounded effort: the schema is at most :data:`MAX_SCHEMA_DEPTH` levels
deep, numbers are compared by digits and exponent (never written out), and the patterns of
one request may compile and search for :data:`PATTERN_BUDGET_SECONDS` in all (twice: once
for the schema, once for the records). Whatever the client sent
wrong is answered with a 400 naming it.
"""

from __future__ import annotations

import collections
import decimal
import json
import re
import threading
import typing as t
from dataclasses import dataclass

import jsonschema
import referencing.exceptions
import simplejson

from target_stitch_import.contract import (
    MAX_DATA_POINTS,
    MAX_MESSAGES,
    MAX_RECORD_DEPTH,
    MAX_SEQUENCE,
    MAX_STRING_KEY_LENGTH,
    record_shape,
)
from target_stitch_import.draft4 import (
    Draft4Checker,
    PatternBudgetError,
    check_schema,
    compile_draft4,
    error_pointer,
    pattern_budget,
    pattern_problem,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

#: Table names starting with these (compared case-insensitively) are refused.
RESERVED_TABLE_PREFIXES = ("_emulator_", "sqlite_")
#: Compiled schemas kept for reuse (batches of one table repeat their schema).
SCHEMA_CACHE_SIZE = 64
#: Deepest nesting of objects and arrays in a schema (a record nests at most 100 levels;
#: ``properties`` takes two per level).
MAX_SCHEMA_DEPTH = 256
#: Seconds the ``pattern`` and ``patternProperties`` of one request may take to compile, and
#: then to search the records, in all.
PATTERN_BUDGET_SECONDS = 2.0

UPSERT = "upsert"
ACTIVATE_VERSION = "activate_version"

_PREFIX = "Request failed validation:"
_TOP_LEVEL_REQUIRED = ("table_name", "schema", "messages")
_TOP_LEVEL_ALLOWED = frozenset(
    (*_TOP_LEVEL_REQUIRED, "key_names", "table_version", "bookmark_names"),
)
_DRAFT4_TYPES = frozenset(("array", "boolean", "integer", "null", "number", "object", "string"))
_EVERIT_TYPE_NAMES = {
    "string": "String",
    "integer": "Integer",
    "number": "Number",
    "boolean": "Boolean",
    "object": "JSONObject",
    "array": "JSONArray",
    "null": "Null",
}
_MESSAGE_LIMIT = 500
_DECIMAL_REPR = re.compile(r"Decimal\('([^']*)'\)")
# Keywords whose values are subschemas, lists of subschemas or maps of subschemas.
_SUBSCHEMA_KEYWORDS = ("items", "additionalItems", "additionalProperties", "not")
_SUBSCHEMA_LIST_KEYWORDS = ("items", "allOf", "anyOf", "oneOf")
_SUBSCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "definitions", "dependencies")


class Answer(t.NamedTuple):
    """An HTTP answer: the status and the JSON body (validation returns its refusals so)."""

    status: int
    body: dict[str, t.Any]


@dataclass(frozen=True)
class Message:
    """One message of a batch.

    Attributes:
        action: ``upsert`` or ``activate_version``.
        sequence: The message's sequence (0 .. 2**63-1).
        data: The record of an upsert; None for ``activate_version``.
    """

    action: str
    sequence: int
    data: dict[str, t.Any] | None


@dataclass(frozen=True)
class Batch:
    """A request body that passed validation.

    Attributes:
        table_name: The destination table.
        schema: The JSON Schema the records conform to.
        messages: The messages, in the order sent.
        key_names: The primary key's property names (empty: append-only table).
        table_version: The batch's table version, or None.
        bookmark_names: The informational bookmark property names.
    """

    table_name: str
    schema: dict[str, t.Any]
    messages: tuple[Message, ...]
    key_names: tuple[str, ...]
    table_version: int | None
    bookmark_names: tuple[str, ...]


def bad_request(text: str) -> Answer:
    """Return the 400 rejection carrying ``text`` as Stitch's ``error``."""
    return Answer(400, {"error": text})


def content_type_rejection(content_type: str | None) -> Answer | None:
    """Return the 415 rejection unless the media type is ``application/json``.

    Parameters such as ``; charset=utf-8`` are allowed.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        return None
    return Answer(415, {"error": "Content-Type must be application/json"})


def everit_type(value: object) -> str:  # noqa: PLR0911 - one answer per JSON type
    """Return the everit name of a parsed JSON value's type (``String``, ``JSONObject``...)."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, (decimal.Decimal, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, dict):
        return "JSONObject"
    return "JSONArray"


class NumberError(ValueError):
    """A JSON number the emulator can not hold."""


def parse_json(body: bytes) -> object:
    """Parse JSON with exact numbers (:class:`~decimal.Decimal`); ``NaN``/``Infinity`` refused.

    Raises:
        NumberError: A number Python can not hold (an exponent beyond 10**18, an integer of
            more than 4,300 digits).
        ValueError: The bytes are not JSON (or not UTF-8).
        RecursionError: The JSON is nested too deeply to parse.
    """
    try:
        return json.loads(body, parse_float=decimal.Decimal, parse_constant=_refuse_constant)
    except decimal.InvalidOperation:  # an exponent beyond what Decimal holds
        msg = "a number is out of range (an exponent beyond 10**18)"
        raise NumberError(msg) from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's limit on integer digits
            msg = "an integer has more digits than Python converts (4300 by default)"
            raise NumberError(msg) from None
        raise


def _refuse_constant(name: str) -> t.NoReturn:
    msg = f"{name} is not a JSON number"
    raise ValueError(msg)


def canonical_json(value: object) -> str:
    """Return compact JSON text with sorted keys; Decimals are written digit for digit."""
    text: str = simplejson.dumps(
        value,
        use_decimal=True,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return text


class _InvalidError(Exception):
    """Internal: carries the first failure out of nested checks."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _reject(text: str) -> t.NoReturn:
    raise _InvalidError(text)


def _fail(pointer: str, text: str) -> t.NoReturn:
    _reject(f"{_PREFIX}{pointer}: {text}")


def _expect_type(pointer: str, value: object, expected: str) -> None:
    found = everit_type(value)
    if found != expected:
        _fail(pointer, f"expected type: {expected}, found: {found}")


def _check_keys(
    pointer: str,
    value: Mapping[str, object],
    required: t.Sequence[str],
    allowed: t.Collection[str],
) -> None:
    for key in required:
        if key not in value:
            _fail(pointer, f"required key [{key}] not found")
    for key in value:
        if key not in allowed:
            _fail(pointer, f"extraneous key [{key}] is not permitted")


def _check_name_list(pointer: str, value: object) -> tuple[str, ...]:
    _expect_type(pointer, value, "JSONArray")
    for index, item in enumerate(t.cast("list[object]", value)):
        _expect_type(f"{pointer}/{index}", item, "String")
    return tuple(t.cast("list[str]", value))


def _check_non_negative_int(pointer: str, value: object) -> int:
    _expect_type(pointer, value, "Integer")
    number = t.cast("int", value)
    if number < 0:
        _fail(pointer, f"{number} is not greater or equal to 0")
    return number


def _parse_messages(raw: object) -> tuple[Message, ...]:
    _expect_type("#/messages", raw, "JSONArray")
    items = t.cast("list[object]", raw)
    if len(items) < 1:
        _fail("#/messages", f"expected minimum item count: 1, found: {len(items)}")
    if len(items) > MAX_MESSAGES:
        _fail("#/messages", f"expected maximum item count: {MAX_MESSAGES}, found: {len(items)}")
    return tuple(_parse_message(f"#/messages/{index}", item) for index, item in enumerate(items))


def _parse_message(pointer: str, raw: object) -> Message:
    _expect_type(pointer, raw, "JSONObject")
    message = t.cast("dict[str, object]", raw)
    _check_keys(pointer, message, ("action", "sequence"), ("action", "sequence", "data"))
    action = message["action"]
    _expect_type(f"{pointer}/action", action, "String")
    if action not in (UPSERT, ACTIVATE_VERSION):
        _fail(f"{pointer}/action", f"{action} is not a valid enum value")
    if action == UPSERT and "data" not in message:
        _fail(pointer, "required key [data] not found")
    if action == ACTIVATE_VERSION and "data" in message:
        _fail(pointer, "extraneous key [data] is not permitted")
    sequence = _check_non_negative_int(f"{pointer}/sequence", message["sequence"])
    if sequence > MAX_SEQUENCE:
        _fail("#", f"sequence can not be above {MAX_SEQUENCE}")
    data = message.get("data")
    if action == UPSERT:
        _expect_type(f"{pointer}/data", data, "JSONObject")
    return Message(str(action), sequence, t.cast("dict[str, t.Any] | None", data))


def _parse_envelope(document: object) -> Batch:
    _expect_type("#", document, "JSONObject")
    body = t.cast("dict[str, object]", document)
    _check_keys("#", body, _TOP_LEVEL_REQUIRED, _TOP_LEVEL_ALLOWED)
    table_name = body["table_name"]
    _expect_type("#/table_name", table_name, "String")
    _check_table_name(t.cast("str", table_name))
    _expect_type("#/schema", body["schema"], "JSONObject")
    key_names = _check_name_list("#/key_names", body.get("key_names", []))
    table_version = None
    if "table_version" in body:
        table_version = _check_non_negative_int("#/table_version", body["table_version"])
        if table_version > MAX_SEQUENCE:
            _fail("#/table_version", f"{table_version} is not less or equal to {MAX_SEQUENCE}")
    bookmark_names = _check_name_list("#/bookmark_names", body.get("bookmark_names", []))
    messages = _parse_messages(body["messages"])
    if table_version is None and any(m.action == ACTIVATE_VERSION for m in messages):
        _fail("#", "required key [table_version] not found")
    return Batch(
        table_name=t.cast("str", table_name),
        schema=t.cast("dict[str, t.Any]", body["schema"]),
        messages=messages,
        key_names=key_names,
        table_version=table_version,
        bookmark_names=bookmark_names,
    )


def _check_table_name(name: str) -> None:
    if not name:
        _fail("#/table_name", "expected minLength: 1, actual: 0")
    if "\x00" in name:
        _fail("#/table_name", "a table name can not contain the NUL character")
    if name.lower().startswith(RESERVED_TABLE_PREFIXES):
        _fail(
            "#/table_name",
            f"{name} is reserved: table names starting with "
            f"{' or '.join(RESERVED_TABLE_PREFIXES)} are not permitted",
        )


def _subschemas(schema: Mapping[str, object]) -> Iterator[object]:
    for keyword in _SUBSCHEMA_KEYWORDS:
        if keyword in schema:
            yield schema[keyword]
    for keyword in _SUBSCHEMA_LIST_KEYWORDS:
        value = schema.get(keyword)
        if isinstance(value, list):
            yield from value
    for keyword in _SUBSCHEMA_MAP_KEYWORDS:
        value = schema.get(keyword)
        if isinstance(value, dict):
            yield from value.values()


def _walk(schema: Mapping[str, object]) -> Iterator[Mapping[str, object]]:
    """Yield ``schema`` and every subschema in it, depth first."""
    pending: list[object] = [schema]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            yield current
            pending.extend(reversed(list(_subschemas(current))))


def _compile_schema(schema: dict[str, t.Any]) -> Draft4Checker:
    """Check ``schema`` and compile it.

    Raises:
        _InvalidError: The schema is not usable.
    """
    subschemas = list(_walk(schema))
    for subschema in subschemas:
        declared = subschema.get("type")
        for name in declared if isinstance(declared, list) else [declared]:
            if isinstance(name, str) and name not in _DRAFT4_TYPES:
                _reject(f"Invalid JSON schema: unknown type: [{name}]")
        if "$ref" in subschema and not isinstance(subschema["$ref"], str):
            found = everit_type(subschema["$ref"])
            _reject(f"Invalid JSON schema: $ref: expected type: String, found: {found}")
    _check_metaschema(schema)
    for subschema in subschemas:
        _check_patterns(subschema)
    if "properties" not in schema:
        _reject("Invalid JSON schema: required key [properties] not found")
    if not isinstance(schema["properties"], dict):
        found = everit_type(schema["properties"])
        _reject(f"Invalid JSON schema: properties: expected: JSONObject, found: {found}")
    return compile_draft4(schema, check=False)


def _check_patterns(subschema: Mapping[str, object]) -> None:
    """Refuse patterns that are not regular expressions or can not be searched boundedly.

    With ``additionalProperties``, the ``patternProperties`` are also searched joined into
    one pattern (as jsonschema does); that one must work too.
    """
    pattern = subschema.get("pattern")
    if isinstance(pattern, str):
        problem = pattern_problem(pattern)
        if problem is not None:
            _reject(f"Invalid JSON schema: pattern {_short(pattern)} can not be used: {problem}")
    patterns = subschema.get("patternProperties")
    if not isinstance(patterns, dict):
        return
    for each in patterns:
        problem = pattern_problem(each)
        if problem is not None:
            _reject(
                f"Invalid JSON schema: patternProperties: {_short(each)} is not a 'regex': "
                f"{problem}",
            )
    if patterns and "additionalProperties" in subschema:
        problem = pattern_problem("|".join(patterns))
        if problem is not None:
            _reject(
                "Invalid JSON schema: the patternProperties joined into one regular "
                f"expression (for additionalProperties) can not be used: {problem}",
            )


def _check_metaschema(schema: dict[str, t.Any]) -> None:
    try:
        check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = error_pointer(exc)
        _reject(f"Invalid JSON schema: {where}: {_short(exc.message)}")
    except RecursionError:
        _reject("Invalid JSON schema: nested too deeply")


def _short(text: str) -> str:
    text = _DECIMAL_REPR.sub(r"\1", text)
    return text if len(text) <= _MESSAGE_LIMIT else text[:_MESSAGE_LIMIT] + "..."


def _has_lone_surrogate(value: object) -> bool:
    pending: list[object] = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, str):
            try:
                current.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(current, dict):
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
    return False


def _check_record_shape(index: int, data: dict[str, t.Any], key_names: t.Sequence[str]) -> None:
    flat = not any(isinstance(value, (dict, list)) for value in data.values())
    points, depth = (len(data), 1) if flat else record_shape(data)
    if points > MAX_DATA_POINTS:
        _reject(
            f"Record {index} has {points} data points, more than the maximum of {MAX_DATA_POINTS}",
        )
    if depth > MAX_RECORD_DEPTH:
        _reject(
            f"Record {index} is nested {depth} levels deep, more than the maximum of "
            f"{MAX_RECORD_DEPTH}",
        )
    for name in data:
        if "\x00" in name:
            _reject(f"Record {index} has a property name containing the NUL character")
    for key in key_names:
        value = data.get(key)
        if value is None:
            _reject(f"Record is missing key property {key}")
        if isinstance(value, (dict, list)):
            _reject(
                f"Record {index} key property {key} must be a scalar, found: {everit_type(value)}",
            )
        if isinstance(value, str) and len(value) >= MAX_STRING_KEY_LENGTH:
            _reject(
                f"Record {index} key property {key} is {MAX_STRING_KEY_LENGTH} characters or "
                "longer",
            )


def _conformance_text(index: int, error: jsonschema.ValidationError) -> str:
    where = error_pointer(error)
    prefix = f"Record {index} did not conform to schema: {where}:"
    if error.validator == "type":
        declared = error.validator_value
        names = declared if isinstance(declared, list) else [declared]
        expected = " or ".join(_EVERIT_TYPE_NAMES.get(str(name), str(name)) for name in names)
        return f"{prefix} expected: {expected}, found: {everit_type(error.instance)}"
    return f"{prefix} {_short(error.message)}"


def _check_conformance(index: int, data: dict[str, t.Any], checker: Draft4Checker) -> None:
    try:
        error = checker.first_error(data)
    except PatternBudgetError as exc:
        _reject(
            f"Record {index} could not be validated: {_short(str(exc))} for the patterns of "
            "one request; use patterns without nested or overlapping repetition",
        )
    except RecursionError:
        _reject(f"Record {index} is nested too deeply to validate")
    except referencing.exceptions.Unresolvable as exc:  # a $ref that names nothing
        reference = _short(str(exc.ref))
        _reject(f"Invalid JSON schema: $ref {reference} can not be resolved")
    if error is not None:
        _reject(_conformance_text(index, error))


def _document(body: bytes) -> object:
    """Parse a body as JSON text of Unicode with numbers Python holds.

    Raises:
        _InvalidError: It is not.
    """
    try:
        document = parse_json(body)
    except NumberError as exc:
        _reject(f"{_PREFIX} {exc}")
    except ValueError:
        _reject(f"{_PREFIX} body is not valid JSON")
    except RecursionError:
        _reject(f"{_PREFIX} body is nested too deeply")
    if (b"\\ud" in body or b"\\uD" in body) and _has_lone_surrogate(document):
        _reject(f"{_PREFIX} body contains a lone UTF-16 surrogate (not Unicode)")
    return document


class BatchValidator:
    """Validates request bodies; keeps a bounded LRU of compiled schemas.

    Thread-safe: one instance serves all of the emulator's request threads.
    """

    def __init__(
        self,
        cache_size: int = SCHEMA_CACHE_SIZE,
        pattern_seconds: float = PATTERN_BUDGET_SECONDS,
    ) -> None:
        """Create a validator.

        Args:
            cache_size: How many compiled schemas to keep.
            pattern_seconds: How long the patterns of one request may take to compile, and
                then to search the records, in all.
        """
        self._cache_size = cache_size
        self._pattern_seconds = pattern_seconds
        self._cache: collections.OrderedDict[str, Draft4Checker]
        self._cache = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def cached_schemas(self) -> int:
        """How many compiled schemas are cached."""
        with self._lock:
            return len(self._cache)

    def validate(self, body: bytes, content_type: str | None) -> Batch | Answer:
        """Validate one ``/batch`` or ``/validate`` body.

        Args:
            body: The raw request body.
            content_type: The request's ``Content-Type`` header, if any.

        Returns:
            The parsed batch, or the rejection to answer.
        """
        rejection = content_type_rejection(content_type)
        if rejection is not None:
            return rejection
        try:
            batch = _parse_envelope(_document(body))
            checker = self._checker(batch.schema)
            for key in batch.key_names:
                if key not in batch.schema["properties"]:
                    _reject(
                        f"{_PREFIX}#/key_names: key property {key} is not a property of the schema",
                    )
            self._check_records(batch, checker)
        except _InvalidError as invalid:
            return bad_request(invalid.text)
        return batch

    def _checker(self, schema: dict[str, t.Any]) -> Draft4Checker:
        depth = record_shape(schema)[1]
        if depth > MAX_SCHEMA_DEPTH:  # before anything recurses into it
            _reject(
                f"Invalid JSON schema: nested {depth} levels deep, more than the maximum of "
                f"{MAX_SCHEMA_DEPTH}",
            )
        try:
            key = canonical_json(schema)
        except RecursionError:
            _reject("Invalid JSON schema: nested too deeply")
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
        try:
            with pattern_budget(self._pattern_seconds):
                compiled = _compile_schema(schema)
        except RecursionError:
            _reject("Invalid JSON schema: nested too deeply")
        except PatternBudgetError as exc:
            _reject(
                f"Invalid JSON schema: compiling its patterns took too long: {_short(str(exc))} "
                "for the patterns of one request",
            )
        with self._lock:
            self._cache[key] = compiled
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return compiled

    def _check_records(self, batch: Batch, checker: Draft4Checker) -> None:
        with pattern_budget(self._pattern_seconds):
            for index, message in enumerate(batch.messages):
                if message.data is not None:
                    _check_record_shape(index, message.data, batch.key_names)
                    _check_conformance(index, message.data, checker)
