"""The construction plan both engines share: candidate companies, entry quarters, budgets,
the reserve-need tables and the distribution of the time to a company's next event.

The plan is solved by :mod:`updog.model.construction` (how many companies, what the fees and
recycling are expected to be); this module holds its data and the pure pieces it is made of.

Timing: the time from entering a stage to the next event (graduation, exit or failure) is a
Gamma distribution with shape :data:`TIMING_SHAPE` and the stage's mean (``months_to_graduate``
for graduation and failure, ``months_to_exit`` for exit), discretised to whole quarters ≥ 1 and
truncated at three means (the mass beyond, 0.2 % for shape 4, is folded into the last quarter).
Shape 4 gives a coefficient of variation of 0.5: rounds rarely come sooner than half or later
than twice the mean, which matches the spread of time between rounds in Carta's data.

Candidates: the planned companies of each allocation enter at equal checks along the deployment
curve over the investment period. With reserve-aware pacing (``unused_reserves: redeploy``)
each allocation also has :data:`EXTRA_CANDIDATE_SHARE` × as many *extra* candidates, spread
over the investment period along :data:`EXTRA_CANDIDATE_CURVE` (after the planned ones of the
same quarter): a path whose companies need less follow-on capital than planned invests in
them, and one whose companies need more skips planned ones (see the engines).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray
from scipy import stats  # type: ignore[import-untyped]

from updog.model.reserves import NeedTables
from updog.model.spec import (
    Allocation,
    DeploymentCurve,
    FeeBasis,
    FollowOn,
    FundSpec,
    expected_multiple,
)

#: Most initial investments a plan may hold: memory and time grow with the company count, and a
#: larger number means a units mistake (a cheque in $M entered as dollars) more often than a fund.
MAX_COMPANIES = 1000
#: Gamma shape of the time to a stage event (coefficient of variation 1/sqrt(shape)).
TIMING_SHAPE = 4.0
#: Truncation of the time distribution, in means.
TIMING_TRUNCATION_MEANS = 3.0
#: Extra candidates per planned company of an allocation under reserve-aware pacing: on the
#: example funds no simulated path used more than two thirds of them.
EXTRA_CANDIDATE_SHARE = 0.3
#: Pacing of the extra candidates over the investment period: back-loaded, because reserves a
#: portfolio will not need become known as it matures (on the examples, spreading them like the
#: planned companies left twice as much capital undeployed on the simulated paths).
EXTRA_CANDIDATE_CURVE = DeploymentCurve.back


class PlanError(ValueError):
    """A valid spec whose plan cannot be built; ``path`` points at the part to change."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def event_time_pmf(mean_months: float) -> NDArray[np.float64]:
    """Probability that an event falls ``k`` quarters after entry, for k = 0..K.

    Returns an array of shape (K + 1,) with ``pmf[0] == 0`` (nothing happens in the entry
    quarter) summing to 1. Gamma(shape=:data:`TIMING_SHAPE`, mean=``mean_months``) discretised
    on 3-month steps: ``pmf[k] = F(3k) − F(3(k − 1))``, truncated at
    :data:`TIMING_TRUNCATION_MEANS` × mean."""
    if not (math.isfinite(mean_months) and mean_months > 0):
        raise ValueError("mean_months must be a positive finite number")
    last = max(1, math.ceil(TIMING_TRUNCATION_MEANS * mean_months / 3.0))
    edges = 3.0 * np.arange(0, last + 1, dtype=np.float64)
    cdf = stats.gamma.cdf(edges, a=TIMING_SHAPE, scale=mean_months / TIMING_SHAPE)
    pmf = np.zeros(last + 1, dtype=np.float64)
    pmf[1:] = np.diff(cdf)
    pmf[-1] += 1.0 - cdf[-1]
    out: NDArray[np.float64] = pmf / pmf.sum()
    return out


def quarter_end(first_close: date, quarter: int) -> date:
    """Last day of model quarter ``quarter`` (0 = the quarter containing ``first_close``)."""
    index = first_close.year * 4 + (first_close.month - 1) // 3 + quarter
    year, q = divmod(index, 4)
    month = 3 * q + 3
    day = 31 if month in (3, 12) else 30
    return date(year, month, day)


def quarter_label(first_close: date, quarter: int) -> str:
    """Calendar label of model quarter ``quarter``, e.g. ``2025Q1``."""
    end = quarter_end(first_close, quarter)
    return f"{end.year}Q{(end.month - 1) // 3 + 1}"


@dataclass(frozen=True)
class StageArrays:
    """Per-stage parameters as arrays of shape (stages,) in the ladder's order, the
    event-time distributions and ``survival[s]`` = P(no event in the first τ quarters after
    entering stage ``s``), τ = 0..K (:func:`survival`)."""

    round_size: NDArray[np.float64]
    post_money: NDArray[np.float64]
    graduation_rate: NDArray[np.float64]
    exit_rate: NDArray[np.float64]
    mean_multiple: NDArray[np.float64]
    graduation_pmf: tuple[NDArray[np.float64], ...]
    exit_pmf: tuple[NDArray[np.float64], ...]
    survival: tuple[NDArray[np.float64], ...]


@dataclass(frozen=True)
class CompanyPlan:
    """The candidate companies, shapes (companies,): entry quarter, entry stage index, initial
    check (dollars), the follow-on terms and index of the company's allocation, whether it is
    a planned company (False: an extra candidate for reserve-aware pacing), its expected
    follow-on need at entry (dollars, from the stage ladder) and the last stage whose round the
    fund may follow on in (its allocation's ``follow_on_rounds`` after the entry stage), and
    its identity for random streams, shape (companies, 3): (allocation, 0 planned / 1 extra,
    ordinal within them), which does not change when other companies are added."""

    entry_quarter: NDArray[np.int64]
    entry_stage: NDArray[np.int64]
    initial_check: NDArray[np.float64]
    pro_rata: NDArray[np.bool_]
    follow_on_check: NDArray[np.float64]
    participation: NDArray[np.float64]
    allocation: NDArray[np.int64]
    planned: NDArray[np.bool_]
    need: NDArray[np.float64]
    last_follow_on_stage: NDArray[np.int64]
    stream_key: NDArray[np.int64]


@dataclass(frozen=True)
class Plan:
    """Everything both engines derive from a spec before any uncertainty (dollars, quarters).

    ``investable`` = commitment − fee budget − expense budget + expected recycling;
    ``reinvestable_ahead[q]`` (shape (quarters,)) is the expected recycling still to come
    after quarter ``q`` (proceeds retained later and used); ``recycling_uses_ahead[q]`` the
    expected uses (investments, fees, expenses) from quarter ``q`` to the end of the recycling
    period, which bounds what the fund retains. ``invest_until`` is the first
    quarter without investments (the end of the fund's life), ``investment_quarters`` the
    length of the investment period. ``reserves_planned`` = investable − initial planned;
    ``reserve_need`` is the planned companies' expected follow-on need at entry."""

    quarters: int
    invest_until: int
    investment_quarters: int
    investable: float
    fee_budget: float
    expense_budget: float
    expected_recycling: float
    initial_planned: float
    reserves_planned: float
    reserve_need: float
    expenses: NDArray[np.float64]
    reinvestable_ahead: NDArray[np.float64]
    recycling_uses_ahead: NDArray[np.float64]
    stages: StageArrays
    companies: CompanyPlan
    needs: NeedTables


def survival(
    graduation_rate: float,
    exit_rate: float,
    graduation_pmf: NDArray[np.float64],
    exit_pmf: NDArray[np.float64],
) -> NDArray[np.float64]:
    """P(no event yet τ quarters after entering a stage), τ = 0..K; shape (K + 1,)."""
    n = max(len(graduation_pmf), len(exit_pmf))
    failure_rate = 1.0 - graduation_rate - exit_rate
    events = np.zeros(n)
    events[: len(graduation_pmf)] += (graduation_rate + failure_rate) * graduation_pmf
    events[: len(exit_pmf)] += exit_rate * exit_pmf
    out: NDArray[np.float64] = np.clip(1.0 - np.cumsum(events), 0.0, 1.0)
    return out


def stage_arrays(spec: FundSpec) -> StageArrays:
    """The ladder of ``spec`` as :class:`StageArrays`."""
    stage_list = spec.stages
    graduation_pmf = tuple(event_time_pmf(s.months_to_graduate) for s in stage_list)
    exit_pmf = tuple(event_time_pmf(s.months_to_exit) for s in stage_list)
    return StageArrays(
        round_size=np.array([s.round_size for s in stage_list]),
        post_money=np.array([s.post_money for s in stage_list]),
        graduation_rate=np.array([s.graduation_rate for s in stage_list]),
        exit_rate=np.array([s.exit_rate for s in stage_list]),
        mean_multiple=np.array([expected_multiple(s.outcomes) for s in stage_list]),
        graduation_pmf=graduation_pmf,
        exit_pmf=exit_pmf,
        survival=tuple(
            survival(s.graduation_rate, s.exit_rate, g, e)
            for s, g, e in zip(stage_list, graduation_pmf, exit_pmf, strict=True)
        ),
    )


def deployment_positions(n: int, curve: DeploymentCurve) -> NDArray[np.float64]:
    """Fractions of the investment period (0..1) at which ``n`` companies enter."""
    u = (np.arange(n, dtype=np.float64) + 0.5) / n
    if curve == DeploymentCurve.front:
        return 1.0 - np.sqrt(1.0 - u)  # inverse of F(x) = 1 − (1 − x)²: more deals early
    if curve == DeploymentCurve.back:
        return np.sqrt(u)  # inverse of F(x) = x²: more deals late
    return u


def fee_upper_bound(spec: FundSpec) -> float:
    """Upper bound of lifetime management fees, dollars: Σ tiers rate × commitment × years
    (a called or cost basis is never above the commitment)."""
    return _tier_fees(spec, committed_only=False)


def committed_fees(spec: FundSpec) -> float:
    """Lifetime fees of the tiers on the ``committed`` basis, dollars (known exactly)."""
    return _tier_fees(spec, committed_only=True)


def _tier_fees(spec: FundSpec, *, committed_only: bool) -> float:
    life = spec.life_quarters // 4
    total = 0.0
    for tier in spec.fees.tiers:
        if committed_only and tier.basis != FeeBasis.committed:
            continue
        end = min(tier.end_year if tier.end_year is not None else life, spec.horizon_quarters // 4)
        years = max(0, end - tier.start_year + 1)
        total += tier.rate * spec.fund_size * years
    return total


def expense_schedule(spec: FundSpec) -> NDArray[np.float64]:
    """Fund expenses per quarter, dollars, shape (quarters,): each expense's annual amount,
    grown by ``growth`` a year from its start year, paid in four equal quarterly parts. An
    expense without ``end_year`` runs to the horizon (extension years included)."""
    quarters = spec.horizon_quarters
    out = np.zeros(quarters, dtype=np.float64)
    life = quarters // 4
    for expense in spec.expenses:
        end = min(expense.end_year if expense.end_year is not None else life, life)
        for year in range(expense.start_year, end + 1):
            amount = expense.annual_amount * (1.0 + expense.growth) ** (year - expense.start_year)
            out[4 * (year - 1) : 4 * year] += amount / 4.0
    return out


def last_follow_on_stage(spec: FundSpec) -> NDArray[np.int64]:
    """Per allocation, shape (allocations,): the last stage index whose round the fund follows
    on in (entry stage + ``follow_on_rounds``; the last stage when unlimited)."""
    last = len(spec.stages) - 1
    out = [
        last
        if alloc.follow_on_rounds is None
        else min(last, spec.stage_index(alloc.stage) + alloc.follow_on_rounds)
        for alloc in spec.construction.allocations
    ]
    return np.array(out, dtype=np.int64)


def place_companies(
    spec: FundSpec,
    planned: list[int],
    extra: list[int],
    stages: StageArrays,
    needs: NeedTables,
) -> CompanyPlan:
    """Candidate companies: ``planned[a]`` planned and ``extra[a]`` extra companies of each
    allocation ``a``, each group spread along the deployment curve over the investment
    period; sorted by entry quarter, planned before extra, then by allocation. Raises
    :class:`PlanError` beyond :data:`MAX_COMPANIES` planned investments."""
    if sum(planned) > MAX_COMPANIES:
        raise PlanError(
            "/construction/allocations",
            f"the plan needs {sum(planned):,} initial investments; at most {MAX_COMPANIES:,} are "
            "modelled (raise initial_check)",
        )
    period_quarters = 4 * spec.investment_period_years
    rows: list[tuple[int, int, int, int, Allocation, int]] = []
    for a, alloc in enumerate(spec.construction.allocations):
        stage = spec.stage_index(alloc.stage)
        for kind, n in ((0, planned[a]), (1, extra[a])):
            if n <= 0:
                continue
            curve = spec.construction.deployment_curve if kind == 0 else EXTRA_CANDIDATE_CURVE
            positions = deployment_positions(n, curve)
            entry = np.minimum(np.floor(positions * period_quarters), period_quarters - 1)
            rows.extend(
                (int(q), kind, a, stage, alloc, i) for i, q in enumerate(entry.astype(np.int64))
            )
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    entry_quarter = np.array([r[0] for r in rows], dtype=np.int64)
    entry_stage = np.array([r[3] for r in rows], dtype=np.int64)
    allocation = np.array([r[2] for r in rows], dtype=np.int64)
    check = np.array([r[4].initial_check for r in rows], dtype=np.float64)
    return CompanyPlan(
        entry_quarter=entry_quarter,
        entry_stage=entry_stage,
        initial_check=check,
        pro_rata=np.array([r[4].follow_on == FollowOn.pro_rata for r in rows], dtype=np.bool_),
        follow_on_check=np.array([r[4].follow_on_check for r in rows], dtype=np.float64),
        participation=np.array([r[4].participation for r in rows], dtype=np.float64),
        allocation=allocation,
        planned=np.array([r[1] == 0 for r in rows], dtype=np.bool_),
        stream_key=np.array([(r[2], r[1], r[5]) for r in rows], dtype=np.int64).reshape(-1, 3),
        last_follow_on_stage=last_follow_on_stage(spec)[allocation],
        need=needs.at_entry(
            allocation, entry_stage, entry_quarter, check / stages.post_money[entry_stage]
        ),
    )
