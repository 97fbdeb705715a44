"""The deterministic forecast (SPEC §3.2): the exact expectation of the sampled model.

Companies enter per the plan (:mod:`updog.model.plan`). Instead of drawing each company's fate,
this engine propagates *expected mass*: for every company, stage and quarter, the expected
number of entries into that stage (``mass``), the expected ownership carried in
(``ownership``, a fraction of the company × probability) and the expected cost. A stage's
entries leave it by graduation, exit or failure with the stage's probabilities, spread over the
quarters by the event-time distribution. Follow-ons at graduation are the expectation of the
sampled rule (participation × pro-rata cheque, or participation × fixed cheque), funded from the
reserve budget in time order. Exits realise the stage's mean exit multiple on the stage's
post-money; NAV marks surviving companies at ownership × the latest round's post-money. A fund
that is not evergreen liquidates what is left at its NAV in its last quarter.

Everything up to the reserve budget is linear in the outcomes, so gross proceeds, investments
and paid-in are the exact means of the Monte Carlo engine while the budget does not bind
(checked by the convergence test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from updog import ENGINE_VERSION
from updog.finance import xirr
from updog.model.american import deal_gp_share
from updog.model.faults import FaultPlan
from updog.model.fund_cash import FundCash, PortfolioFlows, run_fund_cash
from updog.model.guards import check_forecast
from updog.model.plan import Plan, build_plan, quarter_end, quarter_label
from updog.model.spec import FundSpec, WaterfallType

Array = NDArray[np.float64]


@dataclass(frozen=True)
class CompanyCounts:
    """Expected company counts: entered, graduated out of each stage (by stage name), exited,
    failed (written off) and still held (or liquidated) at the horizon."""

    initial: float
    graduated: dict[str, float]
    exited: float
    failed: float
    held_at_horizon: float


@dataclass(frozen=True)
class PortfolioResult:
    """Portfolio flows (shape (paths, quarters)), reserve usage (dollars, shape (paths,)),
    company counts (expected counts for the deterministic engine) and, for sampled
    portfolios, each investment's gross multiple (value realised or held at the horizon over
    cost, shape (paths, companies))."""

    flows: PortfolioFlows
    reserves_used: Array
    counts: CompanyCounts | None = None
    company_multiple: Array | None = None


def survival(plan: Plan, stage: int) -> Array:
    """P(no event yet τ quarters after entering ``stage``), τ = 0..K; shape (K + 1,)."""
    st = plan.stages
    g = st.graduation_pmf[stage]
    e = st.exit_pmf[stage]
    n = max(len(g), len(e))
    pg, pe = st.graduation_rate[stage], st.exit_rate[stage]
    pf = 1.0 - pg - pe
    events = np.zeros(n)
    events[: len(g)] += (pg + pf) * g
    events[: len(e)] += pe * e
    return np.clip(1.0 - np.cumsum(events), 0.0, 1.0)


def expected_portfolio(spec: FundSpec, plan: Plan) -> PortfolioResult:
    """Expected portfolio flows of the plan; arrays of shape (1, quarters)."""
    quarters = plan.quarters
    st = plan.stages
    co = plan.companies
    n_comp, n_stage = len(co.entry_quarter), len(st.round_size)
    shape = (n_comp, n_stage, quarters)
    mass, own, cost = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    g_mass, g_own, g_cost = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    invested_initial = np.zeros(quarters)
    invested_follow_on = np.zeros(quarters)
    proceeds = np.zeros(quarters)
    exited = np.zeros(quarters)
    american = spec.waterfall.type == WaterfallType.american
    terms = (spec.waterfall.carry, spec.waterfall.hurdle, spec.waterfall.catch_up)
    deal_carry = np.zeros(quarters)
    failed = np.zeros(quarters)

    idx = np.arange(n_comp)
    mass[idx, co.entry_stage, co.entry_quarter] += 1.0
    own[idx, co.entry_stage, co.entry_quarter] += co.initial_check / st.post_money[co.entry_stage]
    cost[idx, co.entry_stage, co.entry_quarter] += co.initial_check
    np.add.at(invested_initial, co.entry_quarter, co.initial_check)

    reserves_left = plan.reserves_planned
    round_frac = st.round_size / st.post_money  # new money / post-money, shape (stages,)
    part = co.participation[:, None]
    for q in range(quarters):
        gm, gw = g_mass[:, :, q], g_own[:, :, q]
        if gm.any():
            demand = np.where(
                co.pro_rata[:, None],
                part * gw * st.round_size[None, :],
                part * gm * co.follow_on_check[:, None],
            )
            total = float(demand.sum())
            phi = min(1.0, reserves_left / total) if total > 0.0 else 0.0
            funded = phi * demand
            reserves_left -= float(funded.sum())
            invested_follow_on[q] += float(funded.sum())
            mass[:, :, q] += gm
            own[:, :, q] += gw * (1.0 - round_frac)[None, :] + funded / st.post_money[None, :]
            cost[:, :, q] += g_cost[:, :, q] + funded
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
                g_mass[:, s + 1, q + 1 : hi] += pg * m[:, None] * span[None, :]
                g_own[:, s + 1, q + 1 : hi] += pg * own[:, s, q][:, None] * span[None, :]
                g_cost[:, s + 1, q + 1 : hi] += pg * cost[:, s, q][:, None] * span[None, :]
            if hi > q + 1:
                failed[q + 1 : hi] += pf * m_total * span
            ep = st.exit_pmf[s]
            hi = min(quarters, q + len(ep))
            if pe > 0.0 and hi > q + 1:
                espan = ep[1 : hi - q]
                exited[q + 1 : hi] += pe * m_total * espan
                value = st.mean_multiple[s] * st.post_money[s]
                proceeds[q + 1 : hi] += pe * w_total * value * espan
                if american:
                    # Split of each company's expected exit against its expected cost.
                    alive = m > 0.0
                    per_company = deal_gp_share(
                        own[alive, s, q] / m[alive] * value,
                        cost[alive, s, q] / m[alive],
                        *terms,
                    )
                    deal_carry[q + 1 : hi] += pe * float((m[alive] * per_company).sum()) * espan

    nav = np.zeros(quarters)
    cost_unrealised = np.zeros(quarters)
    held = np.zeros(quarters)
    for s in range(n_stage):
        surv = survival(plan, s)
        stage_nav = st.post_money[s] * np.convolve(own[:, s, :].sum(axis=0), surv)[:quarters]
        stage_cost = np.convolve(cost[:, s, :].sum(axis=0), surv)[:quarters]
        stage_held = np.convolve(mass[:, s, :].sum(axis=0), surv)[:quarters]
        nav += stage_nav
        cost_unrealised += stage_cost
        held += stage_held
        if american and not spec.evergreen and stage_held[-1] > 0.0:
            per_company = deal_gp_share(
                np.array([stage_nav[-1] / stage_held[-1]]),
                np.array([stage_cost[-1] / stage_held[-1]]),
                *terms,
            )
            deal_carry[-1] += stage_held[-1] * float(per_company[0])
    if not spec.evergreen:
        proceeds[-1] += nav[-1]
        nav[-1] = 0.0
        cost_unrealised[-1] = 0.0

    graduated = {spec.stages[s].name: float(g_mass[:, s + 1, :].sum()) for s in range(n_stage - 1)}
    counts = CompanyCounts(
        initial=float(n_comp),
        graduated=graduated,
        exited=float(exited.sum()),
        failed=float(failed.sum()),
        held_at_horizon=float(held[-1]),
    )
    flows = PortfolioFlows(
        invested_initial=invested_initial[None, :],
        invested_follow_on=invested_follow_on[None, :],
        gross_proceeds=proceeds[None, :],
        nav=nav[None, :],
        cost_unrealised=cost_unrealised[None, :],
        deal_carry=deal_carry[None, :] if american else None,
    )
    used = np.array([plan.reserves_planned - reserves_left])
    return PortfolioResult(flows=flows, reserves_used=used, counts=counts)


QUARTER_FIELDS = (
    "called",
    "invested_initial",
    "invested_follow_on",
    "fees",
    "expenses",
    "gross_proceeds",
    "recycled",
    "lp_distributions",
    "gp_carry",
    "nav",
    "net_nav",
)


@dataclass(frozen=True)
class Forecast:
    """A deterministic forecast: per-quarter series (dollars, ratios) and a summary.

    ``quarters`` holds one dict per quarter with :data:`QUARTER_FIELDS` plus ``quarter``
    (``2025Q1``), ``date`` (quarter end), ``paid_in`` and ``distributions`` (cumulative),
    ``dpi``, ``rvpi``, ``tvpi`` (None before any capital is paid in)."""

    summary: dict[str, Any]
    quarters: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"summary": {...}, "quarters": [...]}``."""
        return {"summary": self.summary, "quarters": self.quarters}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0.0 else None


def net_cash_flows(cash: FundCash, path: int = 0) -> Array:
    """LP net cash flow per quarter, dollars: −called + LP distributions, plus the net NAV
    at the horizon as a final inflow (zero once the fund is liquidated)."""
    flows: Array = cash.lp_distributions[path] - cash.called[path]
    flows[-1] += cash.net_nav[path, -1]
    return flows


def gross_cash_flows(flows: PortfolioFlows, path: int = 0) -> Array:
    """Portfolio gross cash flow per quarter: −investments + proceeds, plus NAV at the end."""
    out: Array = (
        flows.gross_proceeds[path] - flows.invested_initial[path] - flows.invested_follow_on[path]
    )
    out[-1] += flows.nav[path, -1]
    return out


def run_forecast(spec: FundSpec, faults: FaultPlan | None = None) -> Forecast:
    """Deterministic quarterly forecast of a validated spec (SPEC §3.2).

    Raises ValueError when the plan is infeasible (fees and expenses exceed the commitment)
    and :class:`~updog.model.guards.EngineGuardError` (``ConservationError`` included) when
    the result fails a guard. ``faults`` injects faults for guard tests only."""
    plan = build_plan(spec)
    portfolio = expected_portfolio(spec, plan)
    cash = run_fund_cash(spec, plan, portfolio.flows)
    flows = portfolio.flows
    dates = [quarter_end(spec.first_close_date, q) for q in range(plan.quarters)]

    rows: list[dict[str, Any]] = []
    paid_in = 0.0
    distributed = 0.0
    series = {
        "called": cash.called[0],
        "invested_initial": flows.invested_initial[0],
        "invested_follow_on": flows.invested_follow_on[0],
        "fees": cash.fees[0],
        "expenses": cash.expenses[0],
        "gross_proceeds": flows.gross_proceeds[0],
        "recycled": cash.recycled[0],
        "lp_distributions": cash.lp_distributions[0],
        "gp_carry": cash.gp_carry[0],
        "nav": flows.nav[0],
        "net_nav": cash.net_nav[0],
    }
    for q in range(plan.quarters):
        paid_in += float(cash.called[0, q])
        distributed += float(cash.lp_distributions[0, q])
        row: dict[str, Any] = {
            "quarter": quarter_label(spec.first_close_date, q),
            "date": dates[q].isoformat(),
        }
        row.update({name: float(series[name][q]) for name in QUARTER_FIELDS})
        net_nav = float(cash.net_nav[0, q])
        dpi = _ratio(distributed, paid_in)
        rvpi = _ratio(net_nav, paid_in)
        row.update(
            paid_in=paid_in,
            distributions=distributed,
            dpi=dpi,
            rvpi=rvpi,
            tvpi=None if dpi is None or rvpi is None else dpi + rvpi,
        )
        rows.append(row)

    invested = float(flows.invested_initial.sum() + flows.invested_follow_on.sum())
    proceeds = float(flows.gross_proceeds.sum())
    final_nav = float(flows.nav[0, -1])
    final_net_nav = float(cash.net_nav[0, -1])
    counts = portfolio.counts
    assert counts is not None
    summary: dict[str, Any] = {
        "fund_name": spec.name,
        "fund_size": spec.fund_size,
        "engine_version": ENGINE_VERSION,
        "quarters": plan.quarters,
        "paid_in": paid_in,
        "distributions": distributed,
        "nav": final_nav,
        "net_nav": final_net_nav,
        "dpi": _ratio(distributed, paid_in),
        "rvpi": _ratio(final_net_nav, paid_in),
        "tvpi": _ratio(distributed + final_net_nav, paid_in),
        "net_irr": xirr(dates, list(net_cash_flows(cash))),
        "gross_irr": xirr(dates, list(gross_cash_flows(flows))),
        "moic": _ratio(proceeds + final_nav, invested),
        "invested": invested,
        "gross_proceeds": proceeds,
        "fees": float(cash.fees.sum()),
        "fees_waived": float(cash.fees_waived.sum()),
        "expenses": float(cash.expenses.sum()),
        "carry": float(cash.gp_carry.sum()),
        "clawback": float(cash.clawback.sum()),
        "recycled": float(cash.recycled.sum()),
        "companies": {
            "initial": counts.initial,
            "graduated": counts.graduated,
            "exited": counts.exited,
            "failed": counts.failed,
            "held_at_horizon": counts.held_at_horizon,
        },
        "reserves": {
            "planned": plan.reserves_planned,
            "used": float(portfolio.reserves_used[0]),
        },
        "plan": {
            "investable": plan.investable,
            "fee_budget": plan.fee_budget,
            "expense_budget": plan.expense_budget,
            "initial_planned": plan.initial_planned,
        },
    }
    forecast = Forecast(summary=summary, quarters=rows)
    if faults is not None:
        kind = faults.act("forecast")
        if kind == "nan":
            rows[0]["nav"] = math.nan
        elif kind == "inf":
            summary["tvpi"] = math.inf
        elif kind == "negative_nav":
            rows[len(rows) // 2]["nav"] = -1e6
    check_forecast(forecast.to_dict(), spec.fund_size)
    return forecast
