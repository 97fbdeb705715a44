"""Quarter-indexed distribution ledger with hurdle, recycling and a fund-level clawback.

SPEC §3.1 ``waterfall_ledger(config, contributions, exits)``; truth: waterfall-ledger.json.

Exits are processed in quarter order (input order within a quarter). Before each exit, every
contribution dated in or before its quarter is paid in. For an exit of gross proceeds ``G``
(dollars) with ``O = max(0, paid_in − distributed)`` the LP's capital still outstanding:

1. *capital return*: ``R = min(G, O)`` to the LP;
2. *profit*: ``X = G − R`` goes through the deal-by-deal tiers of
   :func:`updog.finance.distribute`: the LP first gets the preferred return, flat on the
   outstanding capital, ``P = min(X, hurdle × O)``; then the GP catch-up at rate ``catch_up``
   under the market definition (SPEC §3.1: the GP takes ``catch_up`` of each dollar until it
   holds ``carry`` × (P + tier), a tier of ``carry · P / (catch_up − carry)`` dollars; with
   ``catch_up <= carry`` the tier takes all that remains); then the rest is split ``carry`` /
   ``1 − carry``. The GP's carry is what the catch-up and carry tiers give it (the tier logic
   is :func:`updog.finance.waterfall.catch_up_and_carry`, not rounded before the split) and
   the LP keeps ``X − carry``. With ``catch_up = 0`` (the default) there is no catch-up tier:
   the carry is ``carry × max(0, X − hurdle × O)``;
3. *recycling* (optional): in quarters ``<= recycling_window_quarters`` the fund keeps
   ``min(take_rate × (R + LP profit), cap − recycled so far)`` of the LP's share to re-invest,
   where ``cap = recycling_cap × committed``; recycled dollars are not distributed, so the LP's
   capital stays outstanding;
4. the LP is distributed ``R + LP profit − recycled``.

**Clawback** (SPEC §3.1), when enabled, at the end: with fund profit
``F = distributed + carry paid − paid_in`` and the LP's shortfall against the hurdle multiple
``S = max(0, multiple × paid_in − distributed)``, the GP may keep at most
``carry × max(0, F − S)`` (never more than ``carry × max(0, F)``); the excess is paid back to
the LP in a synthetic row dated at the last exit's quarter. On a fund that ends below cost
(``F <= 0``) every carry dollar paid comes back.

Totals: ``dpi = distributed / paid_in``; ``tvpi = (distributed + unrealized) / paid_in`` with
``unrealized = max(0, paid_in − distributed)`` (the ledger has no marks, so capital not yet
returned is carried at cost); both None when nothing was paid in. Money is rounded half-up to
cents at the end, each figure on its own; ratios are computed from the unrounded figures.

Sources: ILPA Principles 3.0 (2019), "Clawback" and "Recycling"; Metrick & Yasuda (2010) §2.3
(deal-by-deal carry, the catch-up and the clawback); SPEC §3.1 (the catch-up's market
definition).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal, localcontext
from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator

from updog.finance._decimal import (
    CONTEXT,
    ZERO,
    Money,
    NonNegative,
    Quarter,
    Ratio,
    round_cents,
)
from updog.finance.waterfall import catch_up_and_carry

__all__ = [
    "LedgerConfig",
    "LedgerContribution",
    "LedgerExit",
    "LedgerResult",
    "LedgerRow",
    "LedgerTotals",
    "waterfall_ledger",
]


class LedgerConfig(BaseModel):
    """Ledger terms (ratios 0..1; the clawback multiple is a multiple of paid-in, >= 0).

    ``carry`` is the GP's share above the hurdle, ``hurdle`` the flat preferred return on the
    outstanding capital per exit, ``catch_up`` the GP's share of each dollar in the catch-up
    tier (0 = no catch-up tier, the default; 1 = full catch-up; at or below ``carry`` the tier
    never closes). Recycling needs ``recycling_cap`` and ``recycling_window_quarters`` when
    enabled; ``committed`` (dollars) is the base of the cap and defaults to the total
    contributions.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    carry: Ratio
    hurdle: Ratio = Decimal("0")
    catch_up: Ratio = Decimal("0")
    recycling_enabled: bool = False
    recycling_cap: Ratio | None = None
    recycling_window_quarters: Quarter | None = None
    recycling_take_rate: Ratio = Decimal("1")
    committed: NonNegative | None = None
    clawback_enabled: bool = False
    clawback_lp_hurdle_multiple: NonNegative = Decimal("1")

    @model_validator(mode="after")
    def _recycling_complete(self) -> Self:
        if self.recycling_enabled and (
            self.recycling_cap is None or self.recycling_window_quarters is None
        ):
            raise ValueError("recycling_enabled needs recycling_cap and recycling_window_quarters")
        return self


class LedgerContribution(BaseModel):
    """Capital paid in (dollars, >= 0) in a quarter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quarter: Quarter
    amount: NonNegative


class LedgerExit(BaseModel):
    """Gross exit proceeds distributable by the fund (dollars, >= 0) in a quarter."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quarter: Quarter
    gross_proceeds: NonNegative


class LedgerRow(BaseModel):
    """One exit (or the synthetic clawback row) and the running totals after it."""

    model_config = ConfigDict(frozen=True)

    quarter: int
    gross_proceeds: Money
    lp_capital_return: Money
    lp_profit_share: Money
    gp_carry: Money
    recycled_amount: Money
    gp_clawback: Money | None
    paid_in: Money
    distributed: Money
    recycled: Money
    unrealized_capital: Money
    dpi: Decimal | None
    tvpi: Decimal | None


class LedgerTotals(BaseModel):
    """Ledger totals; ``gp_clawback`` is None when no clawback is due (or it is disabled)."""

    model_config = ConfigDict(frozen=True)

    paid_in: Money
    distributed: Money
    recycled: Money
    unrealized_capital: Money
    dpi: Decimal | None
    tvpi: Decimal | None
    gp_carry_total: Money
    gp_clawback: Money | None
    gp_carry_net: Money


class LedgerResult(BaseModel):
    """Outcome of :func:`waterfall_ledger`."""

    model_config = ConfigDict(frozen=True)

    rows: tuple[LedgerRow, ...]
    totals: LedgerTotals


def _ratios(paid_in: Decimal, distributed: Decimal) -> tuple[Decimal | None, Decimal | None]:
    if paid_in == 0:
        return None, None
    unrealized = max(ZERO, paid_in - distributed)
    return distributed / paid_in, (distributed + unrealized) / paid_in


def waterfall_ledger(
    config: LedgerConfig,
    contributions: Sequence[LedgerContribution],
    exits: Sequence[LedgerExit],
) -> LedgerResult:
    """Run the ledger described in the module docstring.

    Args:
        config: :class:`LedgerConfig`.
        contributions: capital paid in by quarter (any order).
        exits: gross exit proceeds by quarter (any order; same-quarter exits keep their order).

    Returns:
        :class:`LedgerResult`: one row per exit, plus the clawback row when one is due, and
        totals over all contributions (including those after the last exit).

    Raises:
        ValueError: invalid config, amounts or quarters (negative, non-finite).
    """
    if not isinstance(config, LedgerConfig):
        raise ValueError(f"config must be a LedgerConfig, got {type(config).__name__}")
    for i, c in enumerate(contributions):
        if not isinstance(c, LedgerContribution):
            raise ValueError(f"contributions[{i}] must be a LedgerContribution")
    for i, e in enumerate(exits):
        if not isinstance(e, LedgerExit):
            raise ValueError(f"exits[{i}] must be a LedgerExit")
    pending = sorted(contributions, key=lambda c: c.quarter)
    ordered = sorted(exits, key=lambda e: e.quarter)

    with localcontext(CONTEXT):
        committed = (
            config.committed
            if config.committed is not None
            else sum((c.amount for c in contributions), ZERO)
        )
        cap_dollars = committed * (config.recycling_cap or ZERO)
        window = config.recycling_window_quarters or 0
        carry = config.carry
        catch_up = config.catch_up if config.catch_up > 0 else None
        paid_in = distributed = recycled = carry_total = ZERO
        next_contribution = 0
        exact_rows: list[dict[str, Decimal | int | None]] = []

        def pay_in_through(quarter: int | None) -> None:
            nonlocal paid_in, next_contribution
            while next_contribution < len(pending) and (
                quarter is None or pending[next_contribution].quarter <= quarter
            ):
                paid_in += pending[next_contribution].amount
                next_contribution += 1

        def row(**fields: Decimal | int | None) -> None:
            dpi, tvpi = _ratios(paid_in, distributed)
            exact_rows.append(
                {
                    **fields,
                    "paid_in": paid_in,
                    "distributed": distributed,
                    "recycled": recycled,
                    "unrealized_capital": max(ZERO, paid_in - distributed),
                    "dpi": dpi,
                    "tvpi": tvpi,
                }
            )

        for ev in ordered:
            pay_in_through(ev.quarter)
            gross = ev.gross_proceeds
            outstanding = max(ZERO, paid_in - distributed)
            capital_return = min(gross, outstanding)
            profit = gross - capital_return
            pref = min(profit, config.hurdle * outstanding)
            gp_carry = catch_up_and_carry(
                profit - pref, carry=carry, catch_up=catch_up, pref_paid=pref
            ).gp
            lp_profit = profit - gp_carry
            carry_total += gp_carry
            recycled_amount = ZERO
            if config.recycling_enabled and ev.quarter <= window:
                room = max(ZERO, cap_dollars - recycled)
                recycled_amount = min(
                    (capital_return + lp_profit) * config.recycling_take_rate, room
                )
            distributed += capital_return + lp_profit - recycled_amount
            recycled += recycled_amount
            row(
                quarter=ev.quarter,
                gross_proceeds=gross,
                lp_capital_return=capital_return,
                lp_profit_share=lp_profit,
                gp_carry=gp_carry,
                recycled_amount=recycled_amount,
                gp_clawback=None,
            )

        pay_in_through(None)
        clawback = ZERO
        if config.clawback_enabled and carry_total > 0:
            fund_profit = distributed + carry_total - paid_in
            shortfall = max(ZERO, config.clawback_lp_hurdle_multiple * paid_in - distributed)
            allowed = carry * max(ZERO, fund_profit - shortfall)
            clawback = max(ZERO, carry_total - allowed)
            if clawback > 0:
                distributed += clawback
                row(
                    quarter=ordered[-1].quarter if ordered else 0,
                    gross_proceeds=ZERO,
                    lp_capital_return=clawback,
                    lp_profit_share=ZERO,
                    gp_carry=-clawback,
                    recycled_amount=ZERO,
                    gp_clawback=clawback,
                )

        rows = tuple(
            LedgerRow(
                **{
                    key: round_cents(value)
                    if isinstance(value, Decimal) and key not in ("dpi", "tvpi")
                    else value
                    for key, value in fields.items()
                }
            )
            for fields in exact_rows
        )
        dpi, tvpi = _ratios(paid_in, distributed)
        totals = LedgerTotals(
            paid_in=round_cents(paid_in),
            distributed=round_cents(distributed),
            recycled=round_cents(recycled),
            unrealized_capital=round_cents(max(ZERO, paid_in - distributed)),
            dpi=dpi,
            tvpi=tvpi,
            gp_carry_total=round_cents(carry_total),
            gp_clawback=round_cents(clawback) if clawback > 0 else None,
            gp_carry_net=round_cents(carry_total - clawback),
        )
    return LedgerResult(rows=rows, totals=totals)
