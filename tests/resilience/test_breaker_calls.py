"""Breakers around real calls: async cancellation, outbound HTTP, metrics from events, and the
``pg`` breaker and watchdog on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from updog.resilience.breaker import (
    BreakerConfig,
    BreakerRegistry,
    CallNotPermittedError,
    CircuitBreaker,
    OperationTimeoutError,
    State,
)
from updog.resilience.http import BreakerTransport, breaker_name
from updog.resilience.metrics import BreakerMetrics
from updog.resilience.postgres import (
    DatabaseCircuitOpenError,
    DatabaseTimeoutError,
    is_database_failure,
)


def test_acall_timeout_really_cancels_the_operation() -> None:
    cancelled = asyncio.Event()

    async def hang() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> None:
        breaker = CircuitBreaker("redis", BreakerConfig(operation_timeout=0.05, minimum_calls=1))
        start = time.monotonic()
        with pytest.raises(OperationTimeoutError):
            await breaker.acall(hang)
        assert time.monotonic() - start < 5
        assert cancelled.is_set()  # the awaited work was cancelled, not abandoned
        assert breaker.state is State.OPEN  # a timeout is a failure
        with pytest.raises(CallNotPermittedError):
            await breaker.acall(hang)

    asyncio.run(main())


def test_http_transport_counts_5xx_not_4xx_and_returns_answers_unchanged() -> None:
    statuses = iter([404, 404, 404, 503, 503])

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(next(statuses), text="body")

    async def main() -> None:
        registry = BreakerRegistry(BreakerConfig(window_size=2, minimum_calls=2))
        transport = BreakerTransport(registry, httpx.MockTransport(answer))
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(3):
                r = await client.get("http://api.example.com/x")
                assert r.status_code == 404 and r.text == "body"
            breaker = registry.get("http:api.example.com")
            assert breaker.state is State.CLOSED and breaker.snapshot().calls == 0
            for _ in range(2):
                r = await client.get("http://api.example.com/x")
                assert r.status_code == 503  # returned, not swallowed
            assert breaker.state is State.OPEN
            with pytest.raises(CallNotPermittedError) as caught:
                await client.get("http://api.example.com/x")
            assert caught.value.breaker == "http:api.example.com"

    asyncio.run(main())
    assert breaker_name(httpx.URL("https://h.example:8443/")) == "http:h.example:8443"


def test_metrics_follow_events() -> None:
    registry = CollectorRegistry()
    breakers = BreakerRegistry(BreakerConfig(window_size=1, minimum_calls=1))
    BreakerMetrics(registry).watch(breakers)
    breaker = breakers.get("redis")
    with pytest.raises(ConnectionError), breaker.guard():
        raise ConnectionError("down")
    assert breaker.try_acquire() is None
    text = generate_latest(registry).decode()
    assert 'updog_circuit_breaker_state{name="redis",state="open"} 1.0' in text
    assert 'updog_circuit_breaker_state{name="redis",state="closed"} 0.0' in text
    assert (
        'updog_circuit_breaker_transitions_total{from_state="closed",name="redis",'
        'to_state="open"} 1.0' in text
    )
    assert 'updog_circuit_breaker_calls_total{name="redis",outcome="failed"} 1.0' in text
    assert 'updog_circuit_breaker_calls_total{name="redis",outcome="not_permitted"} 1.0' in text


def test_database_error_classification() -> None:
    from psycopg import errors
    from psycopg_pool import PoolTimeout, TooManyRequests

    assert is_database_failure(psycopg.OperationalError("connection refused"))
    assert is_database_failure(PoolTimeout("no connection"))
    assert is_database_failure(errors.QueryCanceled("statement timeout"))
    assert not is_database_failure(TooManyRequests("queue full"))
    assert not is_database_failure(errors.UniqueViolation("dup"))
    assert not is_database_failure(errors.LockNotAvailable("lock timeout"))
    assert not is_database_failure(errors.DeadlockDetected("deadlock"))
    assert not is_database_failure(ValueError("bad input"))
    err = DatabaseCircuitOpenError("pg", State.OPEN, 2.2)
    assert isinstance(err, psycopg.OperationalError) and isinstance(err, CallNotPermittedError)
    assert err.retry_after == 3


@pytest.mark.db
def test_pg_breaker_and_watchdog_on_a_real_database(database_url: str) -> None:
    from updog.resilience.postgres import pg_breaker_config
    from updog.store.db import Database

    breakers = BreakerRegistry(
        configs={"pg": pg_breaker_config(window_size=2, minimum_calls=2, wait_in_open=0.5)}
    )
    with Database(
        database_url, min_size=0, max_size=2, timeout=5, operation_timeout=0.5, breakers=breakers
    ) as database:
        # the caller's fault passes through unchanged and does not count
        for _ in range(3):
            with pytest.raises(psycopg.errors.UndefinedTable), database.connection() as conn:
                conn.execute("SELECT * FROM no_such_table")
        assert database.breaker.state is State.CLOSED
        # an operation past its time is cancelled (a 10 s sleep ends after ~0.5 s) and counts
        start = time.monotonic()
        for _ in range(2):
            with pytest.raises(DatabaseTimeoutError), database.connection() as conn:
                conn.execute("SELECT pg_sleep(10)")
        assert time.monotonic() - start < 8
        assert database.breaker.state is State.OPEN
        with pytest.raises(DatabaseCircuitOpenError), database.connection() as conn:
            conn.execute("SELECT 1")
        assert database.ping()  # the probe bypasses the breaker
        time.sleep(0.6)
        for _ in range(3):  # the trial calls close it again
            with database.connection() as conn:
                assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert database.breaker.state is State.CLOSED
        # the cancelled backends are gone: no pg_sleep left running
        with database.connection() as conn:
            running = conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(10)%'"
                " AND state = 'active'"
            ).fetchone()
        assert running == {"n": 0}


@pytest.mark.db
def test_slow_query_log_redacts(database_url: str, caplog: Any) -> None:
    from updog.observability.database import redact_sql, statement_name
    from updog.store.db import Database

    assert statement_name("SELECT id FROM funds WHERE x = %s") == "select funds"
    assert statement_name("  INSERT INTO fund_versions (a) VALUES (%s)") == "insert fund_versions"
    assert redact_sql("SELECT 'secret@x.com', 42 FROM t WHERE a = %s") == (
        "SELECT '?', ? FROM t WHERE a = %s"
    )
    with Database(database_url, min_size=0, max_size=1, slow_query_ms=50) as database:
        with database.connection() as conn:
            conn.execute("SELECT pg_sleep(0.1), %s::text AS email", ("ada@example.com",))
        text = generate_latest(database.telemetry.registry).decode()
    assert 'updog_db_slow_queries_total{statement="select"} 1.0' in text
    assert "updog_db_pool_connections" in text and "updog_db_pool_acquire_seconds" in text
    assert "ada@example.com" not in caplog.text


def test_each_redis_server_has_its_own_breaker() -> None:
    """One process's registry judges each Redis on its own: an unreachable Redis (one app's
    setting) must not short-circuit the calls another app makes to a healthy one — it did
    when every caller shared one breaker named ``redis``."""
    from updog.resilience.redis import redis_breaker, redis_breaker_name

    registry = BreakerRegistry()
    down = redis_breaker(registry, "redis://127.0.0.1:1/0", timeout=0.1, wait=5)
    up = redis_breaker(registry, "redis://127.0.0.1:6379/0", timeout=0.1, wait=5)
    assert down is not up
    assert redis_breaker(registry, "redis://127.0.0.1:6379/3", timeout=0.1, wait=5) is up
    assert redis_breaker_name("redis://cache.internal/0") == "redis:cache.internal:6379"
    assert redis_breaker_name("unix:///run/redis.sock") == "redis:/run/redis.sock"
    down.transition_to_open()
    assert up.state is State.CLOSED
