"""Unit tests for xirr / xirr_result / xnpv: examples, every None case, every error."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, get_args

import pytest

from updog.finance import (
    RATE_MAX,
    RATE_MIN,
    XIRR_REASONS,
    Strategy,
    XirrReason,
    XirrResult,
    xirr,
    xirr_result,
    xnpv,
)

D0 = date(2020, 1, 1)
D5 = date(2025, 1, 1)


# --- examples from SPEC §3.1 -------------------------------------------------------------


def test_spec_example_actual_365_25() -> None:
    assert xirr([D0, D5], [-10e6, 25e6], day_count="actual/365.25") == pytest.approx(
        0.20103407784113647, rel=1e-12
    )


def test_spec_example_actual_365_is_the_default() -> None:
    assert xirr([D0, D5], [-10e6, 25e6]) == pytest.approx(0.2008834994, abs=1e-10)


def test_day_count_is_case_insensitive() -> None:
    assert xirr([D0, D5], [-10e6, 25e6], day_count="Actual/365.25") == pytest.approx(  # type: ignore[arg-type]
        0.20103407784113647, rel=1e-12
    )


@pytest.mark.parametrize("strategy", ["newton", "bisection", "hybrid", "Hybrid", "NEWTON"])
def test_every_strategy_finds_the_unique_root(strategy: str) -> None:
    rate = xirr([D0, D5], [-10e6, 25e6], strategy=strategy)  # type: ignore[arg-type]
    assert rate == pytest.approx(2.5 ** (365 / (D5 - D0).days) - 1, rel=1e-12)


def test_result_reports_solver() -> None:
    newton = xirr_result([D0, D5], [-10e6, 25e6])
    assert newton == XirrResult(newton.rate, True, "newton", newton.iterations, False)
    assert 0 < newton.iterations < 20
    brent = xirr_result([D0, D5], [-10e6, 25e6], strategy="bisection")
    assert brent.method == "brent" and brent.converged and brent.rate is not None
    assert brent.rate == pytest.approx(newton.rate, rel=1e-12)


def test_result_is_frozen() -> None:
    result = xirr_result([D0, D5], [-1.0, 2.0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.rate = 0.0  # type: ignore[misc]


def test_hybrid_falls_back_when_newton_overshoots_below_minus_one() -> None:
    # A 90 % loss: Newton from 0.1 jumps below -1; the bracketing solver finds the rate.
    newton = xirr_result([D0, D5], [-10e6, 1e6], strategy="newton")
    assert newton.rate is None and newton.method == "newton" and not newton.converged
    hybrid = xirr_result([D0, D5], [-10e6, 1e6])
    assert hybrid.method == "brent" and hybrid.converged
    assert hybrid.rate == pytest.approx(0.1 ** (365 / (D5 - D0).days) - 1, rel=1e-12)


def test_leap_day_and_datetime_inputs() -> None:
    rate = xirr([datetime(2020, 2, 28, 9), datetime(2020, 3, 1, 17)], [-100.0, 101.0])
    assert rate == pytest.approx(1.01 ** (365 / 2) - 1, rel=1e-12)


def test_timezone_aware_datetimes_use_the_utc_date() -> None:
    # 2019-12-31 22:00 at UTC-05:00 is 2020-01-01 03:00 UTC.
    eastern = timezone(timedelta(hours=-5))
    local = [datetime(2019, 12, 31, 22, tzinfo=eastern), datetime(2025, 1, 1, tzinfo=UTC)]
    assert xirr(local, [-10e6, 25e6]) == xirr([D0, D5], [-10e6, 25e6])


def test_amounts_may_be_ints_or_decimals() -> None:
    from decimal import Decimal

    assert xirr([D0, D5], [Decimal("-10000000"), 25_000_000]) == xirr(  # type: ignore[list-item]
        [D0, D5], [-10e6, 25e6]
    )


def test_zero_flows_are_allowed() -> None:
    dates = [D0, date(2022, 1, 1), D5]
    assert xirr(dates, [-10e6, 0.0, 25e6]) == pytest.approx(xirr([D0, D5], [-10e6, 25e6]))


# --- multiple roots ---------------------------------------------------------------------
# -100, +230, -132 one 365-day year apart: NPV = 0 at exactly 10 % and 20 %.

MULTI_DATES = [date(2021, 1, 1), date(2022, 1, 1), date(2023, 1, 1)]
MULTI_AMOUNTS = [-100.0, 230.0, -132.0]


def test_multiple_roots_newton_from_guess_is_the_excel_answer() -> None:
    result = xirr_result(MULTI_DATES, MULTI_AMOUNTS)
    assert result.rate == pytest.approx(0.1, abs=1e-12)
    assert result.multiple_roots and result.method == "newton"
    high = xirr_result(MULTI_DATES, MULTI_AMOUNTS, guess=0.25)
    assert high.rate == pytest.approx(0.2, abs=1e-12) and high.multiple_roots


@pytest.mark.parametrize(("guess", "expected"), [(0.0, 0.1), (0.14, 0.1), (0.16, 0.2), (1.0, 0.2)])
def test_multiple_roots_bracketing_returns_the_root_closest_to_guess(
    guess: float, expected: float
) -> None:
    result = xirr_result(MULTI_DATES, MULTI_AMOUNTS, strategy="bisection", guess=guess)
    assert result.rate == pytest.approx(expected, abs=1e-12)
    assert result.multiple_roots and result.method == "brent"


def test_newton_strategy_reports_multiple_roots_too() -> None:
    assert xirr_result(MULTI_DATES, MULTI_AMOUNTS, strategy="newton").multiple_roots


def test_single_sign_change_is_never_multiple() -> None:
    dates = [D0, date(2021, 1, 1), date(2023, 1, 1), D5]
    assert not xirr_result(dates, [-5e6, -1e7, 5e6, 4e7]).multiple_roots


def test_several_sign_changes_with_one_root_is_not_multiple() -> None:
    dates = [date(2020, 1, 1), date(2020, 4, 1), date(2020, 7, 1), date(2022, 1, 1)]
    result = xirr_result(dates, [-20e6, 5e6, -3e6, 30e6])
    assert result.rate is not None and not result.multiple_roots


# --- None cases ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dates", "amounts", "reason"),
    [
        pytest.param([], [], "TOO_FEW_FLOWS", id="empty"),
        pytest.param([D0], [-1e6], "TOO_FEW_FLOWS", id="single-flow"),
        pytest.param([D0, D5], [1e6, 2e6], "NO_SIGN_CHANGE", id="all-positive"),
        pytest.param([D0, D5], [-1e6, -2e6], "NO_SIGN_CHANGE", id="all-negative"),
        pytest.param([D0, D5], [0.0, 0.0], "NO_SIGN_CHANGE", id="all-zero"),
        pytest.param([D0, D5], [-1e6, 0.0], "NO_SIGN_CHANGE", id="outflow-and-zero"),
        pytest.param(
            [datetime(2020, 1, 1, 8), datetime(2020, 1, 1, 16)],
            [-1e6, 2e6],
            "TOO_FEW_FLOWS",
            id="one-day-nets",
        ),
    ],
)
def test_no_sign_change_or_too_few_flows_is_none(
    dates: list[date], amounts: list[float], reason: XirrReason
) -> None:
    assert xirr(dates, amounts) is None
    assert xirr_result(dates, amounts) == XirrResult(
        None, False, "none", 0, False, reason, XIRR_REASONS[reason]
    )


def test_a_found_rate_has_no_reason() -> None:
    for strategy in ("newton", "bisection", "hybrid"):
        result = xirr_result([D0, D5], [-10e6, 25e6], strategy=strategy)  # type: ignore[arg-type]
        assert result.rate is not None
        assert (result.reason, result.reason_message) == (None, None)


def test_a_result_has_a_rate_or_a_reason() -> None:
    with pytest.raises(ValueError, match="rate or a reason"):
        XirrResult(None, False, "none", 0, False)
    with pytest.raises(ValueError, match="rate or a reason"):
        XirrResult(0.1, True, "newton", 3, False, "NO_SIGN_CHANGE")


def test_every_reason_has_a_sentence() -> None:
    assert set(XIRR_REASONS) == set(get_args(XirrReason))
    assert all(text.endswith(".") for text in XIRR_REASONS.values())


def test_root_above_range_is_none() -> None:
    # 10x in one month: the IRR is about 6e11, far above RATE_MAX.
    dates = [D0, date(2020, 2, 1)]
    strategies: tuple[Strategy, ...] = ("newton", "bisection", "hybrid")
    for strategy in strategies:
        result = xirr_result(dates, [-10e6, 100e6], strategy=strategy)
        assert result.rate is None and not result.converged
        assert result.reason == "NO_ROOT_IN_RANGE", strategy


def test_root_below_range_is_none() -> None:
    # Nearly everything lost in a day: 1 + r = 1e-12 ** 365.
    assert xirr([D0, date(2020, 1, 2)], [-1e6, 1e-6]) is None
    for strategy in ("newton", "bisection", "hybrid"):
        result = xirr_result([D0, date(2020, 1, 2)], [-1e6, 1e-6], strategy=strategy)  # type: ignore[arg-type]
        assert result.reason == "NO_ROOT_IN_RANGE", strategy


def test_root_at_the_edge_of_range_is_found() -> None:
    # 366 days at 199 (19,900 %) a year.
    rate = xirr([D0, date(2021, 1, 1)], [-1.0, 200.0 ** (366 / 365)])
    assert rate is not None and RATE_MIN <= rate <= RATE_MAX
    assert rate == pytest.approx(199.0, rel=1e-12)


def test_no_root_with_several_sign_changes_is_none() -> None:
    dates = [date(2020, 1, 1), date(2020, 1, 15), date(2020, 2, 1), date(2020, 3, 1)]
    result = xirr_result(dates, [-100_000, 250_000, -180_000, 100_000], day_count="actual/365.25")
    assert result.rate is None and not result.converged and result.method == "brent"
    assert result.reason == "NO_ROOT_IN_RANGE"
    newton = xirr_result(
        dates, [-100_000, 250_000, -180_000, 100_000], day_count="actual/365.25", strategy="newton"
    )
    assert newton.reason == "NO_ROOT_IN_RANGE"


def test_newton_iteration_cap_is_none_not_an_error() -> None:
    result = xirr_result([D0, D5], [-10e6, 25e6], strategy="newton", max_iterations=1)
    assert result == XirrResult(
        None, False, "newton", 1, False, "DID_NOT_CONVERGE", XIRR_REASONS["DID_NOT_CONVERGE"]
    )


def test_brent_iteration_cap_did_not_converge() -> None:
    result = xirr_result([D0, D5], [-10e6, 25e6], strategy="bisection", max_iterations=1)
    assert (result.rate, result.method, result.reason) == (None, "brent", "DID_NOT_CONVERGE")


def test_hybrid_with_tiny_iteration_cap_falls_back_or_gives_none() -> None:
    result = xirr_result([D0, D5], [-10e6, 25e6], max_iterations=1)
    assert result.rate is None or result.method == "brent"


# --- errors ----------------------------------------------------------------------------


def test_lengths_differ() -> None:
    with pytest.raises(ValueError, match="same length"):
        xirr([D0, D5], [-1.0])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_amount(bad: float) -> None:
    with pytest.raises(ValueError, match=r"amounts\[1\] must be finite"):
        xirr([D0, D5], [-1.0, bad])


@pytest.mark.parametrize("day_count", ["30/360", "actual/360", "", "365"])
def test_unknown_day_count(day_count: str) -> None:
    with pytest.raises(ValueError, match="unknown day_count"):
        xirr([D0, D5], [-1.0, 2.0], day_count=day_count)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["secant", "brent", ""])
def test_unknown_strategy(strategy: str) -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        xirr([D0, D5], [-1.0, 2.0], strategy=strategy)  # type: ignore[arg-type]


@pytest.mark.parametrize("tolerance", [0.0, -1e-7, math.nan, math.inf])
def test_bad_tolerance(tolerance: float) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        xirr([D0, D5], [-1.0, 2.0], tolerance=tolerance)


@pytest.mark.parametrize("max_iterations", [0, -5])
def test_non_positive_max_iterations(max_iterations: int) -> None:
    with pytest.raises(ValueError, match="max_iterations"):
        xirr([D0, D5], [-1.0, 2.0], max_iterations=max_iterations)


@pytest.mark.parametrize("max_iterations", [1.5, True, "10"])
def test_non_integer_max_iterations(max_iterations: Any) -> None:
    with pytest.raises(TypeError, match="max_iterations"):
        xirr([D0, D5], [-1.0, 2.0], max_iterations=max_iterations)


@pytest.mark.parametrize("guess", [-1.0, -2.0, math.nan, math.inf])
def test_bad_guess(guess: float) -> None:
    with pytest.raises(ValueError, match="guess"):
        xirr([D0, D5], [-1.0, 2.0], guess=guess)


@pytest.mark.parametrize("bad_date", ["2020-01-01", 20200101, None])
def test_bad_date_type(bad_date: Any) -> None:
    with pytest.raises(TypeError, match="dates must be"):
        xirr([bad_date, D5], [-1.0, 2.0])


def test_bad_amount_type() -> None:
    with pytest.raises(TypeError, match=r"amounts\[0\] is not a number"):
        xirr([D0, D5], ["abc", 2.0])  # type: ignore[list-item]


def test_errors_are_raised_even_when_the_result_would_be_none() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        xirr([], [], strategy="nope")  # type: ignore[arg-type]


# --- xnpv ------------------------------------------------------------------------------


def test_xnpv_discounts_to_the_earliest_date() -> None:
    npv = xnpv(0.1, [date(2021, 1, 1), date(2020, 1, 1)], [110.0, -100.0], day_count="actual/365")
    assert npv == pytest.approx(110.0 / 1.1 ** (366 / 365) - 100.0, rel=1e-12)


def test_xnpv_is_zero_at_xirr() -> None:
    dates = [D0, date(2021, 6, 1), date(2023, 12, 31)]
    amounts = [-100_000.0, -50_000.0, 120_000.0]
    rate = xirr(dates, amounts)
    assert rate is not None
    assert abs(xnpv(rate, dates, amounts)) < 1e-6


@pytest.mark.parametrize("rate", [-1.0, -1.5, math.nan])
def test_xnpv_bad_rate(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        xnpv(rate, [D0, D5], [-1.0, 2.0])
