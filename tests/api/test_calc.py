"""``POST /api/v1/calc/*`` over real HTTP: one known answer per kernel family, authentication,
problem+json 422s with JSON Pointers for bad input, the OpenAPI document, and a fuzz that
never gets a 500."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import httpx
import pytest
from api_support import Account, LiveServer, assert_problem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.db

CALC = "/api/v1/calc"
JSON = {"Content-Type": "application/json"}

#: A valid body per endpoint (also the seeds of the fuzz below).
VALID: dict[str, dict[str, Any]] = {
    "xirr": {
        "flows": [
            {"date": "2020-01-01", "amount": -10_000_000},
            {"date": "2025-01-01", "amount": 25_000_000},
        ]
    },
    "fees": {
        "tiers": [
            {"rate": 0.02, "basis": "committed", "start_year": 1, "end_year": 5},
            {"rate": 0.015, "basis": "committed", "start_year": 6, "end_year": 10},
        ],
        "commitment": 100_000_000,
        "years": 10,
    },
    "waterfall": {
        "terms": {"carry": 0.2, "hurdle": 0.08, "catch_up": 1.0},
        "exit_proceeds": 1_500_000,
        "deal_cost": 1_000_000,
    },
    "ledger": {
        "config": {"carry": 0.2, "hurdle": 0.08},
        "contributions": [{"quarter": 0, "amount": 10_000_000}],
        "exits": [{"quarter": 8, "gross_proceeds": 25_000_000}],
    },
    "moic": {
        "investments": [
            {
                "initial_investment": 1_000_000,
                "follow_on_investment": 500_000,
                "current_valuation": 3_000_000,
                "projected_exit_value": 6_000_000,
                "exit_probability": 0.5,
                "planned_reserves": 1_000_000,
                "reserve_exit_multiple": 3,
            },
            {"initial_investment": 0},
        ]
    },
    "recycling": {
        "fund_size": 100_000_000,
        "terms": {"cap": 0.15, "period_years": 5, "rate": 1.0},
        "exits": [
            {"exit_id": "a", "year": 2, "gross_proceeds": 200_000_000, "ownership": 0.1},
            {"exit_id": "b", "year": 6, "gross_proceeds": 10_000_000},
        ],
    },
    "lp-metrics": {
        "events": [
            {
                "id": 1,
                "event_type": "lp_capital_call",
                "amount": 10_000_000,
                "event_date": "2020-01-01",
                "status": "approved",
            },
            {
                "id": 2,
                "event_type": "lp_distribution",
                "amount": "5000000.00",
                "event_date": "2023-01-01",
                "status": "approved",
            },
        ],
        "marks": [
            {
                "id": 1,
                "fair_value": 15_000_000,
                "mark_date": "2024-12-31",
                "status": "approved",
                "company_id": 1,
            }
        ],
        "as_of": "2024-12-31",
    },
}
ENDPOINTS = sorted(VALID)


def calc(client: httpx.Client, name: str, body: Any) -> httpx.Response:
    return client.post(f"{CALC}/{name}", json=body)


def ok(client: httpx.Client, name: str, body: Any) -> dict[str, Any]:
    r = calc(client, name, body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    result: dict[str, Any] = r.json()
    return result


def paths(r: httpx.Response, status: int = 422, code: str = "VALIDATION_FAILED") -> set[str]:
    return {e["path"] for e in assert_problem(r, status, code)["errors"]}


def _decimals(node: Any) -> Any:
    """``node`` with every decimal string as a Decimal (exact figures compare by value: their
    strings may differ in trailing zeros)."""
    if isinstance(node, dict):
        return {k: _decimals(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_decimals(v) for v in node]
    if isinstance(node, str) and node[:1].isdigit():
        return Decimal(node)
    return node


def with_(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with the member at JSON Pointer ``path`` set to ``value``."""
    out = copy.deepcopy(body)
    *parents, last = path.strip("/").split("/")
    node: Any = out
    for token in parents:
        node = node[int(token)] if isinstance(node, list) else node[token]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


# -- known answers ------------------------------------------------------------------------


def test_xirr_known_answers(client: httpx.Client) -> None:
    """SPEC §3.1 (truth): −10M on 2020-01-01, +25M on 2025-01-01."""
    r = ok(client, "xirr", VALID["xirr"])
    assert r["rate"] == pytest.approx(0.2008834994, abs=1e-10)
    assert r["converged"] is True and r["multiple_roots"] is False
    assert set(r) == {
        "rate",
        "converged",
        "method",
        "iterations",
        "multiple_roots",
        "reason",
        "reason_message",
    }
    assert r["reason"] is None and r["reason_message"] is None
    r = ok(client, "xirr", {**VALID["xirr"], "day_count": "actual/365.25"})
    assert r["rate"] == pytest.approx(0.20103407784113647, rel=1e-12)
    for strategy in ("newton", "bisection"):
        r = ok(client, "xirr", {**VALID["xirr"], "strategy": strategy})
        assert r["rate"] == pytest.approx(0.2008834994, abs=1e-9)


def test_xirr_without_a_sign_change_is_null(client: httpx.Client) -> None:
    flows = [{"date": "2020-01-01", "amount": 5}, {"date": "2021-01-01", "amount": 5}]
    r = ok(client, "xirr", {"flows": flows})
    assert r["rate"] is None and r["converged"] is False and r["method"] == "none"
    assert r["reason"] == "NO_SIGN_CHANGE" and "sign" in r["reason_message"]


def _flows(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"date": d, "amount": a} for d, a in pairs]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"flows": _flows(("2020-01-01", -1_000_000))}, "TOO_FEW_FLOWS"),
        (  # same-day flows are summed: one date left
            {"flows": _flows(("2020-01-01", -1_000_000), ("2020-01-01", 2_000_000))},
            "TOO_FEW_FLOWS",
        ),
        ({"flows": _flows(("2020-01-01", -5), ("2021-01-01", -5))}, "NO_SIGN_CHANGE"),
        (  # 10x in a month: about 6e11 a year, above the admissible 200
            {"flows": _flows(("2020-01-01", -10_000_000), ("2020-02-01", 100_000_000))},
            "NO_ROOT_IN_RANGE",
        ),
        (
            {
                "flows": _flows(("2020-01-01", -10_000_000), ("2020-02-01", 100_000_000)),
                "strategy": "newton",
            },
            "NO_ROOT_IN_RANGE",
        ),
        ({**VALID["xirr"], "strategy": "newton", "max_iterations": 1}, "DID_NOT_CONVERGE"),
        ({**VALID["xirr"], "strategy": "bisection", "max_iterations": 1}, "DID_NOT_CONVERGE"),
    ],
)
def test_xirr_says_why_the_rate_is_null(
    client: httpx.Client, body: dict[str, Any], reason: str
) -> None:
    r = ok(client, "xirr", body)
    assert r["rate"] is None and r["converged"] is False
    assert r["reason"] == reason
    assert isinstance(r["reason_message"], str) and r["reason_message"].endswith(".")


def test_fees_step_down(client: httpx.Client) -> None:
    r = ok(client, "fees", VALID["fees"])
    assert r["yearly"] == ["2000000.00"] * 5 + ["1500000.00"] * 5
    assert r["total"] == "17500000.00" and r["average"] == "1750000.00"


def test_fees_on_called_capital_never_exceed_committed(client: httpx.Client) -> None:
    body = {
        "tiers": [{"rate": "0.02", "basis": "called_cumulative", "start_year": 1, "end_year": 3}],
        "commitment": "1000000",
        "years": 3,
        "called": [250_000, "600000.00", 1_200_000],
    }
    assert ok(client, "fees", body)["yearly"] == ["5000.00", "12000.00", "20000.00"]


def test_waterfall_known_answer(client: httpx.Client) -> None:
    """SPEC §3.1 (truth): 1.5M on a cost of 1M, 8 % pref, full catch-up, 20 % carry."""
    r = ok(client, "waterfall", VALID["waterfall"])
    assert r["lp_distribution"] == "1400000.00" and r["gp_distribution"] == "100000.00"
    assert r["total_distributed"] == "1500000.00"
    assert Decimal(r["lp_exact"]) + Decimal(r["gp_exact"]) == Decimal(1_500_000)
    tiers = {t["tier"]: (t["lp_amount"], t["gp_amount"]) for t in r["breakdown"]}
    assert tiers == {
        "return_of_capital": ("1000000.00", "0.00"),
        "preferred_return": ("80000.00", "0.00"),
        "gp_catch_up": ("0.00", "20000.00"),
        "carry": ("320000.00", "80000.00"),
    }
    policy = {
        "tiers": [
            {"kind": "return_of_capital"},
            {"kind": "preferred_return", "rate": "0.08"},
            {"kind": "gp_catch_up", "rate": 1},
            {"kind": "carry", "rate": "0.20"},
        ]
    }
    explicit = ok(
        client, "waterfall", {"policy": policy, "exit_proceeds": "1500000.00", "deal_cost": 1e6}
    )
    assert _decimals(explicit) == _decimals(r)
    loss = ok(client, "waterfall", {**VALID["waterfall"], "exit_proceeds": -5})
    assert loss["total_distributed"] == "0.00"


COMPOUNDED = {
    **VALID["waterfall"],
    "exit_proceeds": 1_700_000,
    "pref_basis": "compounded",
    "contributions": [{"date": "2018-01-01", "amount": "1000000"}],
    "exit_date": "2023-12-31",
}


def test_waterfall_compounded_pref(client: httpx.Client) -> None:
    """8 % compounded over 2,190 days (6 × 365): pref 1.08⁶ − 1 = 586,874.32 on 1M; the
    catch-up never closes and the GP gets the 113,125.68 left (140,000 on the flat basis)."""
    r = ok(client, "waterfall", COMPOUNDED)
    tiers = {t["tier"]: (t["lp_amount"], t["gp_amount"]) for t in r["breakdown"]}
    assert tiers["preferred_return"] == ("586874.32", "0.00")
    assert (r["lp_distribution"], r["gp_distribution"]) == ("1586874.32", "113125.68")
    assert Decimal(r["gp_exact"]) == Decimal("113125.677056")
    flat = ok(client, "waterfall", {**VALID["waterfall"], "exit_proceeds": 1_700_000})
    assert flat["gp_distribution"] == "140000.00"
    explicit = ok(client, "waterfall", {**VALID["waterfall"], "pref_basis": "flat"})
    assert explicit == ok(client, "waterfall", VALID["waterfall"])


def _without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in keys}


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {**VALID["waterfall"], "contributions": COMPOUNDED["contributions"]},
            {("/contributions", "NOT_FOR_BASIS")},
        ),
        (
            {**VALID["waterfall"], "pref_basis": "flat", "exit_date": "2023-12-31"},
            {("/exit_date", "NOT_FOR_BASIS")},
        ),
        (
            _without(COMPOUNDED, "contributions", "exit_date"),
            {("/contributions", "REQUIRED_FOR_BASIS"), ("/exit_date", "REQUIRED_FOR_BASIS")},
        ),
        (
            {**COMPOUNDED, "exit_date": "2017-12-31"},
            {("/contributions/0/date", "AFTER_EXIT")},
        ),
        (
            {
                **COMPOUNDED,
                "contributions": [
                    {"date": "2018-01-01", "amount": "600000"},
                    {"date": "2019-01-01", "amount": "399999.99"},
                ],
            },
            {("/contributions", "SUM_NOT_DEAL_COST")},
        ),
        (
            {**COMPOUNDED, "contributions": [{"date": "2018-01-01", "amount": -1}]},
            {("/contributions/0/amount", "OUT_OF_RANGE")},
        ),
        ({**COMPOUNDED, "pref_basis": "irr"}, None),
        ({**COMPOUNDED, "exit_date": "2023-02-30"}, None),
    ],
)
def test_waterfall_compounded_pref_errors(
    client: httpx.Client, body: dict[str, Any], errors: set[tuple[str, str]] | None
) -> None:
    problem = assert_problem(calc(client, "waterfall", body), 422, "VALIDATION_FAILED")
    found = {(e["path"], e["code"]) for e in problem["errors"]}
    if errors is None:  # a type error: only its path is checked
        assert len(found) == 1 and next(iter(found))[0] in ("/pref_basis", "/exit_date")
    else:
        assert found == errors


def test_ledger_known_answer(client: httpx.Client) -> None:
    """10M in, 25M out: capital 10M, hurdle 0.8M, carry 20 % of 14.2M = 2.84M."""
    r = ok(client, "ledger", VALID["ledger"])
    (row,) = r["rows"]
    assert row["lp_capital_return"] == "10000000.00" and row["gp_carry"] == "2840000.00"
    assert row["lp_profit_share"] == "12160000.00"
    totals = r["totals"]
    assert totals["distributed"] == "22160000.00" and totals["gp_carry_net"] == "2840000.00"
    assert Decimal(totals["dpi"]) == Decimal("2.216") and totals["gp_clawback"] is None


def test_ledger_catch_up(client: httpx.Client) -> None:
    """The same exit with a full catch-up: the GP holds 20 % of the whole 15M profit, 3M, as
    /calc/waterfall gives for the deal; catch_up 0 (the default) keeps 2.84M."""
    body = with_(VALID["ledger"], "/config/catch_up", 1)
    (row,) = ok(client, "ledger", body)["rows"]
    assert (row["gp_carry"], row["lp_profit_share"]) == ("3000000.00", "12000000.00")
    deal = {**VALID["waterfall"], "exit_proceeds": 25_000_000, "deal_cost": 10_000_000}
    assert ok(client, "waterfall", deal)["gp_distribution"] == row["gp_carry"]
    zero = ok(client, "ledger", with_(VALID["ledger"], "/config/catch_up", "0"))
    assert zero == ok(client, "ledger", VALID["ledger"])


def test_ledger_clawback_on_a_fund_below_cost(client: httpx.Client) -> None:
    body = {
        "config": {"carry": 0.2, "clawback_enabled": True},
        "contributions": [{"quarter": 0, "amount": 100}, {"quarter": 4, "amount": 100}],
        "exits": [{"quarter": 1, "gross_proceeds": 150}, {"quarter": 8, "gross_proceeds": 20}],
    }
    totals = ok(client, "ledger", body)["totals"]
    assert totals["gp_carry_total"] == "10.00" and totals["gp_clawback"] == "10.00"
    assert totals["gp_carry_net"] == "0.00"


def test_moic_variants(client: httpx.Client) -> None:
    r = ok(client, "moic", VALID["moic"])
    first, empty = r["investments"]
    expected = {
        "current": 2,
        "exit": 2,
        "exit_unweighted": 4,
        "initial": 2,
        "follow_on": 2,
        "reserves": Decimal("1.5"),
        "reserves_unweighted": 3,
        "opportunity_cost": 1,
    }
    assert {k: Decimal(v) for k, v in first.items()} == expected
    assert set(empty.values()) == {None}
    assert Decimal(r["blended"]) == 2


def test_recycling_within_cap_and_period(client: httpx.Client) -> None:
    r = ok(client, "recycling", VALID["recycling"])
    assert r["capacity"]["max_recyclable"] == "15000000.00"
    a, b = r["by_exit"]
    assert (a["fund_proceeds"], a["recycled_amount"], a["returned_to_lps"]) == (
        "20000000.00",
        "15000000.00",
        "5000000.00",
    )
    assert b["within_period"] is False and b["recycled_amount"] == "0.00"
    assert r["total_recycled"] == "15000000.00" and r["cap_reached"] is True
    assert r["excess_proceeds"] == "5000000.00"


def test_lp_metrics(client: httpx.Client) -> None:
    r = ok(client, "lp-metrics", VALID["lp-metrics"])
    assert (r["contributions"], r["distributions"], r["nav"]) == (
        "10000000.00",
        "5000000.00",
        "15000000.00",
    )
    ratios = {k: Decimal(r[k]) for k in ("dpi", "rvpi", "tvpi", "moic")}
    assert ratios == {"dpi": Decimal("0.5"), "rvpi": Decimal("1.5"), "tvpi": 2, "moic": 2}
    assert 0.1 < r["net_irr"] < 0.25 and r["net_irr_converges"] is True
    assert r["warnings"] == []
    empty = ok(client, "lp-metrics", {"events": [], "marks": [], "as_of": "2024-12-31"})
    assert empty["dpi"] is None and empty["net_irr"] is None
    assert [w["code"] for w in empty["warnings"]] == ["ZERO_CONTRIBUTIONS"]


def test_lp_metrics_count_realized_proceeds_and_name_fund_level_events(
    client: httpx.Client,
) -> None:
    extra = [
        {"id": 3, "event_type": "realized_proceeds", "amount": 2_000_000},
        {"id": 4, "event_type": "portfolio_investment", "amount": 7_000_000},
        {"id": 5, "event_type": "fund_expense", "amount": "125000.00"},
    ]
    events = VALID["lp-metrics"]["events"] + [
        {**e, "event_date": "2023-06-30", "status": "approved"} for e in extra
    ]
    r = ok(client, "lp-metrics", {**VALID["lp-metrics"], "events": events})
    assert r["distributions"] == "7000000.00" and Decimal(r["dpi"]) == Decimal("0.7")
    assert [w["code"] for w in r["warnings"]] == ["EXCLUDED_FUND_LEVEL_EVENTS"]
    assert "fund_expense ids 5" in r["warnings"][0]["message"]
    base = ok(client, "lp-metrics", VALID["lp-metrics"])
    assert r["net_irr"] > base["net_irr"]


# -- authentication ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ENDPOINTS)
def test_authentication_is_required(live: LiveServer, name: str) -> None:
    with live.client() as anonymous:
        r = calc(anonymous, name, VALID[name])
    assert_problem(r, 401, "UNAUTHENTICATED")
    assert r.headers["www-authenticate"].startswith("Bearer")
    with live.client("updog_not-a-token") as bad:
        assert_problem(calc(bad, name, VALID[name]), 401, "INVALID_TOKEN")


@pytest.mark.parametrize("name", ENDPOINTS)
def test_any_role_may_calculate(live: LiveServer, viewer: Account, name: str) -> None:
    with live.client(viewer.token) as c:
        assert calc(c, name, VALID[name]).status_code == 200


# -- bad input: 422 with JSON Pointers --------------------------------------------------


@pytest.mark.parametrize(
    "name,path,value",
    [
        ("fees", "/commitment", -1),
        ("waterfall", "/deal_cost", "-0.01"),
        ("recycling", "/fund_size", -100),
        ("ledger", "/contributions/0/amount", -5),
        ("moic", "/investments/0/initial_investment", -1),
        ("lp-metrics", "/marks/0/fair_value", -1),
    ],
)
def test_negative_amounts(client: httpx.Client, name: str, path: str, value: Any) -> None:
    assert paths(calc(client, name, with_(VALID[name], path, value))) == {path}


@pytest.mark.parametrize(
    "name,path,value",
    [
        ("fees", "/tiers/0/rate", 1.5),
        ("waterfall", "/terms/carry", 1.2),
        ("waterfall", "/terms/hurdle", -0.1),
        ("ledger", "/config/hurdle", "2"),
        ("ledger", "/config/catch_up", 1.5),
        ("recycling", "/terms/cap", 1.01),
        ("moic", "/investments/0/exit_probability", 3),
        ("xirr", "/guess", -1),
    ],
)
def test_rates_out_of_range(client: httpx.Client, name: str, path: str, value: Any) -> None:
    assert paths(calc(client, name, with_(VALID[name], path, value))) == {path}


def test_unordered_fee_tiers(client: httpx.Client) -> None:
    tiers = list(reversed(VALID["fees"]["tiers"]))
    problem = assert_problem(
        calc(client, "fees", {**VALID["fees"], "tiers": tiers}), 422, "VALIDATION_FAILED"
    )
    assert [(e["path"], e["code"]) for e in problem["errors"]] == [
        ("/tiers/1/start_year", "TIERS_UNORDERED")
    ]
    overlap = with_(VALID["fees"], "/tiers/1/start_year", 5)
    assert paths(calc(client, "fees", overlap)) == {"/tiers/1/start_year"}
    backwards = with_(VALID["fees"], "/tiers/0/end_year", 0)
    assert "/tiers/0/end_year" in paths(calc(client, "fees", backwards))


def test_unordered_waterfall_tiers(client: httpx.Client) -> None:
    policy = {"tiers": [{"kind": "carry", "rate": 0.2}, {"kind": "return_of_capital"}]}
    body = {"policy": policy, "exit_proceeds": 1, "deal_cost": 1}
    problem = assert_problem(calc(client, "waterfall", body), 422, "VALIDATION_FAILED")
    assert problem["errors"][0]["path"] == "/policy"
    assert "ordered" in problem["errors"][0]["message"]


@pytest.mark.parametrize(
    "name,path",
    [
        ("waterfall", "/exit_proceeds"),
        ("xirr", "/flows/1/amount"),
        ("fees", "/tiers/0/rate"),
        ("lp-metrics", "/events/0/amount"),
    ],
)
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_literals(client: httpx.Client, name: str, path: str, literal: str) -> None:
    marker = "__LITERAL__"
    raw = httpx.Request("POST", "/", json=with_(VALID[name], path, marker)).content.decode()
    raw = raw.replace(f'"{marker}"', literal)
    r = client.post(f"{CALC}/{name}", content=raw.encode(), headers=JSON)
    assert paths(r, 422, "NON_FINITE_NUMBER") == {path}


def test_numbers_beyond_the_documented_bounds_are_refused(client: httpx.Client) -> None:
    """Every number has the bounds its schema states (|x| ≤ 10^18 dollars); decimal text is
    digits with an optional fraction, never an exponent (the schema's pattern)."""
    for value in (1e300, "1e400", "1" * 19):
        body = with_(VALID["ledger"], "/exits/0/gross_proceeds", value)
        assert paths(calc(client, "ledger", body)) == {"/exits/0/gross_proceeds"}, value
    body = with_(VALID["waterfall"], "/deal_cost", "1e400")
    assert paths(calc(client, "waterfall", body)) == {"/deal_cost"}


def test_integral_floats_are_integers(client: httpx.Client) -> None:
    r = calc(client, "fees", with_(VALID["fees"], "/years", 5.0))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    "name,path,value",
    [
        ("fees", "/years", True),  # a boolean is not a number
        ("fees", "/years", "5"),
        ("fees", "/years", 0),
        ("waterfall", "/exit_proceeds", "lots"),
        ("xirr", "/flows/0/date", "2020-13-01"),
        ("xirr", "/day_count", "30/360"),
        ("xirr", "/max_iterations", 0),
        ("ledger", "/exits/0/quarter", -1),
        ("recycling", "/exits/0/exit_id", ""),
        ("recycling", "/exits/0/exit_id", "x" * 201),
        ("lp-metrics", "/events/0/event_type", "dividend"),
        ("lp-metrics", "/as_of", None),
    ],
)
def test_wrong_types_and_values(client: httpx.Client, name: str, path: str, value: Any) -> None:
    assert paths(calc(client, name, with_(VALID[name], path, value))) == {path}


def test_unknown_and_missing_members(client: httpx.Client) -> None:
    problem = assert_problem(
        calc(client, "waterfall", {**VALID["waterfall"], "carry": 0.2}), 422, "VALIDATION_FAILED"
    )
    assert [(e["path"], e["code"]) for e in problem["errors"]] == [("/carry", "UNKNOWN_FIELD")]
    body = {k: v for k, v in VALID["ledger"].items() if k != "exits"}
    assert paths(calc(client, "ledger", body)) == {"/exits"}
    assert paths(calc(client, "xirr", [1, 2])) == {""}


def test_waterfall_needs_exactly_one_of_policy_and_terms(client: httpx.Client) -> None:
    neither = {"exit_proceeds": 1, "deal_cost": 1}
    assert paths(calc(client, "waterfall", neither)) == {"/policy"}
    policy = {"tiers": [{"kind": "return_of_capital"}, {"kind": "carry", "rate": 0.2}]}
    both = {**VALID["waterfall"], "policy": policy}
    assert paths(calc(client, "waterfall", both)) == {"/terms"}


def test_fee_schedules_a_basis_needs(client: httpx.Client) -> None:
    body = with_(VALID["fees"], "/tiers/1/basis", "called_net_of_returns")
    problem = assert_problem(calc(client, "fees", body), 422, "VALIDATION_FAILED")
    assert {(e["path"], e["code"]) for e in problem["errors"]} == {
        ("/called", "REQUIRED_FOR_BASIS"),
        ("/returned", "REQUIRED_FOR_BASIS"),
    }
    short = {**body, "called": [1] * 9, "returned": [0] * 10}
    assert paths(calc(client, "fees", short)) == {"/called"}


def test_duplicate_ids(client: httpx.Client) -> None:
    body = with_(VALID["recycling"], "/exits/1/exit_id", "a")
    assert paths(calc(client, "recycling", body)) == {"/exits/1/exit_id"}
    body = with_(VALID["lp-metrics"], "/events/1/id", 1)
    assert paths(calc(client, "lp-metrics", body)) == {"/events/1/id"}


def test_lists_are_bounded(client: httpx.Client) -> None:
    flow = {"date": "2020-01-01", "amount": 1}
    r = calc(client, "xirr", {"flows": [flow] * 2_001})
    problem = assert_problem(r, 422, "VALIDATION_FAILED")
    assert [(e["path"], e["code"]) for e in problem["errors"]] == [("/flows", "TOO_LONG")]
    r = calc(client, "moic", {"investments": [{"initial_investment": 1}] * 10_001})
    assert paths(r, 422, "LIST_TOO_LONG") == {"/investments"}
    empty = calc(client, "moic", {"investments": []})
    assert paths(empty) == {"/investments"}


def test_every_error_is_reported_but_bounded(client: httpx.Client) -> None:
    bad = [{"initial_investment": -1}] * 500
    problem = assert_problem(calc(client, "moic", {"investments": bad}), 422, "VALIDATION_FAILED")
    assert len(problem["errors"]) == 100
    assert problem["errors"][0]["path"] == "/investments/0/initial_investment"


def test_body_guards(client: httpx.Client) -> None:
    assert_problem(
        client.post(f"{CALC}/xirr", content=b"{}", headers={"Content-Type": "text/plain"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    assert_problem(client.post(f"{CALC}/xirr", content=b"{", headers=JSON), 400, "INVALID_JSON")
    nul = with_(VALID["recycling"], "/exits/0/exit_id", "a\x00b")
    assert paths(calc(client, "recycling", nul), 422, "NUL_IN_STRING") == {"/exits/0/exit_id"}
    assert_problem(client.get(f"{CALC}/xirr"), 405, "METHOD_NOT_ALLOWED")


# -- OpenAPI ----------------------------------------------------------------------------


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_documents_requests_and_responses(live: LiveServer) -> None:
    with live.client() as c:
        doc = c.get("/api/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]
    responses = {
        "xirr": "XirrResult",
        "fees": "FeeSchedule",
        "waterfall": "Distribution",
        "ledger": "LedgerResult",
        "moic": "MoicOut",
        "recycling": "RecyclingSchedule",
        "lp-metrics": "LpMetrics",
    }
    for name, model in responses.items():
        op = doc["paths"][f"{CALC}/{name}"]["post"]
        assert op["security"], name
        ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        body = schemas[ref.removeprefix("#/components/schemas/")]
        assert body["type"] == "object" and body["additionalProperties"] is False
        assert set(VALID[name]) <= set(body["properties"]), name
        ok_schema = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok_schema == {"$ref": f"#/components/schemas/{model}"}
        assert "application/problem+json" in op["responses"]["422"]["content"]
        assert op["description"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    xirr = schemas["XirrResult"]["properties"]
    reason = next(s for s in xirr["reason"]["anyOf"] if s.get("type") == "string")
    assert set(reason["enum"]) == {
        "TOO_FEW_FLOWS",
        "NO_SIGN_CHANGE",
        "NO_ROOT_IN_RANGE",
        "DID_NOT_CONVERGE",
    }
    assert "why rate is null" in xirr["reason"]["description"]
    assert xirr["reason_message"]["description"] and xirr["rate"]["description"]
    assert {"pref_basis", "contributions", "exit_date"} <= set(
        schemas["WaterfallRequest"]["properties"]
    )
    assert schemas["LedgerRequest"]["properties"]["config"] == {
        "$ref": "#/components/schemas/LedgerConfig"
    }
    assert "catch_up" in schemas["LedgerConfig"]["properties"]


# -- fuzz: mutated valid bodies never produce a 500 -------------------------------------


def _leaves(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, f"{path}/{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, f"{path}/{i}")]
    return [path]


_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "0", "-1", "1e30", "1e-30", "2020-02-30", "0.999999", "carry", "x"]),
    st.text(max_size=8),
    st.lists(st.integers(-2, 2), max_size=3),
    st.dictionaries(st.sampled_from(["rate", "kind", "id"]), st.integers(-2, 2), max_size=2),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_bodies_never_fail_with_500(client: httpx.Client, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(ENDPOINTS))
    body = VALID[name]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_leaves(body)))
        body = with_(body, path, data.draw(_JUNK))
    r = calc(client, name, body)
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"] or r.json()["code"] == "INVALID_INPUT"
