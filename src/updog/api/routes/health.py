"""Probes and metrics: ``/livez``, ``/readyz``, ``/metrics`` (outside ``/api/v1``).

- ``GET /livez`` — the process answers; touches nothing else (a failing database must not
  get healthy instances restarted).
- ``GET /readyz`` — 200 when this instance can serve: it is not draining, the database
  answers within :data:`READY_TIMEOUT` seconds and its schema is at the newest migration;
  else 503 with ``Retry-After``. Degraded optional dependencies do not take the instance out
  of rotation: Redis not answering, a circuit breaker that is not CLOSED (the database
  itself is probed directly, past the ``pg`` breaker) or load shedding in progress show as
  ``warn`` with a 200. The body details each check:
  ``{"status": "ok"|"warn"|"fail", "checks": {"database": {"status", "detail",
  "duration_ms"}, "migrations": {...}, "breakers": {"status", "detail": {"pg": "closed"}},
  "redis": {...}, "load": {...}}}``. The result is reused for ``readyz_cache_seconds``
  (draining is never cached: it fails at once).
- ``GET /startupz`` — 503 until the readiness checks (draining aside) have passed once,
  then 200 for the life of the process.
- ``GET /metrics`` — Prometheus text exposition of :class:`HttpMetrics`.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from updog import __version__
from updog.http.deps import get_database, get_settings
from updog.http.problems import ProblemError
from updog.observability.metrics import HttpMetrics

router = APIRouter(tags=["probes"])

#: Seconds the readiness probe waits for the database (pool wait + query).
READY_TIMEOUT = 2.0


@router.get("/livez", summary="Liveness: the process answers")
async def livez() -> dict[str, str]:
    """Always ``{"status": "ok"}`` while the event loop runs."""
    return {"status": "ok", "version": __version__}


def _check_database(database: Any) -> tuple[bool, bool]:
    """(reachable, schema current), probed on one pooled connection (past the breaker: the
    probe must see the database, not the breaker's opinion of it)."""
    from updog.store.migrate import schema_is_current

    borrow = (
        database.connection(timeout=READY_TIMEOUT, guarded=False)
        if hasattr(database, "breakers")
        else database.connection(timeout=READY_TIMEOUT)
    )
    with borrow as conn:
        conn.execute("SELECT 1")
        return True, schema_is_current(conn)


def _breakers_check(request: Request) -> dict[str, Any] | None:
    registry = getattr(request.app.state, "breakers", None)
    if registry is None:
        return None
    states = {b.name: b.state.value for b in registry.all()}
    degraded = {name: state for name, state in states.items() if state != "closed"}
    check: dict[str, Any] = {"status": "warn" if degraded else "ok", "detail": states}
    if degraded:
        check["remaining_wait_s"] = {
            b.name: round(b.remaining_wait(), 1) for b in registry.all() if b.name in degraded
        }
    return check


async def _redis_check(request: Request) -> dict[str, Any] | None:
    settings = request.app.state.settings
    url = getattr(settings, "redis_url", None)
    if not url:
        return None
    timeout = float(getattr(settings, "redis_timeout", 0.5))
    client = getattr(request.app.state, "readyz_redis", None)
    if client is None:
        from redis.asyncio import Redis

        client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        request.app.state.readyz_redis = client
    try:
        await asyncio.wait_for(client.ping(), timeout + 0.2)
        return {"status": "ok"}
    except Exception as exc:  # optional dependency: degraded, not unready
        return {
            "status": "warn",
            "detail": f"unreachable ({type(exc).__name__}); limits and caches fall back",
        }


def _load_check(request: Request) -> dict[str, Any] | None:
    monitor = getattr(request.app.state, "pressure", None)
    if monitor is None or not hasattr(monitor, "snapshot"):
        return None
    snapshot = monitor.snapshot()
    return {"status": "warn" if snapshot.get("overloaded") else "ok", "detail": snapshot}


async def _readiness(request: Request) -> tuple[dict[str, Any], bool]:
    """(body, ready) of the readiness checks, reused for ``readyz_cache_seconds``."""
    state = request.app.state
    now = time.monotonic()
    cached = getattr(state, "readiness_cache", None)
    if cached is not None and cached[0] > now:
        return cached[1], cached[2]
    body, ok = await _probe(request)
    ttl = float(getattr(state.settings, "readyz_cache_seconds", 0.0))
    state.readiness_cache = (now + ttl, body, ok)
    return body, ok


@router.get(
    "/readyz",
    summary="Readiness: not draining, database reachable and migrations current",
    responses={503: {"description": "Not ready; see the checks."}},
)
async def readyz(request: Request) -> Response:
    """200 ``{"status": "ok"|"warn", ...}`` or 503 ``{"status": "fail", ...}`` with
    per-check detail."""
    headers = {"Cache-Control": "no-store"}
    lifecycle = getattr(request.app.state, "lifecycle", None)
    if lifecycle is not None and lifecycle.draining:
        body = {
            "status": "fail",
            "checks": {"draining": {"status": "fail", "detail": "shutting down"}},
        }
        return JSONResponse(body, status_code=503, headers={**headers, "Retry-After": "5"})
    body, ok = await _readiness(request)
    if ok and lifecycle is not None:
        lifecycle.mark_serving()
    if not ok:
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=200 if ok else 503, headers=headers)


@router.get(
    "/startupz",
    summary="Start-up: the readiness checks have passed once",
    responses={503: {"description": "Still starting; see the checks."}},
)
async def startupz(request: Request) -> Response:
    """503 until this instance has once been ready; then 200 for the rest of its life."""
    headers = {"Cache-Control": "no-store"}
    lifecycle = getattr(request.app.state, "lifecycle", None)
    if lifecycle is not None and lifecycle.started:
        return JSONResponse({"status": "ok", "phase": lifecycle.phase}, headers=headers)
    body, ok = await _readiness(request)
    if not ok:
        return JSONResponse(
            {**body, "phase": "starting"},
            status_code=503,
            headers={**headers, "Retry-After": "1"},
        )
    if lifecycle is not None:
        lifecycle.mark_serving()
    return JSONResponse(
        {"status": "ok", "phase": lifecycle.phase if lifecycle else "serving"}, headers=headers
    )


async def _probe(request: Request) -> tuple[dict[str, Any], bool]:
    start = time.perf_counter()
    db: dict[str, Any] = {"status": "fail"}
    mig: dict[str, Any] = {"status": "fail"}
    try:
        reachable, current = await asyncio.wait_for(
            run_in_threadpool(_check_database, get_database(request)),
            timeout=READY_TIMEOUT + 0.5,
        )
        db = {"status": "ok" if reachable else "fail"}
        mig = {
            "status": "ok" if current else "fail",
            "detail": None if current else "schema is not at the newest migration",
        }
    except TimeoutError:
        db["detail"] = f"no answer within {READY_TIMEOUT} s"
        mig["detail"] = "unknown (database unreachable)"
    except Exception as exc:  # readiness reports, it does not raise
        db["detail"] = f"unreachable: {type(exc).__name__}"
        mig["detail"] = "unknown (database unreachable)"
    db["duration_ms"] = round((time.perf_counter() - start) * 1000, 1)
    ok = db["status"] == "ok" and mig["status"] == "ok"
    checks: dict[str, Any] = {"database": db, "migrations": mig}
    for name, check in (
        ("breakers", _breakers_check(request)),
        ("redis", await _redis_check(request)),
        ("load", _load_check(request)),
    ):
        if check is not None:
            checks[name] = check
    warn = any(c.get("status") == "warn" for c in checks.values())
    status = "fail" if not ok else ("warn" if warn else "ok")
    return {"status": status, "checks": checks}, ok


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Request counts and latency by route template and status; requests in flight.

    With ``UPDOG_METRICS_TOKEN`` set, only ``Authorization: Bearer <that token>`` is
    answered (401 otherwise; Prometheus sends it with ``authorization: {credentials: …}``).
    Unset, ``/metrics`` is open: the default bind is loopback, and the figures hold no
    personal or fund data — but an instance reachable from elsewhere should set the token
    or keep ``/metrics`` off the public route at its proxy."""
    expected = get_settings(request).metrics_token
    if expected:
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            sent.strip().encode(), expected.encode()
        ):
            raise ProblemError(
                401,
                "UNAUTHENTICATED",
                "/metrics needs the metrics token (Authorization: Bearer …).",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    registry: HttpMetrics = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)
