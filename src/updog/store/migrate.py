"""Schema migrations: Alembic, configured in code (no ``alembic.ini``).

The scripts live in the package (``updog/store/migrations``) so an installed wheel can migrate
its own database. SQLAlchemy is used only as Alembic's engine, over the same psycopg 3
driver the application uses (``postgresql+psycopg``).

Concurrency: :func:`upgrade` and :func:`downgrade` hold a session-level PostgreSQL advisory
lock (:data:`ADVISORY_LOCK_KEY`) while they run, so several processes starting at once
(``updog serve`` ×N, a worker, ``updog users create``) migrate one after another: the first
applies the revisions, the others find the schema current and do nothing.

Developers add a revision (numbered ids: ``0002``, ``0003`` …) with::

    python -c "from alembic import command; from updog.store.migrate import config; \
        command.revision(config(), 'what it does', rev_id='0002')"
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection as SAConnection
from sqlalchemy.pool import NullPool

from updog.store.db import libpq_url

__all__ = [
    "ADVISORY_LOCK_KEY",
    "current",
    "downgrade",
    "head",
    "is_current",
    "revisions",
    "schema_is_current",
    "upgrade",
]

#: Key of the advisory lock held while migrating ("updog" in ASCII, as a bigint).
ADVISORY_LOCK_KEY = int.from_bytes(b"updog", "big")

#: Folder of the Alembic environment (``env.py``, ``versions/``).
SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"


def config(connection: SAConnection | None = None) -> Config:
    """An Alembic ``Config`` for the package's scripts; ``connection`` is handed to ``env.py``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(config())


def head() -> str:
    """The newest revision id of the package's scripts."""
    rev = _script().get_current_head()
    if rev is None:  # pragma: no cover - the package always ships revisions
        raise RuntimeError("no migration revisions found")
    return rev


def revisions() -> list[str]:
    """All revision ids, oldest first."""
    return [s.revision for s in reversed(list(_script().walk_revisions()))]


@contextmanager
def _connect(url: str, *, lock: bool) -> Iterator[SAConnection]:
    dsn = libpq_url(url)

    def creator() -> Any:
        return psycopg.connect(dsn)

    engine = create_engine("postgresql+psycopg://", creator=creator, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if lock:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
                conn.commit()
            try:
                yield conn
            finally:
                if lock:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                    conn.commit()
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (default the newest) under the advisory lock.

    ``url`` is a libpq URL or conninfo (``postgresql+psycopg://`` accepted). Raises
    ``psycopg.OperationalError`` (via SQLAlchemy's ``OperationalError``) when unreachable.
    """
    with _connect(url, lock=True) as conn:
        command.upgrade(config(conn), revision)


def upgrade_when_reachable(
    url: str,
    stop: threading.Event,
    *,
    on_retry: Callable[[BaseException, float], None] | None = None,
    first_wait: float = 1.0,
    max_wait: float = 30.0,
) -> bool:
    """Apply the migrations as soon as the database answers: retry with exponential back-off
    (``first_wait`` doubling up to ``max_wait`` seconds) until it works (True) or ``stop`` is
    set (False). ``on_retry(error, wait)`` is told of each failed attempt. For ``updog serve``
    started while its database is down: the process serves probes meanwhile."""
    wait = first_wait
    while not stop.is_set():
        try:
            upgrade(url)
            return True
        except Exception as exc:  # unreachable, refused, in recovery: all worth a retry
            if on_retry is not None:
                on_retry(exc, wait)
            if stop.wait(wait):
                break
            wait = min(max_wait, wait * 2)
    return False


def downgrade(url: str, revision: str) -> None:
    """Revert migrations down to ``revision`` (``"-1"`` one step, ``"base"`` everything)."""
    with _connect(url, lock=True) as conn:
        command.downgrade(config(conn), revision)


def current(url: str) -> str | None:
    """The database's revision id, or None when it has never been migrated."""
    with _connect(url, lock=False) as conn:
        return MigrationContext.configure(conn).get_current_revision()


def is_current(url: str) -> bool:
    """True when the database is at the newest revision."""
    return current(url) == head()


def schema_is_current(conn: psycopg.Connection[Any]) -> bool:
    """Like :func:`is_current` on an open psycopg connection (for readiness probes)."""
    row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL AS present").fetchone()
    present = row["present"] if isinstance(row, dict) else row[0] if row else False
    if not present:
        return False
    versions = [
        r["version_num"] if isinstance(r, dict) else r[0]
        for r in conn.execute("SELECT version_num FROM alembic_version").fetchall()
    ]
    return versions == [head()]
