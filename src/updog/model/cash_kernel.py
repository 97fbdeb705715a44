"""The compiled quarter of the fund's cash: :meth:`updog.model.fund_cash.FundLedger.step` path
by path.

The rules are those documented in :mod:`updog.model.fund_cash` (retention of proceeds for
recycling, fees by basis within the fee budget, calls, release of unused fund cash, the
European waterfall or the deal-by-deal carry with its whole-fund shadow, net NAV). Every
figure is computed per path with the same floating-point operations, in the same order, as
the numpy expressions they replace (elementwise arithmetic, no sums across paths), so the
results are the same bits. Compiled with :data:`updog.model.compiled.njit`.

State layout (one column per path):

* waterfall states, shape (5, paths): rows :data:`PAID_IN`, :data:`RETURNED`,
  :data:`PREF_DUE`, :data:`PREF_PAID`, :data:`CATCH_UP_PAID` (dollars);
* running totals, shape (9, paths): rows :data:`CASH` … :data:`PREV_COST` (dollars);
* quarterly outputs, shape (13, paths, quarters): rows in :data:`OUTPUTS` order (dollars).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from updog.model.compiled import inline, njit

PAID_IN, RETURNED, PREF_DUE, PREF_PAID, CATCH_UP_PAID = range(5)
#: Fund cash on hand; proceeds retained so far; fees paid with capital; fees owed beyond the
#: budget; LP and GP distributions so far; the whole-fund waterfall's GP share (deal-by-deal
#: funds); last quarter's portfolio NAV and unrealised cost.
CASH, RETAINED_TOTAL, FEES_TOTAL, FEES_OWED, LP_TOTAL, GP_TOTAL, WHOLE_FUND_GP = range(7)
PREV_NAV, PREV_COST = 7, 8
TOTALS = 9
#: Quarterly outputs, the fields of :class:`updog.model.fund_cash.FundCash` in order.
OUTPUTS = (
    "called",
    "fees",
    "fees_from_proceeds",
    "fees_waived",
    "expenses",
    "recycled",
    "retained",
    "released",
    "fund_cash",
    "lp_distributions",
    "gp_carry",
    "clawback",
    "net_nav",
)
(
    CALLED,
    FEES,
    FEES_FROM_PROCEEDS,
    FEES_WAIVED,
    EXPENSES,
    RECYCLED,
    RETAINED,
    RELEASED,
    FUND_CASH,
    LP_DISTRIBUTIONS,
    GP_CARRY,
    CLAWBACK,
    NET_NAV,
) = range(len(OUTPUTS))

#: Fee bases (:class:`updog.model.spec.FeeBasis`) as codes.
COMMITTED, CALLED_CUMULATIVE, CALLED_NET_OF_RETURNS, INVESTED_COST, NAV = range(5)


@inline
def split(
    state: NDArray[np.float64],
    p: int,
    amount: float,
    carry: float,
    catch_up: float,
) -> tuple[float, float, float, float]:
    """Split ``amount`` of path ``p`` through the European tiers without changing ``state``:
    return of capital, preferred return, catch-up tier dollars (LP + GP) and the GP's share
    (catch-up plus carry; the LP gets ``amount`` − GP share). ``catch_up`` is 0 (no catch-up)
    or above ``carry`` (FundSpec refuses anything else)."""
    roc = min(amount, max(state[PAID_IN, p] - state[RETURNED, p], 0.0))
    rest = amount - roc
    pref = min(rest, state[PREF_DUE, p])
    rest = rest - pref
    if carry <= 0.0 or catch_up <= 0.0:
        tier = 0.0
    else:
        target = carry * (state[PREF_PAID, p] + pref) / (catch_up - carry)
        tier = min(rest, max(target - state[CATCH_UP_PAID, p], 0.0))
    rest = rest - tier
    gp = catch_up * tier + carry * rest
    return roc, pref, tier, gp


@njit
def gp_shares(
    state: NDArray[np.float64], amounts: NDArray[np.float64], carry: float, catch_up: float
) -> NDArray[np.float64]:
    """The GP's share of ``amounts`` (one per path, dollars) if distributed now through the
    European tiers of ``state`` (:func:`split`; ``state`` unchanged)."""
    out = np.empty(amounts.size)
    for p in range(amounts.size):
        out[p] = split(state, p, amounts[p], carry, catch_up)[3]
    return out


@inline
def _accrue(state: NDArray[np.float64], p: int, call: float, pref_rate: float) -> None:
    """A quarter of preferred return on the opening unreturned capital and unpaid pref, then
    this quarter's call added to paid-in."""
    state[PREF_DUE, p] = state[PREF_DUE, p] + pref_rate * (
        max(state[PAID_IN, p] - state[RETURNED, p], 0.0) + state[PREF_DUE, p]
    )
    state[PAID_IN, p] = state[PAID_IN, p] + call


@inline
def _distribute(
    state: NDArray[np.float64], p: int, amount: float, carry: float, catch_up: float
) -> float:
    """Run ``amount`` through the European tiers, updating ``state``; the GP's share."""
    roc, pref, tier, gp = split(state, p, amount, carry, catch_up)
    state[RETURNED, p] = state[RETURNED, p] + roc
    state[PREF_DUE, p] = state[PREF_DUE, p] - pref
    state[PREF_PAID, p] = state[PREF_PAID, p] + pref
    state[CATCH_UP_PAID, p] = state[CATCH_UP_PAID, p] + tier
    return gp


class CashTerms(NamedTuple):
    """The fund terms and plan curves the quarterly settlement reads (dollars, ratios,
    quarters); arrays indexed by quarter. ``tier_rate``/``tier_basis`` (quarters, tiers): the
    fee tiers in force each quarter, quarterly rate (yearly / 4) and basis code, the first
    ``tier_count[q]`` entries valid."""

    size: float
    carry: float
    catch_up: float
    pref_rate: float
    recycle_cap: float
    recycle_rate: float
    retain_until: int
    last_quarter: int
    fee_budget: float
    american: bool
    #: Plan's recycling uses still to come from each quarter (``inf`` past the plan's curve).
    usable_ahead: NDArray[np.float64]
    expenses: NDArray[np.float64]
    #: Expenses still to pay from quarter q on, shape (quarters + 1,).
    expenses_ahead: NDArray[np.float64]
    tier_rate: NDArray[np.float64]
    tier_basis: NDArray[np.int64]
    tier_count: NDArray[np.int64]


class CashState(NamedTuple):
    """The ledger's state (module docstring): the LPs' waterfall, the whole-fund waterfall of
    a deal-by-deal fund (zero columns otherwise), running totals and quarterly outputs."""

    lp_state: NDArray[np.float64]
    whole_fund: NDArray[np.float64]
    totals: NDArray[np.float64]
    out: NDArray[np.float64]


@inline
def investable_path(terms: CashTerms, state: CashState, p: int, q: int) -> float:
    """Dollars path ``p`` can still invest in quarter ``q`` before its settlement: undrawn
    commitment less the fee budget still unspent and the expenses still to come, plus fund
    cash on hand (so no call ever exceeds the commitment: fees are capped at their budget)."""
    totals = state.totals
    room: float = (
        terms.size
        - state.lp_state[PAID_IN, p]
        - max(terms.fee_budget - totals[FEES_TOTAL, p], 0.0)
        - terms.expenses_ahead[q]
        + totals[CASH, p]
    )
    return room


@njit
def investable(terms: CashTerms, state: CashState, q: int) -> NDArray[np.float64]:
    """:func:`investable_path` of every path, shape (paths,)."""
    paths = state.totals.shape[1]
    out = np.empty(paths)
    for p in range(paths):
        out[p] = investable_path(terms, state, p, q)
    return out


@inline
def settle_path(
    terms: CashTerms,
    state: CashState,
    p: int,
    q: int,
    invested: float,
    proceeds: float,
    nav: float,
    cost: float,
    deal_carry: float,
    retain: float,
    has_retain: bool,
) -> None:
    """Settle quarter ``q`` of path ``p``: ``invested`` (initial + follow-on), gross
    ``proceeds``, end-of-quarter portfolio ``nav`` and unrealised ``cost`` (dollars), the
    deal-by-deal GP share of the proceeds (``deal_carry``; American waterfalls) and, when
    ``has_retain``, the proceeds to retain (else ``rate`` × proceeds within the cap). Writes
    column ``q`` of the outputs and advances the state."""
    lp_state, whole_fund, totals, out = state
    carry, catch_up, pref_rate = terms.carry, terms.catch_up, terms.pref_rate
    cash = totals[CASH, p]
    expenses = terms.expenses[q]
    # Retained proceeds become fund cash, used before any call.
    retained = 0.0
    if q <= terms.retain_until:
        if has_retain:
            wanted = retain
        else:
            wanted = min(
                terms.recycle_rate * proceeds, terms.recycle_cap - totals[RETAINED_TOTAL, p]
            )
        usable = terms.usable_ahead[q] - cash
        retained = max(min(min(wanted, proceeds), usable), 0.0)
    totals[RETAINED_TOTAL, p] = totals[RETAINED_TOTAL, p] + retained
    cash = cash + retained
    # Fees by basis.
    called = lp_state[PAID_IN, p] + max(invested + expenses - cash, 0.0)
    fee = 0.0
    for i in range(terms.tier_count[q]):
        kind = terms.tier_basis[q, i]
        if kind == COMMITTED:
            basis = terms.size
        elif kind == CALLED_CUMULATIVE:
            basis = called
        elif kind == CALLED_NET_OF_RETURNS:
            basis = max(called - lp_state[RETURNED, p], 0.0)
        elif kind == INVESTED_COST:
            basis = totals[PREV_COST, p] + invested
        else:
            basis = totals[PREV_NAV, p]
        fee = fee + terms.tier_rate[q, i] * basis
    # Capital is called for fees within the fee budget only; the rest is owed.
    capped = min(fee, max(terms.fee_budget - totals[FEES_TOTAL, p], 0.0))
    owed = fee - capped
    fee = capped
    uses = invested + fee + expenses
    used = min(cash, uses)
    call = uses - used
    shortfall = max(call - (terms.size - lp_state[PAID_IN, p]), 0.0)
    unfunded = min(fee, shortfall)
    fee = fee - unfunded
    call = call - unfunded
    totals[FEES_OWED, p] = totals[FEES_OWED, p] + owed + unfunded
    cash = cash - used
    released = 0.0
    if q in (terms.retain_until, terms.last_quarter):
        released = cash
        cash = 0.0
    totals[FEES_TOTAL, p] = totals[FEES_TOTAL, p] + fee
    _accrue(lp_state, p, call, pref_rate)
    distributable = proceeds - retained + released
    from_proceeds = min(totals[FEES_OWED, p], distributable)
    totals[FEES_OWED, p] = totals[FEES_OWED, p] - from_proceeds
    distributable = distributable - from_proceeds
    waived = 0.0
    if q == terms.last_quarter:  # what proceeds never covered is waived
        waived = totals[FEES_OWED, p]
        totals[FEES_OWED, p] = 0.0
    if terms.american:
        # Carry as computed deal by deal, on the share of proceeds distributed; the
        # whole-fund waterfall runs alongside for the end-of-fund clawback.
        share = distributable / proceeds if proceeds > 0 else 0.0
        share = min(share, 1.0)
        gp = min(deal_carry * share, distributable)
        lp_state[RETURNED, p] = lp_state[RETURNED, p] + min(
            distributable - gp, max(lp_state[PAID_IN, p] - lp_state[RETURNED, p], 0.0)
        )
        _accrue(whole_fund, p, call, pref_rate)
        totals[WHOLE_FUND_GP, p] = totals[WHOLE_FUND_GP, p] + _distribute(
            whole_fund, p, distributable, carry, catch_up
        )
    else:
        gp = _distribute(lp_state, p, distributable, carry, catch_up)
    lp = distributable - gp
    totals[LP_TOTAL, p] = totals[LP_TOTAL, p] + lp
    totals[GP_TOTAL, p] = totals[GP_TOTAL, p] + gp
    totals[CASH, p] = cash

    out[CALLED, p, q] = call
    out[FEES, p, q] = fee + from_proceeds
    out[FEES_FROM_PROCEEDS, p, q] = from_proceeds
    out[FEES_WAIVED, p, q] = waived
    out[EXPENSES, p, q] = expenses
    out[RECYCLED, p, q] = used
    out[RETAINED, p, q] = retained
    out[RELEASED, p, q] = released
    out[FUND_CASH, p, q] = cash
    out[LP_DISTRIBUTIONS, p, q] = lp
    out[GP_CARRY, p, q] = gp
    value = nav + cash
    if terms.american:
        # Carry on unrealised gains if the holdings were sold at their marks (no pref).
        value_gp = carry * max(nav - cost, 0.0)
    else:
        value_gp = split(lp_state, p, value, carry, catch_up)[3]
    out[NET_NAV, p, q] = value - value_gp
    totals[PREV_NAV, p] = nav
    totals[PREV_COST, p] = cost


@njit
def settle_quarter(
    terms: CashTerms,
    state: CashState,
    q: int,
    invested: NDArray[np.float64],
    proceeds: NDArray[np.float64],
    nav: NDArray[np.float64],
    cost: NDArray[np.float64],
    deal_carry: NDArray[np.float64],
    retain: NDArray[np.float64],
    has_retain: bool,
) -> None:
    """:func:`settle_path` for every path of quarter ``q`` (arrays of shape (paths,);
    ``deal_carry`` and ``retain`` may be empty when unused)."""
    for p in range(invested.shape[0]):
        settle_path(
            terms,
            state,
            p,
            q,
            invested[p],
            proceeds[p],
            nav[p],
            cost[p],
            deal_carry[p] if deal_carry.size else 0.0,
            retain[p] if has_retain else 0.0,
            has_retain,
        )
