"""Bounded cost in the shared Draft 4 checks: patterns on the ``regex`` engine, exact numbers.

Patterns must mean exactly what they mean to ``re`` (jsonschema's engine): random patterns
and strings are compared with stock jsonschema, and the character classes and
case-insensitive matching on many code points with ``re``. Catastrophic patterns end at once
or, within a budget, raise. ``multipleOf`` decides ``1e10000000`` by digits and exponent.
"""

from __future__ import annotations

import fractions
import re
import time
import typing as t
import warnings
from decimal import Decimal

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from target_stitch_import.draft4 import (
    PatternBudgetError,
    compile_draft4,
    draft4_validator,
    pattern_budget,
    pattern_problem,
    regex_problem,
)

if t.TYPE_CHECKING:
    from collections.abc import Callable

D = Decimal

# Code points to compare one by one: every 17th, plus all the cased and special ones below
# U+2200 (where case and class rules pile up) and a few beyond.
SAMPLE = "".join(
    sorted(
        {chr(code) for code in range(0, 0x110000, 17) if not 0xD800 <= code <= 0xDFFF}
        | {chr(code) for code in range(0x2200)}
        | set("\u0130\u0131\u017f\u212a\u2126\u1e9e\u03c2\u03a3\u0345\u1fbe\uab70\U00010400"),
    ),
)
CLASS_PATTERNS = (
    r"\w",
    r"\W",
    r"\d",
    r"\D",
    r"\s",
    r"\S",
    r"(?i)\w",
    r"(?i)[\wé]",
    r"(?i)[^\wé]",
    r"(?i)[\dA-Z]",
    r"(?i)[^\sk]",
    r"(?a)\w",
    r"(?ai)[\wk]",
    r"(?ai)k",
    r"(?i)k",
    r"(?i)i",
    r"(?i)[a-z]",
    r"(?i)[^a-z]",
    r"(?i)\u03c3",
    r"(?i)\u1e9e",
    r"(?i)[\W\d]",
    r"\b\w",
    r"\B",
    r".",
    r"(?s).",
    r"[[:alpha:]]",
    r"a{e<=1}",
)


def _agree(pattern: str, texts: t.Iterable[str]) -> list[str]:
    """The texts on which stock jsonschema and the compiled checks disagree."""
    schema = {"pattern": pattern}
    reference = jsonschema.Draft4Validator(schema)
    ours = compile_draft4(schema)
    ours_reference = draft4_validator(schema)
    return [
        text
        for text in texts
        if not reference.is_valid(text) == ours.is_valid(text) == ours_reference.is_valid(text)
    ]


@pytest.mark.parametrize("pattern", CLASS_PATTERNS)
def test_classes_and_case_agree_with_re_on_many_code_points(pattern: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # re on "[[" (a possible nested set)
        reference = re.compile(pattern)
        assert _agree(pattern, []) == []
        checker = compile_draft4({"pattern": pattern})
        assert checker.compiled
        wrong = [c for c in SAMPLE if bool(reference.search(c)) != checker.is_valid(c)]
    assert wrong == []


ATOMS = (
    "a",
    "b",
    "A",
    "i",
    "\u0131",
    "K",
    "\u03c3",
    ".",
    r"\w",
    r"\W",
    r"\d",
    r"\s",
    r"\S",
    r"\b",
    r"\B",
    "^",
    "$",
    r"\A",
    r"\Z",
    r"\.",
    "[^a]",
    "[^c]",
    "x[^a]",
    "[^a-c]",
    "é",
    "\u0301",
    "[[:alpha:]]",
    "a{e<=1}",
    "{",
    "a{,2}",
)
SET_MEMBERS = ("a", "c", "b-d", r"\w", r"\d", r"\s", r"\W", "A-Z", "i", "K", "-", r"\]", "_", " ")
QUANTIFIERS = ("*", "+", "?", "*?", "+?", "{2}", "{1,3}", "{0,}", "*+", "{2,}?")
FLAGS = ("", "(?i)", "(?s)", "(?m)", "(?a)", "(?ai)", "(?x)", "(?ims)")
sets = st.builds(
    lambda negated, members: "[" + "^" * negated + "".join(members) + "]",
    st.booleans(),
    st.lists(st.sampled_from(SET_MEMBERS), min_size=1, max_size=3),
)


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a, b: a + b, inner, inner),
        st.builds(lambda a, b: f"(?:{a}|{b})", inner, inner),
        st.builds(lambda a: f"({a})", inner),
        st.builds(lambda a, q: f"(?:{a}){q}", inner, st.sampled_from(QUANTIFIERS)),
        st.builds(lambda a: f"(?={a})", inner),
        st.builds(lambda a: f"(?!{a})", inner),
        st.builds(lambda a: f"(?<!{a})", st.sampled_from("abc")),
        st.builds(lambda a: f"(?>{a})", inner),
        st.builds(lambda f, a: f"(?{f}:{a})", st.sampled_from(("i", "s", "m", "-i")), inner),
        st.builds(lambda a: f"({a})\\1", inner),
        st.builds(lambda a, b, c: f"({a})?(?(1){b}|{c})", inner, inner, inner),
    )


patterns = st.builds(
    lambda flags, body: flags + body,
    st.sampled_from(FLAGS),
    st.recursive(st.one_of(st.sampled_from(ATOMS), sets), _compound, max_leaves=6),
)
texts = st.text(
    alphabet="aAbBc_1\u0663 \n\tiI\u0131\u0130kK\u212as\u017f\u03c3\u03c2\u03a3.é\u0301-]x",
    max_size=8,
)


@settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(pattern=patterns, strings=st.lists(texts, min_size=1, max_size=6))
def test_random_patterns_agree_with_jsonschema(pattern: str, strings: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        if regex_problem(pattern) is not None:
            return
        assert _agree(pattern, strings) == []


def test_what_the_bounded_engine_does_not_take_falls_back_to_re() -> None:
    for pattern in (r"(?i)(a)\1", r"(?a:\W)", "a{20000}", "(?:a{200}){200}"):
        assert pattern_problem(pattern) is not None
        assert _agree(pattern, ["aA", "é", "a" * 20000, "!"]) == []
    assert pattern_problem("(") is not None
    assert pattern_problem("^[a-z]{2,}$") is None


CATASTROPHIC = (
    ("^(a+)+$", "a" * 40 + "!"),
    ("^(a|a?)+$", "a" * 40 + "!"),
    ("(x+x+)+y", "x" * 40),
    (r"^(\w+\s?)*$", "a" * 40 + "!"),
    ("^(a+)+b(a+)+$", "a" * 40),
)


@pytest.mark.parametrize(("pattern", "text"), CATASTROPHIC)
def test_catastrophic_backtracking_shapes_end_at_once(pattern: str, text: str) -> None:
    checker = compile_draft4({"properties": {"x": {"pattern": pattern}}})
    started = time.monotonic()
    error = checker.first_error({"x": text})  # re needs hours or years for each of these
    assert time.monotonic() - started < 2
    assert error is not None
    assert error.validator == "pattern"


def test_a_budget_bounds_what_the_engine_still_backtracks() -> None:
    checker = compile_draft4({"properties": {"x": {"pattern": "^(a|aa)+$"}}})
    started = time.monotonic()
    with pattern_budget(0.1), pytest.raises(PatternBudgetError) as caught:
        checker.first_error({"x": "a" * 60 + "!"})
    assert time.monotonic() - started < 2
    assert caught.value.pattern == "^(a|aa)+$"
    assert "budget of 0.1 s" in str(caught.value)
    with pattern_budget(1.0):  # what is cheap stays well within a budget
        assert checker.first_error({"x": "aaa"}) is None


# Numbers: exact multipleOf whatever the exponent.

multiple_cases = [
    (D("0.01"), D("1E+10000000"), True),
    (D("0.01"), D("1E-10000000"), False),
    (D("1E-10000000"), D("0.5"), True),
    (D("1E+10000000"), D("0.5"), False),
    (3, D("1.5E+10000000"), True),
    (3, D("7E+10000000"), False),
    (D("0.07"), D("-2.1E+999999999999999"), True),
    (2, D("1E+999999999999999999"), True),
    (D("1E-999999999999999999"), D("3E-999999999999999990"), True),
    (D("1" + "0" * 2000 + "1"), D("1" + "0" * 2000 + "1E+5000"), True),
    (D("1" + "0" * 2000 + "1"), D("1" + "0" * 2000 + "3E+5000"), False),
]


@pytest.mark.parametrize(("multiple", "number", "valid"), multiple_cases)
def test_multiple_of_decides_by_digits_and_exponent(
    multiple: object,
    number: D,
    valid: bool,
) -> None:
    checker = compile_draft4({"multipleOf": multiple})
    started = time.monotonic()
    assert checker.is_valid(number) is valid
    assert draft4_validator({"multipleOf": multiple}).is_valid(number) is valid
    assert time.monotonic() - started < 1


@settings(max_examples=200, deadline=None, database=None)
@given(
    coefficient=st.integers(-(10**30), 10**30),
    exponent=st.integers(-1500, 1500),
    divisor_coefficient=st.integers(1, 10**6),
    divisor_exponent=st.integers(-20, 20),
)
def test_multiple_of_agrees_with_fractions(
    coefficient: int,
    exponent: int,
    divisor_coefficient: int,
    divisor_exponent: int,
) -> None:
    number = D(coefficient).scaleb(exponent)
    divisor = D(divisor_coefficient).scaleb(divisor_exponent)
    exact = (fractions.Fraction(number) / fractions.Fraction(divisor)).denominator == 1
    assert compile_draft4({"multipleOf": divisor}).is_valid(number) is exact


def _timed(check: Callable[[], object]) -> float:
    started = time.monotonic()
    check()
    return time.monotonic() - started


def test_a_long_number_costs_its_digits_not_more() -> None:
    digits = "3" * 200_000  # the former Fraction path needed seconds for this many digits
    checker = compile_draft4({"multipleOf": D("0.01")})
    assert _timed(lambda: checker.is_valid(D(digits + ".505"))) < 1
    assert not checker.is_valid(D(digits + ".505"))
    assert checker.is_valid(D(digits + ".5"))
