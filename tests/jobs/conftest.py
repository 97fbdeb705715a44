"""Fixtures for the job tests: the real app on a loopback port with a small synchronous limit
(so jobs stay quick), an analyst with a published seed fund, and ``updog worker`` processes
started for real (own process group, killed and reaped afterwards)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from jobs_support import LEASE, SYNC_LIMIT, WorkerProcess, seed_fund_spec, wait_for

from api.api_support import Account, LiveServer, LogTap, make_account, serve
from updog.settings import Settings


@pytest.fixture(scope="module")
def jobs_live(db: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("updog-jobs"),
        sync_runs_limit=SYNC_LIMIT,
        job_lease_seconds=LEASE,
        job_poll_interval=0.2,
        executor="local",
    )
    yield from serve(settings, db, LogTap())


@pytest.fixture(scope="module")
def jobs_analyst(jobs_live: LiveServer) -> Account:
    return make_account(jobs_live.database, "Jobs Ventures", "analyst")


@pytest.fixture
def api(jobs_live: LiveServer, jobs_analyst: Account) -> Iterator[httpx.Client]:
    with jobs_live.client(jobs_analyst.token) as c:
        yield c


@pytest.fixture(scope="module")
def fund_id(jobs_live: LiveServer, jobs_analyst: Account) -> str:
    """A published seed fund of ``jobs_analyst``'s organisation."""
    with jobs_live.client(jobs_analyst.token) as c:
        r = c.post("/api/v1/funds", json=seed_fund_spec())
        r.raise_for_status()
        fid: str = r.json()["id"]
        c.post(f"/api/v1/funds/{fid}/publish").raise_for_status()
    return fid


@pytest.fixture
def start_worker(database_url: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``updog worker`` on the test database (``local`` executor, short lease); every
    worker started is killed with its process group at the end of the test."""
    started: list[WorkerProcess] = []

    def start(**env: str) -> WorkerProcess:
        environ = {
            **os.environ,
            "DATABASE_URL": database_url,
            "UPDOG_DATA_DIR": str(tmp_path / "data"),
            "UPDOG_JOB_LEASE_SECONDS": str(LEASE),
            "UPDOG_JOB_POLL_INTERVAL": "0.2",
            "UPDOG_EXECUTOR": "local",
            **env,
        }
        environ.pop("DASK_SCHEDULER_ADDRESS", None)
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "updog", "worker"],
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = WorkerProcess(proc, log)
        started.append(worker)
        wait_for(
            lambda: (proc.poll(), worker.output()),
            lambda v: v[0] is not None or "waiting for jobs" in v[1],
            60,
            "the worker to start",
        )
        assert proc.poll() is None, worker.output()
        return worker

    yield start
    for worker in started:
        worker.kill_group()
