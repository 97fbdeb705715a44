"""The compiled quarter step (:mod:`updog.simulation.kernel`) adds numbers in numpy's order, so
its results are numpy's to the last bit; the seeded snapshot (``test_snapshot.py``) pins the
whole engine, these tests the arithmetic it relies on."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from updog.model.american import deal_gp_share as deal_gp_share_numpy
from updog.simulation.kernel import deal_gp_share, pairwise_sum

finite = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(arrays(np.float64, st.integers(0, 700), elements=finite), st.integers(0, 20))
def test_pairwise_sum_is_numpys_sum_to_the_last_bit(values: np.ndarray, start: int) -> None:
    start = min(start, values.size)
    tail = values[start:]
    assert pairwise_sum(values, start, tail.size) == tail.sum()


def test_pairwise_sum_of_long_rows_halves_like_numpy() -> None:
    rng = np.random.default_rng(7)
    for n in (129, 256, 257, 1000, 4099, 100_003):
        values = rng.standard_normal(n) * 10.0 ** rng.uniform(-6, 9, n)
        assert pairwise_sum(values, 0, n) == values.sum()


@settings(max_examples=200, deadline=None)
@given(
    st.floats(-1e9, 1e10),
    st.floats(0, 1e9),
    st.floats(0, 1e9),
    st.sampled_from([(0.2, 1.0), (0.2, 0.0), (0.25, 0.8), (0.0, 0.0)]),
)
def test_deal_gp_share_is_the_numpy_rule(
    proceeds: float, cost: float, pref: float, terms: tuple[float, float]
) -> None:
    carry, catch_up = terms
    expected = deal_gp_share_numpy(
        np.array([proceeds]), np.array([cost]), np.array([pref]), carry, catch_up
    )[0]
    assert deal_gp_share(proceeds, cost, pref, carry, catch_up) == expected
