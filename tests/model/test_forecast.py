"""Deterministic forecast: invariants on every example, known answers, property tests."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_support import EXAMPLES, FIXTURE_FUNDS, load_yaml, minimal_spec_json, portfolio_flows
from updog.model.construction import build_plan
from updog.model.forecast import run_forecast
from updog.model.fund_cash import ConservationError, run_fund_cash
from updog.model.plan import event_time_pmf, quarter_end, quarter_label
from updog.model.spec import FundSpec

CENT = 0.01


def _check_invariants(spec: FundSpec) -> dict[str, Any]:
    forecast = run_forecast(spec).to_dict()
    rows = forecast["quarters"]
    assert len(rows) == spec.horizon_quarters
    paid = [r["paid_in"] for r in rows]
    assert all(b >= a - CENT for a, b in itertools.pairwise(paid)), "paid-in falls"
    assert paid[-1] <= spec.fund_size + CENT
    for r in rows:
        sources = r["called"] + r["recycled"]
        with_capital = r["fees"] - r["fees_from_proceeds"]
        uses = r["invested_initial"] + r["invested_follow_on"] + with_capital + r["expenses"]
        assert sources == pytest.approx(uses, abs=CENT)
        assert r["lp_distributions"] + r["gp_carry"] + r["fees_from_proceeds"] == pytest.approx(
            r["gross_proceeds"] - r["retained"] + r["released"], abs=CENT
        )
        assert r["fund_cash"] >= -CENT
        if r["dpi"] is not None:
            assert r["dpi"] <= r["tvpi"] + 1e-12
            assert r["dpi"] >= -1e-12 and r["rvpi"] >= -1e-12
        assert r["nav"] >= -CENT
    for r in rows[:-1]:
        assert r["net_nav"] <= r["nav"] + r["fund_cash"] + CENT  # the LPs' share of the value
    s = forecast["summary"]
    if spec.liquidates_at_end:
        profit = s["distributions"] + s["carry"] - s["paid_in"]
        assert s["carry"] <= spec.waterfall.carry * max(0.0, profit) + CENT
    else:
        # Holdings kept at the horizon count at their marks; carry above its share of that
        # profit is a clawback receivable of the LPs.
        profit = s["distributions"] + s["carry"] + s["nav"] - s["paid_in"]
        assert s["carry"] - s["clawback"] <= spec.waterfall.carry * max(0.0, profit) + CENT
    # Reserve use never exceeds the reserves plus what was redeployed into them: the fund
    # invests at most its investable capital, with the recycling it actually got.
    plan = s["plan"]
    capacity = plan["investable"] - plan["expected_recycling"] + s["recycled"]
    assert s["invested"] <= capacity + CENT
    assert s["retained"] == pytest.approx(
        sum(r["recycled"] + r["released"] for r in rows), abs=CENT
    )
    return forecast


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_satisfy_the_invariants(path: Any) -> None:
    forecast = _check_invariants(load_yaml(path))
    s = forecast["summary"]
    assert 0.5 < s["tvpi"] < 5.0
    assert s["net_irr"] is not None and s["gross_irr"] is not None
    assert s["gross_irr"] > s["net_irr"]
    assert s["fees"] > 0 and s["carry"] >= 0


def test_at_least_three_examples_exist() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"seed-fund", "series-a-fund", "growth-fund"} <= names


def test_event_time_distribution() -> None:
    pmf = event_time_pmf(18.0)
    assert pmf[0] == 0.0 and pmf.sum() == pytest.approx(1.0)
    mean_quarters = float((np.arange(pmf.size) * pmf).sum())
    assert mean_quarters == pytest.approx(18.0 / 3.0, rel=0.1)
    with pytest.raises(ValueError):
        event_time_pmf(0.0)


def test_quarter_calendar() -> None:
    from datetime import date

    assert quarter_label(date(2025, 2, 10), 0) == "2025Q1"
    assert quarter_label(date(2025, 2, 10), 4) == "2026Q1"
    assert quarter_end(date(2025, 11, 1), 1).isoformat() == "2026-03-31"
    assert quarter_end(date(2025, 1, 1), 2).isoformat() == "2025-09-30"


def _bare_spec(**waterfall: Any) -> FundSpec:
    return FundSpec.model_validate(
        minimal_spec_json(
            fund_size=1000.0,
            fund_life_years=3,
            investment_period_years=1,
            fees={"tiers": []},
            waterfall={"carry": 0.2, "hurdle": 0.08, "catch_up": 1.0, **waterfall},
            construction={"allocations": [{"stage": "seed", "share": 1, "initial_check": 1}]},
        )
    )


def test_european_waterfall_known_answer() -> None:
    """100 in, 150 back a year later: pref 8, full catch-up 2, then 40 split 32/8.
    The GP ends with 10 = 20 % of the 50 profit; the LP with 140."""
    spec = _bare_spec()
    plan = build_plan(spec)
    cash = run_fund_cash(
        spec, plan, portfolio_flows(12, invested_initial={0: 100.0}, gross_proceeds={4: 150.0})
    )
    assert cash.called[0, 0] == pytest.approx(100.0)
    assert cash.gp_carry[0, 4] == pytest.approx(10.0)
    assert cash.lp_distributions[0, 4] == pytest.approx(140.0)


def test_no_catch_up_splits_the_excess_only() -> None:
    spec = _bare_spec(catch_up=0.0)
    cash = run_fund_cash(
        spec,
        build_plan(spec),
        portfolio_flows(12, invested_initial={0: 100.0}, gross_proceeds={4: 150.0}),
    )
    # 100 capital, 8 pref, the remaining 42 split 80/20.
    assert cash.gp_carry[0, 4] == pytest.approx(0.2 * 42.0)


def test_below_hurdle_pays_no_carry() -> None:
    spec = _bare_spec()
    cash = run_fund_cash(
        spec,
        build_plan(spec),
        portfolio_flows(12, invested_initial={0: 100.0}, gross_proceeds={4: 107.0}),
    )
    assert cash.gp_carry.sum() == 0.0
    assert cash.lp_distributions[0, 4] == pytest.approx(107.0)


def test_clawback_returns_all_carry_when_the_fund_ends_below_cost() -> None:
    spec = _bare_spec()
    cash = run_fund_cash(
        spec,
        build_plan(spec),
        portfolio_flows(
            12,
            invested_initial={0: 100.0},
            invested_follow_on={6: 100.0},
            gross_proceeds={4: 150.0},
        ),
    )
    assert cash.gp_carry[0, 4] == pytest.approx(10.0)
    assert cash.clawback[0, -1] == pytest.approx(10.0)
    assert cash.gp_carry.sum() == pytest.approx(0.0, abs=1e-9)
    assert cash.lp_distributions.sum() == pytest.approx(150.0)


def test_conservation_failure_is_detected() -> None:
    spec = _bare_spec()
    flows = portfolio_flows(12, invested_initial={0: 100.0})
    flows.gross_proceeds[0, 3] = np.nan
    with pytest.raises(ConservationError):
        run_fund_cash(spec, build_plan(spec), flows)


def test_zero_carry_gives_all_proceeds_to_lps_and_no_fees_means_paid_in_is_invested() -> None:
    spec = FundSpec.model_validate(minimal_spec_json(fees={"tiers": []}, waterfall={"carry": 0.0}))
    s = run_forecast(spec).summary
    assert s["carry"] == 0.0
    assert s["paid_in"] == pytest.approx(s["invested"], abs=CENT)
    assert s["distributions"] == pytest.approx(s["gross_proceeds"], abs=CENT)


def test_a_single_certain_exit_returns_its_multiple() -> None:
    band = {"min_multiple": 3.0, "max_multiple": 3.0 + 1e-9, "probability": 1.0}
    spec = FundSpec.model_validate(
        minimal_spec_json(
            fees={"tiers": []},
            stages=[
                {
                    "name": "seed",
                    "round_size": 2e6,
                    "post_money": 10e6,
                    "graduation_rate": 0.0,
                    "exit_rate": 1.0,
                    "months_to_exit": 12,
                    "outcomes": {"bands": [band]},
                }
            ],
            construction={
                "reserve_ratio": 0.0,
                "allocations": [{"stage": "seed", "share": 1.0, "initial_check": 1e6}],
            },
        )
    )
    s = run_forecast(spec).summary
    assert s["moic"] == pytest.approx(3.0, rel=1e-6)
    assert s["companies"]["exited"] == pytest.approx(50.0, rel=1e-9)
    assert s["companies"]["failed"] == pytest.approx(0.0, abs=1e-12)


def test_plan_fails_clearly_when_fees_eat_the_fund() -> None:
    spec = FundSpec.model_validate(
        minimal_spec_json(
            fund_size=1e6,
            expenses=[{"category": "admin", "annual_amount": 200_000}],
        )
    )
    with pytest.raises(ValueError, match="nothing left to invest"):
        build_plan(spec)


def test_linear_fixture_runs() -> None:
    _check_invariants(load_yaml(FIXTURE_FUNDS / "linear.yaml"))


spec_strategy = st.fixed_dictionaries(
    {
        "fund_size": st.floats(20e6, 1e9),
        "reserve_ratio": st.floats(0.0, 0.8),
        "carry": st.floats(0.0, 0.5),
        "hurdle": st.floats(0.0, 0.2),
        "catch_up": st.one_of(st.just(0.0), st.floats(0.5000001, 1.0)),
        "mode": st.sampled_from(["derived", "reserve_ratio"]),
        "unused_reserves": st.sampled_from(["redeploy", "hold"]),
        "extension_years": st.integers(0, 3),
        "end_of_term": st.sampled_from(["secondary_sale", "hold_at_nav"]),
        "follow_on_rounds": st.one_of(st.none(), st.integers(0, 3)),
        "american": st.booleans(),
        "basis": st.sampled_from(
            ["committed", "called_cumulative", "called_net_of_returns", "invested_cost", "nav"]
        ),
        "rate": st.floats(0.0, 0.05),
        "recycle": st.booleans(),
        "curve": st.sampled_from(["linear", "front", "back"]),
        "evergreen": st.booleans(),
        "participation": st.floats(0.0, 1.0),
    }
)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec_strategy)
def test_invariants_hold_for_random_funds(p: dict[str, Any]) -> None:
    spec = FundSpec.model_validate(
        minimal_spec_json(
            fund_size=p["fund_size"],
            evergreen=p["evergreen"],
            extension_years=p["extension_years"],
            end_of_term={"policy": p["end_of_term"]},
            fees={"tiers": [{"rate": p["rate"], "basis": p["basis"]}]},
            waterfall={
                "type": "american" if p["american"] else "european",
                "carry": p["carry"],
                "hurdle": p["hurdle"],
                "catch_up": p["catch_up"],
            },
            recycling={"enabled": p["recycle"]},
            construction={
                "mode": p["mode"],
                "unused_reserves": p["unused_reserves"],
                "reserve_ratio": p["reserve_ratio"],
                "deployment_curve": p["curve"],
                "allocations": [
                    {
                        "stage": "seed",
                        "share": 1.0,
                        "initial_check": 1e6,
                        "participation": p["participation"],
                        "follow_on_rounds": p["follow_on_rounds"],
                    }
                ],
            },
        )
    )
    _check_invariants(spec)


def test_too_many_companies_is_refused_at_publish() -> None:
    from updog.model.validation import validate_publish

    data = minimal_spec_json(
        construction={"allocations": [{"stage": "seed", "share": 1.0, "initial_check": 100}]}
    )
    spec, errors, _ = validate_publish(data)
    assert spec is None
    assert errors[0]["code"] == "PLAN_INFEASIBLE"
    assert errors[0]["path"] == "/construction/allocations"


def test_an_allocation_with_no_share_invests_nothing() -> None:
    spec = FundSpec.model_validate(
        minimal_spec_json(
            construction={
                "allocations": [
                    {"stage": "pre-seed", "share": 0.0, "initial_check": 500_000},
                    {"stage": "seed", "share": 1.0, "initial_check": 1_000_000},
                ]
            }
        )
    )
    plan = build_plan(spec)
    assert set(plan.companies.allocation.tolist()) == {1}


def test_nav_fees_never_push_calls_past_the_commitment() -> None:
    from updog.simulation import simulate

    spec = FundSpec.model_validate(
        minimal_spec_json(fees={"tiers": [{"rate": 0.05, "basis": "nav"}]})
    )
    forecast = run_forecast(spec).summary
    assert forecast["paid_in"] <= spec.fund_size + CENT
    result = simulate(spec, 1000, 5).to_dict()
    assert result["means"]["paid_in"]["mean"] <= spec.fund_size


def test_evergreen_carry_is_held_to_its_share_of_profit() -> None:
    from updog.simulation import simulate

    data = load_yaml(next(p for p in EXAMPLES if p.stem == "seed-fund")).model_dump(mode="json")
    data["evergreen"] = True
    spec = FundSpec.model_validate(data)
    result = simulate(spec, 2000, 9).to_dict()
    assert result["metrics"]["carry"]["count"] == 2000
    plan = build_plan(spec)
    from updog.model.fund_cash import run_fund_cash as fund_cash
    from updog.simulation.engine import BlockStreams
    from updog.simulation.sampling import sample_portfolio

    streams = BlockStreams(np.random.SeedSequence(9, spawn_key=(0,)), plan, 0.0)
    uniforms, market = streams.take(2000)
    flows = sample_portfolio(spec, plan, uniforms, market).flows
    cash = fund_cash(spec, plan, flows)
    lp_value = cash.lp_distributions.sum(axis=1) + cash.net_nav[:, -1]
    # The GP's value: carry paid plus its share of NAV, less the clawback it owes.
    gp_value = cash.gp_carry.sum(axis=1) + flows.nav[:, -1] - cash.net_nav[:, -1]
    profit = lp_value + gp_value - cash.called.sum(axis=1)
    assert np.all(gp_value <= spec.waterfall.carry * np.maximum(profit, 0.0) + CENT)
