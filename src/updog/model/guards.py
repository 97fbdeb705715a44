"""Engine guards (SPEC §6 practice 12): every engine result is checked before it is returned
or stored.

A guard never repairs a number: it raises :class:`EngineGuardError` with a reason, and the
service turns that into a problem+json error with code ``ENGINE_GUARD_FAILED`` (never a 500
and never a stored result). Checks:

* forecast: every number finite; NAV and fund cash ≥ 0; cumulative paid-in non-decreasing and
  at most the commitment; DPI ≤ TVPI; cash conservation each quarter (called + recycled =
  invested + fees paid with capital + expenses; LP distributions + carry + fees paid from
  proceeds = proceeds − retained + released), to one cent;
* simulation: every number finite (None allowed where a statistic is undefined); percentiles
  monotone; sd and standard errors ≥ 0; probabilities and deal-outcome shares in [0, 1] (shares
  sum to 1); fan-chart bands ordered (p10 ≤ p50 ≤ p90) and NAV ≥ 0; the run count and the
  histogram agree.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

#: Tolerance for money identities, dollars.
CENT = 0.01
#: Relative tolerance for order checks between floating-point statistics.
ORDER_TOLERANCE = 1e-9


class EngineGuardError(ArithmeticError):
    """An engine result failed a guard; ``reason`` says which check and where."""

    code = "ENGINE_GUARD_FAILED"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}/{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}/{i}")
    else:
        yield path, value


def check_finite(result: dict[str, Any]) -> None:
    """Every float in ``result`` (nested dicts/lists) is finite; raises EngineGuardError."""
    for path, value in _walk(result):
        if isinstance(value, float) and not math.isfinite(value):
            raise EngineGuardError(f"non-finite value {value!r} at {path or '/'}")


def _le(a: float, b: float) -> bool:
    return a <= b + ORDER_TOLERANCE * max(1.0, abs(a), abs(b))


def check_forecast(forecast: dict[str, Any], fund_size: float) -> None:
    """Guard a forecast's JSON form (``{"summary", "quarters"}``)."""
    check_finite(forecast)
    previous_paid_in = 0.0
    for row in forecast["quarters"]:
        where = f"quarter {row['quarter']}"
        if row["nav"] < -CENT:
            raise EngineGuardError(f"negative NAV {row['nav']:.2f} in {where}")
        if row["paid_in"] < previous_paid_in - CENT:
            raise EngineGuardError(f"cumulative paid-in falls in {where}")
        if row["paid_in"] > fund_size + CENT:
            raise EngineGuardError(f"paid-in above the commitment in {where}")
        previous_paid_in = row["paid_in"]
        sources = row["called"] + row["recycled"]
        uses = (
            row["invested_initial"]
            + row["invested_follow_on"]
            + row["fees"]
            - row["fees_from_proceeds"]
            + row["expenses"]
        )
        if abs(sources - uses) > CENT:
            raise EngineGuardError(f"sources and uses differ by {sources - uses:.2f} in {where}")
        paid = row["lp_distributions"] + row["gp_carry"] + row["fees_from_proceeds"]
        distributable = row["gross_proceeds"] - row["retained"] + row["released"]
        if abs(paid - distributable) > CENT:
            raise EngineGuardError(f"distributions differ from proceeds in {where}")
        if row["fund_cash"] < -CENT:
            raise EngineGuardError(f"negative fund cash in {where}")
        if row["dpi"] is not None and not _le(row["dpi"], row["tvpi"]):
            raise EngineGuardError(f"DPI above TVPI in {where}")


def check_simulation(result: dict[str, Any]) -> None:
    """Guard a simulation's JSON form (see :class:`updog.simulation.SimulationResult`)."""
    check_finite(result)
    runs = result["runs"]
    for name, metric in result["metrics"].items():
        defined = metric["count"]
        if name == "net_irr":
            defined += result["irr"]["undefined_paths"]
        if defined != runs:
            raise EngineGuardError(f"{runs - defined} paths have a non-finite {name}")
        keys = sorted(
            (k for k in metric if k[:1] == "p" and k[1:].isdigit()), key=lambda k: int(k[1:])
        )
        values = [metric[k] for k in keys]
        if any(v is None for v in values):
            if metric["count"]:
                raise EngineGuardError(f"missing percentile for {name}")
            continue
        for lo, hi in itertools.pairwise(values):
            if not _le(lo, hi):
                raise EngineGuardError(f"percentiles of {name} are not monotone")
        if metric["sd"] < 0 or any(v is not None and v < 0 for v in metric["se"].values()):
            raise EngineGuardError(f"negative dispersion for {name}")
    for name, p in result["probabilities"].items():
        if p is not None and not 0.0 <= p <= 1.0:
            raise EngineGuardError(f"probability {name} = {p} outside [0, 1]")
    shares = result["deal_outcomes"].values()
    if any(not 0.0 <= s <= 1.0 for s in shares) or abs(sum(shares) - 1.0) > 1e-9:
        raise EngineGuardError("deal-outcome shares are not a distribution")
    hist = result["histograms"]["tvpi"]
    counted = sum(hist["counts"]) + hist["overflow"]
    if counted != result["metrics"]["tvpi"]["count"]:
        raise EngineGuardError("the TVPI histogram does not count every path")
    fan = result["fan_chart"]
    for series in ("nav", "dpi", "tvpi"):
        band = fan[series]
        for q, (lo, mid, hi) in enumerate(zip(band["p10"], band["p50"], band["p90"], strict=True)):
            if lo is None:
                continue
            if not (_le(lo, mid) and _le(mid, hi)):
                raise EngineGuardError(f"fan chart {series} bands out of order at quarter {q}")
            if series == "nav" and lo < -CENT:
                raise EngineGuardError(f"negative NAV in the fan chart at quarter {q}")
