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

from updog.model.american import quarterly_growth
from updog.model.expected import CHECK_TOLERANCE, PortfolioResult, QuarterRules
from updog.model.fund_cash import FundLedger, PortfolioFlows
from updog.model.plan import Plan
from updog.model.spec import FundSpec
from updog.simulation import kernel
from updog.simulation.kernel import DRAWS_PER_STAGE, NEVER

Array = NDArray[np.float64]

#: Stream index of the per-path market factor (company streams use 0, 1, 2, ...).
MARKET_STREAM = 2**31 - 1


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
        """The next ``paths`` rows: uniforms of shape (companies, paths, width) — each
        company's draws contiguous, written by its generator in place — and the market factor
        ``exp(σ z − σ²/2)`` of shape (paths,) (ones when σ = 0)."""
        uniforms = np.empty((self.companies, paths, self.width))
        for c, generator in enumerate(self._companies):
            generator.random(out=uniforms[c])
        if self.volatility <= 0.0:
            return uniforms, np.ones(paths)
        z = self._market.standard_normal(paths)
        return uniforms, np.exp(self.volatility * z - 0.5 * self.volatility**2)


def sample_portfolio(spec: FundSpec, plan: Plan, uniforms: Array, market: Array) -> PortfolioResult:
    """Portfolios drawn from ``uniforms`` (companies, paths, width; see :class:`BlockStreams`)
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
    paths = uniforms.shape[1]
    t = _tables(spec, plan)
    co = plan.companies
    quarters = plan.quarters
    n_comp = len(co.entry_quarter)
    # Only candidates placed before quarter q can be held in it: the columns below held_upto[q]
    # (candidates are placed in entry order, so most quarters of the investment period look
    # at a prefix of the columns).
    held_upto = [
        int(np.flatnonzero(co.entry_quarter < q).max(initial=-1)) + 1 for q in range(quarters)
    ]
    step = np.zeros((paths, n_comp), dtype=np.int64)  # stages passed through so far
    round_size = plan.stages.round_size
    post = plan.stages.post_money
    rules = QuarterRules.of(spec, plan)
    american = rules.american
    ledger = FundLedger(spec, plan, paths, quarters)
    needs = plan.needs
    _, need_stages, need_quarters, _ = needs.per_ownership.shape

    stage = np.broadcast_to(co.entry_stage, (paths, n_comp)).copy()
    own = np.broadcast_to(co.initial_check / post[co.entry_stage], (paths, n_comp)).copy()
    cost = np.zeros((paths, n_comp))
    disc = np.zeros((paths, n_comp))  # Σ contributions × g^(−quarter), American pref
    fate, delay = kernel.first_fates(
        t.graduation_rate, t.exit_rate, t.timing_cdf, t.timing_width, co.entry_stage, uniforms
    )
    entered = np.zeros((paths, n_comp), dtype=np.bool_)
    event_q = np.full((paths, n_comp), NEVER, dtype=np.int64)
    # Row of the reserve-need tables of each held company (its allocation, stage and the
    # quarter it entered it); the no-need row when it is not (or no longer) held.
    need_row = np.full((paths, n_comp), needs.no_need_row, dtype=np.int64)
    entry_row = needs.row(co.allocation, co.entry_stage, co.entry_quarter)

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
    waterfall = spec.waterfall
    pref_growth = quarterly_growth(waterfall.hurdle)

    for q in range(quarters):
        available = ledger.investable(q)
        kernel.quarter_step(
            q,
            held_upto[q],
            rules.by_quarter[q],
            available,
            float(rules.protect[q]),
            float(plan.reinvestable_ahead[q]),
            float(rules.plan_ahead[q]),
            rules.discount(q),
            float(pref_growth ** np.asarray(q, dtype=np.float64)),
            q < plan.invest_until,
            rules.redeploy and plan.investment_quarters <= q < plan.invest_until,
            rules.redeploy,
            american,
            waterfall.carry,
            waterfall.catch_up,
            tolerance,
            t.graduation_rate,
            t.exit_rate,
            t.timing_cdf,
            t.timing_width,
            t.band_cdf,
            t.band_low,
            t.band_high,
            t.top_band,
            t.tail_alpha,
            round_size,
            post,
            rules.keep,
            needs.conditional_ownership,
            needs.conditional_company,
            needs.no_need_row,
            need_stages,
            need_quarters,
            co.allocation,
            co.pro_rata,
            co.follow_on_check,
            co.participation,
            co.last_follow_on_stage,
            co.initial_check,
            co.need,
            co.planned,
            entry_row,
            uniforms,
            market,
            delay,
            step,
            stage,
            own,
            cost,
            disc,
            fate,
            entered,
            event_q,
            need_row,
            value,
            nav_now,
            cost_now,
            redeployed,
            invested_initial[:, q],
            follow_on[:, q],
            proceeds[:, q],
            deal_carry[:, q],
        )

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
