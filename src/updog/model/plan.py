"""The construction plan both engines share: company counts, entry quarters, budgets and the
distribution of the time to a company's next event.

Budget rule (documented in the README): lifetime management fees are budgeted at their upper
bound (each tier's rate × commitment for every year it is active — a called or cost basis is
never above the commitment; a NAV basis may be, and then the fund waives the excess, see
:mod:`updog.model.fund_cash`), expenses at their schedule. ``investable = commitment − fee
budget − expense budget``; initial capital per allocation is ``investable × (1 − reserve_ratio)
× share``, written as ``round(initial capital / initial_check)`` equal checks (at least one); the
rest of ``investable`` is the reserve budget for follow-ons. So called capital never exceeds
the commitment.

Timing: the time from entering a stage to the next event (graduation, exit or failure) is a
Gamma distribution with shape :data:`TIMING_SHAPE` and the stage's mean (``months_to_graduate``
for graduation and failure, ``months_to_exit`` for exit), discretised to whole quarters ≥ 1 and
truncated at three means (the mass beyond, 0.2 % for shape 4, is folded into the last quarter).
Shape 4 gives a coefficient of variation of 0.5: rounds rarely come sooner than half or later
than twice the mean, which matches the spread of time between rounds in Carta's data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray
from scipy import stats  # type: ignore[import-untyped]

from updog.model.spec import DeploymentCurve, FollowOn, FundSpec, expected_multiple

#: Most initial investments a plan may hold: memory and time grow with the company count, and a
#: larger number means a units mistake (a cheque in $M entered as dollars) more often than a fund.
MAX_COMPANIES = 1000
#: Gamma shape of the time to a stage event (coefficient of variation 1/sqrt(shape)).
TIMING_SHAPE = 4.0
#: Truncation of the time distribution, in means.
TIMING_TRUNCATION_MEANS = 3.0


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
    """Per-stage parameters as arrays of shape (stages,) in the ladder's order."""

    round_size: NDArray[np.float64]
    post_money: NDArray[np.float64]
    graduation_rate: NDArray[np.float64]
    exit_rate: NDArray[np.float64]
    mean_multiple: NDArray[np.float64]
    graduation_pmf: tuple[NDArray[np.float64], ...]
    exit_pmf: tuple[NDArray[np.float64], ...]


@dataclass(frozen=True)
class CompanyPlan:
    """The deterministic part of the portfolio, shapes (companies,): entry quarter, entry
    stage index, initial check (dollars) and the follow-on terms of the company's allocation."""

    entry_quarter: NDArray[np.int64]
    entry_stage: NDArray[np.int64]
    initial_check: NDArray[np.float64]
    pro_rata: NDArray[np.bool_]
    follow_on_check: NDArray[np.float64]
    participation: NDArray[np.float64]
    allocation: NDArray[np.int64]


@dataclass(frozen=True)
class Plan:
    """Everything both engines derive from a spec before any uncertainty (dollars, quarters)."""

    quarters: int
    investable: float
    fee_budget: float
    expense_budget: float
    initial_planned: float
    reserves_planned: float
    expenses: NDArray[np.float64]
    stages: StageArrays
    companies: CompanyPlan


def _deployment_positions(n: int, curve: DeploymentCurve) -> NDArray[np.float64]:
    """Fractions of the investment period (0..1) at which ``n`` companies enter."""
    u = (np.arange(n, dtype=np.float64) + 0.5) / n
    if curve == DeploymentCurve.front:
        return 1.0 - np.sqrt(1.0 - u)  # inverse of F(x) = 1 − (1 − x)²: more deals early
    if curve == DeploymentCurve.back:
        return np.sqrt(u)  # inverse of F(x) = x²: more deals late
    return u


def fee_budget(spec: FundSpec) -> float:
    """Upper bound of lifetime management fees, dollars: Σ tiers rate × commitment × years."""
    life = spec.horizon_years if spec.evergreen else spec.fund_life_years
    total = 0.0
    for tier in spec.fees.tiers:
        end = min(tier.end_year if tier.end_year is not None else life, life)
        years = max(0, end - tier.start_year + 1)
        total += tier.rate * spec.fund_size * years
    return total


def expense_schedule(spec: FundSpec) -> NDArray[np.float64]:
    """Fund expenses per quarter, dollars, shape (quarters,): each expense's annual amount,
    grown by ``growth`` a year from its start year, paid in four equal quarterly parts."""
    quarters = spec.horizon_quarters
    out = np.zeros(quarters, dtype=np.float64)
    life = quarters // 4
    for expense in spec.expenses:
        end = min(expense.end_year if expense.end_year is not None else life, life)
        for year in range(expense.start_year, end + 1):
            amount = expense.annual_amount * (1.0 + expense.growth) ** (year - expense.start_year)
            out[4 * (year - 1) : 4 * year] += amount / 4.0
    return out


def build_plan(spec: FundSpec) -> Plan:
    """Derive the plan of a validated spec. Raises ValueError when fees and expenses leave
    nothing to invest."""
    quarters = spec.horizon_quarters
    expenses = expense_schedule(spec)
    fees = fee_budget(spec)
    investable = spec.fund_size - fees - float(expenses.sum())
    if investable <= 0.0:
        raise PlanError("/fees", "fees and expenses exceed the commitment: nothing left to invest")
    stage_list = spec.stages
    stages = StageArrays(
        round_size=np.array([s.round_size for s in stage_list]),
        post_money=np.array([s.post_money for s in stage_list]),
        graduation_rate=np.array([s.graduation_rate for s in stage_list]),
        exit_rate=np.array([s.exit_rate for s in stage_list]),
        mean_multiple=np.array([expected_multiple(s.outcomes) for s in stage_list]),
        graduation_pmf=tuple(event_time_pmf(s.months_to_graduate) for s in stage_list),
        exit_pmf=tuple(event_time_pmf(s.months_to_exit) for s in stage_list),
    )
    period_quarters = 4 * spec.investment_period_years
    initial_capital = investable * (1.0 - spec.construction.reserve_ratio)
    rows: list[tuple[int, int, float, bool, float, float, int]] = []
    counts = [
        0
        if alloc.share <= 0.0
        else max(1, round(initial_capital * alloc.share / alloc.initial_check))
        for alloc in spec.construction.allocations
    ]
    if sum(counts) > MAX_COMPANIES:
        raise PlanError(
            "/construction/allocations",
            f"the plan needs {sum(counts):,} initial investments; at most {MAX_COMPANIES:,} are "
            "modelled (raise initial_check)",
        )
    for a, alloc in enumerate(spec.construction.allocations):
        n = counts[a]
        if n == 0:
            continue
        positions = _deployment_positions(n, spec.construction.deployment_curve)
        entry = np.minimum(np.floor(positions * period_quarters), period_quarters - 1)
        stage = spec.stage_index(alloc.stage)
        for q in entry.astype(np.int64):
            rows.append(
                (
                    int(q),
                    stage,
                    alloc.initial_check,
                    alloc.follow_on == FollowOn.pro_rata,
                    alloc.follow_on_check,
                    alloc.participation,
                    a,
                )
            )
    rows.sort(key=lambda r: (r[0], r[6]))
    initial_planned = float(sum(r[2] for r in rows))
    if initial_planned > investable:
        # Rounding up the number of checks can overshoot; drop the last entrants.
        while rows and initial_planned > investable:
            initial_planned -= rows.pop()[2]
        if not rows:
            raise PlanError(
                "/construction/allocations", "the initial check exceeds the investable capital"
            )
    companies = CompanyPlan(
        entry_quarter=np.array([r[0] for r in rows], dtype=np.int64),
        entry_stage=np.array([r[1] for r in rows], dtype=np.int64),
        initial_check=np.array([r[2] for r in rows], dtype=np.float64),
        pro_rata=np.array([r[3] for r in rows], dtype=np.bool_),
        follow_on_check=np.array([r[4] for r in rows], dtype=np.float64),
        participation=np.array([r[5] for r in rows], dtype=np.float64),
        allocation=np.array([r[6] for r in rows], dtype=np.int64),
    )
    return Plan(
        quarters=quarters,
        investable=investable,
        fee_budget=fees,
        expense_budget=float(expenses.sum()),
        initial_planned=initial_planned,
        reserves_planned=investable - initial_planned,
        expenses=expenses,
        stages=stages,
        companies=companies,
    )
