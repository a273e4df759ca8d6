"""JSON Schema Draft 4 record validation as Stitch applies it, with exact numbers.

Shared by the target (local validation against the schema it sends) and the emulator
(validation of every record of a batch), so both fail on exactly the same records.
Records are read with numbers as ``Decimal``; ``multipleOf`` is checked with exact
arithmetic (``-2341.62`` is a multiple of ``0.01``; a value of 40 significant digits against
``1e-38`` neither overflows a decimal context nor rounds) at a cost that follows the digits,
not the exponent (``1e10000000`` is decided at once). Formats are not checked.

``pattern`` and ``patternProperties`` mean what they mean to ``re`` (as in jsonschema) but run
on the ``regex`` engine (see the comment above :class:`PatternError`): no catastrophic
backtracking on the usual shapes, other threads keep running, and within
:func:`pattern_budget` a time limit. The one difference from jsonschema: a search ``re``
would need minutes or years for ends here in milliseconds (with the verdict ``re`` would
reach), or, under a budget, raises :class:`PatternBudgetError`.

:func:`compile_draft4` turns a schema into a :class:`Draft4Checker`: nested closures built
once per schema that give the jsonschema validator's valid/invalid verdict at a fraction of
its cost. Only invalid records go on to the jsonschema validator, for its error. A schema
the compiler does not fully model (an ``id``, a ``$ref`` other than a local JSON pointer, a
keyword value the metaschema would refuse) is left to jsonschema entirely.
"""

# ruff: noqa: SIM110 - explicit loops: a generator per call costs twice as much here

from __future__ import annotations

import _sre  # type: ignore[import-not-found]
import bisect
import contextlib
import contextvars
import decimal
import fractions
import functools
import re
import sys
import time
import typing as t
import warnings
from collections.abc import Callable
from urllib.parse import unquote

if sys.version_info >= (3, 11):
    from re import _constants as sre_constants
    from re import _parser as sre_parse
else:  # pragma: no cover - Python 3.10
    import sre_constants
    import sre_parse

if t.TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    import jsonschema
    from jsonschema import ValidationError

# jsonschema is imported when first needed (a metaschema check, an explanation, a schema the
# compiler does not model), not with this module: a record worker, which only compiles
# schemas and asks for verdicts, starts without it (it is a third of a worker's start).

#: A compiled check: is the value valid? (Called only with values it applies to.)
_Test = Callable[[t.Any], bool]

_ARITHMETIC_ERRORS = (ValueError, TypeError, ZeroDivisionError, OverflowError)


#: Exact decimal arithmetic: integer division and remainders never round here.
_EXACT = decimal.Context(
    prec=decimal.MAX_PREC,
    Emax=decimal.MAX_EMAX,
    Emin=decimal.MIN_EMIN,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)
#: Up to this many digits in a quotient, ``multipleOf`` takes one exact remainder.
_DIRECT_QUOTIENT_DIGITS = 1_000
#: A divisor whose coefficient and exponent stay within this many digits also has a cheap
#: integer ratio (for integer values).
_SMALL_RATIO_DIGITS = 1_000


def _exact(number: object) -> fractions.Fraction:
    if isinstance(number, float):
        return fractions.Fraction(repr(number))
    return fractions.Fraction(number)  # type: ignore[call-overload]


def _never(_: object) -> bool:
    return False


def _always(_: object) -> bool:
    return True


def _as_decimal(number: object) -> decimal.Decimal | None:
    """Return a JSON number as an exact Decimal (a float by its shortest repr), else None."""
    if isinstance(number, decimal.Decimal):
        return number
    if isinstance(number, int):
        return decimal.Decimal(number)
    if isinstance(number, float):
        return decimal.Decimal(repr(number))
    return None


def _reduced(number: decimal.Decimal) -> tuple[tuple[int, ...], int]:
    """Return the digits (trailing zeros moved to the exponent) and exponent of a non-zero."""
    _, digits, exponent = number.as_tuple()
    end = len(digits)
    while digits[end - 1] == 0:
        end -= 1
    return digits[:end], t.cast("int", exponent) + len(digits) - end


def _is_multiple(number: decimal.Decimal, divisor: decimal.Decimal) -> bool:
    """Return whether a finite ``number`` is an integer multiple of a positive ``divisor``.

    The cost follows the numbers' digits, never their exponents: ``1e10000000`` against
    ``0.01`` is decided without writing out ten million digits.
    """
    if not number:
        return True
    number = number.copy_abs()
    if number.adjusted() - divisor.adjusted() <= _DIRECT_QUOTIENT_DIGITS:
        return not _EXACT.remainder(number, divisor)
    # The quotient is huge: number = c * 10**e and divisor = d * 10**f, neither c nor d
    # ending in a zero. With e < f the quotient is c / (d * 10**(f - e)), not an integer
    # since 10 does not divide c. Otherwise d must divide c * 10**(e - f): d = 2**a * 5**b *
    # r with r prime to 10, and once e - f reaches a and b only r | c matters, so the shift
    # is capped at a bound of a and b (four times d's digit count).
    digits, exponent = _reduced(number)
    divisor_digits, divisor_exponent = _reduced(divisor)
    shift = exponent - divisor_exponent
    if shift < 0:
        return False
    shift = min(shift, 4 * len(divisor_digits))
    top = decimal.Decimal((0, digits, shift))
    return not _EXACT.remainder(top, decimal.Decimal((0, divisor_digits, 0)))


def _multiple_test(multiple: object) -> _Test:
    """Return whether a number is an exact multiple of ``multiple``.

    Floats count by their shortest repr (``0.1`` is 1/10), Decimals digit for digit. A
    non-finite number fails, and so does every number when ``multiple`` is zero or not a
    number. The cost grows with the numbers' digits, not with their exponents.
    """
    divisor = _as_decimal(multiple)
    if divisor is None or not divisor.is_finite() or not divisor:
        return _never
    divisor = divisor.copy_abs()
    ratio: tuple[int, int] | None = None
    if max(len(divisor.as_tuple().digits), abs(divisor.adjusted())) <= _SMALL_RATIO_DIGITS:
        ratio = divisor.as_integer_ratio()

    def test(number: object) -> bool:
        if type(number) is int and ratio is not None:  # number * q / p, an integer?
            return number * ratio[1] % ratio[0] == 0
        value = _as_decimal(number)
        if value is None:  # another kind of number (a Fraction...): exactly, at any cost
            try:
                return (_exact(number) / _exact(divisor)).denominator == 1
            except _ARITHMETIC_ERRORS:
                return False
        return value.is_finite() and _is_multiple(value, divisor)

    return test


def _multiple_of(
    validator: jsonschema.protocols.Validator,
    multiple: object,
    instance: object,
    schema: t.Mapping[str, t.Any],
) -> Iterator[ValidationError]:
    _ = schema
    if validator.is_type(instance, "number") and not _multiple_test(multiple)(instance):
        yield _error(f"{instance} is not a multiple of {multiple}")


# Patterns. jsonschema evaluates ``pattern`` and ``patternProperties`` with ``re.search``: a
# backtracking engine that holds the GIL, where ``^(a+)+$`` against 30 characters runs for
# minutes. Here a pattern is read by ``re``'s own parser, so that it means exactly what it
# means to ``re``, and written out again for the ``regex`` engine, which takes the usual
# catastrophic shapes in linear time, lets other threads run while it searches and stops at
# a timeout. Whatever the two engines read differently is written out explicitly, as code
# points: every literal (``regex`` reads ``[[:alpha:]]`` as a class and ``a{e<=1}`` as fuzzy
# matching, ``re`` as characters); ``\w``, ``\d``, ``\s`` and ``\b`` as the code points ``re``
# gives them (``regex`` follows a newer Unicode and counts combining marks as word
# characters); and, ignoring case, each character as the characters ``re`` takes for it
# (``re`` matches ``i`` with the dotless ``\u0131``, ``regex`` does not). Two things ``re``
# does are not modelled (:class:`PatternError`): a backreference ignoring case, and a group
# switching between ASCII and Unicode matching.

#: ``regex`` unrolls counted repeats when compiling: at most this many units (``a{n}`` is n
#: units, ``(?:a{n}){m}`` n * m) keep its compilation small and fast.
MAX_PATTERN_UNITS = 10_000
_EVERY_CODE_POINT = 0x110000
_PLANE = 0x10000
#: ``[start, end)`` code points.
_Span = tuple[int, int]
#: The flags written out for ``regex``; case is handled here (see :func:`_case_variants`).
_FLAG_LETTERS = ((sre_constants.SRE_FLAG_MULTILINE, "m"), (sre_constants.SRE_FLAG_DOTALL, "s"))
_IGNORECASE = sre_constants.SRE_FLAG_IGNORECASE
_ASCII = sre_constants.SRE_FLAG_ASCII
_TYPE_FLAGS = _ASCII | sre_constants.SRE_FLAG_UNICODE | sre_constants.SRE_FLAG_LOCALE
# In Python before 3.14, \B never matches in an empty string.
_NON_BOUNDARY_IN_EMPTY = re.search(r"\B", "") is not None


class PatternError(ValueError):
    """A pattern ``re`` accepts that the bounded engine does not take (too large, unmodelled)."""


class PatternBudgetError(Exception):
    """Patterns ran out of the time budget set by :func:`pattern_budget`.

    Attributes:
        pattern: The pattern being compiled or searched with.
    """

    def __init__(self, pattern: str, text: str) -> None:
        """Name the pattern and what happened."""
        super().__init__(text)
        self.pattern = pattern


class _Budget:
    """Seconds of pattern compilation and search left to one validation."""

    __slots__ = ("remaining", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.remaining = seconds

    def exceeded(self, pattern: str) -> PatternBudgetError:
        self.remaining = 0
        text = f"the pattern {pattern!r} took longer than the budget of {self.seconds:g} s"
        return PatternBudgetError(pattern, text)


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "draft4_pattern_budget", default=None
)


@contextlib.contextmanager
def pattern_budget(seconds: float) -> Iterator[None]:
    """Bound the time patterns may take in this thread's validations, in total.

    Within the block, compiling patterns and searching with them (for ``pattern`` and
    ``patternProperties``, in compiled checks and in jsonschema's alike) raises
    :class:`PatternBudgetError` once that took ``seconds`` in all; so does a search with a
    pattern the bounded engine does not take (see :func:`pattern_problem`). Outside, patterns
    run without a limit, as in jsonschema.
    """
    token = _BUDGET.set(_Budget(seconds))
    try:
        yield
    finally:
        _BUDGET.reset(token)


def regex_problem(pattern: str) -> str | None:
    """Return why ``pattern`` is not a regular expression Python can check, or None."""
    try:
        re.compile(pattern)
    except re.error as exc:
        return str(exc)
    except (RecursionError, OverflowError):
        return "nested too deeply or too large"
    return None


def pattern_problem(pattern: str) -> str | None:
    """Return why ``pattern`` can not be searched with at a bounded cost, or None.

    That is :func:`regex_problem`, or a pattern the bounded engine does not take (too large,
    or one of the two constructs it does not model).

    Raises:
        PatternBudgetError: Within :func:`pattern_budget`, compiling took too long.
    """
    problem = regex_problem(pattern)
    if problem is not None:
        return problem
    return _search(pattern).problem


class _Search:
    """``re.search(pattern, text) is not None``, by the bounded engine where it can.

    Attributes:
        pattern: The pattern.
        problem: Why the bounded engine does not take it (then ``re`` searches), or None.
    """

    __slots__ = ("_compiled", "pattern", "problem")

    def __init__(self, pattern: str) -> None:
        """Compile ``pattern``, within the current budget if any.

        Raises:
            re.error: ``re`` refuses the pattern (as it does in jsonschema).
            PatternBudgetError: The budget ran out.
        """
        budget = _BUDGET.get()
        if budget is not None and budget.remaining <= 0:
            raise budget.exceeded(pattern)
        started = time.monotonic()
        re.compile(pattern)
        self.pattern = pattern
        self.problem: str | None = None
        try:
            self._compiled: t.Any = _bounded(pattern)
        except PatternError as exc:
            self._compiled = None
            self.problem = str(exc)
        if budget is not None:
            budget.remaining -= time.monotonic() - started
            if budget.remaining <= 0:
                raise budget.exceeded(pattern)

    def __call__(self, text: str) -> bool:
        """Return whether the pattern matches anywhere in ``text``.

        Raises:
            PatternBudgetError: Within :func:`pattern_budget`, the budget ran out, or the
                bounded engine does not take the pattern.
        """
        budget = _BUDGET.get()
        if budget is None:
            if self._compiled is None:
                return re.search(self.pattern, text) is not None
            return self._compiled.search(text) is not None
        if self._compiled is None:
            reason = f"the pattern {self.pattern!r} can not be searched boundedly: {self.problem}"
            raise PatternBudgetError(self.pattern, reason)
        if budget.remaining <= 0:
            raise budget.exceeded(self.pattern)
        started = time.monotonic()
        try:
            found = self._compiled.search(text, timeout=budget.remaining)
        except TimeoutError:
            raise budget.exceeded(self.pattern) from None
        budget.remaining -= time.monotonic() - started
        return found is not None


@functools.lru_cache(maxsize=512)
def _search(pattern: str) -> _Search:
    """Return the (cached) search of a pattern.

    Raises:
        re.error: ``re`` refuses the pattern (as it does in jsonschema).
        PatternBudgetError: Within :func:`pattern_budget`, the budget ran out.
    """
    return _Search(pattern)


def _bounded(pattern: str) -> t.Any:  # noqa: ANN401 - regex ships no types
    """Compile ``pattern`` (valid for ``re``) for the ``regex`` engine, meaning the same.

    Raises:
        PatternError: The pattern is too large for the engine, or not modelled.
    """
    with warnings.catch_warnings():  # re's FutureWarning on [[ and the like
        warnings.simplefilter("ignore")
        parsed = sre_parse.parse(pattern)
    flags = parsed.state.flags
    writer = _PatternWriter()
    text = writer.sequence(parsed.data, flags)
    if writer.units > MAX_PATTERN_UNITS:
        msg = f"its repeats span more than {MAX_PATTERN_UNITS:,} units"
        raise PatternError(msg)
    # Loaded here, not at import: only schemas with patterns need it (about a megabyte).
    import regex  # type: ignore[import-untyped]  # noqa: PLC0415

    try:
        return regex.compile(f"(?V0){_flag_group(flags, 0)}{text}")
    except (regex.error, OverflowError, RecursionError, MemoryError) as exc:
        msg = f"the bounded regular expression engine can not take it: {exc}"
        raise PatternError(msg) from None


@functools.cache
def _case_classes() -> tuple[list[int], dict[int, tuple[int, ...]]]:
    """Return the cased code points, and for each the others ``re`` matches ignoring case."""
    cased = [code for code in range(_EVERY_CODE_POINT) if _sre.unicode_iscased(code)]
    pool = "".join(map(chr, sorted({*cased, *map(_sre.unicode_tolower, cased)})))
    classes: dict[int, tuple[int, ...]] = {}
    for code in cased:
        found = re.compile(re.escape(chr(code)), re.IGNORECASE).findall(pool)
        classes[code] = tuple(ord(char) for char in found if ord(char) != code)
    return cased, classes


def _case_variants(low: int, high: int, *, ascii_only: bool) -> tuple[bool, list[int]]:
    """Return whether ``[low-high]`` holds a cased character, and what else ``re`` matches.

    Ignoring case, ``re`` matches a set member with every character of the same lowercase
    (and a few more: ``k`` and the Kelvin sign, ``i`` and the dotless i...); the second item
    lists those outside the range.
    """
    if ascii_only:
        codes = range(max(low, ord("A")), min(high, ord("z")) + 1)
        letters = [code for code in codes if _sre.ascii_iscased(code)]
        partners = {code ^ 0x20 for code in letters} - set(range(low, high + 1))
        return bool(letters), sorted(partners)
    cased, classes = _case_classes()
    inside = cased[bisect.bisect_left(cased, low) : bisect.bisect_right(cased, high)]
    partners = {other for code in inside for other in classes[code] if not low <= other <= high}
    return bool(inside), sorted(partners)


def _flag_group(add: int, remove: int, body: str | None = None) -> str:
    """Return ``(?ms)`` (global) or ``(?m-s:body)`` (scoped) in ``regex`` syntax."""
    on = "".join(letter for flag, letter in _FLAG_LETTERS if add & flag)
    off = "".join(letter for flag, letter in _FLAG_LETTERS if remove & flag)
    if body is None:
        return f"(?{on})" if on else ""
    if not on and not off:
        return f"(?:{body})"
    return f"(?{on}{'-' + off if off else ''}:{body})"


def _char(code: int) -> str:
    return f"\\u{code:04X}" if code < 0x10000 else f"\\U{code:08X}"  # noqa: PLR2004


def _span_text(spans: Iterable[_Span]) -> str:
    """Write ``[start, end)`` code point spans as the inside of a set."""
    return "".join(
        _char(start) + (f"-{_char(end - 1)}" if end - 1 > start else "") for start, end in spans
    )


@functools.cache
def _category_spans(category: str, *, ascii_only: bool, lowered: bool) -> tuple[_Span, ...]:
    r"""Return the code point spans ``re`` puts in ``\w``, ``\d`` or ``\s``.

    Args:
        category: ``w``, ``d`` or ``s``.
        ascii_only: Under the ASCII flag.
        lowered: The code points whose lowercase is in the class (what a case-insensitive
            set with cased members tests in ``re``).
    """
    to_lower = _sre.ascii_tolower if ascii_only else _sre.unicode_tolower
    probe = re.compile(f"[\\{category}]+", re.ASCII if ascii_only else 0)
    spans: list[_Span] = []
    # A plane at a time: one long C call would hold the GIL for a fifth of a second.
    for start in range(0, _EVERY_CODE_POINT, _PLANE):
        codes: Iterable[int] = range(start, start + _PLANE)
        if lowered:
            codes = map(to_lower, codes)
        for match in probe.finditer("".join(map(chr, codes))):
            low, high = match.start() + start, match.end() + start
            if spans and spans[-1][1] == low:
                low = spans.pop()[0]
            spans.append((low, high))
    return tuple(spans)


def _complement(spans: tuple[_Span, ...]) -> list[_Span]:
    gaps: list[_Span] = []
    start = 0
    for low, high in spans:
        if low > start:
            gaps.append((start, low))
        start = high
    if start < _EVERY_CODE_POINT:
        gaps.append((start, _EVERY_CODE_POINT))
    return gaps


_CATEGORIES: dict[object, tuple[str, bool]] = {
    sre_constants.CATEGORY_WORD: ("w", False),
    sre_constants.CATEGORY_NOT_WORD: ("w", True),
    sre_constants.CATEGORY_DIGIT: ("d", False),
    sre_constants.CATEGORY_NOT_DIGIT: ("d", True),
    sre_constants.CATEGORY_SPACE: ("s", False),
    sre_constants.CATEGORY_NOT_SPACE: ("s", True),
}


def _category_text(category: object, flags: int, *, lowered: bool = False) -> str:
    try:
        name, negated = _CATEGORIES[category]
    except KeyError:
        msg = f"the class {category} is not supported"
        raise PatternError(msg) from None
    ascii_only = bool(flags & sre_constants.SRE_FLAG_ASCII)
    spans = _category_spans(name, ascii_only=ascii_only, lowered=lowered)
    return _span_text(_complement(spans) if negated else spans)


class _PatternWriter:
    """Writes a parsed ``re`` pattern in ``regex`` syntax; counts the units repeats unroll."""

    def __init__(self) -> None:
        self.units = 0

    def sequence(self, items: Iterable[tuple[t.Any, t.Any]], flags: int) -> str:
        return "".join(self._item(op, value, flags) for op, value in items)

    def _measured(self, items: Iterable[tuple[t.Any, t.Any]], flags: int) -> tuple[str, int]:
        before = self.units
        self.units = 0
        text = self.sequence(items, flags)
        units = self.units
        self.units = before
        return text, units

    def _item(self, op: object, value: t.Any, flags: int) -> str:  # noqa: ANN401, C901, PLR0911, PLR0912 - one case per opcode
        self.units += 1
        if op in (sre_constants.LITERAL, sre_constants.NOT_LITERAL):
            negated = op is sre_constants.NOT_LITERAL
            if negated or flags & _IGNORECASE:
                head = [(sre_constants.NEGATE, None)] if negated else []
                return self._set([*head, (sre_constants.LITERAL, value)], flags)
            return _char(value)
        if op is sre_constants.ANY:
            return "."
        if op is sre_constants.IN:
            return self._set(value, flags)
        if op is sre_constants.BRANCH:
            return "(?:" + "|".join(self.sequence(branch, flags) for branch in value[1]) + ")"
        if op is sre_constants.SUBPATTERN:
            group, add, remove, body = value
            if add & _TYPE_FLAGS and add & _TYPE_FLAGS != flags & _TYPE_FLAGS:
                # re checks a search's first character by the global flags, the rest by the
                # group's: (?a:\W) matches neither "a" nor "é". Not modelled.
                msg = "a group switching between ASCII and Unicode matching is not supported"
                raise PatternError(msg)
            inner = _flag_group(add, remove, self.sequence(body, (flags | add) & ~remove))
            return inner if group is None else f"({inner})"
        if op in _REPEATS:
            low, high, body = value
            inner, units = self._measured(body, flags)
            self.units += max(low, 1) * units
            upper = "" if high is sre_constants.MAXREPEAT else str(high)
            return f"(?:{inner}){{{low},{upper}}}{_REPEATS[op]}"
        if op is _ATOMIC_GROUP:
            return f"(?>{self.sequence(value, flags)})"
        if op is sre_constants.GROUPREF:
            if flags & _IGNORECASE:  # re compares lowercases (of two sigmas), regex folds
                msg = "a backreference ignoring case is not supported"
                raise PatternError(msg)
            return f"(?:\\g<{value}>)"
        if op is sre_constants.GROUPREF_EXISTS:
            group, yes, no = value
            other = "" if no is None else "|" + self.sequence(no, flags)
            return f"(?({group}){self.sequence(yes, flags)}{other})"
        if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            direction, body = value
            kind = "=" if op is sre_constants.ASSERT else "!"
            return f"(?{'<' if direction < 0 else ''}{kind}{self.sequence(body, flags)})"
        if op is sre_constants.AT:
            return _anchor(value, flags)
        msg = f"the construct {op} is not supported"
        raise PatternError(msg)

    @staticmethod
    def _set(items: list[tuple[t.Any, t.Any]], flags: int) -> str:
        r"""Write a set as ``re`` matches it, case-sensitively for ``regex``.

        Ignoring case, ``re`` takes each member with the characters it matches ignoring case,
        and tests the classes (``\w``...) on the character's lowercase, unless no member is
        cased: then the classes are tested on the character itself.
        """
        negated = bool(items) and items[0][0] is sre_constants.NEGATE
        members = items[1:] if negated else items
        ignore_case = bool(flags & _IGNORECASE)
        ascii_only = bool(flags & _ASCII)
        parts: list[str] = []
        classes: list[object] = []
        cased = False
        for op, value in members:
            if op is sre_constants.LITERAL:
                low = high = value
            elif op is sre_constants.RANGE:
                low, high = value
            elif op is sre_constants.CATEGORY:
                classes.append(value)
                continue
            else:
                msg = f"the set member {op} is not supported"
                raise PatternError(msg)
            parts.append(_char(low) if low == high else f"{_char(low)}-{_char(high)}")
            if ignore_case:
                has_cased, variants = _case_variants(low, high, ascii_only=ascii_only)
                cased = cased or has_cased
                parts.extend(map(_char, variants))
        lowered = ignore_case and cased
        parts.extend(_category_text(name, flags, lowered=lowered) for name in classes)
        if negated and len(parts) == 1 and not classes and "-" not in parts[0]:
            # regex reads [^a]|[^c] as [^ac]: one character but a, without a one-member set
            return f"(?:(?!{parts[0]})(?s:.))"
        return f"[{'^' if negated else ''}{''.join(parts)}]"


_REPEATS: dict[object, str] = {sre_constants.MAX_REPEAT: "", sre_constants.MIN_REPEAT: "?"}
_ATOMIC_GROUP = getattr(sre_constants, "ATOMIC_GROUP", None)  # Python 3.11+
if hasattr(sre_constants, "POSSESSIVE_REPEAT"):
    _REPEATS[sre_constants.POSSESSIVE_REPEAT] = "+"


def _anchor(code: object, flags: int) -> str:
    simple = {
        sre_constants.AT_BEGINNING: "^",
        sre_constants.AT_BEGINNING_STRING: "\\A",
        sre_constants.AT_END: "$",
        sre_constants.AT_END_STRING: "\\Z",
    }
    if code in simple:
        return simple[code]
    if code not in (sre_constants.AT_BOUNDARY, sre_constants.AT_NON_BOUNDARY):
        msg = f"the anchor {code} is not supported"
        raise PatternError(msg)
    word = f"[{_category_text(sre_constants.CATEGORY_WORD, flags)}]"
    if code is sre_constants.AT_BOUNDARY:
        return f"(?-i:(?<={word})(?!{word})|(?<!{word})(?={word}))"
    guard = "" if _NON_BOUNDARY_IN_EMPTY else "(?!\\A\\Z)"
    return f"(?-i:(?<={word})(?={word})|(?<!{word})(?!{word}){guard})"


def _pattern(
    validator: jsonschema.protocols.Validator,
    pattern: str,
    instance: object,
    schema: t.Mapping[str, t.Any],
) -> Iterator[ValidationError]:
    _ = schema
    if validator.is_type(instance, "string") and not _search(pattern)(t.cast("str", instance)):
        yield _error(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: jsonschema.protocols.Validator,
    patterns: t.Mapping[str, t.Any],
    instance: object,
    schema: t.Mapping[str, t.Any],
) -> Iterator[ValidationError]:
    _ = schema
    if not validator.is_type(instance, "object"):
        return
    members = t.cast("dict[str, object]", instance)
    for pattern, subschema in patterns.items():
        search = _search(pattern)
        for key, value in members.items():
            if search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: jsonschema.protocols.Validator,
    additional: object,
    instance: object,
    schema: t.Mapping[str, t.Any],
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    members = t.cast("dict[str, object]", instance)
    properties = schema.get("properties", {})
    joined = "|".join(schema.get("patternProperties", {}))
    covered = _search(joined) if joined else None
    extras = {
        name
        for name in members
        if name not in properties and (covered is None or not covered(name))
    }
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(members[extra], additional, path=extra)
    elif not additional and extras:
        if "patternProperties" in schema:
            verb = "does" if len(extras) == 1 else "do"
            joined_extras = ", ".join(repr(each) for each in sorted(extras))
            patterns = ", ".join(repr(each) for each in sorted(schema["patternProperties"]))
            error = f"{joined_extras} {verb} not match any of the regexes: {patterns}"
            yield _error(error)
        else:
            listed = ", ".join(repr(extra) for extra in sorted(extras, key=str))
            verb = "was" if len(extras) == 1 else "were"
            error = f"Additional properties are not allowed ({listed} {verb} unexpected)"
            yield _error(error)


def _error(message: str) -> ValidationError:
    from jsonschema import ValidationError  # noqa: PLC0415 - only jsonschema calls this

    return ValidationError(message)


@functools.cache
def exact_draft4_validator() -> type[jsonschema.protocols.Validator]:
    """Return jsonschema's Draft 4 validator, with exact ``multipleOf`` and bounded patterns."""
    import jsonschema  # noqa: PLC0415 - see the comment at the imports

    return jsonschema.validators.extend(
        jsonschema.Draft4Validator,
        validators={
            "multipleOf": _multiple_of,
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
        },
    )


def __getattr__(name: str) -> object:
    """``ExactDraft4Validator``: :func:`exact_draft4_validator` (built when first asked for)."""
    if name == "ExactDraft4Validator":
        return exact_draft4_validator()
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def check_schema(schema: t.Mapping[str, t.Any]) -> None:
    """Check a schema against the Draft 4 metaschema.

    Raises:
        jsonschema.SchemaError: The schema is not valid Draft 4.
    """
    exact_draft4_validator().check_schema(schema)


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
    from jsonschema_specifications import REGISTRY  # noqa: PLC0415 - see the imports

    if check:
        check_schema(schema)
    return exact_draft4_validator()(schema, registry=REGISTRY)


def error_pointer(error: ValidationError) -> str:
    """Return the JSON pointer of the failing value, everit-style (``#/items/0/price``)."""
    parts = [str(part).replace("~", "~0").replace("/", "~1") for part in error.absolute_path]
    return "#/" + "/".join(parts) if parts else "#"


class Draft4Checker:
    """A schema compiled for fast verdicts; its jsonschema validator explains failures.

    Build one with :func:`compile_draft4`. Thread-safe: nothing changes after compilation
    but the validator, built once when first needed (two threads may both build one; either
    is the same).
    """

    def __init__(self, schema: t.Mapping[str, t.Any], root: _Node | None) -> None:
        """Pair ``schema`` with its compiled ``root`` (None: jsonschema decides alone)."""
        self._schema = schema
        self._root = root
        self._validator: jsonschema.protocols.Validator | None = None

    @property
    def validator(self) -> jsonschema.protocols.Validator:
        """The jsonschema validator of the schema (the reference for verdicts)."""
        if self._validator is None:
            self._validator = draft4_validator(self._schema, check=False)
        return self._validator

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
        except PatternBudgetError:
            raise
        except Exception:  # noqa: BLE001 - any failure of the fast path: the reference decides
            return bool(self.validator.is_valid(instance))

    def first_error(
        self,
        instance: object,
        ignore: t.Collection[str] = (),
    ) -> ValidationError | None:
        """Return jsonschema's best-matching error for ``instance``, or None when it is valid.

        The error is ``jsonschema.exceptions.best_match`` over all of the validator's errors
        but those of the keywords in ``ignore`` (None when only those fail).
        """
        if self.is_valid(instance):
            return None
        errors = self.validator.iter_errors(instance)
        if ignore:
            errors = (error for error in errors if error.validator not in ignore)
        from jsonschema.exceptions import best_match  # noqa: PLC0415 - see the imports

        return best_match(errors)


def compile_draft4(schema: t.Mapping[str, t.Any], *, check: bool = True) -> Draft4Checker:
    """Compile ``schema`` into a :class:`Draft4Checker` (see :func:`draft4_validator`).

    Args:
        schema: The schema records are checked against.
        check: First check the schema against the Draft 4 metaschema.

    Raises:
        jsonschema.SchemaError: The schema is not valid Draft 4.
    """
    if check:
        check_schema(schema)
    try:
        root: _Node | None = _Compiler(schema).node(schema)
    except Exception:  # noqa: BLE001 - whatever the compiler does not model, jsonschema does
        root = None
    return Draft4Checker(schema, root)


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

#: Keywords the validator applies (those of jsonschema's Draft 4 validator, ``$ref`` aside);
#: a schema using one the compiler lacks is not compiled.
_APPLIED = frozenset(
    {
        *("additionalItems", "additionalProperties", "allOf", "anyOf", "dependencies"),
        *("enum", "format", "items", "maxItems", "maxLength", "maxProperties", "maximum"),
        *("minItems", "minLength", "minProperties", "minimum", "multipleOf", "not", "oneOf"),
        *("pattern", "patternProperties", "properties", "required", "type", "uniqueItems"),
    },
)
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

    def test(value: object) -> bool:
        is_type = exact_draft4_validator().TYPE_CHECKER.is_type
        return any(is_type(value, name) for name in names)

    return test


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
            tests.append(_search(pattern))
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
        matched = tuple((_search(pattern), *self._pair(sub)) for pattern, sub in patterns.items())
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
        covered = _search(joined) if joined else None
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
            from jsonschema._utils import uniq  # noqa: PLC0415 - see the imports

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
    matched: tuple[tuple[_Search, frozenset[type], _Test], ...],
    extra: tuple[frozenset[type], _Test] | None,
    covered: _Search | None,
) -> _Test:
    known = _properties_test(required, named)

    def test(value: dict[str, object]) -> bool:
        if not known(value):
            return False
        for name, member in value.items():
            for search, fast, check in matched:
                if search(name) and type(member) not in fast and not check(member):
                    return False
            if (
                extra is not None
                and name not in named
                and (covered is None or not covered(name))
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
    from jsonschema._utils import equal  # noqa: PLC0415 - see the imports

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
