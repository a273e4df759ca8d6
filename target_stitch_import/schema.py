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
``additionalProperties: false``). :attr:`SchemaMode.STRICT` sends the tap's schema as is.

Relaxed, in detail:

* ``null`` joins every ``type`` (and ``enum``) at every depth: properties, ``items``
  (also tuple form), ``additionalItems``, ``additionalProperties``, ``patternProperties``,
  ``anyOf``/``oneOf``/``allOf`` branches. Top-level key properties keep what they declare.
* ``$ref`` to ``#``, ``#/definitions/..``, ``#/$defs/..`` (any local JSON pointer) or an
  ``$anchor`` is inlined; a ref back into a schema being inlined, or one that cannot be
  resolved locally, becomes ``{}`` (anything). Siblings of ``$ref`` (2019+) are kept.
* ``const: v`` → ``enum: [v]``; numeric ``exclusiveMinimum: n`` → ``minimum: n,
  exclusiveMinimum: true`` (likewise maximum); ``prefixItems`` → tuple ``items`` (a
  2020-12 ``items`` next to it → ``additionalItems``); ``oneOf`` → ``anyOf`` (nullable
  branches all match null, and taps' branches overlap: 1 is "integer" and "number");
  boolean subschemas → ``{}``.
* Dropped: ``required`` below the top (the top keeps the key properties),
  ``additionalProperties``/``additionalItems`` ``false``, name-list ``dependencies``,
  ``not``, unknown type names (no ``type`` at all if none is left), ``definitions``/
  ``$defs`` and the keywords in :data:`DROPPED_KEYWORDS`; values Draft 4's metaschema
  rejects (an empty ``enum``, ``maxLength: -1``) are dropped, ``255.0`` becomes ``255``.
* Kept as they are: ``format``, ``multipleOf``, bounds, ``pattern``, and vendor keywords
  (``x-sql-datatype``, ``inclusion``).
"""

from __future__ import annotations

import copy
import decimal
import enum
import math
import operator
import typing as t
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

if t.TYPE_CHECKING:
    from collections.abc import Sequence


class SchemaMode(str, enum.Enum):
    """How the tap's schema becomes the schema sent with each batch."""

    RELAXED = "relaxed"
    STRICT = "strict"


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

#: Draft 4 keywords whose value must be a non-negative integer.
_COUNT_KEYWORDS: frozenset[str] = frozenset(
    {"maxLength", "minLength", "maxItems", "minItems", "maxProperties", "minProperties"},
)

#: Keywords whose value is handled by a ``_Relaxer`` method of the same name.
_HANDLED: dict[str, str] = {
    "type": "_type",
    "enum": "_enum",
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

#: Keywords that only describe; a ``$ref``'s siblings of this kind never force an ``allOf``.
_ANNOTATIONS: frozenset[str] = frozenset({"title", "description", "default", "format"})

#: Keywords translated together after the others (``const`` and the numeric bounds).
_BOUND_KEYWORDS: frozenset[str] = frozenset(
    {"const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
)

#: Draft 4 keywords that must hold a string.
_STRING_KEYWORDS: frozenset[str] = frozenset({"title", "description", "pattern", "format"})


def adapt_schema(
    schema: Mapping[str, t.Any],
    key_properties: Sequence[str],
    mode: SchemaMode | str,
) -> dict[str, t.Any]:
    """Return the schema to send to Stitch for a stream.

    Args:
        schema: The ``schema`` of the tap's SCHEMA message; never modified.
        key_properties: The stream's key properties (top-level property names).
        mode: ``strict`` returns a deep copy of ``schema``; ``relaxed`` returns valid
            JSON Schema Draft 4 in which every value may be null except the top-level
            key properties, local ``$ref`` are inlined (a recursive one becomes ``{}``),
            later drafts' keywords are translated (``const``, numeric
            ``exclusiveMinimum``/``exclusiveMaximum``, ``prefixItems``, ``oneOf`` becomes
            ``anyOf``) or dropped, unknown type names are dropped, and ``required`` is
            the key properties at the top level and absent below it.

    Returns:
        A new schema whose top level has ``properties`` and a ``type`` that includes
        ``object`` (in ``relaxed`` mode).

    Raises:
        ValueError: ``mode`` is not a :class:`SchemaMode` value.
    """
    if SchemaMode(mode) is SchemaMode.STRICT:
        return copy.deepcopy(dict(schema))
    keys = tuple(dict.fromkeys(key_properties))
    top = _Relaxer(schema).convert(schema, _Scope(nullable=False, keys=frozenset(keys)))
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
    return top


@dataclass(frozen=True)
class _Scope:
    """Where a subschema sits: must it accept null, and which of its properties are keys."""

    nullable: bool
    keys: frozenset[str] = frozenset()


_ANYWHERE = _Scope(nullable=True)

_Handler = t.Callable[[dict[str, t.Any], str, t.Any, _Scope], None]


class _Relaxer:
    """One adaptation: the raw root (for ``$ref``) and the refs being inlined."""

    def __init__(self, root: Mapping[str, t.Any]) -> None:
        self._root = root
        self._resolving: list[int] = [id(root)]  # id() of the raw targets being inlined
        self._anchors: dict[str, t.Any] | None = None
        base = root.get("$id", root.get("id"))
        self._base = base.split("#", 1)[0] if isinstance(base, str) else ""
        self._handlers: dict[str, _Handler] = {
            keyword: getattr(self, method) for keyword, method in _HANDLED.items()
        }

    def convert(self, node: object, scope: _Scope) -> dict[str, t.Any]:
        """Return the relaxed Draft 4 form of one (sub)schema.

        Args:
            node: The raw subschema (a boolean or anything not an object means anything).
            scope: Whether null must be accepted here, and the key properties (top level).

        Returns:
            A new schema sharing nothing with ``node``.
        """
        if not isinstance(node, Mapping):
            return {}
        ref = node.get("$ref")
        if isinstance(ref, str):
            return self._with_ref(node, ref, scope)
        out: dict[str, t.Any] = {}
        for key, value in node.items():
            if key in DROPPED_KEYWORDS or key in _BOUND_KEYWORDS or key == "$ref":
                continue
            handler = self._handlers.get(key)
            if handler is not None:
                handler(out, key, value, scope)
            else:
                _copy_plain(out, key, value)
        _bounds(node, out)
        if "const" in node:
            out["enum"] = _unique([node["const"]])
        if scope.nullable:
            _add_null(out)
        return out

    # $ref

    def _with_ref(self, node: Mapping[str, t.Any], ref: str, scope: _Scope) -> dict[str, t.Any]:
        target, found = self._lookup(ref)
        if not found or id(target) in self._resolving:
            resolved: dict[str, t.Any] = {}  # unresolvable or recursive: anything
        else:
            self._resolving.append(id(target))
            try:
                resolved = self.convert(target, scope)
            finally:
                self._resolving.pop()
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        rest = self.convert(siblings, scope) if siblings else {}
        if not rest or not resolved:
            return rest or resolved
        if (resolved.keys() & rest.keys()) - _ANNOTATIONS:
            return {"allOf": [resolved, rest]}
        return {**resolved, **rest}

    def _lookup(self, ref: str) -> tuple[object, bool]:
        """Return ``(subschema, found)`` for a local ref (``#``, ``#/a/b``, ``#anchor``)."""
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

    def _anchor_map(self) -> dict[str, t.Any]:
        if self._anchors is None:
            self._anchors = {}
            _collect_anchors(self._root, self._anchors)
        return self._anchors

    # Keyword handlers

    def _type(self, out: dict[str, t.Any], _key: str, value: object, _scope: _Scope) -> None:
        names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        known = list(dict.fromkeys(n for n in names if isinstance(n, str) and n in DRAFT4_TYPES))
        if known:
            out["type"] = value if isinstance(value, str) and known == [value] else known

    def _enum(self, out: dict[str, t.Any], _key: str, value: object, _scope: _Scope) -> None:
        if isinstance(value, list) and value:
            out["enum"] = _unique(value)

    def _schema_map(self, out: dict[str, t.Any], key: str, value: object, scope: _Scope) -> None:
        if not isinstance(value, Mapping):
            return
        keys = scope.keys if key == "properties" else frozenset()
        out[key] = {
            name: self.convert(sub, _Scope(nullable=False) if name in keys else _ANYWHERE)
            for name, sub in value.items()
        }

    def _additional(self, out: dict[str, t.Any], key: str, value: object, _scope: _Scope) -> None:
        # ``false`` is dropped: taps send more fields (and longer tuples) than they declare.
        if isinstance(value, Mapping):
            out[key] = self.convert(value, _ANYWHERE)

    def _items(self, out: dict[str, t.Any], _key: str, value: object, _scope: _Scope) -> None:
        if isinstance(value, list):
            if value:
                out["items"] = [self.convert(sub, _ANYWHERE) for sub in value]
        elif isinstance(value, Mapping):
            # After ``prefixItems`` (2020-12), ``items`` is the schema of the rest.
            target = "additionalItems" if isinstance(out.get("items"), list) else "items"
            out[target] = self.convert(value, _ANYWHERE)

    def _prefix_items(
        self, out: dict[str, t.Any], _key: str, value: object, _scope: _Scope
    ) -> None:
        if not isinstance(value, list) or not value:
            return
        rest = out.pop("items", None)
        out["items"] = [self.convert(sub, _ANYWHERE) for sub in value]
        if isinstance(rest, dict):
            out["additionalItems"] = rest

    def _combinator(self, out: dict[str, t.Any], key: str, value: object, scope: _Scope) -> None:
        if not isinstance(value, list) or not value:
            return
        branches = [self.convert(sub, scope) for sub in value]
        if key == "allOf":
            out.setdefault("allOf", []).extend(branches)
        elif "anyOf" in out:
            out.setdefault("allOf", []).append({"anyOf": branches})
        else:
            # ``oneOf`` becomes ``anyOf``: nullable branches all match null, and taps'
            # branches overlap anyway (an integer matches "integer" and "number").
            out["anyOf"] = branches

    def _dependencies(
        self, out: dict[str, t.Any], _key: str, value: object, _scope: _Scope
    ) -> None:
        # Property dependencies (lists of names) are requirements and go, like ``required``.
        if not isinstance(value, Mapping):
            return
        kept = {
            name: self.convert(sub, _ANYWHERE)
            for name, sub in value.items()
            if isinstance(sub, Mapping)
        }
        if kept:
            out["dependencies"] = kept

    def _multiple_of(self, out: dict[str, t.Any], _key: str, value: object, _scope: _Scope) -> None:
        if _is_number(value) and value > 0:
            out["multipleOf"] = value

    def _unique_items(
        self, out: dict[str, t.Any], _key: str, value: object, _scope: _Scope
    ) -> None:
        if isinstance(value, bool):
            out["uniqueItems"] = value


def _copy_plain(out: dict[str, t.Any], key: str, value: object) -> None:
    """Copy a keyword without subschemas, when its value is valid Draft 4."""
    if key in _STRING_KEYWORDS:
        if isinstance(value, str):
            out[key] = value
    elif key in _COUNT_KEYWORDS:
        count = _count(value)
        if count is not None:
            out[key] = count
    else:  # default, and vendor keywords (``x-sql-datatype``, ``inclusion``): kept
        out[key] = copy.deepcopy(value)


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


def _is_number(value: object) -> t.TypeGuard[int | float | decimal.Decimal]:
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def _count(value: object) -> int | None:
    """A Draft 4 non-negative integer from ``value`` (``255.0`` -> ``255``), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
        return None
    if not math.isfinite(value) or value < 0 or value != int(value):
        return None
    return int(value)


def _bounds(node: Mapping[str, t.Any], out: dict[str, t.Any]) -> None:
    """Translate ``minimum``/``maximum`` and both ``exclusive*`` forms to Draft 4."""
    for bound, exclusive, at_least_as_strict in (
        ("minimum", "exclusiveMinimum", operator.ge),
        ("maximum", "exclusiveMaximum", operator.le),
    ):
        limit = node.get(bound)
        limit = limit if _is_number(limit) else None
        flag = node.get(exclusive)
        if _is_number(flag):  # draft 6+: the exclusive bound itself
            if limit is None or at_least_as_strict(flag, limit):
                out[bound], out[exclusive] = flag, True
            else:
                out[bound] = limit
        elif limit is not None:
            out[bound] = limit
            if flag is True:  # the Draft 4 form, valid only next to its bound
                out[exclusive] = True


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
