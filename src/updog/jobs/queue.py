"""The durable job queue: rows of the ``jobs`` table, claimed with ``FOR UPDATE SKIP LOCKED``.

A job moves ``queued → running → succeeded | failed | cancelled``. Claiming a job takes a
*lease* (``leased_by``, ``lease_expires_at``) that the worker renews with heartbeats; a worker
that dies stops renewing, and once the lease has expired the next :func:`claim` puts the job
back in the queue (or fails it once ``max_attempts`` are spent). Every write a worker makes is
conditional on still holding the lease, so a worker that lost its job (expired lease, or a
cancellation) can never overwrite what another worker or the user did.

A simulation job carries a snapshot of the validated spec, the run count and the seed in its
payload, so a retry computes exactly what the first attempt would have (same seed → same
bytes). The job and its simulation row change state together, in one transaction.

Like the repositories, every function takes an open connection and runs in the caller's
transaction (use ``Database.connection()``); none commits.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg.types.json import Jsonb

from updog.store import repositories as repo
from updog.store.db import Connection
from updog.store.repositories import FundVersion, SimulationRecord

__all__ = [
    "JOB_KIND_SIMULATION",
    "NOTIFY_CHANNEL",
    "Job",
    "NotCancellable",
    "cancel_simulation",
    "claim",
    "fail",
    "get_job_for_simulation",
    "heartbeat",
    "release",
    "retry_later",
    "submit_simulation",
    "succeed",
]

#: ``jobs.kind`` of a Monte Carlo simulation job.
JOB_KIND_SIMULATION = "simulation"
#: PostgreSQL ``NOTIFY`` channel signalled when a job is queued (workers may ``LISTEN``).
NOTIFY_CHANNEL = "updog_jobs"
#: Code recorded when a job ran out of attempts because its workers kept disappearing.
WORKER_LOST = "WORKER_LOST"


@dataclass(frozen=True, slots=True)
class Job:
    """A row of ``jobs``; ``payload`` of a simulation job is ``{"spec", "runs", "seed"}``."""

    id: uuid.UUID
    kind: str
    org_id: uuid.UUID | None
    simulation_id: uuid.UUID | None
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    leased_by: str | None
    lease_expires_at: datetime | None
    progress: float
    cancel_requested: bool
    last_error: str | None
    created_at: datetime


class NotCancellable(repo.StoreError):
    """The simulation cannot be cancelled: it has finished, or it is a synchronous run."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def _job(row: Mapping[str, Any]) -> Job:
    return Job(**{name: row[name] for name in Job.__dataclass_fields__})


def submit_simulation(
    conn: Connection,
    org_id: uuid.UUID,
    fund_version: FundVersion,
    *,
    spec: Mapping[str, Any],
    runs: int,
    seed: int,
    engine_version: str,
    max_attempts: int,
    user_id: uuid.UUID | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[SimulationRecord, Job]:
    """Record a queued simulation and its job in one transaction, and notify workers.

    ``spec`` is the validated spec as JSON (the job computes from this snapshot). Raises
    :class:`~updog.store.repositories.NotFound` when the fund is not ``org_id``'s."""
    sim = repo.create_simulation(
        conn,
        org_id,
        fund_version,
        runs=runs,
        seed=seed,
        engine_version=engine_version,
        user_id=user_id,
        params=params,
        status="queued",
    )
    row = conn.execute(
        "INSERT INTO jobs (kind, org_id, simulation_id, payload, max_attempts) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING *",
        (
            JOB_KIND_SIMULATION,
            org_id,
            sim.id,
            Jsonb({"spec": dict(spec), "runs": runs, "seed": str(seed)}),
            max_attempts,
        ),
    ).fetchone()
    assert row is not None
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(row["id"])))
    return sim, _job(row)


def get_job_for_simulation(
    conn: Connection, org_id: uuid.UUID, simulation_id: uuid.UUID
) -> Job | None:
    """The job computing ``simulation_id`` (None for a synchronous run or another org's)."""
    row = conn.execute(
        "SELECT * FROM jobs WHERE simulation_id = %s AND org_id = %s", (simulation_id, org_id)
    ).fetchone()
    return None if row is None else _job(row)


def _reap_expired(conn: Connection) -> None:
    """Leases that ran out: back to the queue, or failed once out of attempts."""
    rows = conn.execute(
        "SELECT id, org_id, simulation_id, attempts, max_attempts FROM jobs "
        "WHERE status = 'running' AND lease_expires_at < now() "
        "ORDER BY lease_expires_at FOR UPDATE SKIP LOCKED LIMIT 100"
    ).fetchall()
    for row in rows:
        if row["attempts"] < row["max_attempts"]:
            conn.execute(
                "UPDATE jobs SET status = 'queued', leased_by = NULL, lease_expires_at = NULL, "
                "last_error = 'lease expired: the worker stopped answering', "
                "run_after = now(), updated_at = now() WHERE id = %s",
                (row["id"],),
            )
            _requeue_simulation(conn, row["org_id"], row["simulation_id"])
        else:
            message = (
                f"the worker computing this job stopped answering {row['attempts']} times; "
                "giving up"
            )
            _finish_job(conn, row["id"], "failed", message)
            _fail_simulation(
                conn, row["org_id"], row["simulation_id"], {"code": WORKER_LOST, "message": message}
            )


def claim(conn: Connection, worker_id: str, lease_seconds: float) -> Job | None:
    """Lease the next due job to ``worker_id`` (highest priority, then oldest), or None.

    First returns expired leases to the queue. Concurrent claimers never get the same job
    (``FOR UPDATE SKIP LOCKED``); each claim counts an attempt."""
    _reap_expired(conn)
    row = conn.execute(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, leased_by = %s, "
        "lease_expires_at = now() + make_interval(secs => %s), heartbeat_at = now(), "
        "progress = 0, updated_at = now() "
        "WHERE id = (SELECT id FROM jobs WHERE status = 'queued' AND run_after <= now() "
        "  ORDER BY priority DESC, run_after, created_at FOR UPDATE SKIP LOCKED LIMIT 1) "
        "RETURNING *",
        (worker_id, lease_seconds),
    ).fetchone()
    if row is None:
        return None
    job = _job(row)
    if job.simulation_id is not None and job.org_id is not None:
        try:
            repo.start_simulation(conn, job.org_id, job.simulation_id)
            repo.set_simulation_progress(conn, job.org_id, job.simulation_id, 0.0)
        except repo.NotFound:  # the simulation was finished or cancelled meanwhile
            _finish_job(conn, job.id, "cancelled", "the simulation is no longer unfinished")
            return None
    return job


def heartbeat(
    conn: Connection, job: Job, worker_id: str, lease_seconds: float, progress: float
) -> bool:
    """Renew ``worker_id``'s lease on ``job`` and record ``progress`` ∈ [0, 1].

    False when the worker no longer holds the job (cancelled, or its lease expired and
    another worker took it): the worker must stop and must not write a result."""
    progress = min(1.0, max(0.0, progress))
    row = conn.execute(
        "UPDATE jobs SET lease_expires_at = now() + make_interval(secs => %s), "
        "heartbeat_at = now(), progress = %s, updated_at = now() "
        "WHERE id = %s AND leased_by = %s AND status = 'running' AND NOT cancel_requested "
        "RETURNING id",
        (lease_seconds, progress, job.id, worker_id),
    ).fetchone()
    if row is None:
        return False
    if job.simulation_id is not None and job.org_id is not None:
        conn.execute(
            "UPDATE simulations SET progress = %s WHERE id = %s AND org_id = %s "
            "AND status = 'running'",
            (progress, job.simulation_id, job.org_id),
        )
    return True


def _take_back(conn: Connection, job: Job, worker_id: str) -> bool:
    """Lock ``job`` if ``worker_id`` still holds it."""
    row = conn.execute(
        "SELECT id FROM jobs WHERE id = %s AND leased_by = %s AND status = 'running' "
        "AND NOT cancel_requested FOR UPDATE",
        (job.id, worker_id),
    ).fetchone()
    return row is not None


def _finish_job(
    conn: Connection,
    job_id: uuid.UUID,
    status: Literal["succeeded", "failed", "cancelled"],
    error: str | None = None,
) -> None:
    conn.execute(
        "UPDATE jobs SET status = %s, last_error = COALESCE(%s, last_error), "
        "progress = CASE WHEN %s = 'succeeded' THEN 1 ELSE progress END, "
        "lease_expires_at = NULL, finished_at = now(), updated_at = now() WHERE id = %s",
        (status, error, status, job_id),
    )


def _fail_simulation(
    conn: Connection,
    org_id: uuid.UUID | None,
    simulation_id: uuid.UUID | None,
    error: Mapping[str, Any],
) -> None:
    if org_id is None or simulation_id is None:
        return
    # already finished (e.g. cancelled): nothing to record
    with contextlib.suppress(repo.NotFound):
        repo.fail_simulation(conn, org_id, simulation_id, error)


def _requeue_simulation(
    conn: Connection, org_id: uuid.UUID | None, simulation_id: uuid.UUID | None
) -> None:
    if org_id is None or simulation_id is None:
        return
    conn.execute(
        "UPDATE simulations SET status = 'queued', progress = 0 "
        "WHERE id = %s AND org_id = %s AND status IN ('queued', 'running')",
        (simulation_id, org_id),
    )


def succeed(conn: Connection, job: Job, worker_id: str, result: Mapping[str, Any]) -> bool:
    """Store ``result`` and mark the job and its simulation succeeded, if ``worker_id`` still
    holds the job (False otherwise: the result is discarded, another owner decides)."""
    if not _take_back(conn, job, worker_id):
        return False
    _finish_job(conn, job.id, "succeeded")
    if job.simulation_id is not None and job.org_id is not None:
        repo.complete_simulation(conn, job.org_id, job.simulation_id, result)
    return True


def fail(conn: Connection, job: Job, worker_id: str, code: str, message: str) -> bool:
    """Mark the job and its simulation failed with ``{"code", "message"}`` (not retried)."""
    if not _take_back(conn, job, worker_id):
        return False
    _finish_job(conn, job.id, "failed", f"{code}: {message}")
    _fail_simulation(conn, job.org_id, job.simulation_id, {"code": code, "message": message})
    return True


def retry_later(
    conn: Connection, job: Job, worker_id: str, code: str, message: str, delay: float
) -> bool:
    """Put the job back in the queue after ``delay`` seconds, or fail it when it has no
    attempts left. False when ``worker_id`` no longer holds it."""
    if not _take_back(conn, job, worker_id):
        return False
    if job.attempts >= job.max_attempts:
        return fail(conn, job, worker_id, code, f"{message} (after {job.attempts} attempts)")
    conn.execute(
        "UPDATE jobs SET status = 'queued', leased_by = NULL, lease_expires_at = NULL, "
        "last_error = %s, run_after = now() + make_interval(secs => %s), updated_at = now() "
        "WHERE id = %s",
        (f"{code}: {message}", delay, job.id),
    )
    _requeue_simulation(conn, job.org_id, job.simulation_id)
    return True


def release(conn: Connection, job: Job, worker_id: str) -> bool:
    """Give the job back to the queue at once, without spending an attempt (a worker shutting
    down gracefully). False when ``worker_id`` no longer holds it."""
    if not _take_back(conn, job, worker_id):
        return False
    conn.execute(
        "UPDATE jobs SET status = 'queued', leased_by = NULL, lease_expires_at = NULL, "
        "attempts = GREATEST(attempts - 1, 0), run_after = now(), updated_at = now(), "
        "last_error = 'released by a worker shutting down' WHERE id = %s",
        (job.id,),
    )
    _requeue_simulation(conn, job.org_id, job.simulation_id)
    conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(job.id)))
    return True


def cancel_simulation(
    conn: Connection, org_id: uuid.UUID, simulation_id: uuid.UUID
) -> SimulationRecord | None:
    """Cancel a queued or running simulation job: the job and the simulation become
    ``cancelled`` at once, and the worker computing it stops at its next heartbeat.

    Returns the simulation (None when missing or another organisation's); cancelling a
    cancelled simulation returns it unchanged. Raises :class:`NotCancellable` when it has
    succeeded or failed, or when it is a synchronous run (no job)."""
    # Lock the job first (a finishing worker locks the job, then the simulation: same order)
    job = conn.execute(
        "SELECT id FROM jobs WHERE simulation_id = %s AND org_id = %s FOR UPDATE",
        (simulation_id, org_id),
    ).fetchone()
    sim = repo.get_simulation(conn, org_id, simulation_id)
    if sim is None or sim.status == "cancelled":
        return sim
    if sim.status in ("succeeded", "failed"):
        raise NotCancellable(sim.status, f"the simulation has already {sim.status}")
    if job is None:
        raise NotCancellable(sim.status, "a synchronous simulation cannot be cancelled")
    conn.execute(
        "UPDATE jobs SET cancel_requested = true, status = 'cancelled', lease_expires_at = NULL, "
        "finished_at = now(), updated_at = now() WHERE id = %s",
        (job["id"],),
    )
    row = conn.execute(
        "UPDATE simulations SET status = 'cancelled', finished_at = now() "
        "WHERE id = %s AND org_id = %s RETURNING id",
        (simulation_id, org_id),
    ).fetchone()
    assert row is not None
    return repo.get_simulation(conn, org_id, simulation_id)
