"""Model depth: common random numbers, the reserve sweep, the market factor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from engine_support import EXAMPLES, FIXTURE_FUNDS, load_yaml
from updog.cli import main
from updog.model.construction import build_plan
from updog.model.forecast import run_forecast
from updog.model.spec import FundSpec
from updog.simulation import engine, simulate
from updog.simulation.sampling import BlockStreams
from updog.simulation.sweep import reserve_sweep, with_reserve_ratio

SEED_FUND = next(p for p in EXAMPLES if p.stem == "seed-fund")


def _with_market(spec: FundSpec, volatility: float) -> FundSpec:
    data = spec.model_dump(mode="json")
    data["market"] = {"volatility": volatility}
    return FundSpec.model_validate(data)


def _roughness(values: list[float]) -> float:
    return float(np.sum(np.diff(values, n=2) ** 2))


@pytest.mark.slow
def test_common_random_numbers_make_the_sweep_smooth() -> None:
    spec = load_yaml(SEED_FUND)
    ratios = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55)
    same = [p["tvpi_p50"] for p in reserve_sweep(spec, 2000, 7, ratios)["points"]]
    fresh = [
        simulate(with_reserve_ratio(spec, r), 2000, 1000 + i).to_dict()["metrics"]["tvpi"]["p50"]
        for i, r in enumerate(ratios)
    ]
    assert _roughness(same) < _roughness(fresh)


def test_sweep_points_carry_standard_errors() -> None:
    result = reserve_sweep(load_yaml(SEED_FUND), 500, 3, (0.2, 0.7))
    assert [p["reserve_ratio"] for p in result["points"]] == [0.2, 0.7]
    assert all(p["tvpi_p50_se"] > 0 and p["tvpi_mean_se"] > 0 for p in result["points"])
    with pytest.raises(ValueError):
        reserve_sweep(load_yaml(SEED_FUND), 500, 3, (0.9,))


def test_a_company_keeps_its_fate_when_the_portfolio_changes() -> None:
    """Company streams are keyed by (block, allocation, planned or extra, ordinal): adding
    companies (a smaller reserve, more initial checks) leaves every existing company's random
    numbers unchanged, wherever it now sits in the entry order."""
    spec = load_yaml(SEED_FUND)
    few_plan = build_plan(with_reserve_ratio(spec, 0.7))
    many_plan = build_plan(with_reserve_ratio(spec, 0.2))
    few_keys = [tuple(k) for k in few_plan.companies.stream_key]
    many_keys = [tuple(k) for k in many_plan.companies.stream_key]
    assert len(many_keys) > len(few_keys) and set(few_keys) <= set(many_keys)
    block = np.random.SeedSequence(5, spawn_key=(0,))
    few, _ = BlockStreams(block, few_plan, 0.0).take(50)
    many, _ = BlockStreams(block, many_plan, 0.0).take(50)
    for c, key in enumerate(few_keys):
        assert np.array_equal(few[c], many[many_keys.index(key)])


@pytest.mark.slow
def test_slicing_a_block_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _with_market(load_yaml(SEED_FUND), 0.4)
    whole = simulate(spec, 1500, 21).to_json()
    monkeypatch.setattr(engine, "SLICE_BUDGET_BYTES", 1)  # one path per slice
    assert simulate(spec, 1500, 21).to_json() == whole


def test_market_factor_widens_the_spread_but_keeps_the_mean() -> None:
    spec = load_yaml(FIXTURE_FUNDS / "linear.yaml")
    calm = simulate(spec, 6000, 11).to_dict()
    stormy = simulate(_with_market(spec, 0.6), 6000, 11).to_dict()

    def spread(r: dict[str, Any]) -> float:
        return float(r["metrics"]["gross_multiple"]["sd"])

    assert spread(stormy) > 1.1 * spread(calm)
    assert stormy["metrics"]["gross_multiple"]["p5"] < calm["metrics"]["gross_multiple"]["p5"]
    expected = run_forecast(spec).summary["gross_proceeds"]
    mean = stormy["means"]["gross_proceeds"]
    assert abs(mean["mean"] - expected) <= 4 * mean["se"]


def test_market_volatility_is_validated() -> None:
    spec = load_yaml(SEED_FUND)
    data = spec.model_dump(mode="json")
    data["market"] = {"volatility": 5}
    with pytest.raises(ValueError):
        FundSpec.model_validate(data)


def test_sweep_command() -> None:
    result = CliRunner().invoke(main, ["sweep", str(SEED_FUND), "--runs", "300", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "0.20" in result.output and "0.70" in result.output
