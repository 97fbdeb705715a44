"""Hostile request bodies are refused with a 4xx problem+json (never a 500), with the JSON
Pointer of the offending value where there is one."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from api_support import PROBLEM, VALID_SPEC, Account, LiveServer, assert_problem

pytestmark = pytest.mark.db

JSON = {"Content-Type": "application/json"}


def post_raw(
    client: httpx.Client,
    body: bytes | str,
    headers: dict[str, str] | None = None,
    path: str = "/api/v1/funds",
) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return client.post(path, content=content, headers=headers if headers is not None else JSON)


@pytest.mark.parametrize(
    "literal,path",
    [
        ("NaN", "/fund_size"),
        ("Infinity", "/fund_size"),
        ("-Infinity", "/fund_size"),
        ("1e999", "/fund_size"),
        ("-1e999", "/fund_size"),
    ],
)
def test_non_finite_numbers(client: httpx.Client, literal: str, path: str) -> None:
    body = f'{{"name": "x", "fund_size": {literal}}}'
    problem = assert_problem(post_raw(client, body), 422, "NON_FINITE_NUMBER")
    assert problem["errors"][0]["path"] == path


def test_non_finite_deep_path_and_all_reported(client: httpx.Client) -> None:
    body = (
        '{"name": "x", "stages": [{"name": "a"}, {"name": "b", "exit_rate": NaN}], '
        '"fees": {"tiers": [{"rate": 1e400}]}}'
    )
    problem = assert_problem(post_raw(client, body), 422, "NON_FINITE_NUMBER")
    assert {e["path"] for e in problem["errors"]} == {"/stages/1/exit_rate", "/fees/tiers/0/rate"}


def test_huge_integer_literal(client: httpx.Client) -> None:
    problem = assert_problem(
        post_raw(client, '{"fund_size": ' + "9" * 5000 + "}"), 422, "NUMBER_TOO_LONG"
    )
    assert problem["errors"][0]["path"] == "/fund_size"


def test_nul_in_strings_and_keys(client: httpx.Client) -> None:
    problem = assert_problem(
        client.post("/api/v1/funds", json={"name": "evil\x00name", "stages": [{"name": "a\x00"}]}),
        422,
        "NUL_IN_STRING",
    )
    assert {e["path"] for e in problem["errors"]} == {"/name", "/stages/0/name"}
    problem = assert_problem(post_raw(client, '{"a/b~\\u0000": 1}'), 422, "NUL_IN_STRING")
    assert problem["errors"][0]["path"] == "/a~1b~0\x00"


def test_body_too_large(client: httpx.Client) -> None:
    big = json.dumps({**VALID_SPEC, "padding": "x" * 2_000_000})
    assert_problem(post_raw(client, big), 413, "BODY_TOO_LARGE")


def test_body_too_large_chunked(client: httpx.Client) -> None:
    def chunks():  # no Content-Length: the streamed bytes are counted
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}'

    r = client.post("/api/v1/funds", content=chunks(), headers=JSON)
    assert_problem(r, 413, "BODY_TOO_LARGE")


def test_deep_nesting(client: httpx.Client) -> None:
    deep = "[" * 10_000 + "]" * 10_000
    assert_problem(post_raw(client, f'{{"name": "x", "stages": {deep}}}'), 422, "NESTING_TOO_DEEP")
    medium = "[" * 100 + "]" * 100
    problem = assert_problem(post_raw(client, f'{{"stages": {medium}}}'), 422, "NESTING_TOO_DEEP")
    assert problem["errors"][0]["path"].startswith("/stages/0/0")


def test_long_list(client: httpx.Client) -> None:
    body = json.dumps({"name": "x", "sectors": [0] * 100_000})
    problem = assert_problem(post_raw(client, body), 422, "LIST_TOO_LONG")
    assert problem["errors"][0]["path"] == "/sectors"


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "multipart/form-data; boundary=x",
    ],
)
def test_wrong_content_type(client: httpx.Client, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = client.post("/api/v1/funds", content=json.dumps(VALID_SPEC).encode(), headers=headers)
    assert_problem(r, 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00garbage\x81",
        b"{not json",
        b"",
        b"   ",
        b'{"a": 1} trailing',
        b'{"a": 01}',
        bytes(range(256)),
    ],
)
def test_garbage_bytes(client: httpx.Client, raw: bytes) -> None:
    assert_problem(post_raw(client, raw), 400, "INVALID_JSON")


def test_hostile_bodies_on_every_json_route(live: LiveServer, client: httpx.Client) -> None:
    fid = client.post("/api/v1/funds", json=VALID_SPEC).json()["id"]
    etag = client.get(f"/api/v1/funds/{fid}").headers["etag"]
    client.post(f"/api/v1/funds/{fid}/publish").raise_for_status()
    targets = [
        ("PUT", f"/api/v1/funds/{fid}/draft", {**JSON, "If-Match": etag}),
        ("POST", f"/api/v1/funds/{fid}/simulations", JSON),
        ("POST", "/api/v1/auth/login", JSON),
    ]
    bodies = [
        b'{"runs": NaN}',
        b'{"runs": 1e999}',
        b'{"x": "\\u0000"}',
        b"\xff",
        b"[" * 5000,
        b'{"runs": 1000, "seed": ' + b"1" * 200 + b"}",
    ]
    for method, path, headers in targets:
        for raw in bodies:
            r = client.request(method, path, content=raw, headers=headers)
            assert 400 <= r.status_code < 500, (method, path, raw[:20], r.status_code, r.text)
            assert r.headers["content-type"].startswith(PROBLEM)
        r = client.request(
            method, path, content=b"{}", headers={**headers, "Content-Type": "text/xml"}
        )
        assert_problem(r, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_unknown_routes_and_methods_are_problems(client: httpx.Client) -> None:
    assert_problem(client.get("/api/v1/nope"), 404, "NOT_FOUND")
    assert_problem(client.delete("/api/v1/funds"), 405, "METHOD_NOT_ALLOWED")


def _raw_http(live: LiveServer, request: bytes) -> tuple[int, bytes]:
    """Send bytes httpx would refuse to send; return (status, raw response)."""
    host, port = live.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return int(data.split(b" ", 2)[1]), data


def test_hostile_headers(live: LiveServer, analyst: Account) -> None:
    status, raw = _raw_http(
        live,
        b"POST /api/v1/funds HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + analyst.token.encode() + b"\r\n"
        b"Content-Length: 99999999999\r\n\r\n{}",
    )
    assert status == 413, raw
    with live.client("x" * 10_000) as c:
        assert_problem(c.get("/api/v1/funds"), 401, "INVALID_TOKEN")
    with live.client() as c:
        r = c.get("/api/v1/funds", headers={"X-Request-ID": "bad id\twith spaces"})
        assert r.headers["x-request-id"] != "bad id\twith spaces"
        r = c.get("/livez", headers={"X-Request-ID": "client-chosen.id-42"})
        assert r.headers["x-request-id"] == "client-chosen.id-42"
