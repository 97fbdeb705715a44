"""Database telemetry: pool metrics, query time by statement, and the slow-query log.

A :class:`DatabaseTelemetry` belongs to one ``Database`` (it lives as long as the pool, which
may outlive an app, so it has its own :class:`CollectorRegistry`; an app exposes it with
:meth:`DatabaseTelemetry.bridge`). Series:

- ``updog_db_pool_connections{pool, kind}`` — ``size`` (open), ``idle``, ``min``, ``max``;
- ``updog_db_pool_waiting{pool}`` — requests queued for a connection right now;
- ``updog_db_pool_acquire_seconds{pool}`` — histogram: time to get a connection;
- ``updog_db_pool_acquire_failures_total{pool, reason}`` — ``timeout`` (no connection within
  the acquire timeout) and ``queue_full`` (the waiting queue was at ``max_waiting``: refused
  at once, answered 503);
- ``updog_db_pool_connection_errors_total{pool, kind}`` — from the pool's own counters:
  ``connect`` (failed attempts), ``lost`` (found broken);
- ``updog_db_query_duration_seconds{statement}`` — histogram per statement name
  (``select funds``, ``insert fund_versions`` … see :func:`statement_name`);
- ``updog_db_slow_queries_total{statement}``.

The slow-query log: every statement at least ``slow_query_seconds`` long is logged as
``slow_query`` with its statement name, duration and SQL text — with string and number
literals replaced by ``?`` and the parameters never shown (only their count).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from updog.observability.logging import get_logger

__all__ = ["DatabaseTelemetry", "redact_sql", "statement_name"]

_log = get_logger("updog.db")

_ACQUIRE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

_TABLE = re.compile(r"\b(?:from|into|update|join|table)\s+(?:only\s+)?\"?([a-z_][\w.]*)", re.I)
_WORD = re.compile(r"[a-z]+", re.I)
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![\w$])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", re.I)
_SPACE = re.compile(r"\s+")


def _text(query: Any) -> str:
    if isinstance(query, str):
        return query
    if isinstance(query, bytes):
        return query.decode("utf-8", "replace")
    try:
        return str(query.as_string(None))
    except Exception:
        return type(query).__name__


@lru_cache(maxsize=2048)
def _name(text: str) -> str:
    stripped = text.lstrip(" \t\r\n(")
    word = _WORD.match(stripped)
    verb = word.group(0).lower() if word else "other"
    table = _TABLE.search(text)
    return f"{verb} {table.group(1).lower()}" if table else verb


def statement_name(query: Any) -> str:
    """A short, bounded label for a statement: its verb and first table
    (``"SELECT id FROM funds WHERE …"`` → ``"select funds"``)."""
    return _name(_text(query)[:2000])


def redact_sql(query: Any, limit: int = 500) -> str:
    """The SQL text with literals replaced by ``?`` and whitespace collapsed (≤ ``limit``)."""
    text = _STRING.sub("'?'", _text(query))
    text = _NUMBER.sub("?", text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _param_count(params: Any) -> int:
    try:
        return len(params) if params is not None else 0
    except TypeError:
        return 1


class DatabaseTelemetry:
    """Pool and query metrics of one database, plus the slow-query log."""

    def __init__(self, pool_name: str = "updog", *, slow_query_seconds: float = 0.5) -> None:
        self.pool_name = pool_name
        self.slow_query_seconds = slow_query_seconds
        self.pool: Any = None  # the psycopg_pool.ConnectionPool, set by the Database
        self.registry = CollectorRegistry()
        self.acquire = Histogram(
            "updog_db_pool_acquire_seconds",
            "Time to obtain a pooled connection, seconds.",
            ("pool",),
            buckets=_ACQUIRE_BUCKETS,
            registry=self.registry,
        )
        self.acquire_failures = Counter(
            "updog_db_pool_acquire_failures_total",
            "Connection requests that failed: timeout, or queue_full (refused at once).",
            ("pool", "reason"),
            registry=self.registry,
        )
        self.query = Histogram(
            "updog_db_query_duration_seconds",
            "Statement execution time by statement name, seconds.",
            ("statement",),
            buckets=_QUERY_BUCKETS,
            registry=self.registry,
        )
        self.slow = Counter(
            "updog_db_slow_queries_total",
            "Statements slower than the slow-query threshold.",
            ("statement",),
            registry=self.registry,
        )
        self.registry.register(_PoolCollector(self))
        self.cursor_class = self._make_cursor_class()

    # ------------------------------------------------------------------ recording

    def observe_query(self, query: Any, params: Any, seconds: float, error: bool) -> None:
        name = statement_name(query)
        self.query.labels(name).observe(seconds)
        if seconds >= self.slow_query_seconds:
            self.slow.labels(name).inc()
            _log.warning(
                "slow_query",
                statement=name,
                duration_ms=round(seconds * 1000, 1),
                sql=redact_sql(query),
                params=f"<{_param_count(params)} redacted>",
                failed=error,
            )

    def _make_cursor_class(self) -> type[psycopg.Cursor[Any]]:
        telemetry = self

        class TimedCursor(psycopg.Cursor[Any]):
            """A cursor that times each statement into the telemetry."""

            def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
                start = time.perf_counter()
                failed = True
                try:
                    result = super().execute(query, params, **kwargs)
                    failed = False
                    return result
                finally:
                    telemetry.observe_query(query, params, time.perf_counter() - start, failed)

            def executemany(self, query: Any, params_seq: Iterable[Any], **kwargs: Any) -> None:
                start = time.perf_counter()
                failed = True
                try:
                    super().executemany(query, params_seq, **kwargs)
                    failed = False
                finally:
                    telemetry.observe_query(query, None, time.perf_counter() - start, failed)

        return TimedCursor

    # ------------------------------------------------------------------ exposing

    def bridge(self) -> Collector:
        """A collector to register in another registry (an app's) that yields these series."""
        return _Bridge(self.registry)


class _Bridge(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self._registry.collect()


class _PoolCollector(Collector):
    """Reads ``pool.get_stats()`` at scrape time."""

    def __init__(self, telemetry: DatabaseTelemetry) -> None:
        self._telemetry = telemetry

    def collect(self) -> Iterator[Any]:
        pool = self._telemetry.pool
        name = self._telemetry.pool_name
        conns = GaugeMetricFamily(
            "updog_db_pool_connections",
            "Pooled connections: size (open), idle, min, max.",
            labels=("pool", "kind"),
        )
        waiting = GaugeMetricFamily(
            "updog_db_pool_waiting", "Requests waiting for a connection.", labels=("pool",)
        )
        errors = CounterMetricFamily(
            "updog_db_pool_connection_errors",
            "Connection attempts that failed (connect) and connections found broken (lost).",
            labels=("pool", "kind"),
        )
        if pool is not None:
            try:
                stats = pool.get_stats()
            except Exception:
                stats = {}
            for kind, key in (
                ("size", "pool_size"),
                ("idle", "pool_available"),
                ("min", "pool_min"),
                ("max", "pool_max"),
            ):
                conns.add_metric((name, kind), float(stats.get(key, 0)))
            waiting.add_metric((name,), float(stats.get("requests_waiting", 0)))
            errors.add_metric((name, "connect"), float(stats.get("connections_errors", 0)))
            errors.add_metric((name, "lost"), float(stats.get("connections_lost", 0)))
        yield conns
        yield waiting
        yield errors
