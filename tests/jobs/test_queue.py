"""The queue's guarantees at the SQL level: concurrent claims never share a job
(``FOR UPDATE SKIP LOCKED``), an expired lease moves the job to another worker and fences the
old one off, attempts run out, a graceful release costs no attempt, a crash backs off."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from api.api_support import LiveServer
from updog.jobs import queue

pytestmark = pytest.mark.db


def _queued(api: httpx.Client, fund_id: str, n: int) -> list[uuid.UUID]:
    ids = []
    for i in range(n):
        r = api.post(f"/api/v1/funds/{fund_id}/simulations", json={"runs": 1_000, "seed": i})
        assert r.status_code == 202, r.text
        ids.append(uuid.UUID(r.json()["id"]))
    return ids


def _claim(database: Any, worker: str, lease: float = 30.0) -> queue.Job | None:
    with database.connection() as conn:
        return queue.claim(conn, worker, lease)


def _sim(database: Any, sid: uuid.UUID | None) -> dict[str, Any]:
    with database.connection() as conn:
        row = conn.execute("SELECT * FROM simulations WHERE id = %s", (sid,)).fetchone()
    assert row is not None
    return dict(row)


@pytest.fixture(autouse=True)
def _empty_queue(jobs_live: LiveServer) -> None:
    with jobs_live.database.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'cancelled' WHERE status IN ('queued', 'running')")


def test_concurrent_claims_never_share_a_job(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    ids = set(_queued(api, fund_id, 2))
    database = jobs_live.database
    inside = threading.Barrier(2)
    got: list[queue.Job | None] = []

    def claimer(name: str) -> None:
        with database.connection() as conn:
            job = queue.claim(conn, name, 30)
            got.append(job)
            inside.wait(10)  # both transactions hold their row locks at the same time

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    claimed = [j for j in got if j is not None]
    assert len(claimed) == 2 and {j.simulation_id for j in claimed} == ids
    assert _claim(database, "w3") is None
    for j in claimed:
        assert _sim(database, j.simulation_id)["status"] == "running"


def test_expired_lease_moves_the_job_and_fences_the_old_worker(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    (sid,) = _queued(api, fund_id, 1)
    database = jobs_live.database
    first = _claim(database, "old", lease=0.2)
    assert first is not None and first.attempts == 1
    assert _claim(database, "new") is None  # the lease still holds
    time.sleep(0.4)
    second = _claim(database, "new")
    assert second is not None and second.id == first.id and second.attempts == 2
    with database.connection() as conn:
        assert not queue.heartbeat(conn, first, "old", 30, 0.5)
        assert not queue.succeed(conn, first, "old", {"runs": 1})
        assert not queue.fail(conn, first, "old", "X", "y")
        assert queue.heartbeat(conn, second, "new", 30, 0.5)
    assert _sim(database, sid)["progress"] == 0.5
    with database.connection() as conn:
        assert queue.succeed(conn, second, "new", {"runs": 1_000})
    sim = _sim(database, sid)
    assert sim["status"] == "succeeded" and sim["result"] == {"runs": 1_000}


def test_attempts_run_out_as_worker_lost(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    (sid,) = _queued(api, fund_id, 1)
    database = jobs_live.database
    with database.connection() as conn:
        conn.execute("UPDATE jobs SET max_attempts = 1 WHERE simulation_id = %s", (sid,))
    assert _claim(database, "doomed", lease=0.1) is not None
    time.sleep(0.3)
    assert _claim(database, "next") is None
    sim = _sim(database, sid)
    assert sim["status"] == "failed" and sim["error"]["code"] == "WORKER_LOST"


def test_release_costs_no_attempt_and_a_crash_backs_off(
    jobs_live: LiveServer, api: httpx.Client, fund_id: str
) -> None:
    (sid,) = _queued(api, fund_id, 1)
    database = jobs_live.database
    job = _claim(database, "leaving")
    assert job is not None
    with database.connection() as conn:
        assert queue.release(conn, job, "leaving")
    assert _sim(database, sid)["status"] == "queued"
    job = _claim(database, "crashing")
    assert job is not None and job.attempts == 1
    with database.connection() as conn:
        assert queue.retry_later(conn, job, "crashing", "COMPUTE_PROCESS_DIED", "boom", 30)
        row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job.id,)).fetchone()
    assert row["status"] == "queued" and row["last_error"] == "COMPUTE_PROCESS_DIED: boom"
    assert _claim(database, "eager") is None  # backing off


def test_worker_housekeeping_purges_expired_idempotency_keys(jobs_live: LiveServer) -> None:
    from updog.jobs.worker import Worker, WorkerConfig

    database = jobs_live.database
    with database.connection() as conn:
        conn.execute(
            "INSERT INTO idempotency_keys (scope, method, path, key, request_hash, expires_at)"
            " VALUES ('test', 'POST', '/x', 'old', 'h', now() - interval '1 hour'),"
            " ('test', 'POST', '/x', 'new', 'h', now() + interval '1 hour')"
        )
    worker = Worker(database, WorkerConfig.from_settings(jobs_live.settings))
    assert worker.housekeeping() >= 1
    with database.connection() as conn:
        keys = [
            r["key"]
            for r in conn.execute(
                "SELECT key FROM idempotency_keys WHERE scope = 'test'"
            ).fetchall()
        ]
    assert keys == ["new"]
