"""The job worker: claims simulation jobs from PostgreSQL and computes them under limits.

A :class:`Worker` loops: claim the next job (:func:`updog.jobs.queue.claim`), compute it in a
separate process (:func:`updog.jobs.compute.run_limited`) while renewing the lease and
recording progress, then store the result or the failure. Between jobs it waits for a
``NOTIFY`` on :data:`~updog.jobs.queue.NOTIFY_CHANNEL` or ``poll_interval`` seconds.

What ends a job:

* the result → ``succeeded`` (stored with the simulation, in one transaction);
* an engine error, a guard, the time or memory limit → ``failed`` with ``{"code",
  "message"}`` on the simulation (deterministic: retrying would fail again);
* the compute process dying without a word → retried after a back-off, until the job's
  attempts are spent (then ``failed``);
* the user's ``DELETE`` → the next heartbeat finds the job cancelled and the compute is
  killed;
* this worker being killed → its lease expires and another worker's claim retries the job;
* a graceful stop (``stop`` event: SIGTERM/SIGINT of ``updog worker``, or ``updog serve``
  stopping) → the compute is killed and the job released to the queue at once, without
  spending an attempt.

Database errors (the database restarting, a network blip) are logged and waited out; they
never end the worker.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from updog.jobs import queue
from updog.jobs.compute import ExecutorConfig, Limits, Outcome, run_limited
from updog.jobs.queue import Job
from updog.observability.logging import get_logger
from updog.store import repositories as repo

__all__ = ["Worker", "WorkerConfig"]

_log = get_logger("updog.jobs")

#: Seconds between progress writes to the database (progress in between is coalesced).
PROGRESS_WRITE_INTERVAL = 0.5
#: Back-off after a crashed compute, seconds per attempt spent.
RETRY_BACKOFF = 2.0
#: Seconds to wait after a database error before trying again.
DB_ERROR_BACKOFF = 2.0


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """A worker's knobs (see :class:`~updog.settings.Settings` for their documentation)."""

    executor: ExecutorConfig
    limits: Limits
    lease_seconds: float = 30.0
    poll_interval: float = 1.0
    #: Fault plan for the compute (``point:kind,...``; :mod:`updog.model.faults`): tests only.
    faults: str | None = None

    @classmethod
    def from_settings(cls, settings: Any, executor: str | None = None) -> WorkerConfig:
        """From :class:`~updog.settings.Settings`; ``executor`` overrides its ``executor``."""
        return cls(
            executor=ExecutorConfig.choose(
                executor or settings.executor, settings.dask_scheduler_address
            ),
            limits=Limits(
                time_seconds=settings.job_time_limit,
                memory_bytes=settings.job_memory_limit_mb * 2**20,
            ),
            lease_seconds=settings.job_lease_seconds,
            poll_interval=settings.job_poll_interval,
            faults=getattr(settings, "faults", None) or None,
        )


def default_worker_id() -> str:
    """``host:pid:random`` — unique per worker, readable in ``jobs.leased_by``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


#: Seconds between housekeeping passes of a worker (expired idempotency keys).
HOUSEKEEPING_INTERVAL = 600.0


class Worker:
    """Executes jobs from ``database`` (a store ``Database``) until ``stop`` is set."""

    def __init__(
        self, database: Any, config: WorkerConfig, *, worker_id: str | None = None
    ) -> None:
        self.database = database
        self.config = config
        self.worker_id = worker_id or default_worker_id()
        self.jobs_done = 0

    # ------------------------------------------------------------------ loop

    def run(self, stop: threading.Event) -> None:
        """Claim and execute jobs until ``stop`` is set (then release the running job)."""
        _log.info(
            "job worker started",
            worker=self.worker_id,
            executor=self.config.executor.describe(),
        )
        waiter = _Waiter(self.database, stop)
        next_housekeeping = 0.0
        try:
            while not stop.is_set():
                try:
                    if time.monotonic() >= next_housekeeping:
                        self.housekeeping()
                        next_housekeeping = time.monotonic() + HOUSEKEEPING_INTERVAL
                    ran = self.run_once(stop)
                except Exception:
                    _log.exception("job worker: database error; retrying")
                    stop.wait(DB_ERROR_BACKOFF)
                    continue
                if not ran:
                    waiter.wait(self.config.poll_interval)
        finally:
            waiter.close()
            _log.info("job worker stopped", worker=self.worker_id)

    def housekeeping(self) -> int:
        """Periodic clean-up that any worker may do: purge expired idempotency records
        (SPEC §6.5: keys expire after 24 h). Returns how many rows were deleted."""
        with self.database.connection() as conn:
            purged = repo.purge_expired_idempotency_keys(conn)
        if purged:
            _log.info("purged expired idempotency keys", count=purged)
        return purged

    def run_once(self, stop: threading.Event | None = None) -> bool:
        """Claim one due job and execute it; False when the queue had none."""
        with self.database.connection() as conn:
            job = queue.claim(conn, self.worker_id, self.config.lease_seconds)
        if job is None:
            return False
        self.execute(job, stop or threading.Event())
        self.jobs_done += 1
        return True

    # ------------------------------------------------------------------ one job

    def execute(self, job: Job, stop: threading.Event) -> None:
        """Compute ``job`` (claimed by this worker) and record how it ended."""
        log = {"job": str(job.id), "simulation": str(job.simulation_id), "attempt": job.attempts}
        _log.info("job started", **log)
        started = time.monotonic()
        if job.kind != queue.JOB_KIND_SIMULATION:
            self._record(job, Outcome("failed", error={"code": "UNKNOWN_JOB", "message": job.kind}))
            return
        beat = _Heartbeat(self, job, stop)
        payload = job.payload
        outcome = run_limited(
            payload["spec"],
            int(payload["runs"]),
            int(payload["seed"]),
            executor=self.config.executor,
            limits=self.config.limits,
            on_progress=beat.progress,
            should_stop=beat.check,
            faults=self.config.faults,
        )
        self._record(job, outcome)
        _log.info(
            "job ended",
            **log,
            outcome=outcome.status,
            error=(outcome.error or {}).get("code"),
            duration_s=round(time.monotonic() - started, 3),
        )

    def _record(self, job: Job, outcome: Outcome) -> None:
        error = outcome.error or {}
        code, message = error.get("code", "ENGINE_ERROR"), error.get("message", "")
        for attempt in range(3):
            try:
                with self.database.connection() as conn:
                    if outcome.status == "succeeded":
                        assert outcome.result is not None
                        queue.succeed(conn, job, self.worker_id, outcome.result)
                    elif outcome.status == "failed":
                        queue.fail(conn, job, self.worker_id, code, message)
                    elif outcome.status == "crashed":
                        queue.retry_later(
                            conn, job, self.worker_id, code, message, RETRY_BACKOFF * job.attempts
                        )
                    elif message == _SHUTDOWN:
                        queue.release(conn, job, self.worker_id)
                    # "stopped" for any other reason: cancelled or lost, nothing to write
                return
            except Exception:
                _log.exception("job worker: cannot record the outcome", job=str(job.id))
                if attempt < 2:
                    time.sleep(DB_ERROR_BACKOFF)
        # the lease will expire and another worker retries the job


_SHUTDOWN = "worker shutting down"
_LOST = "the job was cancelled or another worker holds it"


class _Heartbeat:
    """Renews the lease every third of it and writes progress (coalesced); tells the compute
    watcher to stop when the worker stops or no longer holds the job."""

    def __init__(self, worker: Worker, job: Job, stop: threading.Event) -> None:
        self.worker = worker
        self.job = job
        self.stop = stop
        self.fraction = 0.0
        self.written = 0.0
        now = time.monotonic()
        self.last_beat = now
        self.last_write = now

    def progress(self, done: int, total: int) -> None:
        self.fraction = done / total if total else 0.0

    def check(self) -> str | None:
        if self.stop.is_set():
            return _SHUTDOWN
        now = time.monotonic()
        due = now - self.last_beat >= self.worker.config.lease_seconds / 3
        news = self.fraction != self.written and now - self.last_write >= PROGRESS_WRITE_INTERVAL
        if not (due or news):
            return None
        try:
            with self.worker.database.connection() as conn:
                held = queue.heartbeat(
                    conn,
                    self.job,
                    self.worker.worker_id,
                    self.worker.config.lease_seconds,
                    # a finished compute reports 1.0 with its result, not here
                    min(self.fraction, 0.999),
                )
        except Exception:  # a database blip: keep computing, try again next time
            _log.warning("heartbeat failed", job=str(self.job.id), exc_info=True)
            self.last_beat = now  # do not hammer a failing database
            return None
        self.last_beat = self.last_write = now
        self.written = self.fraction
        return None if held else _LOST


class _Waiter:
    """Waits for a queued-job notification (``LISTEN``) or a timeout, whichever comes first;
    falls back to sleeping when it cannot listen."""

    def __init__(self, database: Any, stop: threading.Event) -> None:
        self.stop = stop
        self.conn: Any = None
        try:
            import psycopg

            self.conn = psycopg.connect(database.url, autocommit=True, connect_timeout=5)
            self.conn.execute(f"LISTEN {queue.NOTIFY_CHANNEL}")
        except Exception:
            self.conn = None

    def wait(self, timeout: float) -> None:
        if self.conn is None:
            self.stop.wait(timeout)
            return
        # short slices, so a stop request is honoured promptly
        deadline = time.monotonic() + timeout
        try:
            while not self.stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                for _ in self.conn.notifies(timeout=min(left, 0.5), stop_after=1):
                    return
        except Exception:
            self.close()
            self.stop.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def start_in_thread(
    database: Any, config: WorkerConfig, *, name: str = "updog-job-worker"
) -> tuple[threading.Thread, threading.Event]:
    """Run a :class:`Worker` in a daemon thread (``updog serve``'s in-process worker);
    set the returned event to stop it, then join the thread."""
    stop = threading.Event()
    worker = Worker(database, config)
    thread = threading.Thread(target=worker.run, args=(stop,), name=name, daemon=True)
    thread.start()
    return thread, stop
