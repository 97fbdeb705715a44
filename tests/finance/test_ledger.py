"""Unit tests for waterfall_ledger (SPEC §3.1: hurdle, catch-up, recycling, fund-level clawback)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from updog.finance import (
    LedgerConfig,
    LedgerContribution,
    LedgerExit,
    WaterfallPolicy,
    distribute,
    waterfall_ledger,
)


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


# --- GP catch-up (issue #10, item 2) -----------------------------------------------------------


def test_a_full_catch_up_gives_the_deal_by_deal_split_of_distribute() -> None:
    """50M in, 100M out, 8 % hurdle, 20 % carry. Without a catch-up the ledger gives the GP
    20 % of (50M − 4M) = 9.2M; with a full catch-up it is 10.0M (20 % of the whole profit),
    exactly what distribute gives the same deal."""
    contributions, exits = [c(0, 50e6)], [x(4, 100e6)]
    without = waterfall_ledger(LedgerConfig(carry="0.2", hurdle="0.08"), contributions, exits)
    assert without.totals.gp_carry_total == Decimal("9200000.00")
    ledger = waterfall_ledger(
        LedgerConfig(carry="0.2", hurdle="0.08", catch_up="1"), contributions, exits
    )
    deal = distribute(WaterfallPolicy.standard(carry="0.2", hurdle="0.08"), 100e6, 50e6)
    assert (deal.lp_distribution, deal.gp_distribution) == (
        Decimal("90000000.00"),
        Decimal("10000000.00"),
    )
    (row,) = ledger.rows
    assert row.gp_carry == ledger.totals.gp_carry_total == deal.gp_distribution
    assert row.lp_capital_return + row.lp_profit_share == deal.lp_distribution
    assert ledger.totals.distributed == deal.lp_distribution


@pytest.mark.parametrize(
    ("catch_up", "proceeds", "gp"),
    [
        ("0.5", "1150000", "30000.00"),  # past the tier 0.2·80,000/0.3: 20 % of 150,000
        ("0.5", "1120000", "20000.00"),  # inside the tier: half of 40,000
        ("0.2", "1500000", "84000.00"),  # at the carry rate it never closes
        ("1", "1050000", "0.00"),  # inside the pref
    ],
)
def test_partial_catch_ups_follow_the_market_definition(
    catch_up: str, proceeds: str, gp: str
) -> None:
    config = LedgerConfig(carry="0.2", hurdle="0.08", catch_up=catch_up)
    ledger = waterfall_ledger(config, [c(0, 1e6)], [x(2, float(proceeds))])
    deal = distribute(
        WaterfallPolicy.standard(carry="0.2", hurdle="0.08", catch_up=catch_up),
        Decimal(proceeds),
        1_000_000,
    )
    assert ledger.totals.gp_carry_total == deal.gp_distribution == Decimal(gp)
    assert ledger.totals.distributed == deal.lp_distribution


def test_catch_up_applies_per_exit_on_the_outstanding_capital() -> None:
    """Two exits: the first returns 600k of 1M (no profit), the second 900k: 400k capital,
    pref 8 % of the 400k still out = 32,000, catch-up 8,000, then 20 % of 460,000."""
    config = LedgerConfig(carry="0.2", hurdle="0.08", catch_up="1")
    r = waterfall_ledger(config, [c(0, 1e6)], [x(4, 600_000), x(8, 900_000)])
    assert [row.gp_carry for row in r.rows] == [Decimal("0.00"), Decimal("100000.00")]
    assert r.totals.distributed == Decimal("1400000.00")


def test_catch_up_zero_is_the_default_and_changes_nothing() -> None:
    contributions, exits = [c(1, 500_000), c(2, 500_000)], [x(4, 800_000), x(8, 1.5e6)]
    default = waterfall_ledger(LedgerConfig(carry="0.2", hurdle="0.08"), contributions, exits)
    explicit = waterfall_ledger(
        LedgerConfig(carry="0.2", hurdle="0.08", catch_up="0"), contributions, exits
    )
    assert default == explicit
    assert LedgerConfig(carry="0.2").catch_up == 0


@pytest.mark.parametrize("catch_up", ["-0.1", "1.5", "NaN"])
def test_catch_up_out_of_range_raises(catch_up: str) -> None:
    with pytest.raises(ValueError):
        LedgerConfig(carry="0.2", catch_up=catch_up)
