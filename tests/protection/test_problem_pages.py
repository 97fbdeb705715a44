"""Errors for browsers over real HTTP: a request whose ``Accept`` prefers HTML (a browser
navigation) gets an HTML page for every error status — the shedder's 503, the rate limiter's
429, a 404, a 422, a 500 — with the status and headers kept, the retry time stated, every
value escaped and the UI's CSP; API clients keep problem+json."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from api_support import Account, assert_problem
from protection_support import requests_held

pytestmark = pytest.mark.db

#: Chromium's and Firefox's Accept for a navigation.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
#: Accept values of API clients: httpx's default (*/*), JSON, problem+json, HTML ranked lower.
API_CLIENTS = ("*/*", "application/json", "application/problem+json", "text/html;q=0.5, */*")
LOOSE = {"rate_limit_api": "1000000/60"}


def html_page(r: httpx.Response, status: int) -> str:
    """Assert ``r`` is the HTML error page of ``status``; return its text."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "accept" in r.headers["vary"].lower()
    csp = r.headers["content-security-policy"]
    assert "style-src 'self';" in csp and "unsafe-inline" not in csp
    html = r.text
    assert html.startswith("<!doctype html>") and '<html lang="en">' in html
    assert "<style" not in html and " style=" not in html  # the CSP forbids inline styles
    assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []  # and inline scripts
    assert '<main id="main"' in html and html.count("<h1>") == 1
    assert r.headers["x-request-id"] in html  # the reference to quote
    assert "Traceback" not in html and '"status"' not in html  # no raw JSON
    return html


def api_clients(c: httpx.Client, path: str) -> list[httpx.Response]:
    """``GET path`` as each API client, and once with no Accept at all."""
    out = [c.get(path, headers={"Accept": accept}) for accept in API_CLIENTS]
    bare = c.build_request("GET", path)
    del bare.headers["Accept"]
    return [*out, c.send(bare)]


def test_shed_request_is_a_page_with_the_retry_time(serve_app: Any, account: Account) -> None:
    server = serve_app(throttle_profile="standard", shed_max_in_flight=1, **LOOSE)
    in_flight = lambda: server.app.state.pressure.in_flight  # noqa: E731
    with requests_held(server.url, account.token, 2, in_flight), server.client(account.token) as c:
        api = c.get("/api/v1/funds", headers=BROWSER)
        web = c.get("/funds?view=all", headers=BROWSER)  # a page of the UI is shed too
        clients = api_clients(c, "/api/v1/funds")
    html = html_page(api, 503)
    assert api.headers["retry-after"] == "2"
    assert "<h1>Overloaded</h1>" in html
    assert "Please try again in 2 seconds." in html
    assert "The service is overloaded (in_flight); retry shortly." in html
    assert 'href="/api/v1/funds">Try again</a>' in html
    assert 'href="/funds?view=all">Try again</a>' in html_page(web, 503)
    for r in clients:
        assert_problem(r, 503, "OVERLOADED")
        assert r.headers["retry-after"] == "2" and "accept" in r.headers["vary"].lower()


def test_rate_limited_request_is_a_page_with_the_retry_time(
    serve_app: Any, account: Account
) -> None:
    server = serve_app(throttle_profile="standard", rate_limit_api="2/60")
    with server.client(account.token) as c:
        assert [c.get("/api/v1/funds").status_code for _ in range(2)] == [200, 200]
        limited = c.get("/api/v1/funds", headers=BROWSER)
        clients = api_clients(c, "/api/v1/funds")
    html = html_page(limited, 429)
    seconds = int(limited.headers["retry-after"])
    assert 1 <= seconds <= 60
    assert f"Please try again in {seconds} second" in html
    assert limited.headers["ratelimit-policy"] == '"api";q=2;w=60'  # headers kept
    for r in clients:
        assert_problem(r, 429, "RATE_LIMITED")


def test_not_found_invalid_and_crash_are_pages_escaped(serve_app: Any, account: Account) -> None:
    server = serve_app()
    hostile = "/nowhere/<script>alert(1)</script>"
    with server.client(account.token) as c:
        missing = c.get(hostile, headers=BROWSER)
        invalid = c.get("/api/v1/funds", params={"limit": "<b>many</b>"}, headers=BROWSER)
        crash = c.get("/api/v1/test/crash", headers=BROWSER)
        missing_json = api_clients(c, hostile)
        invalid_json = c.get("/api/v1/funds", params={"limit": "<b>many</b>"})
    with server.client() as anonymous:
        unauthenticated = anonymous.get("/api/v1/funds", headers=BROWSER)
    html = html_page(missing, 404)
    assert "<h1>Not Found</h1>" in html
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Please try again" not in html and "Try again</a>" not in html  # nothing to wait for
    html = html_page(invalid, 422)
    assert "What to correct" in html and "<code>/query/limit</code>" in html
    assert "<b>" not in html
    html = html_page(crash, 500)
    assert "boom" not in html and "INTERNAL_ERROR" in html
    html = html_page(unauthenticated, 401)
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    for r in missing_json:
        assert_problem(r, 404, "NOT_FOUND")
    assert_problem(invalid_json, 422, "VALIDATION_FAILED")
