"""The shared service fixtures themselves (tests/conftest.py)."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest


@pytest.mark.redis
def test_redis_fixture_answers(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    with socket.create_connection((parts.hostname or "", parts.port or 6379), timeout=2) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(16).startswith(b"+PONG")


@pytest.mark.db
def test_db_fixture_is_migrated_and_empty(db: Any, database_url: str) -> None:
    with db.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM funds").fetchone()["n"] == 0
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0].startswith("updog_test_")
