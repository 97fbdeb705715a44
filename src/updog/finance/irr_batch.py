"""Vectorised IRR of many cash-flow paths at once (for the Monte Carlo engine).

Every path shares one time axis. The rate solves, per path ``p``,

    Σ_j cashflows[p, j] * (1 + r_p) ** -(t_j - t_0) = 0

with ``t`` in years, so ``r_p`` is an annual effective rate. With ``t_j = (d_j - d_0) / 365``
the answer is :func:`updog.finance.xirr.xirr` with ``day_count="actual/365"`` (the same Newton
iteration from the same guess, and the same root-selection rule when Newton fails).

Status codes (``int8``), one per path:

====  ==========================  ============================================================
code  name                        irr
====  ==========================  ============================================================
0     ``STATUS_OK``               the rate
1     ``STATUS_NO_SIGN_CHANGE``   NaN (all flows >= 0, or all zero)
2     ``STATUS_TOTAL_LOSS``       -1.0: money paid in, nothing ever received (a total loss)
3     ``STATUS_NO_ROOT``          NaN: no root in ``[RATE_MIN, RATE_MAX]`` or no convergence
====  ==========================  ============================================================

Cost: at most ``max_newton_iterations`` Newton steps over the paths still iterating (each
O(paths × periods) numpy work); then, for the paths Newton could not solve only, a bracket per
root (the whole range when the path changes sign once, else a sign scan on ``LOG_RATE_GRID``,
one matrix product) and at most ``max_fallback_iterations`` vectorised safeguarded-Newton /
bisection steps. No Python loop runs per path.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from updog.finance.xirr import LOG_RATE_GRID, RATE_MAX, RATE_MIN, scaled_discount_matrix

__all__ = [
    "STATUS_NO_ROOT",
    "STATUS_NO_SIGN_CHANGE",
    "STATUS_OK",
    "STATUS_TOTAL_LOSS",
    "periodic_irr_batch",
]

STATUS_OK: Final[int] = 0
STATUS_NO_SIGN_CHANGE: Final[int] = 1
STATUS_TOTAL_LOSS: Final[int] = 2
STATUS_NO_ROOT: Final[int] = 3

_RESIDUAL_FLOOR: Final[float] = 1e-6  # same false-convergence guard as xirr's Newton
_BRACKET_XTOL: Final[float] = 1e-14  # relative step / bracket width in log(1 + r) to stop at
_SCAN_CHUNK_ROWS: Final[int] = 2048  # paths per scan matrix product (memory ~ rows × grid × 8 B)


def _validate(
    cashflows: ArrayLike, times_years: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    cf = np.asarray(cashflows, dtype=np.float64)
    t = np.asarray(times_years, dtype=np.float64)
    if cf.ndim != 2:
        raise ValueError(f"cashflows must have shape (paths, periods), got shape {cf.shape}")
    if t.ndim != 1 or t.shape[0] != cf.shape[1]:
        raise ValueError(
            f"times_years must have shape (periods,) = ({cf.shape[1]},), got shape {t.shape}"
        )
    if not np.all(np.isfinite(t)):
        raise ValueError("times_years must be finite")
    if t.size and np.any(np.diff(t) < 0.0):
        raise ValueError("times_years must be non-decreasing")
    if not np.all(np.isfinite(cf)):
        raise ValueError("cashflows must be finite (no NaN or inf)")
    return cf, (t - t[0] if t.size else t)


def _newton(
    cf: NDArray[np.float64],
    t: NDArray[np.float64],
    guess: float,
    tolerance: float,
    max_iterations: int,
) -> NDArray[np.float64]:
    """Newton on the rate for every row of ``cf`` (shape (rows, periods)); NaN where it fails.

    Same iteration, stopping rule and acceptance checks as ``xirr``'s Newton.
    """
    rows = cf.shape[0]
    result = np.full(rows, np.nan)
    active = np.arange(rows)
    rate = np.full(rows, guess)
    c = cf
    for _ in range(max_iterations):
        if active.size == 0:
            break
        w = _weighted_discounts(c, rate, t)
        f = w.sum(axis=1)
        fp = -(w @ t) / (1.0 + rate)
        new_rate = rate - f / fp
        failed = ~np.isfinite(new_rate) | (new_rate <= -1.0) | ~np.isfinite(f) | (fp == 0.0)
        done = ~failed & (np.abs(new_rate - rate) <= tolerance)
        if np.any(done):
            r_done = new_rate[done]
            w_done = _weighted_discounts(c[done], r_done, t)
            residual = np.abs(w_done.sum(axis=1))
            scale = np.abs(w_done, out=w_done).sum(axis=1)
            accept = (residual <= max(tolerance, _RESIDUAL_FLOOR) * scale) & (r_done >= RATE_MIN)
            accept &= r_done <= RATE_MAX
            result[active[done][accept]] = r_done[accept]
        keep = ~(failed | done)
        if not np.all(keep):
            active, c = active[keep], c[keep]
        rate = new_rate[keep]
    return result


def _weighted_discounts(
    c: NDArray[np.float64], rate: NDArray[np.float64], t: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``c[p, j] * (1 + rate[p]) ** -t[j]``, shape of ``c``, in one fresh buffer."""
    w = np.multiply.outer(-np.log1p(rate), t)
    np.exp(w, out=w)
    np.multiply(w, c, out=w)
    return w


def _sign_change_counts(cf: NDArray[np.float64]) -> NDArray[np.intp]:
    """Sign changes per row of ``cf`` (shape (rows, periods)), zeros skipped, in period order."""
    signs = np.sign(cf)
    nonzero = signs != 0.0
    columns = np.arange(cf.shape[1])
    last = np.maximum.accumulate(np.where(nonzero, columns, -1), axis=1)
    previous = np.empty_like(last)
    previous[:, 0] = -1
    previous[:, 1:] = last[:, :-1]  # index of the previous non-zero flow, -1 if none
    previous_sign = np.take_along_axis(signs, np.maximum(previous, 0), axis=1)
    changes = nonzero & (previous >= 0) & (signs != previous_sign)
    counts: NDArray[np.intp] = changes.sum(axis=1)
    return counts


def _brackets(
    cf: NDArray[np.float64], t: NDArray[np.float64]
) -> tuple[NDArray[np.intp], NDArray[np.float64], NDArray[np.float64]]:
    """Brackets ``(row, lo, hi)`` in ``x = log(1 + r)`` holding the roots of each row.

    Rows with one sign change have a unique root (Descartes' rule of signs): one bracket, the
    whole range, kept when the NPV changes sign over it. Other rows are scanned on
    ``LOG_RATE_GRID`` (one matrix product per chunk of rows): one bracket per sign change,
    and a zero-width bracket per grid point where the NPV is exactly 0.
    """
    grid = LOG_RATE_GRID
    single = _sign_change_counts(cf) == 1
    rows_1 = np.flatnonzero(single)
    ends = cf[rows_1] @ scaled_discount_matrix(grid[[0, -1]], t).T  # (rows_1, 2)
    sign_lo, sign_hi = np.sign(ends[:, 0]), np.sign(ends[:, 1])
    row_parts = [rows_1[sign_lo * sign_hi < 0.0], rows_1[sign_lo == 0.0], rows_1[sign_hi == 0.0]]
    lo_parts = [np.full(row_parts[0].size, grid[0]), np.full(row_parts[1].size, grid[0])]
    lo_parts.append(np.full(row_parts[2].size, grid[-1]))
    hi_parts = [np.full(row_parts[0].size, grid[-1]), lo_parts[1], lo_parts[2]]

    rows_n = np.flatnonzero(~single)
    if rows_n.size:
        discount_t = scaled_discount_matrix(grid, t).T  # (periods, grid)
        for start in range(0, rows_n.size, _SCAN_CHUNK_ROWS):
            chunk = rows_n[start : start + _SCAN_CHUNK_ROWS]
            signs = np.sign(cf[chunk] @ discount_t)  # (chunk, grid)
            zr, zk = np.nonzero(signs == 0.0)
            br, bk = np.nonzero(signs[:, :-1] * signs[:, 1:] < 0.0)
            row_parts += [chunk[zr], chunk[br]]
            lo_parts += [grid[zk], grid[bk]]
            hi_parts += [grid[zk], grid[bk + 1]]
    return np.concatenate(row_parts), np.concatenate(lo_parts), np.concatenate(hi_parts)


def _solve_brackets(
    c: NDArray[np.float64],
    t: NDArray[np.float64],
    lo: NDArray[np.float64],
    hi: NDArray[np.float64],
    max_iterations: int,
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Safeguarded Newton: a Newton step inside the bracket, else a bisection step.

    Works in ``x = log(1 + r)`` on the rescaled NPV of :func:`scaled_discount_matrix`; row
    ``k`` of ``c`` (shape (brackets, periods)) is the path of bracket ``[lo[k], hi[k]]``, which
    holds a sign change (or has zero width: an exact root). Returns ``(x, converged)``, both
    shape ``(brackets,)``. Only unconverged brackets are evaluated at each step.
    """
    t_max = float(t.max())

    def value_and_slope(
        rows: NDArray[np.intp], x: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        shifted = t[None, :] - np.where(x < 0.0, t_max, 0.0)[:, None]
        w = c[rows] * np.exp(-x[:, None] * shifted)
        return w.sum(axis=1), -np.einsum("ij,ij->i", w, shifted)

    lo, hi = lo.copy(), hi.copy()
    sign_lo = np.sign(value_and_slope(np.arange(lo.size), lo)[0])
    converged = hi - lo <= 0.0
    x = 0.5 * (lo + hi)
    for _ in range(max_iterations):
        todo = np.flatnonzero(~converged)
        if todo.size == 0:
            break
        xt, lt, ht = x[todo], lo[todo], hi[todo]
        h, slope = value_and_slope(todo, xt)
        sign_h = np.sign(h)
        lt = np.where(sign_h == sign_lo[todo], xt, lt)
        ht = np.where(sign_h == -sign_lo[todo], xt, ht)
        newton = xt - h / slope
        use_newton = np.isfinite(newton) & (newton > lt) & (newton < ht)
        x_new = np.where(use_newton, newton, 0.5 * (lt + ht))
        x_new = np.where(sign_h == 0.0, xt, x_new)
        tol = _BRACKET_XTOL * np.maximum(1.0, np.abs(x_new))
        done = (sign_h == 0.0) | (np.abs(x_new - xt) <= tol) | (ht - lt <= tol)
        x[todo], lo[todo], hi[todo] = x_new, lt, ht
        converged[todo] = done
    return x, converged


def _fallback(
    cf: NDArray[np.float64], t: NDArray[np.float64], guess: float, max_iterations: int
) -> NDArray[np.float64]:
    """Root closest to ``guess`` (ties: the lower rate) per row of ``cf``; NaN if none."""
    rows, lo, hi = _brackets(cf, t)
    out = np.full(cf.shape[0], np.nan)
    if rows.size == 0:
        return out
    x, converged = _solve_brackets(cf[rows], t, lo, hi, max_iterations)
    rows, rate = rows[converged], np.expm1(x[converged])
    if rows.size:
        order = np.lexsort((rate, np.abs(rate - guess), rows))
        first = np.unique(rows[order], return_index=True)[1]
        chosen = order[first]
        out[rows[chosen]] = rate[chosen]
    return out


def periodic_irr_batch(
    cashflows: ArrayLike,
    times_years: ArrayLike,
    *,
    guess: float = 0.1,
    tolerance: float = 1e-10,
    max_newton_iterations: int = 50,
    max_fallback_iterations: int = 100,
) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
    """IRR of every path of a cash-flow matrix, vectorised over paths.

    Args:
        cashflows: shape ``(paths, periods)``, dollars; negative = paid in (calls),
            positive = received (distributions, and the residual NAV in the last period).
            Finite values only; converted to float64 (the input is not modified).
        times_years: shape ``(periods,)``, the time of each period in years, non-decreasing
            (only differences matter; e.g. ``(d_j - d_0).days / 365`` for quarter-end dates).
        guess: Newton's starting rate, and the target of the fallback's root choice (> -1).
        tolerance: Newton stops for a path when a step changes its rate by at most this.
        max_newton_iterations: Newton steps at most (all paths together).
        max_fallback_iterations: bracketing steps at most for the paths Newton could not solve.

    Returns:
        ``(irr, status)``: ``irr`` shape ``(paths,)`` float64, annual effective rate as a ratio,
        NaN where undefined and -1.0 for status 2; ``status`` shape ``(paths,)`` int8 with
        the codes in the module docstring (0 ok, 1 no sign change, 2 total loss, 3 no root).

    Algorithm (as :func:`updog.finance.xirr.xirr_result` with strategy ``"hybrid"``):
    Newton from ``guess`` on all paths with a sign change; a path keeps Newton's rate when it
    converges inside ``[RATE_MIN, RATE_MAX]``. For the others every root is bracketed in
    ``log(1 + r)`` (the whole range for one sign change, whose root is unique; else the sign
    changes on ``LOG_RATE_GRID``), solved by safeguarded Newton, and the root closest to
    ``guess`` is kept.
    """
    if not (math.isfinite(guess) and guess > -1.0):
        raise ValueError(f"guess must be finite and greater than -1, got {guess!r}")
    if not (math.isfinite(tolerance) and tolerance > 0.0):
        raise ValueError(f"tolerance must be positive and finite, got {tolerance!r}")
    if max_newton_iterations < 0 or max_fallback_iterations < 0:
        raise ValueError("iteration caps must be >= 0")
    cf, t = _validate(cashflows, times_years)
    paths = cf.shape[0]

    irr = np.full(paths, np.nan)
    status = np.full(paths, STATUS_NO_SIGN_CHANGE, dtype=np.int8)
    has_out = np.any(cf < 0.0, axis=1)
    has_in = np.any(cf > 0.0, axis=1)
    total_loss = has_out & ~has_in
    irr[total_loss] = -1.0
    status[total_loss] = STATUS_TOTAL_LOSS

    solvable = np.flatnonzero(has_out & has_in)
    if solvable.size == 0:
        return irr, status
    with np.errstate(all="ignore"):
        rates = _newton(cf[solvable], t, guess, tolerance, max_newton_iterations)
        stragglers = np.flatnonzero(np.isnan(rates))
        if stragglers.size:
            rates[stragglers] = _fallback(
                cf[solvable[stragglers]], t, guess, max_fallback_iterations
            )
    irr[solvable] = rates
    status[solvable] = np.where(np.isnan(rates), STATUS_NO_ROOT, STATUS_OK).astype(np.int8)
    return irr, status
