"""Fund-level cash: fees, expenses, capital calls, recycling and the European waterfall.

One implementation serves both engines: arrays have a leading *paths* axis (1 for the
deterministic forecast, N for a Monte Carlo block), and the only Python loop is over quarters
(the waterfall is path-dependent in time), never over paths.

Rules (SPEC §3.1, §3.2):

* **Fees**: per quarter, Σ active tiers ``rate / 4 × basis``. Bases: ``committed`` (commitment),
  ``called_cumulative`` (capital called to date, including this quarter's calls for investments
  and expenses), ``called_net_of_returns`` (max(0, called − capital returned)),
  ``invested_cost`` (cost of unrealised investments at the start of the quarter plus this
  quarter's investments), ``nav`` (fair value at the end of the previous quarter).
* **Calls**: uses (investments + fees + expenses) are funded by recycled proceeds first, then by
  calls, never above the commitment. The plan keeps investments and expenses within the
  commitment net of the fee budget (:mod:`updog.model.plan`); fees beyond that budget (a
  NAV-based fee can grow past it) or beyond the undrawn commitment are waived (reported as
  ``fees_waived``).
* **Recycling**: while enabled and within ``period_years`` (inclusive), ``rate`` × proceeds up to
  the remaining cap (``cap_ratio`` × commitment) fund the same quarter's uses instead of a call.
* **European waterfall** on distributable cash (proceeds − recycled), whole-fund and cumulative:
  (1) return of paid-in capital, (2) preferred return compounding annually at ``hurdle`` on
  unreturned paid-in and unpaid preferred return (accrued quarterly at (1 + h)^(1/4) − 1),
  (3) GP catch-up under the market definition of SPEC §3.1 — the GP takes ``catch_up`` of each
  dollar until it holds ``carry`` × (preferred return paid + catch-up tier), a tier of
  ``carry · pref / (catch_up − carry)``; with ``catch_up ≤ carry`` (but > 0) the tier takes all
  that remains (if a preferred return has been paid at all); ``catch_up = 0`` means no
  catch-up tier — (4) the rest split ``carry`` to the GP. This is
  :func:`updog.finance.european_waterfall` in float arithmetic, vectorised over paths.
  At the end of a fund's life a clawback returns to LPs any carry above
  ``carry × max(0, total distributions − paid-in)``, so a fund that ends below cost keeps no
  carry. An evergreen fund is valued at its horizon as if liquidated at its marks: carry paid
  plus the GP's share of NAV is held to ``carry`` × total profit, the excess counted as a
  clawback receivable in the LPs' net NAV. The GP commitment is paid in and distributed like
  LP capital.
* **American waterfall** (deal by deal): the portfolio engines compute each realisation's GP
  share against its own cost (``PortfolioFlows.deal_carry``); the fund pays it on the share of
  the quarter's proceeds distributed (not recycled), then the same end-of-life clawback. Net NAV
  deducts ``carry`` × unrealised gain.
* **Net NAV** (the LP share of residual NAV) is the LP part of a hypothetical distribution of
  the NAV through the same waterfall, without changing its state.

Conservation is checked every quarter: called + recycled = invested + fees + expenses, and
LP distributions + carry = proceeds − recycled (tolerance one cent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from updog.model.guards import EngineGuardError
from updog.model.plan import Plan
from updog.model.spec import FeeBasis, FundSpec, WaterfallType

Array = NDArray[np.float64]

#: Conservation tolerance, dollars.
CONSERVATION_TOLERANCE = 0.01


class ConservationError(EngineGuardError):
    """A cash identity failed: an engine bug or a corrupted value, never a user error."""


@dataclass(frozen=True)
class PortfolioFlows:
    """Gross portfolio flows in dollars, each of shape (paths, quarters): initial and follow-on
    investments, gross exit proceeds (including any final liquidation), NAV at quarter end
    (fair value at the latest round) and unrealised cost at quarter end; for a deal-by-deal
    (American) waterfall, ``deal_carry`` is the GP share of each quarter's realisations
    computed deal by deal (:func:`updog.model.american.deal_gp_share`)."""

    invested_initial: Array
    invested_follow_on: Array
    gross_proceeds: Array
    nav: Array
    cost_unrealised: Array
    deal_carry: Array | None = None


@dataclass(frozen=True)
class FundCash:
    """Fund-level flows, each of shape (paths, quarters), dollars."""

    called: Array
    fees: Array
    fees_waived: Array
    expenses: Array
    recycled: Array
    lp_distributions: Array
    gp_carry: Array
    clawback: Array
    net_nav: Array


@dataclass
class _WaterfallState:
    paid_in: Array
    returned: Array
    pref_due: Array
    pref_paid: Array
    catch_up_paid: Array


def _split(
    state: _WaterfallState, amount: Array, carry: float, catch_up: float
) -> tuple[Array, Array, Array, Array]:
    """Split ``amount`` (paths,) through the tiers without changing ``state``. Returns arrays
    of shape (paths,): return of capital, preferred return, catch-up tier dollars (LP + GP),
    and the GP's total share (catch-up plus carry); the LP gets ``amount`` − GP share."""
    roc = np.minimum(amount, np.maximum(state.paid_in - state.returned, 0.0))
    rest = amount - roc
    pref = np.minimum(rest, state.pref_due)
    rest = rest - pref
    if carry <= 0.0 or catch_up <= 0.0:
        tier = np.zeros_like(rest)
    elif catch_up > carry:
        target = carry * (state.pref_paid + pref) / (catch_up - carry)
        tier = np.minimum(rest, np.maximum(target - state.catch_up_paid, 0.0))
    else:
        # The GP never catches up: the tier takes all that remains — once there is a
        # preferred return to catch up on (none paid: nothing to catch up, as in the kernel).
        tier = np.where(state.pref_paid + pref > 0.0, rest, 0.0)
    rest = rest - tier
    gp = catch_up * tier + carry * rest
    return roc, pref, tier, gp


def run_fund_cash(spec: FundSpec, plan: Plan, flows: PortfolioFlows) -> FundCash:
    """Apply fees, calls, recycling and the European waterfall to portfolio flows.

    Shapes: every input and output array is (paths, quarters). Raises
    :class:`ConservationError` if a cash identity fails (an engine bug)."""
    paths, quarters = flows.gross_proceeds.shape
    size = spec.fund_size
    carry = spec.waterfall.carry
    catch_up = spec.waterfall.catch_up
    pref_rate = (1.0 + spec.waterfall.hurdle) ** 0.25 - 1.0
    recycling = spec.recycling
    recycle_cap = recycling.cap_ratio * size if recycling.enabled else 0.0

    out = {name: np.zeros((paths, quarters)) for name in FundCash.__dataclass_fields__}
    zeros = np.zeros(paths)
    state = _WaterfallState(zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy())
    recycled_total = zeros.copy()
    fees_total = zeros.copy()
    lp_total = zeros.copy()
    gp_total = zeros.copy()
    prev_nav = zeros
    prev_cost = zeros
    invested = flows.invested_initial + flows.invested_follow_on
    american = spec.waterfall.type == WaterfallType.american
    deal_carry = flows.deal_carry if flows.deal_carry is not None else np.zeros((paths, quarters))

    for q in range(quarters):
        year = q // 4 + 1
        invest = invested[:, q]
        expenses = plan.expenses[q]
        called_before_fees = state.paid_in + invest + expenses
        fee = np.zeros(paths)
        for tier in spec.fees.tiers:
            end = tier.end_year if tier.end_year is not None else quarters // 4
            if not tier.start_year <= year <= end:
                continue
            if tier.basis == FeeBasis.committed:
                basis = np.full(paths, size)
            elif tier.basis == FeeBasis.called_cumulative:
                basis = called_before_fees
            elif tier.basis == FeeBasis.called_net_of_returns:
                basis = np.maximum(called_before_fees - state.returned, 0.0)
            elif tier.basis == FeeBasis.invested_cost:
                basis = prev_cost + invest
            else:
                basis = prev_nav
            fee = fee + tier.rate / 4.0 * basis
        # Fees never exceed the plan's fee budget (a NAV-based fee can): the excess is waived,
        # so called capital stays within the commitment.
        capped = np.minimum(fee, np.maximum(plan.fee_budget - fees_total, 0.0))
        over_budget = fee - capped
        fee = capped
        proceeds = flows.gross_proceeds[:, q]
        uses = invest + fee + expenses
        if recycle_cap > 0.0 and year <= recycling.period_years:
            recycled = np.minimum(
                np.minimum(recycling.rate * proceeds, recycle_cap - recycled_total), uses
            )
            recycled = np.maximum(recycled, 0.0)
        else:
            recycled = zeros
        call = uses - recycled
        shortfall = np.maximum(call - (size - state.paid_in), 0.0)
        waived = np.minimum(fee, shortfall)
        fee = fee - waived
        call = call - waived
        fees_total = fees_total + fee
        # Pref accrues on the opening balance of unreturned capital and unpaid pref.
        state.pref_due = state.pref_due + pref_rate * (
            np.maximum(state.paid_in - state.returned, 0.0) + state.pref_due
        )
        state.paid_in = state.paid_in + call
        recycled_total = recycled_total + recycled
        distributable = proceeds - recycled
        if american:
            # Carry as computed deal by deal, on the share of proceeds distributed.
            share = np.divide(distributable, proceeds, out=np.zeros(paths), where=proceeds > 0)
            gp = np.minimum(deal_carry[:, q] * share, distributable)
            state.returned = state.returned + np.minimum(
                distributable - gp, np.maximum(state.paid_in - state.returned, 0.0)
            )
        else:
            roc, pref, tier_amount, gp = _split(state, distributable, carry, catch_up)
            state.returned = state.returned + roc
            state.pref_due = state.pref_due - pref
            state.pref_paid = state.pref_paid + pref
            state.catch_up_paid = state.catch_up_paid + tier_amount
        lp = distributable - gp
        lp_total = lp_total + lp
        gp_total = gp_total + gp

        out["called"][:, q] = call
        out["fees"][:, q] = fee
        out["fees_waived"][:, q] = waived + over_budget
        out["expenses"][:, q] = expenses
        out["recycled"][:, q] = recycled
        out["lp_distributions"][:, q] = lp
        out["gp_carry"][:, q] = gp
        nav = flows.nav[:, q]
        if american:
            # Carry on unrealised gains if the holdings were sold at their marks (no pref).
            nav_gp = carry * np.maximum(nav - flows.cost_unrealised[:, q], 0.0)
        else:
            _, _, _, nav_gp = _split(state, nav, carry, catch_up)
        out["net_nav"][:, q] = nav - nav_gp
        prev_nav = nav
        prev_cost = flows.cost_unrealised[:, q]

    if quarters > 0 and not spec.evergreen:
        profit = lp_total + gp_total - state.paid_in
        allowed = carry * np.maximum(profit, 0.0)
        claw = np.maximum(gp_total - allowed, 0.0)
        out["clawback"][:, -1] = claw
        out["gp_carry"][:, -1] -= claw
        out["lp_distributions"][:, -1] += claw
    elif quarters > 0:
        # An evergreen fund is valued at the horizon as if liquidated at its marks: carry paid
        # plus the GP's share of NAV may not exceed carry × total profit; the excess is a
        # clawback the GP owes the LPs, counted in the LPs' net NAV (a receivable).
        nav_end = flows.nav[:, -1]
        nav_gp = nav_end - out["net_nav"][:, -1]
        profit = lp_total + gp_total + nav_end - state.paid_in
        allowed = carry * np.maximum(profit, 0.0)
        claw = np.maximum(gp_total + nav_gp - allowed, 0.0)
        out["clawback"][:, -1] = claw
        out["net_nav"][:, -1] += claw

    cash = FundCash(**out)
    _check_conservation(cash, invested, flows.gross_proceeds)
    return cash


def _check_conservation(cash: FundCash, invested: Array, proceeds: Array) -> None:
    sources = cash.called + cash.recycled
    uses = invested + cash.fees + cash.expenses
    gap = float(np.max(np.abs(sources - uses), initial=0.0))
    if not gap <= CONSERVATION_TOLERANCE:
        raise ConservationError(f"sources and uses differ by {gap:.4f} dollars")
    paid = cash.lp_distributions + cash.gp_carry
    gap = float(np.max(np.abs(paid - (proceeds - cash.recycled)), initial=0.0))
    if not gap <= CONSERVATION_TOLERANCE:
        raise ConservationError(f"distributions differ from proceeds − recycled by {gap:.4f}")
