"""Prometheus metrics for the HTTP service.

Each application owns a :class:`HttpMetrics` with its own :class:`CollectorRegistry`, so
several apps in one process (tests) never collide on metric names. Labels are bounded:
``route`` is the route *template* (``/api/v1/funds/{fund_id}``), never the concrete path,
and unmatched requests share the label ``"<unmatched>"``.

Series:

- ``updog_http_requests_total{method, route, status}`` — counter.
- ``updog_http_request_duration_seconds{method, route, status}`` — histogram.
- ``updog_http_requests_in_flight`` — gauge.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Latency buckets (seconds): fine below 100 ms for reads, coarse up to 30 s for simulations.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.4,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

UNMATCHED_ROUTE = "<unmatched>"


class HttpMetrics:
    """The HTTP server's metrics in a private registry."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "updog_http_requests_total",
            "HTTP requests served, by method, route template and status.",
            ("method", "route", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "updog_http_request_duration_seconds",
            "HTTP request latency (first byte received to last byte sent), seconds.",
            ("method", "route", "status"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "updog_http_requests_in_flight",
            "HTTP requests being served right now.",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
