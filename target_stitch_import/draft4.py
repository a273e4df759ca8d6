"""JSON Schema Draft 4 record validation as Stitch applies it, with exact numbers.

Shared by the target (local validation against the schema it sends) and the emulator
(validation of every record of a batch), so both fail on exactly the same records.
Records are read with numbers as ``Decimal``; ``multipleOf`` is checked with exact
rational arithmetic (``-2341.62`` is a multiple of ``0.01``; a value of 40 significant
digits against ``1e-38`` neither overflows a decimal context nor rounds). Formats are not
checked.
"""

from __future__ import annotations

import decimal
import fractions
import typing as t

import jsonschema
from jsonschema import Draft4Validator, ValidationError
from jsonschema_specifications import REGISTRY as _METASCHEMAS

if t.TYPE_CHECKING:
    from collections.abc import Iterator


def _exact(number: object) -> fractions.Fraction:
    if isinstance(number, float):
        return fractions.Fraction(repr(number))
    return fractions.Fraction(number)  # type: ignore[call-overload]


def _multiple_of(
    validator: jsonschema.protocols.Validator,
    multiple: object,
    instance: object,
    schema: t.Mapping[str, t.Any],
) -> Iterator[ValidationError]:
    _ = schema
    if not validator.is_type(instance, "number"):
        return
    if isinstance(instance, decimal.Decimal) and not instance.is_finite():
        yield ValidationError(f"{instance} is not a multiple of {multiple}")
        return
    try:
        quotient = _exact(instance) / _exact(multiple)
    except (ValueError, TypeError, ZeroDivisionError, OverflowError):
        yield ValidationError(f"{instance} is not a multiple of {multiple}")
        return
    if quotient.denominator != 1:
        yield ValidationError(f"{instance} is not a multiple of {multiple}")


ExactDraft4Validator = jsonschema.validators.extend(
    Draft4Validator,
    validators={"multipleOf": _multiple_of},
)


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
