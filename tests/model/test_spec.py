"""FundSpec validation: every rule, good and bad, all errors at once, JSON Pointer paths."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest

from engine_support import EXAMPLES, load_yaml, minimal_spec_json
from updog.model.spec import (
    FundSpec,
    SpecError,
    bounded_pareto_mean,
    expected_multiple,
    present_field_issues,
    spec_hash,
    validate_draft,
)
from updog.model.validation import load_spec, validate_publish


def test_minimal_spec_publishes_with_documented_defaults() -> None:
    spec, errors, warnings = validate_publish(minimal_spec_json())
    # The default ladder leaves about a fifth of the value to the end-of-term sale (venture
    # funds still hold 30–55 % of their value at year 10–12: Cambridge Associates).
    assert errors == [] and [w["code"] for w in warnings] == ["END_OF_TERM_VALUE_HIGH"]
    assert spec is not None
    assert spec.fund_life_years == 10 and spec.investment_period_years == 5
    assert spec.fees.tiers[0].rate == 0.02 and spec.fees.tiers[0].basis == "committed"
    assert spec.waterfall.carry == 0.20 and spec.waterfall.hurdle == 0.08
    assert spec.waterfall.catch_up == 1.0 and spec.waterfall.type == "european"
    assert spec.recycling.enabled is False and spec.recycling.cap_ratio == 0.15
    assert spec.construction.reserve_ratio == 0.4 and spec.construction.mode == "derived"
    assert spec.construction.unused_reserves == "redeploy"
    assert spec.extension_years == 2 and spec.end_of_term.policy == "secondary_sale"
    assert spec.end_of_term.discount == 0.35 and spec.market.volatility == 0.30
    assert spec.first_close_date.isoformat() == "2025-01-01"
    assert spec.horizon_quarters == 48 and spec.life_quarters == 40


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_examples_are_valid(path: Any) -> None:
    spec = load_yaml(path)
    assert spec.fund_size > 0


def _spec_with(mutate: Any) -> dict[str, Any]:
    data = minimal_spec_json()
    data["stages"] = [
        {
            "name": "seed",
            "round_size": 3e6,
            "post_money": 15e6,
            "graduation_rate": 0.4,
            "exit_rate": 0.1,
        },
        {
            "name": "series-a",
            "round_size": 10e6,
            "post_money": 50e6,
            "graduation_rate": 0.0,
            "exit_rate": 0.6,
        },
    ]
    data["construction"] = {
        "allocations": [{"stage": "seed", "share": 1.0, "initial_check": 1e6}],
    }
    mutate(data)
    return data


def _set(pointer: str, value: Any) -> Any:
    def mutate(data: dict[str, Any]) -> None:
        parts = pointer.strip("/").split("/")
        node: Any = data
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


BAD_CASES = [
    ("/fund_size", 0, "/fund_size", "OUT_OF_RANGE"),
    ("/fund_size", -5, "/fund_size", "OUT_OF_RANGE"),
    ("/fund_size", "lots", "/fund_size", "WRONG_TYPE"),
    ("/fund_size", "5e7", "/fund_size", "WRONG_TYPE"),
    ("/fund_size", True, "/fund_size", "WRONG_TYPE"),
    ("/fund_size", 1e14, "/fund_size", "OUT_OF_RANGE"),
    ("/vintage_year", "2025", "/vintage_year", "WRONG_TYPE"),
    ("/name", "bad\x00name", "/name", "INVALID_CHARACTERS"),
    ("/model_inputs_as_of", 0, "/model_inputs_as_of", "INVALID_DATE"),
    ("/vintage_year", 1999, "/vintage_year", "OUT_OF_RANGE"),
    ("/vintage_year", 2101, "/vintage_year", "OUT_OF_RANGE"),
    (
        "/model_inputs_as_of",
        "yesterday",
        "/model_inputs_as_of",
        "INVALID_DATE",
    ),
    ("/name", "", "/name", "TOO_SHORT"),
    ("/fund_life_years", 21, "/fund_life_years", "OUT_OF_RANGE"),
    ("/fund_life_years", 0, "/fund_life_years", "OUT_OF_RANGE"),
    ("/investment_period_years", 11, "/investment_period_years", "OUT_OF_RANGE"),
    ("/first_close", "2024-06-30", "/first_close", "FIRST_CLOSE_OUTSIDE_VINTAGE"),
    ("/fees/tiers", [{"rate": 0.06}], "/fees/tiers/0/rate", "OUT_OF_RANGE"),
    ("/fees/tiers", [{"rate": -0.01}], "/fees/tiers/0/rate", "OUT_OF_RANGE"),
    ("/fees/tiers", [{"basis": "gross"}], "/fees/tiers/0/basis", "NOT_ALLOWED"),
    (
        "/fees/tiers",
        [{"start_year": 5, "end_year": 3}],
        "/fees/tiers/0/end_year",
        "END_BEFORE_START",
    ),
    (
        "/fees/tiers",
        [{"start_year": 1, "end_year": 5}, {"start_year": 5, "end_year": 10}],
        "/fees/tiers/1/start_year",
        "TIERS_OVERLAP_OR_UNORDERED",
    ),
    (
        "/expenses",
        [{"category": "audit", "annual_amount": -1}],
        "/expenses/0/annual_amount",
        "OUT_OF_RANGE",
    ),
    ("/waterfall/carry", 0.6, "/waterfall/carry", "OUT_OF_RANGE"),
    ("/waterfall/hurdle", 0.25, "/waterfall/hurdle", "OUT_OF_RANGE"),
    ("/waterfall/catch_up", 1.5, "/waterfall/catch_up", "OUT_OF_RANGE"),
    ("/waterfall/type", "asian", "/waterfall/type", "NOT_ALLOWED"),
    ("/recycling/cap_ratio", 0.3, "/recycling/cap_ratio", "OUT_OF_RANGE"),
    ("/stages/0/graduation_rate", 0.95, "/stages/0/graduation_rate", "RATES_EXCEED_ONE"),
    ("/stages/0/round_size", 20e6, "/stages/0/round_size", "ROUND_ABOVE_POST_MONEY"),
    ("/stages/1/graduation_rate", 0.2, "/stages/1/graduation_rate", "LAST_STAGE_GRADUATES"),
    ("/stages/1/name", "seed", "/stages/1/name", "DUPLICATE_STAGE"),
    (
        "/stages/0/outcomes",
        {"bands": [{"min_multiple": 0, "max_multiple": 1, "probability": 0.5}]},
        "/stages/0/outcomes/bands",
        "PROBABILITIES_NOT_ONE",
    ),
    (
        "/stages/0/outcomes",
        {
            "bands": [
                {"min_multiple": 1, "max_multiple": 3, "probability": 0.5},
                {"min_multiple": 2, "max_multiple": 9, "probability": 0.5},
            ]
        },
        "/stages/0/outcomes/bands/1/min_multiple",
        "BANDS_OVERLAP_OR_UNORDERED",
    ),
    (
        "/stages/0/outcomes",
        {"bands": [{"min_multiple": 3, "max_multiple": 3, "probability": 1}]},
        "/stages/0/outcomes/bands/0/max_multiple",
        "EMPTY_BAND",
    ),
    (
        "/stages/0/outcomes",
        {"bands": [{"min_multiple": 0, "max_multiple": 3, "probability": 1}]},
        "/stages/0/outcomes/bands/0/min_multiple",
        "TAIL_NEEDS_POSITIVE_MIN",
    ),
    ("/construction/allocations/0/share", 0.5, "/construction/allocations", "SHARES_NOT_ONE"),
    (
        "/construction/allocations/0/stage",
        "series-z",
        "/construction/allocations/0/stage",
        "UNKNOWN_STAGE",
    ),
    (
        "/construction/allocations/0/initial_check",
        60e6,
        "/construction/allocations/0/initial_check",
        "CHECK_ABOVE_FUND_SIZE",
    ),
    (
        "/construction/allocations/0/initial_check",
        20e6,
        "/construction/allocations/0/initial_check",
        "CHECK_ABOVE_POST_MONEY",
    ),
    (
        "/construction/allocations/0/follow_on",
        "fixed",
        "/construction/allocations/0/follow_on_check",
        "FOLLOW_ON_CHECK_REQUIRED",
    ),
    ("/construction/reserve_ratio", 0.9, "/construction/reserve_ratio", "OUT_OF_RANGE"),
    ("/construction/deployment_curve", "sideways", "/construction/deployment_curve", "NOT_ALLOWED"),
    (
        "/sectors",
        [{"name": "a", "share": 0.7}, {"name": "b", "share": 0.7}],
        "/sectors",
        "SECTOR_SHARES_ABOVE_ONE",
    ),
    ("/surprise", 1, "/surprise", "UNKNOWN_FIELD"),
]


@pytest.mark.parametrize(
    ("pointer", "value", "path", "code"), BAD_CASES, ids=[f"{c[3]}:{c[0]}" for c in BAD_CASES]
)
def test_each_rule_rejects_with_its_path(pointer: str, value: Any, path: str, code: str) -> None:
    spec, errors, _ = validate_publish(_spec_with(_set(pointer, value)))
    assert spec is None
    assert {"path": path, "code": code} in [{"path": e["path"], "code": e["code"]} for e in errors]
    assert all(e["message"] for e in errors)


def test_the_base_of_the_bad_cases_is_valid() -> None:
    spec, errors, _ = validate_publish(_spec_with(lambda d: None))
    assert errors == [] and spec is not None


def test_all_errors_are_reported_at_once() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["fund_size"] = -1
        d["stages"][0]["graduation_rate"] = 0.99
        d["fees"] = {"tiers": [{"rate": 0.2}]}
        d["waterfall"] = {"carry": 0.9}

    _, errors, _ = validate_publish(_spec_with(mutate))
    paths = {e["path"] for e in errors}
    assert {
        "/fund_size",
        "/stages/0/graduation_rate",
        "/fees/tiers/0/rate",
        "/waterfall/carry",
    } <= paths


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected(value: float) -> None:
    _, errors, _ = validate_publish(minimal_spec_json(fund_size=value))
    assert [e["path"] for e in errors] == ["/fund_size"]


def test_missing_required_fields_block_publish_but_not_a_draft() -> None:
    _, errors, _ = validate_publish({"name": "Half done"})
    assert {e["path"] for e in errors} == {"/fund_size", "/vintage_year", "/model_inputs_as_of"}
    assert all(e["code"] == "REQUIRED" for e in errors)
    assert validate_draft({"name": "Half done"}) == []
    assert validate_draft({}) == []


def test_a_draft_still_checks_types_and_ranges() -> None:
    issues = validate_draft({"fund_size": -3, "waterfall": {"carry": 2}})
    assert {i["path"] for i in issues} == {"/fund_size", "/waterfall/carry"}
    assert validate_draft([1, 2]) == [
        {"path": "", "code": "NOT_AN_OBJECT", "message": "a fund spec must be a JSON object"}
    ]


def test_a_draft_without_vintage_does_not_complain_about_first_close() -> None:
    assert validate_draft({"first_close": "2031-03-01"}) == []


def test_warnings_do_not_block() -> None:
    ratio, mode = (
        _set("/construction/reserve_ratio", 0.1),
        _set("/construction/mode", "reserve_ratio"),
    )
    data = _spec_with(lambda d: (ratio(d), mode(d)))
    spec, errors, warnings = validate_publish(data)
    assert spec is not None and errors == []
    assert "RESERVE_RATIO_UNUSUAL" in [w["code"] for w in warnings]


def test_a_reserve_ratio_is_ignored_by_a_derived_construction_and_says_so() -> None:
    ratio, mode = (
        _set("/construction/reserve_ratio", 0.5),
        _set("/construction/mode", "derived"),
    )
    spec, errors, warnings = validate_publish(_spec_with(lambda d: (ratio(d), mode(d))))
    assert spec is not None and errors == [] and spec.construction.mode == "derived"
    assert "RESERVE_RATIO_IGNORED" in [w["code"] for w in warnings]


def test_a_fund_written_with_a_reserve_ratio_and_no_mode_keeps_its_reserve_ratio() -> None:
    # Funds from before the derived mode (and v1 clients that never send a mode) asked for a
    # reserve ratio: they keep that construction rather than being silently re-planned.
    spec, errors, warnings = validate_publish(_spec_with(_set("/construction/reserve_ratio", 0.5)))
    assert spec is not None and errors == []
    assert spec.construction.mode == "reserve_ratio" and spec.construction.reserve_ratio == 0.5
    assert "RESERVE_RATIO_IGNORED" not in [w["code"] for w in warnings]
    assert validate_publish(_spec_with(lambda d: None))[0].construction.mode == "derived"


@pytest.mark.parametrize(("carry", "catch_up"), [(0.2, 0.1), (0.2, 0.2), (0.3, 0.25)])
def test_a_catch_up_at_or_below_the_carry_is_refused(carry: float, catch_up: float) -> None:
    data = minimal_spec_json(waterfall={"carry": carry, "catch_up": catch_up})
    spec, errors, _ = validate_publish(data)
    assert spec is None
    assert [(e["path"], e["code"]) for e in errors] == [
        ("/waterfall/catch_up", "CATCH_UP_NOT_ABOVE_CARRY")
    ]
    assert "catch-up" in errors[0]["message"]


@pytest.mark.parametrize(("carry", "catch_up"), [(0.2, 0.0), (0.2, 0.25), (0.0, 0.0), (0.2, 1.0)])
def test_no_catch_up_or_one_above_the_carry_is_valid(carry: float, catch_up: float) -> None:
    assert validate_draft(minimal_spec_json(waterfall={"carry": carry, "catch_up": catch_up})) == []


def test_load_spec_raises_with_every_issue() -> None:
    with pytest.raises(SpecError) as info:
        load_spec({"name": "x"})
    assert len(info.value.issues) == 3
    assert "/fund_size" in str(info.value)


def test_spec_hash_ignores_key_order_and_sees_values() -> None:
    a = minimal_spec_json()
    b = dict(reversed(list(a.items())))
    assert spec_hash(a) == spec_hash(b)
    c = copy.deepcopy(a)
    c["fund_size"] = 50_000_001
    assert spec_hash(a) != spec_hash(c)


def test_expected_multiple_of_bands() -> None:
    spec = FundSpec.model_validate(minimal_spec_json())
    seed = spec.stages[1].outcomes
    # 0.7·0.5 + 0.15·2 + 0.10·6.5 + 0.04·30 + 0.01·E[Pareto(50, 200, 1.16)]
    tail = bounded_pareto_mean(50, 200, 1.16)
    assert 50 < tail < 200
    assert expected_multiple(seed) == pytest.approx(0.35 + 0.3 + 0.65 + 1.2 + 0.01 * tail)
    # α = 1 limit and a numeric check of the formula
    assert bounded_pareto_mean(1, 10, 1.0) == pytest.approx(
        bounded_pareto_mean(1, 10, 1.0 + 1e-9), rel=1e-6
    )


def test_one_bad_field_hides_no_other_problem() -> None:
    """The tester's case: a stage error used to hide every cross-field error."""

    def mutate(d: dict[str, Any]) -> None:
        d["stages"][0]["graduation_rate"] = 0.95
        d["fund_life_years"] = 3
        d["investment_period_years"] = 5
        d["construction"]["allocations"][0]["share"] = 0.5
        d["stages"][1]["graduation_rate"] = 0.1
        d["fund_size"] = -1

    _, errors, _ = validate_publish(_spec_with(mutate))
    codes = {(e["path"], e["code"]) for e in errors}
    assert codes >= {
        ("/stages/0/graduation_rate", "RATES_EXCEED_ONE"),
        ("/investment_period_years", "PERIOD_EXCEEDS_LIFE"),
        ("/construction/allocations", "SHARES_NOT_ONE"),
        ("/stages/1/graduation_rate", "LAST_STAGE_GRADUATES"),
        ("/fund_size", "OUT_OF_RANGE"),
    }
    # A rule never runs on a value that is itself invalid: no CHECK_ABOVE_FUND_SIZE here.
    assert not any(e["code"] == "CHECK_ABOVE_FUND_SIZE" for e in errors)


def test_a_draft_may_be_incomplete_at_any_depth() -> None:
    draft = {"name": "partial", "stages": [{"name": "seed", "exit_rate": 0.2}]}
    assert validate_draft(draft) == []
    bad = {"stages": [{"name": "seed", "graduation_rate": 1.2}]}
    assert [i["path"] for i in validate_draft(bad)] == ["/stages/0/graduation_rate"]


def test_an_evergreen_horizon_must_cover_the_investment_period() -> None:
    spec, errors, _ = validate_publish(minimal_spec_json(evergreen=True, horizon_years=4))
    assert spec is None
    assert [(e["path"], e["code"]) for e in errors] == [
        ("/horizon_years", "PERIOD_EXCEEDS_HORIZON")
    ]


@pytest.mark.parametrize("end_year", [None, "missing"])
def test_a_fee_tier_without_end_year_runs_to_the_end_and_overlaps_a_later_tier(
    end_year: Any,
) -> None:
    first: dict[str, Any] = {"rate": 0.02, "basis": "committed"}
    if end_year != "missing":
        first["end_year"] = end_year
    data = minimal_spec_json(fees={"tiers": [first, {"rate": 0.015, "start_year": 6}]})
    errors = present_field_issues(data)
    assert [(e["path"], e["code"]) for e in errors] == [
        ("/fees/tiers/1/start_year", "TIERS_OVERLAP_OR_UNORDERED")
    ]
    assert "without end_year runs to the end of the life" in errors[0]["message"]


def test_a_follow_on_check_cannot_exceed_the_fund() -> None:
    allocation = {
        "stage": "seed",
        "share": 1.0,
        "initial_check": 1e6,
        "follow_on": "fixed",
        "follow_on_check": 2e8,
    }
    errors = present_field_issues(minimal_spec_json(construction={"allocations": [allocation]}))
    assert [(e["path"], e["code"]) for e in errors] == [
        ("/construction/allocations/0/follow_on_check", "CHECK_ABOVE_FUND_SIZE")
    ]


def test_settings_another_choice_makes_irrelevant_are_warned_about() -> None:
    cases = {
        "/end_of_term/discount": minimal_spec_json(
            end_of_term={"policy": "hold_at_nav", "discount": 0.3}
        ),
        "/extension_years": minimal_spec_json(evergreen=True, extension_years=3),
        "/fees/tiers/1/start_year": minimal_spec_json(
            fees={"tiers": [{"rate": 0.02, "end_year": 10}, {"rate": 0.01, "start_year": 13}]}
        ),
    }
    for path, data in cases.items():
        spec, errors, warnings = validate_publish(data)
        assert spec is not None and errors == []
        assert (path, "SETTING_IGNORED") in [(w["path"], w["code"]) for w in warnings], path


def test_a_draft_may_break_cross_field_rules_until_it_is_published() -> None:
    """SPEC §2: a draft is checked for types and ranges; the rules between fields are publish
    rules (the API's FundSpecDraft schema can say only the first)."""
    tiers = {"tiers": [{"rate": 0.02}, {"rate": 0.015, "start_year": 3}]}  # overlap
    draft = minimal_spec_json(fund_life_years=4, investment_period_years=6, fees=tiers)
    assert validate_draft(draft) == []
    codes = {i["code"] for i in present_field_issues(draft)}
    assert {"PERIOD_EXCEEDS_LIFE", "TIERS_OVERLAP_OR_UNORDERED"} <= codes


def test_integral_floats_are_integers_and_other_numbers_are_not() -> None:
    assert validate_draft({"vintage_year": 2025.0, "fees": {"tiers": [{"start_year": 2.0}]}}) == []
    wrong = validate_draft({"vintage_year": 2025.5, "fund_life_years": "10", "horizon_years": True})
    assert [(i["path"], i["code"]) for i in wrong] == [
        ("/vintage_year", "WRONG_TYPE"),
        ("/fund_life_years", "WRONG_TYPE"),
        ("/horizon_years", "WRONG_TYPE"),
    ]
