"""A real Dask cluster on loopback — ``dask scheduler`` and two ``dask worker`` processes,
started with the CLI — computes the same bytes as one process for the same seed, both
through :class:`DaskExecutor` and through a job worker configured for Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_support import seed_fund_spec

from api.api_support import LiveServer
from updog.jobs.compute import ExecutorConfig, Limits
from updog.jobs.worker import Worker, WorkerConfig
from updog.model.validation import load_spec
from updog.simulation import BLOCK_SIZE, simulate
from updog.simulation.dask_executor import DaskExecutor

#: Seconds allowed for the cluster to come up (two cores, busy with other tests).
START_TIMEOUT = 90


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in reversed(procs):  # workers first, then the scheduler
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@pytest.fixture(scope="module")
def dask_scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Address of a loopback scheduler with two single-threaded worker processes."""
    from distributed import Client

    folder: Path = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "warning"}

    def start(*args: str, log: str) -> None:
        with (folder / log).open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "dask", *args],
                    env=env,
                    cwd=folder,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    common = ("--scheduler-file", str(scheduler_file), "--no-dashboard")
    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", *common, log="scheduler.log")
        deadline = time.monotonic() + START_TIMEOUT
        while not scheduler_file.exists():
            assert procs[0].poll() is None, (folder / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        for i in range(2):
            start(
                "worker",
                "--host",
                "127.0.0.1",
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--name",
                f"w{i}",
                "--memory-limit",
                "1GiB",
                "--local-directory",
                str(folder / f"w{i}"),
                *common,
                log=f"worker-{i}.log",
            )
        with Client(scheduler_file=str(scheduler_file), timeout=START_TIMEOUT) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
            address = str(client.scheduler.address)
        assert address.startswith("tcp://127.0.0.1:")
        yield address
    finally:
        _stop(procs)


@pytest.mark.slow
def test_dask_cluster_result_is_byte_identical(dask_scheduler: str) -> None:
    from distributed import Client, get_task_stream

    spec = load_spec(seed_fund_spec())
    runs, seed = 5 * BLOCK_SIZE + 1_000, 2_024  # six blocks, the last one partial
    expected = simulate(spec, runs, seed).to_json()
    with Client(dask_scheduler, set_as_default=False) as client:
        with get_task_stream(client) as stream:
            got = simulate(spec, runs, seed, executor=DaskExecutor(client=client)).to_json()
        workers = {task["worker"] for task in stream.data}
    assert got == expected
    assert len(workers) == 2, workers  # both worker processes computed blocks
    # grouping blocks into larger tasks changes nothing either
    chunked = simulate(spec, runs, seed, executor=DaskExecutor(dask_scheduler, blocks_per_task=4))
    assert chunked.to_json() == expected


@pytest.mark.slow
@pytest.mark.db
def test_job_worker_on_dask(
    dask_scheduler: str, jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    runs, seed = 3 * BLOCK_SIZE, 31
    r = api.post(f"/api/v1/funds/{fund_id}/simulations", json={"runs": runs, "seed": seed})
    assert r.status_code == 202, r.text
    config = WorkerConfig(
        executor=ExecutorConfig.choose("auto", dask_scheduler),
        limits=Limits(time_seconds=120, memory_bytes=2**30),
        lease_seconds=10,
    )
    assert config.executor.kind == "dask"
    with jobs_live.database.connection() as conn:  # only this job is due
        conn.execute(
            "UPDATE jobs SET status = 'cancelled' WHERE status = 'queued' AND simulation_id <> %s",
            (r.json()["id"],),
        )
    assert Worker(jobs_live.database, config).run_once()
    sim: dict[str, Any] = api.get(r.headers["location"]).json()
    assert sim["status"] == "succeeded", sim
    expected = simulate(load_spec(seed_fund_spec()), runs, seed).to_json()
    assert json.dumps(sim["result"], sort_keys=True, allow_nan=False, indent=2) == expected
