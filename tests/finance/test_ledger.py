"""Unit tests for waterfall_ledger (SPEC §3.1: hurdle, recycling, fund-level clawback)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from updog.finance import LedgerConfig, LedgerContribution, LedgerExit, waterfall_ledger


def c(quarter: int, amount: float) -> LedgerContribution:
    return LedgerContribution(quarter=quarter, amount=Decimal(str(amount)))


def x(quarter: int, proceeds: float) -> LedgerExit:
    return LedgerExit(quarter=quarter, gross_proceeds=Decimal(str(proceeds)))


def test_capital_first_then_carry_on_profit() -> None:
    r = waterfall_ledger(
        LedgerConfig(carry="0.2"), [c(1, 500_000), c(2, 500_000)], [x(4, 800_000), x(8, 1.5e6)]
    )
    assert [row.lp_capital_return for row in r.rows] == [Decimal("800000.00"), Decimal("200000.00")]
    assert [row.gp_carry for row in r.rows] == [Decimal("0.00"), Decimal("260000.00")]
    assert r.totals.distributed == Decimal("2040000.00")
    assert r.totals.dpi == Decimal("2.04")


def test_hurdle_is_a_flat_pref_on_outstanding_capital() -> None:
    r = waterfall_ledger(LedgerConfig(carry="0.2", hurdle="0.08"), [c(1, 1e6)], [x(4, 1.5e6)])
    # profit 500,000; excess over the 80,000 hurdle 420,000 → carry 84,000
    assert r.totals.gp_carry_total == Decimal("84000.00")
    assert r.totals.distributed == Decimal("1416000.00")


def test_clawback_returns_every_carry_dollar_when_the_fund_ends_below_cost() -> None:
    """SPEC §3.1: never 0 just because profit is negative."""
    config = LedgerConfig(carry="0.2", clawback_enabled=True)
    r = waterfall_ledger(config, [c(1, 1e6), c(5, 1e6)], [x(4, 1.5e6), x(8, 100_000)])
    assert r.totals.gp_carry_total == Decimal("100000.00")
    assert r.totals.gp_clawback == Decimal("100000.00")
    assert r.totals.gp_carry_net == Decimal("0.00")
    assert r.totals.distributed == Decimal("1600000.00")
    last = r.rows[-1]
    assert (last.quarter, last.gross_proceeds, last.gp_carry) == (8, 0, Decimal("-100000.00"))
    assert last.gp_clawback == Decimal("100000.00")


def test_clawback_caps_carry_at_carry_times_fund_profit() -> None:
    config = LedgerConfig(carry="0.2", clawback_enabled=True)
    r = waterfall_ledger(config, [c(1, 1e6), c(5, 1e6)], [x(4, 1.5e6), x(8, 600_000)])
    # fund profit 100,000: GP keeps 20,000 of the 100,000 carry paid on the first exit
    assert r.totals.gp_carry_net == Decimal("20000.00")
    assert r.totals.gp_clawback == Decimal("80000.00")


def test_clawback_disabled_keeps_all_carry_and_adds_no_row() -> None:
    config = LedgerConfig(carry="0.2", clawback_lp_hurdle_multiple="1.1")
    r = waterfall_ledger(config, [c(1, 1e6)], [x(4, 1.1e6)])
    assert r.totals.gp_clawback is None
    assert r.totals.gp_carry_net == Decimal("20000.00")
    assert len(r.rows) == 1


def test_recycling_skims_lp_proceeds_within_window_and_cap() -> None:
    config = LedgerConfig(
        carry="0.2",
        recycling_enabled=True,
        recycling_cap="0.15",
        recycling_window_quarters=12,
        recycling_take_rate="0.5",
    )
    r = waterfall_ledger(config, [c(1, 1e6)], [x(4, 200_000), x(8, 400_000), x(16, 500_000)])
    assert [row.recycled_amount for row in r.rows] == [
        Decimal("100000.00"),
        Decimal("50000.00"),  # cap 150,000 reached
        Decimal("0.00"),  # after the window
    ]
    assert r.totals.recycled == Decimal("150000.00")


def test_contributions_after_the_last_exit_count_in_paid_in() -> None:
    r = waterfall_ledger(LedgerConfig(carry="0.2"), [c(1, 1e6), c(9, 1e6)], [x(4, 500_000)])
    assert r.rows[0].paid_in == Decimal("1000000.00")
    assert r.totals.paid_in == Decimal("2000000.00")
    assert r.totals.dpi == Decimal("0.25")


def test_no_paid_in_gives_no_ratios() -> None:
    r = waterfall_ledger(LedgerConfig(carry="0.2"), [], [])
    assert r.rows == ()
    assert r.totals.dpi is None and r.totals.tvpi is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: LedgerConfig(carry="1.2"),
        lambda: LedgerConfig(carry="0.2", hurdle="-0.1"),
        lambda: LedgerConfig(carry="0.2", recycling_enabled=True),
        lambda: LedgerConfig(carry="0.2", clawback_lp_hurdle_multiple="-1"),
        lambda: LedgerContribution(quarter=1, amount=Decimal(-1)),
        lambda: LedgerExit(quarter=1, gross_proceeds=Decimal("NaN")),
        lambda: LedgerExit(quarter=-1, gross_proceeds=Decimal(1)),
    ],
)
def test_bad_input_raises(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]
