"""The serving lifecycle of one process, and the middleware that drains it.

:class:`Lifecycle` is a small state machine — ``starting`` → ``serving`` → ``draining``
(→ ``stopped``) — separate from health: a draining instance may be perfectly healthy, it just
must not get new work. ``updog serve`` calls :meth:`Lifecycle.begin_drain` on SIGTERM/SIGINT:

* ``/readyz`` answers 503 ``draining`` at once and from then on (balancers stop sending);
* :class:`DrainMiddleware` answers every *new* request (probes and ``/metrics`` excepted)
  with 503 ``SHUTTING_DOWN`` problem+json, ``Retry-After`` and ``Connection: close`` (the
  client reconnects — to another instance);
* requests already in flight run to completion (their responses carry ``Connection: close``,
  so keep-alive clients do not reuse a connection to a stopping server);
* :meth:`Lifecycle.wait_idle` lets the server wait until nothing is in flight (bounded by
  the grace period) before it closes its listener.
"""

from __future__ import annotations

import threading
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.api.problems import send_problem

__all__ = ["EXEMPT_PATHS", "DrainMiddleware", "Lifecycle"]

#: Paths answered normally while draining (orchestrators must see why, and scrape metrics).
EXEMPT_PATHS: frozenset[str] = frozenset({"/livez", "/readyz", "/startupz", "/metrics"})


class Lifecycle:
    """``starting`` → ``serving`` → ``draining`` → ``stopped``, plus the in-flight count."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._in_flight = 0
        self._phase = "starting"
        self.drain_started: float | None = None

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def draining(self) -> bool:
        return self._phase in ("draining", "stopped")

    @property
    def started(self) -> bool:
        return self._phase != "starting"

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def mark_serving(self) -> None:
        """Start-up is complete (``/startupz`` passes from now on)."""
        with self._cond:
            if self._phase == "starting":
                self._phase = "serving"

    def begin_drain(self) -> None:
        """Stop taking new work (idempotent)."""
        with self._cond:
            if not self.draining:
                self._phase = "draining"
                self.drain_started = time.monotonic()
            self._cond.notify_all()

    def mark_stopped(self) -> None:
        with self._cond:
            self._phase = "stopped"
            self._cond.notify_all()

    def enter(self) -> None:
        with self._cond:
            self._in_flight += 1

    def leave(self) -> None:
        with self._cond:
            self._in_flight -= 1
            if self._in_flight <= 0:
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no request is in flight (True) or ``timeout`` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._in_flight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


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
