"""Decimal helpers shared by the cent-exact kernels (fees, waterfalls, ledger, LP metrics).

SPEC §1: money is US dollars; cent-exact figures use :class:`decimal.Decimal` and are rounded
half-up (away from zero on a tie, like Excel's ``ROUND``) to cents at the reporting boundary
only, each figure on its own.

Intermediate arithmetic runs in :data:`CONTEXT` (80 significant digits). The only inexact
operations of the kernels (a division, a fractional power) are carried to 10^-30 dollars with
:func:`fine`; sums, differences and products of such figures are then exact for any amount
below 10^40 dollars, so conservation (LP + GP = distributable) holds exactly before the final
rounding.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, WithJsonSchema

__all__ = [
    "CENT",
    "CONTEXT",
    "FINE",
    "MAX_MAGNITUDE",
    "ONE",
    "ZERO",
    "Money",
    "NonNegative",
    "Number",
    "Ratio",
    "fine",
    "round_cents",
    "to_decimal",
]

#: Arithmetic context of the kernels; reported figures are rounded by :func:`round_cents`.
CONTEXT: Final[Context] = Context(prec=80, rounding=ROUND_HALF_EVEN)
#: Resolution of the results of inexact operations (dollars or ratios).
FINE: Final[Decimal] = Decimal("1e-30")
CENT: Final[Decimal] = Decimal("0.01")
ZERO: Final[Decimal] = Decimal(0)
ONE: Final[Decimal] = Decimal(1)

#: What the public functions accept for a number. Floats are converted through their shortest
#: repr (``0.1`` → ``Decimal("0.1")``), never through their binary expansion.
Number = Decimal | int | float | str


def to_decimal(value: object, name: str, *, minimum: Decimal | None = None) -> Decimal:
    """``value`` as a finite Decimal, or ValueError naming ``name``.

    Accepts Decimal, int, float and numeric strings; rejects bool, NaN and infinities, and
    values below ``minimum`` when it is given.
    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got a bool")
    try:
        if isinstance(value, Decimal):
            result = value
        elif isinstance(value, int):
            result = Decimal(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
            result = Decimal(repr(value))
        elif isinstance(value, str):
            result = Decimal(value.strip())
        else:
            raise ValueError(f"{name} must be a number, got {type(value).__name__}")
    except InvalidOperation as exc:
        raise ValueError(f"{name} is not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{name} must be finite, got {value!r}")
    if minimum is not None and result < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {result}")
    return result


def fine(value: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """``value`` (the result of a division or power) carried to 10^-30 (half-even unless
    ``rounding`` says otherwise, e.g. ``ROUND_DOWN`` for a bound that must not be exceeded)."""
    return value.quantize(FINE, rounding=rounding, context=CONTEXT)


def round_cents(value: Decimal) -> Decimal:
    """``value`` rounded half-up (ties away from zero) to cents; ``-0.00`` becomes ``0.00``."""
    rounded = value.quantize(CENT, rounding=ROUND_HALF_UP, context=CONTEXT)
    return rounded if rounded != 0 else CENT * 0


def _integral(value: Any) -> Any:
    """A float with no fractional part is the integer it spells (JSON has one number type:
    ``2025.0`` is the integer 2025, as JSON Schema's ``integer`` says); anything else is left
    for the strict ``int`` check (so ``"2025"``, ``true`` and ``2025.5`` stay wrong)."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


#: Ahead of a strict ``int`` field: accept integral floats (:func:`_integral`).
INTEGRAL = BeforeValidator(_integral)

#: Integer inputs of the kernels: quarters and years counted from the fund's start (bounds
#: far beyond any fund, so that every integer input is bounded), and record ids (|id| ≤
#: 10^18, what a JSON number holds exactly
#: enough and a PostgreSQL bigint keeps).
MAX_QUARTERS: Final = 1_000_000
MAX_YEARS: Final = 1_000
MAX_ID: Final = 10**18
Quarter = Annotated[int, Field(ge=0, le=MAX_QUARTERS, strict=True), INTEGRAL]
FundYear = Annotated[int, Field(ge=1, le=MAX_YEARS, strict=True), INTEGRAL]
YearIndex = Annotated[int, Field(ge=0, le=MAX_YEARS, strict=True), INTEGRAL]
RecordId = Annotated[int, Field(ge=-MAX_ID, le=MAX_ID, strict=True), INTEGRAL]

#: Largest magnitude of an input figure (dollars, multiples): the kernels are exact far
#: beyond it, and it keeps every input a plain decimal of at most 18 integer digits.
MAX_MAGNITUDE: Final[Decimal] = Decimal("1e18")

#: Decimal text an input may be written as (JSON Schema patterns, ECMA-262 and Python alike):
#: digits with an optional fraction, no exponent, no leading zeros, at most 18 integer digits.
_FRACTION = r"(\.[0-9]{1,30})?"
SIGNED_PATTERN: Final = rf"^-?(0|[1-9][0-9]{{0,17}}){_FRACTION}$"
UNSIGNED_PATTERN: Final = rf"^(0|[1-9][0-9]{{0,17}}){_FRACTION}$"
RATIO_PATTERN: Final = r"^(0(\.[0-9]{1,30})?|1(\.0{1,30})?)$"


def _reader(pattern: str) -> BeforeValidator:
    """Read a JSON input as a Decimal: a number (a float through its shortest repr), or text
    matching ``pattern``; refuse booleans and any other text (``""``, ``"1e5"``, ``"NaN"``)."""
    compiled = re.compile(pattern)

    def read(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("must be a number, not a boolean")
        if isinstance(value, str):
            if not compiled.fullmatch(value):
                raise ValueError(
                    'must be a number or decimal text such as "1500000.00" (digits, an '
                    "optional fraction, no exponent)"
                )
            return Decimal(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("must be finite")
            return Decimal(repr(value))
        if isinstance(value, int):
            return Decimal(value)
        return value

    return BeforeValidator(read)


def _schema(pattern: str, minimum: Decimal, maximum: Decimal) -> WithJsonSchema:
    number = {"type": "number", "minimum": float(minimum), "maximum": float(maximum)}
    return WithJsonSchema(
        {"anyOf": [number, {"type": "string", "pattern": pattern}]}, mode="validation"
    )


#: How a Decimal result is written: Python's ``str(Decimal)`` (``"1400000.00"``, ``"1E-30"``).
_OUTPUT = WithJsonSchema(
    {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?(E[-+]?[0-9]+)?$"}, mode="serialization"
)


#: A finite dollar amount (may be negative where the field says so), |x| ≤ 10^18: a JSON
#: number or decimal text (Decimal refuses NaN and infinities).
Money = Annotated[
    Decimal,
    Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE),
    _reader(SIGNED_PATTERN),
    _schema(SIGNED_PATTERN, -MAX_MAGNITUDE, MAX_MAGNITUDE),
    _OUTPUT,
]
#: A finite, non-negative Decimal (dollars or a multiple), at most 10^18.
NonNegative = Annotated[
    Decimal,
    Field(ge=0, le=MAX_MAGNITUDE),
    _reader(UNSIGNED_PATTERN),
    _schema(UNSIGNED_PATTERN, ZERO, MAX_MAGNITUDE),
    _OUTPUT,
]
#: A ratio in [0, 1] (0.2 = 20 %).
Ratio = Annotated[
    Decimal,
    Field(ge=0, le=1),
    _reader(RATIO_PATTERN),
    _schema(RATIO_PATTERN, ZERO, ONE),
    _OUTPUT,
]
