"""Load shedding over real HTTP: sustained event-loop lag sheds only while there is
concurrency to shed (503 with Retry-After), a single user or a brief stall is never shed,
probes, metrics and static assets keep answering, and recovery is automatic."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest
from api_support import Account, assert_problem
from protection_support import requests_held

from updog.protection.shedding import PressureMonitor, rss_bytes

pytestmark = pytest.mark.db

LOOSE = {"rate_limit_api": "1000000/60"}


def test_a_single_user_is_never_shed_on_a_lagging_loop(serve_app: Any, account: Account) -> None:
    # Only the lag threshold is lowered: the window (5 s) and the floor (8) are the defaults.
    server = serve_app(throttle_profile="standard", shed_loop_lag_ms=300, **LOOSE)
    statuses = []
    with server.client(account.token) as c:
        statuses.append(c.get("/api/v1/funds").status_code)  # starts the sampler
        end = time.monotonic() + 7.5  # more than a whole window of stalls: sustained lag
        while time.monotonic() < end:
            statuses.append(c.get("/api/v1/test/block", params={"seconds": 0.4}).status_code)
            statuses.append(c.get("/api/v1/funds").status_code)
    snapshot = server.app.state.pressure.snapshot()
    assert set(statuses) == {200}, statuses
    # The loop's lag was judged sustained, yet one user (below the floor) was always served.
    assert snapshot["pressure"] == ["event_loop_lag"] and not snapshot["overloaded"]


@pytest.mark.slow
def test_sustained_lag_with_concurrency_sheds_then_recovers(
    serve_app: Any, account: Account
) -> None:
    server = serve_app(
        throttle_profile="standard",
        shed_loop_lag_ms=300,
        shed_loop_lag_exit_ms=100,
        shed_lag_window_seconds=2.0,
        shed_in_flight_floor=2,
        **LOOSE,
    )
    monitor = server.app.state.pressure
    stop = threading.Event()

    def stall() -> None:  # the loop stalls 0.4 s at a time, back to back
        with server.client(account.token) as s:
            while not stop.is_set():
                s.get("/api/v1/test/block", params={"seconds": 0.4})

    with server.client(account.token) as c:
        assert c.get("/api/v1/funds").status_code == 200  # starts the sampler
        time.sleep(2.5)  # a whole window observed
        with requests_held(server.url, account.token, 3, lambda: monitor.in_flight) as held:
            # Concurrency above the floor, and one stall of 1 s: brief, nobody is shed.
            assert c.get("/api/v1/test/block", params={"seconds": 1.0}).status_code == 200
            brief = [c.get("/api/v1/funds").status_code for _ in range(5)]
            blocker = threading.Thread(target=stall, daemon=True)
            blocker.start()
            try:
                deadline = time.monotonic() + 30
                while (shed := c.get("/api/v1/funds")).status_code != 503:
                    assert time.monotonic() < deadline, "sustained lag was never shed"
                    time.sleep(0.05)
                probes = [c.get(p) for p in ("/livez", "/readyz", "/metrics", "/static/ui/app.css")]
            finally:
                stop.set()
                blocker.join(30)
            # Recovery once the window's lag is below the exit threshold — with the held
            # requests still in flight, so it is the lag judgement that recovered.
            deadline = time.monotonic() + 30
            while (recovered := c.get("/api/v1/funds")).status_code == 503:
                assert time.monotonic() < deadline, "did not recover"
                time.sleep(0.1)
            after = monitor.snapshot()
        metrics = c.get("/metrics")
    assert brief == [200] * 5
    body = assert_problem(shed, 503, "OVERLOADED")
    assert "event_loop_lag" in body["detail"]
    assert int(shed.headers["retry-after"]) >= 1
    assert [p.status_code for p in probes] == [200] * 4  # probes and assets are never shed
    assert recovered.status_code == 200
    assert after["event_loop_lag_state"] == "accepting" and after["in_flight"] >= 3
    assert held == [200] * 3
    assert 'updog_shed_requests_total{reason="event_loop_lag"}' in metrics.text
    assert 'updog_shed_lag_transitions_total{state="shedding"} 1.0' in metrics.text
    assert 'updog_shed_lag_transitions_total{state="accepting"} 1.0' in metrics.text
    assert "updog_pressure_event_loop_lag_seconds" in metrics.text
    logged = "\n".join(server.logs.lines())
    assert "load_shedding_lag_sustained" in logged and "load_shedding_lag_recovered" in logged
    assert after["thresholds"]["event_loop_lag_ms"] == 300


def test_too_many_in_flight_sheds(serve_app: Any, account: Account) -> None:
    server = serve_app(throttle_profile="standard", shed_max_in_flight=1, **LOOSE)
    results: list[httpx.Response] = []

    def slow() -> None:
        with server.client(account.token) as c:
            results.append(c.post("/api/v1/test/slow?seconds=2", content=b"{}"))

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while server.app.state.pressure.in_flight < 2:
        assert time.monotonic() < deadline, "slow requests did not start"
        time.sleep(0.05)
    with server.client(account.token) as c:
        shed = c.get("/api/v1/funds")
        ready = c.get("/readyz")
    for t in threads:
        t.join(30)
    body = assert_problem(shed, 503, "OVERLOADED")
    assert "in_flight" in body["detail"]
    assert ready.status_code == 200  # probes are never shed
    assert sorted(r.status_code for r in results) == [201, 201]


def test_monitor_memory_threshold_and_validation() -> None:
    assert rss_bytes() > 0

    async def sample() -> tuple[list[str], list[str]]:
        monitor = PressureMonitor(
            lag=None, max_in_flight=0, in_flight_floor=0, max_db_waiters=0, max_rss=1
        )
        monitor.ensure()
        await asyncio.sleep(0.2)
        monitor.stop()
        alone = monitor.reasons()  # nothing else in flight: nothing to shed
        monitor.in_flight = 1
        return alone, monitor.reasons()

    assert asyncio.run(sample()) == ([], ["memory"])
    with pytest.raises(ValueError):
        PressureMonitor(max_rss=-1)
