"""Unit tests for management_fees (SPEC §3.1)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from updog.finance import FeeBasis, FeeTier, management_fees

M = 1_000_000


def tier(rate: str, start: int, end: int, basis: FeeBasis = FeeBasis.COMMITTED) -> FeeTier:
    return FeeTier(rate=Decimal(rate), basis=basis, start_year=start, end_year=end)


def test_flat_two_percent_on_committed() -> None:
    fees = management_fees([tier("0.02", 1, 10)], 100 * M, 10)
    assert fees.yearly == (Decimal("2000000.00"),) * 10
    assert fees.total == Decimal("20000000.00")
    assert fees.average == Decimal("2000000.00")


def test_step_down_is_the_next_tier() -> None:
    fees = management_fees([tier("0.025", 1, 5), tier("0.01", 6, 10)], 100 * M, 10)
    assert fees.yearly[:5] == (Decimal("2500000.00"),) * 5
    assert fees.yearly[5:] == (Decimal("1000000.00"),) * 5
    assert fees.total == Decimal("17500000.00")


def test_fee_holiday_is_a_year_no_tier_covers() -> None:
    fees = management_fees([tier("0.02", 1, 1), tier("0.02", 3, 4)], 10 * M, 4)
    assert fees.yearly == (
        Decimal("200000.00"),
        Decimal("0.00"),
        Decimal("200000.00"),
        Decimal("200000.00"),
    )


def test_called_basis_is_capped_at_the_commitment() -> None:
    called = [20 * M, 60 * M, 120 * M]
    fees = management_fees(
        [tier("0.02", 1, 3, FeeBasis.CALLED_CUMULATIVE)], 100 * M, 3, called=called
    )
    committed = management_fees([tier("0.02", 1, 3)], 100 * M, 3)
    assert fees.yearly == (Decimal("400000.00"), Decimal("1200000.00"), Decimal("2000000.00"))
    assert all(c <= k for c, k in zip(fees.yearly, committed.yearly, strict=True))


def test_called_net_of_returns_floors_at_zero() -> None:
    fees = management_fees(
        [tier("0.02", 1, 3, FeeBasis.CALLED_NET_OF_RETURNS)],
        100 * M,
        3,
        called=[50 * M, 80 * M, 80 * M],
        returned=[0, 30 * M, 90 * M],
    )
    assert fees.yearly == (Decimal("1000000.00"), Decimal("1000000.00"), Decimal("0.00"))


def test_invested_cost_and_nav_bases() -> None:
    fees = management_fees(
        [tier("0.02", 1, 1, FeeBasis.INVESTED_COST), tier("0.01", 2, 2, FeeBasis.NAV)],
        100 * M,
        2,
        invested_cost=[40 * M, 10 * M],
        nav=[0, 250 * M],
    )
    assert fees.yearly == (Decimal("800000.00"), Decimal("2500000.00"))


def test_zero_size_and_one_year_funds() -> None:
    assert management_fees([tier("0.02", 1, 10)], 0, 10).total == Decimal("0.00")
    one = management_fees([tier("0.02", 1, 10)], 50 * M, 1)
    assert one.yearly == (Decimal("1000000.00"),)
    assert one.average == one.total


def test_each_year_is_rounded_half_up_and_the_total_is_their_sum() -> None:
    fees = management_fees([tier("0.015", 1, 3)], Decimal("1000.30"), 3)
    assert fees.yearly == (Decimal("15.00"),) * 3  # 15.0045 → 15.00
    fees = management_fees([tier("0.015", 1, 3)], Decimal("1000.50"), 3)
    assert fees.yearly == (Decimal("15.01"),) * 3  # 15.0075 → 15.01
    assert fees.total == Decimal("45.03")
    assert fees.average == Decimal("15.01")


@pytest.mark.parametrize(
    ("tiers", "size", "years", "kwargs", "message"),
    [
        ([tier("0.02", 1, 5), tier("0.01", 5, 10)], M, 10, {}, "non-overlapping"),
        ([tier("0.01", 6, 10), tier("0.02", 1, 5)], M, 10, {}, "ordered"),
        ([tier("0.02", 1, 5)], -1, 10, {}, "commitment"),
        ([tier("0.02", 1, 5)], float("nan"), 10, {}, "finite"),
        ([tier("0.02", 1, 5)], M, 0, {}, "years"),
        ([tier("0.02", 1, 5, FeeBasis.NAV)], M, 5, {}, "nav schedule"),
        ([tier("0.02", 1, 5, FeeBasis.NAV)], M, 5, {"nav": [1, 2]}, "entries"),
        ([tier("0.02", 1, 2, FeeBasis.NAV)], M, 2, {"nav": [1, -2]}, "nav"),
    ],
)
def test_bad_input_raises(
    tiers: list[FeeTier], size: float, years: int, kwargs: dict[str, list[int]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        management_fees(tiers, size, years, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"rate": 1.5, "start_year": 1, "end_year": 2},
        {"rate": -0.01, "start_year": 1, "end_year": 2},
        {"rate": float("inf"), "start_year": 1, "end_year": 2},
        {"rate": 0.02, "start_year": 3, "end_year": 2},
        {"rate": 0.02, "start_year": 0, "end_year": 2},
    ],
)
def test_bad_tier_raises(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FeeTier(**bad)
