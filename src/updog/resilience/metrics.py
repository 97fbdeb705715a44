"""Prometheus metrics of circuit breakers, fed by the breakers' events (never by the logic).

Series (``name`` is the breaker: ``pg``, ``redis``, ``http:<host>``):

- ``updog_circuit_breaker_state{name, state}`` — 1 for the current state, 0 for the others;
- ``updog_circuit_breaker_transitions_total{name, from_state, to_state}``;
- ``updog_circuit_breaker_calls_total{name, outcome}`` — ``successful``, ``failed``,
  ``ignored``, ``not_permitted``, ``timeout`` (a failed call cancelled by its time limit);
- ``updog_circuit_breaker_slow_calls_total{name}``;
- ``updog_circuit_breaker_call_duration_seconds{name}`` — histogram of recorded calls.

A transition is also logged (``circuit_breaker_transition``, warning when it opens).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from updog.observability.logging import get_logger
from updog.resilience.breaker import (
    BreakerEvent,
    BreakerRegistry,
    CircuitBreaker,
    ErrorEvent,
    IgnoredErrorEvent,
    NotPermittedEvent,
    State,
    StateTransitionEvent,
    SuccessEvent,
)

_log = get_logger("updog.resilience")

_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BreakerMetrics:
    """Breaker series in ``registry``; :meth:`watch` subscribes to every breaker of a
    :class:`BreakerRegistry` (present and future)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = Gauge(
            "updog_circuit_breaker_state",
            "Circuit breaker state (1 = current).",
            ("name", "state"),
            registry=registry,
        )
        self.transitions = Counter(
            "updog_circuit_breaker_transitions_total",
            "Circuit breaker state transitions.",
            ("name", "from_state", "to_state"),
            registry=registry,
        )
        self.calls = Counter(
            "updog_circuit_breaker_calls_total",
            "Calls through a circuit breaker, by outcome.",
            ("name", "outcome"),
            registry=registry,
        )
        self.slow = Counter(
            "updog_circuit_breaker_slow_calls_total",
            "Calls slower than the breaker's slow-call duration.",
            ("name",),
            registry=registry,
        )
        self.duration = Histogram(
            "updog_circuit_breaker_call_duration_seconds",
            "Duration of calls recorded by a circuit breaker.",
            ("name",),
            buckets=_BUCKETS,
            registry=registry,
        )

    def watch(self, breakers: BreakerRegistry) -> None:
        breakers.on_added(self.attach)

    def attach(self, breaker: CircuitBreaker) -> None:
        self._set_state(breaker.name, breaker.state)
        breaker.events.subscribe(self.on_event)

    def _set_state(self, name: str, current: State) -> None:
        for state in State:
            self.state.labels(name, state.value).set(1 if state is current else 0)

    def on_event(self, event: BreakerEvent) -> None:
        name = event.breaker
        if isinstance(event, StateTransitionEvent):
            self.transitions.labels(name, event.from_state.value, event.to_state.value).inc()
            self._set_state(name, event.to_state)
            log = _log.warning if event.to_state is State.OPEN else _log.info
            log(
                "circuit_breaker_transition",
                breaker=name,
                from_state=event.from_state.value,
                to_state=event.to_state.value,
            )
        elif isinstance(event, SuccessEvent):
            self.calls.labels(name, "successful").inc()
            self.duration.labels(name).observe(event.duration)
            if event.slow:
                self.slow.labels(name).inc()
        elif isinstance(event, ErrorEvent):
            self.calls.labels(name, "timeout" if event.timeout else "failed").inc()
            self.duration.labels(name).observe(event.duration)
            if event.slow:
                self.slow.labels(name).inc()
        elif isinstance(event, IgnoredErrorEvent):
            self.calls.labels(name, "ignored").inc()
        elif isinstance(event, NotPermittedEvent):
            self.calls.labels(name, "not_permitted").inc()
