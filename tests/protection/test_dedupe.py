"""Single-flight over real HTTP: identical concurrent reads share one execution, in a
process and across two app instances through the machine's Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from api_support import Account
from protection_support import counter

from updog.protection.dedupe import SingleFlightMiddleware

pytestmark = [pytest.mark.db, pytest.mark.redis]


async def _gets(urls: list[str], token: str, path: str, n: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=50)) as c:
        return list(
            await asyncio.gather(
                *(c.get(urls[i % len(urls)] + path, headers=headers) for i in range(n))
            )
        )


def test_identical_concurrent_gets_share_one_execution(
    serve_app: Any, account: Account, other_account: Account
) -> None:
    server = serve_app()
    name = uuid.uuid4().hex
    path = f"/api/v1/test/counted?name={name}&seconds=1.5"
    responses = asyncio.run(_gets([server.url], account.token, path, 10))
    assert [r.status_code for r in responses] == [200] * 10
    assert counter("counted:" + name).value == 1
    assert len({r.content for r in responses}) == 1
    assert len({r.headers["x-request-id"] for r in responses}) == 10  # each its own id
    # another credential never shares the first one's execution
    mixed = asyncio.run(_gets([server.url], other_account.token, path, 3))
    assert {r.status_code for r in mixed} == {200}
    assert counter("counted:" + name).value == 2


def test_single_flight_across_instances_through_redis(
    serve_app: Any, account: Account, redis_url: str, prefix: str
) -> None:
    one = serve_app(redis_url=redis_url, redis_key_prefix=prefix)
    two = serve_app(redis_url=redis_url, redis_key_prefix=prefix)
    name = uuid.uuid4().hex
    path = f"/api/v1/test/counted?name={name}&seconds=1.5"
    responses = asyncio.run(_gets([one.url, two.url], account.token, path, 8))
    assert [r.status_code for r in responses] == [200] * 8
    assert counter("counted:" + name).value == 1
    assert len({r.content for r in responses}) == 1
    with one.client() as c1, two.client() as c2:
        text = c1.get("/metrics").text + c2.get("/metrics").text
    assert 'updog_dedupe_requests_total{role="remote"}' in text


def test_simulation_posts_with_a_seed_are_shared_without_seed_not() -> None:
    """The middleware alone around the smallest app (Starlette style)."""
    calls = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = (await receive())["body"]
        calls.append(body)
        n = len(calls)
        await asyncio.sleep(0.3)
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"sim:%d" % n})

    middleware = SingleFlightMiddleware(app)

    async def post(body: bytes) -> bytes:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/api/v1/funds/f1/simulations",
            "query_string": b"",
            "headers": [(b"authorization", b"Bearer t")],
        }
        sent = [
            {"type": "http.request", "body": body[:5], "more_body": True},
            {"type": "http.request", "body": body[5:], "more_body": False},
        ]
        out = b""

        async def receive() -> Any:
            return sent.pop(0) if sent else {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            nonlocal out
            out += message.get("body", b"")

        await middleware(scope, receive, send)
        return out

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        seeded = await asyncio.gather(*(post(b'{"runs": 100, "seed": 7}') for _ in range(5)))
        unseeded = await asyncio.gather(*(post(b'{"runs": 100}') for _ in range(2)))
        return list(seeded), list(unseeded)

    seeded, unseeded = asyncio.run(scenario())
    assert set(seeded) == {b"sim:1"}
    assert sorted(unseeded) == [b"sim:2", b"sim:3"]
    assert calls[0] == b'{"runs": 100, "seed": 7}'  # the whole body reached the app
