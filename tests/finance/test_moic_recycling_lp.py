"""Unit tests for the MOIC variants, exit recycling and LP metrics."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest

from updog.finance import (
    CashFlowEvent,
    ExitEvent,
    Investment,
    RecyclingTerms,
    ValuationMark,
    blended_moic,
    current_moic,
    exit_moic,
    follow_on_moic,
    initial_moic,
    lp_metrics,
    opportunity_cost_moic,
    recycling,
    recycling_capacity,
    reserves_moic,
)

# --- MOIC -------------------------------------------------------------------------------------

INV = Investment(
    initial_investment=1_000_000,
    follow_on_investment=500_000,
    current_valuation=3_000_000,
    projected_exit_value=6_000_000,
    exit_probability="0.8",
    planned_reserves=300_000,
    reserve_exit_multiple="2.5",
)


def test_moic_variants() -> None:
    assert current_moic(INV) == 2
    assert exit_moic(INV, probability_weighted=False) == 4
    assert exit_moic(INV) == Decimal("3.2")
    assert initial_moic(INV) == 2
    assert follow_on_moic(INV) == 2
    assert reserves_moic(INV) == 2
    assert reserves_moic(INV, probability_weighted=False) == Decimal("2.5")
    assert opportunity_cost_moic(INV, "1.02") == Decimal("0.98")


def test_moic_is_none_without_a_denominator() -> None:
    empty = Investment(initial_investment=0, current_valuation=100)
    assert current_moic(empty) is None
    assert exit_moic(empty) is None
    assert initial_moic(empty) is None
    assert follow_on_moic(empty) is None
    assert reserves_moic(empty) is None
    assert opportunity_cost_moic(empty) is None
    assert blended_moic([]) is None
    assert blended_moic([empty]) is None


def test_blended_moic_weights_by_invested_capital() -> None:
    portfolio = [
        Investment(initial_investment=500_000, current_valuation=1_500_000),
        Investment(
            initial_investment=1_000_000, follow_on_investment=500_000, current_valuation=3e6
        ),
        Investment(initial_investment=250_000, follow_on_investment=250_000),
        Investment(initial_investment=0, current_valuation=9e9),  # weight 0
    ]
    assert blended_moic(portfolio) == Decimal("1.8")


@pytest.mark.parametrize(
    "bad",
    [
        {"initial_investment": -1},
        {"initial_investment": 1, "exit_probability": 1.5},
        {"initial_investment": float("nan")},
        {"initial_investment": 1, "unknown": 2},
    ],
)
def test_bad_investment_raises(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Investment(**bad)  # type: ignore[arg-type]


# --- Recycling --------------------------------------------------------------------------------

M = 1_000_000


def test_capacity() -> None:
    cap = recycling_capacity(250 * M, RecyclingTerms(cap="0.20", period_years=7))
    assert cap.max_recyclable == Decimal("50000000.00")
    assert cap.annual_capacity == Decimal("7142857.14")


def test_cap_reached_mid_exit_and_period_is_inclusive() -> None:
    terms = RecyclingTerms(cap="0.10", period_years=5, rate="1")
    exits = [
        ExitEvent(exit_id="b", year=5, gross_proceeds=30 * M, ownership="0.2"),
        ExitEvent(exit_id="a", year=2, gross_proceeds=40 * M, ownership="0.2"),
        ExitEvent(exit_id="c", year=6, gross_proceeds=10 * M, ownership="0.5"),
    ]
    s = recycling(100 * M, terms, exits)
    assert [e.exit_id for e in s.by_exit] == ["a", "b", "c"]
    assert [e.recycled_amount for e in s.by_exit] == [
        Decimal("8000000.00"),
        Decimal("2000000.00"),
        Decimal("0.00"),
    ]
    assert s.by_exit[1].within_period and not s.by_exit[2].within_period
    assert s.cap_reached and s.remaining_capacity == 0
    assert s.excess_proceeds == Decimal("4000000.00")
    assert s.total_returned_to_lps == Decimal("9000000.00")
    assert [(y.year, y.cumulative_recycled) for y in s.by_year] == [
        (2, Decimal("8000000.00")),
        (5, Decimal("10000000.00")),
        (6, Decimal("10000000.00")),
    ]


@pytest.mark.parametrize(
    "build",
    [
        lambda: RecyclingTerms(cap="1.5", period_years=5),
        lambda: RecyclingTerms(cap="0.1", period_years=0),
        lambda: RecyclingTerms(cap="0.1", period_years=5, rate="-0.1"),
        lambda: ExitEvent(exit_id="x", year=1, gross_proceeds=-1),
        lambda: recycling(-1, RecyclingTerms(cap="0.1", period_years=5), []),
        lambda: recycling(
            1,
            RecyclingTerms(cap="0.1", period_years=5),
            [ExitEvent(exit_id="x", year=1, gross_proceeds=1)] * 2,
        ),
    ],
)
def test_bad_recycling_input_raises(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


# --- LP metrics -------------------------------------------------------------------------------

AS_OF = date(2024, 12, 31)


def ev(
    id_: int, kind: str, amount: int, day: date, status: str = "approved", **kw: int
) -> CashFlowEvent:
    return CashFlowEvent(
        id=id_, event_type=kind, amount=amount, event_date=day, status=status, **kw
    )


def mark(id_: int, value: int, day: date, status: str = "approved", **kw: object) -> ValuationMark:
    return ValuationMark(id=id_, fair_value=value, mark_date=day, status=status, **kw)


def test_lp_metrics_baseline() -> None:
    events = [
        ev(1, "lp_capital_call", 1_000_000, date(2024, 1, 1)),
        ev(2, "lp_capital_call", 2_000_000, date(2024, 4, 1)),
        ev(3, "lp_capital_call", 3_000_000, date(2024, 7, 1)),
        ev(4, "lp_distribution", 1_500_000, date(2024, 12, 15)),
    ]
    marks = [
        mark(10, 5_000_000, date(2024, 9, 30), confidence="high"),
        mark(11, 7_000_000, date(2025, 6, 30), confidence="low"),
    ]
    m = lp_metrics(events, marks, AS_OF)
    assert (m.contributions, m.distributions, m.nav) == (
        Decimal("6000000.00"),
        Decimal("1500000.00"),
        Decimal("5000000.00"),
    )
    assert m.dpi == Decimal("0.25")
    assert m.tvpi == m.moic
    assert m.rvpi is not None and abs(m.rvpi - Decimal(5) / 6) < Decimal("1e-25")
    assert m.excluded_future_marks == (11,)
    assert m.mark_confidence_mix == {"high": 1, "medium": 0, "low": 0}
    assert m.net_irr_converges and m.net_irr is not None
    assert m.warnings == ()


def test_reversals_drafts_future_events_and_marks() -> None:
    events = [
        ev(1, "lp_capital_call", 4_000_000, date(2024, 1, 1)),
        ev(2, "lp_capital_call", 1_000_000, date(2024, 3, 1)),
        ev(3, "reversal", 1_000_000, date(2024, 3, 2), reversal_of=2),  # reverses an approved call
        ev(4, "lp_capital_call", 9_000_000, date(2024, 5, 1), status="draft"),
        ev(5, "lp_distribution", 1_000_000, date(2025, 2, 1)),  # after as_of
        ev(6, "lp_capital_call", 500_000, date(2024, 6, 1), status="reversed"),
    ]
    marks = [
        mark(1, 1_000_000, date(2024, 3, 31), company_id=100),
        mark(2, 1_500_000, date(2024, 6, 30), company_id=100),
        mark(3, 9_999_999, date(2024, 9, 30), status="superseded", company_id=100),
        mark(4, 700_000, date(2024, 6, 30), status="draft", company_id=200),
    ]
    m = lp_metrics(events, marks, AS_OF)
    assert m.contributions == Decimal("4000000.00")
    assert m.distributions == Decimal("0.00")
    assert m.nav == Decimal("1500000.00")
    assert m.warning_codes == (
        "EXCLUDED_NON_LIVE_EVENTS",
        "EXCLUDED_FUTURE_EVENTS",
        "EXCLUDED_NON_LIVE_MARKS",
    )


def test_zero_contributions_give_none_and_a_warning() -> None:
    events = [
        ev(1, "lp_capital_call", 1_000_000, date(2024, 1, 1)),
        ev(2, "recallable_distribution", 1_000_000, date(2024, 6, 1)),
    ]
    m = lp_metrics(events, [], AS_OF)
    assert m.contributions == 0
    assert (m.dpi, m.rvpi, m.tvpi, m.moic) == (None, None, None, None)
    assert m.warning_codes == ("ZERO_CONTRIBUTIONS",)


def test_lp_metrics_bad_input_raises() -> None:
    with pytest.raises(ValueError):
        ev(1, "coupon", 1, AS_OF)
    with pytest.raises(ValueError):
        mark(1, -5, AS_OF)
    with pytest.raises(ValueError, match="unique"):
        lp_metrics([ev(1, "lp_capital_call", 1, AS_OF)] * 2, [], AS_OF)


# --- realized proceeds count; nothing is dropped without a warning (issue #10, item 3) ---------


def test_realized_proceeds_are_distributions() -> None:
    """SPEC §3.1: distributions = lp_distribution + realized_proceeds."""
    events = [
        ev(1, "lp_capital_call", 4_000_000, date(2024, 1, 1)),
        ev(2, "lp_distribution", 1_000_000, date(2024, 6, 1)),
        ev(3, "realized_proceeds", 2_000_000, date(2024, 9, 1)),
    ]
    m = lp_metrics(events, [mark(1, 3_000_000, date(2024, 12, 31))], AS_OF)
    assert m.distributions == Decimal("3000000.00")
    assert (m.dpi, m.rvpi, m.tvpi, m.moic) == (
        Decimal("0.75"),
        Decimal("0.75"),
        Decimal("1.5"),
        Decimal("1.5"),
    )
    assert m.warnings == ()


def test_realized_proceeds_enter_the_net_irr_as_inflows() -> None:
    """−1M on 2023-01-01, +1.21M of realized proceeds on 2025-01-01 (731 days): the IRR is
    1.21^(365/731) − 1, the same as for an lp_distribution of the same amount."""
    as_of = date(2025, 1, 1)
    call = ev(1, "lp_capital_call", 1_000_000, date(2023, 1, 1))
    realized = lp_metrics([call, ev(2, "realized_proceeds", 1_210_000, as_of)], [], as_of)
    distributed = lp_metrics([call, ev(2, "lp_distribution", 1_210_000, as_of)], [], as_of)
    assert realized.net_irr == pytest.approx(1.21 ** (365 / 731) - 1, rel=1e-10)
    assert realized.net_irr == distributed.net_irr
    assert realized.dpi == distributed.dpi == Decimal("1.21")


def test_fund_level_events_are_excluded_with_a_warning() -> None:
    events = [
        ev(1, "lp_capital_call", 2_000_000, date(2024, 1, 1)),
        ev(2, "portfolio_investment", 1_500_000, date(2024, 2, 1)),
        ev(3, "fund_expense", 50_000, date(2024, 3, 1)),
        ev(4, "portfolio_investment", 400_000, date(2024, 4, 1)),
        ev(5, "fund_expense", 10_000, date(2024, 5, 1), status="draft"),  # warned as non-live
        ev(6, "lp_distribution", 500_000, date(2024, 6, 1)),
    ]
    m = lp_metrics(events, [], AS_OF)
    assert (m.contributions, m.distributions) == (Decimal("2000000.00"), Decimal("500000.00"))
    assert m.warning_codes == ("EXCLUDED_NON_LIVE_EVENTS", "EXCLUDED_FUND_LEVEL_EVENTS")
    message = m.warnings[1].message
    assert "3 events" in message
    assert "fund_expense ids 3" in message and "portfolio_investment ids 2, 4" in message
    baseline = lp_metrics([events[0], events[5]], [], AS_OF)
    assert (m.dpi, m.net_irr) == (baseline.dpi, baseline.net_irr)


def test_a_reversed_fund_level_event_needs_no_warning() -> None:
    events = [
        ev(1, "lp_capital_call", 1_000_000, date(2024, 1, 1)),
        ev(2, "fund_expense", 50_000, date(2024, 2, 1)),
        ev(3, "reversal", 50_000, date(2024, 2, 2), reversal_of=2),
    ]
    assert lp_metrics(events, [], AS_OF).warnings == ()


@pytest.mark.parametrize("target", [None, 99, 3])
def test_a_reversal_that_reverses_nothing_is_reported(target: int | None) -> None:
    """A reversal naming no event, an unknown one or itself changes nothing — with a warning."""
    events = [
        ev(1, "lp_capital_call", 1_000_000, date(2024, 1, 1)),
        ev(2, "lp_distribution", 200_000, date(2024, 2, 1)),
        CashFlowEvent(
            id=3,
            event_type="reversal",
            amount=200_000,
            event_date=date(2024, 2, 2),
            status="approved",
            reversal_of=target,
        ),
    ]
    m = lp_metrics(events, [], AS_OF)
    assert m.distributions == Decimal("200000.00")
    assert m.warning_codes == ("UNMATCHED_REVERSALS",)
    assert "ids 3" in m.warnings[0].message


def test_every_event_is_counted_or_named_by_a_warning() -> None:
    """Each event type, live and not, past and future: an event's id is in the figures or in
    a warning's message (a reversed event through its reversal)."""
    kinds = [
        "lp_capital_call",
        "lp_distribution",
        "recallable_distribution",
        "portfolio_investment",
        "realized_proceeds",
        "fund_expense",
    ]
    events: list[CashFlowEvent] = []
    for kind in kinds:
        for status in ("approved", "draft"):
            for day in (date(2024, 3, 1), date(2025, 3, 1)):
                events.append(ev(100 + len(events), kind, 1_000 * (len(events) + 1), day, status))
    m = lp_metrics(events, [], AS_OF)
    named = {int(n) for w in m.warnings for n in re.findall(r"\b\d+\b", w.message)}
    in_account = {"lp_capital_call", "lp_distribution", "recallable_distribution"}
    in_account.add("realized_proceeds")
    for e in events:
        counted = e.status == "approved" and e.event_date <= AS_OF and e.event_type in in_account
        assert counted or e.id in named, e
