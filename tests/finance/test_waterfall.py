"""Unit tests for distribute (American, one realisation) and european_waterfall."""

from __future__ import annotations

from decimal import Decimal

import pytest

from updog.finance import (
    EuropeanTerms,
    QuarterAmount,
    TierKind,
    WaterfallPolicy,
    WaterfallTier,
    distribute,
    european_waterfall,
)

STANDARD = WaterfallPolicy.standard(carry="0.20", hurdle="0.08", catch_up="1.0")


def test_spec_example_full_catch_up() -> None:
    d = distribute(STANDARD, 1_500_000, 1_000_000)
    assert d.lp_distribution == Decimal("1400000.00")
    assert d.gp_distribution == Decimal("100000.00")
    assert [(b.tier, b.lp_amount, b.gp_amount) for b in d.breakdown] == [
        (TierKind.RETURN_OF_CAPITAL, Decimal("1000000.00"), Decimal("0.00")),
        (TierKind.PREFERRED_RETURN, Decimal("80000.00"), Decimal("0.00")),
        (TierKind.GP_CATCH_UP, Decimal("0.00"), Decimal("20000.00")),
        (TierKind.CARRY, Decimal("320000.00"), Decimal("80000.00")),
    ]


def test_partial_catch_up_uses_the_market_definition() -> None:
    """50 % catch-up, 20 % carry, pref 80,000: the tier is 0.2·80,000/(0.5−0.2) = 53,333.33,
    after which the GP holds 20 % of (pref + tier)."""
    policy = WaterfallPolicy.standard(carry="0.2", hurdle="0.08", catch_up="0.5")
    d = distribute(policy, 1_500_000, 1_000_000)
    cu = d.breakdown[2]
    assert cu.gp_amount == Decimal("26666.67")
    assert cu.lp_amount == Decimal("26666.67")
    assert d.gp_distribution == Decimal("100000.00")  # caught up: 20 % of 500,000 profit
    # inside the tier: 40,000 above ROC + pref → GP takes half, 20,000 (< 20 % of 120,000)
    inside = distribute(policy, 1_120_000, 1_000_000)
    assert inside.gp_distribution == Decimal("20000.00")
    # past the tier: 70,000 above ROC + pref → caught up, GP holds 20 % of 150,000
    past = distribute(policy, 1_150_000, 1_000_000)
    assert past.gp_distribution == Decimal("30000.00")


def test_catch_up_rate_at_or_below_carry_never_closes() -> None:
    policy = WaterfallPolicy.standard(carry="0.2", hurdle="0.08", catch_up="0.2")
    d = distribute(policy, 1_500_000, 1_000_000)
    assert d.breakdown[3].lp_exact == 0 and d.breakdown[3].gp_exact == 0
    assert d.gp_distribution == Decimal("84000.00")  # 20 % of everything above the pref


def test_no_pref_policy_is_a_plain_carry_split() -> None:
    d = distribute(WaterfallPolicy.standard(carry="0.2"), 1_500_000, 1_000_000)
    assert (d.lp_distribution, d.gp_distribution) == (Decimal("1400000.00"), Decimal("100000.00"))
    assert [b.tier for b in d.breakdown] == [TierKind.RETURN_OF_CAPITAL, TierKind.CARRY]


@pytest.mark.parametrize("proceeds", [0, -250_000, "-0.01"])
def test_zero_and_negative_proceeds_distribute_nothing(proceeds: object) -> None:
    d = distribute(STANDARD, proceeds, 1_000_000)  # type: ignore[arg-type]
    assert d.total_distributed == d.lp_distribution == d.gp_distribution == Decimal("0.00")
    assert all(b.lp_exact == 0 and b.gp_exact == 0 for b in d.breakdown)


def test_very_large_proceeds_stay_exact() -> None:
    d = distribute(STANDARD, Decimal("123456789012345.678"), Decimal("1000000"))
    assert d.lp_exact + d.gp_exact == Decimal("123456789012345.678")
    assert d.total_distributed == Decimal("123456789012345.68")


def test_each_figure_is_rounded_half_up_on_its_own() -> None:
    d = distribute(WaterfallPolicy.standard(carry="0.2"), Decimal("0.125"), 0)
    # LP 0.1 exactly, GP 0.025 → 0.03 (half-up), total 0.125 → 0.13
    assert d.lp_distribution == Decimal("0.10")
    assert d.gp_distribution == Decimal("0.03")
    assert d.total_distributed == Decimal("0.13")


def test_a_policy_without_carry_leaves_the_rest_to_the_lp() -> None:
    policy = WaterfallPolicy(
        tiers=(
            WaterfallTier(kind=TierKind.RETURN_OF_CAPITAL),
            WaterfallTier(kind=TierKind.PREFERRED_RETURN, rate=Decimal("0.08")),
        )
    )
    d = distribute(policy, 2_000_000, 1_000_000)
    assert d.lp_distribution == Decimal("2000000.00")
    assert d.gp_distribution == Decimal("0.00")


@pytest.mark.parametrize(
    "kinds",
    [
        [TierKind.PREFERRED_RETURN, TierKind.RETURN_OF_CAPITAL, TierKind.CARRY],
        [TierKind.RETURN_OF_CAPITAL, TierKind.CARRY, TierKind.GP_CATCH_UP],
        [TierKind.RETURN_OF_CAPITAL, TierKind.CARRY, TierKind.CARRY],
        [TierKind.RETURN_OF_CAPITAL, TierKind.PREFERRED_RETURN, TierKind.GP_CATCH_UP],
        [TierKind.CARRY],
    ],
)
def test_unordered_or_incomplete_tiers_raise(kinds: list[TierKind]) -> None:
    tiers = tuple(
        WaterfallTier(kind=k, rate=None if k is TierKind.RETURN_OF_CAPITAL else Decimal("0.2"))
        for k in kinds
    )
    with pytest.raises(ValueError):
        WaterfallPolicy(tiers=tiers)


@pytest.mark.parametrize(
    ("carry", "hurdle", "catch_up"),
    [("1.2", "0.08", "1"), ("0.2", "-0.01", "1"), ("0.2", "0.08", "NaN"), ("inf", "0", "1")],
)
def test_rates_out_of_range_raise(carry: str, hurdle: str, catch_up: str) -> None:
    with pytest.raises(ValueError):
        WaterfallPolicy.standard(carry=carry, hurdle=hurdle, catch_up=catch_up)


@pytest.mark.parametrize("cost", [-1, float("nan"), float("inf"), True])
def test_bad_cost_raises(cost: object) -> None:
    with pytest.raises(ValueError):
        distribute(STANDARD, 1_000_000, cost)  # type: ignore[arg-type]


# --- European -------------------------------------------------------------------------------


def q(quarter: int, amount: float | str) -> QuarterAmount:
    return QuarterAmount(quarter=quarter, amount=Decimal(str(amount)))


def test_european_pref_compounds_annually() -> None:
    terms = EuropeanTerms(carry="0.2", hurdle="0.08", catch_up="1")
    r = european_waterfall(terms, [q(0, 1_000_000)], [q(8, 2_000_000)])
    row = r.rows[0]
    assert row.lp_capital == Decimal("1000000.00")
    assert row.lp_preferred == Decimal("166400.00")  # 1.08² − 1
    assert row.gp_catch_up == Decimal("41600.00")  # 166,400 × 0.2 / 0.8
    assert r.gp_carry == Decimal("200000.00")  # caught up: 20 % of the 1,000,000 profit
    assert r.lp_total == Decimal("1800000.00")


def test_european_returns_all_paid_in_before_any_carry() -> None:
    terms = EuropeanTerms(carry="0.2", hurdle="0", catch_up="1")
    contributions = [q(0, 500_000), q(2, 500_000)]
    r = european_waterfall(terms, contributions, [q(4, 800_000), q(8, 1_500_000)])
    assert r.rows[0].gp_total == 0
    assert r.rows[0].lp_capital == Decimal("800000.00")
    assert r.rows[1].lp_capital == Decimal("200000.00")
    assert r.gp_carry == Decimal("260000.00")
    assert r.paid_in == Decimal("1000000.00")


def test_european_catch_up_fills_across_distributions() -> None:
    terms = EuropeanTerms(carry="0.2", hurdle="0.08", catch_up="1")
    one = european_waterfall(terms, [q(0, 1_000_000)], [q(4, 1_500_000)])
    split = european_waterfall(terms, [q(0, 1_000_000)], [q(4, 1_090_000), q(4, 410_000)])
    assert split.gp_carry == one.gp_carry == Decimal("100000.00")
    assert split.rows[0].gp_catch_up == Decimal("10000.00")
    assert split.rows[1].gp_catch_up == Decimal("10000.00")


def test_european_bad_input_raises() -> None:
    with pytest.raises(ValueError):
        QuarterAmount(quarter=-1, amount=Decimal(1))
    with pytest.raises(ValueError):
        QuarterAmount(quarter=1, amount=Decimal(-1))
    with pytest.raises(ValueError):
        EuropeanTerms(carry="0.6", hurdle="1.5")


# --- rounding only at the end (issue #10, item 4) ---------------------------------------------


def test_a_catch_up_tier_that_is_not_a_finite_decimal_is_not_rounded_first() -> None:
    """20 % carry, 50 % catch-up, pref 80,000: the tier is 0.2·80,000/0.3 = 53,333.33…
    (not a finite decimal). Past it the GP holds exactly 20 % of the profit 500,000.025,
    i.e. 100,000.005, which rounds half-up to 100,000.01 (rounding the tier down first gave
    100,000.00499… and a GP figure a cent short)."""
    policy = WaterfallPolicy.standard(carry="0.2", hurdle="0.08", catch_up="0.5")
    d = distribute(policy, Decimal("1500000.025"), 1_000_000)
    assert d.gp_exact == Decimal("100000.005")
    assert d.lp_exact == Decimal("1400000.020")
    assert (d.lp_distribution, d.gp_distribution) == (Decimal("1400000.02"), Decimal("100000.01"))
    assert d.total_distributed == Decimal("1500000.03")


def test_a_catch_up_share_on_an_exact_half_cent_rounds_half_up() -> None:
    """3 % carry, 12 % catch-up, pref 8 % of 1,000,001.5625 = 80,000.125: the tier is
    0.03·80,000.125/0.09 = 26,666.7083… and the GP's share of it 0.12 × that = 3,200.005
    exactly — reported 3,200.01, not 3,200.00."""
    policy = WaterfallPolicy.standard(carry="0.03", hurdle="0.08", catch_up="0.12")
    d = distribute(policy, 2_000_000, Decimal("1000001.5625"))
    catch_up = d.breakdown[2]
    assert catch_up.tier is TierKind.GP_CATCH_UP
    assert catch_up.gp_exact == Decimal("3200.005")
    assert catch_up.gp_amount == Decimal("3200.01")
    carry = d.breakdown[3]
    assert carry.gp_exact == Decimal("26799.948125")
    assert d.gp_exact == Decimal("29999.953125")  # 3 % of the profit, exactly
    assert d.lp_exact + d.gp_exact == 2_000_000


def test_european_rounds_the_catch_up_tier_only_at_the_end() -> None:
    terms = EuropeanTerms(carry="0.2", hurdle="0.08", catch_up="0.5")
    r = european_waterfall(terms, [q(0, 1_000_000)], [q(4, "1500000.025")])
    assert r.gp_exact == Decimal("100000.005")
    assert r.gp_carry == Decimal("100000.01")
    assert r.lp_total == Decimal("1400000.02")
    # Split over two distributions the tier closes in the second one: same totals.
    split = european_waterfall(terms, [q(0, 1_000_000)], [q(4, "1100000"), q(4, "400000.025")])
    assert split.gp_exact == Decimal("100000.005")
    assert split.gp_carry == Decimal("100000.01")
