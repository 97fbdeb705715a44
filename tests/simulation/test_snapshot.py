"""Seeded snapshot of the engines (practice 6): a change to any number the engines produce
for a fixed fund and seed must be deliberate — bump ``updog.ENGINE_VERSION`` and refresh the
snapshot with ``UPDOG_REFRESH_SNAPSHOTS=1 pytest tests/simulation/test_snapshot.py``."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from engine_support import EXAMPLES, load_yaml
from updog import ENGINE_VERSION
from updog.model.forecast import run_forecast
from updog.simulation import simulate

SNAPSHOT = Path(__file__).resolve().parents[1] / "fixtures" / "snapshots" / "seed-fund.json"
SEED_FUND = next(p for p in EXAMPLES if p.stem == "seed-fund")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _current() -> dict[str, object]:
    spec = load_yaml(SEED_FUND)
    forecast = run_forecast(spec).to_dict()
    simulation = simulate(spec, 2000, 42).to_dict()
    return {
        "engine_version": ENGINE_VERSION,
        "forecast_sha256": _digest(json.dumps(forecast, sort_keys=True)),
        "simulation_sha256": _digest(json.dumps(simulation, sort_keys=True)),
        "forecast_tvpi": forecast["summary"]["tvpi"],
        "forecast_net_irr": forecast["summary"]["net_irr"],
        "simulation_tvpi_p50": simulation["metrics"]["tvpi"]["p50"],
        "simulation_tvpi_mean": simulation["metrics"]["tvpi"]["mean"],
    }


def test_engine_output_matches_the_snapshot() -> None:
    current = _current()
    if os.environ.get("UPDOG_REFRESH_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        pytest.skip("snapshot refreshed")
    expected = json.loads(SNAPSHOT.read_text())
    numbers = [
        k
        for k in expected
        if k.startswith(("forecast_", "simulation_")) and not k.endswith("sha256")
    ]
    same_numbers = all(current[k] == pytest.approx(expected[k], rel=1e-9) for k in numbers)
    if current["engine_version"] == expected["engine_version"] and same_numbers:
        # Identical to 1e-9; the digests may still differ in the last bits of some float on a
        # CPU with other vector instructions, which is not a change of the engine.
        return
    if current != expected:
        assert current["engine_version"] != expected["engine_version"], (
            "the engines' numbers changed but ENGINE_VERSION did not: bump it and refresh the "
            f"snapshot. expected {expected}, got {current}"
        )
        pytest.fail(f"ENGINE_VERSION is new ({current['engine_version']}); refresh the snapshot")
