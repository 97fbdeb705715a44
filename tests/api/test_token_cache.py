"""The in-process token → identity cache (``settings.auth_cache_seconds``): revocation is
honoured within the TTL, the cache expires, stays bounded and shares concurrent lookups."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import LiveServer, make_account, running

from updog.api.app import create_app
from updog.http.auth import TokenCache
from updog.settings import Settings
from updog.store import repositories as repo


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_ttl() -> None:
    clock = FakeClock()
    cache = TokenCache(5.0, clock=clock)
    assert cache.get("updog_a") == (False, None)
    cache.put("updog_a", "identity")
    cache.put("updog_b", None)  # "unknown" is remembered too
    assert cache.get("updog_a") == (True, "identity")
    assert cache.get("updog_b") == (True, None)
    clock.now += 4.9
    assert cache.get("updog_a") == (True, "identity")  # use does not extend the deadline
    clock.now += 0.1
    assert cache.get("updog_a") == (False, None)
    assert cache.get("updog_b") == (False, None)


def test_ttl_zero_disables_the_cache() -> None:
    cache = TokenCache(0)
    cache.put("updog_a", "identity")
    assert cache.get("updog_a") == (False, None)


def test_cache_is_bounded_lru() -> None:
    cache = TokenCache(60, size=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == (True, 1)  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") == (False, None)
    assert cache.get("a") == (True, 1) and cache.get("c") == (True, 3)
    with pytest.raises(ValueError):
        TokenCache(-1)


def test_concurrent_misses_share_one_lookup() -> None:
    cache = TokenCache(5.0)
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return "identity"

    async def main() -> list[Any]:
        return await asyncio.gather(*(cache.lookup("updog_x", load) for _ in range(5)))

    assert asyncio.run(main()) == ["identity"] * 5
    assert calls == 1
    assert cache.get("updog_x") == (True, "identity")


def test_failed_lookup_is_not_remembered() -> None:
    cache = TokenCache(5.0)

    async def boom() -> None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        asyncio.run(cache.lookup("updog_y", boom))
    assert cache.get("updog_y") == (False, None)


def _revoke(database: Any, user_id: Any) -> None:
    with database.connection() as conn:
        for token in repo.list_tokens(conn, user_id):
            repo.revoke_token(conn, token.id)


@pytest.mark.db
def test_revoked_token_refused_within_ttl(db: Any, tmp_path: Path) -> None:
    """What ``updog tokens revoke`` does (another process, another connection) is honoured
    by a running server within ``auth_cache_seconds``."""
    ttl = 1.0
    account = make_account(db, "Cache Capital", "viewer")
    app = create_app(Settings(data_dir=tmp_path, auth_cache_seconds=ttl), db, configure_logs=False)
    headers = {"Authorization": f"Bearer {account.token}"}
    with running(app) as url, httpx.Client(base_url=url, headers=headers, timeout=10) as c:
        assert c.get("/api/v1/funds").status_code == 200
        _revoke(db, account.user_id)
        revoked = time.monotonic()
        while (status := c.get("/api/v1/funds").status_code) == 200:
            assert time.monotonic() - revoked <= ttl + 0.5, "still accepted past the TTL"
            time.sleep(0.05)
        assert status == 401
        time.sleep(ttl + 0.1)  # and it stays refused (the refusal is cached, not the grant)
        r = c.get("/api/v1/funds")
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.db
def test_revoked_token_refused_at_once_without_cache(live: LiveServer) -> None:
    """The API tests run with ``auth_cache_seconds=0``: revocation is immediate."""
    assert live.settings.auth_cache_seconds == 0
    account = make_account(live.database, "Cache Capital", "viewer")
    with live.client() as c:
        headers = {"Authorization": f"Bearer {account.token}"}
        assert c.get("/api/v1/funds", headers=headers).status_code == 200
        _revoke(live.database, account.user_id)
        assert c.get("/api/v1/funds", headers=headers).status_code == 401


@pytest.mark.db
def test_last_used_is_recorded_at_most_once_a_minute(db: Any) -> None:
    account = make_account(db, "Cache Capital", "viewer")
    with db.connection() as conn:
        assert repo.identity_for_token(conn, account.token) is not None
    with db.connection() as conn:
        first = repo.list_tokens(conn, account.user_id)[0].last_used_at
        assert first is not None
    with db.connection(autocommit=True) as conn:
        identity = repo.identity_for_token(conn, account.token)
        assert identity is not None and identity.user_id == account.user_id
    with db.connection() as conn:
        assert repo.list_tokens(conn, account.user_id)[0].last_used_at == first
