"""The schema sent to Stitch: the tap's SCHEMA turned into Draft 4 that accepts real records.

Stitch validates every record of a batch against the batch's ``schema`` as JSON Schema
Draft 4, and one failing record fails the whole request. Real taps declare schemas their
own records break (a PostgreSQL ``text[]`` declared as an array of non-null strings while
it holds NULL elements, nested values that are null, extra fields next to
``additionalProperties: false``) and write keywords of later drafts (``$defs``, ``const``,
numeric ``exclusiveMinimum``, ``prefixItems``) that Draft 4 does not know or reads
differently.

:func:`adapt_schema` runs once per SCHEMA message (never per record) and never touches
record data. In :attr:`SchemaMode.RELAXED` it returns a Draft 4 schema that keeps the
real types (a string in an integer column still fails) but accepts null at every depth
except the top-level key properties, resolves local ``$ref`` inline, translates or drops
the keywords Draft 4 lacks and drops the constraints taps break (``required``,
``additionalProperties: false``). :attr:`SchemaMode.STRICT` sends the tap's schema as is,
once it has passed the checks below. Nothing here logs or does I/O:
:func:`adapt_schema_with_notes` returns what the caller should tell the user.

Relaxed, in detail:

* ``null`` joins every ``type`` (and ``enum``) at every depth: properties, ``items``
  (also tuple form), ``additionalItems``, ``additionalProperties``, ``patternProperties``,
  ``anyOf``/``oneOf``/``allOf`` branches. Top-level key properties keep what they declare.
* ``$ref`` to ``#``, ``#/definitions/..``, ``#/$defs/..`` (any local JSON pointer) or an
  ``$anchor`` is inlined; a ref back into a schema being inlined, or one that cannot be
  resolved locally (remote schemas are never fetched), becomes ``{}`` (anything).
  Siblings of ``$ref`` (2019+) are kept.
* A JSON document column, typed both ``object`` and ``array`` with nothing said of its
  members (how taps declare ``json``/``jsonb``, which also hold strings, numbers and
  booleans), takes any JSON value: its ``type`` is dropped.
* ``const: v`` → ``enum: [v]``; numeric ``exclusiveMinimum: n`` → ``minimum: n,
  exclusiveMinimum: true`` (likewise maximum); ``prefixItems`` → tuple ``items`` (a
  2020-12 ``items`` next to it → ``additionalItems``); ``oneOf`` → ``anyOf`` (nullable
  branches all match null, and taps' branches overlap: 1 is "integer" and "number");
  boolean subschemas → ``{}``.
* Dropped: ``required`` below the top (the top keeps the key properties),
  ``additionalProperties``/``additionalItems`` ``false``, name-list ``dependencies``,
  ``not``, unknown type names (no ``type`` at all when no type but ``null`` is left),
  ``definitions``/``$defs`` and the keywords in :data:`DROPPED_KEYWORDS`; values Draft 4's
  metaschema rejects (an empty ``enum``, ``maxLength: -1``, ``items: 5``) and patterns
  that are not regular expressions are dropped, ``255.0`` becomes ``255``.
* Kept as they are: ``format``, ``multipleOf``, bounds, ``pattern``, and vendor keywords
  (``x-sql-datatype``, ``inclusion``).

Notes: the routine relaxations above (null added, ``required`` and ``false`` dropped,
``$ref`` inlined, recursion cut, later drafts translated, annotations dropped) are silent:
every real tap would trigger them. What loosens the schema beyond them comes back as a
:class:`SchemaNote` per field and problem (:func:`describe_notes` makes one text per field):
unknown type names; a dropped ``not``, ``if``/``then``/``else``, ``dependentSchemas``,
``contains``, ``propertyNames``, ``$dynamicRef``/``$recursiveRef`` or schema-valued
``unevaluated*``; an invalid value dropped; a pattern that is not a regular expression; a
``$ref`` that resolves to nothing or only loops back to itself; something other than a
schema where a schema belongs.

Strict refuses (:class:`SchemaProblemError`), before anything is sent, a schema Stitch
answers ``Invalid JSON schema`` for or the local validator cannot use: an unknown type
name, a ``$ref`` that is not a text or names nothing in the schema (or another document:
nothing is fetched), a loop of ``$ref`` (through ``allOf``/``anyOf``/``oneOf``/``not``/
``dependencies``) that never goes down into the data, a ``pattern`` (or
``patternProperties`` name) that is not a regular expression, and anything else the
Draft 4 metaschema rejects. Recursion through ``properties`` or ``items`` (a tree) is fine.

Limits, in both modes: a schema may nest JSON objects and arrays at most
:data:`MAX_SCHEMA_DEPTH` levels deep (each ``$ref`` followed counts two more), and the
relaxed schema may have at most :data:`MAX_SUBSCHEMAS` subschemas once its ``$ref`` are
written out. Deeper or larger schemas are refused with one line naming where, instead of
exhausting the interpreter's recursion limit or memory.
"""

from __future__ import annotations

import copy
import decimal
import enum
import json
import math
import operator
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import jsonschema

from target_stitch_import.draft4 import check_schema, regex_problem
from target_stitch_import.errors import SchemaError

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence


class SchemaMode(str, enum.Enum):
    """How the tap's schema becomes the schema sent with each batch."""

    RELAXED = "relaxed"
    STRICT = "strict"


#: How deeply a schema may nest JSON objects and arrays: one level per segment of a JSON
#: pointer (a field is two levels below its object: ``properties``, then its name; an array's
#: ``items`` one), each ``$ref`` followed counting two. Real taps stay far below: a field
#: 50 objects deep would sit at level 100, and Stitch's destinations load much less (BigQuery
#: at most 15 levels of nested records). The checks of :mod:`target_stitch_import.draft4`
#: and jsonschema recurse about six Python frames per level; 100 levels keep them well inside
#: the interpreter's default recursion limit of 1,000.
MAX_SCHEMA_DEPTH = 100

#: How many subschemas the relaxed schema may have once its ``$ref`` are written out. The
#: schema travels with every batch (request bodies of at most 4 MB); a handful of ``$ref``
#: that each use the previous one twice would otherwise multiply into billions.
MAX_SUBSCHEMAS = 100_000

#: The type names Draft 4 (and so Stitch) knows; others get "unknown type: [x]".
DRAFT4_TYPES: frozenset[str] = frozenset(
    {"array", "boolean", "integer", "null", "number", "object", "string"},
)

#: Keywords of later drafts (or annotations) that have no Draft 4 meaning; dropped.
#: ``definitions``/``$defs`` go too: every local ``$ref`` is resolved inline.
DROPPED_KEYWORDS: frozenset[str] = frozenset(
    {
        "$schema", "$id", "id", "$defs", "definitions", "$comment", "$anchor",
        "$dynamicAnchor", "$dynamicRef", "$recursiveAnchor", "$recursiveRef",
        "$vocabulary", "examples", "deprecated", "readOnly", "writeOnly",
        "contentMediaType", "contentEncoding", "contentSchema",
        "unevaluatedProperties", "unevaluatedItems", "dependentRequired",
        "dependentSchemas", "if", "then", "else", "contains", "minContains",
        "maxContains", "propertyNames", "nullable", "not", "required",
    },
)  # fmt: skip

#: Dropped keywords that loosen the schema (the others annotate, are requirements relaxed
#: mode drops on purpose, or only close what ``additionalProperties: false`` closes): each
#: one present gets a :class:`SchemaNote`.
_LOOSENING: frozenset[str] = frozenset(
    {
        "not", "if", "then", "else", "dependentSchemas", "contains", "minContains",
        "maxContains", "propertyNames", "$dynamicRef", "$recursiveRef",
    },
)  # fmt: skip

#: Dropped like ``additionalProperties: false`` when ``false``; noted when a schema.
_UNEVALUATED: frozenset[str] = frozenset({"unevaluatedProperties", "unevaluatedItems"})

#: Draft 4 keywords whose value must be a non-negative integer.
_COUNT_KEYWORDS: frozenset[str] = frozenset(
    {"maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"},
)

#: Keywords whose value is handled by a ``_Relaxer`` method of the same name.
_HANDLED: dict[str, str] = {
    "type": "_type",
    "enum": "_enum",
    "pattern": "_pattern",
    "properties": "_schema_map",
    "patternProperties": "_schema_map",
    "additionalProperties": "_additional",
    "additionalItems": "_additional",
    "items": "_items",
    "prefixItems": "_prefix_items",
    "allOf": "_combinator",
    "anyOf": "_combinator",
    "oneOf": "_combinator",
    "dependencies": "_dependencies",
    "multipleOf": "_multiple_of",
    "uniqueItems": "_unique_items",
}

#: Keywords that only describe; a ``$ref``'s siblings of this kind never force an ``allOf``,
#: and an invalid value of one is dropped without a note.
_ANNOTATIONS: frozenset[str] = frozenset({"title", "description", "default", "format"})

#: Keywords translated together after the others (``const`` and the numeric bounds).
_BOUND_KEYWORDS: frozenset[str] = frozenset(
    {"const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
)

#: Draft 4 keywords that must hold a string (``pattern`` has its own handler).
_STRING_KEYWORDS: frozenset[str] = frozenset({"title", "description", "format"})

_ANY_VALUE = "it is sent as accepting any value"
_DROPPED = "it is dropped"
_FIX_STRICT = "fix the tap's schema or use schema_mode=relaxed"
_SHOW_LIMIT = 60
_POINTER_SEGMENTS = 8
_MESSAGE_LIMIT = 160


@dataclass(frozen=True)
class SchemaNote:
    """A constraint of the tap's schema that the relaxed schema loses beyond its routine rules.

    Attributes:
        field: The field's path: ``address.geo.lat``, ``lines[]`` for each item of
            ``lines``, ``meta.*`` for any member of ``meta``; empty for the top level.
        found: What the tap's schema has there (``unknown type 'integr'``).
        outcome: What is sent instead (``it is sent as accepting any value``).
    """

    field: str
    found: str
    outcome: str


class AdaptedSchema(t.NamedTuple):
    """The schema to send and what it loses that the user should hear about."""

    schema: dict[str, t.Any]
    notes: tuple[SchemaNote, ...]


class SchemaProblemError(ValueError):
    """The tap's schema cannot be sent; the text says where, why and what to do.

    The text names no stream (this module does not know it): see :meth:`for_stream`.
    """

    def for_stream(self, stream: str) -> SchemaError:
        """Return the package's error for ``stream``: the one line the user sees."""
        return SchemaError(f"stream '{stream}': {self}")


def adapt_schema(
    schema: Mapping[str, t.Any],
    key_properties: Sequence[str],
    mode: SchemaMode | str,
) -> dict[str, t.Any]:
    """Return the schema to send to Stitch for a stream (see :func:`adapt_schema_with_notes`).

    Raises:
        ValueError: ``mode`` is not a :class:`SchemaMode` value.
        SchemaProblemError: The schema cannot be sent (see the module docstring).
    """
    return adapt_schema_with_notes(schema, key_properties, mode).schema


def adapt_schema_with_notes(
    schema: Mapping[str, t.Any],
    key_properties: Sequence[str],
    mode: SchemaMode | str,
) -> AdaptedSchema:
    """Return the schema to send to Stitch for a stream, and the notes on what it loses.

    Args:
        schema: The ``schema`` of the tap's SCHEMA message; never modified.
        key_properties: The stream's key properties (top-level property names).
        mode: ``strict`` returns a deep copy of ``schema`` once it passed the strict checks;
            ``relaxed`` returns valid JSON Schema Draft 4 in which every value may be null
            except the top-level key properties, local ``$ref`` are inlined (a recursive
            one becomes ``{}``), later drafts' keywords are translated (``const``, numeric
            ``exclusiveMinimum``/``exclusiveMaximum``, ``prefixItems``, ``oneOf`` becomes
            ``anyOf``) or dropped, unknown type names are dropped, and ``required`` is the
            key properties at the top level and absent below it.

    Returns:
        A new schema whose top level has ``properties`` and a ``type`` that includes
        ``object`` (in ``relaxed`` mode), and the notes of relaxed mode (none in strict),
        one per field and problem.

    Raises:
        ValueError: ``mode`` is not a :class:`SchemaMode` value.
        SchemaProblemError: The schema is nested too deeply or grows too large; in strict
            mode, also a schema Stitch would refuse (see the module docstring).
    """
    strict = SchemaMode(mode) is SchemaMode.STRICT
    check_nesting(schema)
    if strict:
        _StrictCheck(schema).run()
        return AdaptedSchema(copy.deepcopy(dict(schema)), ())
    keys = tuple(dict.fromkeys(key_properties))
    relaxer = _Relaxer(schema)
    top = relaxer.convert(schema, _Scope(nullable=False, keys=frozenset(keys)), _Where())
    top.setdefault("properties", {})
    types = top.get("type")
    if types is None:
        top["type"] = "object"
    elif isinstance(types, list) and "object" not in types:
        top["type"] = [*types, "object"]
    elif isinstance(types, str) and types != "object":
        top["type"] = [types, "object"]
    if keys:
        top["required"] = list(keys)
    return AdaptedSchema(top, relaxer.notes())


def check_nesting(schema: object) -> None:
    """Check that ``schema`` nests JSON objects and arrays at most ``MAX_SCHEMA_DEPTH`` deep.

    Iterative, so it is safe on any input; run it before anything recurses into a schema
    (copying, checking, compiling).

    Raises:
        SchemaProblemError: The schema is nested deeper, naming where.
    """
    stack: list[tuple[Mapping[str, t.Any] | list[t.Any], tuple[str, ...]]] = []
    if isinstance(schema, Mapping | list):
        stack.append((schema, ()))
    while stack:
        container, path = stack.pop()
        if len(path) > MAX_SCHEMA_DEPTH:
            raise SchemaProblemError(_too_deep(path))
        pairs = container.items() if isinstance(container, Mapping) else enumerate(container)
        for key, value in pairs:
            if isinstance(value, Mapping | list):
                stack.append((value, (*path, str(key))))


def describe_notes(notes: Iterable[SchemaNote]) -> list[str]:
    """Return one text per field for ``notes``, in order (``field 'qty' has ...; ...``).

    A field with several notes gets them in one text, each with its outcome in parentheses.
    """
    by_field: dict[str, list[SchemaNote]] = {}
    for note in notes:
        by_field.setdefault(note.field, []).append(note)
    texts: list[str] = []
    for name, group in by_field.items():
        subject = _subject(name)
        if len(group) == 1:
            texts.append(f"{subject} has {group[0].found}; {group[0].outcome}")
        else:
            found = " and ".join(f"{note.found} ({note.outcome})" for note in group)
            texts.append(f"{subject} has {found}")
    return texts


# Where a subschema is: its pointer, its field, for messages.


def _subject(name: str | None, pointer: str = "#") -> str:
    """How a message names a place: a field, the top level, or (not a field) its pointer."""
    if name is None:
        return f"the schema at {pointer}"
    if not name:
        return "the schema's top level"
    return f"field '{_shorten(name)}'"


def _member(name: str, member: str) -> str:
    return f"{name}.{member}" if name else member


def _item(name: str) -> str:
    return f"{name}[]"


def _pointer(path: Sequence[object]) -> str:
    """A JSON pointer for ``path``, shortened to its first segments when long."""
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in path]
    text = "#/" + "/".join(parts[:_POINTER_SEGMENTS]) if parts else "#"
    if len(parts) > _POINTER_SEGMENTS:
        text += "/..."
    return _shorten(text, _MESSAGE_LIMIT)


def _shorten(text: str, limit: int = _SHOW_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _show(value: object) -> str:
    """A short JSON-like rendering of a value of the tap's schema, for messages."""
    if isinstance(value, str):
        return f"'{_shorten(value)}'"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float | decimal.Decimal):
        return _shorten(str(value))
    return _shorten(json.dumps(value, default=str, ensure_ascii=False))


def _too_deep(path: Sequence[object], *, refs: bool = False) -> str:
    through = " once its $refs are followed" if refs else ""
    return (
        f"the schema is nested deeper than {MAX_SCHEMA_DEPTH} levels at {_pointer(path)}"
        f"{through}; Stitch's destinations cannot load data nested that deep: simplify the "
        'tap\'s schema there (for example declare that field as {"type": "object"} '
        "without properties)"
    )


# $ref resolution (within the schema only: nothing is ever fetched)


class _Resolver:
    """Finds the targets of ``$ref`` inside one schema document."""

    def __init__(self, root: Mapping[str, t.Any]) -> None:
        self._root = root
        self._anchors: dict[str, t.Any] | None = None
        self._found: dict[str, tuple[object, bool]] = {}
        base = root.get("$id", root.get("id"))
        self._base = base.split("#", 1)[0] if isinstance(base, str) else ""

    def lookup(self, ref: str) -> tuple[object, bool]:
        """Return ``(subschema, found)`` for a local ref (``#``, ``#/a/b``, ``#anchor``)."""
        found = self._found.get(ref)
        if found is None:
            found = self._found[ref] = self._find(ref)
        return found

    def _find(self, ref: str) -> tuple[object, bool]:
        base, _, fragment = ref.partition("#")
        if base and base != self._base:
            return None, False
        fragment = unquote(fragment)
        if not fragment:
            return self._root, True
        if not fragment.startswith("/"):
            anchors = self._anchor_map()
            return anchors.get(fragment), fragment in anchors
        node: object = self._root
        for raw in fragment[1:].split("/"):
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None, False
        return node, True

    def problem(self, ref: str) -> str:
        """Describe an unresolvable ``ref`` (after ``has``)."""
        base = ref.partition("#")[0]
        if base and base != self._base:
            return f"$ref {_show(ref)} to another document, which is never fetched"
        return f"$ref {_show(ref)}, which names nothing in the schema"

    def _anchor_map(self) -> dict[str, t.Any]:
        if self._anchors is None:
            self._anchors = {}
            _collect_anchors(self._root, self._anchors)
        return self._anchors


def _collect_anchors(node: object, anchors: dict[str, t.Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_anchors(item, anchors)
        return
    if not isinstance(node, Mapping):
        return
    anchor = node.get("$anchor")
    if isinstance(anchor, str):
        anchors.setdefault(anchor, node)
    for name in ("$id", "id"):
        ident = node.get(name)
        if isinstance(ident, str) and ident.startswith("#") and len(ident) > 1:
            anchors.setdefault(ident[1:], node)
    for value in node.values():
        if isinstance(value, Mapping | list):
            _collect_anchors(value, anchors)


# Relaxed mode


@dataclass(frozen=True)
class _Scope:
    """Where a subschema sits: must it accept null, and which of its properties are keys."""

    nullable: bool
    keys: frozenset[str] = frozenset()


_ANYWHERE = _Scope(nullable=True)


@dataclass(frozen=True)
class _Where:
    """Where a subschema of the relaxed schema goes: its path, its field, steps into data."""

    path: tuple[str, ...] = ()
    field: str = ""
    descents: int = 0

    def same(self, *segments: str) -> _Where:
        """A subschema ``segments`` below that applies to the same value."""
        return _Where((*self.path, *segments), self.field, self.descents)

    def into(self, name: str, *segments: str) -> _Where:
        """A subschema ``segments`` below that applies to the value(s) of field ``name``."""
        return _Where((*self.path, *segments), name, self.descents + 1)


_Handler = t.Callable[[dict[str, t.Any], str, t.Any, _Scope, _Where], None]


class _Relaxer:
    """One adaptation: the refs being inlined, the count of subschemas, the notes."""

    def __init__(self, root: Mapping[str, t.Any]) -> None:
        self._resolver = _Resolver(root)
        # The raw targets being inlined: id() -> the data steps below the top when entered.
        self._resolving: dict[int, int] = {id(root): 0}
        self._count = 0
        self._notes: dict[tuple[str, str], SchemaNote] = {}
        self._handlers: dict[str, _Handler] = {
            keyword: getattr(self, method) for keyword, method in _HANDLED.items()
        }

    def notes(self) -> tuple[SchemaNote, ...]:
        """The notes so far, one per field and problem, in the order they were found."""
        return tuple(self._notes.values())

    def convert(self, node: object, scope: _Scope, where: _Where) -> dict[str, t.Any]:
        """Return the relaxed Draft 4 form of one (sub)schema.

        Args:
            node: The raw subschema (a boolean or anything not an object means anything).
            scope: Whether null must be accepted here, and the key properties (top level).
            where: Where the result goes in the relaxed schema.

        Returns:
            A new schema sharing nothing with ``node``.

        Raises:
            SchemaProblemError: The relaxed schema nests too deeply or grows too large.
        """
        if not isinstance(node, Mapping):
            if not isinstance(node, bool):
                self._note(where, f"{_show(node)} where a schema belongs", _ANY_VALUE)
            return {}
        self._count += 1
        if self._count > MAX_SUBSCHEMAS:
            msg = (
                f"the schema grows past {MAX_SUBSCHEMAS:,} subschemas once its $refs are "
                f"written out (at {_pointer(where.path)}); the schema travels with every "
                "batch, so simplify the tap's schema or use schema_mode=strict"
            )
            raise SchemaProblemError(msg)
        if len(where.path) + 2 * (len(self._resolving) - 1) > MAX_SCHEMA_DEPTH:
            raise SchemaProblemError(_too_deep(where.path, refs=True))
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._with_ref(node, ref, scope, where)
        out: dict[str, t.Any] = {}
        lost = self._keywords(node, out, scope, where)
        if lost:
            names = ", ".join(f"'{key}'" for key in lost)
            outcome = (
                "it is dropped, so values it refuses are accepted"
                if len(lost) == 1
                else "they are dropped, so values they refuse are accepted"
            )
            self._note(where, names, outcome)
        for key in _bounds(node, out):
            self._invalid(where, key, node[key])
        return _finish(out, node, scope)

    def _keywords(
        self, node: Mapping[str, t.Any], out: dict[str, t.Any], scope: _Scope, where: _Where
    ) -> list[str]:
        """Convert the keywords of ``node`` but the bounds into ``out``.

        Returns:
            The keywords dropped although they loosen the schema (to note together).
        """
        lost: list[str] = []
        for key, value in node.items():
            if key in _LOOSENING or (key in _UNEVALUATED and isinstance(value, Mapping)):
                lost.append(key)
            elif key == "$ref":  # not a text
                self._invalid(where, key, value)
            elif key in DROPPED_KEYWORDS or key in _BOUND_KEYWORDS:
                continue
            elif key in self._handlers:
                self._handlers[key](out, key, value, scope, where)
            elif not _copy_plain(out, key, value) and key not in _ANNOTATIONS:
                self._invalid(where, key, value)
        return lost

    def _note(self, where: _Where, found: str, outcome: str) -> None:
        self._notes.setdefault((where.field, found), SchemaNote(where.field, found, outcome))

    def _invalid(self, where: _Where, key: str, value: object) -> None:
        self._note(where, f"'{key}': {_show(value)}, which is not valid Draft 4", _DROPPED)

    def _subschema(
        self, where: _Where, inner: _Where, key: str, value: object
    ) -> dict[str, t.Any] | None:
        """Convert the subschema ``value`` of ``key`` at ``inner`` (None: a boolean, or invalid).

        It must accept null; an invalid value is noted at ``where`` (the keyword's schema).
        """
        if isinstance(value, Mapping):
            return self.convert(value, _ANYWHERE, inner)
        if not isinstance(value, bool):
            self._invalid(where, key, value)
        return None

    # $ref

    def _with_ref(
        self, node: Mapping[str, t.Any], ref: str, scope: _Scope, where: _Where
    ) -> dict[str, t.Any]:
        target, found = self._resolver.lookup(ref)
        entered = self._resolving.get(id(target)) if found else None
        resolved: dict[str, t.Any] = {}  # unresolvable or recursive: anything
        if not found:
            self._note(where, self._resolver.problem(ref), _ANY_VALUE)
        elif entered is not None:
            # Back into a schema being inlined: routine recursion (a tree of values) once it
            # went down into the data, an endless loop when it did not.
            if entered == where.descents:
                loop = f"$ref {_show(ref)} in a loop of $refs that never reaches a schema"
                self._note(where, loop, _ANY_VALUE)
        else:
            self._resolving[id(target)] = where.descents
            try:
                resolved = self.convert(target, scope, where)
            finally:
                del self._resolving[id(target)]
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        rest = self.convert(siblings, scope, where) if siblings else {}
        if not rest or not resolved:
            return rest or resolved
        if (resolved.keys() & rest.keys()) - _ANNOTATIONS:
            return {"allOf": [resolved, rest]}
        return {**resolved, **rest}

    # Keyword handlers

    def _type(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        if not isinstance(value, str | list):
            self._invalid(where, key, value)
            return
        names = [value] if isinstance(value, str) else value
        known = list(dict.fromkeys(n for n in names if isinstance(n, str) and n in DRAFT4_TYPES))
        unknown = [n for n in names if not (isinstance(n, str) and n in DRAFT4_TYPES)]
        if unknown:
            if not set(known) - {"null"}:  # the tap meant a type that is not there: anything
                known = []
            shown = list(dict.fromkeys(_show(name) for name in unknown))
            what = f"unknown type{'s' if len(shown) > 1 else ''} {', '.join(shown)}"
            outcome = f"{'they are' if len(shown) > 1 else 'it is'} dropped from its types"
            self._note(where, what, outcome if known else _ANY_VALUE)
        if known:
            out["type"] = value if isinstance(value, str) and known == [value] else known

    def _enum(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        if isinstance(value, list) and value:
            out["enum"] = _unique(value)
        else:
            self._invalid(where, key, value)

    def _pattern(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        if not isinstance(value, str):
            self._invalid(where, key, value)
        elif regex_problem(value) is not None:
            self._note(where, f"pattern {_show(value)}, not a regular expression", _DROPPED)
        else:
            out[key] = value

    def _schema_map(
        self, out: dict[str, t.Any], key: str, value: object, scope: _Scope, where: _Where
    ) -> None:
        if not isinstance(value, Mapping):
            self._invalid(where, key, value)
            return
        keys = scope.keys if key == "properties" else frozenset()
        converted: dict[str, t.Any] = {}
        for name, sub in value.items():
            if key == "properties":
                inner = where.into(_member(where.field, name), key, name)
            elif regex_problem(name) is None:
                inner = where.into(_member(where.field, "*"), key, name)
            else:
                found = f"patternProperties {_show(name)}, not a regular expression"
                self._note(where, found, _DROPPED)
                continue
            converted[name] = self.convert(
                sub, _Scope(nullable=False) if name in keys else _ANYWHERE, inner
            )
        out[key] = converted

    def _additional(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        # ``false`` is dropped: taps send more fields (and longer tuples) than they declare.
        name = _member(where.field, "*") if key == "additionalProperties" else _item(where.field)
        converted = self._subschema(where, where.into(name, key), key, value)
        if converted is not None:
            out[key] = converted

    def _items(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        name = _item(where.field)
        if isinstance(value, list):
            if value:
                out[key] = [
                    self.convert(sub, _ANYWHERE, where.into(name, key, str(index)))
                    for index, sub in enumerate(value)
                ]
            return
        # After ``prefixItems`` (2020-12), ``items`` is the schema of the rest.
        target = "additionalItems" if isinstance(out.get("items"), list) else "items"
        converted = self._subschema(where, where.into(name, target), key, value)
        if converted is not None:
            out[target] = converted

    def _prefix_items(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        if not isinstance(value, list):
            self._invalid(where, key, value)
            return
        if not value:
            return
        name = _item(where.field)
        rest = out.pop("items", None)
        out["items"] = [
            self.convert(sub, _ANYWHERE, where.into(name, "items", str(index)))
            for index, sub in enumerate(value)
        ]
        if isinstance(rest, dict):
            out["additionalItems"] = rest

    def _combinator(
        self, out: dict[str, t.Any], key: str, value: object, scope: _Scope, where: _Where
    ) -> None:
        if not isinstance(value, list) or not value:
            self._invalid(where, key, value)
            return
        branches = [
            self.convert(sub, scope, where.same(key, str(index))) for index, sub in enumerate(value)
        ]
        if key == "allOf":
            out.setdefault("allOf", []).extend(branches)
        elif "anyOf" in out:
            out.setdefault("allOf", []).append({"anyOf": branches})
        else:
            # ``oneOf`` becomes ``anyOf``: nullable branches all match null, and taps'
            # branches overlap anyway (an integer matches "integer" and "number").
            out["anyOf"] = branches

    def _dependencies(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        # Property dependencies (lists of names) are requirements and go, like ``required``.
        if not isinstance(value, Mapping):
            self._invalid(where, key, value)
            return
        kept: dict[str, t.Any] = {}
        for name, sub in value.items():
            if isinstance(sub, list):
                continue
            converted = self._subschema(where, where.same(key, name), key, sub)
            if converted is not None:
                kept[name] = converted
        if kept:
            out[key] = kept

    def _multiple_of(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        if _is_number(value) and value > 0:
            out[key] = value
        else:
            self._invalid(where, key, value)

    def _unique_items(
        self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope, where: _Where
    ) -> None:
        if isinstance(value, bool):
            out[key] = value
        else:
            self._invalid(where, key, value)


def _copy_plain(out: dict[str, t.Any], key: str, value: object) -> bool:
    """Copy a keyword without subschemas when its value is valid Draft 4; return if copied."""
    if key in _STRING_KEYWORDS:
        if not isinstance(value, str):
            return False
        out[key] = value
    elif key in _COUNT_KEYWORDS:
        count = _count(value)
        if count is None:
            return False
        out[key] = count
    else:  # default, and vendor keywords (``x-sql-datatype``, ``inclusion``): kept
        out[key] = copy.deepcopy(value)
    return True


def _is_number(value: object) -> t.TypeGuard[int | float | decimal.Decimal]:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def _count(value: object) -> int | None:
    """A Draft 4 non-negative integer from ``value`` (``255.0`` -> ``255``), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _bounds(node: Mapping[str, t.Any], out: dict[str, t.Any]) -> list[str]:
    """Translate ``minimum``/``maximum`` and both ``exclusive*`` forms to Draft 4.

    Returns:
        The bound keywords dropped for an invalid value (not a number, nor a flag).
    """
    invalid: list[str] = []
    for bound, exclusive, at_least_as_strict in (
        ("minimum", "exclusiveMinimum", operator.ge),
        ("maximum", "exclusiveMaximum", operator.le),
    ):
        limit = node.get(bound)
        if limit is not None and not _is_number(limit):
            invalid.append(bound)
        limit = limit if _is_number(limit) else None
        flag = node.get(exclusive)
        if _is_number(flag):  # draft 6+: the exclusive bound itself
            if limit is None or at_least_as_strict(flag, limit):
                out[bound], out[exclusive] = flag, True
            else:
                out[bound] = limit
            continue
        if flag is not None and not isinstance(flag, bool):
            invalid.append(exclusive)
        if limit is not None:
            out[bound] = limit
            if flag is True:  # the Draft 4 form, valid only next to its bound
                out[exclusive] = True
    return invalid


#: Keywords that say something of an object's or array's members.
_MEMBER_KEYWORDS = frozenset(
    {
        "properties", "patternProperties", "additionalProperties", "items",
        "additionalItems", "required", "minProperties", "maxProperties", "minItems",
        "maxItems", "uniqueItems", "dependencies", "enum", "anyOf", "allOf", "oneOf",
    },
)  # fmt: skip


def _is_document(out: Mapping[str, t.Any]) -> bool:
    """Whether a relaxed subschema is a free JSON document (``object`` and ``array``, no more)."""
    types = out.get("type")
    return (
        isinstance(types, list)
        and "object" in types
        and "array" in types
        and _MEMBER_KEYWORDS.isdisjoint(out)
    )


def _finish(out: dict[str, t.Any], node: Mapping[str, t.Any], scope: _Scope) -> dict[str, t.Any]:
    """The last routine steps of a relaxed subschema: documents, ``const``, null."""
    if _is_document(out) and not scope.keys:
        del out["type"]
    if "const" in node:
        out["enum"] = _unique([node["const"]])
    if scope.nullable:
        _add_null(out)
    return out


def _add_null(out: dict[str, t.Any]) -> None:
    types = out.get("type")
    if isinstance(types, str) and types != "null":
        out["type"] = [types, "null"]
    elif isinstance(types, list) and "null" not in types:
        out["type"] = [*types, "null"]
    values = out.get("enum")
    if isinstance(values, list) and not any(v is None for v in values):
        out["enum"] = [*values, None]


def _unique(values: Sequence[object]) -> list[t.Any]:
    """Copy ``values`` without duplicates as JSON sees them (``1 == 1.0``, ``1 != true``)."""
    seen: set[object] = set()
    kept: list[t.Any] = []
    for value in values:
        marker = _canonical(value)
        if marker not in seen:
            seen.add(marker)
            kept.append(copy.deepcopy(value))
    return kept


def _canonical(value: object) -> object:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if _is_number(value):
        return ("number", value)
    if isinstance(value, list | tuple):
        return ("array", tuple(_canonical(v) for v in value))
    if isinstance(value, Mapping):
        return ("object", tuple(sorted((str(k), _canonical(v)) for k, v in value.items())))
    return ("other", repr(value))


# Strict mode


@dataclass(frozen=True)
class _Place:
    """Where a subschema of the tap's schema is: its pointer and its field (None: none)."""

    pointer: str
    field: str | None

    def subject(self) -> str:
        return _subject(self.field, self.pointer)


@dataclass(frozen=True)
class _Edge:
    """How a validator goes from a subschema to another."""

    target: Mapping[str, t.Any]
    levels: int  # JSON levels (a $ref: 2)
    descends: bool  # to a value below (a member, an item), not the same value
    label: str  # for messages: "$ref '#/definitions/a'", "'allOf'"


@dataclass
class _Frame:
    """A subschema being measured by :meth:`_StrictCheck._check_depth`."""

    node: int
    edges: Iterator[_Edge]
    height: int = 0
    deepest: _Edge | None = None
    exploring: _Edge | None = None


class _StrictCheck:
    """The checks of strict mode (see the module docstring), each failure one line."""

    def __init__(self, root: Mapping[str, t.Any]) -> None:
        self._root = root
        self._places: dict[int, _Place] = {}
        self._edges: dict[int, list[_Edge]] = {}
        self._has_refs = False

    def run(self) -> None:
        """Run every check, cheapest and most specific first.

        Raises:
            SchemaProblemError: The first problem found.
        """
        self._walk()
        try:
            check_schema(self._root)
        except jsonschema.SchemaError as exc:
            path = list(exc.absolute_path)
            where = _Place(_pointer(path), _field_of(path))
            subject = "the schema" if where.field is None else where.subject()
            msg = (
                f"{subject} is not valid JSON Schema Draft 4 at {where.pointer} "
                f"({_shorten(exc.message, _MESSAGE_LIMIT)}); {_FIX_STRICT}"
            )
            raise SchemaProblemError(msg) from None
        self._check_loops()
        if self._has_refs:
            self._check_depth()

    def _walk(self) -> None:
        """Visit every subschema (through ``$ref`` too): types, patterns, refs; edges."""
        resolver = _Resolver(self._root)
        stack: list[tuple[object, _Place]] = [(self._root, _Place("#", ""))]
        while stack:
            node, place = stack.pop()
            if not isinstance(node, Mapping) or id(node) in self._places:
                continue
            self._places[id(node)] = place
            _check_node(node, place)
            edges = self._edges[id(node)] = []
            ref = node.get("$ref")
            if isinstance(ref, str):  # Draft 4: the siblings of $ref do not apply
                target, found = resolver.lookup(ref)
                if not found or not isinstance(target, Mapping | bool):
                    problem = (
                        resolver.problem(ref)
                        if not found
                        else f"$ref {_show(ref)}, which names something that is not a schema"
                    )
                    msg = f"{place.subject()} has {problem}; {_FIX_STRICT}"
                    raise SchemaProblemError(msg)
                if isinstance(target, Mapping):
                    self._has_refs = True
                    edges.append(_Edge(target, 2, descends=False, label=f"$ref {_show(ref)}"))
                    pointer = _shorten(ref if ref.startswith("#") else "#", _MESSAGE_LIMIT)
                    stack.append((target, _Place(pointer, place.field)))
            children = list(_draft4_children(node, place))
            for child in reversed(children):  # depth first, in the schema's order
                if child.descends is not None and not isinstance(ref, str):
                    edges.append(
                        _Edge(child.schema, child.levels, child.descends, f"'{child.keyword}'"),
                    )
                stack.append((child.schema, child.place))

    def _check_loops(self) -> None:
        """Refuse a loop that never goes down into the data: validators never end it."""
        done: set[int] = set()
        for start in self._edges:
            if start in done:
                continue
            active = {start}
            stack: list[tuple[int, Iterator[_Edge]]] = [(start, self._same_value_edges(start))]
            while stack:
                node, edges = stack[-1]
                for edge in edges:
                    target = id(edge.target)
                    if target in active:
                        place = self._places[node]
                        msg = (
                            f"{place.subject()} has a loop of $refs that never reaches a "
                            f"schema ({edge.label} at {place.pointer}); {_FIX_STRICT}"
                        )
                        raise SchemaProblemError(msg)
                    if target not in done:
                        active.add(target)
                        stack.append((target, self._same_value_edges(target)))
                        break
                else:
                    stack.pop()
                    active.discard(node)
                    done.add(node)

    def _same_value_edges(self, node: int) -> Iterator[_Edge]:
        return (edge for edge in self._edges.get(node, ()) if not edge.descends)

    def _check_depth(self) -> None:
        """Refuse a schema whose ``$ref`` chains nest deeper than ``MAX_SCHEMA_DEPTH``.

        The longest way down from the top, each subschema measured once; a way back to a
        subschema on the way counts its own step only (such recursion follows the data,
        whose depth the reader limits).
        """
        height: dict[int, int] = {}
        deepest: dict[int, _Edge | None] = {}
        root = id(self._root)
        stack = [_Frame(root, iter(self._edges.get(root, ())))]
        active = {root}
        while stack:
            frame = stack[-1]
            for edge in frame.edges:
                target = id(edge.target)
                if target not in active and target not in height:
                    frame.exploring = edge
                    active.add(target)
                    stack.append(_Frame(target, iter(self._edges.get(target, ()))))
                    break
                _raise_height(frame, edge, 0 if target in active else height[target])
            else:
                stack.pop()
                active.discard(frame.node)
                height[frame.node], deepest[frame.node] = frame.height, frame.deepest
                if stack and stack[-1].exploring is not None:
                    _raise_height(stack[-1], stack[-1].exploring, frame.height)
        if height[root] <= MAX_SCHEMA_DEPTH:
            return
        node, level = root, 0
        step = deepest[root]
        while step is not None and level <= MAX_SCHEMA_DEPTH:
            level += step.levels
            node = id(step.target)
            step = deepest[node]
        raise SchemaProblemError(_too_deep_at(self._places[node], refs=True))


def _raise_height(frame: _Frame, edge: _Edge, below: int) -> None:
    if edge.levels + below > frame.height:
        frame.height, frame.deepest = edge.levels + below, edge


def _too_deep_at(place: _Place, *, refs: bool) -> str:
    path = [part for part in place.pointer.lstrip("#").split("/") if part]
    return _too_deep(path, refs=refs)


def _check_node(node: Mapping[str, t.Any], place: _Place) -> None:
    """Refuse an unknown type name, a ``$ref`` that is not a text, a bad pattern.

    (Draft 4's metaschema does not describe ``$ref``: validators fail on any other value.)
    """
    if "$ref" in node and not isinstance(node["$ref"], str):
        msg = (
            f"{place.subject()} has '$ref': {_show(node['$ref'])}, which is not a reference "
            f"(a text); {_FIX_STRICT}"
        )
        raise SchemaProblemError(msg)
    declared = node.get("type")
    for name in declared if isinstance(declared, list) else [declared]:
        if isinstance(name, str) and name not in DRAFT4_TYPES:
            msg = (
                f"{place.subject()} has unknown type {_show(name)} (Stitch answers 'Invalid "
                f"JSON schema: unknown type'); {_FIX_STRICT}"
            )
            raise SchemaProblemError(msg)
    pattern = node.get("pattern")
    patterns = node.get("patternProperties")
    for text in [pattern, *(patterns if isinstance(patterns, Mapping) else ())]:
        problem = regex_problem(text) if isinstance(text, str) else None
        if problem is not None:
            msg = (
                f"{place.subject()} has pattern {_show(text)}, which is not a regular "
                f"expression ({problem}); {_FIX_STRICT}"
            )
            raise SchemaProblemError(msg)


class _Child(t.NamedTuple):
    """A subschema as Draft 4 reaches it from its parent."""

    keyword: str
    schema: Mapping[str, t.Any]
    place: _Place
    levels: int  # JSON levels below the parent (1 or 2)
    descends: bool | None  # to a member or item; None: ``definitions`` (through $ref only)


#: The Draft 4 keywords holding subschemas, ``definitions`` last: (keyword, field step,
#: descends). The step names the subschema's field from its parent's: a property's name,
#: ``*`` (any member), ``[]`` (each item), empty (the same field), None (not a field).
_DRAFT4_APPLICATORS: tuple[tuple[str, str | None, bool | None], ...] = (
    ("properties", "name", True),
    ("patternProperties", "*", True),
    ("additionalProperties", "*", True),
    ("items", "[]", True),
    ("additionalItems", "[]", True),
    ("dependencies", "", False),
    ("allOf", "", False),
    ("anyOf", "", False),
    ("oneOf", "", False),
    ("not", "", False),
    ("definitions", None, None),
)
_KEYED = frozenset({"properties", "patternProperties", "dependencies", "definitions"})


def _draft4_children(node: Mapping[str, t.Any], place: _Place) -> Iterator[_Child]:
    """Yield the subschemas of ``node`` as Draft 4 reads them (see ``_DRAFT4_APPLICATORS``)."""
    for keyword, step, descends in _DRAFT4_APPLICATORS:
        value = node.get(keyword)
        entries: list[tuple[tuple[str, ...], object]]
        if keyword in _KEYED:
            entries = (
                [((keyword, str(k)), v) for k, v in value.items()]
                if isinstance(value, Mapping)
                else []
            )
        elif isinstance(value, list):
            entries = [((keyword, str(index)), v) for index, v in enumerate(value)]
        else:
            entries = [((keyword,), value)]
        for segments, sub in entries:
            if not isinstance(sub, Mapping):
                continue
            escaped = (part.replace("~", "~0").replace("/", "~1") for part in segments)
            pointer = _shorten("/".join((place.pointer, *escaped)), 4 * _MESSAGE_LIMIT)
            name = _step(place.field, step, segments[-1])
            yield _Child(keyword, sub, _Place(pointer, name), len(segments), descends)


def _step(name: str | None, step: str | None, member: str) -> str | None:
    """The field of a subschema from its parent's (see ``_DRAFT4_APPLICATORS``)."""
    if name is None or step is None:
        return None
    if step == "name":
        return _member(name, member)
    if step == "*":
        return _member(name, "*")
    return _item(name) if step == "[]" else name


def _field_of(path: Sequence[object]) -> str | None:
    """The field a metaschema error's path is in (None: inside ``definitions``)."""
    name = ""
    index = 0
    while index < len(path):
        key = path[index]
        has_next = index + 1 < len(path)
        if key in ("definitions", "$defs"):
            return None
        if key == "properties" and has_next:
            name = _member(name, str(path[index + 1]))
            index += 2
        elif key == "patternProperties" and has_next:
            name = _member(name, "*")
            index += 2
        elif key == "additionalProperties" and has_next:
            name = _member(name, "*")
            index += 1
        elif key in ("items", "additionalItems") and has_next:
            name = _item(name)
            index += 2 if isinstance(path[index + 1], int) else 1
        else:
            index += 1
    return name


# Precision: numbers that break only ``multipleOf``.
#
# Stitch types a ``number`` column that carries ``multipleOf`` as a decimal and one
# without as floating point (target-stitch's decimal support, singer-io/target-stitch#19,
# #24). Log-based taps read decimals as binary floats and write the float's full
# expansion (``111.43999999999999772626324556767940521240234375`` for ``111.44``), which
# breaks the ``multipleOf: 0.01`` they declare; exact taps send ``111.44``. Relaxed mode
# sends such values as the tap wrote them and makes the field's step as fine as the value
# needs (a power of ten, ``1E-100`` for everyday expansions): the column stays a decimal,
# the schema still describes every value sent, and the values of taps that keep their own
# ``multipleOf`` see no change.

#: The finest step written into a schema (``1E-300``); a value needing a finer one gets
#: its field's ``multipleOf`` dropped instead (parsers that read numbers as doubles would
#: take anything finer for zero, which is not a valid ``multipleOf``).
MIN_STEP_EXPONENT = -300
#: Fractional steps are rounded down to a power of ten whose exponent is a multiple of
#: this, so that a field's step does not change from batch to batch or run to run with
#: each damaged value's length: binary-float expansions of everyday decimals need 40 to
#: 60 digits, and they all get ``1E-100``.
STEP_EXPONENT_LADDER = 100


@dataclass(frozen=True)
class PrecisionFix:
    """A ``multipleOf`` of the schema sent that one value breaks, and its finer step.

    Attributes:
        path: Where the ``multipleOf`` keyword is, as schema keys from the root
            (``("properties", "balance", "multipleOf")``).
        field: The top-level field whose value breaks it (for messages).
        step: The new step (a power of ten dividing the old step and the value), or None
            to drop the keyword.
    """

    path: tuple[str | int, ...]
    field: str
    step: decimal.Decimal | None


def _ten_exponent(number: decimal.Decimal) -> int:
    """Return the largest ``e`` such that the finite, non-zero ``number`` is a multiple of 10**e.

    Exact at any number of digits (``Decimal.normalize`` would round to the context's 28).
    """
    _, digits, exponent = number.as_tuple()
    zeros = len(digits) - len(bytes(digits).rstrip(b"\0"))
    return t.cast("int", exponent) + zeros


def finer_step(step: object, value: object) -> decimal.Decimal | None:
    """Return a power of ten that divides both ``step`` and ``value``, or None when too fine.

    Every multiple of ``step`` (``c * 10**e``, ``c`` an integer) is a multiple of the
    result, and so is ``value``: a schema with the result in place of ``step`` accepts
    every value the old one did, and ``value``. A fractional result is rounded down the
    :data:`STEP_EXPONENT_LADDER` (``1E-100``, ``1E-200``, ``1E-300``).

    Args:
        step: The ``multipleOf`` the value breaks (a positive number).
        value: The finite number that breaks it.
    """
    exponents = []
    for given in (step, value):
        number = decimal.Decimal(repr(given)) if isinstance(given, float) else given
        if isinstance(number, int) and not isinstance(number, bool):
            number = decimal.Decimal(number)
        if not isinstance(number, decimal.Decimal) or not number.is_finite():
            return None
        if number:
            exponents.append(_ten_exponent(number))
    exponent = min(exponents, default=0)
    if exponent < 0:
        rungs = (-exponent + STEP_EXPONENT_LADDER - 1) // STEP_EXPONENT_LADDER
        exponent = -rungs * STEP_EXPONENT_LADDER
    if exponent < MIN_STEP_EXPONENT:
        return None
    return decimal.Decimal((0, (1,), exponent))


def precision_fixes(errors: Iterable[t.Any]) -> list[PrecisionFix]:
    """Return the fixes for the ``multipleOf`` failures among jsonschema ``errors``.

    Looks into the branches of ``anyOf``/``oneOf`` failures too (``error.context``). Other
    failures are left alone: the caller re-checks the record once the fixes are applied.
    """
    fixes: dict[tuple[str | int, ...], PrecisionFix] = {}
    pending = list(errors)
    while pending:
        error = pending.pop()
        pending.extend(error.context or ())
        if error.validator != "multipleOf":
            continue
        path = tuple(error.absolute_schema_path)
        field_path = list(error.absolute_path)
        name = str(field_path[0]) if field_path else "(the record)"
        step = finer_step(error.validator_value, error.instance)
        known = fixes.get(path)
        if known is not None and (known.step is None or (step is not None and known.step <= step)):
            continue
        fixes[path] = PrecisionFix(path, name, step)
    return list(fixes.values())


def apply_precision(schema: dict[str, t.Any], fixes: Iterable[PrecisionFix]) -> list[PrecisionFix]:
    """Apply ``fixes`` to ``schema`` in place; return those that changed it.

    A fix whose path is not in the schema (a later SCHEMA of the stream dropped the field)
    or whose step is not finer than the schema's is skipped.
    """
    changed = []
    for fix in fixes:
        node = _schema_at(schema, fix.path[:-1])
        keyword = fix.path[-1]
        if not isinstance(node, dict) or keyword not in node:
            continue
        current = node[keyword]
        if fix.step is None:
            del node[keyword]
        elif _is_number(current) and current > fix.step:
            node[keyword] = fix.step
        else:
            continue
        changed.append(fix)
    return changed


def _schema_at(schema: object, path: Sequence[str | int]) -> object:
    """Return the part of ``schema`` at ``path`` (keys and indexes), or None when absent."""
    node = schema
    for key in path:
        if isinstance(node, dict):
            if key not in node:
                return None
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node
