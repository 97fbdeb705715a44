"""One structured log line per HTTP request (replaces uvicorn's plain-text access log).

Fields: ``method``, ``path`` (no query string: it may carry personal data), ``route``
(template), ``status``, ``duration_ms``, ``client``; the request id comes from the
logging context (see :mod:`updog.observability.logging`).
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.observability.logging import get_logger
from updog.observability.route_metrics import route_template


class AccessLogMiddleware:
    """Log each finished HTTP request at INFO (5xx at ERROR)."""

    def __init__(self, app: ASGIApp, *, logger_name: str = "updog.access") -> None:
        self.app = app
        self.log = get_logger(logger_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            client = scope.get("client")
            fields = {
                "method": scope.get("method"),
                "path": scope.get("path"),
                "route": route_template(scope),
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                "client": client[0] if client else None,
            }
            if status >= 500:
                self.log.error("request", **fields)
            else:
                self.log.info("request", **fields)
