"""Property-based tests (Hypothesis) for xirr and periodic_irr_batch."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyxirr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from updog.finance import (
    RATE_MAX,
    RATE_MIN,
    STATUS_OK,
    STATUS_TOTAL_LOSS,
    periodic_irr_batch,
    xirr,
    xirr_result,
)

START = date(2000, 1, 1)
MAX_DAYS = 15 * 365
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

money = st.floats(min_value=1.0, max_value=1e9, allow_nan=False, allow_infinity=False)


@st.composite
def one_sign_change(draw: st.DrawFn) -> tuple[list[date], list[float]]:
    """Outflows first (1-4), then inflows (1-12) on later days, within ~15 years."""
    n_out = draw(st.integers(1, 4))
    n_in = draw(st.integers(1, 12))
    n = n_out + n_in
    offsets = sorted(draw(st.lists(st.integers(0, MAX_DAYS), min_size=n, max_size=n, unique=True)))
    dates = [START + timedelta(days=offset) for offset in offsets]
    amounts = [-draw(money) for _ in range(n_out)] + [draw(money) for _ in range(n_in)]
    return dates, amounts


@st.composite
def any_flows(draw: st.DrawFn) -> tuple[list[date], list[float]]:
    """Any signs, some days repeated, in any order."""
    n = draw(st.integers(2, 15))
    offsets = draw(st.lists(st.integers(0, MAX_DAYS), min_size=n, max_size=n))
    amounts = draw(st.lists(st.floats(-1e8, 1e8, allow_nan=False), min_size=n, max_size=n))
    return [START + timedelta(days=offset) for offset in offsets], amounts


def _discount_scale(rate: float, dates: list[date], amounts: list[float]) -> tuple[float, float]:
    """(NPV, Σ|a_i v_i|) at ``rate``, Actual/365, to the earliest date."""
    d0 = min(dates)
    terms = [
        a * (1.0 + rate) ** (-(d - d0).days / 365) for d, a in zip(dates, amounts, strict=True)
    ]
    return math.fsum(terms), math.fsum(abs(x) for x in terms)


# (a) agreement with pyxirr (Actual/365) ---------------------------------------------------


@PROPERTY_SETTINGS
@given(one_sign_change())
def test_agrees_with_pyxirr(flows: tuple[list[date], list[float]]) -> None:
    dates, amounts = flows
    ours = xirr(dates, amounts)
    theirs = pyxirr.xirr(dates, amounts, silent=True)
    if theirs is not None and not math.isfinite(theirs):
        theirs = None
    if ours is not None and theirs is not None:
        assert math.isclose(ours, theirs, rel_tol=1e-6, abs_tol=1e-9)
    elif ours is None and theirs is not None:
        # One sign change: the root is unique, so we only miss it when it is out of range.
        assert not RATE_MIN <= theirs <= RATE_MAX or abs(theirs - RATE_MIN) < 1e-6
    if ours is not None:
        npv, scale = _discount_scale(ours, dates, amounts)
        assert abs(npv) <= 1e-6 * scale


@PROPERTY_SETTINGS
@given(one_sign_change())
def test_one_sign_change_is_always_solved_when_in_range(
    flows: tuple[list[date], list[float]],
) -> None:
    """With a unique root, None means the root is outside [RATE_MIN, RATE_MAX]."""
    dates, amounts = flows
    result = xirr_result(dates, amounts)
    assert not result.multiple_roots
    if result.rate is None:
        npv_lo, _ = _discount_scale(RATE_MIN, dates, amounts)
        npv_hi, _ = _discount_scale(RATE_MAX, dates, amounts)
        assert npv_lo * npv_hi > 0 or math.isinf(npv_lo)


# (b) order invariance and same-day aggregation ---------------------------------------------


@PROPERTY_SETTINGS
@given(any_flows(), st.randoms(use_true_random=False))
def test_order_does_not_matter(flows: tuple[list[date], list[float]], rnd: object) -> None:
    dates, amounts = flows
    pairs = list(zip(dates, amounts, strict=True))
    rnd.shuffle(pairs)  # type: ignore[attr-defined]
    shuffled_dates, shuffled_amounts = zip(*pairs, strict=True)
    a = xirr(dates, amounts)
    b = xirr(list(shuffled_dates), list(shuffled_amounts))
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@PROPERTY_SETTINGS
@given(one_sign_change(), st.data())
def test_same_day_flows_aggregate(
    flows: tuple[list[date], list[float]], data: st.DataObject
) -> None:
    dates, amounts = flows
    i = data.draw(st.integers(0, len(dates) - 1))
    share = data.draw(st.floats(0.01, 0.99))
    hour_a, hour_b = data.draw(st.integers(0, 11)), data.draw(st.integers(12, 23))
    d = dates[i]
    split_dates: list[date | datetime] = [x for j, x in enumerate(dates) if j != i]
    split_amounts = [x for j, x in enumerate(amounts) if j != i]
    split_dates += [
        datetime(d.year, d.month, d.day, hour_a, tzinfo=UTC),
        datetime(d.year, d.month, d.day, hour_b),
    ]
    split_amounts += [amounts[i] * share, amounts[i] * (1.0 - share)]
    a = xirr(dates, amounts)
    b = xirr(split_dates, split_amounts)
    assert (a is None) == (b is None)
    if a is not None and b is not None:
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


# (c) NPV at the returned rate is ~0 ----------------------------------------------------------


@PROPERTY_SETTINGS
@given(any_flows())
def test_npv_at_rate_is_zero(flows: tuple[list[date], list[float]]) -> None:
    dates, amounts = flows
    result = xirr_result(dates, amounts)
    assert result.converged is (result.rate is not None)
    if result.rate is None:
        return
    assert RATE_MIN <= result.rate <= RATE_MAX
    npv, scale = _discount_scale(result.rate, dates, amounts)
    assert abs(npv) <= 1e-6 * scale


# (d) batch agrees with xirr per path ---------------------------------------------------------


def _quarter_end_dates(periods: int) -> list[date]:
    out = []
    for k in range(periods):
        year, quarter = 2020 + k // 4, k % 4
        first_of_next = date(year + 1, 1, 1) if quarter == 3 else date(year, 3 * quarter + 4, 1)
        out.append(first_of_next - timedelta(days=1))
    return out


@st.composite
def quarterly_matrix(draw: st.DrawFn) -> np.ndarray:
    paths = draw(st.integers(1, 12))
    periods = draw(st.integers(2, 48))
    calls = draw(st.integers(1, periods - 1))
    mixed = draw(st.booleans())  # allow flows of either sign after the call period
    rows = []
    for _ in range(paths):
        head = [-draw(st.floats(0.0, 1e7)) for _ in range(calls)]
        low = -1e6 if mixed else 0.0
        tail = [draw(st.floats(low, 1e7)) for _ in range(periods - calls)]
        rows.append(head + tail)
    return np.array(rows, dtype=np.float64)


@PROPERTY_SETTINGS
@given(quarterly_matrix())
def test_batch_agrees_with_xirr(cf: np.ndarray) -> None:
    dates = _quarter_end_dates(cf.shape[1])
    t = np.array([(d - dates[0]).days / 365 for d in dates])
    irr, status = periodic_irr_batch(cf, t)
    for row in range(cf.shape[0]):
        expected = xirr(dates, cf[row].tolist(), max_iterations=50)
        if status[row] == STATUS_TOTAL_LOSS:
            assert expected is None and irr[row] == -1.0
        elif expected is None:
            assert status[row] != STATUS_OK and np.isnan(irr[row])
        else:
            assert status[row] == STATUS_OK
            assert math.isclose(irr[row], expected, rel_tol=1e-9, abs_tol=1e-11)


# (e) all-outflow paths are a total loss ------------------------------------------------------


@PROPERTY_SETTINGS
@given(
    st.integers(1, 20).flatmap(
        lambda periods: st.lists(
            st.lists(st.floats(-1e9, 0.0), min_size=periods, max_size=periods).filter(
                lambda row: any(x < 0 for x in row)
            ),
            min_size=1,
            max_size=10,
        )
    )
)
def test_all_outflow_paths_are_total_loss(rows: list[list[float]]) -> None:
    cf = np.array(rows, dtype=np.float64)
    irr, status = periodic_irr_batch(cf, np.arange(cf.shape[1]) * 0.25)
    assert (status == STATUS_TOTAL_LOSS).all()
    assert (irr == -1.0).all()


@PROPERTY_SETTINGS
@given(quarterly_matrix())
def test_batch_is_row_independent(cf: np.ndarray) -> None:
    """A path's IRR does not depend on the other paths in the batch."""
    t = np.arange(cf.shape[1]) * 0.25
    irr, status = periodic_irr_batch(cf, t)
    for row in range(cf.shape[0]):
        one_irr, one_status = periodic_irr_batch(cf[row : row + 1], t)
        assert one_status[0] == status[row]
        assert np.array_equal(one_irr, irr[row : row + 1], equal_nan=True) or math.isclose(
            one_irr[0], irr[row], rel_tol=1e-12, abs_tol=1e-15
        )
