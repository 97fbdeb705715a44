"""Test-only routes added to a real app (never part of the product)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response


class Counter:
    """A thread-safe counter shared by test routes and the test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def bump(self) -> int:
        with self._lock:
            self.value += 1
            return self.value


#: Executions of the counted routes, by name (shared across servers in this process).
COUNTERS: dict[str, Counter] = {}


def counter(name: str) -> Counter:
    return COUNTERS.setdefault(name, Counter())


#: Gates of ``/api/v1/test/hold?name=N``: the request stays in flight until the test sets
#: ``hold(N)`` (or 60 s pass).
HOLDS: dict[str, threading.Event] = {}


def hold(name: str) -> threading.Event:
    return HOLDS.setdefault(name, threading.Event())


@contextmanager
def requests_held(
    url: str, token: str, count: int, in_flight: Callable[[], int]
) -> Iterator[list[int]]:
    """``count`` requests to ``url`` kept in flight (``/api/v1/test/hold``) until the block
    ends, once ``in_flight()`` (the server's count) shows them; yields the list their
    statuses are appended to when they are released."""
    name = uuid.uuid4().hex
    statuses: list[int] = []

    def one() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, headers=headers, timeout=90) as c:
            statuses.append(c.get("/api/v1/test/hold", params={"name": name}).status_code)

    threads = [threading.Thread(target=one, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 15
        while in_flight() < count:
            assert time.monotonic() < deadline, "the held requests did not start"
            time.sleep(0.02)
        yield statuses
    finally:
        hold(name).set()
        for t in threads:
            t.join(30)


def add_test_routes(app: Any) -> None:
    """Routes under ``/api/v1/test/`` used by the protection tests."""

    async def block(request: Request) -> Response:
        time.sleep(float(request.query_params.get("seconds", "1.5")))  # blocks the loop
        return JSONResponse({"blocked": True})

    async def slow(request: Request) -> Response:
        body = await request.body()
        await asyncio.sleep(float(request.query_params.get("seconds", "1.0")))
        n = counter("slow:" + request.query_params.get("name", "")).bump()
        return JSONResponse({"n": n, "len": len(body)}, status_code=201)

    async def counted(request: Request) -> Response:
        n = counter("counted:" + request.query_params.get("name", "")).bump()
        await asyncio.sleep(float(request.query_params.get("seconds", "1.0")))
        return JSONResponse({"n": n})

    async def echo(request: Request) -> Response:
        body = await request.body()
        n = counter("echo:" + request.query_params.get("name", "")).bump()
        digest = hashlib.sha256(body).hexdigest()
        return JSONResponse({"len": len(body), "sha256": digest, "n": n}, status_code=201)

    async def held(request: Request) -> Response:
        gate = hold(request.query_params.get("name", ""))
        deadline = time.monotonic() + 60
        while not gate.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)  # never blocks the loop
        return JSONResponse({"released": gate.is_set()})

    async def flaky(request: Request) -> Response:
        n = counter("flaky:" + request.query_params.get("name", "")).bump()
        if n == 1:
            raise RuntimeError("first attempt fails")
        return JSONResponse({"n": n}, status_code=201)

    async def page(request: Request) -> Response:
        nonce = request.state.csp_nonce
        return HTMLResponse(f"<!doctype html><script nonce='{nonce}'>1</script>")

    async def crash(request: Request) -> Response:
        raise RuntimeError("boom")

    app.add_route("/api/v1/test/block", block, methods=["GET"])
    app.add_route("/api/v1/test/slow", slow, methods=["POST"])
    app.add_route("/api/v1/test/counted", counted, methods=["GET"])
    app.add_route("/api/v1/test/echo", echo, methods=["POST"])
    app.add_route("/api/v1/test/hold", held, methods=["GET"])
    app.add_route("/api/v1/test/flaky", flaky, methods=["POST"])
    app.add_route("/test/page", page, methods=["GET"])
    app.add_route("/api/v1/test/crash", crash, methods=["GET"])
