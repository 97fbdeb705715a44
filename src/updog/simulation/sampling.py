"""Sampled portfolio: the construction model of SPEC §3.2 drawn company by company.

Arrays have shape (paths, companies); the Python loop runs over *quarters* (follow-ons are
funded from a per-path reserve budget in time order, exactly as the deterministic engine does
in expectation), never over paths or companies. A company's fate at each stage (graduate /
exit / fail) is drawn with the stage's probabilities and the time to it from the same
discretised Gamma distribution as :func:`updog.model.plan.event_time_pmf`; participation in a
follow-on is a Bernoulli draw with the allocation's participation rate; an exit multiple is
drawn from the stage's band mixture (uniform within a band, bounded Pareto in the top band),
times the path's market factor when one is configured.

Randomness (numpy.random style, no global state): every company ``c`` of block ``b`` has its
own stream, ``SeedSequence(seed, spawn_key=(b, c))``, from which all of its uniforms are drawn
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

from updog.model.american import deal_gp_share
from updog.model.forecast import PortfolioResult
from updog.model.fund_cash import PortfolioFlows
from updog.model.plan import Plan
from updog.model.spec import FundSpec, WaterfallType

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
    grad_cdf: Array  # (stages, K) cumulative time-to-event, graduation/failure
    exit_cdf: Array  # (stages, K)
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
    return _Tables(
        graduation_rate=plan.stages.graduation_rate,
        exit_rate=plan.stages.exit_rate,
        grad_cdf=_padded_cdf(plan.stages.graduation_pmf),
        exit_cdf=_padded_cdf(plan.stages.exit_pmf),
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
    delay = np.empty(stage.shape, dtype=np.int64)
    is_exit = fate == EXIT
    for s in np.unique(stage):
        at = stage == s
        for mask, cdf in ((at & is_exit, t.exit_cdf[s]), (at & ~is_exit, t.grad_cdf[s])):
            delay[mask] = np.searchsorted(cdf, v[mask], side="right")
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
    block key + (company,)) and one for the market factor. :meth:`take` hands out the next
    rows, so drawing a block in slices gives the same numbers as drawing it at once."""

    def __init__(self, block: np.random.SeedSequence, plan: Plan, volatility: float) -> None:
        self.companies = len(plan.companies.entry_quarter)
        self.width = DRAWS_PER_STAGE * len(plan.stages.round_size) + 2
        self.volatility = volatility
        self._companies = [
            np.random.Generator(
                np.random.PCG64(
                    np.random.SeedSequence(block.entropy, spawn_key=(*block.spawn_key, c))
                )
            )
            for c in range(self.companies)
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


def sample_portfolio(spec: FundSpec, plan: Plan, uniforms: Array, market: Array) -> PortfolioResult:
    """Portfolios drawn from ``uniforms`` (paths, companies, width; see
    :class:`BlockStreams`) and the per-path ``market`` factor (paths,). Flows have shape
    (paths, quarters), dollars; ``reserves_used`` has shape (paths,); ``company_multiple``
    (paths, companies)."""
    paths = uniforms.shape[0]
    t = _tables(spec, plan)
    co = plan.companies
    quarters = plan.quarters
    n_comp = len(co.entry_quarter)
    n_stage = len(plan.stages.round_size)
    step = np.zeros((paths, n_comp), dtype=np.int64)  # stages passed through so far
    multiple_u = DRAWS_PER_STAGE * n_stage
    round_size = plan.stages.round_size
    post = plan.stages.post_money
    keep = 1.0 - round_size / post  # share of old ownership kept through a round

    stage = np.broadcast_to(co.entry_stage, (paths, n_comp)).copy()
    own = np.broadcast_to(co.initial_check / post[co.entry_stage], (paths, n_comp)).copy()
    cost = np.broadcast_to(co.initial_check, (paths, n_comp)).copy()
    fate, delay = _fate(t, stage, uniforms[:, :, 0], uniforms[:, :, 1])
    event_q = co.entry_quarter[None, :] + delay

    nav_now = np.zeros(paths)
    cost_now = np.zeros(paths)
    reserves_left = np.full(paths, plan.reserves_planned)
    invested_initial = np.zeros((paths, quarters))
    np.add.at(invested_initial[0], co.entry_quarter, co.initial_check)
    invested_initial[:] = invested_initial[0]
    follow_on = np.zeros((paths, quarters))
    proceeds = np.zeros((paths, quarters))
    nav = np.zeros((paths, quarters))
    cost_unrealised = np.zeros((paths, quarters))
    value = np.zeros((paths, n_comp))  # realised, or held at the horizon, per investment
    american = spec.waterfall.type == WaterfallType.american
    terms = (spec.waterfall.carry, spec.waterfall.hurdle, spec.waterfall.catch_up)
    deal_carry = np.zeros((paths, quarters))
    entry_value = co.initial_check / post[co.entry_stage] * post[co.entry_stage]

    for q in range(quarters):
        entering = co.entry_quarter == q
        if entering.any():
            nav_now += float(entry_value[entering].sum())
            cost_now += float(co.initial_check[entering].sum())
        p_idx, c_idx = np.nonzero(event_q == q)
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
                proceeds[:, q] += np.bincount(p_idx[ex], realised, paths)
                if american:
                    gp = deal_gp_share(realised, cost[pe, ce], *terms)
                    deal_carry[:, q] += np.bincount(pe, gp, paths)
                value[p_idx[ex], c_idx[ex]] = realised
            gone = f != GRADUATE
            if gone.any():
                nav_now -= np.bincount(p_idx[gone], value_before[gone], paths)
                cost_now -= np.bincount(p_idx[gone], cost[p_idx[gone], c_idx[gone]], paths)
                event_q[p_idx[gone], c_idx[gone]] = NEVER

            gr = f == GRADUATE
            if gr.any():
                gp, gc = p_idx[gr], c_idx[gr]
                ns = s[gr] + 1
                k = step[gp, gc]
                joins = uniforms[gp, gc, DRAWS_PER_STAGE * k + 2] < co.participation[gc]
                demand = (
                    np.where(co.pro_rata[gc], o[gr] * round_size[ns], co.follow_on_check[gc])
                    * joins
                )
                total = np.bincount(gp, demand, paths)
                phi = np.divide(reserves_left, total, out=np.zeros(paths), where=total > 0.0)
                phi = np.minimum(phi, 1.0)
                funded = demand * phi[gp]
                spent = np.bincount(gp, funded, paths)
                reserves_left -= spent
                follow_on[:, q] += spent
                new_own = o[gr] * keep[ns] + funded / post[ns]
                nav_now += np.bincount(gp, new_own * post[ns] - value_before[gr], paths)
                cost_now += spent
                own[gp, gc] = new_own
                cost[gp, gc] += funded
                stage[gp, gc] = ns
                step[gp, gc] = k + 1
                base = DRAWS_PER_STAGE * (k + 1)
                nf, nd = _fate(t, ns, uniforms[gp, gc, base], uniforms[gp, gc, base + 1])
                fate[gp, gc] = nf
                event_q[gp, gc] = q + nd
        nav[:, q] = nav_now
        cost_unrealised[:, q] = cost_now

    held = event_q != NEVER
    value[held] = own[held] * post[stage[held]]
    if american and not spec.evergreen:
        gp = deal_gp_share(value, cost, *terms) * held
        deal_carry[:, -1] += gp.sum(axis=1)
    if not spec.evergreen:
        proceeds[:, -1] += nav[:, -1]
        nav[:, -1] = 0.0
        cost_unrealised[:, -1] = 0.0
    flows = PortfolioFlows(
        invested_initial=invested_initial,
        invested_follow_on=follow_on,
        gross_proceeds=proceeds,
        nav=np.maximum(nav, 0.0),
        cost_unrealised=np.maximum(cost_unrealised, 0.0),
        deal_carry=deal_carry if american else None,
    )
    return PortfolioResult(
        flows=flows,
        reserves_used=plan.reserves_planned - reserves_left,
        company_multiple=value / cost,
    )
