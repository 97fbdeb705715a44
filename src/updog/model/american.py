"""Deal-by-deal (American) carry in float arithmetic, vectorised over deals.

:func:`deal_gp_share` is :func:`updog.finance.distribute` with
:meth:`~updog.finance.WaterfallPolicy.standard` terms, in numpy: for each realisation, return
of the deal's cost, a preferred return of ``hurdle × cost`` (a flat share, SPEC §3.1), the GP
catch-up under the market definition (tier ``carry · pref / (catch_up − carry)``; with
``catch_up ≤ carry`` the tier takes all that remains; no tier without a preferred return or with
``catch_up = 0``), then ``carry`` of the rest. A property test ties the two implementations.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


def deal_gp_share(
    proceeds: Array, cost: Array, carry: float, hurdle: float, catch_up: float
) -> Array:
    """GP share (dollars) of each realisation; arrays of one shape, dollars. Proceeds ≤ 0
    give 0; the LP's share is ``max(proceeds, 0) − GP share``."""
    remaining = np.maximum(proceeds, 0.0)
    remaining = remaining - np.minimum(remaining, cost)
    pref = np.minimum(remaining, hurdle * cost) if hurdle > 0.0 else np.zeros_like(remaining)
    remaining = remaining - pref
    if carry <= 0.0:
        return np.zeros_like(remaining)
    if hurdle > 0.0 and catch_up > 0.0:
        if catch_up > carry:
            size = carry * pref / (catch_up - carry)
            tier = np.minimum(remaining, size)
        else:
            tier = np.where(pref > 0.0, remaining, 0.0)
        tier = np.where(pref > 0.0, tier, 0.0)
    else:
        tier = np.zeros_like(remaining)
    remaining = remaining - tier
    out: Array = catch_up * tier + carry * remaining
    return out
