"""The database handle: a psycopg 3 connection pool, plus how the service finds its database.

``open_database(settings)`` is what ``updog serve`` and the CLI call: it resolves the URL
(``DATABASE_URL``, else the embedded server of the data folder), applies the migrations and
returns a :class:`Database`. Code that uses the database takes a connection::

    with database.connection() as conn:       # one transaction: commit on success,
        fund = repositories.get_fund(conn, …)  # rollback on an exception

Rows come back as ``dict`` (``psycopg.rows.dict_row``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool

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
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_WAITING = 100
DEFAULT_MAX_LIFETIME = 3600.0
DEFAULT_MAX_IDLE = 600.0
DEFAULT_CONNECT_TIMEOUT = 5.0


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
        timeout: wait for a free connection before ``psycopg_pool.PoolTimeout`` (10 s).
        max_waiting: queued requests beyond which ``psycopg_pool.TooManyRequests`` is raised
            at once (100; 0 = unbounded).
        max_lifetime / max_idle: connection recycling (3600 s / 600 s).
        connect_timeout: to open one connection (5 s).
        statement_timeout_ms / idle_in_transaction_timeout_ms: server-side limits set on every
            pooled connection (0 = none).
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
        embedded: EmbeddedPostgres | None = None,
        name: str = "updog",
    ) -> None:
        self.url = libpq_url(url)
        self.embedded = embedded
        options = []
        if statement_timeout_ms:
            options.append(f"-c statement_timeout={int(statement_timeout_ms)}")
        if idle_in_transaction_timeout_ms:
            options.append(
                f"-c idle_in_transaction_session_timeout={int(idle_in_transaction_timeout_ms)}"
            )
        kwargs: dict[str, Any] = {
            "row_factory": dict_row,
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": name,
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
            open=True,
        )
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
            embedded=embedded,
        )

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[Connection]:
        """Borrow a connection for one transaction: committed when the block ends normally,
        rolled back when it raises. ``timeout`` overrides the pool's wait (seconds).

        Raises ``psycopg_pool.PoolTimeout`` when no connection frees up in time and
        ``psycopg_pool.TooManyRequests`` when too many callers are already waiting.
        """
        with self.pool.connection(timeout=timeout) as conn:
            yield conn

    def ping(self, timeout: float = 2.0) -> bool:
        """True when a connection can be borrowed and answers ``SELECT 1`` within ``timeout``."""
        try:
            with self.connection(timeout=timeout) as conn:
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

    Raises ``psycopg.OperationalError`` when the server cannot be reached and
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
