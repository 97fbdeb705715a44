"""The ``pg`` breaker's view of PostgreSQL: which errors mean "the database is sick", the
errors a refused or timed-out call raises, and the watchdog that really cancels a database
operation that runs past its time.

What counts as a failure (:func:`is_database_failure`): a lost or refused connection, a pool
that cannot hand out a connection in time (``PoolTimeout``), a statement cancelled by the
server's ``statement_timeout`` or by our watchdog — all ``psycopg.OperationalError``. What
does not count, and passes through unchanged: the caller's faults (constraint violations,
bad SQL, data errors, our store's ``NotFound``/``StaleVersion`` …), lock contention between
callers (``lock_not_available``, deadlocks, serialization failures: the database is healthy,
two requests collided) and a full waiting queue (``TooManyRequests``: our own load shedding).

Cancelling a blocking database call from outside (:class:`Watchdog`, :func:`kill_connection`):
first a server-side cancel request (``PQcancel``: the server stops the statement, the
connection stays usable), and when the server cannot be reached either (a black-holed
network) the client socket is shut down, which wakes the blocked thread with an
``OperationalError``; the pool then discards that connection.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import errors as pgerrors

from updog.resilience.breaker import (
    BreakerConfig,
    CallNotPermittedError,
    OperationTimeoutError,
    State,
)

__all__ = [
    "PG_BREAKER",
    "DatabaseCircuitOpenError",
    "DatabaseTimeoutError",
    "Watchdog",
    "is_contention",
    "is_database_failure",
    "kill_connection",
    "pg_breaker_config",
]

#: Name of the PostgreSQL breaker in the registry.
PG_BREAKER = "pg"

#: Errors between callers, not of the database: never counted.
_CONTENTION = (
    pgerrors.LockNotAvailable,
    pgerrors.DeadlockDetected,
    pgerrors.SerializationFailure,
)


def is_contention(exc: BaseException) -> bool:
    """A lock timeout, deadlock or serialization failure (a retry may well succeed)."""
    return isinstance(exc, _CONTENTION)


def is_database_failure(exc: BaseException) -> bool:
    """True when ``exc`` says the database (or the way to it) is unhealthy."""
    from psycopg_pool import TooManyRequests

    if isinstance(exc, DatabaseTimeoutError):
        return True
    if isinstance(exc, TooManyRequests) or is_contention(exc):
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def pg_breaker_config(**overrides: Any) -> BreakerConfig:
    """The ``pg`` breaker's configuration (see :class:`BreakerConfig` for the reasoning of
    the defaults), with database errors classified by :func:`is_database_failure`."""
    return BreakerConfig(is_failure=is_database_failure).with_(**overrides)


class DatabaseCircuitOpenError(CallNotPermittedError, psycopg.OperationalError):
    """The ``pg`` breaker refused the call. Also a ``psycopg.OperationalError``, so every
    layer that already answers 503 for an unreachable database does so for this too."""

    def __init__(self, breaker: str, state: State, remaining_wait: float) -> None:
        CallNotPermittedError.__init__(self, breaker, state, remaining_wait)


class DatabaseTimeoutError(OperationTimeoutError, psycopg.OperationalError):
    """A database operation ran past its ``operation_timeout`` and was cancelled."""

    def __init__(self, breaker: str, timeout: float) -> None:
        OperationTimeoutError.__init__(self, breaker, timeout)


# --------------------------------------------------------------------------- cancelling


def kill_connection(conn: Any, cancel_timeout: float = 1.0) -> None:
    """Stop whatever ``conn`` is doing: a server-side cancel, then (if the connection is
    still busy) shut its socket down. Safe to call from another thread."""
    with contextlib.suppress(Exception):
        conn.cancel_safe(timeout=cancel_timeout)
    time.sleep(0.05)
    with contextlib.suppress(Exception):
        pgconn = conn.pgconn
        if pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE:
            fd = os.dup(pgconn.socket)
            try:
                with socket.socket(fileno=fd) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                os.close(fd)


class _Entry:
    __slots__ = ("callback", "cancelled", "deadline", "fired")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False
        self.fired = False


class WatchdogHandle:
    """A scheduled callback: :meth:`cancel` it when the operation finished in time."""

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def cancel(self) -> None:
        self._entry.cancelled = True

    @property
    def fired(self) -> bool:
        return self._entry.fired


class Watchdog:
    """One daemon thread running callbacks at deadlines (cheaper than a Timer per call).

    A callback that fires runs in its own short-lived thread, so a slow cancel never delays
    the next deadline.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def schedule(self, delay: float, callback: Callable[[], None]) -> WatchdogHandle:
        entry = _Entry(self.clock() + delay, callback)
        with self._cond:
            heapq.heappush(self._heap, (entry.deadline, next(self._seq), entry))
            if self._thread is None or not self._thread.is_alive():
                self._stopped = False
                self._thread = threading.Thread(
                    target=self._run, name="updog-db-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return WatchdogHandle(entry)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    while self._heap and self._heap[0][2].cancelled:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        if not self._cond.wait(timeout=30) and not self._heap:
                            self._thread = None  # idle: let the thread go
                            return
                        continue
                    wait = self._heap[0][0] - self.clock()
                    if wait <= 0:
                        break
                    self._cond.wait(timeout=wait)
                if self._stopped:
                    self._thread = None
                    return
                _, _, entry = heapq.heappop(self._heap)
            if entry.cancelled:
                continue
            entry.fired = True
            threading.Thread(target=entry.callback, name="updog-db-cancel", daemon=True).start()
