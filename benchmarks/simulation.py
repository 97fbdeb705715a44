"""Simulation throughput and memory for an example fund.

Usage: ``python benchmarks/simulation.py [FUND.yaml] [--runs 10000 100000 1000000]
[--repeat 3] [--workers 2]``

Each run count is measured in a fresh subprocess so its peak RSS is its own. Runs up to
100,000 use one core (the in-process executor); larger runs use a local process pool of
``--workers`` processes. Prints paths per second (best of ``--repeat``; one repeat above
100,000 runs), wall time and the peak resident memory of the measuring process and of its
largest worker, plus the time
numpy takes to draw the uniforms a naive per-quarter simulation would need
(paths × companies × quarters) and the ratio of the simulation's time to it.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _measure(fund: str, runs: int, repeat: int, workers: int) -> dict[str, float]:
    import numpy as np
    import yaml

    from updog.model.construction import build_plan
    from updog.model.validation import load_spec
    from updog.simulation import simulate
    from updog.simulation.executors import ProcessPoolMap

    spec = load_spec(yaml.safe_load(Path(fund).read_text(encoding="utf-8")))
    simulate(spec, 100, 0)  # warm-up: imports, plan tables
    executor = ProcessPoolMap(workers, blocks_per_task=4) if runs > 100_000 else None
    best = float("inf")
    for i in range(repeat if runs <= 100_000 else 1):
        start = time.perf_counter()
        simulate(spec, runs, 42 + i, executor=executor)
        best = min(best, time.perf_counter() - start)
    plan = build_plan(spec)
    draws = runs * len(plan.companies.entry_quarter) * plan.quarters
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    left = draws
    while left > 0:  # in slices, so the baseline's own memory stays small
        rng.random(min(left, 10_000_000))
        left -= 10_000_000
    uniforms = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "workers": workers if executor is not None else 1,
        "worker_peak_rss_mib": worker_kib / 1024.0,
        "runs": runs,
        "seconds": best,
        "paths_per_second": runs / best,
        "peak_rss_mib": peak_kib / 1024.0,
        "naive_uniform_draws": draws,
        "naive_uniform_seconds": uniforms,
        "ratio_to_uniforms": best / uniforms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fund", nargs="?", default=str(ROOT / "examples" / "seed-fund.yaml"))
    parser.add_argument("--runs", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.fund, args.runs[0], args.repeat, args.workers)))
        return
    print(f"fund: {args.fund}")
    print(
        f"{'runs':>9} {'cores':>5} {'seconds':>9} {'paths/s':>10} {'peak RSS':>10} "
        f"{'worker RSS':>11} {'uniforms s':>11} {'ratio':>6}"
    )
    for runs in args.runs:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                args.fund,
                "--runs",
                str(runs),
                "--repeat",
                str(args.repeat),
                "--workers",
                str(args.workers),
                "--child",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        m = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{m['runs']:>9,} {m['workers']:>5} {m['seconds']:>9.3f} "
            f"{m['paths_per_second']:>10,.0f} {m['peak_rss_mib']:>6.0f} MiB "
            f"{m['worker_peak_rss_mib']:>7.0f} MiB {m['naive_uniform_seconds']:>11.3f} "
            f"{m['ratio_to_uniforms']:>6.1f}"
        )


if __name__ == "__main__":
    main()
