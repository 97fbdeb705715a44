"""Every public truth case (tests/fixtures/truth/*.json, copied from ../shared/truth-cases with
prose dropped) through the same adapter ``updog check-cases`` uses (updog.finance.cases).

Besides "every case passes", the mutation tests prove the comparison is not vacuous: changing
any single expected outcome field of any case makes that case fail.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from updog.finance.cases import (
    CaseFileError,
    detect_family,
    load_cases,
    run_case,
)

TRUTH = Path(__file__).resolve().parents[1] / "fixtures" / "truth"
EXPECTED_COUNTS = {
    "xirr": 36,
    "fees": 7,
    "waterfall": 9,
    "waterfall-ledger": 10,
    "moic": 8,
    "exit-recycling": 12,
    "lp-metrics": 5,
}
CASES: list[tuple[str, int, dict[str, Any]]] = [
    (family, i, case)
    for family in EXPECTED_COUNTS
    for i, case in enumerate(load_cases(TRUTH / f"{family}.json"))
    if isinstance(case, dict)
]


def _id(item: tuple[str, int, dict[str, Any]]) -> str:
    family, i, case = item
    return f"{family}:{case.get('id', case.get('scenario', i))}"


def test_fixtures_hold_every_public_case() -> None:
    for family, count in EXPECTED_COUNTS.items():
        assert len(load_cases(TRUTH / f"{family}.json")) == count, family


@pytest.mark.parametrize("item", CASES, ids=[_id(c) for c in CASES])
def test_family_is_detected_from_content(item: tuple[str, int, dict[str, Any]]) -> None:
    family, _, case = item
    assert detect_family(case) == family


@pytest.mark.parametrize("item", CASES, ids=[_id(c) for c in CASES])
def test_truth_case_passes(item: tuple[str, int, dict[str, Any]]) -> None:
    _, i, case = item
    outcome = run_case(case, i)
    assert outcome.passed, outcome.line()


def _expectation_key(case: dict[str, Any]) -> str:
    return "expected" if "expected" in case else "expectedOutput"


IGNORED = {"notes", "algorithm", "excelParity"}


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key not in IGNORED:
                yield from _leaves(value, (*path, key))
    elif isinstance(node, list) and node and not all(isinstance(x, (str, int)) for x in node):
        for i, value in enumerate(node):
            yield from _leaves(value, (*path, i))
    else:
        yield path, node


def _mutated(value: Any) -> Any:
    """A clearly different value of the same kind."""
    if value is None:
        return 12345.0
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + max(1.0, abs(value) * 0.5)
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return value + "-changed"
        return str(number + max(Decimal(1), abs(number) / 2))
    if isinstance(value, list):
        return [*value, 999]
    raise AssertionError(f"unexpected leaf {value!r}")


MUTATIONS = [
    (family, i, case, path)
    for family, i, case in CASES
    for path, _ in _leaves(case[_expectation_key(case)])
    # a bound (recycled_min) widened or a "tier" name changed is not a stricter expectation
    if not str(path[-1]).endswith(("_min", "_max"))
]


@pytest.mark.parametrize(
    "item",
    MUTATIONS,
    ids=[f"{_id(m[:3])}:{'.'.join(map(str, m[3]))}" for m in MUTATIONS],
)
def test_changing_any_expected_field_fails_the_case(
    item: tuple[str, int, dict[str, Any], tuple[Any, ...]],
) -> None:
    _, i, case, path = item
    mutated = copy.deepcopy(case)
    node = mutated[_expectation_key(mutated)]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = _mutated(node[path[-1]])
    outcome = run_case(mutated, i)
    assert not outcome.passed


def test_bounds_are_checked() -> None:
    case = next(c for f, _, c in CASES if c.get("scenario") == "L04-recycling-enabled")
    changed = copy.deepcopy(case)
    changed["expected"]["totals"]["recycled_max"] = 100_000
    outcome = run_case(changed)
    assert not outcome.passed
    assert "recycled_max" in outcome.line()


def test_unknown_input_field_fails_with_a_message() -> None:
    case = copy.deepcopy(next(c for f, _, c in CASES if f == "fees"))
    case["input"]["mysteryKnob"] = 3
    outcome = run_case(case)
    assert not outcome.passed
    assert "mysteryKnob" in (outcome.error or "")


def test_unknown_expected_field_fails() -> None:
    case = copy.deepcopy(next(c for f, _, c in CASES if f == "moic"))
    case["expected"]["sharpeRatio"] = 1.0
    outcome = run_case(case)
    assert not outcome.passed
    assert "sharpeRatio" in outcome.line()


def test_unknown_family_and_non_object_cases_fail() -> None:
    assert "family" in (run_case({"id": "x", "input": {"what": 1}}).error or "")
    assert not run_case(["not", "a", "case"]).passed


def test_shared_format_and_fixture_format_load_alike(tmp_path: Path) -> None:
    cases = load_cases(TRUTH / "waterfall.json")
    shared = tmp_path / "waterfall.json"
    shared.write_text(json.dumps(cases), encoding="utf-8")
    assert load_cases(shared) == cases


def test_unreadable_files_raise_case_file_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(CaseFileError, match="not valid JSON"):
        load_cases(bad)
    with pytest.raises(CaseFileError, match="cannot read"):
        load_cases(tmp_path / "missing.json")
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(CaseFileError, match="no list of cases"):
        load_cases(other)


def test_decimal_string_expectations_state_their_precision() -> None:
    """LPM-001's RVPI is 5/6 written to 6 places; one unit off in the 6th place fails."""
    case = copy.deepcopy(next(c for f, _, c in CASES if c.get("id") == "LPM-001"))
    assert case["expected"]["rvpi"] == "0.833333"
    assert run_case(case).passed
    case["expected"]["rvpi"] = "0.833334"
    assert not run_case(case).passed


def test_xirr_case_tolerance_is_relative_above_one() -> None:
    case = copy.deepcopy(
        next(c for f, _, c in CASES if c.get("id") == "xirr-13-leap-year-handling")
    )
    irr = case["expected"]["irr"]
    case["expected"]["irr"] = irr * (1 + 0.5e-7)
    assert run_case(case).passed
    case["expected"]["irr"] = irr * (1 + 5e-7)
    assert not run_case(case).passed


# --- adapter paths the public cases do not exercise ------------------------------------------


def _fee_case(**inp: Any) -> dict[str, Any]:
    return {
        "id": "FEE-X",
        "category": "management_fee",
        "input": {"fundSize": 100, "feeRate": 2.0, "fundTerm": 4, **inp},
        "expectedOutput": {},
        "tolerance": 0.01,
    }


def test_fee_holidays_step_downs_and_net_basis_through_the_adapter() -> None:
    case = _fee_case(
        basis="called_net_of_returns",
        stepDowns=[{"afterYear": 2, "newRate": 1.0}],
        feeHoliday={"startYear": 3, "endYear": 3},
        calledCapitalSchedule=[50, 80, 80, 120],
        returnedCapitalSchedule=[0, 30, 40, 10],
    )
    case["expectedOutput"] = {
        "yearlyFees": [1.0, 1.0, 0.0, 1.0],  # year 4: min(120 − 10, 100) × 1 %
        "totalFees": 3.0,
        "averageAnnualFee": 0.75,
    }
    assert run_case(case).passed, run_case(case).line()


def test_one_year_fund_through_the_adapter() -> None:
    case = _fee_case(fundTerm=1, basis="committed", stepDown={"afterYear": 5, "newRate": 1.0})
    case["expectedOutput"] = {"yearlyFees": [2.0], "totalFees": 2.0, "averageAnnualFee": 2.0}
    assert run_case(case).passed, run_case(case).line()


def test_waterfall_partial_catch_up_follows_spec_through_the_adapter() -> None:
    case = copy.deepcopy(
        next(c for f, _, c in CASES if str(c.get("scenario", "")).startswith("04-"))
    )
    case["input"]["policy"]["tiers"][2]["catchUpRate"] = "0.5"
    case["expected"] = {
        "lpDistribution": "1400000.00",
        "gpDistribution": "100000.00",
        "totalDistributed": "1500000.00",
        "breakdown": [
            {"tier": "return_of_capital", "lpAmount": "1000000.00", "gpAmount": "0.00"},
            {"tier": "preferred_return", "lpAmount": "80000.00", "gpAmount": "0.00"},
            {"tier": "gp_catch_up", "lpAmount": "26666.67", "gpAmount": "26666.67"},
            {"tier": "carry", "lpAmount": "293333.33", "gpAmount": "73333.33"},
        ],
    }
    assert run_case(case).passed, run_case(case).line()


def test_ledger_clawback_below_cost_through_the_adapter() -> None:
    case = {
        "scenario": "LX",
        "input": {
            "config": {"carryPct": 0.2, "clawbackEnabled": True},
            "contributions": [{"quarter": 1, "amount": 1e6}, {"quarter": 5, "amount": 1e6}],
            "exits": [{"quarter": 4, "grossProceeds": 1.5e6}, {"quarter": 8, "grossProceeds": 0}],
        },
        "expected": {
            "totals": {"gpCarryTotal": 100000, "gpClawback": 100000, "gpCarryNet": 0},
            "rows_count": 3,
            "clawback_row": {"quarter": 8, "gpCarry": -100000, "lpCapitalReturn": 100000},
        },
    }
    assert run_case(case).passed, run_case(case).line()


def test_xirr_case_in_schema_form() -> None:
    case = {
        "id": "xirr-schema",
        "cashflows": [
            {"date": "2020-01-01", "amount": -10_000_000},
            {"date": "2025-01-01", "amount": 25_000_000},
        ],
        "expectedIRR": 0.20103407784113647,
        "tolerance": 1e-7,
        "algorithm": "Bisection",
        "category": "basic",
    }
    assert detect_family(case) == "xirr"
    assert run_case(case).passed, run_case(case).line()
