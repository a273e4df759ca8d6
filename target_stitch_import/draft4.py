"""JSON Schema Draft 4 record validation as Stitch applies it, with exact numbers.

Shared by the target (local validation against the schema it sends) and the emulator
(validation of every record of a batch), so both fail on exactly the same records.
Records are read with numbers as ``Decimal``; ``multipleOf`` is checked with exact
rational arithmetic (``-2341.62`` is a multiple of ``0.01``; a value of 40 significant
digits against ``1e-38`` neither overflows a decimal context nor rounds). Formats are not
checked.

:func:`compile_draft4` turns a schema into a :class:`Draft4Checker`: nested closures built
once per schema that give the jsonschema validator's valid/invalid verdict at a fraction of
its cost. Only invalid records go on to the jsonschema validator, for its error. A schema
the compiler does not fully model (an ``id``, a ``$ref`` other than a local JSON pointer, a
keyword value the metaschema would refuse) is left to jsonschema entirely.
"""

# ruff: noqa: SIM110 - explicit loops: a generator per call costs twice as much here

from __future__ import annotations

import decimal
import fractions
import re
import typing as t
from collections.abc import Callable
from urllib.parse import unquote

import jsonschema
from jsonschema import Draft4Validator, ValidationError
from jsonschema._utils import equal, uniq
from jsonschema_specifications import REGISTRY as _METASCHEMAS

if t.TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

#: A compiled check: is the value valid? (Called only with values it applies to.)
_Test = Callable[[t.Any], bool]

_ARITHMETIC_ERRORS = (ValueError, TypeError, ZeroDivisionError, OverflowError)


def _exact(number: object) -> fractions.Fraction:
    if isinstance(number, float):
        return fractions.Fraction(repr(number))
    return fractions.Fraction(number)  # type: ignore[call-overload]


def _never(_: object) -> bool:
    return False


def _always(_: object) -> bool:
    return True


def _multiple_test(multiple: object) -> _Test:
    """Return whether a number is an exact multiple of ``multiple``.

    Floats count by their shortest repr (``0.1`` is 1/10), Decimals digit for digit. A
    non-finite number fails, and so does every number when ``multiple`` is zero or not a
    number.
    """
    try:
        divisor = _exact(multiple)
        numerator, denominator = divisor.numerator, divisor.denominator
        _ = 1 / divisor
    except _ARITHMETIC_ERRORS:
        return _never

    def test(number: object) -> bool:
        if type(number) is int:  # number / divisor == number * denominator / numerator
            return number * denominator % numerator == 0
        if isinstance(number, decimal.Decimal):
            if not number.is_finite():
                return False
            top, bottom = number.as_integer_ratio()
            return top * denominator % (bottom * numerator) == 0
        try:
            return (_exact(number) / divisor).denominator == 1
        except _ARITHMETIC_ERRORS:
            return False

    return test


def _multiple_of(
    validator: jsonschema.protocols.Validator,
    multiple: object,
    instance: object,
    schema: t.Mapping[str, t.Any],
) -> Iterator[ValidationError]:
    _ = schema
    if validator.is_type(instance, "number") and not _multiple_test(multiple)(instance):
        yield ValidationError(f"{instance} is not a multiple of {multiple}")


ExactDraft4Validator = jsonschema.validators.extend(
    Draft4Validator,
    validators={"multipleOf": _multiple_of},
)


def regex_problem(pattern: str) -> str | None:
    """Return why ``pattern`` is not a regular expression Python can check, or None."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    return None


def check_schema(schema: t.Mapping[str, t.Any]) -> None:
    """Check a schema against the Draft 4 metaschema.

    Raises:
        jsonschema.SchemaError: The schema is not valid Draft 4.
    """
    ExactDraft4Validator.check_schema(schema)


def draft4_validator(
    schema: t.Mapping[str, t.Any],
    *,
    check: bool = True,
) -> jsonschema.protocols.Validator:
    """Return a Draft 4 validator (exact ``multipleOf``, no format checks) for ``schema``.

    Only the metaschemas resolve as ``$ref`` targets: remote references are never fetched.

    Args:
        schema: The schema records are checked against.
        check: First check the schema against the Draft 4 metaschema.

    Raises:
        jsonschema.SchemaError: The schema is not valid Draft 4.
    """
    if check:
        check_schema(schema)
    return ExactDraft4Validator(schema, registry=_METASCHEMAS)


def error_pointer(error: ValidationError) -> str:
    """Return the JSON pointer of the failing value, everit-style (``#/items/0/price``)."""
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in error.absolute_path]
    return "#/" + "/".join(parts) if parts else "#"


class Draft4Checker:
    """A schema compiled for fast verdicts; its jsonschema validator explains failures.

    Build one with :func:`compile_draft4`. Thread-safe: nothing changes after compilation.

    Attributes:
        validator: The jsonschema validator of the schema (the reference for verdicts).
    """

    def __init__(self, validator: jsonschema.protocols.Validator, root: _Node | None) -> None:
        """Pair ``validator`` with the compiled ``root`` (None: jsonschema decides alone)."""
        self.validator = validator
        self._root = root

    @property
    def compiled(self) -> bool:
        """Whether verdicts come from the compiled checks (False: from jsonschema alone)."""
        return self._root is not None

    def is_valid(self, instance: object) -> bool:
        """Return the jsonschema validator's verdict on ``instance``, quickly.

        When the compiled checks raise (a non-JSON value they cannot compare, nesting too
        deep), jsonschema decides, raising what it raises.
        """
        root = self._root
        if root is None:
            return bool(self.validator.is_valid(instance))
        try:
            return type(instance) in root.fast or root.check(instance)
        except Exception:  # noqa: BLE001 - any failure of the fast path: the reference decides
            return bool(self.validator.is_valid(instance))

    def first_error(self, instance: object) -> ValidationError | None:
        """Return jsonschema's best-matching error for ``instance``, or None when it is valid.

        The error is ``jsonschema.exceptions.best_match`` over all of the validator's errors.
        """
        if self.is_valid(instance):
            return None
        return jsonschema.exceptions.best_match(self.validator.iter_errors(instance))


def compile_draft4(schema: t.Mapping[str, t.Any], *, check: bool = True) -> Draft4Checker:
    """Compile ``schema`` into a :class:`Draft4Checker` (see :func:`draft4_validator`).

    Args:
        schema: The schema records are checked against.
        check: First check the schema against the Draft 4 metaschema.

    Raises:
        jsonschema.SchemaError: The schema is not valid Draft 4.
    """
    validator = draft4_validator(schema, check=check)
    try:
        root: _Node | None = _Compiler(schema).node(schema)
    except Exception:  # noqa: BLE001 - whatever the compiler does not model, jsonschema does
        root = None
    return Draft4Checker(validator, root)


# The compiler. A compiled (sub)schema is a _Node: a value ``x`` is valid exactly when
# ``type(x) in node.fast or node.check(x)``. ``check`` alone is always right; ``fast`` holds
# the JSON classes that no keyword of the schema can refuse (``str`` for ``{"type":
# ["null", "string"]}``), so parents skip the call for them. ``check`` dispatches on the
# value's class: a value of a class parsed JSON is made of meets only the tests that concern
# it (its Draft 4 types follow from its class); any other value (a datetime, a tuple, a
# number of another kind) is typed by jsonschema's own type checker.

_TYPE_CLASSES: dict[str, frozenset[type]] = {
    "array": frozenset({list}),
    "boolean": frozenset({bool}),
    "integer": frozenset({int}),
    "null": frozenset({type(None)}),
    "number": frozenset({int, float, decimal.Decimal}),
    "object": frozenset({dict}),
    "string": frozenset({str}),
}
#: The classes of parsed JSON values; Draft 4 types of any other class are asked of jsonschema.
_JSON_CLASSES: frozenset[type] = frozenset().union(*_TYPE_CLASSES.values())
_NOTHING: frozenset[type] = frozenset()
#: Which keywords concern a JSON class besides the general ones (string, number...).
_KIND_OF: dict[type, str] = {
    cls: kind for kind in ("string", "number", "object", "array") for cls in _TYPE_CLASSES[kind]
}

#: Keywords the validator applies; a schema using one the compiler lacks is not compiled.
_APPLIED = frozenset(ExactDraft4Validator.VALIDATORS) - {"$ref"}
_MODELLED = frozenset(
    {
        *("type", "enum", "allOf", "anyOf", "oneOf", "not", "format"),
        *("minLength", "maxLength", "pattern", "minimum", "maximum", "multipleOf"),
        *("properties", "patternProperties", "additionalProperties", "required"),
        *("minProperties", "maxProperties", "dependencies"),
        *("items", "additionalItems", "minItems", "maxItems", "uniqueItems"),
    },
)
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")


class _UnsupportedError(Exception):
    """Internal: the schema uses something only jsonschema handles."""


def _unsupported() -> t.NoReturn:
    raise _UnsupportedError


class _Node:
    """One compiled (sub)schema (see the comment above :data:`_TYPE_CLASSES`)."""

    __slots__ = ("check", "done", "fast")

    def __init__(self) -> None:
        self.fast: frozenset[type] = _NOTHING
        self.check: _Test = _never
        self.done = False

    def late_check(self, value: object) -> bool:
        """Run :attr:`check` as it is when called (for a ``$ref`` back to this node)."""
        return self.check(value)


def _of_types(names: Sequence[str]) -> _Test:
    """Return jsonschema's test of ``type: names`` (for values of other than JSON classes)."""
    is_type = ExactDraft4Validator.TYPE_CHECKER.is_type
    return lambda value: any(is_type(value, name) for name in names)


def _guarded(kind: str, tests: list[_Test]) -> _Test:
    """Return a test applying ``tests`` to values of the Draft 4 type ``kind`` only."""
    is_kind = _of_types((kind,))
    rest = _all(tests)
    return lambda value: not is_kind(value) or rest(value)


def _all(tests: Sequence[_Test]) -> _Test:
    """Return the conjunction of ``tests`` (checked in order, stopping at a failure)."""
    if not tests:
        return _always
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:  # noqa: PLR2004 - the common pair, without a loop
        first, second = tests
        return lambda value: first(value) and second(value)
    chain = tuple(tests)

    def test(value: object) -> bool:
        for each in chain:
            if not each(value):
                return False
        return True

    return test


def _count(value: object) -> int:
    if type(value) is not int:
        _unsupported()
    return value


def _bound(value: object) -> object:
    if type(value) not in _TYPE_CLASSES["number"]:
        _unsupported()
    return value


def _names(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        _unsupported()
    return tuple(value)


def _type_names(value: object) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else _names(value)
    if not all(name in _TYPE_CLASSES for name in names):
        _unsupported()
    return names


def _resolve(root: dict[str, t.Any], ref: str) -> object:
    """Return the target of a local ``$ref`` exactly as jsonschema's resolver finds it.

    Raises:
        _UnsupportedError: Not a JSON pointer into the root schema, it names nothing, or it
            passes through an object with an ``id`` (which would move the base URI).
    """
    if not ref.startswith("#"):
        _unsupported()
    fragment = ref[1:]
    if not fragment:
        return root
    if not fragment.startswith("/"):
        _unsupported()
    contents: object = root
    for segment in unquote(fragment[1:]).split("/"):
        if isinstance(contents, list) and _ARRAY_INDEX.fullmatch(segment):
            index = int(segment)
            if index >= len(contents):
                _unsupported()
            contents = contents[index]
        elif isinstance(contents, dict):
            key = segment.replace("~1", "/").replace("~0", "~")
            if key not in contents:
                _unsupported()
            contents = contents[key]
        else:
            _unsupported()
        if isinstance(contents, dict) and "id" in contents:
            _unsupported()
    return contents


class _Compiler:
    """Compiles the subschemas of one root schema, each dict once."""

    def __init__(self, root: t.Mapping[str, t.Any]) -> None:
        if not isinstance(root, dict):
            _unsupported()
        self._root: dict[str, t.Any] = root
        self._nodes: dict[int, _Node] = {}

    def node(self, schema: object) -> _Node:
        """Return the compiled form of a subschema (compiling it on first sight)."""
        if not isinstance(schema, dict):
            _unsupported()
        node = self._nodes.get(id(schema))
        if node is None:
            node = self._nodes[id(schema)] = _Node()
            node.fast, node.check = self._build(schema)
            node.done = True
        elif not node.done:  # a cycle of Python objects, not of $refs
            _unsupported()
        return node

    def _build(self, schema: dict[str, t.Any]) -> tuple[frozenset[type], _Test]:
        ref = schema.get("$ref")
        if ref is not None:  # Draft 4: a $ref's siblings are ignored
            return self._reference(ref)
        if "id" in schema or not _MODELLED.issuperset(schema.keys() & _APPLIED):
            _unsupported()
        names = _type_names(schema["type"]) if "type" in schema else None
        by_kind = {
            "string": self._string_tests(schema),
            "number": self._number_tests(schema),
            "object": self._object_tests(schema),
            "array": self._array_tests(schema),
        }
        general = self._general_tests(schema)
        # Values of the JSON classes go straight to the tests that concern their class.
        by_class: dict[type, _Test] = {}
        for cls in _JSON_CLASSES:
            if names is not None and not any(cls in _TYPE_CLASSES[name] for name in names):
                by_class[cls] = _never
            else:
                by_class[cls] = _all([*by_kind.get(_KIND_OF.get(cls, ""), []), *general])
        # Any other value: jsonschema's type checker says which tests apply.
        other = _all(
            [
                *([_of_types(names)] if names is not None else []),
                *(_guarded(kind, tests) for kind, tests in by_kind.items() if tests),
                *general,
            ],
        )
        fast = frozenset(cls for cls, test in by_class.items() if test is _always)
        return fast, lambda value: by_class.get(type(value), other)(value)

    def _reference(self, ref: object) -> tuple[frozenset[type], _Test]:
        if not isinstance(ref, str):
            _unsupported()
        target = _resolve(self._root, ref)
        pending = self._nodes.get(id(target))
        if pending is not None and not pending.done:  # recursive: look the check up late
            return _NOTHING, pending.late_check
        node = self.node(target)
        return node.fast, node.check

    def _pair(self, schema: object) -> tuple[frozenset[type], _Test]:
        node = self.node(schema)
        return node.fast, node.check

    @staticmethod
    def _string_tests(schema: dict[str, t.Any]) -> list[_Test]:
        tests: list[_Test] = []
        if "minLength" in schema:
            shortest = _count(schema["minLength"])
            tests.append(lambda value: len(value) >= shortest)
        if "maxLength" in schema:
            longest = _count(schema["maxLength"])
            tests.append(lambda value: len(value) <= longest)
        if "pattern" in schema:
            pattern = schema["pattern"]
            if not isinstance(pattern, str):
                _unsupported()
            search = re.compile(pattern).search
            tests.append(lambda value: search(value) is not None)
        return tests

    @staticmethod
    def _number_tests(schema: dict[str, t.Any]) -> list[_Test]:
        tests: list[_Test] = []
        # The comparisons are jsonschema's, negated: a NaN compares as it does there.
        if "minimum" in schema:
            low: t.Any = _bound(schema["minimum"])
            if schema.get("exclusiveMinimum", False):
                tests.append(lambda value: not value <= low)
            else:
                tests.append(lambda value: not value < low)
        if "maximum" in schema:
            high: t.Any = _bound(schema["maximum"])
            if schema.get("exclusiveMaximum", False):
                tests.append(lambda value: not value >= high)
            else:
                tests.append(lambda value: not value > high)
        if "multipleOf" in schema:
            tests.append(_multiple_test(schema["multipleOf"]))
        return tests

    def _object_tests(self, schema: dict[str, t.Any]) -> list[_Test]:
        tests: list[_Test] = []
        members = self._members_test(schema)
        if members is not None:
            tests.append(members)
        if "minProperties" in schema:
            fewest = _count(schema["minProperties"])
            tests.append(lambda value: len(value) >= fewest)
        if "maxProperties" in schema:
            most = _count(schema["maxProperties"])
            tests.append(lambda value: len(value) <= most)
        if "dependencies" in schema:
            tests.append(self._dependencies_test(schema["dependencies"]))
        return tests

    def _members_test(self, schema: dict[str, t.Any]) -> _Test | None:
        """``required`` and the members' schemas, in one pass over the members.

        ``properties``, ``patternProperties`` and ``additionalProperties`` apply to each
        member in turn.
        """
        required = frozenset(_names(schema["required"])) if "required" in schema else None
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        if not isinstance(properties, dict) or not isinstance(patterns, dict):
            _unsupported()
        named = {name: self._pair(sub) for name, sub in properties.items()}
        matched = tuple(
            (re.compile(pattern).search, *self._pair(sub)) for pattern, sub in patterns.items()
        )
        additional = schema.get("additionalProperties", True)
        if isinstance(additional, dict):
            extra: tuple[frozenset[type], _Test] | None = self._pair(additional)
        elif not additional:
            extra = (_NOTHING, _never)
        else:
            extra = None
        if extra is None and not matched:
            if not named:
                return None if required is None else lambda value: value.keys() >= required
            return _properties_test(required, named)
        # jsonschema tells extra members by one regex joining the patterns, exactly so.
        joined = "|".join(patterns)
        covered = re.compile(joined).search if joined else None
        return _members_test(required, named, matched, extra, covered)

    def _dependencies_test(self, dependencies: object) -> _Test:
        if not isinstance(dependencies, dict):
            _unsupported()
        needs: list[tuple[str, frozenset[str]]] = []
        implies: list[tuple[str, frozenset[type], _Test]] = []
        for name, dependency in dependencies.items():
            if isinstance(dependency, list):
                needs.append((name, frozenset(_names(dependency))))
            else:
                implies.append((name, *self._pair(dependency)))
        return _dependencies_test(tuple(needs), tuple(implies))

    def _array_tests(self, schema: dict[str, t.Any]) -> list[_Test]:
        tests: list[_Test] = []
        items = schema.get("items", {})
        if isinstance(items, dict):
            if "items" in schema:
                tests.append(_every_item_test(*self._pair(items)))
        elif isinstance(items, list):
            tests.append(_leading_items_test(tuple(self._pair(sub) for sub in items)))
            more = schema.get("additionalItems", True)
            if isinstance(more, dict):
                start = len(items)
                fast, check = self._pair(more)
                every = _every_item_test(fast, check)
                tests.append(lambda value: every(value[start:]))
            elif not more:
                longest = len(items)
                tests.append(lambda value: len(value) <= longest)
        else:
            _unsupported()
        if "minItems" in schema:
            fewest = _count(schema["minItems"])
            tests.append(lambda value: len(value) >= fewest)
        if "maxItems" in schema:
            most = _count(schema["maxItems"])
            tests.append(lambda value: len(value) <= most)
        if schema.get("uniqueItems", False):
            tests.append(uniq)
        return tests

    def _general_tests(self, schema: dict[str, t.Any]) -> list[_Test]:
        tests: list[_Test] = []
        if "enum" in schema:
            tests.append(_enum_test(schema["enum"]))
        if "allOf" in schema:
            tests.append(_all([self._test(sub) for sub in _schemas(schema["allOf"])]))
        if "anyOf" in schema:
            tests.append(_any_test(tuple(self._pair(sub) for sub in _schemas(schema["anyOf"]))))
        if "oneOf" in schema:
            tests.append(_one_test(tuple(self._pair(sub) for sub in _schemas(schema["oneOf"]))))
        if "not" in schema:
            negated = self._test(schema["not"])
            tests.append(lambda value: not negated(value))
        return tests

    def _test(self, schema: object) -> _Test:
        """Return a subschema's complete test (its fast classes folded in)."""
        fast, check = self._pair(schema)
        if not fast:
            return check
        return lambda value: type(value) in fast or check(value)


def _schemas(value: object) -> list[object]:
    if not isinstance(value, list):
        _unsupported()
    return value


def _dependencies_test(
    needs: tuple[tuple[str, frozenset[str]], ...],
    implies: tuple[tuple[str, frozenset[type], _Test], ...],
) -> _Test:
    def test(value: dict[str, object]) -> bool:
        for name, names in needs:
            if name in value and not value.keys() >= names:
                return False
        for name, fast, check in implies:
            if name in value and type(value) not in fast and not check(value):
                return False
        return True

    return test


def _properties_test(
    required: frozenset[str] | None,
    named: dict[str, tuple[frozenset[type], _Test]],
) -> _Test:
    entries = tuple((name, fast, check) for name, (fast, check) in named.items())

    def test(value: dict[str, object]) -> bool:
        if required is not None and not value.keys() >= required:
            return False
        for name, fast, check in entries:
            if name in value:
                member = value[name]
                if type(member) not in fast and not check(member):
                    return False
        return True

    return test


def _members_test(
    required: frozenset[str] | None,
    named: dict[str, tuple[frozenset[type], _Test]],
    matched: tuple[tuple[Callable[[str], object], frozenset[type], _Test], ...],
    extra: tuple[frozenset[type], _Test] | None,
    covered: Callable[[str], object] | None,
) -> _Test:
    known = _properties_test(required, named)

    def test(value: dict[str, object]) -> bool:
        if not known(value):
            return False
        for name, member in value.items():
            for search, fast, check in matched:
                if search(name) is not None and type(member) not in fast and not check(member):
                    return False
            if (
                extra is not None
                and name not in named
                and (covered is None or covered(name) is None)
                and type(member) not in extra[0]
                and not extra[1](member)
            ):
                return False
        return True

    return test


def _every_item_test(fast: frozenset[type], check: _Test) -> _Test:
    def test(value: list[object]) -> bool:
        for item in value:
            if type(item) not in fast and not check(item):
                return False
        return True

    return test


def _leading_items_test(pairs: tuple[tuple[frozenset[type], _Test], ...]) -> _Test:
    def test(value: list[object]) -> bool:
        for item, (fast, check) in zip(value, pairs, strict=False):
            if type(item) not in fast and not check(item):
                return False
        return True

    return test


def _enum_test(options: object) -> _Test:
    if not isinstance(options, list):
        _unsupported()
    choices = tuple(options)
    # jsonschema's ``equal`` compares a str with anything by ``==``: for a str value and
    # options of JSON classes, that is membership among the str options.
    plain = all(type(option) in _JSON_CLASSES for option in choices)
    strings = frozenset(option for option in choices if type(option) is str)

    def test(value: object) -> bool:
        if plain and type(value) is str:
            return value in strings
        for option in choices:
            if equal(option, value):
                return True
        return False

    return test


def _any_test(branches: tuple[tuple[frozenset[type], _Test], ...]) -> _Test:
    def test(value: object) -> bool:
        for fast, check in branches:
            if type(value) in fast or check(value):
                return True
        return False

    return test


def _one_test(branches: tuple[tuple[frozenset[type], _Test], ...]) -> _Test:
    def test(value: object) -> bool:
        valid = 0
        for fast, check in branches:
            if type(value) in fast or check(value):
                valid += 1
                if valid > 1:
                    return False
        return valid == 1

    return test
