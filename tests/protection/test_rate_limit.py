"""Tiered rate limits over real HTTP with the machine's Redis (and the in-memory store)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import Account, assert_problem

from updog.protection.clients import client_address
from updog.settings import Settings, SettingsError, parse_networks

pytestmark = [pytest.mark.db, pytest.mark.redis]

RATELIMIT = re.compile(r'^"(?P<name>[a-z]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def _ratelimit(r: httpx.Response) -> dict[str, Any]:
    m = RATELIMIT.match(r.headers["ratelimit"])
    assert m, r.headers["ratelimit"]
    return {"name": m["name"], "r": int(m["r"]), "t": int(m["t"])}


def test_settings_profiles() -> None:
    assert Settings().throttle_profile == "off" and not Settings().throttled
    env = {"UPDOG_DATA_DIR": "/tmp/updog-settings-test", "UPDOG_SECRET_KEY": "k" * 40}
    assert Settings.from_env(env).throttled
    assert not Settings.from_env({**env, "UPDOG_THROTTLE_PROFILE": "off"}).throttled
    assert Settings.from_env({**env, "UPDOG_RATE_LIMIT_API": "7/9"}).rate_limit_api == "7/9"
    for bad in ({"rate_limit_api": "100"}, {"rate_limit_auth": "0/60"}, {"throttle_profile": "x"}):
        with pytest.raises(SettingsError):
            Settings(**bad)
    with pytest.raises(SettingsError):
        Settings(trusted_proxies="not-an-ip")


def test_101st_api_request_in_a_window_is_refused(
    serve_app: Any, account: Account, redis_url: str, prefix: str
) -> None:
    server = serve_app(throttle_profile="standard", redis_url=redis_url, redis_key_prefix=prefix)
    with server.client(account.token) as c:
        seen = []
        for i in range(100):
            r = c.get("/api/v1/funds", params={"limit": 1})
            assert r.status_code == 200, (i, r.text)
            assert r.headers["ratelimit-policy"] == '"api";q=100;w=60'
            seen.append(_ratelimit(r))
        refused = c.get("/api/v1/funds")
        probe = c.get("/livez")
    assert [s["r"] for s in seen] == list(range(99, -1, -1))
    assert all(s["name"] == "api" and 0 < s["t"] <= 60 for s in seen)
    body = assert_problem(refused, 429, "RATE_LIMITED")
    assert "api" in body["detail"]
    retry_after = refused.headers["retry-after"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 61
    assert refused.headers["ratelimit-policy"] == '"api";q=100;w=60'
    assert _ratelimit(refused)["r"] == 0
    assert probe.status_code == 200 and "ratelimit" not in probe.headers  # probes exempt
    with server.client() as c:
        text = c.get("/metrics").text
    assert 'updog_rate_limited_total{tier="api"} 1.0' in text


@pytest.mark.parametrize("store", ["redis", "memory"])
def test_retry_after_is_enough(
    serve_app: Any, account: Account, redis_url: str, prefix: str, store: str
) -> None:
    server = serve_app(
        throttle_profile="standard",
        rate_limit_api="3/2",
        redis_url=redis_url if store == "redis" else None,
        redis_key_prefix=prefix,
    )
    with server.client(account.token) as c:
        statuses = [c.get("/api/v1/funds").status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = c.get("/api/v1/funds")
        assert refused.status_code == 429
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 3
        time.sleep(wait)  # exactly what the server said: admitted
        assert c.get("/api/v1/funds").status_code == 200


def test_limits_are_per_identity_and_anonymous_per_address(
    serve_app: Any, account: Account, other_account: Account, redis_url: str, prefix: str
) -> None:
    server = serve_app(
        throttle_profile="standard",
        rate_limit_api="2/60",
        redis_url=redis_url,
        redis_key_prefix=prefix,
    )
    with server.client(account.token) as a, server.client(other_account.token) as b:
        assert [a.get("/api/v1/funds").status_code for _ in range(3)] == [200, 200, 429]
        assert [b.get("/api/v1/funds").status_code for _ in range(2)] == [200, 200]
    # random bearer tokens do not buy fresh buckets: they count as the anonymous address
    codes = []
    for _ in range(3):
        with server.client(f"updog_{uuid.uuid4().hex}") as c:
            codes.append(c.get("/api/v1/funds").status_code)
    assert codes == [401, 401, 429]


def test_auth_tier_keys_forwarded_address_only_from_trusted_proxy(
    serve_app: Any, redis_url: str, prefix: str
) -> None:
    login = {"email": "nobody@example.com", "password": "wrong password"}
    trusting = serve_app(
        throttle_profile="standard",
        rate_limit_auth="2/300",
        trusted_proxies="127.0.0.1/32",
        redis_url=redis_url,
        redis_key_prefix=prefix + "-t",
    )
    with trusting.client() as c:
        first = [
            c.post("/api/v1/auth/login", json=login, headers={"X-Forwarded-For": "198.51.100.7"})
            for _ in range(3)
        ]
        other = c.post("/api/v1/auth/login", json=login, headers={"X-Forwarded-For": "192.0.2.1"})
        # a spoofed left-most hop is ignored: the proxy-appended address counts
        spoofed = c.post(
            "/api/v1/auth/login",
            json=login,
            headers={"X-Forwarded-For": "203.0.113.50, 198.51.100.7"},
        )
    assert [r.status_code for r in first] == [401, 401, 429]
    assert first[0].headers["ratelimit-policy"] == '"api";q=100;w=60, "auth";q=2;w=300'
    assert _ratelimit(first[1]) == {"name": "auth", "r": 0, "t": _ratelimit(first[1])["t"]}
    assert other.status_code == 401
    assert spoofed.status_code == 429


def test_sign_ins_are_limited_per_account_and_per_address(
    serve_app: Any, redis_url: str, prefix: str
) -> None:
    """OWASP: both. Many addresses cannot try one account more than the account's limit, and
    one address (a shared proxy) can still sign in people whose accounts are not attacked."""
    server = serve_app(
        throttle_profile="standard",
        rate_limit_auth="30/300",
        rate_limit_auth_account="3/300",
        trusted_proxies="127.0.0.1/32",
        redis_url=redis_url,
        redis_key_prefix=prefix,
    )
    victim = {"email": f"victim-{prefix}@example.com", "password": "guess"}
    with server.client() as c:
        spread = [
            c.post(
                "/api/v1/auth/login", json=victim, headers={"X-Forwarded-For": f"198.51.100.{i}"}
            )
            for i in range(1, 5)
        ]
        shared = [
            c.post(
                "/api/v1/auth/login",
                json={"email": f"user{i}-{prefix}@example.com", "password": "x"},
                headers={"X-Forwarded-For": "192.0.2.10"},
            )
            for i in range(6)
        ]
        form = c.get("/sign-in", headers={"X-Forwarded-For": "203.0.113.9"})
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token
        web = c.post(
            "/sign-in",
            data={"email": victim["email"], "password": "guess", "csrf_token": token.group(1)},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
    assert [r.status_code for r in spread] == [401, 401, 401, 429]
    body = assert_problem(spread[3], 429, "RATE_LIMITED")
    assert "this account" in body["detail"] and int(spread[3].headers["retry-after"]) >= 1
    assert '"auth_account";q=3;w=300' in spread[3].headers["ratelimit-policy"]
    assert [r.status_code for r in shared] == [401] * 6  # six people behind one proxy
    assert web.status_code == 429 and "Too many sign-in attempts" in web.text
    assert int(web.headers["retry-after"]) >= 1


def test_client_address_believes_only_trusted_proxies() -> None:
    # (uvicorn's own proxy_headers trusts 127.0.0.1 by default, so the untrusted case is
    # checked on the scope itself rather than through a loopback server.)
    trusted = parse_networks("10.0.0.0/8")

    def scope(peer: str, xff: str) -> dict[str, Any]:
        return {"client": (peer, 1234), "headers": [(b"x-forwarded-for", xff.encode())]}

    assert client_address(scope("10.0.0.2", "198.51.100.7"), trusted) == "198.51.100.7"
    assert client_address(scope("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9"), trusted) == (
        "198.51.100.7"
    )
    assert client_address(scope("203.0.113.9", "198.51.100.7"), trusted) == "203.0.113.9"
    assert client_address(scope("10.0.0.2", "garbage"), trusted) == "10.0.0.2"
    assert client_address(scope("10.0.0.2", "198.51.100.7"), ()) == "10.0.0.2"


def test_simulation_tier_counts_on_top_of_api(
    serve_app: Any, account: Account, redis_url: str, prefix: str
) -> None:
    server = serve_app(
        throttle_profile="standard",
        rate_limit_simulation="2/3600",
        redis_url=redis_url,
        redis_key_prefix=prefix,
    )
    url = f"/api/v1/funds/{uuid.uuid4()}/simulations"  # 404, but counted like any attempt
    with server.client(account.token) as c:
        rs = [c.post(url, json={"runs": 100, "seed": 1}) for _ in range(3)]
        read = c.get("/api/v1/funds")
    assert [r.status_code for r in rs] == [404, 404, 429]
    assert _ratelimit(rs[1]) == {"name": "simulation", "r": 0, "t": _ratelimit(rs[1])["t"]}
    assert 3000 < int(rs[2].headers["retry-after"]) <= 3601
    assert read.status_code == 200 and _ratelimit(read)["name"] == "api"


def test_redis_down_fails_open_for_api_and_closed_for_auth(
    serve_app: Any, account: Account, prefix: str
) -> None:
    server = serve_app(
        throttle_profile="standard",
        redis_url="redis://127.0.0.1:1/0",  # nothing listens there
        redis_key_prefix=prefix,
    )
    with server.client(account.token) as c:
        read = c.get("/api/v1/funds")
        sim = c.post(f"/api/v1/funds/{uuid.uuid4()}/simulations", json={"runs": 100})
        login = c.post("/api/v1/auth/login", json={"email": "a@b.example", "password": "x"})
        metrics = c.get("/metrics").text
    assert read.status_code == 200
    assert_problem(sim, 503, "RATE_LIMIT_UNAVAILABLE")
    body = assert_problem(login, 503, "RATE_LIMIT_UNAVAILABLE")
    assert "auth" in body["detail"] and int(login.headers["retry-after"]) >= 1
    assert 'updog_rate_limit_store_errors_total{outcome="allowed",tier="api"}' in metrics
    assert 'updog_rate_limit_store_errors_total{outcome="refused",tier="auth"}' in metrics


# --------------------------------------------------------------------------- two processes


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_processes(database_url: str, redis_url: str, prefix: str, db: Any) -> Iterator[list[str]]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "UPDOG_DATA_DIR": str(Path(os.environ.get("TMPDIR", "/tmp")) / f"updog-{prefix}"),
        "UPDOG_SECRET_KEY": "s" * 48,
        "UPDOG_THROTTLE_PROFILE": "standard",
        "UPDOG_RATE_LIMIT_API": "10/60",
        "UPDOG_REDIS_KEY_PREFIX": prefix,
    }
    script = Path(__file__).with_name("run_server.py")
    procs, urls = [], []
    try:
        for _ in range(2):
            port = _free_port()
            procs.append(subprocess.Popen([sys.executable, str(script), str(port)], env=env))
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for proc, url in zip(procs, urls, strict=True):
            while True:
                assert proc.poll() is None, "server process exited"
                assert time.monotonic() < deadline, "server process did not start"
                try:
                    if httpx.get(url + "/livez", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.mark.slow
def test_two_server_processes_share_one_redis_count(
    two_processes: list[str], account: Account
) -> None:
    headers = {"Authorization": f"Bearer {account.token}"}
    statuses = []
    with httpx.Client(headers=headers, timeout=30) as c:
        for i in range(12):  # alternate between the processes
            statuses.append(c.get(two_processes[i % 2] + "/api/v1/funds").status_code)
    assert statuses == [200] * 10 + [429, 429]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/api/v1/auth/login", {"api", "auth"}),
        ("POST", "/sign-in", {"api", "auth"}),
        ("GET", "/sign-in", {"api"}),
        ("POST", "/api/v1/funds/abc/simulations", {"api", "simulation"}),
        ("POST", "/funds/abc/simulations", {"api", "simulation"}),
        ("GET", "/api/v1/funds/abc/simulations", {"api"}),
        ("GET", "/livez", set()),
        ("GET", "/static/ui/app.js", set()),
    ],
)
def test_tiers_cover_the_api_and_the_web_forms(method: str, path: str, expected: set[str]) -> None:
    from updog.protection.rate_limit import tiers_from
    from updog.settings import Settings

    tiers = tiers_from(Settings(throttle_profile="standard"))
    assert {t.name for t in tiers if t.applies(method, path)} == expected
