"""Probes and graceful shutdown of a real ``updog serve`` process (SPEC §6 practice 4).

The server runs the real app (plus a slow test route, ``_slow_app``) against this session's
PostgreSQL. With slow requests in flight and an idle event stream open, SIGTERM must: fail
``/readyz`` at once, answer new requests 503 with ``Connection: close``, let the in-flight
requests finish with 200, end the event stream, and exit 0 within the grace period.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.db

HERE = Path(__file__).parent
GRACE = 12.0
SLOW = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _updog() -> str:
    return str(Path(sys.executable).with_name("updog"))


def _wait_ready(base: str, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"serve did not become ready (exit {proc.returncode}):\n{err[-3000:]}")
        time.sleep(0.2)


def test_sigterm_drains_in_flight_requests_and_exits_zero(fresh_database_url: str) -> None:
    from api.api_support import make_account
    from updog.store.db import Database

    data_dir = Path(tempfile.mkdtemp(prefix="updog-test-drain-"))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "UPDOG_DATA_DIR": str(data_dir),
        "UPDOG_SHUTDOWN_GRACE_PERIOD": str(GRACE),
        "UPDOG_THROTTLE_PROFILE": "off",
        "UPDOG_INPROCESS_WORKER": "off",
        "UPDOG_SYNC_RUNS_LIMIT": "100",
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [_updog(), "serve", "--port", str(port), "--app", "_slow_app:create_app"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_ready(base, proc)
        assert httpx.get(base + "/startupz").status_code == 200
        assert httpx.get(base + "/livez").status_code == 200

        # an idle event stream: a queued simulation nobody computes (no worker)
        with Database(fresh_database_url, min_size=0, max_size=1) as database:
            account = make_account(database, "Drain Ventures", "analyst")
        api = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {account.token}"}, timeout=30
        )
        spec = {
            "name": "Drain Fund",
            "fund_size": 50_000_000,
            "vintage_year": 2025,
            "model_inputs_as_of": "2025-01-01",
        }
        fund = api.post("/api/v1/funds", json=spec)
        assert fund.status_code == 201, fund.text
        fid = fund.json()["id"]
        published = api.post(f"/api/v1/funds/{fid}/publish")
        assert published.status_code == 200, published.text
        sim = api.post(f"/api/v1/funds/{fid}/simulations", json={"runs": 1000, "seed": 1})
        assert sim.status_code == 202, sim.text
        events_url = f"/api/v1/simulations/{sim.json()['id']}/events"
        stream_done: dict[str, Any] = {}

        def read_stream() -> None:
            with api.stream("GET", events_url) as r:
                stream_done["status"] = r.status_code
                for _ in r.iter_lines():
                    pass
            stream_done["ended"] = time.monotonic()

        slow_results: list[Any] = []

        def slow_request() -> None:
            try:
                r = httpx.get(base + "/test/slow", params={"seconds": SLOW}, timeout=30)
                slow_results.append(r.status_code)
            except httpx.HTTPError as exc:
                slow_results.append(repr(exc))

        threads = [threading.Thread(target=slow_request) for _ in range(3)]
        threads.append(threading.Thread(target=read_stream))
        for t in threads:
            t.start()
        time.sleep(1.0)  # the slow requests hold their connections now

        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)
        ready = httpx.get(base + "/readyz", timeout=5)
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["draining"]["status"] == "fail"
        assert httpx.get(base + "/livez", timeout=5).status_code == 200
        refused = httpx.get(base + "/api/v1/funds", timeout=5)
        assert refused.status_code == 503, refused.text
        assert refused.json()["code"] == "SHUTTING_DOWN"
        assert refused.headers["connection"] == "close"
        assert int(refused.headers["retry-after"]) >= 1

        for t in threads:
            t.join(GRACE + 10)
        assert slow_results == [200, 200, 200]  # in-flight requests finished
        assert stream_done.get("status") == 200
        assert stream_done["ended"] - signalled < SLOW + 3  # the idle stream did not hold on

        _, err = proc.communicate(timeout=GRACE + 15)
        elapsed = time.monotonic() - signalled
        assert proc.returncode == 0, err[-3000:]
        assert elapsed < GRACE + 5, elapsed
        assert "Traceback" not in err
        api.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
