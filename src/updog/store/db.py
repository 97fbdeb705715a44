"""The database handle: a psycopg 3 connection pool, plus how the service finds its database.

``open_database(settings)`` is what ``updog serve`` and the CLI call: it resolves the URL
(``DATABASE_URL``, else the embedded server of the data folder), applies the migrations and
returns a :class:`Database`. Code that uses the database takes a connection::

    with database.connection() as conn:       # one transaction: commit on success,
        fund = repositories.get_fund(conn, …)  # rollback on an exception

``database.connection(autocommit=True)`` lends the connection in autocommit instead: no
``BEGIN``/``COMMIT`` round trips, each statement its own transaction — for single-statement
calls (:func:`updog.store.repositories.single_statement`); the pool turns autocommit off
again when the connection comes back.

Rows come back as ``dict`` (``psycopg.rows.dict_row``).

Resilience (SPEC §6 practices 2 and 7): every ``connection()`` block is a call through the
``pg`` circuit breaker (:mod:`updog.resilience.postgres`): while PostgreSQL is down the
breaker opens and callers get :class:`~updog.resilience.postgres.DatabaseCircuitOpenError`
(a ``psycopg.OperationalError`` carrying the remaining wait) at once instead of queueing for
the acquire timeout. A block that runs past ``operation_timeout`` is really cancelled (a
server-side cancel, then the socket is shut down if the server cannot be reached) and raises
:class:`~updog.resilience.postgres.DatabaseTimeoutError`. Statements are timed into
:class:`~updog.observability.database.DatabaseTelemetry` (pool metrics, query time by
statement, a slow-query log with literals and parameters redacted).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout, TooManyRequests

from updog.observability.database import DatabaseTelemetry
from updog.resilience.breaker import BreakerRegistry, CallNotPermittedError, CircuitBreaker
from updog.resilience.metrics import BreakerMetrics
from updog.resilience.postgres import (
    PG_BREAKER,
    DatabaseCircuitOpenError,
    DatabaseTimeoutError,
    Watchdog,
    kill_connection,
    pg_breaker_config,
)

if TYPE_CHECKING:
    from updog.settings import Settings
    from updog.store.embedded import EmbeddedPostgres

__all__ = ["Connection", "Database", "libpq_url", "open_database", "resolve_database_url"]

_log = logging.getLogger(__name__)

#: A pooled connection: rows are dicts.
Connection = psycopg.Connection[DictRow]

#: Pool defaults (the same values as :class:`updog.settings.Settings`).
DEFAULT_MIN_SIZE = 1
DEFAULT_MAX_SIZE = 10
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_WAITING = 100
DEFAULT_MAX_LIFETIME = 3600.0
DEFAULT_MAX_IDLE = 600.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_SLOW_QUERY_MS = 500


def libpq_url(url: str) -> str:
    """Turn a SQLAlchemy-style URL (``postgresql+psycopg://``) into one libpq accepts."""
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres+psycopg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


class Database:
    """A pool of connections to one PostgreSQL database.

    Parameters (sizes are counts, times seconds):
        url: libpq URL or conninfo string (``postgresql+psycopg://`` is accepted).
        min_size / max_size: connections kept open / opened at most (default 1 / 10).
        timeout: wait for a free connection before ``psycopg_pool.PoolTimeout`` (5 s).
        max_waiting: queued requests beyond which ``psycopg_pool.TooManyRequests`` is raised
            at once (100; 0 = unbounded).
        max_lifetime / max_idle: connection recycling (3600 s / 600 s).
        connect_timeout: to open one connection (5 s).
        statement_timeout_ms / idle_in_transaction_timeout_ms / lock_timeout_ms: server-side
            limits set on every pooled connection at connect time (0 = none). Being connection
            options they override any per-role default (``ALTER ROLE … SET``); set them to 0
            here to let a DBA's per-role values rule instead.
        operation_timeout: seconds one ``connection()`` block may last before it is cancelled
            (``None`` = no limit; a backstop behind ``statement_timeout`` for a silent network).
        slow_query_ms: statements at least this long go to the slow-query log.
        breakers: the registry holding the ``pg`` breaker (default: a private registry with
            :func:`~updog.resilience.postgres.pg_breaker_config`); apps read it for metrics
            and ``/readyz``, and other breakers (``redis``, ``http:<host>``) may live in it.
        embedded: the embedded server handle this database lives on, released by :meth:`close`.
        name: pool name in logs and metrics.
    """

    def __init__(
        self,
        url: str,
        *,
        min_size: int = DEFAULT_MIN_SIZE,
        max_size: int = DEFAULT_MAX_SIZE,
        timeout: float = DEFAULT_TIMEOUT,
        max_waiting: int = DEFAULT_MAX_WAITING,
        max_lifetime: float = DEFAULT_MAX_LIFETIME,
        max_idle: float = DEFAULT_MAX_IDLE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        statement_timeout_ms: int = 0,
        idle_in_transaction_timeout_ms: int = 0,
        lock_timeout_ms: int = 0,
        operation_timeout: float | None = None,
        slow_query_ms: int = DEFAULT_SLOW_QUERY_MS,
        breakers: BreakerRegistry | None = None,
        embedded: EmbeddedPostgres | None = None,
        name: str = "updog",
    ) -> None:
        self.url = libpq_url(url)
        self.embedded = embedded
        self.operation_timeout = operation_timeout
        self.breakers = breakers or BreakerRegistry(configs={PG_BREAKER: pg_breaker_config()})
        self.breaker: CircuitBreaker = self.breakers.get(PG_BREAKER)
        self.telemetry = DatabaseTelemetry(name, slow_query_seconds=slow_query_ms / 1000)
        BreakerMetrics(self.telemetry.registry).watch(self.breakers)
        self._watchdog = Watchdog()
        options = []
        if statement_timeout_ms:
            options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
        if idle_in_transaction_timeout_ms:
            options.append(
                f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_timeout_ms)}"
            )
        if lock_timeout_ms:
            options.append(f"-c lock_timeout={int(lock_timeout_ms)}")
        kwargs: dict[str, Any] = {
            "row_factory": dict_row,
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": name,
            "cursor_factory": self.telemetry.cursor_class,
        }
        if options:
            kwargs["options"] = " ".join(options)
        self.pool: ConnectionPool[Connection] = ConnectionPool(
            self.url,
            connection_class=psycopg.Connection[DictRow],
            kwargs=kwargs,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            max_waiting=max_waiting,
            max_lifetime=max_lifetime,
            max_idle=max_idle,
            name=name,
            reset=_reset_autocommit,
            open=True,
        )
        self.telemetry.pool = self.pool
        self._closed = False

    @classmethod
    def from_settings(
        cls, settings: Settings, url: str, *, embedded: EmbeddedPostgres | None = None
    ) -> Database:
        """A pool on ``url`` sized and tuned by ``settings``."""
        return cls(
            url,
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            timeout=settings.db_pool_timeout,
            max_waiting=settings.db_pool_max_waiting,
            max_lifetime=settings.db_pool_max_lifetime,
            max_idle=settings.db_pool_max_idle,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout_ms=settings.db_statement_timeout_ms,
            idle_in_transaction_timeout_ms=settings.db_idle_in_transaction_timeout_ms,
            lock_timeout_ms=settings.db_lock_timeout_ms,
            operation_timeout=settings.db_operation_timeout or None,
            slow_query_ms=settings.db_slow_query_ms,
            breakers=BreakerRegistry(
                configs={
                    PG_BREAKER: pg_breaker_config(
                        failure_rate_threshold=settings.pg_breaker_failure_rate,
                        slow_call_duration=settings.pg_breaker_slow_call_seconds,
                        window_size=settings.pg_breaker_window,
                        minimum_calls=settings.pg_breaker_minimum_calls,
                        wait_in_open=settings.pg_breaker_wait_seconds,
                        permitted_calls_in_half_open=settings.pg_breaker_half_open_calls,
                    )
                }
            ),
            embedded=embedded,
        )

    @contextmanager
    def connection(
        self, timeout: float | None = None, *, guarded: bool = True, autocommit: bool = False
    ) -> Iterator[Connection]:
        """Borrow a connection for one transaction: committed when the block ends normally,
        rolled back when it raises. ``timeout`` overrides the pool's wait (seconds).

        Raises ``psycopg_pool.PoolTimeout`` when no connection frees up in time,
        ``psycopg_pool.TooManyRequests`` when too many callers are already waiting,
        :class:`DatabaseCircuitOpenError` when the ``pg`` breaker refuses the call and
        :class:`DatabaseTimeoutError` when the block outlives ``operation_timeout`` — all
        ``psycopg.OperationalError``. ``guarded=False`` bypasses the breaker (the readiness
        probe, which must see the database itself, not the breaker's opinion of it).
        ``autocommit=True``: no transaction around the block (each statement commits on its
        own; saves the ``BEGIN`` and ``COMMIT`` round trips of a single-statement call).
        """
        breaker = self.breaker if guarded else None
        permit = None
        if breaker is not None:
            try:
                permit = breaker.acquire()
            except CallNotPermittedError as exc:
                raise DatabaseCircuitOpenError(exc.breaker, exc.state, exc.remaining_wait) from None
        try:
            with self._borrow(timeout) as conn:
                if autocommit:
                    conn.autocommit = True  # local: no round trip (the connection is idle)
                yield conn
        except Exception as exc:
            if breaker is not None and permit is not None:
                breaker.on_error(permit, exc)
            raise
        except BaseException:
            if breaker is not None and permit is not None:
                breaker.release(permit)
            raise
        if breaker is not None and permit is not None:
            breaker.on_success(permit)

    @contextmanager
    def _borrow(self, timeout: float | None) -> Iterator[Connection]:
        """The pool's connection, with acquire metrics and the operation watchdog."""
        start = time.perf_counter()
        acquired = False
        try:
            with self.pool.connection(timeout=timeout) as conn:
                acquired = True
                self.telemetry.acquire.labels(self.telemetry.pool_name).observe(
                    time.perf_counter() - start
                )
                handle = None
                # The lock makes "cancel this borrow" and "the borrow is over" exclusive, so
                # a late watchdog never touches a connection already handed to someone else.
                lock = threading.Lock()
                active = [True]

                def cancel() -> None:
                    with lock:
                        if active[0]:
                            kill_connection(conn)

                if self.operation_timeout is not None:
                    handle = self._watchdog.schedule(self.operation_timeout, cancel)
                try:
                    yield conn
                except psycopg.Error as exc:
                    if handle is not None and handle.fired:
                        raise DatabaseTimeoutError(
                            PG_BREAKER, float(self.operation_timeout or 0)
                        ) from exc
                    raise
                finally:
                    if handle is not None:
                        handle.cancel()
                        with lock:
                            active[0] = False
        except (PoolTimeout, TooManyRequests) as exc:
            if not acquired:
                reason = "timeout" if isinstance(exc, PoolTimeout) else "queue_full"
                self.telemetry.acquire_failures.labels(self.telemetry.pool_name, reason).inc()
            raise

    def ping(self, timeout: float = 2.0) -> bool:
        """True when a connection can be borrowed and answers ``SELECT 1`` within ``timeout``
        (bypassing the breaker)."""
        try:
            with self.connection(timeout=timeout, guarded=False) as conn:
                conn.execute("SELECT 1")
            return True
        except Exception:
            return False

    def close(self, timeout: float = 5.0) -> None:
        """Close the pool (waiting up to ``timeout`` s for borrowed connections) and release
        the embedded server handle, if any. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._watchdog.stop()
        self.pool.close(timeout=timeout)
        if self.embedded is not None:
            self.embedded.stop()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._closed

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reset_autocommit(conn: Connection) -> None:
    """Pool reset hook: a connection lent in autocommit goes back transactional (no round
    trip; if it raises, the pool discards the connection)."""
    if conn.autocommit:
        conn.autocommit = False


def resolve_database_url(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """The database to use: ``settings.database_url`` if set, else the embedded server of
    ``settings.data_dir`` (started or joined; the caller must ``stop()`` the handle).

    Returns ``(url, embedded_handle_or_None)``. Raises
    :class:`updog.store.embedded.EmbeddedPostgresError` when the embedded server cannot start.
    """
    if settings.database_url:
        return libpq_url(settings.database_url), None
    from updog.store import embedded

    handle = embedded.start(settings.data_dir)
    return handle.url, handle


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Resolve the database (see :func:`resolve_database_url`), apply the migrations (under
    an advisory lock, so concurrent starts are safe) and return a pooled :class:`Database`.

    Raises ``sqlalchemy.exc.OperationalError`` (wrapping ``psycopg.OperationalError``, from
    the migration step) or ``psycopg.OperationalError`` when the server cannot be reached and
    ``EmbeddedPostgresError`` when the embedded server cannot start.
    """
    from updog.store import migrate as migrations

    url, handle = resolve_database_url(settings)
    try:
        if migrate:
            migrations.upgrade(url)
        return Database.from_settings(settings, url, embedded=handle)
    except BaseException:
        if handle is not None:
            handle.stop()
        raise
