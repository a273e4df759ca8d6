"""Unit tests of relaxed mode's precision fixes (``multipleOf`` made fine enough for a value)."""

from __future__ import annotations

import copy
import decimal

import pytest

from target_stitch_import.draft4 import compile_draft4
from target_stitch_import.schema import (
    MIN_STEP_EXPONENT,
    PrecisionFix,
    apply_precision,
    finer_step,
    precision_fixes,
)

D = decimal.Decimal


@pytest.mark.parametrize(
    ("step", "value", "expected"),
    [
        (D("0.01"), D("111.43999999999999772626324556767940521240234375"), D("1E-100")),
        (D("0.25"), D("0.1"), D("1E-100")),  # multiples of 0.25 are multiples of 1E-100
        (500, 150, D("10")),  # whole steps stay as fine as needed
        (D("1E-38"), D("0.1000000000000000055511151231257827021181583404541015625"), D("1E-100")),
        (0.01, 0.125, D("1E-100")),  # floats by their shortest repr
        (D("0.01"), D("1.50000000000000000000000000000000000001"), D("1E-100")),  # > 28 digits
        (D("0.01"), D("1E-150"), D("1E-200")),
        (D("0.01"), D(0), D("1E-100")),
    ],
)
def test_finer_step_divides_the_step_and_the_value(step: object, value: object, expected: D) -> None:
    result = finer_step(step, value)
    assert result == expected
    assert result is not None
    with decimal.localcontext(decimal.Context(prec=200)):
        assert D(str(step)) % result == 0
        assert D(str(value)) % result == 0


def test_finer_step_gives_up_below_the_finest_step_and_on_non_numbers() -> None:
    assert finer_step(D("0.01"), D(f"1E{MIN_STEP_EXPONENT - 1}")) is None
    assert finer_step(D("0.01"), D(f"1E{MIN_STEP_EXPONENT + 1}")) == D(f"1E{MIN_STEP_EXPONENT}")
    assert finer_step(D("0.01"), D(f"1E{MIN_STEP_EXPONENT}")) == D(f"1E{MIN_STEP_EXPONENT}")
    assert finer_step(D("0.01"), D("NaN")) is None
    assert finer_step(D("0.01"), "1.5") is None
    assert finer_step(D("0.01"), True) is None


SCHEMA = {
    "type": "object",
    "properties": {
        "a": {"type": ["null", "number"], "multipleOf": D("0.01"), "maximum": 100},
        "b": {"anyOf": [{"type": "number", "multipleOf": D("0.5")}, {"type": "string"}]},
        "c": {"type": "array", "items": {"type": "number", "multipleOf": 1}},
    },
}


def fixed(record: dict) -> tuple[dict, list[PrecisionFix]]:
    schema = copy.deepcopy(SCHEMA)
    checker = compile_draft4(schema)
    fixes = precision_fixes(checker.validator.iter_errors(record))
    return schema, apply_precision(schema, fixes)


def test_fixes_reach_fields_array_items_and_anyof_branches() -> None:
    record = {"a": D("1.005"), "b": D("0.25"), "c": [1, D("2.5"), D("3.75")]}
    schema, changed = fixed(record)
    assert {fix.path for fix in changed} == {
        ("properties", "a", "multipleOf"),
        ("properties", "b", "anyOf", 0, "multipleOf"),
        ("properties", "c", "items", "multipleOf"),
    }
    assert {fix.field for fix in changed} == {"a", "b", "c"}
    assert schema["properties"]["c"]["items"]["multipleOf"] == D("1E-100")
    assert compile_draft4(schema).is_valid(record)
    assert SCHEMA["properties"]["a"]["multipleOf"] == D("0.01")  # the original is untouched


def test_other_failures_are_not_fixed() -> None:
    record = {"a": D("100.005")}  # breaks maximum too
    schema, changed = fixed(record)
    assert [fix.path for fix in changed] == [("properties", "a", "multipleOf")]
    assert not compile_draft4(schema).is_valid(record)
    assert compile_draft4(schema).first_error(record, ignore=("multipleOf",)).validator == "maximum"


def test_a_too_fine_value_drops_the_keyword() -> None:
    record = {"a": D(f"1E{MIN_STEP_EXPONENT - 5}")}
    schema, changed = fixed(record)
    assert changed[0].step is None
    assert "multipleOf" not in schema["properties"]["a"]
    assert compile_draft4(schema).is_valid(record)


def test_applying_skips_missing_paths_and_coarser_steps() -> None:
    schema = copy.deepcopy(SCHEMA)
    fixes = [
        PrecisionFix(("properties", "gone", "multipleOf"), "gone", D("1E-9")),
        PrecisionFix(("properties", "a", "multipleOf"), "a", D("0.1")),  # coarser than 0.01
        PrecisionFix(("properties", "b", "anyOf", 7, "multipleOf"), "b", D("1E-9")),
    ]
    assert apply_precision(schema, fixes) == []
    assert schema == SCHEMA
