"""Single-flight: identical concurrent requests share one execution.

SPEC §6 practice 5 (dedupe). Eligible requests:

* ``GET`` under ``/api/`` (not server-sent events: ``…/events`` or ``Accept:
  text/event-stream``);
* ``POST /api/v*/funds/{id}/simulations`` whose JSON body names a ``seed`` (same fund
  version — path and ``?version`` —, runs and seed give the same result; without a seed
  every request asks for a fresh random one, so they are not identical).

"Identical" = same method, path, query, credential (a hash of the bearer token or session
cookie: two callers never share), ``Accept``/``If-None-Match``/``If-Match`` and body. The
first such request (the leader) runs; the others wait for its response and get a copy of
status, headers and body (their own request id, rate-limit and security headers are added
by the layers outside). Only a 2xx/304 answer without ``Set-Cookie`` and at most
:data:`MAX_SHARED_BODY` bytes is shared; otherwise, or when the leader fails or takes longer
than ``wait`` seconds, each follower runs itself — dedupe never turns one request's failure
into another's.

Across processes (Redis configured): the leader of a process also takes
``SET <prefix>:sf:<hash> <token> NX PX`` (an atomic lock naming its run); a process that
finds the lock taken polls for ``<prefix>:sfr:<token>``, which the leader writes (for a
few seconds) when done. Followers only ever read the result of the run that was in flight
when they arrived, so nothing stale is served. Every Redis call runs under the registry's
``redis`` circuit breaker (:mod:`updog.resilience.redis`); Redis errors, and an open breaker,
fall back to in-process single-flight. Counted in ``updog_dedupe_requests_total{role}``.

Why our own code: single-flight is a few lines around an ``asyncio.Future``; the packages
that do it (``aiocache``'s ``cached_stampede``, ``async-lru``) cache *function results* for
a TTL — we must never serve a response computed before the request arrived.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.protection.clients import header
from updog.resilience.breaker import CircuitBreaker
from updog.resilience.redis import redis_breaker
from updog.resilience.wiring import breakers_of
from updog.settings import Settings

#: Largest response shared with followers, bytes.
MAX_SHARED_BODY = 4 * 2**20
#: Seconds a cross-process lock lives at most (a crashed leader frees it by then).
LOCK_TTL = 60.0
#: Seconds a cross-process result stays readable for the followers of its run.
RESULT_TTL = 10.0
POLL = 0.02
_SIMULATION = re.compile(r"^/api/v\d+/funds/[^/]+/simulations/?$")
_VARY = (b"accept", b"if-none-match", b"if-match", b"content-type")
_NOT_SHARED = frozenset({b"x-request-id", b"date", b"server"})

Response = tuple[int, list[tuple[bytes, bytes]], bytes]


def _has_seed(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # the route's own parser reports hostile bodies
        return False
    return isinstance(data, dict) and isinstance(data.get("seed"), int)


class SingleFlightMiddleware:
    """Share one execution among identical concurrent requests (see module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        redis: Any = None,
        prefix: str = "updog",
        wait: float = 60.0,
        registry: CollectorRegistry | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        if wait <= 0:
            raise ValueError("wait must be > 0")
        self.app = app
        self.redis = redis
        self.breaker = breaker
        self.prefix = prefix
        self.wait = wait
        self._flights: dict[str, asyncio.Future[Response | None]] = {}
        self.roles = (
            Counter(
                "updog_dedupe_requests_total",
                "Eligible requests by single-flight role (leader, follower, remote, alone).",
                ("role",),
                registry=registry,
            )
            if registry is not None
            else None
        )

    @classmethod
    def options(
        cls, settings: Settings, database: Any, registry: CollectorRegistry
    ) -> dict[str, Any]:
        """Keyword arguments for ``Middleware(SingleFlightMiddleware, **options)``."""
        redis = breaker = None
        if settings.redis_url:
            from updog.protection.stores import redis_client

            redis = redis_client(settings.redis_url, settings.redis_timeout)
            breaker = redis_breaker(
                breakers_of(database),
                settings.redis_url,
                timeout=settings.redis_timeout,
                wait=settings.redis_breaker_wait_seconds,
            )
        return {
            "redis": redis,
            "prefix": settings.redis_key_prefix,
            "registry": registry,
            "breaker": breaker,
        }

    async def _redis(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``self.redis.<method>(*args, **kwargs)`` under the ``redis`` breaker (when set)."""
        call = getattr(self.redis, method)
        if self.breaker is None:
            return await call(*args, **kwargs)
        return await self.breaker.acall(call, *args, **kwargs)

    def _count(self, role: str) -> None:
        if self.roles is not None:
            self.roles.labels(role).inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        body = b""
        if method == "GET":
            accept = header(scope, b"accept") or ""
            if not path.startswith("/api/") or path.endswith("/events") or "event-stream" in accept:
                await self.app(scope, receive, send)
                return
        elif method == "POST" and _SIMULATION.match(path):
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            receive = _replaying(body, receive)
            if not _has_seed(body):
                await self.app(scope, receive, send)
                return
        else:
            await self.app(scope, receive, send)
            return

        key = self._key(scope, body)
        flight = self._flights.get(key)
        if flight is not None:
            self._count("follower")
            try:
                shared = await asyncio.wait_for(asyncio.shield(flight), self.wait)
            except TimeoutError:
                shared = None
            if shared is not None:
                await _send(send, shared)
                return
            self._count("alone")
            await self.app(scope, receive, send)
            return

        flight = asyncio.get_running_loop().create_future()
        self._flights[key] = flight
        result: Response | None = None
        try:
            remote, token = await self._remote_lead(key)
            if remote is not None:
                self._count("remote")
                result = remote
                await _send(send, remote)
                return
            self._count("leader")
            try:
                result = await self._run(scope, receive, send)
            finally:
                if token is not None:  # even on failure: followers elsewhere stop waiting
                    await asyncio.shield(self._publish(key, token, result))
        finally:
            self._flights.pop(key, None)
            if not flight.done():
                flight.set_result(result)

    def _key(self, scope: Scope, body: bytes) -> str:
        h = hashlib.sha256()
        h.update(scope["method"].encode() + b"\0" + scope["path"].encode() + b"\0")
        h.update(bytes(scope.get("query_string", b"")) + b"\0")
        h.update((header(scope, b"authorization") or "").encode("latin-1") + b"\0")
        h.update((header(scope, b"cookie") or "").encode("latin-1") + b"\0")
        for name in _VARY:
            h.update((header(scope, name) or "").encode("latin-1") + b"\0")
        h.update(body)
        return h.hexdigest()

    async def _run(self, scope: Scope, receive: Receive, send: Send) -> Response | None:
        """Run the leader, pass its response on, and return it when it may be shared."""
        status = 0
        headers: list[tuple[bytes, bytes]] = []
        parts: list[bytes] = []
        size = 0
        shareable = True

        async def capture(message: Message) -> None:
            nonlocal status, headers, size, shareable
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", ()))
                if not (200 <= status < 300 or status == 304) or any(
                    k.lower() == b"set-cookie" for k, _ in headers
                ):
                    shareable = False
            elif message["type"] == "http.response.body" and shareable:
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > MAX_SHARED_BODY:
                    shareable = False
                    parts.clear()
                else:
                    parts.append(chunk)
            await send(message)

        await self.app(scope, receive, capture)
        if not shareable or status == 0:
            return None
        kept = [(k, v) for k, v in headers if k.lower() not in _NOT_SHARED]
        return status, kept, b"".join(parts)

    # -- across processes -------------------------------------------------------------------

    async def _remote_lead(self, key: str) -> tuple[Response | None, str | None]:
        """(a response of another process's run, None) or (None, our lock token or None)."""
        if self.redis is None:
            return None, None
        token = secrets.token_hex(8)
        lock = f"{self.prefix}:sf:{key}"
        try:
            other = await self._redis(
                "set", lock, token, nx=True, px=int(LOCK_TTL * 1000), get=True
            )
        except Exception:
            return None, None  # Redis down: in-process single-flight only
        if other is None:
            return None, token
        other_token = other.decode() if isinstance(other, bytes) else str(other)
        deadline = asyncio.get_running_loop().time() + self.wait
        try:
            while asyncio.get_running_loop().time() < deadline:
                raw = await self._redis("get", f"{self.prefix}:sfr:{other_token}")
                if raw is not None:
                    data = json.loads(raw)
                    if data is None:
                        return None, None
                    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in data["h"]]
                    return (data["s"], headers, base64.b64decode(data["b"])), None
                if (
                    await self._redis("get", lock) is None
                    and await self._redis("get", f"{self.prefix}:sfr:{other_token}") is None
                ):
                    return None, None  # that leader vanished without a result: run alone
                await asyncio.sleep(POLL)
        except Exception:
            return None, None
        return None, None

    async def _publish(self, key: str, token: str, result: Response | None) -> None:
        data = None
        if result is not None:
            status, headers, body = result
            data = {
                "s": status,
                "h": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
                "b": base64.b64encode(body).decode(),
            }

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(f"{self.prefix}:sfr:{token}", json.dumps(data), px=int(RESULT_TTL * 1000))
                pipe.delete(f"{self.prefix}:sf:{key}")
                await pipe.execute()

        try:
            if self.breaker is None:
                await write()
            else:
                await self.breaker.acall(write)
        except Exception:
            return


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then defers to the real one."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send(send: Send, response: Response) -> None:
    status, headers, body = response
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})
