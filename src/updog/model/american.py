"""Deal-by-deal (American) carry in float arithmetic, vectorised over deals.

:func:`deal_gp_share` is :func:`updog.finance.distribute` in numpy: for each realisation,
return of the deal's cost, its preferred return, the GP catch-up under the market definition
(tier ``carry · pref / (catch_up − carry)``; no tier without a preferred return or with
``catch_up = 0``), then ``carry`` of the rest. The engines pass the preferred return compounded
annually over the deal's holding period from each contribution (:func:`compounded_pref`), as
every published worked example of a deal-by-deal waterfall does (8 % a year on a deal held six
years is about 59 % of cost; Metrick & Yasuda, "The Economics of Private Equity Funds", RFS
2010, §2.3); ``distribute``'s flat ``hurdle × cost`` is the same function with ``pref =
hurdle × cost``. Property tests tie both forms to the kernel.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def quarterly_growth(hurdle: float) -> float:
    """Growth factor of one quarter at an annually compounded ``hurdle``: (1 + h)^(1/4)."""
    return float((1.0 + hurdle) ** 0.25)


def compounded_pref(
    discounted_cost: Array, cost: Array, quarter: int | Array, hurdle: float
) -> Array:
    """Preferred return (dollars) at ``quarter`` of deals whose contributions ``c_i`` made in
    quarters ``t_i`` sum to ``cost`` and, discounted, to ``discounted_cost = Σ c_i · g^(−t_i)``
    with ``g = (1 + hurdle)^(1/4)``: ``Σ c_i ((1 + hurdle)^((quarter − t_i)/4) − 1) =
    g^quarter · discounted_cost − cost`` (never below 0). Arrays broadcast together."""
    growth = quarterly_growth(hurdle) ** np.asarray(quarter, dtype=np.float64)
    out: Array = np.maximum(growth * discounted_cost - cost, 0.0)
    return out


def deal_gp_share(
    proceeds: Array, cost: Array, pref: Array, carry: float, catch_up: float
) -> Array:
    """GP share (dollars) of each realisation; ``proceeds``, ``cost`` and ``pref`` (the
    preferred return due on the deal) broadcast together, dollars. Proceeds ≤ 0 give 0; the
    LP's share is ``max(proceeds, 0) − GP share``. Raises ValueError when ``catch_up`` is neither
    0 nor above ``carry``."""
    if 0.0 < catch_up <= carry:
        raise ValueError("a catch-up must be 0 or above the carry rate")
    remaining = np.maximum(proceeds, 0.0)
    remaining = remaining - np.minimum(remaining, cost)
    paid_pref = np.minimum(remaining, pref)
    remaining = remaining - paid_pref
    if carry <= 0.0:
        return np.zeros_like(remaining)
    if catch_up > 0.0:
        tier = np.minimum(remaining, carry * paid_pref / (catch_up - carry))
    else:
        tier = np.zeros_like(remaining)
    remaining = remaining - tier
    out: Array = catch_up * tier + carry * remaining
    return out
