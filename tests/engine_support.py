"""Helpers shared by the engine tests: fund files in the repository and minimal specs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from updog.model.fund_cash import PortfolioFlows
from updog.model.spec import FundSpec
from updog.model.validation import load_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
FIXTURE_FUNDS = Path(__file__).resolve().parent / "fixtures" / "funds"


def load_yaml(path: Path) -> FundSpec:
    return load_spec(yaml.safe_load(path.read_text(encoding="utf-8")))


def minimal_spec_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "Test Fund",
        "fund_size": 50_000_000,
        "vintage_year": 2025,
        "model_inputs_as_of": "2025-01-01",
    }
    data.update(overrides)
    return data


def portfolio_flows(quarters: int, **series: dict[int, float]) -> PortfolioFlows:
    """Hand-made portfolio flows for one path: ``name={quarter: dollars}`` per series."""
    arrays = {}
    for name in (
        "invested_initial",
        "invested_follow_on",
        "gross_proceeds",
        "nav",
        "cost_unrealised",
        "deal_carry",
    ):
        a = np.zeros((1, quarters))
        for k, v in series.get(name, {}).items():
            a[0, k] = v
        arrays[name] = a
    return PortfolioFlows(**arrays)
