"""Excel-compatible XIRR: the internal rate of return of dated cash flows.

The rate ``r`` solves

    NPV(r) = Σ_i a_i / (1 + r) ** ((d_i - d_0) / basis) = 0

where ``a_i`` are the amounts in dollars (negative = paid in, positive = received), ``d_i``
their dates, ``d_0`` the earliest date and ``basis`` the day-count denominator in days. ``r`` is
an annual effective rate expressed as a ratio (0.2 = 20 % a year).

Sources:

* Microsoft, "XIRR function" (Excel documentation): XIRR solves the equation above with
  ``basis = 365`` by Newton's method from ``guess`` (default 0.1) and gives up (``#NUM!``)
  when it does not converge; the same convention is used by ``pyxirr``.
* Day counts (ISDA 2006 Definitions §4.16; Excel ``YEARFRAC`` basis 3): ``"actual/365"`` is
  Actual/365 Fixed (actual days / 365). ``"actual/365.25"`` divides actual days by the mean
  Julian year; it is the convention of the project's XIRR truth cases.

Robustness beyond Excel: when Newton fails, a bracketing solver (Brent's method,
``scipy.optimize.brentq``) solves every sign change found by a scan of the admissible range
``[RATE_MIN, RATE_MAX]``; see :func:`xirr_result` for the exact rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Final, Literal

import numpy as np
import scipy.optimize  # type: ignore[import-untyped]
from numpy.typing import NDArray
from pydantic import Field

__all__ = [
    "DAY_COUNT_BASIS",
    "LOG_RATE_GRID",
    "RATE_MAX",
    "RATE_MIN",
    "XIRR_REASONS",
    "DayCount",
    "Strategy",
    "XirrReason",
    "XirrResult",
    "scaled_discount_matrix",
    "xirr",
    "xirr_result",
    "xnpv",
]

DayCount = Literal["actual/365", "actual/365.25"]
Strategy = Literal["newton", "bisection", "hybrid"]
#: Why a rate is undefined (:attr:`XirrResult.reason`); stable codes.
XirrReason = Literal["TOO_FEW_FLOWS", "NO_SIGN_CHANGE", "NO_ROOT_IN_RANGE", "DID_NOT_CONVERGE"]

#: Lowest admissible rate (a 99.9999 % annual loss). Rates at or below -1 are undefined.
RATE_MIN: Final[float] = -0.999999
#: Highest admissible rate (20,000 % a year).
RATE_MAX: Final[float] = 200.0
#: Day-count convention → denominator in days.
DAY_COUNT_BASIS: Final[Mapping[str, float]] = {"actual/365": 365.0, "actual/365.25": 365.25}
_STRATEGIES: Final[frozenset[str]] = frozenset({"newton", "bisection", "hybrid"})

#: Scan grid for the bracketing solver, uniform in ``x = log(1 + r)`` over
#: ``[log1p(RATE_MIN), log1p(RATE_MAX)]`` (about 0.96 % steps in ``1 + r``). Two roots closer
#: together than one grid step can be missed by the scan; Newton may still find one of them.
LOG_RATE_GRID: Final[NDArray[np.float64]] = np.linspace(
    math.log1p(RATE_MIN), math.log1p(RATE_MAX), 2001, dtype=np.float64
)
LOG_RATE_GRID.flags.writeable = False

#: A sentence per :data:`XirrReason`, for people (:attr:`XirrResult.reason_message`).
XIRR_REASONS: Final[Mapping[XirrReason, str]] = {
    "TOO_FEW_FLOWS": "Fewer than two dates carry cash flows once same-day flows are summed; "
    "an IRR needs flows on at least two dates.",
    "NO_SIGN_CHANGE": "The cash flows never change sign (money only paid in, or only "
    "received), so no rate makes their net present value zero.",
    "NO_ROOT_IN_RANGE": "No rate in [-0.999999, 200] makes the net present value zero: the "
    "return, if any, lies outside the admissible range.",
    "DID_NOT_CONVERGE": "The solver stopped before it converged (the iteration cap, or "
    "Newton's method failing from the guess); raise max_iterations, change the guess or use "
    "the hybrid strategy.",
}

# Newton's answer is accepted only if |NPV| <= max(tolerance, 1e-6) * Σ|a_i v_i| there: this
# rejects false convergence where the step is small only because the derivative is huge.
_RESIDUAL_FLOOR: Final[float] = 1e-6
# Brent is run to near machine precision in x = log(1 + r); it costs a few dozen evaluations.
_BRENT_XTOL: Final[float] = 1e-15
# Two roots closer than this (relative to max(1, |r|)) count as one.
_SAME_ROOT: Final[float] = 1e-6


@dataclass(frozen=True, slots=True)
class XirrResult:
    """Outcome of :func:`xirr_result`: the rate, or null and why.

    Attributes:
        rate: annual effective rate as a ratio (0.2 = 20 %), or None when undefined.
        converged: True when ``rate`` is a root found by a solver.
        method: ``"newton"`` or ``"brent"`` (the solver that produced ``rate``, or the last one
            tried), or ``"none"`` when no solver ran (no sign change, fewer than 2 flows).
        iterations: solver iterations spent in total (Newton steps plus Brent iterations).
        multiple_roots: True when more than one rate in ``[RATE_MIN, RATE_MAX]`` zeroes the NPV
            (possible only with more than one sign change in the dated flows).
        reason: None when ``rate`` was found; otherwise why not (:data:`XirrReason`):
            ``TOO_FEW_FLOWS`` (fewer than 2 dates after same-day aggregation),
            ``NO_SIGN_CHANGE`` (all flows of one sign, or zero), ``NO_ROOT_IN_RANGE`` (no rate
            in ``[RATE_MIN, RATE_MAX]`` zeroes the NPV), ``DID_NOT_CONVERGE`` (a root may
            exist but the solver stopped: Newton only, or the iteration cap).
        reason_message: a sentence explaining ``reason`` (:data:`XIRR_REASONS`), or None.
    """

    rate: Annotated[
        float | None,
        Field(description="Annual effective rate as a ratio (0.2 = 20 %); null when undefined."),
    ]
    converged: Annotated[bool, Field(description="True when rate is a root a solver found.")]
    method: Annotated[
        str,
        Field(
            description="newton or brent: the solver that produced rate (or the last one "
            "tried); none when no solver ran."
        ),
    ]
    iterations: Annotated[int, Field(description="Solver iterations spent in total.")]
    multiple_roots: Annotated[
        bool,
        Field(description="True when more than one rate in [-0.999999, 200] zeroes the NPV."),
    ]
    reason: Annotated[
        XirrReason | None,
        Field(
            description="Null when a rate was found; otherwise why rate is null: TOO_FEW_FLOWS "
            "(fewer than two dates once same-day flows are summed), NO_SIGN_CHANGE (flows "
            "all of one sign), NO_ROOT_IN_RANGE (no rate in [-0.999999, 200] zeroes the NPV), "
            "DID_NOT_CONVERGE (the solver stopped before converging: newton strategy or the "
            "iteration cap)."
        ),
    ] = None
    reason_message: Annotated[
        str | None, Field(description="A sentence explaining reason; null with a rate.")
    ] = None

    def __post_init__(self) -> None:
        if (self.rate is None) == (self.reason is None):
            raise ValueError("an XirrResult has a rate or a reason, not both and not neither")


def _undefined(reason: XirrReason, method: str, iterations: int, multiple: bool) -> XirrResult:
    return XirrResult(None, False, method, iterations, multiple, reason, XIRR_REASONS[reason])


def _to_date(value: date | datetime) -> date:
    """Calendar date of ``value``; timezone-aware datetimes are converted to UTC first."""
    if isinstance(value, datetime):
        if value.tzinfo is not None and value.utcoffset() is not None:
            value = value.astimezone(UTC)
        return value.date()
    if isinstance(value, date):
        return value
    raise TypeError(f"dates must be datetime.date or datetime.datetime, got {type(value).__name__}")


def _basis(day_count: str) -> float:
    key = day_count.strip().lower() if isinstance(day_count, str) else day_count
    if key not in DAY_COUNT_BASIS:
        allowed = ", ".join(sorted(DAY_COUNT_BASIS))
        raise ValueError(f"unknown day_count {day_count!r}; expected one of: {allowed}")
    return DAY_COUNT_BASIS[key]


def _prepare(
    dates: Sequence[date | datetime], amounts: Sequence[float], basis: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Validate, aggregate same-day flows and sort by date.

    Returns ``(times, values)``, both shape ``(n,)``: ``times`` in years from the earliest date
    (``days / basis``), ``values`` the aggregated amounts in dollars, in date order.
    """
    if isinstance(dates, (str, bytes)) or isinstance(amounts, (str, bytes)):
        raise TypeError("dates and amounts must be sequences, not strings")
    dates = list(dates)
    amounts = list(amounts)
    if len(dates) != len(amounts):
        raise ValueError(
            f"dates and amounts must have the same length (got {len(dates)} and {len(amounts)})"
        )
    by_day: dict[date, float] = {}
    for i, (d, a) in enumerate(zip(dates, amounts, strict=True)):
        try:
            value = float(a)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"amounts[{i}] is not a number: {a!r}") from exc
        if not math.isfinite(value):
            raise ValueError(f"amounts[{i}] must be finite, got {value!r}")
        day = _to_date(d)
        by_day[day] = by_day.get(day, 0.0) + value
    if not by_day:
        return np.empty(0, dtype=np.float64), np.empty(0, dtype=np.float64)
    days = sorted(by_day)
    d0 = days[0]
    times = np.array([(d - d0).days / basis for d in days], dtype=np.float64)
    values = np.array([by_day[d] for d in days], dtype=np.float64)
    return times, values


def _sign_changes(values: NDArray[np.float64]) -> int:
    """Number of sign changes in ``values`` (zeros skipped), in the given (date) order."""
    signs = np.sign(values[values != 0.0])
    return int(np.count_nonzero(signs[1:] != signs[:-1]))


def scaled_discount_matrix(
    x: NDArray[np.float64], times: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Positively rescaled discount factors, shape ``(len(x), len(times))``.

    Entry ``[k, i]`` is ``exp(-x_k (t_i - t_ref))`` with ``x_k = log(1 + r_k)`` and ``t_ref``
    the latest time when ``x_k < 0`` and 0 otherwise, so no entry exceeds 1 (no overflow) and
    each row is the true discount row ``(1 + r_k) ** -t_i`` times a positive factor:
    ``matrix @ amounts`` has the sign of the NPV at each ``r_k``. ``times`` are in years, >= 0.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    t_max = float(t.max()) if t.size else 0.0
    ref = np.where(x < 0.0, t_max, 0.0)
    return np.exp(-x[:, None] * (t[None, :] - ref[:, None]))


def _npv_and_derivative(
    rate: float, times: NDArray[np.float64], values: NDArray[np.float64]
) -> tuple[float, float, float]:
    """NPV at ``rate``, its derivative d NPV / d rate, and the scale Σ|a_i v_i| (dollars)."""
    v = np.exp(-times * math.log1p(rate))
    w = values * v
    f = float(w.sum())
    fp = -float(np.dot(w, times)) / (1.0 + rate)
    scale = float(np.abs(w).sum())
    return f, fp, scale


def _newton(
    times: NDArray[np.float64],
    values: NDArray[np.float64],
    guess: float,
    tolerance: float,
    max_iterations: int,
) -> tuple[float | None, int]:
    """Newton's method on the rate (Excel's algorithm). Returns ``(root or None, steps)``.

    Stops when a step changes the rate by at most ``tolerance``; fails when the iterate leaves
    ``(-1, inf)``, the derivative vanishes, a value is not finite, the iteration cap is hit, the
    root lies outside ``[RATE_MIN, RATE_MAX]`` or the NPV there is not small (false convergence).
    """
    rate = guess
    with np.errstate(all="ignore"):
        for step in range(1, max_iterations + 1):
            f, fp, _ = _npv_and_derivative(rate, times, values)
            if not (math.isfinite(f) and math.isfinite(fp)) or fp == 0.0:
                return None, step
            new_rate = rate - f / fp
            if not math.isfinite(new_rate) or new_rate <= -1.0:
                return None, step
            if abs(new_rate - rate) <= tolerance:
                if not RATE_MIN <= new_rate <= RATE_MAX:
                    return None, step
                f_new, _, scale = _npv_and_derivative(new_rate, times, values)
                if not abs(f_new) <= max(tolerance, _RESIDUAL_FLOOR) * scale:
                    return None, step
                return new_rate, step
            rate = new_rate
    return None, max_iterations


def _bracket_roots(
    times: NDArray[np.float64], values: NDArray[np.float64], *, scan: bool, max_iterations: int
) -> tuple[list[float], int, int]:
    """Roots in ``[RATE_MIN, RATE_MAX]`` found by bracketing, in increasing order.

    With ``scan`` the NPV's sign is scanned on ``LOG_RATE_GRID`` and every sign change is
    solved; without it (one sign change in the flows, so a unique root) the whole range is a
    single bracket. Brackets are solved with Brent's method in ``x = log(1 + r)``. Returns
    ``(roots, brent_iterations, unsolved)``; a bracket on which Brent does not converge gives
    no root and counts in ``unsolved``.
    """
    grid = LOG_RATE_GRID if scan else LOG_RATE_GRID[[0, -1]]
    signs = np.sign(scaled_discount_matrix(grid, times) @ values)
    roots: list[float] = [float(np.expm1(grid[k])) for k in np.flatnonzero(signs == 0.0)]
    t_max = float(times.max())

    def scaled_npv(x: float) -> float:
        ref = t_max if x < 0.0 else 0.0
        return float(np.dot(values, np.exp(-x * (times - ref))))

    iterations = unsolved = 0
    for k in np.flatnonzero(signs[:-1] * signs[1:] < 0.0):
        x, info = scipy.optimize.brentq(
            scaled_npv,
            float(grid[k]),
            float(grid[k + 1]),
            xtol=_BRENT_XTOL,
            maxiter=max_iterations,
            full_output=True,
            disp=False,
        )
        iterations += int(info.iterations)
        if info.converged:
            roots.append(float(np.expm1(x)))
        else:
            unsolved += 1
    roots.sort()
    return roots, iterations, unsolved


def _brackets_a_root(times: NDArray[np.float64], values: NDArray[np.float64]) -> bool:
    """Whether the NPV changes sign (or vanishes) between ``RATE_MIN`` and ``RATE_MAX``: with
    one sign change in the flows, whether the unique root is in range."""
    ends = np.sign(scaled_discount_matrix(LOG_RATE_GRID[[0, -1]], times) @ values)
    return bool(ends[0] * ends[1] <= 0.0)


def _count_distinct(roots: Sequence[float]) -> int:
    distinct: list[float] = []
    for r in sorted(roots):
        if not distinct or abs(r - distinct[-1]) > _SAME_ROOT * max(1.0, abs(r)):
            distinct.append(r)
    return len(distinct)


def _validate_options(strategy: str, guess: float, max_iterations: int, tolerance: float) -> str:
    key = strategy.strip().lower() if isinstance(strategy, str) else strategy
    if key not in _STRATEGIES:
        allowed = ", ".join(sorted(_STRATEGIES))
        raise ValueError(f"unknown strategy {strategy!r}; expected one of: {allowed}")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int):
        raise TypeError("max_iterations must be an int")
    if max_iterations <= 0:
        raise ValueError(f"max_iterations must be positive, got {max_iterations}")
    if not (math.isfinite(tolerance) and tolerance > 0.0):
        raise ValueError(f"tolerance must be positive and finite, got {tolerance!r}")
    if not (math.isfinite(guess) and guess > -1.0):
        raise ValueError(f"guess must be finite and greater than -1, got {guess!r}")
    return str(key)


def xirr_result(
    dates: Sequence[date | datetime],
    amounts: Sequence[float],
    *,
    day_count: DayCount = "actual/365",
    guess: float = 0.1,
    strategy: Strategy = "hybrid",
    max_iterations: int = 100,
    tolerance: float = 1e-7,
) -> XirrResult:
    """XIRR with solver diagnostics. See :func:`xirr` for the arguments.

    Root-selection rule (cash flows with several sign changes can have several IRRs):

    1. ``"newton"`` and ``"hybrid"`` first run Newton's method from ``guess`` (as Excel does).
       If it converges to a rate in ``[RATE_MIN, RATE_MAX]``, that rate is the answer: it is
       the Excel answer.
    2. Otherwise ``"newton"`` returns ``rate=None``. ``"hybrid"`` (and ``"bisection"``, which
       skips step 1) brackets every root in ``x = log(1 + r)``, solves each bracket with
       Brent's method and returns the root closest to ``guess`` (ties: the lower rate), or
       None when there is none. The brackets: with one sign change in the date-ordered flows
       the root is unique (Descartes' rule of signs) and the bracket is the whole range
       ``[RATE_MIN, RATE_MAX]``; with more, the sign changes of the NPV on
       ``LOG_RATE_GRID`` (roots closer together than a grid step can be missed).

    ``multiple_roots`` is True when more than one distinct root was found (by Newton and by
    the grid scan, which is made whenever the flows change sign more than once).
    :func:`updog.finance.irr_batch.periodic_irr_batch` applies the same rule.

    When the rate is None, ``reason`` says why (:data:`XirrReason`, in this order of checks):
    ``TOO_FEW_FLOWS``, ``NO_SIGN_CHANGE``; then ``NO_ROOT_IN_RANGE`` when no rate in the
    admissible range zeroes the NPV (for ``"newton"`` with one sign change this is checked
    at the ends of the range; with several, by the grid scan), else ``DID_NOT_CONVERGE`` (a
    bracketed root Brent did not solve within ``max_iterations``, or Newton's failure under
    ``"newton"``).
    """
    basis = _basis(day_count)
    solver = _validate_options(strategy, guess, max_iterations, tolerance)
    times, values = _prepare(dates, amounts, basis)

    if times.size < 2:
        return _undefined("TOO_FEW_FLOWS", "none", 0, False)
    if not (np.any(values > 0.0) and np.any(values < 0.0)):
        return _undefined("NO_SIGN_CHANGE", "none", 0, False)

    several_changes = _sign_changes(values) > 1
    iterations = 0

    newton_root: float | None = None
    if solver in ("newton", "hybrid"):
        newton_root, iterations = _newton(times, values, guess, tolerance, max_iterations)
        if newton_root is not None and not several_changes:
            return XirrResult(newton_root, True, "newton", iterations, False)
        if newton_root is None and solver == "newton" and not several_changes:
            reason: XirrReason = (
                "DID_NOT_CONVERGE" if _brackets_a_root(times, values) else "NO_ROOT_IN_RANGE"
            )
            return _undefined(reason, "newton", iterations, False)

    roots, brent_iterations, unsolved = _bracket_roots(
        times, values, scan=several_changes, max_iterations=max_iterations
    )
    candidates = roots if newton_root is None else [*roots, newton_root]
    multiple = _count_distinct(candidates) > 1

    if newton_root is not None:
        return XirrResult(newton_root, True, "newton", iterations, multiple)
    if solver == "newton":
        reason = "DID_NOT_CONVERGE" if roots or unsolved else "NO_ROOT_IN_RANGE"
        return _undefined(reason, "newton", iterations, multiple)
    iterations += brent_iterations
    if not roots:
        reason = "DID_NOT_CONVERGE" if unsolved else "NO_ROOT_IN_RANGE"
        return _undefined(reason, "brent", iterations, multiple)
    best = min(roots, key=lambda r: (abs(r - guess), r))
    return XirrResult(best, True, "brent", iterations, multiple)


def xirr(
    dates: Sequence[date | datetime],
    amounts: Sequence[float],
    *,
    day_count: DayCount = "actual/365",
    guess: float = 0.1,
    strategy: Strategy = "hybrid",
    max_iterations: int = 100,
    tolerance: float = 1e-7,
) -> float | None:
    """Annual internal rate of return of dated cash flows (Excel ``XIRR``).

    Args:
        dates: shape ``(n,)``; ``datetime.date`` or ``datetime.datetime`` (timezone-aware
            datetimes are converted to UTC, then the calendar date is used). Any order;
            flows on the same date are summed.
        amounts: shape ``(n,)``; dollars, negative for money paid in, positive for money
            received. Must be finite.
        day_count: ``"actual/365"`` (Excel, pyxirr; default) or ``"actual/365.25"``.
            Case-insensitive.
        guess: starting rate for Newton and the target of the root-selection rule (> -1).
        strategy: ``"hybrid"`` (Newton, then Brent on a scan), ``"newton"`` (Newton only,
            like Excel) or ``"bisection"`` (bracketing only). Case-insensitive.
        max_iterations: iteration cap per solver (Newton steps; Brent iterations per bracket).
        tolerance: Newton stops when a step changes the rate by at most this (absolute, as a
            ratio). Brent always refines to near machine precision.

    Returns:
        The annual effective rate as a ratio (0.2 = 20 % a year), or None when there are
        fewer than 2 flows after aggregation, no sign change, or no root in
        ``[RATE_MIN, RATE_MAX]`` = ``[-0.999999, 200]`` that the chosen strategy finds.
        With several roots, the rule in :func:`xirr_result` picks one; use
        :func:`xirr_result` to learn whether several exist.

    Raises:
        ValueError: lengths differ, a non-finite amount, an unknown ``day_count`` or
            ``strategy``, ``tolerance`` <= 0, ``max_iterations`` <= 0, ``guess`` <= -1.
        TypeError: a date that is not a date/datetime, an amount that is not a number.

    Example:
        >>> from datetime import date
        >>> round(xirr([date(2020, 1, 1), date(2025, 1, 1)], [-10e6, 25e6]), 10)
        0.2008834994
    """
    return xirr_result(
        dates,
        amounts,
        day_count=day_count,
        guess=guess,
        strategy=strategy,
        max_iterations=max_iterations,
        tolerance=tolerance,
    ).rate


def xnpv(
    rate: float,
    dates: Sequence[date | datetime],
    amounts: Sequence[float],
    *,
    day_count: DayCount = "actual/365",
) -> float:
    """Net present value in dollars at the earliest date (Excel ``XNPV`` with sorted dates).

    ``rate`` is an annual effective rate (ratio, > -1); ``dates``/``amounts`` as in
    :func:`xirr` (same-day flows aggregated). An empty input has NPV 0.
    """
    if not (math.isfinite(rate) and rate > -1.0):
        raise ValueError(f"rate must be finite and greater than -1, got {rate!r}")
    times, values = _prepare(dates, amounts, _basis(day_count))
    return float(np.dot(values, np.exp(-times * math.log1p(rate))))
