"""Helpers of the API tests (imported as ``api_support``; fixtures are in conftest.py).

:func:`running` serves an app with uvicorn in a thread of the test process
(``Server.run`` on a pre-bound loopback socket, so there is no port race);
:func:`serve` adds JSON logging into a :class:`LogTap`; :func:`make_account` creates an
organisation, user and token through the store's repository functions;
:func:`assert_problem` checks an RFC 9457 problem response.
"""

from __future__ import annotations

import io
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from updog.api.app import create_app
from updog.observability.logging import configure_logging
from updog.settings import Settings
from updog.store import repositories as repo


class LogTap(io.TextIOBase):
    """A thread-safe text sink that keeps every line written to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer: list[str] = []

    def write(self, s: str) -> int:
        with self._lock:
            self._buffer.append(s)
        return len(s)

    def lines(self) -> list[str]:
        with self._lock:
            return "".join(self._buffer).splitlines()


@dataclass
class LiveServer:
    """A running app: ``url`` (``http://127.0.0.1:PORT``), its settings, database, logs."""

    url: str
    settings: Settings
    database: Any
    logs: LogTap

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kwargs)


@dataclass
class Account:
    """A user with a bearer token."""

    org_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    role: str
    token: str
    password: str


def make_account(database: Any, org: str, role: str = "analyst") -> Account:
    """Create (or reuse) organisation ``org``, a user with ``role`` and a token for them."""
    email = f"{role}-{uuid.uuid4().hex[:8]}@{org.lower().replace(' ', '-')}.example"
    password = "correct horse battery staple"
    with database.connection() as conn:
        organisation = repo.get_or_create_organisation(conn, org)
        user = repo.create_user(conn, organisation.id, email, password, role)  # type: ignore[arg-type]
        token, _ = repo.create_token(conn, user.id, "tests")
    return Account(organisation.id, user.id, email, role, token, password)


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free loopback port; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def serve(settings: Settings, database: Any, logs: LogTap) -> Iterator[LiveServer]:
    configure_logging("INFO", stream=logs)
    app = create_app(settings, database, configure_logs=False)
    try:
        with running(app) as url:
            yield LiveServer(url, settings, database, logs)
    finally:
        configure_logging("INFO")


VALID_SPEC: dict[str, Any] = {
    "name": "Seed Fund I",
    "fund_size": 50_000_000,
    "vintage_year": 2025,
    "model_inputs_as_of": "2025-01-01",
}

PROBLEM = "application/problem+json"


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert ``r`` is a problem+json with ``status`` and ``code``; return its body."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM), r.headers
    body: dict[str, Any] = r.json()
    for member in ("type", "title", "status", "detail", "instance", "code", "request_id", "errors"):
        assert member in body, member
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["request_id"] == r.headers["x-request-id"]
    assert "Traceback" not in r.text
    return body
