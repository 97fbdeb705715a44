"""Idempotency-Key over real HTTP with the real PostgreSQL: races, replays, conflicts."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import httpx
import pytest
from api_support import VALID_SPEC, Account, assert_problem

from updog.protection.idempotency import parse_key
from updog.store.repositories import purge_expired_idempotency_keys

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def server(serve_app: Any) -> Any:
    return serve_app()


def _fund_count(db: Any, name: str) -> int:
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM funds WHERE name = %s", (name,)).fetchone()
    return int(row["n"])


async def _burst(
    url: str, token: str, n: int, method: str, path: str, **kwargs: Any
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n + 5)
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        return list(
            await asyncio.gather(
                *(c.request(method, path, headers=headers, **kwargs) for _ in range(n))
            )
        )


def test_parse_key() -> None:
    assert parse_key("abc") == "abc"
    assert parse_key('"8e03978e-40d5-43e8-bc93-6894a57f9324"') == (
        "8e03978e-40d5-43e8-bc93-6894a57f9324"
    )
    assert parse_key("k" * 255) == "k" * 255
    for bad in ("", '""', "k" * 256, "has space", "tab\there", "ünï"):
        assert parse_key(bad) is None, bad


@pytest.mark.parametrize("round_", range(6))
def test_fifty_concurrent_identical_posts_create_one_fund(
    server: Any, account: Account, round_: int
) -> None:
    name = f"Race {round_} {uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    responses = asyncio.run(
        _burst(
            server.url,
            account.token,
            50,
            "POST",
            "/api/v1/funds",
            json={**VALID_SPEC, "name": name},
            headers={"Idempotency-Key": key},
        )
    )
    statuses = sorted({r.status_code for r in responses})
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code >= 500]
    assert _fund_count(server.database, name) == 1
    created = [r for r in responses if r.status_code == 201]
    assert created, statuses
    assert len({r.content for r in created}) == 1  # every 201 is the same bytes
    assert len({r.headers["location"] for r in created}) == 1
    originals = [r for r in created if "idempotent-replayed" not in r.headers]
    assert len(originals) <= 1
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "IDEMPOTENCY_KEY_IN_USE")
            assert r.headers["retry-after"] == "1"
    # afterwards, a retry replays the stored response byte for byte
    with server.client(account.token) as c:
        replay = c.post(
            "/api/v1/funds", json={**VALID_SPEC, "name": name}, headers={"Idempotency-Key": key}
        )
    assert replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == created[0].content
    for header in ("location", "etag", "content-type", "content-length"):
        assert replay.headers[header] == created[0].headers[header]
    assert replay.headers["x-request-id"] != created[0].headers["x-request-id"]
    assert _fund_count(server.database, name) == 1


def test_same_key_different_payload_is_422(server: Any, account: Account) -> None:
    key = str(uuid.uuid4())
    with server.client(account.token) as c:
        first = c.post("/api/v1/funds", json=VALID_SPEC, headers={"Idempotency-Key": key})
        other = c.post(
            "/api/v1/funds",
            json={**VALID_SPEC, "fund_size": 1},
            headers={"Idempotency-Key": key},
        )
        other_query = c.post("/api/v1/funds?x=1", json=VALID_SPEC, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    assert_problem(other, 422, "IDEMPOTENCY_KEY_REUSED")
    assert_problem(other_query, 422, "IDEMPOTENCY_KEY_REUSED")


def test_retry_while_first_in_flight_is_409(server: Any, account: Account) -> None:
    key = str(uuid.uuid4())
    name = uuid.uuid4().hex

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
            headers = {"Authorization": f"Bearer {account.token}", "Idempotency-Key": key}
            path = f"/api/v1/test/slow?seconds=1.5&name={name}"
            first = asyncio.create_task(c.post(path, content=b"{}", headers=headers))
            await asyncio.sleep(0.5)
            second = await c.post(path, content=b"{}", headers=headers)
            return await first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 201
    assert_problem(second, 409, "IDEMPOTENCY_KEY_IN_USE")
    assert second.headers["retry-after"] == "1"


def test_key_length_and_anonymous_and_other_identity(
    server: Any, account: Account, other_account: Account
) -> None:
    with server.client(account.token) as c:
        too_long = c.post("/api/v1/funds", json=VALID_SPEC, headers={"Idempotency-Key": "k" * 256})
        longest = c.post("/api/v1/funds", json=VALID_SPEC, headers={"Idempotency-Key": "k" * 255})
    assert_problem(too_long, 400, "IDEMPOTENCY_KEY_INVALID")
    assert longest.status_code == 201
    with server.client(other_account.token) as c:  # same key, other identity: its own scope
        theirs = c.post("/api/v1/funds", json=VALID_SPEC, headers={"Idempotency-Key": "k" * 255})
    assert theirs.status_code == 201 and "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != longest.json()["id"]
    with server.client() as c:  # anonymous: passed through, never stored
        anon = c.post("/api/v1/funds", json=VALID_SPEC, headers={"Idempotency-Key": "anon"})
    assert anon.status_code == 401


def test_large_body_in_many_messages_reaches_the_route_whole(server: Any, account: Account) -> None:
    body = bytes(range(256)) * 3000  # 768,000 bytes, streamed in 16 KB chunks
    name = uuid.uuid4().hex

    def chunks() -> Any:
        for i in range(0, len(body), 16_384):
            yield body[i : i + 16_384]

    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/octet-stream"}
    with server.client(account.token) as c:
        first = c.post(f"/api/v1/test/echo?name={name}", content=chunks(), headers=headers)
        again = c.post(f"/api/v1/test/echo?name={name}", content=body, headers=headers)
    assert first.status_code == 201
    assert first.json() == {"len": len(body), "sha256": hashlib.sha256(body).hexdigest(), "n": 1}
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"


def test_server_error_releases_the_key(server: Any, account: Account) -> None:
    name = uuid.uuid4().hex
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    answers = []
    for _ in range(3):  # a fresh connection each: uvicorn closes one after a 500
        with server.client(account.token) as c:
            answers.append(
                c.post(f"/api/v1/test/flaky?name={name}", content=b"{}", headers=headers)
            )
    failed, retried, replayed = answers
    assert failed.status_code == 500
    assert retried.status_code == 201 and retried.json() == {"n": 2}
    assert replayed.headers["idempotent-replayed"] == "true" and replayed.json() == {"n": 2}


def test_expired_keys_are_claimable_again_and_purged(server: Any, account: Account) -> None:
    key = str(uuid.uuid4())
    with server.client(account.token) as c:
        first = c.post("/api/v1/funds", json=VALID_SPEC, headers={"Idempotency-Key": key})
        with server.database.connection() as conn:
            conn.execute(
                "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' "
                "WHERE key = %s",
                (key,),
            )
        second = c.post(
            "/api/v1/funds", json={**VALID_SPEC, "name": "Other"}, headers={"Idempotency-Key": key}
        )
    assert first.status_code == second.status_code == 201
    assert "idempotent-replayed" not in second.headers
    with server.database.connection() as conn:
        row = conn.execute(
            "SELECT expires_at - created_at AS ttl FROM idempotency_keys WHERE key = %s", (key,)
        ).fetchone()
        assert row["ttl"].total_seconds() == pytest.approx(86_400, abs=5)
        conn.execute(
            "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = %s",
            (key,),
        )
        assert purge_expired_idempotency_keys(conn) >= 1
        gone = conn.execute("SELECT 1 FROM idempotency_keys WHERE key = %s", (key,)).fetchone()
    assert gone is None


def test_creating_routes_document_the_idempotency_key(server: Any) -> None:
    doc = httpx.get(f"{server.url}/api/v1/openapi.json").json()
    routes = [
        ("/api/v1/funds", "post"),
        ("/api/v1/funds/{fund_id}/publish", "post"),
        ("/api/v1/funds/{fund_id}/simulations", "post"),
    ]
    for path, method in routes:
        params = doc["paths"][path][method].get("parameters", [])
        header = [p for p in params if p["name"] == "Idempotency-Key" and p["in"] == "header"]
        assert header and header[0]["required"] is False, (path, params)
