"""Load shedding: refuse new work with 503 while the process is overloaded.

SPEC §6 practice 1. A :class:`PressureMonitor` samples, on the serving event loop:

* **event-loop lag** — how late a ``sleep(interval)`` wakes up; the worst lag of the last
  ``hold`` seconds counts, so one long block (a CPU-bound call on the loop) keeps shedding
  on for a moment after it ends instead of flickering;
* **in-flight requests** — counted by the middleware itself;
* **database-pool waiters** — ``requests_waiting`` of the psycopg pool;
* **resident memory** of the process (``/proc/self/statm``, else ``psutil``).

While any is over its threshold (0 turns a signal off), new requests get 503
``OVERLOADED`` problem+json with ``Retry-After`` — except probes and ``/metrics``, which
must keep answering so orchestrators and dashboards see *why*. Shed requests are counted in
``updog_shed_requests_total{reason}``; the current pressure is exported as gauges
(``updog_pressure_*``) and :meth:`PressureMonitor.snapshot` gives it to ``/readyz``
(``app.state.pressure``).

Why our own code: Starlette and uvicorn only cap concurrency (``limit_concurrency`` answers a
bare 503 without ``Retry-After`` or problem body, and knows nothing of loop lag or the
database pool); no maintained ASGI package sheds on these signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from updog.api.problems import send_problem
from updog.settings import Settings

#: Paths never shed.
EXEMPT_PATHS: frozenset[str] = frozenset({"/livez", "/readyz", "/startupz", "/metrics"})
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process, bytes (0 when unknown)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        try:
            import psutil

            return int(psutil.Process().memory_info().rss)
        except Exception:
            return 0


class PressureMonitor:
    """Samples load signals on the running event loop (started lazily by :meth:`ensure`).

    Thresholds: ``max_lag`` seconds, ``max_in_flight`` requests, ``max_db_waiters``,
    ``max_rss`` bytes; 0 disables a signal. ``database`` is the store's ``Database`` (its
    ``pool.get_stats()`` is read) or None.
    """

    def __init__(
        self,
        *,
        max_lag: float = 0.5,
        max_in_flight: int = 256,
        max_db_waiters: int = 20,
        max_rss: int = 0,
        database: Any = None,
        interval: float = 0.05,
        hold: float = 2.0,
    ) -> None:
        if min(max_lag, max_in_flight, max_db_waiters, max_rss) < 0:
            raise ValueError("thresholds must be ≥ 0 (0 = off)")
        if interval <= 0 or hold < interval:
            raise ValueError("need interval > 0 and hold ≥ interval")
        self.max_lag = max_lag
        self.max_in_flight = max_in_flight
        self.max_db_waiters = max_db_waiters
        self.max_rss = max_rss
        self.database = database
        self.interval = interval
        self.hold = hold
        self.in_flight = 0
        self.db_waiters = 0
        self.rss = 0
        self._lags: deque[tuple[float, float]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def lag(self) -> float:
        """Worst event-loop lag (seconds) of the last ``hold`` seconds."""
        cutoff = time.monotonic() - self.hold
        while self._lags and self._lags[0][0] < cutoff:
            self._lags.popleft()
        return max((lag for _, lag in self._lags), default=0.0)

    def ensure(self) -> None:
        """Start the sampler on the running loop unless it runs there already."""
        loop = asyncio.get_running_loop()
        if self._task is not None and self._loop is loop and not self._task.done():
            return
        self._loop = loop
        self._task = loop.create_task(self._sample(), name="updog-pressure-monitor")

    def stop(self) -> None:
        """Cancel the sampler (it restarts on the next request)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        tick = 0
        while True:
            start = loop.time()
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - start - self.interval)
            now = time.monotonic()
            self._lags.append((now, lag))
            if len(self._lags) > 4 * self.hold / self.interval:
                self._lags.popleft()
            if self.database is not None:
                with contextlib.suppress(Exception):
                    self.db_waiters = int(self.database.pool.get_stats().get("requests_waiting", 0))
            if tick % 20 == 0:
                self.rss = rss_bytes()
            tick += 1

    def reasons(self) -> list[str]:
        """The signals over their thresholds right now ([] = not overloaded)."""
        out = []
        if self.max_lag and self.lag > self.max_lag:
            out.append("event_loop_lag")
        if self.max_in_flight and self.in_flight > self.max_in_flight:
            out.append("in_flight")
        if self.max_db_waiters and self.db_waiters > self.max_db_waiters:
            out.append("db_pool_waiters")
        if self.max_rss and self.rss > self.max_rss:
            out.append("memory")
        return out

    def snapshot(self) -> dict[str, Any]:
        """Current values and thresholds, for ``/readyz`` detail and logs."""
        return {
            "overloaded": bool(self.reasons()),
            "event_loop_lag_ms": round(self.lag * 1000, 1),
            "in_flight": self.in_flight,
            "db_pool_waiters": self.db_waiters,
            "rss_mb": round(self.rss / 2**20, 1),
            "thresholds": {
                "event_loop_lag_ms": self.max_lag * 1000,
                "in_flight": self.max_in_flight,
                "db_pool_waiters": self.max_db_waiters,
                "rss_mb": self.max_rss / 2**20,
            },
        }

    def export(self, registry: CollectorRegistry) -> Counter:
        """Register the pressure gauges on ``registry``; return the shed counter."""
        for name, doc, fn in (
            ("event_loop_lag_seconds", "Worst recent event-loop lag.", lambda: self.lag),
            ("in_flight_requests", "Requests in flight (non-probe).", lambda: self.in_flight),
            ("db_pool_waiters", "Requests waiting for a DB connection.", lambda: self.db_waiters),
            ("rss_bytes", "Resident memory of the process.", lambda: self.rss),
        ):
            Gauge(f"updog_pressure_{name}", doc, registry=registry).set_function(fn)
        return Counter(
            "updog_shed_requests_total",
            "Requests refused with 503 by load shedding, by reason.",
            ("reason",),
            registry=registry,
        )


class LoadSheddingMiddleware:
    """503 ``OVERLOADED`` with ``Retry-After`` while :class:`PressureMonitor` says so."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        monitor: PressureMonitor,
        retry_after: int = 2,
        shed_counter: Counter | None = None,
        exempt: Sequence[str] = tuple(EXEMPT_PATHS),
    ) -> None:
        if retry_after < 1:
            raise ValueError("retry_after must be ≥ 1")
        self.app = app
        self.monitor = monitor
        self.retry_after = str(retry_after)
        self.shed = shed_counter
        self.exempt = frozenset(exempt)

    @classmethod
    def options(
        cls, settings: Settings, database: Any, registry: CollectorRegistry
    ) -> dict[str, Any]:
        """Keyword arguments for ``Middleware(LoadSheddingMiddleware, **options)``."""
        monitor = PressureMonitor(
            max_lag=settings.shed_loop_lag_ms / 1000,
            max_in_flight=settings.shed_max_in_flight,
            max_db_waiters=settings.shed_max_db_waiters,
            max_rss=settings.shed_max_rss_mb * 2**20,
            database=database,
        )
        return {
            "monitor": monitor,
            "retry_after": settings.shed_retry_after,
            "shed_counter": monitor.export(registry),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        monitor = self.monitor
        monitor.ensure()
        reasons = monitor.reasons()
        if reasons:
            if self.shed is not None:
                for reason in reasons:
                    self.shed.labels(reason).inc()
            await send_problem(
                scope,
                send,
                503,
                "OVERLOADED",
                "The service is overloaded (" + ", ".join(reasons) + "); retry shortly.",
                headers={"Retry-After": self.retry_after},
            )
            return
        monitor.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            monitor.in_flight -= 1
