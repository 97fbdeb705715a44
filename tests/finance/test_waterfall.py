"""Unit tests for distribute (American, one realisation) and european_waterfall."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from updog.finance import (
    EuropeanTerms,
    QuarterAmount,
    TierKind,
    WaterfallPolicy,
    WaterfallTier,
    compounded_pref,
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


# --- American preferred return compounded over the holding period (issue #10, item 1) ----------

SIX_YEARS = (date(2018, 1, 1), date(2023, 12, 31))  # 2,190 days = 6 × 365


def test_compounded_pref_of_a_deal_held_six_years_is_about_59_percent() -> None:
    """8 % a year for 6 years: 1.08⁶ − 1 = 0.586874322944 of cost (not a flat 8 %)."""
    start, end = SIX_YEARS
    assert (end - start).days == 6 * 365
    assert compounded_pref("0.08", [(start, 1_000_000)], end) == Decimal("586874.322944")
    d = distribute(
        STANDARD, 3_000_000, 1_000_000, pref_basis="compounded",
        contributions=[(start, 1_000_000)], exit_date=end,
    )  # fmt: skip
    pref = d.breakdown[1]
    assert (pref.tier, pref.lp_amount) == (TierKind.PREFERRED_RETURN, Decimal("586874.32"))
    assert d.gp_distribution == Decimal("400000.00")  # caught up: 20 % of the profit either way


def test_compounded_pref_keeps_the_gp_below_the_flat_figure_inside_the_catch_up() -> None:
    """1.7M on 1M: flat pref 80,000 + catch-up 20,000 closes (GP 140,000); the compounded pref
    586,874.32 leaves 113,125.68 for a catch-up that never closes, all to the GP."""
    start, end = SIX_YEARS
    flat = distribute(STANDARD, 1_700_000, 1_000_000)
    compounded = distribute(
        STANDARD, 1_700_000, 1_000_000, pref_basis="compounded",
        contributions=[(start, 1_000_000)], exit_date=end,
    )  # fmt: skip
    assert flat.gp_distribution == Decimal("140000.00")
    assert compounded.gp_exact == Decimal("113125.677056")
    assert compounded.gp_distribution == Decimal("113125.68")
    assert compounded.lp_distribution == Decimal("1586874.32")


def test_compounded_pref_accrues_each_contribution_from_its_own_date() -> None:
    contributions = [
        (date(2020, 1, 1), Decimal(600_000)),
        (date(2021, 1, 1), Decimal(300_000)),  # 2020 is a leap year: 366 days later
        (date(2021, 1, 1), Decimal(100_000)),  # same day: summed
        (date(2022, 12, 31), Decimal(0)),
    ]
    end = date(2022, 12, 31)
    expected = 600_000 * (1.08 ** (1095 / 365) - 1) + 400_000 * (1.08 ** (729 / 365) - 1)
    pref = compounded_pref("0.08", contributions, end)
    assert float(pref) == pytest.approx(expected, rel=1e-12)
    d = distribute(
        STANDARD, 2_000_000, 1_000_000, pref_basis="compounded",
        contributions=contributions, exit_date=end,
    )  # fmt: skip
    assert d.breakdown[1].lp_exact == pref
    assert compounded_pref("0.08", [(end, 1_000_000)], end) == 0  # contributed on the exit day
    assert compounded_pref(0, contributions, end) == 0


def test_flat_is_the_default_and_keeps_the_reference_figures() -> None:
    flat = distribute(STANDARD, 1_500_000, 1_000_000, pref_basis="flat")
    assert flat == distribute(STANDARD, 1_500_000, 1_000_000)
    assert flat.breakdown[1].lp_amount == Decimal("80000.00")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pref_basis": "flat", "contributions": [(date(2020, 1, 1), 1_000_000)]}, "only used"),
        ({"exit_date": date(2021, 1, 1)}, "only used"),
        ({"pref_basis": "compounded", "exit_date": date(2021, 1, 1)}, "needs contributions"),
        (
            {"pref_basis": "compounded", "contributions": [(date(2020, 1, 1), 1_000_000)]},
            "needs contributions and exit_date",
        ),
        (
            {
                "pref_basis": "compounded",
                "contributions": [(date(2020, 1, 1), 600_000), (date(2020, 6, 1), 300_000)],
                "exit_date": date(2021, 1, 1),
            },
            "sum to 900000, but deal_cost is 1000000",
        ),
        (
            {
                "pref_basis": "compounded",
                "contributions": [(date(2020, 1, 1), 500_000), (date(2021, 1, 2), 500_000)],
                "exit_date": date(2021, 1, 1),
            },
            r"contributions\[1\] is dated 2021-01-02, after the exit date 2021-01-01",
        ),
        (
            {
                "pref_basis": "compounded",
                "contributions": [(date(2020, 1, 1), 1_100_000), (date(2020, 2, 1), -100_000)],
                "exit_date": date(2021, 1, 1),
            },
            r"contributions\[1\] amount must be >= 0",
        ),
        (
            {
                "pref_basis": "compounded",
                "contributions": [(datetime(2020, 1, 1, 12), 1_000_000)],
                "exit_date": date(2021, 1, 1),
            },
            "must be a datetime.date",
        ),
        (
            {
                "pref_basis": "compounded",
                "contributions": [(date(2020, 1, 1), "NaN")],
                "exit_date": date(2021, 1, 1),
            },
            "finite",
        ),
        (
            {
                "pref_basis": "compounded",
                "contributions": [(date(2020, 1, 1),)],
                "exit_date": date(2021, 1, 1),
            },
            "pair",
        ),
        ({"pref_basis": "irr"}, "unknown pref_basis 'irr'"),
    ],
)
def test_compounded_pref_input_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        distribute(STANDARD, 1_500_000, 1_000_000, **kwargs)  # type: ignore[arg-type]
