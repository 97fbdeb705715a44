"""Sampled portfolio: the construction model of SPEC §3.2 drawn company by company.

Arrays have shape (paths, companies); the Python loop runs over *quarters* (follow-ons and new
investments are sized to each path's capital in time order, with the fund's cash settled every
quarter, exactly as the deterministic engine does in expectation) and over the few candidates
entering in a quarter (each decision depends on the one before), never over paths. The
companies are the plan's candidates (:mod:`updog.model.plan`); a path invests in a candidate
or not by the pacing rule of :func:`sample_portfolio`. A company's fate at each stage (graduate /
exit / fail) is drawn with the stage's probabilities and the time to it from the same
discretised Gamma distribution as :func:`updog.model.plan.event_time_pmf`; participation in a
follow-on is a Bernoulli draw with the allocation's participation rate; an exit multiple is
drawn from the stage's band mixture (uniform within a band, bounded Pareto in the top band),
times the path's market factor; the factor also moves the price of the end-of-term secondary
sale (a realisation in the same market), not the NAV marks.

Randomness (numpy.random style, no global state): every company of block ``b`` has its own
stream, ``SeedSequence(seed, spawn_key=(b, allocation, kind, ordinal))`` (kind 0 for a planned
company, 1 for an extra candidate; ordinal in the allocation's deployment order), from which
all of its uniforms are drawn
up front — :data:`DRAWS_PER_STAGE` per stage it can pass through (fate, timing,
participation) and two for its exit multiple — by inverse transform. A company's fortunes
therefore do not depend on how many other companies the fund holds or on the order of events:
runs that differ only in construction (e.g. a reserve-ratio sweep) share their random numbers
company by company (common random numbers), which makes such comparisons smooth. The market
factor of each path comes from the stream ``spawn_key=(b, MARKET_STREAM)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from updog.model.expected import CHECK_TOLERANCE, PortfolioResult, QuarterRules
from updog.model.fund_cash import FundLedger, PortfolioFlows
from updog.model.plan import Plan
from updog.model.spec import FundSpec

Array = NDArray[np.float64]

GRADUATE, EXIT, FAIL = 0, 1, 2
#: Uniforms per stage a company passes through: fate, time to the event, participation.
DRAWS_PER_STAGE = 3
#: Stream index of the per-path market factor (company streams use 0, 1, 2, ...).
MARKET_STREAM = 2**31 - 1
#: Event quarter meaning "not before the horizon".
NEVER = np.iinfo(np.int32).max


@dataclass(frozen=True)
class _Tables:
    """Per-stage lookup tables, padded to a common width."""

    graduation_rate: Array  # (stages,)
    exit_rate: Array  # (stages,)
    #: Cumulative time-to-event distributions, rows 2·stage (graduation/failure) and
    #: 2·stage + 1 (exit), padded to a common width K, row r shifted by 2r and flattened: one
    #: sorted array, so one ``searchsorted`` serves every stage (shape (2 · stages · K,)).
    timing_cdf: Array
    timing_width: int
    band_cdf: Array  # (stages, B) cumulative band probabilities
    band_low: Array  # (stages, B)
    band_high: Array  # (stages, B)
    top_band: NDArray[np.int64]  # (stages,) index of the Pareto band
    tail_alpha: Array  # (stages,)


def _padded_cdf(pmfs: tuple[Array, ...]) -> Array:
    width = max(len(p) for p in pmfs)
    out = np.ones((len(pmfs), width))
    for i, p in enumerate(pmfs):
        out[i, : len(p)] = np.cumsum(p)
    out[:, -1] = 1.0
    return out


def _tables(spec: FundSpec, plan: Plan) -> _Tables:
    stages = spec.stages
    width = max(len(s.outcomes.bands) for s in stages)
    band_cdf = np.ones((len(stages), width))
    low = np.zeros((len(stages), width))
    high = np.ones((len(stages), width))
    for i, s in enumerate(stages):
        probs = np.array([b.probability for b in s.outcomes.bands])
        n = len(probs)
        band_cdf[i, :n] = np.cumsum(probs) / probs.sum()
        band_cdf[i, n - 1 :] = 1.0
        low[i, :n] = [b.min_multiple for b in s.outcomes.bands]
        high[i, :n] = [b.max_multiple for b in s.outcomes.bands]
    pairs = zip(plan.stages.graduation_pmf, plan.stages.exit_pmf, strict=True)
    pmfs = [pmf for pair in pairs for pmf in pair]
    rows = _padded_cdf(tuple(pmfs))
    return _Tables(
        graduation_rate=plan.stages.graduation_rate,
        exit_rate=plan.stages.exit_rate,
        timing_cdf=(rows + 2.0 * np.arange(len(rows))[:, None]).ravel(),
        timing_width=rows.shape[1],
        band_cdf=band_cdf,
        band_low=low,
        band_high=high,
        top_band=np.array([len(s.outcomes.bands) - 1 for s in stages], dtype=np.int64),
        tail_alpha=np.array([s.outcomes.tail_alpha for s in stages]),
    )


def _fate(
    t: _Tables, stage: NDArray[np.int64], u: Array, v: Array
) -> tuple[NDArray[np.int8], NDArray[np.int64]]:
    """Fate (GRADUATE/EXIT/FAIL) and delay in quarters (≥ 1) for companies entering ``stage``,
    from uniforms ``u`` (fate) and ``v`` (timing); all arrays share one shape."""
    pg = t.graduation_rate[stage]
    fate = np.where(u < pg, GRADUATE, np.where(u < pg + t.exit_rate[stage], EXIT, FAIL))
    row = 2 * stage + (fate == EXIT)
    delay = np.searchsorted(t.timing_cdf, v + 2.0 * row, side="right") - row * t.timing_width
    return fate.astype(np.int8), np.maximum(delay, 1)


def _multiple(t: _Tables, stage: NDArray[np.int64], u: Array, v: Array) -> Array:
    """Exit multiples (on the stage's post-money) for exits at ``stage`` from uniforms ``u``
    (band) and ``v`` (position in the band); 1-d arrays of one length."""
    band = (u[:, None] >= t.band_cdf[stage]).sum(axis=1)
    band = np.minimum(band, t.top_band[stage])
    lo = t.band_low[stage, band]
    hi = t.band_high[stage, band]
    uniform = lo + v * (hi - lo)
    alpha = t.tail_alpha[stage]
    safe_lo = np.where(lo > 0.0, lo, 1.0)
    # Inverse CDF of the bounded Pareto on [lo, hi]: lo (1 − v (1 − (lo/hi)^α))^(−1/α).
    pareto = safe_lo * (1.0 - v * (1.0 - (safe_lo / hi) ** alpha)) ** (-1.0 / alpha)
    out: Array = np.where(band == t.top_band[stage], pareto, uniform)
    return out


class BlockStreams:
    """The random streams of one block: one PCG64 generator per company (``spawn_key`` =
    block key + the company's stream key) and one for the market factor. :meth:`take` hands
    out the next rows, so drawing a block in slices gives the same numbers as drawing it at
    once."""

    def __init__(self, block: np.random.SeedSequence, plan: Plan, volatility: float) -> None:
        self.companies = len(plan.companies.entry_quarter)
        self.width = DRAWS_PER_STAGE * len(plan.stages.round_size) + 2
        self.volatility = volatility
        self._companies = [
            np.random.Generator(
                np.random.PCG64(
                    np.random.SeedSequence(
                        block.entropy, spawn_key=(*block.spawn_key, *(int(k) for k in key))
                    )
                )
            )
            for key in plan.companies.stream_key
        ]
        self._market = np.random.Generator(
            np.random.PCG64(
                np.random.SeedSequence(block.entropy, spawn_key=(*block.spawn_key, MARKET_STREAM))
            )
        )

    def take(self, paths: int) -> tuple[Array, Array]:
        """The next ``paths`` rows: uniforms of shape (paths, companies, width) and the market
        factor ``exp(σ z − σ²/2)`` of shape (paths,) (ones when σ = 0)."""
        uniforms = np.empty((paths, self.companies, self.width))
        for c, generator in enumerate(self._companies):
            uniforms[:, c, :] = generator.random((paths, self.width))
        if self.volatility <= 0.0:
            return uniforms, np.ones(paths)
        z = self._market.standard_normal(paths)
        return uniforms, np.exp(self.volatility * z - 0.5 * self.volatility**2)


def _live_need(plan: Plan, quarter: int, need_row: NDArray[np.int64], own: Array) -> Array:
    """Expected follow-on need (dollars) of each path's live companies at ``quarter``, shape
    (paths,): :meth:`updog.model.reserves.NeedTables.conditional` summed over the companies
    (``need_row`` and ``own`` of shape (paths, companies), or any rows of them; companies not
    held have the table's no-need row)."""
    out: Array = plan.needs.conditional(need_row, quarter, own).sum(axis=1)
    return out


def sample_portfolio(spec: FundSpec, plan: Plan, uniforms: Array, market: Array) -> PortfolioResult:
    """Portfolios drawn from ``uniforms`` (paths, companies, width; see :class:`BlockStreams`)
    and the per-path ``market`` factor (paths,), run with the fund's cash. Flows and cash have
    shape (paths, quarters), dollars; per-path results shape (paths,); ``company_multiple``
    (paths, companies), NaN for candidates a path did not invest in.

    Each quarter: due events (exits realise the stage's multiple × the market factor on the
    post-money; graduations raise the next round, and while the fund invests it follows on
    within the capital it can still invest — all of it under reserve-aware pacing, what the
    planned initial checks to come leave otherwise), then the candidates due enter — under
    reserve-aware pacing a planned candidate unless the fund is over-committed by more than
    half its check and expected need, an extra one when the uncommitted capital covers at
    least half of them (see :mod:`updog.model.expected` for "uncommitted"), both within the
    capital the fund can invest — then NAV, the end-of-term sale in the last quarter, and the
    ledger settles the quarter."""
    paths = uniforms.shape[0]
    t = _tables(spec, plan)
    co = plan.companies
    quarters = plan.quarters
    n_comp = len(co.entry_quarter)
    n_stage = len(plan.stages.round_size)
    # Only candidates placed before quarter q can be held in it: the columns below held_upto[q]
    # (candidates are placed in entry order, so most quarters of the investment period look
    # at a prefix of the columns).
    held_upto = [
        int(np.flatnonzero(co.entry_quarter < q).max(initial=-1)) + 1 for q in range(quarters)
    ]
    step = np.zeros((paths, n_comp), dtype=np.int64)  # stages passed through so far
    multiple_u = DRAWS_PER_STAGE * n_stage
    round_size = plan.stages.round_size
    post = plan.stages.post_money
    rules = QuarterRules.of(spec, plan)
    american, redeploy, keep = rules.american, rules.redeploy, rules.keep
    ledger = FundLedger(spec, plan, paths, quarters)

    stage = np.broadcast_to(co.entry_stage, (paths, n_comp)).copy()
    own = np.broadcast_to(co.initial_check / post[co.entry_stage], (paths, n_comp)).copy()
    cost = np.zeros((paths, n_comp))
    disc = np.zeros((paths, n_comp))  # Σ contributions × g^(−quarter), American pref
    fate, delay = _fate(t, stage, uniforms[:, :, 0], uniforms[:, :, 1])
    entered = np.zeros((paths, n_comp), dtype=np.bool_)
    event_q = np.full((paths, n_comp), NEVER, dtype=np.int64)
    # Row of the reserve-need tables of each held company (its allocation, stage and the
    # quarter it entered it); the no-need row when it is not (or no longer) held.
    need_row = np.full((paths, n_comp), plan.needs.no_need_row, dtype=np.int64)
    entry_row = plan.needs.row(co.allocation, co.entry_stage, co.entry_quarter)

    nav_now = np.zeros(paths)
    cost_now = np.zeros(paths)
    invested_initial = np.zeros((paths, quarters))
    follow_on = np.zeros((paths, quarters))
    proceeds = np.zeros((paths, quarters))
    nav = np.zeros((paths, quarters))
    cost_unrealised = np.zeros((paths, quarters))
    deal_carry = np.zeros((paths, quarters))
    value = np.zeros((paths, n_comp))  # realised, or held at the horizon, per investment
    redeployed = np.zeros(paths)
    end_value = np.zeros(paths)
    tolerance = CHECK_TOLERANCE * spec.fund_size

    for q in range(quarters):
        available = ledger.investable(q)
        spent = np.zeros(paths)
        upto = held_upto[q]
        p_idx, c_idx = np.nonzero(event_q[:, :upto] == q)
        if p_idx.size:
            s = stage[p_idx, c_idx]
            f = fate[p_idx, c_idx]
            o = own[p_idx, c_idx]
            value_before = o * post[s]

            ex = f == EXIT
            if ex.any():
                pe, ce = p_idx[ex], c_idx[ex]
                mult = _multiple(
                    t, s[ex], uniforms[pe, ce, multiple_u], uniforms[pe, ce, multiple_u + 1]
                )
                realised = o[ex] * mult * post[s[ex]] * market[pe]
                proceeds[:, q] += np.bincount(pe, realised, paths)
                if american:
                    gp = rules.deal_carry(realised, cost[pe, ce], disc[pe, ce], q)
                    deal_carry[:, q] += np.bincount(pe, gp, paths)
                value[pe, ce] = realised
            gone = f != GRADUATE
            if gone.any():
                nav_now -= np.bincount(p_idx[gone], value_before[gone], paths)
                cost_now -= np.bincount(p_idx[gone], cost[p_idx[gone], c_idx[gone]], paths)
                event_q[p_idx[gone], c_idx[gone]] = NEVER
                need_row[p_idx[gone], c_idx[gone]] = plan.needs.no_need_row

            gr = f == GRADUATE
            if gr.any():
                gp_, gc = p_idx[gr], c_idx[gr]
                ns = s[gr] + 1
                k = step[gp_, gc]
                size = np.zeros(gp_.size)
                joins = np.zeros(gp_.size, dtype=np.bool_)
                if q < plan.invest_until:
                    joins = uniforms[gp_, gc, DRAWS_PER_STAGE * k + 2] < co.participation[gc]
                    fixed = np.minimum(co.follow_on_check[gc], round_size[ns])
                    size = np.where(co.pro_rata[gc], o[gr] * round_size[ns], fixed) * (
                        ns <= co.last_follow_on_stage[gc]
                    )
                demand = size * joins
                total = np.bincount(gp_, demand, paths)
                room = np.maximum(available - rules.protect[q], 0.0)
                phi = np.divide(room, total, out=np.zeros(paths), where=total > 0.0)
                funded = demand * np.minimum(phi, 1.0)[gp_]
                own[gp_, gc] = o[gr] * keep[ns]
                stage[gp_, gc] = ns
                need_row[gp_, gc] = plan.needs.row(co.allocation[gc], ns, np.full(gc.size, q))
                step[gp_, gc] = k + 1
                if redeploy and plan.investment_quarters <= q < plan.invest_until:
                    # Capital the fund no longer expects to need funds the follow-ons it
                    # passed on (uncommitted capital after the base follow-ons).
                    extra = size * ~joins
                    if extra.any():
                        # Only the paths with a round to follow need their surplus.
                        rows = np.unique(gp_)
                        surplus = np.zeros(paths)
                        surplus[rows] = np.maximum(
                            (available - spent - np.bincount(gp_, funded, paths))[rows]
                            - _live_need(plan, q, need_row[rows, :upto], own[rows, :upto]),
                            0.0,
                        )
                        wanted = np.bincount(gp_, extra, paths)
                        psi = np.divide(surplus, wanted, out=np.zeros(paths), where=wanted > 0.0)
                        funded = funded + extra * np.minimum(psi, 1.0)[gp_]
                invested = np.bincount(gp_, funded, paths)
                spent += invested
                follow_on[:, q] += invested
                new_own = o[gr] * keep[ns] + funded / post[ns]
                nav_now += np.bincount(gp_, new_own * post[ns] - value_before[gr], paths)
                cost_now += invested
                own[gp_, gc] = new_own
                cost[gp_, gc] += funded
                disc[gp_, gc] += funded * rules.discount(q)
                base = DRAWS_PER_STAGE * (k + 1)
                nf, nd = _fate(t, ns, uniforms[gp_, gc, base], uniforms[gp_, gc, base + 1])
                fate[gp_, gc] = nf
                event_q[gp_, gc] = q + nd

        entering = rules.by_quarter[q]
        if entering.size:
            if redeploy:
                uncommitted = (
                    available
                    - spent
                    + plan.reinvestable_ahead[q]
                    - _live_need(plan, q, need_row[:, :upto], own[:, :upto])
                    - rules.plan_ahead[q]
                )
            for c in entering:
                check = float(co.initial_check[c])
                enter = available - spent >= check - tolerance
                if redeploy:
                    unit = check + float(co.need[c])
                    if co.planned[c]:
                        enter &= uncommitted >= -0.5 * unit
                        uncommitted = uncommitted + np.where(enter, 0.0, unit)
                    else:
                        enter &= uncommitted >= 0.5 * unit
                        uncommitted = uncommitted - np.where(enter, unit, 0.0)
                amount = check * enter
                entered[:, c] = enter
                event_q[enter, c] = q + delay[enter, c]
                need_row[enter, c] = entry_row[c]
                cost[:, c] = amount
                disc[:, c] = amount * rules.discount(q)
                nav_now += amount
                cost_now += amount
                spent += amount
                invested_initial[:, q] += amount
                if not co.planned[c]:
                    redeployed += amount

        nav_q = np.maximum(nav_now, 0.0)
        if q == quarters - 1:
            held = event_q != NEVER
            held_value = own * post[stage] * held
            if spec.liquidates_at_end:
                sale = held_value * (1.0 - spec.end_of_term.discount) * market[:, None]
                proceeds[:, q] += sale.sum(axis=1)
                end_value = sale.sum(axis=1)
                value[held] = sale[held]
                if american:
                    gp = rules.deal_carry(sale, cost, disc, q) * held
                    deal_carry[:, q] += gp.sum(axis=1)
                nav_q = np.zeros(paths)
                cost_now = np.zeros(paths)
            else:
                end_value = nav_q
                value[held] = held_value[held]
        nav[:, q] = nav_q
        cost_unrealised[:, q] = np.maximum(cost_now, 0.0)
        ledger.step(
            q,
            invested_initial[:, q] + follow_on[:, q],
            proceeds[:, q],
            nav[:, q],
            cost_unrealised[:, q],
            deal_carry[:, q] if american else None,
        )

    flows = PortfolioFlows(
        invested_initial=invested_initial,
        invested_follow_on=follow_on,
        gross_proceeds=proceeds,
        nav=nav,
        cost_unrealised=cost_unrealised,
        deal_carry=deal_carry if american else None,
    )
    cash = ledger.finish(invested_initial + follow_on, proceeds)
    multiple = np.divide(value, cost, out=np.full(value.shape, np.nan), where=entered)
    return PortfolioResult(
        flows=flows,
        cash=cash,
        reserves_used=follow_on.sum(axis=1),
        redeployed=redeployed,
        end_value=end_value,
        company_multiple=multiple,
    )
