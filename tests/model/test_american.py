"""Deal-by-deal (American) waterfall in the engines, tied to the finance kernel."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_support import EXAMPLES, load_yaml, minimal_spec_json, portfolio_flows
from updog.finance import WaterfallPolicy, distribute
from updog.model.american import deal_gp_share
from updog.model.forecast import run_forecast
from updog.model.fund_cash import run_fund_cash
from updog.model.construction import build_plan
from updog.model.spec import FundSpec
from updog.simulation import simulate


@settings(max_examples=300, deadline=None)
@given(
    proceeds=st.floats(-1e6, 5e9, allow_nan=False),
    # Realistic magnitudes: at 1e-298 dollars float underflow meets the rule's jump at pref = 0.
    cost=st.one_of(st.just(0.0), st.floats(0.01, 1e9)),
    carry=st.floats(0.0, 0.5),
    hurdle=st.one_of(st.just(0.0), st.floats(1e-4, 0.2)),
    catch_up=st.floats(0.0, 1.0),
)
def test_vectorised_split_equals_the_kernel(
    proceeds: float, cost: float, carry: float, hurdle: float, catch_up: float
) -> None:
    ours = float(deal_gp_share(np.array([proceeds]), np.array([cost]), carry, hurdle, catch_up)[0])
    policy = WaterfallPolicy.standard(
        Decimal(repr(carry)), Decimal(repr(hurdle)), Decimal(repr(catch_up))
    )
    kernel = float(distribute(policy, Decimal(repr(proceeds)), Decimal(repr(cost))).gp_exact)
    assert ours == pytest.approx(kernel, rel=1e-9, abs=1e-6)


def test_spec_example_deal() -> None:
    gp = deal_gp_share(np.array([1_500_000.0]), np.array([1_000_000.0]), 0.2, 0.08, 1.0)
    assert gp[0] == pytest.approx(100_000.0)


def _american(**extra: Any) -> FundSpec:
    return FundSpec.model_validate(
        minimal_spec_json(
            fund_size=1000.0,
            fund_life_years=3,
            investment_period_years=1,
            fees={"tiers": []},
            waterfall={"type": "american", "carry": 0.2, "hurdle": 0.08, "catch_up": 1.0},
            construction={"allocations": [{"stage": "seed", "share": 1, "initial_check": 1}]},
            **extra,
        )
    )


def test_fund_pays_deal_carry_and_claws_it_back_when_the_fund_loses() -> None:
    spec = _american()
    plan = build_plan(spec)
    winner = run_fund_cash(
        spec,
        plan,
        portfolio_flows(
            12,
            invested_initial={0: 200.0},
            gross_proceeds={4: 150.0, 11: 120.0},
            deal_carry={4: 10.0},
        ),
    )
    assert winner.gp_carry[0, 4] == pytest.approx(10.0)
    assert winner.gp_carry.sum() == pytest.approx(10.0)  # profit 70: 20 % is 14 ≥ 10
    loser = run_fund_cash(
        spec,
        plan,
        portfolio_flows(
            12,
            invested_initial={0: 200.0},
            gross_proceeds={4: 150.0, 11: 20.0},
            deal_carry={4: 10.0},
        ),
    )
    assert loser.gp_carry[0, 4] == pytest.approx(10.0)
    assert loser.clawback[0, -1] == pytest.approx(10.0)
    assert loser.gp_carry.sum() == pytest.approx(0.0, abs=1e-9)


def test_american_example_runs_in_both_engines() -> None:
    data = load_yaml(next(p for p in EXAMPLES if p.stem == "seed-fund")).model_dump(mode="json")
    data["waterfall"]["type"] = "american"
    spec = FundSpec.model_validate(data)
    summary = run_forecast(spec).summary
    assert summary["carry"] > 0
    result = simulate(spec, 1000, 3).to_dict()
    assert result["metrics"]["carry"]["mean"] > 0
