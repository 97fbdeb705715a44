"""Exit recycling: re-investing exit proceeds within a cap and a period.

SPEC §3.1 ``recycling(...)``; truth: exit-recycling.json.

* Capacity: ``max_recyclable = fund_size × cap``; ``annual_capacity = max_recyclable / period``.
* Schedule: exits are taken in year order (input order within a year). An exit's fund proceeds
  are ``gross_proceeds × ownership``. An exit in year ``y <= period_years`` (inclusive) is within
  the period and recycles ``min(rate × fund proceeds, remaining capacity)``; the rest is
  returned to the LPs. Exits after the period recycle nothing (applied rate 0).
* ``excess_proceeds``: what the rate would have recycled within the period but the cap
  blocked. ``cap_reached``: no capacity remains.

Money is rounded half-up to cents at the end, each figure on its own.

Sources: ILPA Principles 3.0 (2019), "Recycling" (recycling limited to a share of commitments
and to the investment period); SPEC §2 (cap 0.15 of commitments, period 5 years, rate 1.0 by
default).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext

from pydantic import BaseModel, ConfigDict

from updog.finance._decimal import (
    CONTEXT,
    ONE,
    ZERO,
    FundYear,
    NonNegative,
    Number,
    Ratio,
    YearIndex,
    round_cents,
    to_decimal,
)

__all__ = [
    "ExitEvent",
    "ExitRecycling",
    "RecyclingCapacity",
    "RecyclingSchedule",
    "RecyclingTerms",
    "YearRecycling",
    "recycling",
    "recycling_capacity",
]


class RecyclingTerms(BaseModel):
    """``cap`` (ratio of fund size), ``period_years`` (>= 1; exits in years ``<=`` it are
    eligible) and ``rate`` (share of each eligible exit's fund proceeds recycled)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cap: Ratio
    period_years: FundYear
    rate: Ratio = ONE


class ExitEvent(BaseModel):
    """An exit: ``year`` of the fund (relative to the vintage, >= 0), gross proceeds of the
    company sale (dollars) and the fund's ``ownership`` (ratio) of them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exit_id: str
    year: YearIndex
    gross_proceeds: NonNegative
    ownership: Ratio = ONE

    @property
    def fund_proceeds(self) -> Decimal:
        """``gross_proceeds × ownership`` (exact)."""
        with localcontext(CONTEXT):
            return self.gross_proceeds * self.ownership


class RecyclingCapacity(BaseModel):
    """Recycling capacity of a fund (dollars rounded to cents)."""

    model_config = ConfigDict(frozen=True)

    max_recyclable: NonNegative
    annual_capacity: NonNegative
    cap: Ratio
    period_years: int


class ExitRecycling(BaseModel):
    """One exit's split between recycling and the LPs."""

    model_config = ConfigDict(frozen=True)

    exit_id: str
    exit_year: int
    fund_proceeds: NonNegative
    recycled_amount: NonNegative
    returned_to_lps: NonNegative
    within_period: bool
    applied_rate: Ratio


class YearRecycling(BaseModel):
    """Recycling in a year that had exits: the year's total and the running total."""

    model_config = ConfigDict(frozen=True)

    year: int
    annual_recycled: NonNegative
    cumulative_recycled: NonNegative


class RecyclingSchedule(BaseModel):
    """Outcome of :func:`recycling`."""

    model_config = ConfigDict(frozen=True)

    capacity: RecyclingCapacity
    by_exit: tuple[ExitRecycling, ...]
    by_year: tuple[YearRecycling, ...]
    total_recycled: NonNegative
    total_returned_to_lps: NonNegative
    remaining_capacity: NonNegative
    cap_reached: bool
    excess_proceeds: NonNegative
    exits_within_period: int
    exits_after_period: int
    recycled_from_eligible_exits: NonNegative
    returned_from_ineligible_exits: NonNegative


def recycling_capacity(fund_size: Number, terms: RecyclingTerms) -> RecyclingCapacity:
    """``max_recyclable = fund_size × cap``; ``annual_capacity = max_recyclable / period_years``.

    Raises:
        ValueError: negative or non-finite ``fund_size``; invalid terms.
    """
    if not isinstance(terms, RecyclingTerms):
        raise ValueError(f"terms must be RecyclingTerms, got {type(terms).__name__}")
    size = to_decimal(fund_size, "fund_size", minimum=ZERO)
    with localcontext(CONTEXT):
        maximum = size * terms.cap
        return RecyclingCapacity(
            max_recyclable=round_cents(maximum),
            annual_capacity=round_cents(maximum / terms.period_years),
            cap=terms.cap,
            period_years=terms.period_years,
        )


def recycling(
    fund_size: Number, terms: RecyclingTerms, exits: Sequence[ExitEvent]
) -> RecyclingSchedule:
    """Recycle exit proceeds within the cap and the period (see the module docstring).

    Args:
        fund_size: commitments in dollars (>= 0).
        terms: :class:`RecyclingTerms`.
        exits: :class:`ExitEvent` list, any order.

    Returns:
        :class:`RecyclingSchedule`; ``total_recycled <= fund_size × cap`` always.

    Raises:
        ValueError: invalid inputs (negative amounts, ratios outside 0..1, duplicate exit ids).
    """
    capacity = recycling_capacity(fund_size, terms)
    size = to_decimal(fund_size, "fund_size", minimum=ZERO)
    for i, ev in enumerate(exits):
        if not isinstance(ev, ExitEvent):
            raise ValueError(f"exits[{i}] must be an ExitEvent, got {type(ev).__name__}")
    ids = [ev.exit_id for ev in exits]
    if len(set(ids)) != len(ids):
        raise ValueError(f"exit ids must be unique, got {ids}")
    ordered = sorted(exits, key=lambda ev: ev.year)

    with localcontext(CONTEXT):
        maximum = size * terms.cap
        recycled = returned = excess = ZERO
        eligible_recycled = ineligible_returned = ZERO
        by_exit: list[ExitRecycling] = []
        by_year: dict[int, Decimal] = {}
        for ev in ordered:
            proceeds = ev.fund_proceeds
            within = ev.year <= terms.period_years
            rate = terms.rate if within else ZERO
            wanted = proceeds * rate
            amount = min(wanted, max(ZERO, maximum - recycled))
            excess += wanted - amount
            back = proceeds - amount
            recycled += amount
            returned += back
            if within:
                eligible_recycled += amount
            else:
                ineligible_returned += back
            by_year[ev.year] = by_year.get(ev.year, ZERO) + amount
            by_exit.append(
                ExitRecycling(
                    exit_id=ev.exit_id,
                    exit_year=ev.year,
                    fund_proceeds=round_cents(proceeds),
                    recycled_amount=round_cents(amount),
                    returned_to_lps=round_cents(back),
                    within_period=within,
                    applied_rate=rate,
                )
            )
        years: list[YearRecycling] = []
        running = ZERO
        for year in sorted(by_year):
            running += by_year[year]
            years.append(
                YearRecycling(
                    year=year,
                    annual_recycled=round_cents(by_year[year]),
                    cumulative_recycled=round_cents(running),
                )
            )
        remaining = maximum - recycled
        return RecyclingSchedule(
            capacity=capacity,
            by_exit=tuple(by_exit),
            by_year=tuple(years),
            total_recycled=round_cents(recycled),
            total_returned_to_lps=round_cents(returned),
            remaining_capacity=round_cents(remaining),
            cap_reached=remaining <= 0,
            excess_proceeds=round_cents(excess),
            exits_within_period=sum(1 for e in by_exit if e.within_period),
            exits_after_period=sum(1 for e in by_exit if not e.within_period),
            recycled_from_eligible_exits=round_cents(eligible_recycled),
            returned_from_ineligible_exits=round_cents(ineligible_returned),
        )
