"""Deal-by-deal (American) waterfall in the engines, tied to the finance kernel."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_support import EXAMPLES, load_yaml, minimal_spec_json, portfolio_flows
from updog.finance import WaterfallPolicy, distribute
from updog.model.american import compounded_pref, deal_gp_share, quarterly_growth
from updog.model.construction import build_plan
from updog.model.forecast import run_forecast
from updog.model.fund_cash import run_fund_cash
from updog.model.spec import FundSpec
from updog.simulation import simulate


def _catch_up(carry: float) -> st.SearchStrategy[float]:
    """0 (no catch-up) or a rate above the carry (FundSpec refuses anything else)."""
    return st.one_of(st.just(0.0), st.floats(min(1.0, carry + 1e-6), 1.0))


@settings(max_examples=300, deadline=None)
@given(
    proceeds=st.floats(-1e6, 5e9, allow_nan=False),
    # Realistic magnitudes: at 1e-298 dollars float underflow meets the rule's jump at pref = 0.
    cost=st.one_of(st.just(0.0), st.floats(0.01, 1e9)),
    carry=st.floats(0.0, 0.5),
    hurdle=st.one_of(st.just(0.0), st.floats(1e-4, 0.2)),
    data=st.data(),
)
def test_flat_pref_split_equals_the_kernel(
    proceeds: float, cost: float, carry: float, hurdle: float, data: st.DataObject
) -> None:
    catch_up = data.draw(_catch_up(carry))
    pref = np.array([hurdle * cost])
    ours = float(deal_gp_share(np.array([proceeds]), np.array([cost]), pref, carry, catch_up)[0])
    policy = WaterfallPolicy.standard(
        Decimal(repr(carry)), Decimal(repr(hurdle)), Decimal(repr(catch_up))
    )
    kernel = float(distribute(policy, Decimal(repr(proceeds)), Decimal(repr(cost))).gp_exact)
    assert ours == pytest.approx(kernel, rel=1e-9, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(st.floats(1_000.0, 1e8), min_size=1, max_size=4),
    years=st.data(),
    multiple=st.floats(0.0, 20.0),
    carry=st.floats(0.05, 0.5),
    hurdle=st.floats(0.0, 0.2),
)
def test_compounded_pref_split_equals_the_kernel(
    amounts: list[float], years: st.DataObject, multiple: float, carry: float, hurdle: float
) -> None:
    """Contributions in whole years and 365-day years, so the model's quarters and the
    kernel's Actual/365 dates measure the same holding periods."""
    held = [years.draw(st.integers(0, 10)) for _ in amounts]
    exit_year = max(held) + years.draw(st.integers(1, 8))
    catch_up = years.draw(_catch_up(carry))
    start = date(2020, 1, 1)
    cost = float(sum(amounts))
    discounted = sum(
        a * quarterly_growth(hurdle) ** (-4 * y) for a, y in zip(amounts, held, strict=True)
    )
    pref = compounded_pref(np.array([discounted]), np.array([cost]), 4 * exit_year, hurdle)
    ours = float(
        deal_gp_share(np.array([multiple * cost]), np.array([cost]), pref, carry, catch_up)[0]
    )
    policy = WaterfallPolicy.standard(
        Decimal(repr(carry)), Decimal(repr(hurdle)), Decimal(repr(catch_up))
    )
    kernel = distribute(
        policy,
        Decimal(repr(multiple * cost)),
        sum((Decimal(repr(a)) for a in amounts), Decimal(0)),
        pref_basis="compounded",
        contributions=[
            (start + timedelta(days=365 * y), Decimal(repr(a)))
            for a, y in zip(amounts, held, strict=True)
        ],
        exit_date=start + timedelta(days=365 * exit_year),
    )
    assert ours == pytest.approx(float(kernel.gp_exact), rel=1e-7, abs=1e-4)


@given(
    amounts=st.lists(st.floats(1.0, 1e8), min_size=1, max_size=5),
    quarters=st.lists(st.integers(0, 40), min_size=5, max_size=5),
    wait=st.integers(4, 60),
    hurdle=st.floats(0.0, 0.2),
)
def test_compounded_pref_is_never_below_the_flat_one(
    amounts: list[float], quarters: list[int], wait: int, hurdle: float
) -> None:
    """Held at least a year, every contribution has earned at least the flat hurdle."""
    paid = quarters[: len(amounts)]
    cost = float(sum(amounts))
    discounted = sum(
        a * quarterly_growth(hurdle) ** (-t) for a, t in zip(amounts, paid, strict=True)
    )
    pref = compounded_pref(np.array([discounted]), np.array([cost]), max(paid) + wait, hurdle)
    assert float(pref[0]) >= hurdle * cost - 1e-9 * cost


def test_spec_example_deal() -> None:
    gp = deal_gp_share(
        np.array([1_500_000.0]), np.array([1_000_000.0]), np.array([80_000.0]), 0.2, 1.0
    )
    assert gp[0] == pytest.approx(100_000.0)


def test_pref_compounds_over_the_holding_period() -> None:
    """8 % a year on a deal held six years is (1.08^6 − 1) ≈ 58.7 % of its cost."""
    pref = compounded_pref(np.array([1_000_000.0]), np.array([1_000_000.0]), 24, 0.08)
    assert pref[0] == pytest.approx(1_000_000.0 * (1.08**6 - 1.0))
    assert pref[0] == pytest.approx(586_874.32, abs=0.01)


def test_a_catch_up_at_or_below_the_carry_is_refused() -> None:
    with pytest.raises(ValueError, match="catch-up"):
        deal_gp_share(np.array([2.0]), np.array([1.0]), np.array([0.1]), 0.2, 0.2)


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
