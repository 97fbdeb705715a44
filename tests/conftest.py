"""Shared fixtures: PostgreSQL and Redis for the tests that need them.

PostgreSQL: with ``DATABASE_URL`` set, the tests use that server and create a fresh, uniquely
named database per session (dropped at the end); otherwise they start an embedded server in a
temporary folder. Redis: ``REDIS_URL``, else a ``redis-server`` started on a free port when it
is on the PATH. When neither is available the tests skip *with a reason*; with
``UPDOG_REQUIRE_SERVICES=1`` (CI) that skip is a failure instead.

Fixtures:
    postgres_server     session: the server (``admin_url``, ``create_database``, ``drop_database``)
    database_url        session: URL of this session's own database (not migrated)
    fresh_database_url  function: URL of a brand-new empty database, dropped afterwards
    migrated_database   session: a ``Database`` on ``database_url`` at the newest revision
    db                  module: ``migrated_database`` with every table emptied first
    redis_url           session: URL of a Redis server
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import conninfo, sql

from services_support import unavailable

# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    """A PostgreSQL server the tests may create databases on."""

    admin_url: str
    kind: str  # "external" or "embedded"
    handle: Any = None
    created: list[str] = field(default_factory=list)

    def url_for(self, name: str) -> str:
        """A libpq URL/conninfo for database ``name`` on this server."""
        return conninfo.make_conninfo(self.admin_url, dbname=name)

    def create_database(self, prefix: str = "updog_test") -> str:
        """Create an empty database with a unique name; return its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        """Drop the database ``url`` names (closing its remaining connections)."""
        name = conninfo.conninfo_to_dict(url)["dbname"]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self.created:
            self.created.remove(name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get("DATABASE_URL")
    if url:
        from updog.store.db import libpq_url

        url = libpq_url(url)
        try:
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.Error as exc:
            unavailable(f"DATABASE_URL is set but PostgreSQL does not answer: {exc}")
        server = PostgresServer(admin_url=url, kind="external")
        yield server
        for name in list(server.created):
            server.drop_database(server.url_for(name))
        return

    from updog.store import embedded

    folder = Path(tempfile.mkdtemp(prefix="updog-test-pg-"))
    try:
        handle = embedded.start(folder, database="postgres")
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        unavailable(f"no DATABASE_URL and the embedded PostgreSQL did not start: {exc}")
    try:
        yield PostgresServer(admin_url=handle.admin_url, kind="embedded", handle=handle)
    finally:
        handle.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database()
    yield url
    postgres_server.drop_database(url)


@pytest.fixture
def fresh_database_url(postgres_server: PostgresServer) -> Iterator[str]:
    url = postgres_server.create_database("updog_fresh")
    yield url
    postgres_server.drop_database(url)


@pytest.fixture(scope="session")
def migrated_database(database_url: str) -> Iterator[Any]:
    from updog.store import migrate
    from updog.store.db import Database

    migrate.upgrade(database_url)
    database = Database(database_url, min_size=0, max_size=8, timeout=10)
    yield database
    database.close()


def truncate_all(database: Any) -> None:
    """Empty every application table (keeps ``alembic_version``)."""
    with database.connection() as conn:
        tables = [
            r["tablename"]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            ).fetchall()
        ]
        if tables:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in tables)
                )
            )


@pytest.fixture(scope="module")
def db(migrated_database: Any) -> Any:
    """The migrated session database, emptied at the start of each test module."""
    truncate_all(migrated_database)
    return migrated_database


# --------------------------------------------------------------------------- Redis


def _redis_ping(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if not _redis_ping(parts.hostname or "127.0.0.1", parts.port or 6379):
            unavailable(f"REDIS_URL is set but Redis does not answer at {url}")
        yield url
        return
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("no REDIS_URL and no redis-server on the PATH")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _redis_ping("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                unavailable(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
