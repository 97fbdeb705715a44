"""Load shedding: refuse new work with 503 while the process is overloaded *and* busy.

SPEC §6 practice 1. Three parts, in the manner of resilience4j:

* :class:`LagConfig` — an immutable configuration with named, documented defaults;
* :class:`LagStateMachine` — judges event-loop lag over a sliding window with hysteresis
  (states :class:`LagState`, one :class:`LagTransition` event per change, which the log and
  the metrics subscribe to); pure, its clock injected, so tests drive time;
* :class:`PressureMonitor` and :class:`LoadSheddingMiddleware` — the sampler on the serving
  event loop and the pure-ASGI gate that asks it, per request, whether to shed.

Signals (:class:`PressureMonitor`):

* **event-loop lag** — how late a ``sleep(interval)`` wakes up. One sample is no verdict: a
  single slow page or a busy machine's hiccup must not refuse anyone. The machine enters
  SHEDDING when the ``percentile`` (p90) of the samples of the last ``window`` seconds is
  above ``enter_lag``, and leaves it only when that figure falls below ``exit_lag`` (lower:
  hysteresis, so it does not flicker at the threshold);
* **in-flight requests** — counted by the middleware itself;
* **database-pool waiters** — ``requests_waiting`` of the psycopg pool;
* **resident memory** of the process (``/proc/self/statm``, else ``psutil``).

Lag, pool waiters and memory are *pressure*; they shed only while more than
``in_flight_floor`` requests are in flight. Refusing the only person using the instance does
not relieve anything (the load is elsewhere — another process, a noisy neighbour), so below
the floor every request is served however slow the loop is. ``max_in_flight`` is itself a
concurrency limit and sheds on its own. Each threshold 0 turns its signal off.

A shed request gets 503 ``OVERLOADED`` problem+json (an HTML page for browsers, see
:mod:`updog.web.problem_pages`) with ``Retry-After``. Probes, ``/metrics`` and static assets
are never shed (nor counted in flight): orchestrators and dashboards must see *why*, and a
page that was served must be able to load its stylesheet. Shed requests are counted in
``updog_shed_requests_total{reason}``; the current pressure is exported as gauges
(``updog_pressure_*``), lag transitions in ``updog_shed_lag_transitions_total{state}`` and the
log, and :meth:`PressureMonitor.snapshot` gives it all to ``/readyz`` (``app.state.pressure``).

Why our own code: Starlette and uvicorn only cap concurrency (``limit_concurrency`` answers a
bare 503 without ``Retry-After`` or problem body, and knows nothing of loop lag or the
database pool); no maintained ASGI package sheds on these signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import math
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

from updog.http.problems import send_problem
from updog.observability.logging import get_logger
from updog.protection.rate_limit import EXEMPT_PREFIXES
from updog.resilience.breaker import Clock
from updog.settings import Settings

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_log = get_logger("updog.shedding")


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


# --------------------------------------------------------------------------- lag judgement


@dataclass(frozen=True, slots=True)
class LagConfig:
    """When event-loop lag counts as sustained pressure. Times are seconds.

    The defaults: judge the p90 of the lag samples of the last 5 s; shed above 0.5 s, stop
    below 0.25 s. A p90 over 5 s means at least one sample in ten was that late for seconds
    on end — a single blocking call, however long, is one sample and does not trip it
    unless it fills the window.
    """

    #: Enter SHEDDING when the window's percentile lag is above this.
    enter_lag: float = 0.5
    #: Leave SHEDDING only when the window's percentile lag is below this (< ``enter_lag``).
    exit_lag: float = 0.25
    #: Length of the sliding window of samples. No verdict before one full window is seen.
    window: float = 5.0
    #: Which percentile of the window's samples is judged (nearest rank), in (0, 1].
    percentile: float = 0.9

    def __post_init__(self) -> None:
        if not (math.isfinite(self.enter_lag) and self.enter_lag > 0):
            raise ValueError(f"enter_lag must be > 0, got {self.enter_lag}")
        if not (0 <= self.exit_lag < self.enter_lag):
            raise ValueError(
                f"exit_lag must be ≥ 0 and below enter_lag ({self.enter_lag}), got {self.exit_lag}"
            )
        if not (math.isfinite(self.window) and self.window > 0):
            raise ValueError(f"window must be > 0, got {self.window}")
        if not (0 < self.percentile <= 1):
            raise ValueError(f"percentile must be in (0, 1], got {self.percentile}")


class LagState(enum.Enum):
    """The lag judgement; the value is the label in metrics, logs and ``/readyz``."""

    ACCEPTING = "accepting"
    SHEDDING = "shedding"


@dataclass(frozen=True, slots=True)
class LagTransition:
    """Event: the judgement changed at clock reading ``at``; ``lag`` (seconds) is the
    window's percentile that decided it."""

    at: float
    from_state: LagState
    to_state: LagState
    lag: float


LagListener = Callable[[LagTransition], None]


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0 < q ≤ 1) of ``values`` by nearest rank: the smallest value with
    at least ``q`` of the values at or below it (no interpolation); 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class LagStateMachine:
    """ACCEPTING ⇄ SHEDDING on the lag samples of a sliding window, with hysteresis.

    :meth:`record` adds one sample (seconds late, ≥ 0) at ``clock()`` and re-judges: the
    window keeps the samples of the last ``config.window`` seconds; once a full window has
    been observed, a percentile above ``enter_lag`` moves ACCEPTING → SHEDDING and one below
    ``exit_lag`` moves SHEDDING → ACCEPTING; in between the state stays. Every transition is
    published to the subscribers (:meth:`subscribe`). Not thread-safe: one event loop owns it.
    """

    def __init__(self, config: LagConfig, *, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque()
        self._since: float | None = None
        self._state = LagState.ACCEPTING
        self._lag = 0.0
        self._listeners: list[LagListener] = []

    @property
    def state(self) -> LagState:
        """The current judgement."""
        return self._state

    @property
    def lag(self) -> float:
        """The window's percentile lag, seconds, as of the last sample (0.0 before any)."""
        return self._lag

    def subscribe(self, listener: LagListener) -> None:
        """Call ``listener(event)`` on every future transition (a listener that raises is
        logged and skipped: the judgement never fails because of an observer)."""
        self._listeners.append(listener)

    def record(self, lag: float) -> LagState:
        """Add a sample of ``lag`` seconds; return the (possibly new) state.

        Raises ``ValueError`` for a negative or non-finite sample.
        """
        if not (math.isfinite(lag) and lag >= 0):
            raise ValueError(f"a lag sample must be finite and ≥ 0, got {lag}")
        now = self._clock()
        if self._since is None:
            self._since = now
        self._samples.append((now, lag))
        cutoff = now - self.config.window
        while self._samples[0][0] < cutoff:
            self._samples.popleft()
        self._lag = nearest_rank([s for _, s in self._samples], self.config.percentile)
        if now - self._since < self.config.window:
            return self._state  # a partial window is no evidence of sustained lag
        if self._state is LagState.ACCEPTING and self._lag > self.config.enter_lag:
            self._transition(LagState.SHEDDING, now)
        elif self._state is LagState.SHEDDING and self._lag < self.config.exit_lag:
            self._transition(LagState.ACCEPTING, now)
        return self._state

    def _transition(self, to_state: LagState, now: float) -> None:
        event = LagTransition(now, self._state, to_state, self._lag)
        self._state = to_state
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                _log.exception("lag_listener_failed")


# --------------------------------------------------------------------------- the sampler

#: The default lag judgement (see :class:`LagConfig`).
DEFAULT_LAG = LagConfig()


class PressureMonitor:
    """Samples load signals on the running event loop (started lazily by :meth:`ensure`).

    ``lag`` judges event-loop lag (None: off); ``max_in_flight`` requests (a cap of its own),
    ``max_db_waiters`` and ``max_rss`` bytes (0 disables a signal); ``in_flight_floor``: the
    pressure signals (lag, pool waiters, memory) shed only while more requests than this are
    in flight. ``database`` is the store's ``Database`` (its ``pool.get_stats()`` is read) or
    None. ``interval``: seconds between lag samples. ``clock`` drives the lag window.
    """

    def __init__(
        self,
        *,
        lag: LagConfig | None = DEFAULT_LAG,
        max_in_flight: int = 256,
        in_flight_floor: int = 8,
        max_db_waiters: int = 20,
        max_rss: int = 0,
        database: Any = None,
        interval: float = 0.05,
        clock: Clock = time.monotonic,
    ) -> None:
        if min(max_in_flight, in_flight_floor, max_db_waiters, max_rss) < 0:
            raise ValueError("thresholds must be ≥ 0 (0 = off)")
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.lag_machine = LagStateMachine(lag, clock=clock) if lag is not None else None
        self.max_in_flight = max_in_flight
        self.in_flight_floor = in_flight_floor
        self.max_db_waiters = max_db_waiters
        self.max_rss = max_rss
        self.database = database
        self.interval = interval
        self.in_flight = 0
        self.db_waiters = 0
        self.rss = 0
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def lag(self) -> float:
        """The window's percentile event-loop lag, seconds (0.0 when lag is not judged)."""
        return self.lag_machine.lag if self.lag_machine is not None else 0.0

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
            if self.lag_machine is not None:
                self.lag_machine.record(max(0.0, loop.time() - start - self.interval))
            if self.database is not None:
                with contextlib.suppress(Exception):
                    self.db_waiters = int(self.database.pool.get_stats().get("requests_waiting", 0))
            if tick % 20 == 0:
                self.rss = rss_bytes()
            tick += 1

    @property
    def lag_sustained(self) -> bool:
        """True while the lag judgement is SHEDDING (sustained lag; False when not judged)."""
        return self.lag_machine is not None and self.lag_machine.state is LagState.SHEDDING

    def pressure(self) -> list[str]:
        """The pressure signals over their thresholds right now (lag: the machine's state)."""
        out = []
        if self.lag_sustained:
            out.append("event_loop_lag")
        if self.max_db_waiters and self.db_waiters > self.max_db_waiters:
            out.append("db_pool_waiters")
        if self.max_rss and self.rss > self.max_rss:
            out.append("memory")
        return out

    def reasons(self) -> list[str]:
        """Why the next request is to be shed ([] = admit it): the pressure signals while
        more than ``in_flight_floor`` requests are in flight, and ``in_flight`` above
        ``max_in_flight``."""
        out = self.pressure() if self.in_flight > self.in_flight_floor else []
        if self.max_in_flight and self.in_flight > self.max_in_flight:
            out.append("in_flight")
        return out

    def snapshot(self) -> dict[str, Any]:
        """Current values and thresholds, for ``/readyz`` detail and logs."""
        machine = self.lag_machine
        config = machine.config if machine is not None else None
        return {
            "overloaded": bool(self.reasons()),
            "pressure": self.pressure(),
            "event_loop_lag_ms": round(self.lag * 1000, 1),
            "event_loop_lag_state": machine.state.value if machine is not None else None,
            "in_flight": self.in_flight,
            "db_pool_waiters": self.db_waiters,
            "rss_mb": round(self.rss / 2**20, 1),
            "thresholds": {
                "event_loop_lag_ms": config.enter_lag * 1000 if config else 0,
                "event_loop_lag_exit_ms": config.exit_lag * 1000 if config else 0,
                "event_loop_lag_window_s": config.window if config else 0,
                "in_flight": self.max_in_flight,
                "in_flight_floor": self.in_flight_floor,
                "db_pool_waiters": self.max_db_waiters,
                "rss_mb": self.max_rss / 2**20,
            },
        }

    def export(self, registry: CollectorRegistry) -> Counter:
        """Register the pressure gauges and the lag-transition counter on ``registry``;
        return the shed counter."""
        for name, doc, fn in (
            ("event_loop_lag_seconds", "p90 event-loop lag of the window.", lambda: self.lag),
            ("event_loop_lag_sustained", "1 while lag is judged sustained.", self._sustained),
            ("in_flight_requests", "Requests in flight (non-probe).", lambda: self.in_flight),
            ("db_pool_waiters", "Requests waiting for a DB connection.", lambda: self.db_waiters),
            ("rss_bytes", "Resident memory of the process.", lambda: self.rss),
        ):
            Gauge(f"updog_pressure_{name}", doc, registry=registry).set_function(fn)
        if self.lag_machine is not None:
            transitions = Counter(
                "updog_shed_lag_transitions_total",
                "Changes of the event-loop lag judgement, by new state.",
                ("state",),
                registry=registry,
            )
            self.lag_machine.subscribe(lambda e: transitions.labels(e.to_state.value).inc())
        return Counter(
            "updog_shed_requests_total",
            "Requests refused with 503 by load shedding, by reason.",
            ("reason",),
            registry=registry,
        )

    def _sustained(self) -> float:
        return float(self.lag_sustained)


def _log_transition(event: LagTransition) -> None:
    if event.to_state is LagState.SHEDDING:
        _log.warning("load_shedding_lag_sustained", lag_ms=round(event.lag * 1000, 1))
    else:
        _log.info("load_shedding_lag_recovered", lag_ms=round(event.lag * 1000, 1))


class LoadSheddingMiddleware:
    """503 ``OVERLOADED`` with ``Retry-After`` while :meth:`PressureMonitor.reasons` says so."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        monitor: PressureMonitor,
        retry_after: int = 2,
        shed_counter: Counter | None = None,
        exempt: Sequence[str] = EXEMPT_PREFIXES,
    ) -> None:
        if retry_after < 1:
            raise ValueError("retry_after must be ≥ 1")
        self.app = app
        self.monitor = monitor
        self.retry_after = str(retry_after)
        self.shed = shed_counter
        self.exempt = tuple(exempt)

    @classmethod
    def options(
        cls, settings: Settings, database: Any, registry: CollectorRegistry
    ) -> dict[str, Any]:
        """Keyword arguments for ``Middleware(LoadSheddingMiddleware, **options)``."""
        lag = None
        if settings.shed_loop_lag_ms:
            lag = LagConfig(
                enter_lag=settings.shed_loop_lag_ms / 1000,
                exit_lag=settings.shed_loop_lag_exit_ms / 1000,
                window=settings.shed_lag_window_seconds,
            )
        monitor = PressureMonitor(
            lag=lag,
            max_in_flight=settings.shed_max_in_flight,
            in_flight_floor=settings.shed_in_flight_floor,
            max_db_waiters=settings.shed_max_db_waiters,
            max_rss=settings.shed_max_rss_mb * 2**20,
            database=database,
        )
        if monitor.lag_machine is not None:
            monitor.lag_machine.subscribe(_log_transition)
        return {
            "monitor": monitor,
            "retry_after": settings.shed_retry_after,
            "shed_counter": monitor.export(registry),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
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
