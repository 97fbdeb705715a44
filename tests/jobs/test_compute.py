"""The compute process on its own (no database): each executor it can build gives the bytes
of a single-process run, progress arrives block by block, and ``should_stop`` stops it."""

from __future__ import annotations

import json
import time

import pytest
from jobs_support import seed_fund_spec

from updog.jobs.compute import ExecutorConfig, Limits, run_limited
from updog.model.validation import load_spec
from updog.simulation import BLOCK_SIZE, simulate

LIMITS = Limits(time_seconds=120, memory_bytes=2**30)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["local", "process"])
def test_executors_give_the_single_process_bytes(kind: str) -> None:
    runs, seed = 3 * BLOCK_SIZE + 10, 8
    seen: list[int] = []
    outcome = run_limited(
        seed_fund_spec(),
        runs,
        seed,
        executor=ExecutorConfig(kind, processes=2),  # type: ignore[arg-type]
        limits=LIMITS,
        on_progress=lambda done, total: seen.append(done),
    )
    assert outcome.status == "succeeded", outcome.error
    assert outcome.result is not None
    got = json.dumps(outcome.result, sort_keys=True, allow_nan=False, indent=2)
    assert got == simulate(load_spec(seed_fund_spec()), runs, seed).to_json()
    assert len(seen) == 4 and seen == sorted(seen) and seen[-1] == runs  # one per block


def test_should_stop_kills_the_compute_promptly() -> None:
    started = time.monotonic()
    outcome = run_limited(
        seed_fund_spec(),
        1_000_000,
        1,
        executor=ExecutorConfig("local"),
        limits=LIMITS,
        should_stop=lambda: "enough" if time.monotonic() - started > 1 else None,
    )
    assert outcome.status == "stopped" and outcome.error == {"code": "STOPPED", "message": "enough"}
    assert time.monotonic() - started < 15


def test_executor_choice() -> None:
    assert ExecutorConfig.choose("auto", None).kind == "process"
    dask = ExecutorConfig.choose("auto", "tcp://127.0.0.1:8786")
    assert (dask.kind, dask.dask_address) == ("dask", "tcp://127.0.0.1:8786")
    assert ExecutorConfig.choose("local", "tcp://127.0.0.1:8786").dask_address is None
    with pytest.raises(ValueError):
        ExecutorConfig.choose("dask", None)
    with pytest.raises(ValueError):
        ExecutorConfig.choose("gpu", None)
