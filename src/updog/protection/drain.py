"""Draining: while the process stops, new requests are refused and the others finish.

:class:`DrainMiddleware` follows the process's :class:`updog.resilience.lifecycle.Lifecycle`:
it counts requests in flight (so ``updog serve`` can wait until none is left) and, once the
lifecycle drains, answers every new request (probes and ``/metrics`` excepted) with 503
``SHUTTING_DOWN`` problem+json, ``Retry-After`` and ``Connection: close``; responses of
requests already in flight carry ``Connection: close`` too, so keep-alive clients do not
reuse a connection to a stopping server (SPEC §6 practice 4).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.http.problems import send_problem
from updog.resilience.lifecycle import Lifecycle

#: Paths answered normally while draining (orchestrators must see why, and scrape metrics).
EXEMPT_PATHS: frozenset[str] = frozenset({"/livez", "/readyz", "/startupz", "/metrics"})


class DrainMiddleware:
    """Counts requests in flight; while draining, refuses new ones (503 + Connection: close).

    ``retry_after``: seconds suggested to refused clients (another instance will take them).
    """

    def __init__(self, app: ASGIApp, *, lifecycle: Lifecycle, retry_after: int = 1) -> None:
        if retry_after < 1:
            raise ValueError("retry_after must be ≥ 1")
        self.app = app
        self.lifecycle = lifecycle
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lifecycle = self.lifecycle
        if scope.get("path") in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        if lifecycle.draining:
            await send_problem(
                scope,
                send,
                503,
                "SHUTTING_DOWN",
                "This instance is shutting down; retry (another instance will answer).",
                headers={"Retry-After": str(self.retry_after), "Connection": "close"},
            )
            return

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and lifecycle.draining:
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        lifecycle.enter()
        try:
            await self.app(scope, receive, send_closing)
        finally:
            lifecycle.leave()
