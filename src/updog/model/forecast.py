"""The deterministic forecast (SPEC §3.2): the construction model in expectation.

:func:`run_forecast` solves the plan (:mod:`updog.model.construction`), whose last expected run
(:mod:`updog.model.expected`) is the forecast, and reports it quarter by quarter with the
construction behind it: budgets, planned reserves against the stage ladder's expected need,
companies per entry stage, the value that came from the end of the term, and warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray

from updog import ENGINE_VERSION
from updog.finance import xirr
from updog.model.construction import companies_by_stage, end_value_share, solve_plan
from updog.model.faults import FaultPlan
from updog.model.fund_cash import FundCash, PortfolioFlows
from updog.model.guards import CENT, check_forecast
from updog.model.plan import quarter_end, quarter_label
from updog.model.spec import FundSpec, spec_warnings

Array = NDArray[np.float64]


QUARTER_FIELDS = (
    "called",
    "invested_initial",
    "invested_follow_on",
    "fees",
    "fees_from_proceeds",
    "expenses",
    "gross_proceeds",
    "retained",
    "recycled",
    "released",
    "fund_cash",
    "lp_distributions",
    "gp_carry",
    "nav",
    "net_nav",
)


@dataclass(frozen=True)
class Forecast:
    """A deterministic forecast: per-quarter series (dollars, ratios) and a summary.

    ``quarters`` holds one dict per quarter with :data:`QUARTER_FIELDS` (dollars) plus
    ``quarter`` (``2025Q1``), ``date`` (quarter end), ``phase`` (``investment``, ``harvest``
    or ``extension``), ``paid_in`` and ``distributions`` (cumulative), ``dpi``, ``rvpi``,
    ``tvpi`` (None before any capital is paid in)."""

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


def _irr(dates: list[date], flows: Array) -> float | None:
    """XIRR of quarterly flows; −1.0 (a total loss, as the simulation counts it) when money
    went in and less than a cent came back."""
    if float(flows[flows > 0.0].sum()) < CENT and bool((flows < 0.0).any()):
        return -1.0
    return xirr(dates, list(flows))


def _phase(spec: FundSpec, quarter: int) -> str:
    if quarter < 4 * spec.investment_period_years:
        return "investment"
    return "harvest" if quarter < spec.life_quarters else "extension"


def run_forecast(spec: FundSpec, faults: FaultPlan | None = None) -> Forecast:
    """Deterministic quarterly forecast of a validated spec (SPEC §3.2).

    Raises :class:`~updog.model.plan.PlanError` (a ValueError) when the plan is infeasible and
    :class:`~updog.model.guards.EngineGuardError` (``ConservationError`` included) when the
    result fails a guard. ``faults`` injects faults for guard tests only."""
    solved = solve_plan(spec)
    plan, portfolio = solved.plan, solved.run
    cash, flows = portfolio.cash, portfolio.flows
    dates = [quarter_end(spec.first_close_date, q) for q in range(plan.quarters)]

    rows: list[dict[str, Any]] = []
    paid_in = 0.0
    distributed = 0.0
    series = {
        "called": cash.called[0],
        "invested_initial": flows.invested_initial[0],
        "invested_follow_on": flows.invested_follow_on[0],
        "fees": cash.fees[0],
        "fees_from_proceeds": cash.fees_from_proceeds[0],
        "expenses": cash.expenses[0],
        "gross_proceeds": flows.gross_proceeds[0],
        "retained": cash.retained[0],
        "recycled": cash.recycled[0],
        "released": cash.released[0],
        "fund_cash": cash.fund_cash[0],
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
            "phase": _phase(spec, q),
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
        "extension_quarters": plan.quarters - plan.invest_until if not spec.evergreen else 0,
        "paid_in": paid_in,
        "uncalled": spec.fund_size - paid_in,
        "distributions": distributed,
        "nav": final_nav,
        "net_nav": final_net_nav,
        "dpi": _ratio(distributed, paid_in),
        "rvpi": _ratio(final_net_nav, paid_in),
        "tvpi": _ratio(distributed + final_net_nav, paid_in),
        "net_irr": _irr(dates, net_cash_flows(cash)),
        "gross_irr": _irr(dates, gross_cash_flows(flows)),
        "moic": _ratio(proceeds + final_nav, invested),
        "invested": invested,
        "gross_proceeds": proceeds,
        "fees": float(cash.fees.sum()),
        "fees_from_proceeds": float(cash.fees_from_proceeds.sum()),
        "fees_waived": float(cash.fees_waived.sum()),
        "expenses": float(cash.expenses.sum()),
        "carry": float(cash.gp_carry.sum()),
        "clawback": float(cash.clawback.sum()),
        "recycled": float(cash.recycled.sum()),
        "retained": float(cash.retained.sum()),
        "companies": {
            "initial": counts.initial,
            "graduated": counts.graduated,
            "exited": counts.exited,
            "failed": counts.failed,
            "held_at_horizon": counts.held_at_horizon,
        },
        "reserves": {
            "planned": plan.reserves_planned,
            "need": plan.reserve_need,
            "used": float(portfolio.reserves_used[0]),
            "redeployed": float(portfolio.redeployed[0]),
        },
        "plan": {
            "mode": spec.construction.mode.value,
            "unused_reserves": spec.construction.unused_reserves.value,
            "investable": plan.investable,
            "fee_budget": plan.fee_budget,
            "expense_budget": plan.expense_budget,
            "expected_recycling": plan.expected_recycling,
            "initial_planned": plan.initial_planned,
            "companies_planned": int(plan.companies.planned.sum()),
            "companies_by_stage": companies_by_stage(spec, plan),
        },
        "end_of_term": {
            "policy": "evergreen" if spec.evergreen else spec.end_of_term.policy.value,
            "discount": spec.end_of_term.discount if spec.liquidates_at_end else None,
            "value": float(portfolio.end_value[0]),
            "share": end_value_share(portfolio),
        },
        "warnings": [dict(w) for w in spec_warnings(spec) + solved.warnings],
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
