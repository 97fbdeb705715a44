"""Every XIRR truth case (tests/fixtures/truth/xirr.json, copied from the shared truth file).

Per SPEC §3.1: day count Actual/365.25, the case's solver options (strategy, tolerance,
maxIterations), the case's tolerance for the comparison (else 1e-9 relative), and None-ness.
The case tolerance is applied as ``|actual - expected| <= tol * max(1, |expected|)``: absolute
for rates below 100 %, relative above (case 05 expects -1.3e-13, a zero with round-off).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from updog.finance import xirr, xirr_result

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "truth" / "xirr.json"
CASES: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))["cases"]
DEFAULT_REL_TOL = 1e-9


def _inputs(case: dict[str, Any]) -> tuple[list[datetime], list[float], dict[str, Any]]:
    dates = [datetime.fromisoformat(flow["date"]) for flow in case["cashflows"]]
    amounts = [float(flow["amount"]) for flow in case["cashflows"]]
    config = case["config"]
    options: dict[str, Any] = {"day_count": "actual/365.25"}
    if "strategy" in config:
        options["strategy"] = config["strategy"].lower()
    if "tolerance" in config:
        options["tolerance"] = config["tolerance"]
    if "maxIterations" in config:
        options["max_iterations"] = config["maxIterations"]
    return dates, amounts, options


def test_fixture_has_all_36_cases() -> None:
    assert len(CASES) == 36
    assert len({case["id"] for case in CASES}) == 36


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_truth_case(case: dict[str, Any]) -> None:
    dates, amounts, options = _inputs(case)
    expected = case["expected"]["irr"]

    actual = xirr(dates, amounts, **options)

    if expected is None:
        assert actual is None
        return
    assert actual is not None
    tolerance = case["config"].get("tolerance")
    if tolerance is None:
        assert actual == pytest.approx(expected, rel=DEFAULT_REL_TOL)
    else:
        assert abs(actual - expected) <= tolerance * max(1.0, abs(expected))


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_truth_case_converged_flag(case: dict[str, Any]) -> None:
    dates, amounts, options = _inputs(case)
    result = xirr_result(dates, amounts, **options)
    assert result.converged is case["expected"]["converged"]
    assert result.converged is (result.rate is not None)


# Cases with a non-zero expected rate (case 05 expects a round-off zero, -1.3e-13).
NONZERO = [
    case
    for case in CASES
    if case["expected"]["irr"] is not None and abs(case["expected"]["irr"]) > 1e-9
]


@pytest.mark.parametrize("case", NONZERO, ids=[case["id"] for case in NONZERO])
def test_truth_case_to_default_precision(case: dict[str, Any]) -> None:
    """Stricter than the contract: every non-zero rate also matches to 1e-9 relative."""
    dates, amounts, options = _inputs(case)
    expected = case["expected"]["irr"]
    actual = xirr(dates, amounts, **options)
    assert actual == pytest.approx(expected, rel=DEFAULT_REL_TOL)
