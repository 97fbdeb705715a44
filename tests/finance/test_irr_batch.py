"""Unit tests for periodic_irr_batch: statuses, shapes, errors, agreement, speed."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from updog.finance import (
    STATUS_NO_ROOT,
    STATUS_NO_SIGN_CHANGE,
    STATUS_OK,
    STATUS_TOTAL_LOSS,
    periodic_irr_batch,
    xirr,
)


def quarter_ends(first: date, periods: int) -> list[date]:
    """Last day of ``periods`` consecutive quarters, the first one containing ``first``."""
    out = []
    year, quarter = first.year, (first.month - 1) // 3
    for _ in range(periods):
        year_next, month_next = (year + 1, 1) if quarter == 3 else (year, 3 * quarter + 4)
        out.append(date(year_next, month_next, 1) - timedelta(days=1))
        year, quarter = (year + 1, 0) if quarter == 3 else (year, quarter + 1)
    return out


def times_of(dates: list[date]) -> np.ndarray:
    return np.array([(d - dates[0]).days / 365 for d in dates], dtype=np.float64)


def test_quarter_ends_helper() -> None:
    assert quarter_ends(date(2020, 2, 10), 5) == [
        date(2020, 3, 31),
        date(2020, 6, 30),
        date(2020, 9, 30),
        date(2020, 12, 31),
        date(2021, 3, 31),
    ]


def test_statuses_and_values() -> None:
    dates = quarter_ends(date(2020, 1, 1), 8)
    t = times_of(dates)
    cf = np.zeros((6, 8))
    cf[0, 0], cf[0, 7] = -100.0, 150.0  # ok
    cf[1, :] = 10.0  # all positive
    # row 2 all zero
    cf[3, :4] = -25.0  # paid in, nothing back
    cf[4, 0], cf[4, 1] = -100.0, 1e6  # 10,000x in a quarter: far above RATE_MAX
    cf[5, 0], cf[5, 3], cf[5, 7] = -100.0, 230.0, -132.0  # several sign changes

    irr, status = periodic_irr_batch(cf, t)

    assert irr.shape == (6,) and irr.dtype == np.float64
    assert status.shape == (6,) and status.dtype == np.int8
    assert status.tolist() == [
        STATUS_OK,
        STATUS_NO_SIGN_CHANGE,
        STATUS_NO_SIGN_CHANGE,
        STATUS_TOTAL_LOSS,
        STATUS_NO_ROOT,
        STATUS_OK,
    ]
    assert irr[0] == pytest.approx(1.5 ** (1 / t[7]) - 1, rel=1e-12)
    assert np.isnan(irr[[1, 2, 4]]).all()
    assert irr[3] == -1.0
    for row in (0, 5):
        assert irr[row] == pytest.approx(xirr(dates, cf[row].tolist()), rel=1e-10)


def test_status_codes_are_documented_values() -> None:
    assert (STATUS_OK, STATUS_NO_SIGN_CHANGE, STATUS_TOTAL_LOSS, STATUS_NO_ROOT) == (0, 1, 2, 3)


def test_total_loss_with_zeros_and_single_period() -> None:
    irr, status = periodic_irr_batch(
        np.array([[-1.0, 0.0, 0.0], [-5.0, -5.0, -5.0]]), np.arange(3.0)
    )
    assert status.tolist() == [STATUS_TOTAL_LOSS, STATUS_TOTAL_LOSS]
    assert irr.tolist() == [-1.0, -1.0]


def test_loss_making_paths_use_the_fallback() -> None:
    # Newton from 0.1 overshoots below -1 on a 90 % loss; the bracketing fallback solves it.
    t = np.array([0.0, 5.0])
    irr, status = periodic_irr_batch(np.array([[-10e6, 1e6]]), t)
    assert status.tolist() == [STATUS_OK]
    assert irr[0] == pytest.approx(0.1 ** (1 / 5) - 1, rel=1e-12)


def test_multi_root_fallback_picks_root_closest_to_guess() -> None:
    t = np.array([0.0, 1.0, 2.0])
    cf = np.array([[-100.0, 230.0, -132.0]])
    assert periodic_irr_batch(cf, t)[0][0] == pytest.approx(0.1, abs=1e-12)
    assert periodic_irr_batch(cf, t, guess=0.25)[0][0] == pytest.approx(0.2, abs=1e-12)
    # No Newton at all: the fallback alone picks by distance to guess.
    for guess, expected in [(0.14, 0.1), (0.16, 0.2)]:
        irr, _ = periodic_irr_batch(cf, t, guess=guess, max_newton_iterations=0)
        assert irr[0] == pytest.approx(expected, abs=1e-12)


def test_times_need_not_start_at_zero() -> None:
    cf = np.array([[-100.0, 0.0, 121.0]])
    a, _ = periodic_irr_batch(cf, np.array([0.0, 1.0, 2.0]))
    b, _ = periodic_irr_batch(cf, np.array([3.0, 4.0, 5.0]))
    assert a[0] == pytest.approx(0.1, rel=1e-12)
    assert b[0] == pytest.approx(a[0], rel=1e-12)


def test_empty_inputs() -> None:
    irr, status = periodic_irr_batch(np.zeros((0, 4)), np.arange(4.0))
    assert irr.shape == (0,) and status.shape == (0,)
    irr, status = periodic_irr_batch(np.zeros((3, 0)), np.zeros(0))
    assert status.tolist() == [STATUS_NO_SIGN_CHANGE] * 3


def test_input_is_not_modified() -> None:
    cf = np.array([[-100.0, 50.0, 80.0]])
    t = np.array([1.0, 2.0, 3.0])
    before = cf.copy(), t.copy()
    periodic_irr_batch(cf, t)
    assert np.array_equal(cf, before[0]) and np.array_equal(t, before[1])


@pytest.mark.parametrize(
    ("cashflows", "times", "message"),
    [
        (np.zeros(4), np.arange(4.0), "shape"),
        (np.zeros((2, 4)), np.arange(3.0), "times_years must have shape"),
        (np.zeros((2, 4)), np.zeros((4, 1)), "times_years must have shape"),
        (np.array([[-1.0, np.nan]]), np.arange(2.0), "finite"),
        (np.array([[-1.0, np.inf]]), np.arange(2.0), "finite"),
        (np.array([[-1.0, 2.0]]), np.array([0.0, np.nan]), "finite"),
        (np.array([[-1.0, 2.0]]), np.array([1.0, 0.0]), "non-decreasing"),
    ],
)
def test_bad_input(cashflows: np.ndarray, times: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        periodic_irr_batch(cashflows, times)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"guess": -1.0},
        {"guess": float("nan")},
        {"tolerance": 0.0},
        {"tolerance": -1.0},
        {"max_newton_iterations": -1},
        {"max_fallback_iterations": -1},
    ],
)
def test_bad_options(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        periodic_irr_batch(np.array([[-1.0, 2.0]]), np.arange(2.0), **kwargs)  # type: ignore[arg-type]


def _vc_like(rng: np.random.Generator, paths: int, periods: int) -> np.ndarray:
    cf = np.zeros((paths, periods))
    calls = periods // 3
    cf[:, :calls] = -rng.uniform(0.0, 1e6, (paths, calls))
    later = periods - calls
    cf[:, calls:] = rng.lognormal(10.0, 2.0, (paths, later)) * (rng.random((paths, later)) < 0.3)
    cf[:, -1] += rng.uniform(0.0, 2e7, paths)  # residual NAV
    cf[:, calls:] -= rng.uniform(0.0, 5e4, (paths, later)) * (rng.random((paths, later)) < 0.2)
    return cf


def test_agrees_with_xirr_on_vc_like_paths() -> None:
    rng = np.random.default_rng(20250101)
    dates = quarter_ends(date(2021, 1, 1), 40)
    cf = _vc_like(rng, 300, 40)
    irr, status = periodic_irr_batch(cf, times_of(dates))
    for row in range(cf.shape[0]):
        expected = xirr(dates, cf[row].tolist(), max_iterations=50)
        if expected is None:
            assert status[row] != STATUS_OK
        else:
            assert status[row] == STATUS_OK
            assert irr[row] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_ten_thousand_vc_like_paths_almost_all_solve() -> None:
    """Speed is measured by ``benchmarks/irr_batch.py``, not asserted here (a wall-clock bound
    failed twice under load)."""
    rng = np.random.default_rng(7)
    dates = quarter_ends(date(2021, 1, 1), 60)
    _, status = periodic_irr_batch(_vc_like(rng, 10_000, 60), times_of(dates))
    assert (status == STATUS_OK).mean() > 0.99
