"""Management fees by year over a fund's life (SPEC §3.1 ``management_fees``; truth: fees.json).

Formula, for fund year ``y`` (1-based) and the fee tiers active in that year::

    fee_y = Σ_{tiers t active in y} rate_t × basis_t(y)

with the bases (dollars, as of year ``y``; schedules are indexed by fund year, entry 0 = year 1):

* ``committed``: the commitment (fund size);
* ``called_cumulative``: capital called to date, capped at the commitment;
* ``called_net_of_returns``: ``max(0, called − capital returned)``, the called figure capped at
  the commitment;
* ``invested_cost``: cost of the unrealised investments;
* ``nav``: fair value (net asset value) of the portfolio.

The cap is the rule "a called-capital fee never exceeds the committed one at the same rate"
(SPEC §3.1): capital called beyond the commitment (e.g. a recalled distribution drawn again)
does not raise the fee. Step-downs are consecutive tiers (e.g. 2 % on committed in years 1-5,
then 1.5 % in years 6-10); a year that no tier covers is a fee holiday (fee 0). A zero-size fund
pays 0.

Sources: ILPA Principles 3.0 (2019), §"Management fees" (fee bases and step-downs after the
investment period); Metrick & Yasuda, "The Economics of Private Equity Funds", Review of
Financial Studies 23(6), 2010, §2.2 (committed vs. invested-capital fee bases).

Rounding: each year's fee is an amount billed and is rounded half-up to cents on its own; the
total is the sum of the yearly fees (so totals reconcile with the bills) and the average is the
total divided by the number of years, rounded half-up to cents.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, model_validator

from updog.finance._decimal import (
    CONTEXT,
    ZERO,
    FundYear,
    NonNegative,
    Number,
    Ratio,
    round_cents,
    to_decimal,
)

__all__ = ["FeeBasis", "FeeSchedule", "FeeTier", "management_fees"]


class FeeBasis(StrEnum):
    """What a fee rate is applied to (SPEC §2, Fees)."""

    COMMITTED = "committed"
    CALLED_CUMULATIVE = "called_cumulative"
    CALLED_NET_OF_RETURNS = "called_net_of_returns"
    INVESTED_COST = "invested_cost"
    NAV = "nav"


class FeeTier(BaseModel):
    """One fee tier: ``rate`` (ratio, 0.02 = 2 %) of ``basis`` in fund years
    ``start_year..end_year`` (1-based, inclusive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rate: Ratio
    basis: FeeBasis = FeeBasis.COMMITTED
    start_year: FundYear
    end_year: FundYear

    @model_validator(mode="after")
    def _years_ordered(self) -> FeeTier:
        if self.end_year < self.start_year:
            raise ValueError(
                f"end_year ({self.end_year}) must not be before start_year ({self.start_year})"
            )
        return self


class FeeSchedule(BaseModel):
    """Fees by fund year (dollars, each rounded half-up to cents), their total and average."""

    model_config = ConfigDict(frozen=True)

    yearly: tuple[NonNegative, ...]
    total: NonNegative
    average: NonNegative


def _schedule(values: Sequence[Number] | None, name: str, years: int) -> tuple[Decimal, ...] | None:
    if values is None:
        return None
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name} must be a sequence of amounts, not a string")
    result = tuple(to_decimal(v, f"{name}[{i}]", minimum=ZERO) for i, v in enumerate(values))
    if len(result) < years:
        raise ValueError(f"{name} has {len(result)} entries but the fund runs {years} years")
    return result


def _check_tiers(tiers: Sequence[FeeTier]) -> None:
    for i, tier in enumerate(tiers):
        if not isinstance(tier, FeeTier):
            raise ValueError(f"tiers[{i}] must be a FeeTier, got {type(tier).__name__}")
        if i and tier.start_year <= tiers[i - 1].end_year:
            prev = tiers[i - 1]
            raise ValueError(
                f"fee tiers must be ordered and non-overlapping: tiers[{i}] starts in year "
                f"{tier.start_year}, tiers[{i - 1}] runs to year {prev.end_year}"
            )


def management_fees(
    tiers: Sequence[FeeTier],
    commitment: Number,
    years: int,
    *,
    called: Sequence[Number] | None = None,
    returned: Sequence[Number] | None = None,
    invested_cost: Sequence[Number] | None = None,
    nav: Sequence[Number] | None = None,
) -> FeeSchedule:
    """Yearly management fees of a fund (see the module docstring for the formula).

    Args:
        tiers: fee tiers ordered by ``start_year`` and non-overlapping (a step-down is the
            next tier). Years outside every tier pay no fee (a fee holiday).
        commitment: fund size in dollars (>= 0).
        years: fund life in years (>= 1); fees are computed for years ``1..years``.
        called: cumulative capital called by the end of each year (dollars), shape
            ``(>= years,)``; needed by ``called_cumulative`` and ``called_net_of_returns``.
        returned: cumulative capital returned to LPs by each year (dollars); needed by
            ``called_net_of_returns``.
        invested_cost: cost of unrealised investments in each year; for ``invested_cost``.
        nav: portfolio fair value in each year; for ``nav``.

    Returns:
        :class:`FeeSchedule` with ``years`` yearly fees.

    Raises:
        ValueError: negative or non-finite amounts, a rate outside 0..1, unordered or
            overlapping tiers, ``years`` < 1, or a schedule a tier needs that is missing or
            shorter than ``years``.
    """
    if isinstance(years, bool) or not isinstance(years, int) or years < 1:
        raise ValueError(f"years must be an integer >= 1, got {years!r}")
    tiers = list(tiers)
    _check_tiers(tiers)
    size = to_decimal(commitment, "commitment", minimum=ZERO)
    schedules = {
        "called": _schedule(called, "called", years),
        "returned": _schedule(returned, "returned", years),
        "invested_cost": _schedule(invested_cost, "invested_cost", years),
        "nav": _schedule(nav, "nav", years),
    }

    def need(name: str, basis: FeeBasis) -> tuple[Decimal, ...]:
        values = schedules[name]
        if values is None:
            raise ValueError(f"a {basis.value} fee tier needs the {name} schedule")
        return values

    with localcontext(CONTEXT):
        exact = [ZERO] * years
        for tier in tiers:
            for year in range(tier.start_year, min(tier.end_year, years) + 1):
                i = year - 1
                if tier.basis is FeeBasis.COMMITTED:
                    base = size
                elif tier.basis is FeeBasis.CALLED_CUMULATIVE:
                    base = min(need("called", tier.basis)[i], size)
                elif tier.basis is FeeBasis.CALLED_NET_OF_RETURNS:
                    net = need("called", tier.basis)[i] - need("returned", tier.basis)[i]
                    base = min(max(ZERO, net), size)
                elif tier.basis is FeeBasis.INVESTED_COST:
                    base = need("invested_cost", tier.basis)[i]
                else:
                    base = need("nav", tier.basis)[i]
                exact[i] += tier.rate * base
        yearly = tuple(round_cents(fee) for fee in exact)
        total = sum(yearly, ZERO)
        average = round_cents(total / years)
    return FeeSchedule(yearly=yearly, total=round_cents(total), average=average)
