"""The shape of each Singer message, checked before the SDK sees it (pure: no I/O).

The SDK assumes well-formed messages: a ``record`` that is a list, ``properties`` that is a
list or a ``key_properties`` given as one name end in a ``TypeError`` deep inside it (or
``"id"`` silently read as the keys ``i`` and ``d``). Each function here returns the
message's parts in their normal form or raises :class:`InputError` with one line saying
what is wrong and what to do; the text never repeats the message's data.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from target_stitch_import.errors import InputError

_NAME_LIMIT = 60


@dataclass(frozen=True)
class SchemaMessage:
    """A SCHEMA message's parts, normalised."""

    stream: str
    schema: dict[str, t.Any]
    key_properties: list[str]
    bookmark_properties: tuple[str, ...]


def json_kind(value: object) -> str:
    """Name the kind of a JSON value for a message: "an object", "a number", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a text"
    return "a number"


def _short(name: str) -> str:
    return name if len(name) <= _NAME_LIMIT else name[:_NAME_LIMIT] + "..."


def stream_name(message: t.Mapping[str, t.Any]) -> str:
    """Return the message's ``stream``.

    Raises:
        InputError: It is missing, not a text or empty.
    """
    kind = message.get("type", "")
    name = message.get("stream")
    if not isinstance(name, str) or not name:
        got = "an empty text" if name == "" else json_kind(name) if "stream" in message else "none"
        msg = f'a {kind} message needs a "stream" name (a non-empty text); got {got}'
        raise InputError(msg)
    return name


def _names(stream: str, field: str, value: object) -> list[str]:
    """Property names given as a list of texts (one text alone is taken as one name)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(name, str) for name in value):
        return list(value)
    bad = value if not isinstance(value, list) else next(v for v in value if not isinstance(v, str))
    msg = (
        f"stream '{_short(stream)}': {field} must be a list of property names (texts); "
        f"it holds {json_kind(bad)}"
    )
    raise InputError(msg)


def schema_message(message: t.Mapping[str, t.Any]) -> SchemaMessage:
    """Check a SCHEMA message and return its parts in normal form.

    ``key_properties``/``bookmark_properties`` given as one text become a one-name list
    (entries of ``bookmark_properties`` that are not texts are ignored: it only orders
    sequences).

    Raises:
        InputError: The message cannot describe a table.
    """
    stream = stream_name(message)
    where = f"stream '{_short(stream)}'"
    schema = message.get("schema")
    if not isinstance(schema, dict):
        msg = f'{where}: SCHEMA needs a "schema" object (a JSON Schema); got {json_kind(schema)}'
        raise InputError(msg)
    if "properties" not in schema:
        msg = (
            f'{where}: the schema has no "properties"; a table needs its fields declared '
            '(an empty object, "properties": {}, accepts any field)'
        )
        raise InputError(msg)
    properties = schema["properties"]
    if not isinstance(properties, dict):
        msg = (
            f'{where}: the schema\'s "properties" must be an object mapping each field to '
            f"its schema; got {json_kind(properties)}"
        )
        raise InputError(msg)
    for name, subschema in properties.items():
        problem = _field_problem(subschema)
        if problem is not None:
            msg = f"{where}: the schema of field '{_short(name)}' {problem}"
            raise InputError(msg)
    keys = _names(stream, "key_properties", message.get("key_properties"))
    return SchemaMessage(stream, schema, keys, _bookmarks(message.get("bookmark_properties")))


def _bookmarks(value: object) -> tuple[str, ...]:
    """Bookmark names (informational, and the source of sequences): odd entries are ignored."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(name for name in value if isinstance(name, str))
    return ()


def _field_problem(subschema: object) -> str | None:
    """What keeps the SDK from reading a top-level field's schema (None when nothing)."""
    if not isinstance(subschema, dict):
        return f"must be an object; got {json_kind(subschema)}"
    kind = subschema.get("type")
    if kind is not None and not isinstance(kind, str) and not (
        isinstance(kind, list) and all(isinstance(name, str) for name in kind)
    ):
        return f'has a "type" that is neither a type name nor a list of them ({json_kind(kind)})'
    for keyword in ("anyOf", "allOf", "oneOf"):
        branches = subschema.get(keyword)
        if branches is not None and not (
            isinstance(branches, list) and all(isinstance(branch, dict) for branch in branches)
        ):
            return f'has an "{keyword}" that is not a list of schemas (objects)'
    return None


def record_message(message: t.Mapping[str, t.Any]) -> tuple[str, dict[str, t.Any], int | None]:
    """Check a RECORD message; return its stream, record and table version (or None).

    Raises:
        InputError: No stream, or the record is not a JSON object.
    """
    stream = stream_name(message)
    record = message.get("record")
    if not isinstance(record, dict):
        msg = (
            f"stream '{_short(stream)}': a RECORD's \"record\" must be a JSON object; got "
            f"{'none' if 'record' not in message else json_kind(record)}"
        )
        raise InputError(msg)
    version = message.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        msg = (
            f"stream '{_short(stream)}': a RECORD's \"version\" must be an integer; got "
            f"{json_kind(version)}"
        )
        raise InputError(msg)
    return stream, record, version


def activate_version_message(message: t.Mapping[str, t.Any]) -> tuple[str, int]:
    """Check an ACTIVATE_VERSION message; return its stream and version.

    Raises:
        InputError: No stream, or the version is not an integer.
    """
    stream = stream_name(message)
    version = message.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        msg = (
            f"stream '{_short(stream)}': ACTIVATE_VERSION needs an integer \"version\"; got "
            f"{'none' if 'version' not in message else json_kind(version)}"
        )
        raise InputError(msg)
    return stream, version


def state_value(message: t.Mapping[str, t.Any]) -> object:
    """Return a STATE message's value.

    Raises:
        InputError: The message has no ``value``.
    """
    if "value" not in message:
        msg = 'a STATE message needs a "value" (the tap\'s state); this one has none'
        raise InputError(msg)
    return message["value"]


def batch_message(message: t.Mapping[str, t.Any]) -> tuple[str, dict[str, t.Any], list[str]]:
    """Check a BATCH message; return its stream, encoding and manifest (file URLs).

    Raises:
        InputError: A part is missing or of the wrong kind.
    """
    stream = stream_name(message)
    where = f"stream '{_short(stream)}'"
    encoding = message.get("encoding")
    if not isinstance(encoding, dict) or not isinstance(encoding.get("format"), str):
        msg = f'{where}: a BATCH message needs an "encoding" object with a "format"'
        raise InputError(msg)
    manifest = message.get("manifest")
    if not isinstance(manifest, list) or not all(isinstance(url, str) for url in manifest):
        msg = f'{where}: a BATCH message needs a "manifest" list of file URLs'
        raise InputError(msg)
    return stream, encoding, manifest
