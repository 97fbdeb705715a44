"""Count and time every HTTP request into :class:`~updog.observability.metrics.HttpMetrics`.

The ``route`` label is the matched route's template (Starlette puts the route object in
``scope["route"]`` while routing), so ``/api/v1/funds/7`` and ``/api/v1/funds/8`` share
``/api/v1/funds/{fund_id}``; unmatched paths share ``<unmatched>``. A request whose
handler raised before a response started is recorded as 500.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.observability.metrics import UNMATCHED_ROUTE, HttpMetrics


def route_template(scope: Scope) -> str:
    """The route template of a routed scope, or ``"<unmatched>"``.

    FastAPI routes leave themselves in ``scope["route"]`` (their ``path`` is the full
    template because our routers carry their full prefix); a ``Mount`` (static files)
    leaves only ``endpoint`` and its prefix in ``root_path``, labelled ``<prefix>/{path}``.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        return path
    if scope.get("endpoint") is not None and scope.get("root_path"):
        return f"{scope['root_path']}/{{path}}"
    return UNMATCHED_ROUTE


class MetricsMiddleware:
    """Request counter, latency histogram and in-flight gauge, by route template."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

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

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, recording_send)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.observe(
                scope.get("method", "GET"),
                route_template(scope),
                status,
                time.perf_counter() - start,
            )
