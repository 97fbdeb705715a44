"""Probes and metrics: ``/livez``, ``/readyz``, ``/metrics`` (outside ``/api/v1``).

- ``GET /livez`` — the process answers; touches nothing else (a failing database must not
  get healthy instances restarted).
- ``GET /readyz`` — 200 when this instance can serve: the database answers within
  :data:`READY_TIMEOUT` seconds and its schema is at the newest migration; else 503 with
  ``Retry-After``. The body details each check:
  ``{"status": "ok"|"fail", "checks": {"database": {"status", "detail", "duration_ms"},
  "migrations": {...}}}``.
- ``GET /metrics`` — Prometheus text exposition of :class:`HttpMetrics`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from updog import __version__
from updog.api.deps import get_database
from updog.observability.metrics import HttpMetrics

router = APIRouter(tags=["probes"])

#: Seconds the readiness probe waits for the database (pool wait + query).
READY_TIMEOUT = 2.0


@router.get("/livez", summary="Liveness: the process answers")
async def livez() -> dict[str, str]:
    """Always ``{"status": "ok"}`` while the event loop runs."""
    return {"status": "ok", "version": __version__}


def _check_database(database: Any) -> tuple[bool, bool]:
    """(reachable, schema current), probed on one pooled connection."""
    from updog.store.migrate import schema_is_current

    with database.connection(timeout=READY_TIMEOUT) as conn:
        conn.execute("SELECT 1")
        return True, schema_is_current(conn)


@router.get(
    "/readyz",
    summary="Readiness: database reachable and migrations current",
    responses={503: {"description": "Not ready; see the checks."}},
)
async def readyz(request: Request) -> Response:
    """200 ``{"status": "ok", ...}`` or 503 ``{"status": "fail", ...}`` with per-check detail."""
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
    body = {"status": "ok" if ok else "fail", "checks": {"database": db, "migrations": mig}}
    headers = {"Cache-Control": "no-store"}
    if not ok:
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=200 if ok else 503, headers=headers)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Request counts and latency by route template and status; requests in flight."""
    registry: HttpMetrics = request.app.state.metrics
    return Response(registry.render(), media_type=registry.content_type)
