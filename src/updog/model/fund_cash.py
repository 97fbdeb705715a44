"""Fund-level cash: fees, expenses, capital calls, recycling and the European waterfall.

One implementation serves both engines: arrays have a leading *paths* axis (1 for the
deterministic forecast, N for a Monte Carlo block), and the only Python loop is over quarters
(the waterfall is path-dependent in time), never over paths.

Rules (SPEC §3.1, §3.2, as amended by the construction rules in the README):

* **Fees**: per quarter, Σ active tiers ``rate / 4 × basis``. A tier without ``end_year`` runs
  to the end of the fund's life (not into extension years). Bases: ``committed``
  (commitment), ``called_cumulative`` (capital called to date, including this quarter's calls
  for investments and expenses), ``called_net_of_returns`` (max(0, called − capital
  returned)), ``invested_cost`` (cost of unrealised investments at the start of the quarter
  plus this quarter's investments), ``nav`` (fair value at the end of the previous quarter).
  Capital is called for fees within the plan's fee budget (its expectation plus a margin, see
  :mod:`updog.model.construction`) and the undrawn commitment only, so the fund never calls
  above its commitment; fees beyond them are owed to the manager and paid from proceeds
  before anything is distributed (``fees_from_proceeds``), and what no proceeds cover by the
  horizon is waived (``fees_waived``).
* **Recycling** (ILPA Principles 3.0, "Recycling"): while enabled, ``rate`` × the proceeds
  received in fund years 1..``period_years``, up to the cap (``cap_ratio`` × commitment in
  all), are *retained* as fund cash instead of distributed — as far as the fund expects to use
  them before the period ends (the plan's expected uses still to come in the period, less the
  fund cash on hand; the rest is distributed at once). Fund cash pays investments, fees
  and expenses before any capital is called (``recycled`` is what it paid); what is left when
  the period ends is distributed (``released``). Fund cash counts in the residual value.
* **Calls**: uses (investments + fees + expenses) not paid from fund cash are called. The
  portfolio engines size investments with :meth:`FundLedger.investable`, so calls never exceed
  the commitment.
* **European waterfall** on distributable cash (proceeds − retained + released − fees paid
  from proceeds), whole-fund and
  cumulative: (1) return of paid-in capital, (2) preferred return compounding annually at
  ``hurdle`` on unreturned paid-in and unpaid preferred return (accrued quarterly at
  (1 + h)^(1/4) − 1), (3) GP catch-up under the market definition of SPEC §3.1 — the GP takes
  ``catch_up`` of each dollar until it holds ``carry`` × (preferred return paid + catch-up
  tier), a tier of ``carry · pref / (catch_up − carry)``; ``catch_up = 0`` means no catch-up
  tier (FundSpec refuses a catch-up at or below the carry rate) — (4) the rest split ``carry``
  to the GP. This is :func:`updog.finance.european_waterfall` in float arithmetic, vectorised
  over paths. When a fund liquidates at the end of its term, a clawback returns to LPs any
  carry above ``carry × max(0, total distributions − paid-in)``, so a fund that ends below cost
  keeps no carry. A fund that keeps holdings at its horizon (evergreen, or an end-of-term
  policy of holding at NAV) is valued as if liquidated at its marks: carry paid plus the GP's
  share of the residual value is held to ``carry`` × total profit, the excess counted as a
  clawback receivable in the LPs' net NAV. The GP commitment is paid in and distributed like
  LP capital.
* **American waterfall** (deal by deal): the portfolio engines compute each realisation's GP
  share against its own cost and preferred return (``PortfolioFlows.deal_carry``); the fund
  pays it on the share of the quarter's proceeds distributed (not retained). At the end of the
  fund the GP keeps at most what the whole-fund (European) waterfall would have paid it on the
  same cash flows — the LPs' fund-level preferred return included — and never more than
  ``carry`` × profit; the excess is clawed back (ILPA Principles 3.0, "Clawback": a
  deal-by-deal GP is trued up to the whole-fund result). Net NAV deducts ``carry`` ×
  unrealised gain.
* **Net NAV** (the LP share of residual value) is the LP part of a hypothetical distribution of
  the portfolio NAV plus fund cash through the same waterfall, without changing its state.

Conservation is checked every quarter: called + recycled = invested + fees paid with capital
+ expenses; LP distributions + carry + fees paid from proceeds = proceeds − retained +
released; fund cash = Σ (retained − recycled − released) ≥ 0 (tolerance one cent).
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
    """Fund-level flows, each of shape (paths, quarters), dollars: capital called; management
    fees paid (with capital, or from proceeds when they exceed the fee budget:
    ``fees_from_proceeds``) and waived (owed fees no proceeds covered by the horizon);
    expenses; retained proceeds used for investments, fees and expenses (``recycled``);
    proceeds retained as fund cash (``retained``); unused fund cash distributed when the
    recycling period ends (``released``); fund cash on hand at quarter end (``fund_cash``); LP
    distributions; GP carry (net of the clawback in the last quarter); the clawback; and the
    LPs' share of the residual value (portfolio NAV plus fund cash) at quarter end
    (``net_nav``)."""

    called: Array
    fees: Array
    fees_from_proceeds: Array
    fees_waived: Array
    expenses: Array
    recycled: Array
    retained: Array
    released: Array
    fund_cash: Array
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
    and the GP's total share (catch-up plus carry); the LP gets ``amount`` − GP share.
    ``catch_up`` is 0 (no catch-up) or above ``carry`` (FundSpec refuses anything else)."""
    roc = np.minimum(amount, np.maximum(state.paid_in - state.returned, 0.0))
    rest = amount - roc
    pref = np.minimum(rest, state.pref_due)
    rest = rest - pref
    if carry <= 0.0 or catch_up <= 0.0:
        tier = np.zeros_like(rest)
    else:
        target = carry * (state.pref_paid + pref) / (catch_up - carry)
        tier = np.minimum(rest, np.maximum(target - state.catch_up_paid, 0.0))
    rest = rest - tier
    gp = catch_up * tier + carry * rest
    return roc, pref, tier, gp


class FundLedger:
    """The fund's cash for ``paths`` paths, advanced one quarter at a time by the portfolio
    engines (so an investment can be sized to the capital the fund still has).

    Each quarter :meth:`step` retains proceeds within the recycling period and cap as fund
    cash, computes the fees and expenses, pays investments, fees and expenses from fund cash
    first and calls the rest, releases unused fund cash when the recycling period ends, and
    runs the waterfall on the distributable cash. :meth:`investable` is the capital the fund
    can still invest in a quarter without ever calling above the commitment; :meth:`finish`
    applies the end-of-fund clawback, checks conservation and returns :class:`FundCash`.
    Arrays are of shape (paths,) per quarter."""

    def __init__(self, spec: FundSpec, plan: Plan, paths: int, quarters: int) -> None:
        self.spec = spec
        self.paths = paths
        self.quarters = quarters
        self.size = spec.fund_size
        self.carry = spec.waterfall.carry
        self.catch_up = spec.waterfall.catch_up
        self.pref_rate = (1.0 + spec.waterfall.hurdle) ** 0.25 - 1.0
        recycling = spec.recycling
        self.recycle_cap = recycling.cap_ratio * self.size if recycling.enabled else 0.0
        self.recycle_rate = recycling.rate
        #: Last quarter in which proceeds are retained; unused cash is released after it.
        self.retain_until = (
            min(4 * recycling.period_years, quarters) - 1 if recycling.enabled else -1
        )
        self.fee_budget = plan.fee_budget
        self.uses_ahead = plan.recycling_uses_ahead
        self.expenses = plan.expenses
        expenses = np.zeros(quarters)
        expenses[: min(quarters, len(plan.expenses))] = plan.expenses[:quarters]
        #: Expenses still to pay from quarter q on (q = 0..quarters).
        self.expenses_ahead = np.concatenate([np.cumsum(expenses[::-1])[::-1], [0.0]])
        self.tier_years = [
            (tier, tier.end_year if tier.end_year is not None else spec.life_quarters // 4)
            for tier in spec.fees.tiers
        ]
        zeros = np.zeros(paths)
        self.state = _WaterfallState(*(zeros.copy() for _ in range(5)))
        #: The whole-fund (European) waterfall of a deal-by-deal fund, for its clawback.
        self.whole_fund = (
            _WaterfallState(*(zeros.copy() for _ in range(5)))
            if spec.waterfall.type == WaterfallType.american
            else None
        )
        self.whole_fund_gp = zeros.copy()
        self.cash = zeros.copy()
        self.retained_total = zeros.copy()
        self.fees_total = zeros.copy()  # fees paid with capital (called or fund cash)
        self.fees_owed = zeros.copy()  # fees due beyond the budget, not yet paid
        self.lp_total = zeros.copy()
        self.gp_total = zeros.copy()
        self.prev_nav = zeros.copy()
        self.prev_cost = zeros.copy()
        # (quarters, paths): one contiguous row per quarter; transposed by :meth:`finish`.
        self.out = {name: np.zeros((quarters, paths)) for name in FundCash.__dataclass_fields__}

    def investable(self, quarter: int) -> Array:
        """Dollars the fund can still invest in ``quarter`` (before the quarter's settlement),
        shape (paths,): undrawn commitment less the fee budget still unspent and the expenses
        still to come, plus fund cash on hand. Investing at most this keeps every call within
        the commitment (fees are capped at their budget)."""
        out: Array = (
            self.size
            - self.state.paid_in
            - np.maximum(self.fee_budget - self.fees_total, 0.0)
            - self.expenses_ahead[quarter]
            + self.cash
        )
        return out

    def _fee(self, quarter: int, invest: Array, expenses: float) -> Array:
        year = quarter // 4 + 1
        state = self.state
        called = state.paid_in + np.maximum(invest + expenses - self.cash, 0.0)
        fee = np.zeros(self.paths)
        for tier, end in self.tier_years:
            if not tier.start_year <= year <= end:
                continue
            if tier.basis == FeeBasis.committed:
                basis: Array | float = self.size
            elif tier.basis == FeeBasis.called_cumulative:
                basis = called
            elif tier.basis == FeeBasis.called_net_of_returns:
                basis = np.maximum(called - state.returned, 0.0)
            elif tier.basis == FeeBasis.invested_cost:
                basis = self.prev_cost + invest
            else:
                basis = self.prev_nav
            fee = fee + tier.rate / 4.0 * basis
        return fee

    def step(
        self,
        quarter: int,
        invested: Array,
        proceeds: Array,
        nav: Array,
        cost: Array,
        deal_carry: Array | None = None,
        retain: Array | None = None,
    ) -> None:
        """Settle ``quarter``: ``invested`` (initial + follow-on), gross ``proceeds``,
        end-of-quarter portfolio ``nav`` and unrealised ``cost``, and for an American waterfall
        the GP's deal-by-deal share of the quarter's proceeds; arrays of shape (paths,),
        dollars."""
        q, out, state = quarter, self.out, self.state
        expenses = float(self.expenses[q]) if q < len(self.expenses) else 0.0
        # Retained proceeds become fund cash, used before any call.
        if q <= self.retain_until:
            wanted = (
                np.minimum(self.recycle_rate * proceeds, self.recycle_cap - self.retained_total)
                if retain is None
                else retain
            )
            # Only what the fund expects to use before the period ends is retained.
            usable = self.uses_ahead[q] - self.cash if q < len(self.uses_ahead) else np.inf
            retained = np.clip(np.minimum(np.minimum(wanted, proceeds), usable), 0.0, None)
        else:
            retained = np.zeros(self.paths)
        self.retained_total = self.retained_total + retained
        self.cash = self.cash + retained
        fee = self._fee(q, invested, expenses)
        # Capital is called for fees within the fee budget only (a NAV-based fee can outgrow
        # it), so called capital stays within the commitment: the rest is owed to the manager
        # and paid from proceeds before anything is distributed.
        capped = np.minimum(fee, np.maximum(self.fee_budget - self.fees_total, 0.0))
        owed = fee - capped
        fee = capped
        uses = invested + fee + expenses
        used = np.minimum(self.cash, uses)
        call = uses - used
        shortfall = np.maximum(call - (self.size - state.paid_in), 0.0)
        unfunded = np.minimum(fee, shortfall)
        fee = fee - unfunded
        call = call - unfunded
        self.fees_owed = self.fees_owed + owed + unfunded
        self.cash = self.cash - used
        released = np.zeros(self.paths)
        if q == self.retain_until or q == self.quarters - 1:
            released = self.cash
            self.cash = np.zeros(self.paths)
        self.fees_total = self.fees_total + fee
        self._accrue(state, call)
        distributable = proceeds - retained + released
        from_proceeds = np.minimum(self.fees_owed, distributable)
        self.fees_owed = self.fees_owed - from_proceeds
        distributable = distributable - from_proceeds
        waived = np.zeros(self.paths)
        if q == self.quarters - 1:  # what proceeds never covered is waived
            waived, self.fees_owed = self.fees_owed, np.zeros(self.paths)
        if self.whole_fund is not None:
            # Carry as computed deal by deal, on the share of proceeds distributed; the
            # whole-fund waterfall runs alongside for the end-of-fund clawback.
            share = np.divide(distributable, proceeds, out=np.zeros(self.paths), where=proceeds > 0)
            share = np.minimum(share, 1.0)
            owed = deal_carry if deal_carry is not None else np.zeros(self.paths)
            gp = np.minimum(owed * share, distributable)
            state.returned = state.returned + np.minimum(
                distributable - gp, np.maximum(state.paid_in - state.returned, 0.0)
            )
            self._accrue(self.whole_fund, call)
            self.whole_fund_gp = self.whole_fund_gp + self._distribute(
                self.whole_fund, distributable
            )
        else:
            gp = self._distribute(state, distributable)
        lp = distributable - gp
        self.lp_total = self.lp_total + lp
        self.gp_total = self.gp_total + gp

        out["called"][q] = call
        out["fees"][q] = fee + from_proceeds
        out["fees_from_proceeds"][q] = from_proceeds
        out["fees_waived"][q] = waived
        out["expenses"][q] = expenses
        out["recycled"][q] = used
        out["retained"][q] = retained
        out["released"][q] = released
        out["fund_cash"][q] = self.cash
        out["lp_distributions"][q] = lp
        out["gp_carry"][q] = gp
        value = nav + self.cash
        if self.whole_fund is not None:
            # Carry on unrealised gains if the holdings were sold at their marks (no pref).
            value_gp = self.carry * np.maximum(nav - cost, 0.0)
        else:
            _, _, _, value_gp = _split(state, value, self.carry, self.catch_up)
        out["net_nav"][q] = value - value_gp
        self.prev_nav = nav
        self.prev_cost = cost

    def _accrue(self, state: _WaterfallState, call: Array) -> None:
        """Accrue a quarter of preferred return on the opening balance of unreturned capital
        and unpaid pref, then add this quarter's calls to paid-in."""
        state.pref_due = state.pref_due + self.pref_rate * (
            np.maximum(state.paid_in - state.returned, 0.0) + state.pref_due
        )
        state.paid_in = state.paid_in + call

    def _distribute(self, state: _WaterfallState, amount: Array) -> Array:
        """Run ``amount`` through the European tiers, updating ``state``; the GP's share."""
        roc, pref, tier_amount, gp = _split(state, amount, self.carry, self.catch_up)
        state.returned = state.returned + roc
        state.pref_due = state.pref_due - pref
        state.pref_paid = state.pref_paid + pref
        state.catch_up_paid = state.catch_up_paid + tier_amount
        return gp

    def _allowed_carry(self, profit: Array, value_end: Array | None = None) -> Array:
        """Carry the GP may keep at the end: ``carry`` × profit, and for a deal-by-deal fund at
        most what the whole-fund waterfall (with the LPs' preferred return) gives it, on the
        distributions plus any residual value (``value_end``) as if sold at its marks."""
        allowed: Array = self.carry * np.maximum(profit, 0.0)
        if self.whole_fund is not None:
            whole = self.whole_fund_gp
            if value_end is not None:
                whole = whole + _split(self.whole_fund, value_end, self.carry, self.catch_up)[3]
            allowed = np.minimum(allowed, whole)
        return allowed

    def finish(self, invested: Array, proceeds: Array) -> FundCash:
        """Apply the end-of-fund clawback and check conservation against the portfolio's
        ``invested`` and ``proceeds`` (paths, quarters). Raises :class:`ConservationError`."""
        out, state = self.out, self.state
        if self.quarters > 0 and self.spec.liquidates_at_end:
            profit = self.lp_total + self.gp_total - state.paid_in
            claw = np.maximum(self.gp_total - self._allowed_carry(profit), 0.0)
            out["clawback"][-1] = claw
            out["gp_carry"][-1] -= claw
            out["lp_distributions"][-1] += claw
        elif self.quarters > 0:
            # A fund that keeps holdings at its horizon (evergreen, or held at NAV at the end of
            # its term) is valued as if liquidated at its marks: carry paid plus the GP's share
            # of the residual value may not exceed carry × total profit; the excess is a
            # clawback the GP owes the LPs, counted in the LPs' net NAV (a receivable).
            value_end = self.prev_nav + self.cash
            value_gp = value_end - out["net_nav"][-1]
            profit = self.lp_total + self.gp_total + value_end - state.paid_in
            allowed = self._allowed_carry(profit, value_end)
            claw = np.maximum(self.gp_total + value_gp - allowed, 0.0)
            out["clawback"][-1] = claw
            out["net_nav"][-1] += claw
        cash = FundCash(**{name: np.ascontiguousarray(a.T) for name, a in out.items()})
        _check_conservation(cash, invested, proceeds)
        return cash


def run_fund_cash(spec: FundSpec, plan: Plan, flows: PortfolioFlows) -> FundCash:
    """Apply fees, calls, recycling and the waterfall to given portfolio flows (no investment
    is resized: the flows are taken as they are).

    Shapes: every input and output array is (paths, quarters). Raises
    :class:`ConservationError` if a cash identity fails (an engine bug)."""
    paths, quarters = flows.gross_proceeds.shape
    ledger = FundLedger(spec, plan, paths, quarters)
    invested = flows.invested_initial + flows.invested_follow_on
    for q in range(quarters):
        ledger.step(
            q,
            invested[:, q],
            flows.gross_proceeds[:, q],
            flows.nav[:, q],
            flows.cost_unrealised[:, q],
            None if flows.deal_carry is None else flows.deal_carry[:, q],
        )
    return ledger.finish(invested, flows.gross_proceeds)


def _check_conservation(cash: FundCash, invested: Array, proceeds: Array) -> None:
    sources = cash.called + cash.recycled
    uses = invested + cash.fees - cash.fees_from_proceeds + cash.expenses
    gap = float(np.max(np.abs(sources - uses), initial=0.0))
    if not gap <= CONSERVATION_TOLERANCE:
        raise ConservationError(f"sources and uses differ by {gap:.4f} dollars")
    paid = cash.lp_distributions + cash.gp_carry + cash.fees_from_proceeds
    distributable = proceeds - cash.retained + cash.released
    gap = float(np.max(np.abs(paid - distributable), initial=0.0))
    if not gap <= CONSERVATION_TOLERANCE:
        raise ConservationError(
            f"distributions differ from proceeds − retained + released by {gap:.4f}"
        )
    balance = np.cumsum(cash.retained - cash.recycled - cash.released, axis=1)
    gap = float(np.max(np.abs(balance - cash.fund_cash), initial=0.0))
    if not gap <= CONSERVATION_TOLERANCE or not float(cash.fund_cash.min(initial=0.0)) >= 0.0:
        raise ConservationError(f"fund cash does not balance (gap {gap:.4f})")
