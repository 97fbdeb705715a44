"""Compute guards of the worker: a job's compute runs in a separate process under a time
limit and a memory limit; breaking either (or an engine error) marks the job failed with a
clear reason, and leaves no process behind."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import replace
from typing import Any

import httpx
import psutil
import pytest

from api.api_support import LiveServer
from updog.jobs.compute import ExecutorConfig, Limits
from updog.jobs.worker import Worker, WorkerConfig

pytestmark = pytest.mark.db


def _worker(database: Any, *, seconds: float = 120, memory_mb: int = 2048) -> Worker:
    config = WorkerConfig(
        executor=ExecutorConfig("local"),
        limits=Limits(time_seconds=seconds, memory_bytes=memory_mb * 2**20),
        lease_seconds=10,
        poll_interval=0.2,
    )
    return Worker(database, config, worker_id="limits-test")


def _submit(api: httpx.Client, fund_id: str, runs: int) -> str:
    r = api.post(f"/api/v1/funds/{fund_id}/simulations", json={"runs": runs, "seed": 11})
    assert r.status_code == 202, r.text
    return str(r.headers["location"])


def _no_compute_left() -> None:
    """Only multiprocessing's helpers (forkserver, resource tracker) remain, as direct children:
    the compute process (a child of the forkserver) and its pool are gone."""
    me = os.getpid()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.status() != psutil.STATUS_ZOMBIE:
                assert child.ppid() == me, child.cmdline()
                assert "multiprocessing" in " ".join(child.cmdline()), child.cmdline()


@pytest.fixture(autouse=True)
def _empty_queue(jobs_live: LiveServer) -> None:
    with jobs_live.database.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'cancelled' WHERE status IN ('queued', 'running')")


def test_time_limit_fails_the_job(jobs_live: LiveServer, api: httpx.Client, fund_id: str) -> None:
    location = _submit(api, fund_id, 409_600)
    started = time.monotonic()
    assert _worker(jobs_live.database, seconds=0.5).run_once()
    assert time.monotonic() - started < 30
    sim = api.get(location).json()
    assert sim["status"] == "failed" and sim["result"] is None
    assert sim["error"]["code"] == "TIME_LIMIT_EXCEEDED"
    assert "0.5 s" in sim["error"]["message"]
    _no_compute_left()


def test_memory_limit_fails_the_job(jobs_live: LiveServer, api: httpx.Client, fund_id: str) -> None:
    location = _submit(api, fund_id, 20_000)
    assert _worker(jobs_live.database, memory_mb=16).run_once()
    sim = api.get(location).json()
    assert sim["status"] == "failed", sim
    assert sim["error"]["code"] == "MEMORY_LIMIT_EXCEEDED"
    assert "memory limit" in sim["error"]["message"]
    _no_compute_left()


def test_engine_error_fails_the_job_with_its_reason(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    location = _submit(api, fund_id, 1_000)
    with jobs_live.database.connection() as conn:  # a payload the engine refuses
        conn.execute(
            "UPDATE jobs SET payload = jsonb_set(payload, '{runs}', '50') WHERE simulation_id = %s",
            (location.rsplit("/", 1)[1],),
        )
    assert _worker(jobs_live.database).run_once()
    sim = api.get(location).json()
    assert sim["status"] == "failed"
    assert sim["error"]["code"] == "ENGINE_ERROR" and "runs must be" in sim["error"]["message"]
    assert not _worker(jobs_live.database).run_once()  # failed jobs are not retried


def test_engine_guard_failure_fails_the_job_with_the_guard_reason(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    location = _submit(api, fund_id, 1_000)
    worker = _worker(jobs_live.database)
    worker.config = replace(worker.config, faults="block:nan")
    assert worker.run_once()
    sim = api.get(location).json()
    assert sim["status"] == "failed" and sim["result"] is None
    assert sim["error"]["code"] == "ENGINE_GUARD_FAILED" and sim["error"]["message"]


def test_a_crashing_compute_is_retried_then_failed(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    location = _submit(api, fund_id, 1_000)
    sid = location.rsplit("/", 1)[1]
    with jobs_live.database.connection() as conn:
        conn.execute("UPDATE jobs SET max_attempts = 2 WHERE simulation_id = %s", (sid,))
    worker = _worker(jobs_live.database)
    worker.config = replace(worker.config, faults="block:kill")  # the compute process dies
    assert worker.run_once()
    sim = api.get(location).json()
    assert sim["status"] == "queued", sim  # back in the queue, after a back-off
    assert not worker.run_once()
    with jobs_live.database.connection() as conn:
        conn.execute("UPDATE jobs SET run_after = now() WHERE simulation_id = %s", (sid,))
    assert worker.run_once()
    sim = api.get(location).json()
    assert sim["status"] == "failed"
    assert sim["error"]["code"] == "COMPUTE_PROCESS_DIED"
    assert "after 2 attempts" in sim["error"]["message"]
    _no_compute_left()
