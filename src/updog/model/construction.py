"""Portfolio construction: budgets, the number of companies and the reserves (SPEC §2, §3.2 as
amended by the construction rules in the README).

**Budgets at their expectation.** Management fees on the ``committed`` basis are known
exactly; fees on a called, cost or NAV basis depend on the portfolio, which depends on what
is left after fees. The plan is therefore a fixed point: starting from the fees' upper bound,
the expected fund is run (:func:`updog.model.expected.expected_run`), the fee budget is set to
the committed fees plus ``(1 + fee_budget_margin)`` × the expected basis-dependent fees, and
the plan is solved again until the company counts repeat and the budgets move by less than
:data:`BUDGET_TOLERANCE` of the commitment (a round that turns the fee budget back moves only
half way, and a plan that has not settled after :data:`MAX_ITERATIONS` rounds is returned with
a ``PLAN_NOT_CONVERGED`` warning). Expected recycling (proceeds retained and
reinvested) is budgeted the same way, so

    investable = commitment − fee budget − expense budget + expected recycling.

**Number of companies** (``construction.mode``):

* ``derived`` (the default): the reserves follow from the stage ladder
  (:mod:`updog.model.reserves`: graduation rates, participation, pro-rata or fixed follow-ons,
  round sizes, timing). The initial capital is the largest for which the planned companies'
  initial checks plus their expected follow-on need fit the investable capital, split between
  allocations by ``share`` and rounded to whole checks (at least one per allocation with a
  share).
* ``reserve_ratio``: ``(1 − reserve_ratio)`` × investable goes to initial checks; the rest is
  the reserve budget.

Both report the planned reserves against the ladder's expected need and the expected use, with
a warning when follow-ons are expected to use under 80 % or over 110 % of the plan, and the
number of companies per entry stage. A derived plan's reserves are the need by construction;
what whole checks leave over (less than one company's check and need) is redeployed or stays
uncalled.

**Unused reserves** (``construction.unused_reserves``): ``redeploy`` (the default) adds extra
candidate companies (:data:`updog.model.plan.EXTRA_CANDIDATE_SHARE`) that the engines invest in
while the fund's uncommitted capital covers them (reserve-aware pacing); ``hold`` keeps the
planned companies only and leaves unused reserves uncalled, with a warning when more than 10 %
of the commitment is expected to stay uncalled.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from updog.model.expected import PortfolioResult, expected_run
from updog.model.plan import (
    EXTRA_CANDIDATE_SHARE,
    MAX_COMPANIES,
    CompanyPlan,
    Plan,
    PlanError,
    StageArrays,
    committed_fees,
    expense_schedule,
    fee_upper_bound,
    last_follow_on_stage,
    place_companies,
    stage_arrays,
)
from updog.model.reserves import NeedTables, need_tables
from updog.model.spec import (
    ConstructionMode,
    FollowOn,
    FundSpec,
    Issue,
    UnusedReserves,
    canonical_json,
)

#: Most rounds of the budget fixed point (it converges in a few for every example).
MAX_ITERATIONS = 25
#: Budgets that move by less than this share of the commitment have converged (a few hundred
#: dollars on a typical fund: far below one check, so the plan cannot change any more).
BUDGET_TOLERANCE = 1e-5
#: Bisection steps on the initial capital of a derived construction.
SIZING_STEPS = 60
#: Expected reserve use (follow-ons) outside this share of the planned reserves draws a warning.
RESERVE_USE_RANGE = (0.80, 1.10)
#: Expected uncalled commitment above this share of the commitment draws a warning.
UNCALLED_WARNING = 0.10
#: Share of total value from the end of the term above which a warning is raised.
END_VALUE_WARNING = 0.15
#: Value below this share of the commitment is too small for a share of it to mean anything.
MATERIAL = 1e-6


@dataclass(frozen=True)
class SolvedPlan:
    """A plan, the expected run of the fund under it (the deterministic forecast's numbers)
    and the construction's warnings (non-blocking, each with a JSON Pointer path)."""

    plan: Plan
    run: PortfolioResult
    warnings: list[Issue]


def build_plan(spec: FundSpec) -> Plan:
    """The construction plan of a validated spec. Raises :class:`PlanError` (a ValueError with
    the path to change) when fees and expenses leave nothing to invest or the plan needs more
    companies than are modelled."""
    return solve_plan(spec).plan


def _need_tables(spec: FundSpec, stages: StageArrays) -> NeedTables:
    allocations = spec.construction.allocations
    return need_tables(
        quarters=spec.horizon_quarters,
        invest_until=min(spec.life_quarters, spec.horizon_quarters),
        graduation_rate=stages.graduation_rate,
        graduation_pmf=stages.graduation_pmf,
        survival=stages.survival,
        round_size=stages.round_size,
        post_money=stages.post_money,
        participation=np.array([a.participation for a in allocations]),
        pro_rata=np.array([a.follow_on == FollowOn.pro_rata for a in allocations]),
        follow_on_check=np.array([a.follow_on_check for a in allocations]),
        last_follow_on_stage=last_follow_on_stage(spec),
    )


def _counts_for(spec: FundSpec, initial_capital: float) -> list[int]:
    return [
        0
        if alloc.share <= 0.0
        else max(1, round(initial_capital * alloc.share / alloc.initial_check))
        for alloc in spec.construction.allocations
    ]


def _planned_cost(
    spec: FundSpec, counts: list[int], stages: StageArrays, needs: NeedTables
) -> float:
    """Initial checks plus expected follow-on need of ``counts`` planned companies (infinite
    beyond :data:`~updog.model.plan.MAX_COMPANIES`: a trial of the sizing, not an error)."""
    if sum(counts) > MAX_COMPANIES:
        return math.inf
    companies = place_companies(spec, counts, [0] * len(counts), stages, needs)
    return float(companies.initial_check.sum() + companies.need.sum())


def _planned_counts(
    spec: FundSpec, investable: float, stages: StageArrays, needs: NeedTables
) -> list[int]:
    """Planned companies per allocation for ``investable`` dollars (see the module docstring)."""
    construction = spec.construction
    allocations = construction.allocations
    if construction.mode == ConstructionMode.reserve_ratio:
        counts = _counts_for(spec, investable * (1.0 - construction.reserve_ratio))
    else:
        low, high = 0.0, investable
        counts = _counts_for(spec, 0.0)
        cost = _planned_cost(spec, counts, stages, needs)
        if cost <= investable:
            for _ in range(SIZING_STEPS):
                middle = 0.5 * (low + high)
                trial = _counts_for(spec, middle)
                trial_cost = _planned_cost(spec, trial, stages, needs)
                if trial_cost <= investable:
                    low, counts, cost = middle, trial, trial_cost
                else:
                    high = middle
            # Capital left that only more companies than are modelled could use: refuse, as a
            # units mistake is likelier than such a fund.
            per_company = cost / max(sum(counts), 1)
            if sum(_counts_for(spec, 2.0 * low + 1.0)) > MAX_COMPANIES and (
                investable - cost > 0.5 * investable
            ):
                needed = investable / per_company if per_company > 0.0 else math.inf
                raise PlanError(
                    "/construction/allocations",
                    f"the plan needs about {needed:,.0f} initial investments to deploy the fund; "
                    f"at most {MAX_COMPANIES:,} are modelled (raise initial_check)",
                )
    # Rounding to whole checks can overshoot the investable capital: drop the largest
    # allocation's last check until the initial checks fit.
    while sum(n * a.initial_check for n, a in zip(counts, allocations, strict=True)) > investable:
        largest = max(range(len(counts)), key=lambda i: counts[i] * allocations[i].initial_check)
        if counts[largest] == 0:
            break
        counts[largest] -= 1
    if sum(counts) == 0:
        raise PlanError(
            "/construction/allocations", "the initial check exceeds the investable capital"
        )
    return counts


def _plan(
    spec: FundSpec,
    stages: StageArrays,
    needs: NeedTables,
    fee_budget: float,
    reinvest: NDArray[np.float64],
    uses_ahead: NDArray[np.float64],
) -> Plan:
    quarters = spec.horizon_quarters
    expenses = expense_schedule(spec)
    expected_recycling = float(reinvest.sum())
    investable = spec.fund_size - fee_budget - float(expenses.sum()) + expected_recycling
    if investable <= 0.0:
        raise PlanError("/fees", "fees and expenses exceed the commitment: nothing left to invest")
    planned = _planned_counts(spec, investable, stages, needs)
    redeploy = spec.construction.unused_reserves == UnusedReserves.redeploy
    extra = [math.ceil(EXTRA_CANDIDATE_SHARE * n) if redeploy else 0 for n in planned]
    companies: CompanyPlan = place_companies(spec, planned, extra, stages, needs)
    initial = float(companies.initial_check[companies.planned].sum())
    ahead = np.concatenate([np.cumsum(reinvest[::-1])[::-1][1:], [0.0]])
    return Plan(
        quarters=quarters,
        invest_until=min(spec.life_quarters, quarters),
        investment_quarters=4 * spec.investment_period_years,
        investable=investable,
        fee_budget=fee_budget,
        expense_budget=float(expenses.sum()),
        expected_recycling=expected_recycling,
        initial_planned=initial,
        reserves_planned=investable - initial,
        reserve_need=float(companies.need[companies.planned].sum()),
        expenses=expenses,
        reinvestable_ahead=ahead,
        recycling_uses_ahead=uses_ahead,
        stages=stages,
        companies=companies,
        needs=needs,
    )


def solve_plan(spec: FundSpec) -> SolvedPlan:
    """Solve the construction of ``spec`` (the fixed point of the module docstring). Raises
    :class:`PlanError` as :func:`build_plan` does.

    The solution is a pure function of the spec: the last :data:`PLAN_CACHE_SIZE` are kept
    (keyed by the spec's canonical JSON), so validating, forecasting and simulating one fund
    solve it once. Its arrays are shared: callers must not modify them."""
    return _solve_cached(canonical_json(spec.model_dump(mode="json")))


#: Solved plans kept in memory (see :func:`solve_plan`).
PLAN_CACHE_SIZE = 32


@functools.lru_cache(maxsize=PLAN_CACHE_SIZE)
def _solve_cached(spec_json: str) -> SolvedPlan:
    return _solve(FundSpec.model_validate_json(spec_json))


def _solve(spec: FundSpec) -> SolvedPlan:
    stages = stage_arrays(spec)
    needs = _need_tables(spec, stages)
    fixed_fees = committed_fees(spec)
    margin = spec.construction.fee_budget_margin
    fee_budget = fee_upper_bound(spec)
    quarters = spec.horizon_quarters
    reinvest = np.zeros(quarters)
    uses_ahead = np.full(quarters, np.inf)
    retain_until = min(4 * spec.recycling.period_years, quarters)
    previous: list[int] | None = None
    converged = False
    last_change = 0.0
    for iteration in range(MAX_ITERATIONS):
        plan = _plan(spec, stages, needs, fee_budget, reinvest, uses_ahead)
        run = expected_run(spec, plan)
        due = float(run.cash.fees.sum() + run.cash.fees_waived.sum())
        new_budget = fixed_fees + (1.0 + margin) * max(due - fixed_fees, 0.0)
        new_reinvest = run.cash.retained[0] - run.cash.released[0]
        uses = (
            run.flows.invested_initial[0]
            + run.flows.invested_follow_on[0]
            + run.cash.fees[0]
            + run.cash.expenses[0]
        )
        uses[retain_until:] = 0.0
        new_uses_ahead = np.cumsum(uses[::-1])[::-1]
        counts = _count_key(plan)
        tolerance = BUDGET_TOLERANCE * spec.fund_size
        if (
            counts == previous
            and abs(new_budget - fee_budget) < tolerance
            and float(np.abs(new_reinvest - reinvest).sum()) < tolerance
            and float(np.abs(new_uses_ahead - uses_ahead).max()) < tolerance
        ):
            converged = True
            break
        # When the budget turns back, step half way: budgets that depend strongly on the
        # company count (a high fee on called capital) would otherwise jump between a few and
        # many companies for ever.
        change = new_budget - fee_budget
        step = 0.5 if change * last_change < 0.0 else 1.0
        last_change = change
        fee_budget += step * change
        reinvest = reinvest + step * (new_reinvest - reinvest)
        uses_ahead = (
            new_uses_ahead if iteration == 0 else uses_ahead + step * (new_uses_ahead - uses_ahead)
        )
        previous = counts
    warnings = construction_warnings(spec, plan, run)
    if not converged:
        warnings.append(
            Issue(
                path="/fees",
                code="PLAN_NOT_CONVERGED",
                message=f"the fee budget did not settle in {MAX_ITERATIONS} rounds (fees that "
                "depend strongly on how much the fund invests): the plan is approximate",
            )
        )
    return SolvedPlan(plan=plan, run=run, warnings=warnings)


def _count_key(plan: Plan) -> list[int]:
    co = plan.companies
    out: list[int] = co.allocation[co.planned].tolist()
    return out


def companies_by_stage(spec: FundSpec, plan: Plan) -> dict[str, int]:
    """Planned initial investments per entry stage (stage name → count)."""
    co = plan.companies
    out: dict[str, int] = {}
    for stage in co.entry_stage[co.planned]:
        name = spec.stages[int(stage)].name
        out[name] = out.get(name, 0) + 1
    return out


def construction_warnings(spec: FundSpec, plan: Plan, run: PortfolioResult) -> list[Issue]:
    """Warnings about a solved plan: reserves far from the ladder's expected need, a large
    expected uncalled commitment, a large share of value from the end of the term."""
    out: list[Issue] = []
    low, high = RESERVE_USE_RANGE
    used = float(run.reserves_used.sum())
    if plan.reserve_need <= 0.0 and used <= 0.0:
        pass  # follow-ons are off by design (no participation or rounds): nothing to compare
    elif plan.reserves_planned > 0.0:
        use = used / plan.reserves_planned
        if not low <= use <= high:
            out.append(
                Issue(
                    path="/construction",
                    code="RESERVE_USE_OFF_PLAN",
                    message=f"follow-ons are expected to use {use:.0%} of the planned reserves "
                    f"(${used:,.0f} of ${plan.reserves_planned:,.0f}; the stage ladder expects "
                    f"${plan.reserve_need:,.0f}); {low:.0%}–{high:.0%} is the usual range",
                )
            )
    elif used > 0.0:
        out.append(
            Issue(
                path="/construction",
                code="RESERVE_USE_OFF_PLAN",
                message=f"no reserves are planned but follow-ons are expected to use ${used:,.0f}",
            )
        )
    paid_in = float(run.cash.called.sum())
    uncalled = 1.0 - paid_in / spec.fund_size
    if uncalled > UNCALLED_WARNING:
        out.append(
            Issue(
                path="/construction/unused_reserves",
                code="UNCALLED_COMMITMENT",
                message=f"{uncalled:.0%} of the commitment is expected to stay uncalled "
                f"(${spec.fund_size - paid_in:,.0f})",
            )
        )
    share = end_value_share(run)
    total = float(run.flows.gross_proceeds.sum() + run.flows.nav[0, -1])
    if not spec.evergreen and share > END_VALUE_WARNING and total > MATERIAL * spec.fund_size:
        out.append(
            Issue(
                path="/end_of_term",
                code="END_OF_TERM_VALUE_HIGH",
                message=f"{share:.0%} of the fund's total value comes from what it still holds "
                "at the end of its term (sold or kept at NAV): the result depends on that "
                "policy",
            )
        )
    return out


def end_value_share(run: PortfolioResult, path: int = 0) -> float:
    """Share of a path's total gross value (proceeds plus NAV at the horizon) that came from
    the end of the term: the secondary-sale proceeds or the NAV kept. 0 when there is no
    value."""
    total = float(run.flows.gross_proceeds[path].sum() + run.flows.nav[path, -1])
    return float(run.end_value[path]) / total if total > 0.0 else 0.0
