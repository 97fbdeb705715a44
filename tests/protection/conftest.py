"""Fixtures of the protection tests: the real app under uvicorn (loopback, free port) over
the shared test database and the machine's Redis, with per-test settings and test-only
routes (a loop blocker, a slow write, a counted read, a body echo)."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "api"))

from api_support import Account, LiveServer, LogTap, make_account, running
from protection_support import add_test_routes

from updog.api.app import create_app
from updog.observability.logging import configure_logging
from updog.settings import Settings

#: Settings that never throttle (the suites' default) but are explicit about it.
UNLIMITED = {"rate_limit_api": "1000000/60", "rate_limit_simulation": "1000000/60"}


@pytest.fixture(scope="module")
def serve_app(
    db: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LiveServer]]:
    """``serve_app(**settings)`` → a running server (stopped at the end of the module)."""
    stack = ExitStack()

    def start(**overrides: Any) -> LiveServer:
        settings = Settings(data_dir=tmp_path_factory.mktemp("updog-data"), **overrides)
        app = create_app(settings, db, configure_logs=False)
        add_test_routes(app)
        url = stack.enter_context(running(app))
        server = LiveServer(url, settings, db, logs)
        server.app = app  # type: ignore[attr-defined]
        return server

    logs = LogTap()
    configure_logging("INFO", stream=logs)
    try:
        with stack:
            yield start
    finally:
        configure_logging("INFO")


@pytest.fixture
def prefix() -> str:
    """A Redis key prefix of its own, so tests never share windows."""
    return f"updog-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def account(db: Any) -> Account:
    return make_account(db, "Protect Ventures", "analyst")


@pytest.fixture(scope="module")
def other_account(db: Any) -> Account:
    return make_account(db, "Protect Ventures", "analyst")
