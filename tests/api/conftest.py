"""Fixtures for the API tests: the real app under uvicorn on a free loopback port over the
shared ``db`` fixture (tests/conftest.py), and accounts of two organisations with tokens.
Helpers live in ``api_support``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Account, LiveServer, LogTap, make_account, serve

from updog.settings import Settings


@pytest.fixture(scope="module")
def live(db: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app on a free loopback port, over the shared test database."""
    data_dir: Path = tmp_path_factory.mktemp("updog-data")
    settings = Settings(
        data_dir=data_dir,
        sync_runs_limit=20_000,
        max_body_bytes=1_000_000,
        auth_cache_seconds=0,  # a revoked token is refused at once in these tests
    )
    yield from serve(settings, db, LogTap())


@pytest.fixture(scope="module")
def analyst(live: LiveServer) -> Account:
    return make_account(live.database, "Acme Ventures", "analyst")


@pytest.fixture(scope="module")
def viewer(live: LiveServer) -> Account:
    return make_account(live.database, "Acme Ventures", "viewer")


@pytest.fixture(scope="module")
def outsider(live: LiveServer) -> Account:
    return make_account(live.database, "Other Capital", "admin")


@pytest.fixture
def client(live: LiveServer, analyst: Account) -> Iterator[httpx.Client]:
    with live.client(analyst.token) as c:
        yield c
