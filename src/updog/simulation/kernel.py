"""The compiled quarter step of the sampled portfolio: due events and new investments, path by
path.

:func:`updog.simulation.sampling.sample_portfolio` steps through the quarters; in each one,
every path's due events (exits, failures, graduations and the follow-ons they raise) and the
candidates entering that quarter are decided here, in one compiled loop over paths and
companies, instead of as numpy operations over the events of all paths (a few dozen small
array operations per quarter, which cost more in dispatch than in arithmetic). The quarter's
cash is then settled by :class:`updog.model.fund_cash.FundLedger` (compiled too:
:mod:`updog.model.cash_kernel`), the same code the deterministic forecast runs. Quarter by
quarter over all paths measured faster here than path by path through all quarters.

Why numba: the work is branchy per-company logic over small arrays, where numpy pays for
Python dispatch and for gathering the events of every path; a loop compiled by numba runs it
at C speed (settings in :mod:`updog.model.compiled`). A C extension or Cython would need a
compiler on every install.

Arithmetic follows the numpy formulation it replaced operation for operation: sums over a
path's events are sequential in company order (what ``numpy.bincount`` does), sums over a
path's companies are numpy's pairwise summation (what ``ndarray.sum`` does along a contiguous
row), so the results are the same floating-point numbers. The rules themselves are documented
in :func:`updog.simulation.sampling.sample_portfolio`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from updog.model.compiled import njit

GRADUATE, EXIT, FAIL = 0, 1, 2
#: Event quarter meaning "not before the horizon".
NEVER = np.iinfo(np.int32).max
#: Uniforms per stage a company passes through: fate, time to the event, participation.
DRAWS_PER_STAGE = 3
#: numpy's block size for pairwise summation (``PW_BLOCKSIZE`` in ``loops_utils.h``).
_PAIRWISE_BLOCK = 128


@njit
def _block_sum(a: NDArray[np.float64], start: int, n: int) -> float:
    """numpy's pairwise summation of ``a[start:start + n]`` for ``n ≤ 128``: one loop below
    8 terms, else 8 partial sums combined as a tree, then the remainder."""
    if n < 8:
        res = 0.0
        for i in range(start, start + n):
            res += a[i]
        return res
    r0: float = a[start]
    r1: float = a[start + 1]
    r2: float = a[start + 2]
    r3: float = a[start + 3]
    r4: float = a[start + 4]
    r5: float = a[start + 5]
    r6: float = a[start + 6]
    r7: float = a[start + 7]
    i = 8
    while i < n - (n % 8):
        j = start + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[start + i]
        i += 1
    return res


@njit
def pairwise_sum(a: NDArray[np.float64], start: int, n: int) -> float:
    """Sum of ``a[start:start + n]`` in the order numpy's ``pairwise_sum_DOUBLE`` adds them
    (blocks of at most 128 terms, :func:`_block_sum`; above, the two halves summed apart and
    added), so a compiled loop reproduces ``ndarray.sum`` along a contiguous row to the last
    bit. The halving runs on an explicit stack (kernels must not recurse:
    :mod:`updog.model.compiled`)."""
    if n <= _PAIRWISE_BLOCK:
        return _block_sum(a, start, n)
    depth = 64  # halving from n ≤ 2**63 terms never nests deeper
    seg_start = np.empty(2 * depth + 1, dtype=np.int64)
    seg_n = np.empty(2 * depth + 1, dtype=np.int64)
    combine = np.empty(2 * depth + 1, dtype=np.bool_)
    values = np.empty(depth + 1)
    seg_start[0], seg_n[0], combine[0] = start, n, False
    top, held = 1, 0
    while top:
        top -= 1
        s, m = seg_start[top], seg_n[top]
        if combine[top]:  # both halves are on the value stack: left below right
            held -= 1
            values[held - 1] = values[held - 1] + values[held]
        elif m <= _PAIRWISE_BLOCK:
            values[held] = _block_sum(a, s, m)
            held += 1
        else:
            half = m // 2
            half -= half % 8
            # Popped in reverse: the left half first, then the right, then their sum.
            seg_start[top], seg_n[top], combine[top] = s, m, True
            seg_start[top + 1], seg_n[top + 1], combine[top + 1] = s + half, m - half, False
            seg_start[top + 2], seg_n[top + 2], combine[top + 2] = s, half, False
            top += 3
    return float(values[0])


@njit
def fate_and_delay(
    graduation_rate: NDArray[np.float64],
    exit_rate: NDArray[np.float64],
    timing_cdf: NDArray[np.float64],
    timing_width: int,
    stage: int,
    u: float,
    v: float,
) -> tuple[int, int]:
    """Fate (GRADUATE/EXIT/FAIL) of a company entering ``stage`` from the uniform ``u`` and
    its delay in quarters (≥ 1) from ``v``: the inverse transform of the stage's discretised
    timing distribution (``timing_cdf``: the cumulative distributions of every stage's two
    events, row ``r`` shifted by ``2r``, ``timing_width`` entries each, flattened)."""
    pg = graduation_rate[stage]
    if u < pg:
        fate = GRADUATE
    elif u < pg + exit_rate[stage]:
        fate = EXIT
    else:
        fate = FAIL
    row = 2 * stage + (1 if fate == EXIT else 0)
    x = v + 2.0 * row
    # searchsorted(side="right"): the number of entries ≤ x.
    lo, hi = 0, timing_cdf.size
    while lo < hi:
        mid = (lo + hi) // 2
        if timing_cdf[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return fate, max(lo - row * timing_width, 1)


@njit
def first_fates(
    graduation_rate: NDArray[np.float64],
    exit_rate: NDArray[np.float64],
    timing_cdf: NDArray[np.float64],
    timing_width: int,
    entry_stage: NDArray[np.int64],
    uniforms: NDArray[np.float64],
) -> tuple[NDArray[np.int8], NDArray[np.int64]]:
    """Fate and delay (quarters) at the entry stage of every candidate of every path, shapes
    (paths, companies), from the first two uniforms of each company (``uniforms`` of shape
    (companies, paths, width); :func:`fate_and_delay`)."""
    n_comp, paths = uniforms.shape[0], uniforms.shape[1]
    fate = np.empty((paths, n_comp), dtype=np.int8)
    delay = np.empty((paths, n_comp), dtype=np.int64)
    for c in range(n_comp):
        for p in range(paths):
            f, d = fate_and_delay(
                graduation_rate,
                exit_rate,
                timing_cdf,
                timing_width,
                entry_stage[c],
                uniforms[c, p, 0],
                uniforms[c, p, 1],
            )
            fate[p, c] = f
            delay[p, c] = d
    return fate, delay


@njit
def exit_multiple(
    band_cdf: NDArray[np.float64],
    band_low: NDArray[np.float64],
    band_high: NDArray[np.float64],
    top_band: NDArray[np.int64],
    tail_alpha: NDArray[np.float64],
    stage: int,
    u: float,
    v: float,
) -> float:
    """Exit multiple (on the stage's post-money) from uniforms ``u`` (band) and ``v``
    (position in the band): uniform within a band, bounded Pareto in the top band, whose
    inverse CDF is lo (1 − v (1 − (lo/hi)^α))^(−1/α)."""
    band = 0
    for j in range(band_cdf.shape[1]):
        if u >= band_cdf[stage, j]:
            band += 1
    top = top_band[stage]
    band = min(band, top)
    lo: float = band_low[stage, band]
    hi: float = band_high[stage, band]
    if band != top:
        return lo + v * (hi - lo)
    alpha: float = tail_alpha[stage]
    safe_lo = lo if lo > 0.0 else 1.0
    pareto: float = safe_lo * (1.0 - v * (1.0 - (safe_lo / hi) ** alpha)) ** (-1.0 / alpha)
    return pareto


@njit
def deal_gp_share(
    proceeds: float, cost: float, pref: float, carry: float, catch_up: float
) -> float:
    """:func:`updog.model.american.deal_gp_share` for one realisation (dollars)."""
    remaining = max(proceeds, 0.0)
    remaining = remaining - min(remaining, cost)
    paid_pref = min(remaining, pref)
    remaining = remaining - paid_pref
    if carry <= 0.0:
        return 0.0
    tier = min(remaining, carry * paid_pref / (catch_up - carry)) if catch_up > 0.0 else 0.0
    remaining = remaining - tier
    return catch_up * tier + carry * remaining


@njit
def live_need(
    need_ownership: NDArray[np.float64],
    need_company: NDArray[np.float64],
    need_row: NDArray[np.int64],
    no_need_row: int,
    own: NDArray[np.float64],
    path: int,
    upto: int,
    quarter: int,
    scratch: NDArray[np.float64],
) -> float:
    """Expected follow-on need (dollars) of a path's live companies among the first ``upto``
    at ``quarter``: :meth:`updog.model.reserves.NeedTables.conditional` summed over them
    (``scratch`` holds the terms, length ≥ ``upto``)."""
    base = quarter * (no_need_row + 1)
    for c in range(upto):
        row = need_row[path, c]
        if row == no_need_row:  # not held: own × 0 + 0 (a +0.0 in the sum changes nothing)
            scratch[c] = 0.0
            continue
        at = base + row
        scratch[c] = own[path, c] * need_ownership[at] + need_company[at]
    return pairwise_sum(scratch, 0, upto)


@njit
def quarter_step(
    q: int,
    upto: int,
    entering: NDArray[np.int64],
    available: NDArray[np.float64],
    # per-quarter scalars
    protect_q: float,
    reinvestable_q: float,
    plan_ahead_q: float,
    discount_q: float,
    pref_growth_q: float,
    follows_on: bool,
    redeploys_now: bool,
    redeploy: bool,
    american: bool,
    carry: float,
    catch_up: float,
    tolerance: float,
    # tables
    graduation_rate: NDArray[np.float64],
    exit_rate: NDArray[np.float64],
    timing_cdf: NDArray[np.float64],
    timing_width: int,
    band_cdf: NDArray[np.float64],
    band_low: NDArray[np.float64],
    band_high: NDArray[np.float64],
    top_band: NDArray[np.int64],
    tail_alpha: NDArray[np.float64],
    round_size: NDArray[np.float64],
    post: NDArray[np.float64],
    keep: NDArray[np.float64],
    need_ownership: NDArray[np.float64],
    need_company: NDArray[np.float64],
    no_need_row: int,
    need_stages: int,
    need_quarters: int,
    # companies
    allocation: NDArray[np.int64],
    pro_rata: NDArray[np.bool_],
    follow_on_check: NDArray[np.float64],
    participation: NDArray[np.float64],
    last_follow_on_stage: NDArray[np.int64],
    initial_check: NDArray[np.float64],
    company_need: NDArray[np.float64],
    planned: NDArray[np.bool_],
    entry_row: NDArray[np.int64],
    # randomness
    uniforms: NDArray[np.float64],
    market: NDArray[np.float64],
    delay: NDArray[np.int64],
    # state, (paths, companies), updated in place
    step: NDArray[np.int64],
    stage: NDArray[np.int64],
    own: NDArray[np.float64],
    cost: NDArray[np.float64],
    disc: NDArray[np.float64],
    fate: NDArray[np.int8],
    entered: NDArray[np.bool_],
    event_q: NDArray[np.int64],
    need_row: NDArray[np.int64],
    value: NDArray[np.float64],
    # per path, updated in place
    nav_now: NDArray[np.float64],
    cost_now: NDArray[np.float64],
    redeployed: NDArray[np.float64],
    # this quarter's flows, (paths,), written
    invested_initial: NDArray[np.float64],
    follow_on: NDArray[np.float64],
    proceeds: NDArray[np.float64],
    deal_carry: NDArray[np.float64],
) -> None:
    """Quarter ``q`` of every path of a block: due events among the first ``upto`` companies,
    then the ``entering`` candidates, within each path's ``available`` capital. The rules are
    those of :func:`updog.simulation.sampling.sample_portfolio`; arrays are as it describes."""
    paths, n_comp = own.shape
    multiple_u = uniforms.shape[2] - 2
    scratch = np.empty(n_comp)
    grad = np.empty(n_comp, dtype=np.int64)
    size = np.empty(n_comp)
    joins = np.empty(n_comp, dtype=np.bool_)
    demand = np.empty(n_comp)
    funded = np.empty(n_comp)
    before = np.empty(n_comp)
    own_kept = np.empty(n_comp)
    for p in range(paths):
        spent = 0.0
        realised_sum = 0.0
        carry_sum = 0.0
        gone_value = 0.0
        gone_cost = 0.0
        total = 0.0
        n_grad = 0
        for c in range(upto):
            if event_q[p, c] != q:
                continue
            s = stage[p, c]
            o = own[p, c]
            value_before = o * post[s]
            f = fate[p, c]
            if f == EXIT:
                mult = exit_multiple(
                    band_cdf,
                    band_low,
                    band_high,
                    top_band,
                    tail_alpha,
                    s,
                    uniforms[c, p, multiple_u],
                    uniforms[c, p, multiple_u + 1],
                )
                realised = o * mult * post[s] * market[p]
                realised_sum += realised
                if american:
                    pref = max(pref_growth_q * disc[p, c] - cost[p, c], 0.0)
                    carry_sum += deal_gp_share(realised, cost[p, c], pref, carry, catch_up)
                value[p, c] = realised
            if f != GRADUATE:
                gone_value += value_before
                gone_cost += cost[p, c]
                event_q[p, c] = NEVER
                need_row[p, c] = no_need_row
                continue
            ns = s + 1
            k = step[p, c]
            sz = 0.0
            jn = False
            if follows_on:
                jn = uniforms[c, p, DRAWS_PER_STAGE * k + 2] < participation[c]
                fixed = min(follow_on_check[c], round_size[ns])
                sz = o * round_size[ns] if pro_rata[c] else fixed
                sz = sz * (1.0 if ns <= last_follow_on_stage[c] else 0.0)
            d = sz * (1.0 if jn else 0.0)
            grad[n_grad] = c
            size[n_grad] = sz
            joins[n_grad] = jn
            demand[n_grad] = d
            before[n_grad] = value_before
            own_kept[n_grad] = o * keep[ns]
            total += d
            n_grad += 1
            own[p, c] = o * keep[ns]
            stage[p, c] = ns
            need_row[p, c] = (allocation[c] * need_stages + ns) * need_quarters + q
            step[p, c] = k + 1
        proceeds[p] = realised_sum
        deal_carry[p] = carry_sum
        nav_now[p] -= gone_value
        cost_now[p] -= gone_cost
        if n_grad:
            room = max(available[p] - protect_q, 0.0)
            phi = room / total if total > 0.0 else 0.0
            share = min(phi, 1.0)
            for i in range(n_grad):
                funded[i] = demand[i] * share
            if redeploys_now:
                funded_sum = 0.0
                wanted = 0.0
                for i in range(n_grad):
                    funded_sum += funded[i]
                    wanted += size[i] * (0.0 if joins[i] else 1.0)
                need = live_need(
                    need_ownership, need_company, need_row, no_need_row, own, p, upto, q, scratch
                )
                surplus = max((available[p] - spent - funded_sum) - need, 0.0)
                psi = surplus / wanted if wanted > 0.0 else 0.0
                extra_share = min(psi, 1.0)
                for i in range(n_grad):
                    extra = size[i] * (0.0 if joins[i] else 1.0)
                    funded[i] = funded[i] + extra * extra_share
            invested = 0.0
            nav_change = 0.0
            for i in range(n_grad):
                c = grad[i]
                ns = stage[p, c]
                invested += funded[i]
                new_own = own_kept[i] + funded[i] / post[ns]
                nav_change += new_own * post[ns] - before[i]
                own[p, c] = new_own
                cost[p, c] += funded[i]
                disc[p, c] += funded[i] * discount_q
                base = DRAWS_PER_STAGE * step[p, c]
                nf, nd = fate_and_delay(
                    graduation_rate,
                    exit_rate,
                    timing_cdf,
                    timing_width,
                    ns,
                    uniforms[c, p, base],
                    uniforms[c, p, base + 1],
                )
                fate[p, c] = nf
                event_q[p, c] = q + nd
            spent += invested
            follow_on[p] = invested
            nav_now[p] += nav_change
            cost_now[p] += invested
        else:
            follow_on[p] = 0.0
        initial = 0.0
        if entering.size:
            uncommitted = 0.0
            if redeploy:
                need = live_need(
                    need_ownership, need_company, need_row, no_need_row, own, p, upto, q, scratch
                )
                uncommitted = available[p] - spent + reinvestable_q - need - plan_ahead_q
            for c in entering:
                check = initial_check[c]
                enter = available[p] - spent >= check - tolerance
                if redeploy:
                    unit = check + company_need[c]
                    if planned[c]:
                        enter = enter and uncommitted >= -0.5 * unit
                        uncommitted = uncommitted + (0.0 if enter else unit)
                    else:
                        enter = enter and uncommitted >= 0.5 * unit
                        uncommitted = uncommitted - (unit if enter else 0.0)
                amount = check if enter else 0.0
                entered[p, c] = enter
                if enter:
                    event_q[p, c] = q + delay[p, c]
                    need_row[p, c] = entry_row[c]
                cost[p, c] = amount
                disc[p, c] = amount * discount_q
                nav_now[p] += amount
                cost_now[p] += amount
                spent += amount
                initial += amount
                if not planned[c]:
                    redeployed[p] += amount
        invested_initial[p] = initial
