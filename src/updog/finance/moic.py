"""MOIC (multiple on invested capital) variants for one investment or a portfolio.

SPEC §3.1 ``moic(...)`` variants; truth: moic.json. Every variant is a ratio (Decimal, not
rounded) and is None when its denominator is 0 ("None when invested = 0").

With ``I`` initial investment, ``F`` follow-on investment, ``V`` current valuation, ``E``
projected exit value, ``p`` exit probability, ``R`` planned reserves, ``m`` the reserves' exit
multiple (all dollars but ``p`` and ``m``):

* current: ``V / (I + F)``;
* exit: ``E / (I + F)``, probability-weighted ``p·E / (I + F)``;
* initial: value attributed to the initial check pro rata to cost, ``(V·I/(I+F)) / I``;
* follow-on: ``(V·F/(I+F)) / F``;
* reserves (the MOIC of the next dollar of reserves): ``R·m·p / R`` (unweighted ``R·m / R``);
* opportunity cost: current MOIC minus the MOIC of the alternative use of the money (e.g.
  1.02 for a 2 % treasury over the holding period);
* blended: investment-weighted mean of the companies' current MOICs,
  ``Σ (I_i + F_i)·MOIC_i / Σ (I_i + F_i)`` = ``Σ V_i / Σ (I_i + F_i)`` over companies with
  capital invested (a company with nothing invested has weight 0).

Sources: CFA Institute, GIPS 2020 for Firms, §2 "MOIC" (value over invested capital); ILPA
Reporting Template (2016), "Gross MOIC".
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext

from pydantic import BaseModel, ConfigDict

from updog.finance._decimal import CONTEXT, ONE, ZERO, NonNegative, Number, Ratio, to_decimal

__all__ = [
    "Investment",
    "blended_moic",
    "current_moic",
    "exit_moic",
    "follow_on_moic",
    "initial_moic",
    "opportunity_cost_moic",
    "reserves_moic",
]


class Investment(BaseModel):
    """One portfolio company position (dollars; ``exit_probability`` a ratio;
    ``reserve_exit_multiple`` a multiple >= 0)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_investment: NonNegative
    follow_on_investment: NonNegative = ZERO
    current_valuation: NonNegative = ZERO
    projected_exit_value: NonNegative = ZERO
    exit_probability: Ratio = ONE
    planned_reserves: NonNegative = ZERO
    reserve_exit_multiple: NonNegative = ZERO

    @property
    def invested(self) -> Decimal:
        """``initial_investment + follow_on_investment``."""
        return self.initial_investment + self.follow_on_investment


def _div(numerator: Decimal, denominator: Decimal) -> Decimal | None:
    if denominator == 0:
        return None
    with localcontext(CONTEXT):
        return numerator / denominator


def current_moic(investment: Investment) -> Decimal | None:
    """``current_valuation / invested``; None when nothing is invested."""
    return _div(investment.current_valuation, investment.invested)


def exit_moic(investment: Investment, *, probability_weighted: bool = True) -> Decimal | None:
    """``exit_probability × projected_exit_value / invested`` (unweighted without the
    probability); None when nothing is invested."""
    with localcontext(CONTEXT):
        value = investment.projected_exit_value
        if probability_weighted:
            value *= investment.exit_probability
    return _div(value, investment.invested)


def initial_moic(investment: Investment) -> Decimal | None:
    """Current value attributed to the initial check pro rata to cost, over the check; None
    when there is no initial investment."""
    if investment.initial_investment == 0:
        return None
    with localcontext(CONTEXT):
        share = investment.current_valuation * investment.initial_investment
        return share / investment.invested / investment.initial_investment


def follow_on_moic(investment: Investment) -> Decimal | None:
    """Current value attributed to follow-ons pro rata to cost, over the follow-ons; None when
    there is no follow-on investment."""
    if investment.follow_on_investment == 0:
        return None
    with localcontext(CONTEXT):
        share = investment.current_valuation * investment.follow_on_investment
        return share / investment.invested / investment.follow_on_investment


def reserves_moic(investment: Investment, *, probability_weighted: bool = True) -> Decimal | None:
    """``planned_reserves × reserve_exit_multiple × exit_probability / planned_reserves``
    (without the probability when unweighted); None when no reserves are planned."""
    if investment.planned_reserves == 0:
        return None
    with localcontext(CONTEXT):
        value = investment.planned_reserves * investment.reserve_exit_multiple
        if probability_weighted:
            value *= investment.exit_probability
        return value / investment.planned_reserves


def opportunity_cost_moic(
    investment: Investment, alternative_multiple: Number = 1
) -> Decimal | None:
    """Current MOIC minus ``alternative_multiple`` (the MOIC the money would have earned
    elsewhere, >= 0; default 1.0 = no return); None when nothing is invested."""
    alternative = to_decimal(alternative_multiple, "alternative_multiple", minimum=ZERO)
    current = current_moic(investment)
    if current is None:
        return None
    with localcontext(CONTEXT):
        return current - alternative


def blended_moic(portfolio: Sequence[Investment]) -> Decimal | None:
    """Investment-weighted mean current MOIC of ``portfolio``; None when nothing is invested."""
    invested = value = ZERO
    with localcontext(CONTEXT):
        for i, inv in enumerate(portfolio):
            if not isinstance(inv, Investment):
                raise ValueError(f"portfolio[{i}] must be an Investment")
            if inv.invested > 0:
                invested += inv.invested
                value += inv.current_valuation
    return _div(value, invested)
