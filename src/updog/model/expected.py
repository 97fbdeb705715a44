"""The construction model in expectation (SPEC §3.2): the deterministic engine.

Instead of drawing each company's fate, this engine propagates *expected mass*: for every
candidate company, stage and quarter, the expected number of entries into that stage
(``mass``), the expected ownership carried in (``own``, a fraction of the company ×
probability), the expected cost and the expected discounted cost (for the American preferred
return). A stage's entries leave it by graduation, exit or failure with the stage's
probabilities, spread over the quarters by the event-time distribution. The rules are those of
the sampled model (:mod:`updog.simulation.sampling`), applied to expectations, one quarter at a
time with the fund's cash (:class:`~updog.model.fund_cash.FundLedger`):

1. graduations due this quarter raise the next round; while the fund invests (its life, not
   its extensions) and within the allocation's ``follow_on_rounds`` it follows on with
   probability ``participation`` (pro-rata: ownership × round size; fixed:
   ``follow_on_check``, at most the whole round), within the capital it can still invest
   (and, when unused reserves are held, without touching the planned initial checks still to
   come). The sampled engine also lets a path whose capital exceeds its companies' expected
   need after the investment period follow on in the rounds it would have passed; in
   expectation that surplus is what the extra candidates did not absorb, and the expected
   value of "the surplus of the paths whose company raises a round" is not a function of
   expected values, so the forecast leaves it out (on the examples and on small funds this
   brings the forecast closer to the simulated mean than applying the rule to expected
   values, which would spend the average surplus on the average round);
2. candidates due this quarter enter. With reserve-aware pacing the fund's *uncommitted*
   capital is what it can still invest plus the expected recycling to come, less the expected
   follow-on need of the companies alive (:mod:`updog.model.reserves`) and the checks plus
   expected need of the planned companies still to come; a planned candidate enters unless
   the fund is over-committed (then it enters in part, by the share of its check and need the
   fund can carry), an extra candidate takes the share of itself the uncommitted capital
   covers. Without it the planned companies enter as far as capital allows;
3. entries schedule their graduations, exits (the stage's mean multiple on its post-money)
   and failures;
4. NAV marks surviving companies at ownership × the latest round's post-money; in the last
   quarter a closed-end fund sells what it holds at ``end_of_term.discount`` to NAV, or keeps
   it as residual value;
5. the ledger settles the quarter (fees, recycling, calls, waterfall).

Everything up to the capital constraints is linear in the outcomes, so gross proceeds,
investments and paid-in are the means of the Monte Carlo engine while the constraints do not
bind on a path; the convergence tests measure the difference on the example funds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special  # type: ignore[import-untyped]

from updog.model.american import compounded_pref, deal_gp_share, quarterly_growth
from updog.model.fund_cash import FundCash, FundLedger, PortfolioFlows
from updog.model.plan import Plan
from updog.model.spec import FundSpec, OutcomeDistribution, UnusedReserves, WaterfallType

Array = NDArray[np.float64]

#: A check this close to what a path can invest (a share of the commitment) still fits: float
#: noise must not skip a company.
CHECK_TOLERANCE = 1e-9


@dataclass(frozen=True)
class CompanyCounts:
    """Expected company counts: entered, graduated out of each stage (by stage name), exited,
    failed (written off) and still held (or sold at the end of the term) at the horizon."""

    initial: float
    graduated: dict[str, float]
    exited: float
    failed: float
    held_at_horizon: float


@dataclass(frozen=True)
class PortfolioResult:
    """One run of the construction model on ``paths`` paths (1 for the deterministic engine):
    portfolio flows and fund cash (shapes (paths, quarters)); per path (shape (paths,)) the
    follow-on dollars invested (``reserves_used``), the initial dollars invested in extra
    candidates (``redeployed``) and the value that came from the end of the term
    (``end_value``: the secondary-sale proceeds, or the NAV kept at the horizon); expected
    company counts (deterministic engine) or each investment's gross multiple (value realised
    or held at the horizon over cost, shape (paths, companies), NaN for a candidate that did
    not enter; sampled engine)."""

    flows: PortfolioFlows
    cash: FundCash
    reserves_used: Array
    redeployed: Array
    end_value: Array
    counts: CompanyCounts | None = None
    company_multiple: Array | None = None


class RetentionModel:
    """The expected retention of proceeds (recycling) of the sampled model.

    A path retains ``min(rate × S_q, cap)`` by quarter ``q`` of the recycling period, with
    ``S_q`` its proceeds so far; the expectation of that minimum is below the minimum of the
    expectation (Jensen), and by much, because venture proceeds come in rare lumps. Since
    ``min(S, K) = min(Σ min(X_c, K), K)`` for the companies' proceeds ``X_c`` and ``K = cap /
    rate``, the deterministic engine tracks the mean and variance of ``Σ min(X_c, K)`` —
    companies exit independently given the market factor; a company's capped proceeds have the
    truncated moments of ownership × exit multiple × post-money (:func:`truncated_moments`,
    ownership at its expected value) — and takes ``E[min(Y, K)]`` for ``Y`` gamma-distributed
    with that mean and variance, times the market factor ``Z`` (lognormal, mean 1,
    ``E[Z²] = exp(σ²)``): ``E[min(Y, K)] = m · P(k + 1, K/θ) + K · (1 − P(k, K/θ))`` with shape
    ``k = m²/v``, scale ``θ = v/m`` and ``P`` the regularised lower incomplete gamma function.
    Each quarter retains ``rate`` × the increase of that expectation."""

    def __init__(self, spec: FundSpec, quarters: int) -> None:
        recycling = spec.recycling
        cap = recycling.cap_ratio * spec.fund_size if recycling.enabled else 0.0
        self.rate = recycling.rate
        self.until = min(4 * recycling.period_years, quarters) - 1
        self.active = cap > 0.0 and self.rate > 0.0 and self.until >= 0
        #: Proceeds that fill the cap: K = cap / rate.
        self.limit = cap / self.rate if self.active else 0.0
        self.market = math.exp(spec.market.volatility**2)
        self.first: Array | float = 0.0
        self.second: Array | float = 0.0

    def exit_moments(
        self, outcomes: OutcomeDistribution, mass: Array, value_mass: Array
    ) -> tuple[Array, Array]:
        """Expected capped proceeds and their second moment (mass-weighted, shape
        (companies,)) of exits from a stage with ``outcomes``, for companies entering it with
        expected ``mass`` and expected ``value_mass`` (mass × ownership × post-money)."""
        alive = mass > 0.0
        value = np.divide(value_mass, mass, out=np.zeros(mass.shape), where=alive)
        threshold = np.divide(self.limit, value, out=np.full(mass.shape, np.inf), where=value > 0)
        first, second = truncated_moments(outcomes, threshold)
        return mass * value * first, mass * value**2 * second

    def retain(self, quarter: int, first: Array, second: Array, retained: Array) -> Array:
        """Dollars to retain in ``quarter`` given the companies' expected capped proceeds in it
        (``first``, shape (companies,)), their second moment (``second``) and what has been
        retained so far (``retained``, shape (1,))."""
        if quarter > self.until:
            return np.zeros(1)
        self.first = self.first + first
        self.second = self.second + second
        mean = float(np.sum(self.first))
        independent = float(np.maximum(self.second - self.first**2, 0.0).sum())
        variance = max(self.market * (independent + mean**2) - mean**2, 0.0)
        target = self.rate * _expected_min(mean, variance, self.limit)
        out: Array = np.maximum(target - retained, 0.0)
        return out


def truncated_moments(outcomes: OutcomeDistribution, threshold: Array) -> tuple[Array, Array]:
    """``E[min(M, t)]`` and ``E[min(M, t)²]`` of the exit multiple ``M`` of a band mixture
    (uniform bands, bounded Pareto top band; :class:`~updog.model.spec.OutcomeDistribution`)
    for each threshold ``t`` of ``threshold`` (any shape, ``inf`` allowed)."""
    t = np.asarray(threshold, dtype=np.float64)
    first, second = np.zeros(t.shape), np.zeros(t.shape)
    bands = outcomes.bands
    for j, band in enumerate(bands):
        lo, hi, p = band.min_multiple, band.max_multiple, band.probability
        x = np.clip(t, lo, hi)
        tail = np.where(t < hi, t, 0.0)  # min(M, t) = t on the part of the band above t
        if j < len(bands) - 1:
            above = (hi - x) / (hi - lo)
            part1 = (x**2 - lo**2) / (2.0 * (hi - lo))
            part2 = (x**3 - lo**3) / (3.0 * (hi - lo))
        else:
            alpha = outcomes.tail_alpha
            norm = alpha * lo**alpha / (1.0 - (lo / hi) ** alpha)
            above = ((lo / x) ** alpha - (lo / hi) ** alpha) / (1.0 - (lo / hi) ** alpha)
            part1 = norm * _power_integral(lo, x, 1.0 - alpha)
            part2 = norm * _power_integral(lo, x, 2.0 - alpha)
        first += p * (part1 + tail * above)
        second += p * (part2 + tail**2 * above)
    return first, second


def _power_integral(low: float, high: Array, exponent: float) -> Array:
    """``∫_low^high x^(exponent − 1) dx`` (``ln(high/low)`` when ``exponent`` is 0)."""
    if math.isclose(exponent, 0.0):
        out: Array = np.log(high / low)
        return out
    out = (high**exponent - low**exponent) / exponent
    return out


def _expected_min(mean: float, variance: float, cap: float) -> float:
    """``E[min(Y, cap)]`` for a gamma-distributed ``Y`` with ``mean`` and ``variance``."""
    if mean <= 0.0:
        return 0.0
    if variance <= 0.0:
        return min(mean, cap)
    shape, scale = mean * mean / variance, variance / mean
    x = cap / scale
    return float(mean * special.gammainc(shape + 1.0, x) + cap * special.gammaincc(shape, x))


def _share(part: float, whole: float) -> float:
    """``part / whole`` clipped to 0..1 (1 when ``whole`` is 0): the share of a demand that
    capital covers, safe from overflow for tiny demands."""
    if part >= whole:
        return 1.0
    return max(part, 0.0) / whole if whole > 0.0 else 0.0


def candidates_by_quarter(plan: Plan) -> list[NDArray[np.int64]]:
    """Indices of the candidates entering in each quarter, in entry order."""
    entry = plan.companies.entry_quarter
    return [np.flatnonzero(entry == q) for q in range(plan.quarters)]


def planned_ahead(plan: Plan) -> Array:
    """Initial checks plus expected follow-on need (dollars) of the planned companies due in
    quarter q or later, shape (quarters + 1,): the capital reserve-aware pacing keeps for the
    rest of the plan before it invests in an extra candidate."""
    co = plan.companies
    out = np.zeros(plan.quarters + 1)
    np.add.at(out, co.entry_quarter[co.planned], (co.initial_check + co.need)[co.planned])
    ahead: Array = np.cumsum(out[::-1])[::-1]
    return ahead


def protected_initial(spec: FundSpec, plan: Plan) -> Array:
    """Dollars of planned initial checks due in quarter q or later, shape (quarters + 1,),
    that follow-ons may not use when unused reserves are held (zeros under reserve-aware
    pacing, where new investments adapt instead)."""
    out = np.zeros(plan.quarters + 1)
    if spec.construction.unused_reserves == UnusedReserves.hold:
        co = plan.companies
        np.add.at(out, co.entry_quarter[co.planned], co.initial_check[co.planned])
        out = np.cumsum(out[::-1])[::-1]
    return out


@dataclass(frozen=True)
class QuarterRules:
    """What both engines read from a spec and its plan as they step through the quarters:
    the deal-by-deal terms, reserve-aware pacing and its capital curves
    (:func:`protected_initial`, :func:`planned_ahead`), the candidates entering each quarter
    and the share of ownership kept through each stage's round (shape (stages,))."""

    american: bool
    carry: float
    hurdle: float
    catch_up: float
    growth: float
    redeploy: bool
    protect: Array
    plan_ahead: Array
    by_quarter: list[NDArray[np.int64]]
    keep: Array

    @classmethod
    def of(cls, spec: FundSpec, plan: Plan) -> QuarterRules:
        waterfall = spec.waterfall
        return cls(
            american=waterfall.type == WaterfallType.american,
            carry=waterfall.carry,
            hurdle=waterfall.hurdle,
            catch_up=waterfall.catch_up,
            growth=quarterly_growth(waterfall.hurdle),
            redeploy=spec.construction.unused_reserves == UnusedReserves.redeploy,
            protect=protected_initial(spec, plan),
            plan_ahead=planned_ahead(plan),
            by_quarter=candidates_by_quarter(plan),
            keep=1.0 - plan.stages.round_size / plan.stages.post_money,
        )

    def deal_carry(
        self, proceeds: Array, cost: Array, discounted_cost: Array, quarter: int | Array
    ) -> Array:
        """GP share of deal-by-deal realisations in ``quarter`` (arrays broadcast together,
        dollars), with the preferred return compounded from each contribution
        (:func:`updog.model.american.compounded_pref`)."""
        pref = compounded_pref(discounted_cost, cost, quarter, self.hurdle)
        return deal_gp_share(proceeds, cost, pref, self.carry, self.catch_up)

    def discount(self, quarter: int) -> float:
        """``g^(−quarter)``: a contribution's weight in a deal's discounted cost."""
        return float(self.growth ** (-quarter))


def expected_run(spec: FundSpec, plan: Plan) -> PortfolioResult:
    """The construction model of ``spec`` in expectation; arrays of shape (1, quarters)."""
    quarters = plan.quarters
    st = plan.stages
    co = plan.companies
    n_comp, n_stage = len(co.entry_quarter), len(st.round_size)
    shape = (n_comp, n_stage, quarters)
    mass, own, cost, disc = (np.zeros(shape) for _ in range(4))
    g_mass, g_own, g_cost, g_disc = (np.zeros(shape) for _ in range(4))
    # Each company's expected proceeds by quarter, capped at what recycling can retain, and
    # their second moment: the inputs of the expected retention (RetentionModel).
    recycling = RetentionModel(spec, quarters)
    proceeds_1 = np.zeros((n_comp, quarters))
    proceeds_2 = np.zeros((n_comp, quarters))
    invested_initial, invested_follow_on = np.zeros(quarters), np.zeros(quarters)
    proceeds, nav, cost_unrealised = np.zeros(quarters), np.zeros(quarters), np.zeros(quarters)
    deal_carry, exited, failed = np.zeros(quarters), np.zeros(quarters), np.zeros(quarters)
    rules = QuarterRules.of(spec, plan)
    american, redeploy, keep = rules.american, rules.redeploy, rules.keep
    ledger = FundLedger(spec, plan, 1, quarters)
    tolerance = CHECK_TOLERANCE * spec.fund_size
    part = co.participation[:, None]
    lags = plan.needs.lags
    # Needs depend on a company's allocation only: sum the expected state by allocation first.
    by_allocation = np.zeros((len(plan.needs.per_ownership), n_comp))
    by_allocation[co.allocation, np.arange(n_comp)] = 1.0
    redeployed = 0.0
    end_value = 0.0
    held = 0.0

    def live_need(q: int) -> float:
        total = 0.0
        for t in range(max(0, q - lags + 1), q + 1):
            lag = q - t
            own_t, mass_t = by_allocation @ own[:, :, t], by_allocation @ mass[:, :, t]
            total += float((own_t * plan.needs.per_ownership[:, :, t, lag]).sum())
            total += float((mass_t * plan.needs.per_company[:, :, t, lag]).sum())
        return total

    def alive_weights(q: int, s: int) -> Array:
        """P(an entry into stage s in quarter t is still there at the end of quarter q)."""
        surv = st.survival[s]
        lag = q - np.arange(q + 1)
        out: Array = np.where(lag < len(surv), surv[np.minimum(lag, len(surv) - 1)], 0.0)
        return out

    for q in range(quarters):
        available = float(ledger.investable(q)[0])
        spent = 0.0
        gm = g_mass[:, :, q]
        if gm.any():
            gw = g_own[:, :, q]
            size = np.zeros_like(gw)
            if q < plan.invest_until:
                follows = np.arange(n_stage)[None, :] <= co.last_follow_on_stage[:, None]
                size = np.where(
                    follows,
                    np.where(
                        co.pro_rata[:, None],
                        gw * st.round_size[None, :],
                        gm * np.minimum(co.follow_on_check[:, None], st.round_size[None, :]),
                    ),
                    0.0,
                )
            demand = part * size
            total = float(demand.sum())
            room = max(available - rules.protect[q], 0.0)
            funded = _share(room, total) * demand
            mass[:, :, q] += gm
            own[:, :, q] += gw * keep[None, :]
            cost[:, :, q] += g_cost[:, :, q]
            disc[:, :, q] += g_disc[:, :, q]
            spent += float(funded.sum())
            invested_follow_on[q] += float(funded.sum())
            own[:, :, q] += funded / st.post_money[None, :]
            cost[:, :, q] += funded
            disc[:, :, q] += funded * rules.discount(q)

        entering = rules.by_quarter[q]
        if entering.size:
            uncommitted = (
                available - spent + plan.reinvestable_ahead[q] - live_need(q) - rules.plan_ahead[q]
            )
            for c in entering:
                check = float(co.initial_check[c])
                # A check is written whole or not at all (as on a simulated path).
                frac = 1.0 if available - spent >= check - tolerance else 0.0
                if redeploy:
                    unit = check + float(co.need[c])
                    if co.planned[c]:
                        frac = min(frac, _share(unit + uncommitted, unit))
                        uncommitted += (1.0 - frac) * unit
                    else:
                        frac = min(frac, _share(uncommitted, unit))
                        uncommitted -= frac * unit
                if frac <= 0.0:
                    continue
                s0 = int(co.entry_stage[c])
                mass[c, s0, q] += frac
                own[c, s0, q] += frac * check / st.post_money[s0]
                cost[c, s0, q] += frac * check
                disc[c, s0, q] += frac * check * rules.discount(q)
                invested_initial[q] += frac * check
                spent += frac * check
                if not co.planned[c]:
                    redeployed += frac * check

        for s in range(n_stage):
            m = mass[:, s, q]
            if not m.any():
                continue
            w_total = float(own[:, s, q].sum())
            m_total = float(m.sum())
            pg, pe = st.graduation_rate[s], st.exit_rate[s]
            pf = 1.0 - pg - pe
            gp = st.graduation_pmf[s]
            hi = min(quarters, q + len(gp))
            span = gp[1 : hi - q]
            if pg > 0.0 and s + 1 < n_stage and hi > q + 1:
                rows = (m, own[:, s, q], cost[:, s, q], disc[:, s, q])
                for values, pending in zip(rows, (g_mass, g_own, g_cost, g_disc), strict=True):
                    pending[:, s + 1, q + 1 : hi] += pg * values[:, None] * span[None, :]
            if hi > q + 1:
                failed[q + 1 : hi] += pf * m_total * span
            ep = st.exit_pmf[s]
            hi = min(quarters, q + len(ep))
            if pe > 0.0 and hi > q + 1:
                espan = ep[1 : hi - q]
                exited[q + 1 : hi] += pe * m_total * espan
                value = st.mean_multiple[s] * st.post_money[s]
                proceeds[q + 1 : hi] += pe * w_total * value * espan
                if recycling.active and q < recycling.until:
                    first, second = recycling.exit_moments(
                        spec.stages[s].outcomes, m, own[:, s, q] * st.post_money[s]
                    )
                    proceeds_1[:, q + 1 : hi] += first[:, None] * pe * espan[None, :]
                    proceeds_2[:, q + 1 : hi] += second[:, None] * pe * espan[None, :]
                if american:
                    # Each company's expected exit against its expected cost and the preferred
                    # return accrued to the exit quarter.
                    alive = m > 0.0
                    mc = m[alive][:, None]
                    at = np.arange(q + 1, hi, dtype=np.float64)[None, :]
                    gp_share = rules.deal_carry(
                        own[alive, s, q][:, None] / mc * value,
                        cost[alive, s, q][:, None] / mc,
                        disc[alive, s, q][:, None] / mc,
                        at,
                    )
                    deal_carry[q + 1 : hi] += pe * (mc * gp_share).sum(axis=0) * espan

        held_by_company = np.zeros((3, n_comp))  # value, cost, discounted cost of holdings
        held_mass = np.zeros(n_comp)
        for s in range(n_stage):
            w = alive_weights(q, s)
            held_by_company[0] += st.post_money[s] * (own[:, s, : q + 1] @ w)
            held_by_company[1] += cost[:, s, : q + 1] @ w
            held_by_company[2] += disc[:, s, : q + 1] @ w
            held_mass += mass[:, s, : q + 1] @ w
        nav_q = float(held_by_company[0].sum())
        cost_q = float(held_by_company[1].sum())
        held_q = float(held_mass.sum())
        if q == quarters - 1:
            held = held_q
            if spec.liquidates_at_end:
                discount = 1.0 - spec.end_of_term.discount
                end_value = nav_q * discount
                proceeds[q] += end_value
                if american:
                    alive = held_mass > 0.0
                    h = held_mass[alive]
                    gp_share = rules.deal_carry(
                        held_by_company[0, alive] / h * discount,
                        held_by_company[1, alive] / h,
                        held_by_company[2, alive] / h,
                        q,
                    )
                    deal_carry[q] += float((h * gp_share).sum())
                nav_q = cost_q = 0.0
            else:
                end_value = nav_q
        nav[q], cost_unrealised[q] = nav_q, cost_q
        retain = (
            recycling.retain(q, proceeds_1[:, q], proceeds_2[:, q], ledger.retained_total)
            if recycling.active
            else None
        )
        ledger.step(
            q,
            np.array([invested_initial[q] + invested_follow_on[q]]),
            proceeds[q : q + 1],
            np.array([nav_q]),
            np.array([cost_q]),
            deal_carry[q : q + 1] if american else None,
            retain,
        )

    flows = PortfolioFlows(
        invested_initial=invested_initial[None, :],
        invested_follow_on=invested_follow_on[None, :],
        gross_proceeds=proceeds[None, :],
        nav=nav[None, :],
        cost_unrealised=cost_unrealised[None, :],
        deal_carry=deal_carry[None, :] if american else None,
    )
    cash = ledger.finish(flows.invested_initial + flows.invested_follow_on, flows.gross_proceeds)
    counts = CompanyCounts(
        initial=float(mass[np.arange(n_comp), co.entry_stage, co.entry_quarter].sum()),
        graduated={
            spec.stages[s].name: float(g_mass[:, s + 1, :].sum()) for s in range(n_stage - 1)
        },
        exited=float(exited.sum()),
        failed=float(failed.sum()),
        held_at_horizon=held,
    )
    return PortfolioResult(
        flows=flows,
        cash=cash,
        reserves_used=np.array([invested_follow_on.sum()]),
        redeployed=np.array([redeployed]),
        end_value=np.array([end_value]),
        counts=counts,
    )
