"""Summary statistics of per-path outcomes (SPEC §3.3).

* Percentiles use linear interpolation between order statistics (numpy's default ``linear``
  method, Hyndman & Fan 1996 definition 7), exact over all paths.
* The standard error of a percentile is distribution-free: the ranks ``n·p ± sqrt(n·p·(1 − p))``
  bound a ±1σ binomial confidence interval for the p-quantile (the order-statistic method of
  e.g. Conover, *Practical Nonparametric Statistics*, §3.2); half the width of that interval,
  in the metric's units, is reported as the percentile's standard error. It shrinks like
  1/sqrt(n), so a user can see whether the run count suffices.
* VaR and CVaR at 5 % are the 5th percentile and the mean of the outcomes at or below it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99)
HISTOGRAM_BINS = 40


def percentile_standard_error(sorted_values: Array, p: float) -> float:
    """Half-width of the ±1σ order-statistic interval of the ``p`` quantile (0 < p < 1) of
    ``sorted_values`` (ascending, shape (n,)). Units of the values; 0 for n < 2."""
    n = sorted_values.size
    if n < 2:
        return 0.0
    half = math.sqrt(n * p * (1.0 - p))
    lo = max(0, math.floor(n * p - half) - 1)
    hi = min(n - 1, math.ceil(n * p + half) - 1)
    return float(sorted_values[hi] - sorted_values[lo]) / 2.0


def describe(values: Array) -> dict[str, Any]:
    """Mean, sd, percentiles p1..p99 and their standard errors of finite ``values`` (n,).

    Returns ``{"count", "mean", "sd", "p1".."p99", "se": {"mean", "p1".."p99"}}``; with no
    values, every statistic is None."""
    x = np.sort(values[np.isfinite(values)])
    n = int(x.size)
    if n == 0:
        empty: dict[str, Any] = {"count": 0, "mean": None, "sd": None}
        empty.update({f"p{p}": None for p in PERCENTILES})
        empty["se"] = {"mean": None, **{f"p{p}": None for p in PERCENTILES}}
        return empty
    qs = np.percentile(x, PERCENTILES)
    sd = float(x.std(ddof=1)) if n > 1 else 0.0
    out: dict[str, Any] = {"count": n, "mean": float(x.mean()), "sd": sd}
    out.update({f"p{p}": float(v) for p, v in zip(PERCENTILES, qs, strict=True)})
    se: dict[str, Any] = {"mean": sd / math.sqrt(n)}
    se.update({f"p{p}": percentile_standard_error(x, p / 100.0) for p in PERCENTILES})
    out["se"] = se
    return out


def tail_risk(values: Array, level: float = 0.05) -> dict[str, float | None]:
    """Value at risk (the ``level`` quantile) and conditional VaR (mean at or below it)."""
    x = values[np.isfinite(values)]
    if x.size == 0:
        return {"var": None, "cvar": None}
    var = float(np.percentile(x, 100.0 * level))
    return {"var": var, "cvar": float(x[x <= var].mean())}


def histogram(values: Array, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Fixed-width histogram of finite ``values`` from min(0, min) to the 99.5th percentile;
    outcomes above the last edge are counted in ``overflow``."""
    x = values[np.isfinite(values)]
    if x.size == 0:
        return {"edges": [], "counts": [], "overflow": 0}
    lo = min(0.0, float(x.min()))
    hi = float(np.percentile(x, 99.5))
    if hi <= lo:
        hi = lo + 1.0
    counts, edges = np.histogram(x, bins=bins, range=(lo, hi))
    return {
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "overflow": int((x > hi).sum()),
    }


def fan(values: Array) -> dict[str, list[float | None]]:
    """p10 / p50 / p90 per column of ``values`` (paths, quarters), ignoring NaN; a column
    with no finite value gives None. Columns without NaN (the usual case) take numpy's fast
    path; the others fall back to ``nanpercentile``."""
    levels = (10, 50, 90)
    quarters = values.shape[1]
    out = np.full((len(levels), quarters), np.nan)
    clean = np.isfinite(values).all(axis=0)
    if clean.any():
        out[:, clean] = np.percentile(values[:, clean], levels, axis=0)
    for j in np.nonzero(~clean)[0]:
        column = values[:, j]
        column = column[np.isfinite(column)]
        if column.size:
            out[:, j] = np.percentile(column, levels)
    return {
        f"p{p}": [None if np.isnan(v) else float(v) for v in row]
        for p, row in zip(levels, out, strict=True)
    }
