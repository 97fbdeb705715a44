"""Probes, metrics, structured logs, the docs page, sessions, and the 500 of last resort."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx
import pytest
from api_support import VALID_SPEC, Account, LiveServer, assert_problem, running

from updog.api.app import create_app
from updog.settings import Settings

pytestmark = pytest.mark.db


def test_livez(live: LiveServer) -> None:
    with live.client() as c:
        r = c.get("/livez")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_readyz_ok(live: LiveServer) -> None:
    with live.client() as c:
        r = c.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["migrations"]["status"] == "ok"


def test_readyz_fails_on_unmigrated_database(fresh_database_url: str, tmp_path: Any) -> None:
    from updog.store.db import Database

    with Database(fresh_database_url, min_size=0, max_size=2, timeout=2) as database:
        app = create_app(Settings(data_dir=tmp_path), database, configure_logs=False)
        with running(app) as url:
            r = httpx.get(url + "/readyz", timeout=10)
    assert r.status_code == 503
    assert r.json()["checks"]["database"]["status"] == "ok"
    assert r.json()["checks"]["migrations"]["status"] == "fail"
    assert r.headers["retry-after"]


def test_readyz_fails_when_database_unreachable(tmp_path: Any) -> None:
    from updog.store.db import Database

    database = Database(
        "postgresql://updog@127.0.0.1:1/nowhere",
        min_size=0,
        max_size=1,
        timeout=1,
        connect_timeout=1,
    )
    try:
        app = create_app(Settings(data_dir=tmp_path), database, configure_logs=False)
        with running(app) as url:
            r = httpx.get(url + "/readyz", timeout=10)
            assert httpx.get(url + "/livez").status_code == 200
            api = httpx.get(
                url + "/api/v1/funds", headers={"Authorization": "Bearer updog_" + "a" * 43}
            )
            assert_problem(api, 503, "DATABASE_UNAVAILABLE")
            assert api.headers["retry-after"] == "5"
    finally:
        database.close(timeout=1)
    assert r.status_code == 503
    assert r.json()["status"] == "fail"
    assert r.json()["checks"]["database"]["status"] == "fail"


def test_metrics(live: LiveServer, client: httpx.Client) -> None:
    fid = client.post("/api/v1/funds", json=VALID_SPEC).json()["id"]
    client.get(f"/api/v1/funds/{fid}")
    client.get("/api/v1/no-such-route")
    with live.client() as c:
        r = c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(
        r'updog_http_requests_total\{method="GET",route="/api/v1/funds/\{fund_id\}",'
        r'status="200"\} [1-9]',
        text,
    ), text
    assert 'route="/api/v1/funds",status="201"' in text
    assert 'route="<unmatched>",status="404"' in text
    assert "updog_http_request_duration_seconds_bucket" in text
    assert "updog_http_requests_in_flight" in text
    assert fid not in text  # concrete ids never become labels


def test_metrics_can_require_a_token(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, metrics_token="scrape-" + "x" * 24)
    app = create_app(settings, None, configure_logs=False)
    with running(app) as url:
        anonymous = httpx.get(url + "/metrics")
        wrong = httpx.get(url + "/metrics", headers={"Authorization": "Bearer nope"})
        right = httpx.get(
            url + "/metrics", headers={"Authorization": f"Bearer {settings.metrics_token}"}
        )
    assert_problem(anonymous, 401, "UNAUTHENTICATED")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert_problem(wrong, 401, "UNAUTHENTICATED")
    assert right.status_code == 200 and "updog_http_requests_total" in right.text
    assert "scrape-" not in repr(settings)  # a secret: never in logs


def test_log_lines_are_json_with_request_id(live: LiveServer, client: httpx.Client) -> None:
    rid = "trace-" + uuid.uuid4().hex
    r = client.post("/api/v1/funds", json={"fund_size": -1}, headers={"X-Request-ID": rid})
    assert r.status_code == 422 and r.headers["x-request-id"] == rid
    assert r.json()["request_id"] == rid
    # the access line is written after the last byte is sent: allow it a moment
    deadline = time.monotonic() + 5
    while True:
        records = [json.loads(line) for line in live.logs.lines() if line.strip()]
        mine = [rec for rec in records if rec.get("request_id") == rid]
        if any(rec["event"] == "request" for rec in mine) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert records, "no log lines captured"
    assert all("request_id" in rec and "event" in rec and "timestamp" in rec for rec in records)
    assert any(
        rec["event"] == "request" and rec["status"] == 422 and rec["route"] == "/api/v1/funds"
        for rec in mine
    ), mine


def test_docs_are_local(live: LiveServer) -> None:
    with live.client() as c:
        page = c.get("/docs")
        assert page.status_code == 200
        html = page.text
        csp = page.headers["content-security-policy"]
        assert "'sha256-" in csp and "unsafe-eval" not in csp
        assert "script-src 'self' 'sha256-" in csp and "'unsafe-inline'" not in csp.split(";")[1]
        assert "http://" not in html and "https://" not in html and "//cdn" not in html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
        assert any(a.endswith("swagger-ui.css") for a in assets)
        for asset in assets:
            assert asset.startswith("/"), asset
            assert c.get(asset).status_code == 200, asset
        spec = c.get("/api/v1/openapi.json")
        assert spec.status_code == 200
        doc = spec.json()
        assert "/api/v1/funds/{fund_id}/simulations" in doc["paths"]
        assert "FundSpecDraft" in doc["components"]["schemas"]


def test_session_login_csrf_logout(live: LiveServer, analyst: Account) -> None:
    with live.client() as c:
        bad = c.post("/api/v1/auth/login", json={"email": analyst.email, "password": "wrong"})
        assert_problem(bad, 401, "UNAUTHENTICATED")
        assert "updog_session" not in bad.cookies
        r = c.post(
            "/api/v1/auth/login", json={"email": analyst.email, "password": analyst.password}
        )
        assert r.status_code == 200, r.text
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=lax" in set_cookie
        csrf = r.json()["csrf_token"]
        me = c.get("/api/v1/auth/me")
        assert me.status_code == 200 and me.json()["email"] == analyst.email
        assert c.get("/api/v1/funds").status_code == 200
        assert_problem(c.post("/api/v1/funds", json=VALID_SPEC), 403, "CSRF_TOKEN_INVALID")
        ok = c.post("/api/v1/funds", json=VALID_SPEC, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 201, ok.text
        cookie = c.cookies["updog_session"]
        # A cross-site page could post to logout with the cookie but not read the token.
        assert_problem(c.post("/api/v1/auth/logout"), 403, "CSRF_TOKEN_INVALID")
        assert c.get("/api/v1/auth/me").status_code == 200  # still signed in
        logout = c.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
        assert logout.status_code == 204
        assert logout.headers["cache-control"] == "no-store"
    with live.client() as c:
        c.cookies.set("updog_session", cookie)
        assert_problem(c.get("/api/v1/funds"), 401, "UNAUTHENTICATED")
        c.cookies.set("updog_session", cookie[:-3] + "abc")
        assert_problem(c.get("/api/v1/funds"), 401, "UNAUTHENTICATED")


@pytest.mark.parametrize("exc", [RuntimeError("secret internals"), ZeroDivisionError()])
def test_unhandled_exception_is_a_bare_500(tmp_path: Any, exc: Exception) -> None:
    app = create_app(Settings(data_dir=tmp_path), None, configure_logs=False)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    with running(app) as url:
        r = httpx.get(url + "/boom", headers={"X-Request-ID": "boom-1"})
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["code"] == "INTERNAL_ERROR" and body["request_id"] == "boom-1"
    assert "secret internals" not in r.text and "Traceback" not in r.text
