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
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Annotated, Final

from pydantic import AfterValidator

__all__ = [
    "CENT",
    "CONTEXT",
    "FINE",
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


def _finite(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("must be finite")
    return value


def _ratio(value: Decimal) -> Decimal:
    _finite(value)
    if not ZERO <= value <= ONE:
        raise ValueError(f"must be a ratio between 0 and 1, got {value}")
    return value


def _non_negative(value: Decimal) -> Decimal:
    _finite(value)
    if value < 0:
        raise ValueError(f"must be >= 0, got {value}")
    return value


#: A finite dollar amount (may be negative where the field says so).
Money = Annotated[Decimal, AfterValidator(_finite)]
#: A finite, non-negative Decimal (dollars or a multiple).
NonNegative = Annotated[Decimal, AfterValidator(_non_negative)]
#: A ratio in [0, 1] (0.2 = 20 %).
Ratio = Annotated[Decimal, AfterValidator(_ratio)]
