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

from updog.model import cash_kernel as ck
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


class FundLedger:
    """The fund's cash for ``paths`` paths, advanced one quarter at a time by the portfolio
    engines (so an investment can be sized to the capital the fund still has).

    Each quarter :meth:`step` retains proceeds within the recycling period and cap as fund
    cash, computes the fees and expenses, pays investments, fees and expenses from fund cash
    first and calls the rest, releases unused fund cash when the recycling period ends, and
    runs the waterfall on the distributable cash (compiled, path by path:
    :func:`updog.model.cash_kernel.settle_quarter`). :meth:`investable` is the capital the
    fund can still invest in a quarter without ever calling above the commitment;
    :meth:`finish` applies the end-of-fund clawback, checks conservation and returns
    :class:`FundCash`. Arrays are of shape (paths,) per quarter."""

    def __init__(self, spec: FundSpec, plan: Plan, paths: int, quarters: int) -> None:
        self.spec = spec
        self.paths = paths
        self.quarters = quarters
        waterfall, recycling = spec.waterfall, spec.recycling
        expenses = np.zeros(quarters)
        expenses[: min(quarters, len(plan.expenses))] = plan.expenses[:quarters]
        usable_ahead = np.full(quarters, np.inf)
        known = min(quarters, len(plan.recycling_uses_ahead))
        usable_ahead[:known] = plan.recycling_uses_ahead[:known]
        tier_years = [
            (tier, tier.end_year if tier.end_year is not None else spec.life_quarters // 4)
            for tier in spec.fees.tiers
        ]
        width = max(len(tier_years), 1)
        tier_rate = np.zeros((quarters, width))
        tier_basis = np.zeros((quarters, width), dtype=np.int64)
        tier_count = np.zeros(quarters, dtype=np.int64)
        for q in range(quarters):
            year = q // 4 + 1
            active = [t for t, end in tier_years if t.start_year <= year <= end]
            tier_count[q] = len(active)
            tier_rate[q, : len(active)] = [t.rate / 4.0 for t in active]
            tier_basis[q, : len(active)] = [_BASIS[t.basis] for t in active]
        self.american = waterfall.type == WaterfallType.american
        self.carry = waterfall.carry
        self.catch_up = waterfall.catch_up
        #: Terms and curves of :func:`updog.model.cash_kernel.settle_path`.
        self.terms = ck.CashTerms(
            size=spec.fund_size,
            carry=waterfall.carry,
            catch_up=waterfall.catch_up,
            pref_rate=(1.0 + waterfall.hurdle) ** 0.25 - 1.0,
            recycle_cap=recycling.cap_ratio * spec.fund_size if recycling.enabled else 0.0,
            recycle_rate=recycling.rate,
            # Last quarter in which proceeds are retained; unused cash is released after it.
            retain_until=min(4 * recycling.period_years, quarters) - 1 if recycling.enabled else -1,
            last_quarter=quarters - 1,
            fee_budget=plan.fee_budget,
            american=self.american,
            usable_ahead=usable_ahead,
            expenses=expenses,
            expenses_ahead=np.concatenate([np.cumsum(expenses[::-1])[::-1], [0.0]]),
            tier_rate=tier_rate,
            tier_basis=tier_basis,
            tier_count=tier_count,
        )
        #: The ledger's state (:class:`updog.model.cash_kernel.CashState`): the LPs' waterfall
        #: and, for a deal-by-deal fund, the whole-fund (European) waterfall run alongside for
        #: its clawback; running totals; the quarterly outputs, (outputs, paths, quarters), each
        #: output a contiguous (paths, quarters) array.
        self.state = ck.CashState(
            lp_state=np.zeros((5, paths)),
            whole_fund=np.zeros((5, paths) if self.american else (5, 0)),
            totals=np.zeros((ck.TOTALS, paths)),
            out=np.zeros((len(ck.OUTPUTS), paths, quarters)),
        )

    @property
    def retained_total(self) -> Array:
        """Proceeds retained as fund cash so far, per path (dollars)."""
        out: Array = self.state.totals[ck.RETAINED_TOTAL]
        return out

    def investable(self, quarter: int) -> Array:
        """Dollars the fund can still invest in ``quarter`` (before the quarter's settlement),
        shape (paths,): undrawn commitment less the fee budget still unspent and the expenses
        still to come, plus fund cash on hand (:func:`updog.model.cash_kernel.investable_path`).
        Investing at most this keeps every call within the commitment."""
        return ck.investable(self.terms, self.state, quarter)

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
        end-of-quarter portfolio ``nav`` and unrealised ``cost``, for an American waterfall
        the GP's deal-by-deal share of the quarter's proceeds, and optionally the proceeds to
        retain (the expected engine's expected retention; default: ``rate`` × proceeds within
        the cap); arrays of shape (paths,), dollars."""
        ck.settle_quarter(
            self.terms,
            self.state,
            quarter,
            invested,
            proceeds,
            nav,
            cost,
            _EMPTY if deal_carry is None else deal_carry,
            _EMPTY if retain is None else retain,
            retain is not None,
        )

    def _allowed_carry(self, profit: Array, value_end: Array | None = None) -> Array:
        """Carry the GP may keep at the end: ``carry`` × profit, and for a deal-by-deal fund at
        most what the whole-fund waterfall (with the LPs' preferred return) gives it, on the
        distributions plus any residual value (``value_end``) as if sold at its marks."""
        allowed: Array = self.carry * np.maximum(profit, 0.0)
        if self.american:
            whole = self.state.totals[ck.WHOLE_FUND_GP]
            if value_end is not None:
                whole = whole + ck.gp_shares(
                    self.state.whole_fund, value_end, self.carry, self.catch_up
                )
            allowed = np.minimum(allowed, whole)
        return allowed

    def finish(self, invested: Array, proceeds: Array) -> FundCash:
        """Apply the end-of-fund clawback and check conservation against the portfolio's
        ``invested`` and ``proceeds`` (paths, quarters). Raises :class:`ConservationError`."""
        out, totals = self.state.out, self.state.totals
        lp_total, gp_total = totals[ck.LP_TOTAL], totals[ck.GP_TOTAL]
        paid_in = self.state.lp_state[ck.PAID_IN]
        if self.quarters > 0 and self.spec.liquidates_at_end:
            profit = lp_total + gp_total - paid_in
            claw = np.maximum(gp_total - self._allowed_carry(profit), 0.0)
            out[ck.CLAWBACK, :, -1] = claw
            out[ck.GP_CARRY, :, -1] -= claw
            out[ck.LP_DISTRIBUTIONS, :, -1] += claw
        elif self.quarters > 0:
            # A fund that keeps holdings at its horizon (evergreen, or held at NAV at the end of
            # its term) is valued as if liquidated at its marks: carry paid plus the GP's share
            # of the residual value may not exceed carry × total profit; the excess is a
            # clawback the GP owes the LPs, counted in the LPs' net NAV (a receivable).
            value_end = totals[ck.PREV_NAV] + totals[ck.CASH]
            value_gp = value_end - out[ck.NET_NAV, :, -1]
            profit = lp_total + gp_total + value_end - paid_in
            allowed = self._allowed_carry(profit, value_end)
            claw = np.maximum(gp_total + value_gp - allowed, 0.0)
            out[ck.CLAWBACK, :, -1] = claw
            out[ck.NET_NAV, :, -1] += claw
        cash = FundCash(**{name: out[i] for i, name in enumerate(ck.OUTPUTS)})
        _check_conservation(cash, invested, proceeds)
        return cash


_EMPTY = np.zeros(0)

#: Fee bases as :mod:`updog.model.cash_kernel` codes.
_BASIS = {
    FeeBasis.committed: ck.COMMITTED,
    FeeBasis.called_cumulative: ck.CALLED_CUMULATIVE,
    FeeBasis.called_net_of_returns: ck.CALLED_NET_OF_RETURNS,
    FeeBasis.invested_cost: ck.INVESTED_COST,
    FeeBasis.nav: ck.NAV,
}


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
