"""Redis outages under steady load: the protection layer recovers on its own (issue 11).

A private ``redis-server`` (never the machine's: this test kills it) serves the rate-limit
windows of a live app; sign-in attempts arrive steadily. While Redis is down, the ``auth``
tier fails closed (503 ``RATE_LIMIT_UNAVAILABLE``); once Redis is back, sign-ins are checked
again within the ``redis`` breaker's wait plus one trial call. The back-off it replaced pushed
its retry one second further on every refused request, so under ≥ 1 request a second Redis
was never asked again (still 503 67 s after it came back).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from services_support import unavailable

pytestmark = [pytest.mark.db, pytest.mark.redis, pytest.mark.chaos]

#: Seconds the breaker stays open in this test (the setting under test).
WAIT = 2.0
#: Seconds between sign-in attempts (steady load of several a second).
INTERVAL = 0.1


class PrivateRedis:
    """A ``redis-server`` on a fixed free port that the test can stop and start again."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not on the PATH (this test stops and restarts its own)")
    redis = PrivateRedis(binary)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def test_sign_ins_work_again_within_the_breaker_wait_after_redis_returns(
    serve_app: Any, private_redis: PrivateRedis
) -> None:
    server = serve_app(
        throttle_profile="standard",
        redis_url=private_redis.url,
        redis_breaker_wait_seconds=WAIT,
        rate_limit_auth="100000/300",
        rate_limit_api="100000/60",
    )
    log: list[tuple[float, int, str]] = []  # (time, status, code)
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            while not stop.is_set():
                r = client.post(
                    "/api/v1/auth/login", json={"email": "nobody@example.com", "password": "x"}
                )
                code = (
                    r.json().get("code", "")
                    if r.headers.get("content-type", "").endswith("json")
                    else ""
                )
                log.append((time.monotonic(), r.status_code, code))
                time.sleep(INTERVAL)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        assert log and all(status == 401 for _, status, _ in log), log[-5:]  # checked, refused

        private_redis.stop()
        down_at = time.monotonic()
        time.sleep(WAIT + 2.0)
        during = [(s, c) for t, s, c in log if t > down_at + 1.0]
        assert during and all((s, c) == (503, "RATE_LIMIT_UNAVAILABLE") for s, c in during)

        private_redis.start()
        back_at = time.monotonic()
        deadline = back_at + WAIT + 10.0
        recovered_at = None
        while time.monotonic() < deadline and recovered_at is None:
            recovered_at = next((t for t, s, _ in log if t > back_at and s == 401), None)
            time.sleep(0.05)
        time.sleep(1.0)  # and it stays recovered
    finally:
        stop.set()
        thread.join(15)
    assert recovered_at is not None, "sign-ins never reached the rate limiter again"
    # Within the breaker's wait plus one trial call (and a request interval), with slack.
    assert recovered_at - back_at <= WAIT + 3.0, recovered_at - back_at
    after = [s for t, s, _ in log if t > recovered_at]
    assert after and all(s == 401 for s in after)
