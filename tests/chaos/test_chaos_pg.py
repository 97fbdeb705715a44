"""Chaos for PostgreSQL over real HTTP (SPEC §6 practice 11): the app's pool reaches the
database through a fault-injecting proxy. Each scenario sends a bounded load and asserts
behaviour only — statuses (503 with Retry-After, never a 500 or a hang), no lost or partial
write, recovery within a generous bound. Latency figures go to ``chaos/report.py``.

Runs on both passes: the proxy forwards to TCP (``DATABASE_URL``) or to the embedded
server's unix socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaos_support import (
    CHAOS_SETTINGS,
    ChaosStack,
    Result,
    connection_resets,
    database_down,
    deadlock,
    latency,
    lock_contention,
    pool_exhaustion,
    stack_on,
)

pytestmark = [pytest.mark.db, pytest.mark.chaos]

#: No request may take longer than this (seconds): the bound that separates "slow" from "hung".
NO_HANG = CHAOS_SETTINGS["db_operation_timeout"] + CHAOS_SETTINGS["db_pool_timeout"] * 3 + 10
RECOVERY_LIMIT = 30.0


@pytest.fixture(scope="module")
def stack(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosStack]:
    from updog.observability.logging import configure_logging

    configure_logging("WARNING")
    with stack_on(postgres_server.admin_url, Path(tmp_path_factory.mktemp("chaos"))) as s:
        yield s
    configure_logging("INFO")


@pytest.fixture(autouse=True)
def healthy(stack: ChaosStack) -> Iterator[None]:
    """Every scenario starts on a healthy, recovered stack and leaves no fault behind."""
    stack.proxy.clear()
    assert stack.wait_until_ok(RECOVERY_LIMIT) is not None
    stack.database.breaker.reset()
    yield
    stack.proxy.clear()


def assert_clean(result: Result, allowed: set[str]) -> None:
    assert set(result.statuses) <= allowed, result
    assert result.missing_retry_after == 0, result
    assert max(result.latencies, default=0) < NO_HANG, result
    assert result.lost == 0 and result.partial == 0, result


def test_added_latency_is_slow_but_correct(stack: ChaosStack) -> None:
    result = latency(stack)
    assert_clean(result, {"200", "201", "503"})
    ok = sum(n for s, n in result.statuses.items() if s.startswith("2"))
    assert ok >= result.sent // 2, result


def test_database_down_answers_503_opens_the_breaker_and_recovers(stack: ChaosStack) -> None:
    result = database_down(stack, recovery_limit=RECOVERY_LIMIT)
    assert_clean(result, {"503"})
    assert set(result.codes) <= {"DATABASE_UNAVAILABLE"}, result
    limit = CHAOS_SETTINGS["db_pool_timeout"] + CHAOS_SETTINGS["db_connect_timeout"] + 5
    assert max(result.latencies) < limit, result  # within the acquire timeout, not a hang
    assert "readyz 503" in result.notes
    assert "pg breaker open" in result.notes or "pg breaker half_open" in result.notes, result
    assert result.recovery_s is not None, "did not recover on its own"


def test_connection_resets_lose_no_acknowledged_write(stack: ChaosStack) -> None:
    result = connection_resets(stack)
    assert_clean(result, {"201", "503"})
    assert result.found == result.acknowledged
    assert result.recovery_s is not None


def test_pool_exhaustion_refuses_cleanly_and_recovers(stack: ChaosStack) -> None:
    result = pool_exhaustion(stack)
    assert_clean(result, {"200", "503"})
    assert set(result.codes) <= {"DATABASE_UNAVAILABLE"}, result
    assert result.recovery_s is not None


def test_lock_contention_gives_a_clean_503_then_succeeds(stack: ChaosStack) -> None:
    result = lock_contention(stack)
    assert_clean(result, {"200", "503"})
    assert result.codes == {"DATABASE_CONTENTION": result.statuses["503"]}, result
    assert "after release: 200" in result.notes


def test_forced_deadlock_has_one_clean_loser(stack: ChaosStack) -> None:
    result = deadlock(stack)
    assert_clean(result, {"200", "409", "503"})
    api_lost = result.statuses["503"] + result.statuses["409"] > 0
    outside_lost = "outside transaction: ['DeadlockDetected']" in result.notes
    assert api_lost or outside_lost, result
    assert "retry: 200" in result.notes
