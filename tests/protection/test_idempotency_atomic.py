"""Stripe's atomic phases on the routes that create resources: the route's effect and the
stored idempotent response commit in one transaction (or roll back together), over real
HTTP with the real PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from api_support import VALID_SPEC, Account

from updog.protection import idempotency

pytestmark = pytest.mark.db

#: Headers that are per request (or per response) and never replayed.
_PER_REQUEST = {"x-request-id", "date", "server", "ratelimit", "ratelimit-policy"}


@pytest.fixture(scope="module")
def server(serve_app: Any) -> Any:
    return serve_app()


def _key_row(db: Any, key: str) -> dict[str, Any] | None:
    with db.connection() as conn:
        row: dict[str, Any] | None = conn.execute(
            "SELECT status, response_status, completed_at FROM idempotency_keys WHERE key = %s",
            (key,),
        ).fetchone()
    return row


def _fund_rows(db: Any, name: str) -> list[dict[str, Any]]:
    with db.connection() as conn:
        return list(
            conn.execute("SELECT id, created_at FROM funds WHERE name = %s", (name,)).fetchall()
        )


def _assert_replay(first: httpx.Response, replay: httpx.Response) -> None:
    assert "idempotent-replayed" not in first.headers
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.status_code == first.status_code
    assert replay.content == first.content
    kept = {k: v for k, v in first.headers.items() if k not in _PER_REQUEST}
    again = {
        k: v
        for k, v in replay.headers.items()
        if k not in _PER_REQUEST and k != "idempotent-replayed"
    }
    assert again == kept


def _published_fund(c: httpx.Client) -> str:
    created = c.post("/api/v1/funds", json=VALID_SPEC)
    assert created.status_code == 201, created.text
    fid: str = created.json()["id"]
    published = c.post(f"/api/v1/funds/{fid}/publish")
    assert published.status_code == 200, published.text
    return fid


def test_create_fund_replays_and_commits_with_its_effect(server: Any, account: Account) -> None:
    name = f"Atomic {uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    body = {**VALID_SPEC, "name": name}
    with server.client(account.token) as c:
        first = c.post("/api/v1/funds", json=body, headers={"Idempotency-Key": key})
        replay = c.post("/api/v1/funds", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    _assert_replay(first, replay)
    funds = _fund_rows(server.database, name)
    assert len(funds) == 1
    row = _key_row(server.database, key)
    assert row is not None and row["status"] == "completed" and row["response_status"] == 201
    # now() is the transaction's start: equal timestamps = the same transaction
    assert row["completed_at"] == funds[0]["created_at"]


def test_publish_replays_byte_identical(server: Any, account: Account) -> None:
    key = str(uuid.uuid4())
    with server.client(account.token) as c:
        created = c.post("/api/v1/funds", json=VALID_SPEC)
        fid = created.json()["id"]
        first = c.post(f"/api/v1/funds/{fid}/publish", headers={"Idempotency-Key": key})
        replay = c.post(f"/api/v1/funds/{fid}/publish", headers={"Idempotency-Key": key})
        fund = c.get(f"/api/v1/funds/{fid}").json()
    assert first.status_code == 200, first.text
    _assert_replay(first, replay)
    assert fund["published_version"] == first.json()["published_version"]
    row = _key_row(server.database, key)
    assert row is not None and row["status"] == "completed"


def test_simulation_replays_byte_identical(server: Any, account: Account) -> None:
    key = str(uuid.uuid4())
    with server.client(account.token) as c:
        fid = _published_fund(c)
        path = f"/api/v1/funds/{fid}/simulations"
        first = c.post(path, json={"runs": 100}, headers={"Idempotency-Key": key})
        replay = c.post(path, json={"runs": 100}, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    _assert_replay(first, replay)
    with server.database.connection() as conn:
        n = conn.execute(
            "SELECT count(*) AS n FROM simulations WHERE fund_id = %s", (fid,)
        ).fetchone()["n"]
    assert n == 1


def test_queued_simulation_replays_byte_identical(serve_app: Any, account: Account) -> None:
    queued = serve_app(sync_runs_limit=100)
    key = str(uuid.uuid4())
    with queued.client(account.token) as c:
        fid = _published_fund(c)
        path = f"/api/v1/funds/{fid}/simulations"
        first = c.post(path, json={"runs": 200, "seed": 5}, headers={"Idempotency-Key": key})
        replay = c.post(path, json={"runs": 200, "seed": 5}, headers={"Idempotency-Key": key})
    assert first.status_code == 202, first.text
    _assert_replay(first, replay)
    with queued.database.connection() as conn:
        n = conn.execute(
            "SELECT count(*) AS n FROM jobs j JOIN simulations s ON s.id = j.simulation_id "
            "WHERE s.fund_id = %s",
            (fid,),
        ).fetchone()["n"]
    assert n == 1


def _failing_completion(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the stored response fail *after* it was written, inside the route's
    transaction (as a failed commit would): the whole transaction must roll back."""
    real = idempotency.complete_in
    calls: list[int] = []

    def fail(conn: Any, claim: Any, response: Any) -> None:
        real(conn, claim, response)
        calls.append(response.status_code)
        raise RuntimeError("injected failure of the idempotency record")

    monkeypatch.setattr(idempotency, "complete_in", fail)
    return calls


def test_failed_completion_rolls_back_the_new_fund_and_releases_the_key(
    server: Any, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"Rollback {uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    body = {**VALID_SPEC, "name": name}
    calls = _failing_completion(monkeypatch)
    with server.client(account.token) as c:
        failed = c.post("/api/v1/funds", json=body, headers={"Idempotency-Key": key})
    assert failed.status_code == 500 and calls == [201]
    assert _fund_rows(server.database, name) == []  # the effect rolled back with it
    assert _key_row(server.database, key) is None  # and the key was released
    monkeypatch.undo()
    with server.client(account.token) as c:  # so the same key can retry, once
        retried = c.post("/api/v1/funds", json=body, headers={"Idempotency-Key": key})
        replay = c.post("/api/v1/funds", json=body, headers={"Idempotency-Key": key})
    assert retried.status_code == 201
    _assert_replay(retried, replay)
    assert len(_fund_rows(server.database, name)) == 1


def test_failed_completion_rolls_back_the_publication(
    server: Any, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = str(uuid.uuid4())
    with server.client(account.token) as c:
        fid = c.post("/api/v1/funds", json=VALID_SPEC).json()["id"]
        calls = _failing_completion(monkeypatch)
        failed = c.post(f"/api/v1/funds/{fid}/publish", headers={"Idempotency-Key": key})
    assert failed.status_code == 500 and calls == [200]
    with server.client(account.token) as c:
        fund = c.get(f"/api/v1/funds/{fid}").json()
    assert fund["published_version"] is None and fund["status"] != "published"
    assert _key_row(server.database, key) is None
    monkeypatch.undo()
    with server.client(account.token) as c:
        retried = c.post(f"/api/v1/funds/{fid}/publish", headers={"Idempotency-Key": key})
        fund = c.get(f"/api/v1/funds/{fid}").json()
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert fund["published_version"] == retried.json()["published_version"]


def test_without_a_key_the_routes_work_as_before(server: Any, account: Account) -> None:
    with server.client(account.token) as c:
        fid = _published_fund(c)
        sim = c.post(f"/api/v1/funds/{fid}/simulations", json={"runs": 100, "seed": 2})
    assert sim.status_code == 201 and "idempotent-replayed" not in sim.headers
