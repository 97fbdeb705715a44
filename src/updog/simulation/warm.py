"""Importing this module puts the engines' compiled kernels in memory.

It runs a forecast and a 100-path simulation of a small built-in fund, which
compiles the numba kernels (:mod:`updog.model.compiled`) or, usually, loads them from their
cache. A process that imports it before it forks — the job worker's forkserver preloads it
(:data:`updog.jobs.compute.PRELOAD`) — hands the machine code to every child, so a compute
process never compiles under its memory limit (where the compiler itself would run out of
memory) and a job starts at once.
"""

from __future__ import annotations

from updog.model.forecast import run_forecast
from updog.model.validation import load_spec
from updog.simulation.engine import simulate

#: The smallest complete fund: every other field takes its documented default.
WARM_FUND = {
    "name": "Warm-up",
    "fund_size": 10_000_000,
    "vintage_year": 2025,
    "model_inputs_as_of": "2025-01-01",
}


def warm_up() -> None:
    """Run each kernel once (a forecast and a 100-path simulation of :data:`WARM_FUND`)."""
    spec = load_spec(WARM_FUND)
    run_forecast(spec)
    simulate(spec, 100, 0)


warm_up()
