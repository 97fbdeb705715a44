"""Engine guards and the fault injector: every injected fault is caught by a guard."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from engine_support import EXAMPLES, load_yaml
from updog.model.faults import FaultPlan, InjectedFault
from updog.model.forecast import run_forecast
from updog.model.guards import EngineGuardError, check_forecast, check_simulation
from updog.simulation import simulate

SEED_FUND = next(p for p in EXAMPLES if p.stem == "seed-fund")


@pytest.fixture(scope="module")
def spec() -> Any:
    return load_yaml(SEED_FUND)


@pytest.fixture(scope="module")
def good_simulation(spec: Any) -> dict[str, Any]:
    return simulate(spec, 500, 1).to_dict()


@pytest.fixture(scope="module")
def good_forecast(spec: Any) -> dict[str, Any]:
    return run_forecast(spec).to_dict()


def test_clean_results_pass(
    good_simulation: dict[str, Any], good_forecast: dict[str, Any], spec: Any
) -> None:
    check_simulation(good_simulation)
    check_forecast(good_forecast, spec.fund_size)


@pytest.mark.parametrize("point", ["block", "reduce"])
@pytest.mark.parametrize("kind", ["nan", "inf", "negative_nav"])
def test_simulation_guards_catch_corrupt_values(spec: Any, point: str, kind: str) -> None:
    with pytest.raises(EngineGuardError) as info:
        simulate(spec, 300, 1, faults=FaultPlan.parse(f"{point}:{kind}"))
    assert info.value.code == "ENGINE_GUARD_FAILED"
    assert info.value.reason


@pytest.mark.parametrize("kind", ["nan", "inf", "negative_nav"])
def test_forecast_guards_catch_corrupt_values(spec: Any, kind: str) -> None:
    with pytest.raises(EngineGuardError):
        run_forecast(spec, faults=FaultPlan.parse(f"forecast:{kind}"))


@pytest.mark.parametrize("point", ["block", "reduce", "forecast"])
def test_raise_fault_surfaces(spec: Any, point: str) -> None:
    plan = FaultPlan.parse(f"{point}:raise")
    with pytest.raises(InjectedFault):
        if point == "forecast":
            run_forecast(spec, faults=plan)
        else:
            simulate(spec, 200, 1, faults=plan)


def test_delay_fault_delays_but_changes_nothing(spec: Any) -> None:
    clean = simulate(spec, 200, 4).to_json()
    assert simulate(spec, 200, 4, faults=FaultPlan.parse("block:delay=0.01")).to_json() == clean


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["metrics"]["tvpi"].update(p50=r["metrics"]["tvpi"]["p95"] + 1), "monotone"),
        (lambda r: r["probabilities"].update(tvpi_below_1=1.5), "probability"),
        (lambda r: r["metrics"]["dpi"].update(sd=-1.0), "dispersion"),
        (lambda r: r["metrics"]["carry"].update(mean=math.nan), "non-finite"),
        (lambda r: r["metrics"]["tvpi"].update(count=r["runs"] - 3), "non-finite tvpi"),
        (lambda r: r["histograms"]["tvpi"].update(overflow=10**6), "histogram"),
        (lambda r: r["deal_outcomes"].update(written_off=0.99), "distribution"),
        (lambda r: r["fan_chart"]["nav"]["p10"].__setitem__(5, 1e15), "fan chart"),
    ],
)
def test_each_simulation_check_fires(
    good_simulation: dict[str, Any], mutate: Any, message: str
) -> None:
    bad = copy.deepcopy(good_simulation)
    mutate(bad)
    with pytest.raises(EngineGuardError, match=message):
        check_simulation(bad)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f["quarters"][3].update(nav=-5.0), "negative NAV"),
        (lambda f: f["quarters"][3].update(paid_in=0.0), "paid-in falls"),
        (lambda f: f["quarters"][-1].update(paid_in=1e12), "commitment"),
        (lambda f: f["quarters"][2].update(fees=f["quarters"][2]["fees"] + 1), "sources"),
        (
            lambda f: f["quarters"][30].update(gp_carry=f["quarters"][30]["gp_carry"] + 1),
            "distributions",
        ),
        (lambda f: f["quarters"][10].update(dpi=9.0), "DPI above TVPI"),
    ],
)
def test_each_forecast_check_fires(
    good_forecast: dict[str, Any], spec: Any, mutate: Any, message: str
) -> None:
    bad = copy.deepcopy(good_forecast)
    mutate(bad)
    with pytest.raises(EngineGuardError, match=message):
        check_forecast(bad, spec.fund_size)


@pytest.mark.parametrize(
    "text", ["nowhere:nan", "block:explode", "block:delay=abc", "block:delay=99999"]
)
def test_bad_fault_specs_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        FaultPlan.parse(text)


def test_empty_fault_spec_injects_nothing() -> None:
    assert FaultPlan.parse("").faults == {}
