"""Throughput of the vectorised IRR solver on venture-like cash flows.

Usage: ``python benchmarks/irr_batch.py [--paths 10000] [--quarters 40 60] [--repeat 3]``

Prints, for each flow length, the best wall time over ``--repeat`` runs of
:func:`updog.finance.periodic_irr_batch` on ``--paths`` rows (calls in the first third,
lumpy distributions and a residual NAV after), the rows solved per second and the share of
rows with a defined IRR.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from updog.finance import STATUS_OK, periodic_irr_batch


def venture_like(rng: np.random.Generator, paths: int, periods: int) -> np.ndarray:
    """Rows of quarterly LP flows: calls, then sparse lognormal distributions, small late calls
    and a residual NAV in the last quarter (dollars)."""
    cf = np.zeros((paths, periods))
    calls = periods // 3
    cf[:, :calls] = -rng.uniform(0.0, 1e6, (paths, calls))
    later = periods - calls
    cf[:, calls:] = rng.lognormal(10.0, 2.0, (paths, later)) * (rng.random((paths, later)) < 0.3)
    cf[:, -1] += rng.uniform(0.0, 2e7, paths)
    cf[:, calls:] -= rng.uniform(0.0, 5e4, (paths, later)) * (rng.random((paths, later)) < 0.2)
    return cf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paths", type=int, default=10_000)
    parser.add_argument("--quarters", type=int, nargs="+", default=[40, 60])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    print(f"{'quarters':>8} {'seconds':>9} {'rows/s':>11} {'solved':>7}")
    for quarters in args.quarters:
        times = np.array([(91.3125 * (q + 1)) / 365.0 for q in range(quarters)])
        cf = venture_like(rng, args.paths, quarters)
        periodic_irr_batch(cf[:10], times)  # warm up
        best = float("inf")
        status = np.zeros(0)
        for _ in range(args.repeat):
            start = time.perf_counter()
            _, status = periodic_irr_batch(cf, times)
            best = min(best, time.perf_counter() - start)
        solved = float((status == STATUS_OK).mean())
        print(f"{quarters:>8} {best:>9.3f} {args.paths / best:>11,.0f} {solved:>7.2%}")


if __name__ == "__main__":
    main()
