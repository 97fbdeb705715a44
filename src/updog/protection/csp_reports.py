"""``POST /csp-reports``: where browsers report Content-Security-Policy violations.

Accepts both formats browsers send: the legacy ``report-uri`` body
(``application/csp-report``: ``{"csp-report": {...}}``) and the Reporting API
(``application/reports+json``: ``[{"type": "csp-violation", "body": {...}}, ...]``).
Each report is reduced to a few bounded fields (no query strings: a blocked URL can carry
personal data), logged, counted and kept in a bounded in-memory ring (:data:`MAX_REPORTS`,
newest last) that ``GET /csp-reports`` shows to admins. Bodies above :data:`MAX_BODY` bytes
are refused; the endpoint answers 204 and never echoes input. It is rate-limited like any
anonymous request (tier ``api`` by client address).

Why our own code: a dozen lines; no library stores reports in a bounded, PII-scrubbed way.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from updog.http.auth import Admin
from updog.http.problems import ProblemError
from updog.observability.logging import get_logger
from updog.protection.headers import REPORT_PATH

#: Reports kept per process.
MAX_REPORTS = 1000
#: Largest accepted report body, bytes.
MAX_BODY = 64 * 1024
_FIELDS = (
    "document-uri",
    "blocked-uri",
    "violated-directive",
    "effective-directive",
    "disposition",
    "status-code",
)
_log = get_logger("updog.csp")

router = APIRouter(tags=["security"])


class ReportStore:
    """A thread-safe bounded ring of reduced CSP reports."""

    def __init__(self, size: int = MAX_REPORTS) -> None:
        self._lock = threading.Lock()
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self.received = 0

    def add(self, report: dict[str, Any]) -> None:
        with self._lock:
            self._items.append(report)
            self.received += 1

    def items(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)


def _strip_query(value: Any) -> Any:
    if isinstance(value, str):
        return value.split("?", 1)[0].split("#", 1)[0][:512]
    return value if isinstance(value, int | float | bool) or value is None else None


def reduce_report(body: Any) -> dict[str, Any] | None:
    """The bounded fields of one report, in the legacy names (``blocked-uri``, ...)."""
    if not isinstance(body, dict):
        return None
    camel = {f.replace("-", "_"): f for f in _FIELDS}
    camel.update(
        {
            "documentURL": "document-uri",
            "blockedURL": "blocked-uri",
            "effectiveDirective": "effective-directive",
            "statusCode": "status-code",
        }
    )
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = key if key in _FIELDS else camel.get(key)
        if name:
            out[name] = _strip_query(value)
    return out or None


def parse_reports(raw: bytes) -> list[dict[str, Any]]:
    """Reduced reports from either wire format; [] for anything else."""
    try:
        data = json.loads(raw)
    except ValueError:
        return []
    bodies: list[Any]
    if isinstance(data, dict) and "csp-report" in data:
        bodies = [data["csp-report"]]
    elif isinstance(data, list):
        bodies = [d.get("body") for d in data[:50] if isinstance(d, dict)]
    else:
        bodies = []
    return [r for r in (reduce_report(b) for b in bodies) if r]


def _store(request: Request) -> ReportStore:
    store = getattr(request.app.state, "csp_reports", None)
    if store is None:
        store = request.app.state.csp_reports = ReportStore()
    return store


@router.post(REPORT_PATH, status_code=204, include_in_schema=False)
async def receive_reports(request: Request) -> Response:
    """Store the reports of one POST; 204 whatever they contain."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise ProblemError(
                413, "BODY_TOO_LARGE", f"CSP reports are capped at {MAX_BODY} bytes."
            )
    store = _store(request)
    for report in parse_reports(raw):
        store.add(report)
        _log.warning("csp_violation", **{k.replace("-", "_"): v for k, v in report.items()})
    return Response(status_code=204)


@router.get(REPORT_PATH, include_in_schema=False)
async def list_reports(request: Request, _admin: object = Admin) -> Response:
    """The stored reports, newest last (admins only)."""
    store = _store(request)
    return JSONResponse({"received": store.received, "items": store.items()})
