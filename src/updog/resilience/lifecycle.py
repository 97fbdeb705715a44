"""The serving lifecycle of one process.

:class:`Lifecycle` is a small state machine — ``starting`` → ``serving`` → ``draining``
(→ ``stopped``) — separate from health: a draining instance may be perfectly healthy, it just
must not get new work. ``updog serve`` calls :meth:`Lifecycle.begin_drain` on SIGTERM/SIGINT:

* ``/readyz`` answers 503 ``draining`` at once and from then on (balancers stop sending);
* :class:`updog.protection.drain.DrainMiddleware` answers every *new* request (probes and
  ``/metrics`` excepted) with 503 ``SHUTTING_DOWN`` problem+json, ``Retry-After`` and
  ``Connection: close`` (the client reconnects — to another instance);
* requests already in flight run to completion (their responses carry ``Connection: close``,
  so keep-alive clients do not reuse a connection to a stopping server);
* :meth:`Lifecycle.wait_idle` lets the server wait until nothing is in flight (bounded by
  the grace period) before it closes its listener.
"""

from __future__ import annotations

import threading
import time

__all__ = ["Lifecycle"]


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
