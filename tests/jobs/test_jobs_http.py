"""Simulation jobs end to end over real HTTP, with ``updog worker`` running as real processes:
202 + Location → progress → done (and the same bytes as a synchronous run), server-sent
events, cancellation, a worker killed mid-run, and ``updog serve``'s in-process worker and
graceful stop with an event stream open."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from jobs_support import LEASE, job_row, seed_fund_spec, wait_for

from api.api_support import LiveServer, assert_problem, make_account
from updog.jobs import queue
from updog.model.validation import load_spec
from updog.simulation import simulate

pytestmark = [pytest.mark.db, pytest.mark.slow]


def reference_json(runs: int, seed: int) -> str:
    """The synchronous, single-process result of the seed fund (canonical JSON)."""
    return simulate(load_spec(seed_fund_spec()), runs, seed).to_json()


def canonical(result: dict[str, Any]) -> str:
    """A result read back from the API in the engine's canonical JSON form."""
    return json.dumps(result, sort_keys=True, allow_nan=False, indent=2)


def submit(api: httpx.Client, fund_id: str, runs: int, seed: int) -> str:
    r = api.post(f"/api/v1/funds/{fund_id}/simulations", json={"runs": runs, "seed": seed})
    assert r.status_code == 202, r.text
    body = r.json()
    assert r.headers["location"] == f"/api/v1/simulations/{body['id']}"
    assert body["status"] == "queued" and body["result"] is None and body["seed"] == seed
    return str(r.headers["location"])


def read_events(api: httpx.Client, url: str, limit: float = 120) -> list[tuple[str, Any]]:
    """Follow the event stream at ``url`` until it ends; ``[(event, data), ...]``."""
    events: list[tuple[str, Any]] = []
    deadline = time.monotonic() + limit
    with api.stream("GET", url, timeout=limit) as s:
        assert s.status_code == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        event: str | None = None
        for line in s.iter_lines():
            assert time.monotonic() < deadline, events
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                assert event is not None
                events.append((event, json.loads(line[len("data: ") :])))
                event = None
    return events


def test_job_runs_to_done_with_progress_events_and_sync_bytes(
    api: httpx.Client, fund_id: str, start_worker: Any
) -> None:
    start_worker()
    runs, seed = 49_152, 20_250_101
    location = submit(api, fund_id, runs, seed)

    events = read_events(api, f"{location}/events")
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"progress"}, events
    progress = [d["progress"] for e, d in events if e == "progress"]
    assert progress == sorted(progress)
    assert any(0 < p < 1 for p in progress), events  # intermediate progress was reported
    assert {d["status"] for _, d in events} >= {"running", "succeeded"}
    done = events[-1][1]
    assert done["status"] == "succeeded" and done["progress"] == 1 and done["error"] is None
    assert done["href"] == location

    got = api.get(location).json()
    assert got["status"] == "succeeded" and got["progress"] == 1
    assert got["provenance"]["seed"] == seed
    assert canonical(got["result"]) == reference_json(runs, seed)
    # a finished simulation's stream is one progress event and done
    again = read_events(api, f"{location}/events", limit=10)
    assert [e for e, _ in again] == ["progress", "done"]


def test_cancel_rules_without_a_worker(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    location = submit(api, fund_id, 1_000, 5)
    r = api.delete(location)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled" and r.json()["finished_at"] is not None
    assert api.delete(location).json()["status"] == "cancelled"  # idempotent
    sid = location.rsplit("/", 1)[1]
    row = job_row(jobs_live.database, sid)
    assert row["status"] == "cancelled" and row["cancel_requested"] is True
    # the stream of a cancelled simulation ends with done/cancelled
    assert read_events(api, f"{location}/events", limit=10)[-1][1]["status"] == "cancelled"

    sync = api.post(f"/api/v1/funds/{fund_id}/simulations", json={"runs": 100, "seed": 1})
    assert sync.status_code == 201
    assert_problem(api.delete(sync.headers["location"]), 409, "SIMULATION_NOT_CANCELLABLE")
    assert_problem(
        api.delete("/api/v1/simulations/00000000-0000-0000-0000-000000000000"),
        404,
        "SIMULATION_NOT_FOUND",
    )
    viewer = make_account(jobs_live.database, "Jobs Ventures", "viewer")
    with jobs_live.client(viewer.token) as v:
        assert v.delete(location).status_code == 403
        assert v.get(f"{location}/events").status_code == 200
    outsider = make_account(jobs_live.database, "Elsewhere Partners", "admin")
    with jobs_live.client(outsider.token) as o:
        assert_problem(o.delete(location), 404, "SIMULATION_NOT_FOUND")
        assert_problem(o.get(f"{location}/events"), 404, "SIMULATION_NOT_FOUND")


def test_cancelling_a_running_job_stops_its_worker(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str, start_worker: Any
) -> None:
    worker = start_worker()
    location = submit(api, fund_id, 1_000_000, 9)
    wait_for(
        lambda: api.get(location).json(),
        lambda s: s["status"] == "running" and s["progress"] > 0,
        60,
        "the job to make progress",
    )
    r = api.delete(location)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    # the worker drops it at its next heartbeat and takes the next job at once
    small = submit(api, fund_id, 600, 10)
    wait_for(
        lambda: api.get(small).json()["status"], lambda s: s == "succeeded", 30, "the next job"
    )
    cancelled = api.get(location).json()
    assert cancelled["status"] == "cancelled" and cancelled["result"] is None
    row = job_row(jobs_live.database, location.rsplit("/", 1)[1])
    assert row["status"] == "cancelled"
    assert worker.proc.poll() is None


def test_sigterm_releases_the_running_job_and_exits_0(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str, start_worker: Any
) -> None:
    worker = start_worker()
    location = submit(api, fund_id, 1_000_000, 12)
    wait_for(
        lambda: api.get(location).json(),
        lambda s: s["status"] == "running" and s["progress"] > 0,
        60,
        "the job to make progress",
    )
    stopped_at = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(30) == 0, worker.output()
    assert time.monotonic() - stopped_at < 15
    assert "updog worker: stopped." in worker.output()
    row = job_row(jobs_live.database, location.rsplit("/", 1)[1])
    assert row["status"] == "queued" and row["attempts"] == 0 and row["leased_by"] is None
    assert api.get(location).json()["status"] == "queued"
    assert api.delete(location).json()["status"] == "cancelled"  # not for later tests


def test_killed_worker_job_is_retried_elsewhere_with_the_same_bytes(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str, start_worker: Any
) -> None:
    first = start_worker()
    runs, seed = 40_960, 77
    location = submit(api, fund_id, runs, seed)
    sid = location.rsplit("/", 1)[1]
    wait_for(
        lambda: api.get(location).json(),
        lambda s: s["status"] == "running" and s["progress"] > 0,
        60,
        "the job to make progress",
    )
    lost = job_row(jobs_live.database, sid)
    assert lost["attempts"] == 1 and lost["status"] == "running"
    helpers = psutil.Process(first.pid).children(recursive=True)  # forkserver, compute
    os.kill(first.pid, signal.SIGKILL)  # no clean-up of any kind
    first.proc.wait(10)
    # the compute process dies with its worker (nothing keeps computing for nobody)
    wait_for(
        lambda: [p.pid for p in helpers if p.is_running() and p.status() != "zombie"],
        lambda alive: not alive,
        10,
        "the dead worker's compute processes to exit",
    )

    second = start_worker()
    done = wait_for(
        lambda: api.get(location).json(),
        lambda s: s["status"] in ("succeeded", "failed"),
        120,
        "the retried job",
    )
    assert done["status"] == "succeeded", done
    row = job_row(jobs_live.database, sid)
    assert row["attempts"] == 2 and row["status"] == "succeeded"
    assert row["leased_by"] != lost["leased_by"] and f":{second.pid}:" in row["leased_by"]
    assert canonical(done["result"]) == reference_json(runs, seed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_jobs_in_process_and_stops_with_an_open_event_stream(
    jobs_live: LiveServer, fund_id: str, database_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "UPDOG_DATA_DIR": str(tmp_path / "data"),
        "UPDOG_PORT": str(port),
        "UPDOG_INPROCESS_WORKER": "on",
        "UPDOG_EXECUTOR": "local",
        "UPDOG_THROTTLE_PROFILE": "off",
        "UPDOG_SYNC_RUNS_LIMIT": "500",
        "UPDOG_JOB_POLL_INTERVAL": "0.2",
        "UPDOG_JOB_LEASE_SECONDS": str(LEASE),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "updog", "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    account = make_account(jobs_live.database, "Jobs Ventures", "analyst")
    long_job: str | None = None
    try:

        def livez() -> str:
            assert proc.poll() is None, log.read_text()
            try:
                return str(httpx.get(f"{base}/livez", timeout=2, trust_env=False).status_code)
            except httpx.HTTPError as exc:
                return f"{exc!r}; log: {log.read_text()[-3000:]}"

        wait_for(livez, lambda s: s == "200", 120, "updog serve to answer")
        headers = {"Authorization": f"Bearer {account.token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as c:
            small = submit(c, fund_id, 1_000, 3)
            wait_for(
                lambda: c.get(small).json()["status"],
                lambda s: s == "succeeded",
                60,
                "the in-process worker",
            )
            long_job = submit(c, fund_id, 1_000_000, 4)
            with c.stream("GET", f"{long_job}/events", timeout=60) as s:
                lines = s.iter_lines()
                for line in lines:
                    if line.startswith("data: ") and '"running"' in line:
                        break
                stopped_at = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                rest = list(lines)  # ends when the server closes the stream
                assert not any(line.startswith("event: done") for line in rest)
            assert proc.wait(30) == 0, log.read_text()
            assert time.monotonic() - stopped_at < 15
        # the running job went back to the queue, without spending an attempt
        row = job_row(jobs_live.database, long_job.rsplit("/", 1)[1])
        assert row["status"] == "queued" and row["attempts"] == 0, row
        assert "updog: stopped." in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if long_job is not None:  # do not leave a big job for later tests' workers
            with jobs_live.database.connection() as conn:
                queue.cancel_simulation(conn, account.org_id, _uuid(long_job))


def _uuid(location: str) -> Any:
    import uuid

    return uuid.UUID(location.rsplit("/", 1)[1])
