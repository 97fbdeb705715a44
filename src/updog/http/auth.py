"""Who is calling, and may they? Bearer tokens, session cookies, roles.

Credentials, in order:

1. ``Authorization: Bearer <token>`` — a personal API token, resolved by the store
   (:func:`updog.store.repositories.identity_for_token`; only its SHA-256 is stored).
   The answer is kept ``settings.auth_cache_seconds`` (default 5 s) in the app's
   :class:`TokenCache`, shared with the rate-limit identity keys
   (:class:`updog.protection.clients.IdentityKeys`):
   a token revoked with ``updog tokens revoke`` (or expired, or whose user is disabled) is
   refused within that many seconds; 0 turns the cache off (refused at once).
2. The session cookie :data:`SESSION_COOKIE` set by ``POST /api/v1/auth/login``: the
   session secret signed with ``settings.secret_key`` (``itsdangerous``), resolved by
   :func:`~updog.store.repositories.identity_for_session` (idle 12 h, absolute 7 d, revocable).
   Unsafe methods (POST/PUT/PATCH/DELETE) made with the cookie must carry
   ``X-CSRF-Token`` (the value login returned, an HMAC of the session secret): the cookie is
   ``SameSite=Lax`` already, the token closes the remaining same-site gaps.

No credential, or a bad one → 401 problem+json with ``WWW-Authenticate: Bearer``
(RFC 6750 §3: ``error="invalid_token"`` when a token was sent but is unknown, revoked or
expired). A valid identity whose role is below the route's → 403 ``INSUFFICIENT_ROLE``.
Roles rank viewer < analyst < admin: viewer reads, analyst writes funds and runs
simulations, admin also manages users and flags.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from fastapi import Depends
from fastapi.security import APIKeyCookie, HTTPBearer
from itsdangerous import BadSignature, Signer
from starlette.requests import Request

from updog.http.deps import db_call, get_settings
from updog.http.problems import ProblemError
from updog.store import repositories as repo
from updog.store.repositories import Identity

#: Most bearer tokens :class:`TokenCache` remembers (least recently used dropped first).
TOKEN_CACHE_SIZE = 10_000
SESSION_COOKIE = "updog_session"
#: Absolute session lifetime (SPEC §5.1: 7 days; idle expiry of 12 h is the store's).
SESSION_LIFETIME = timedelta(days=7)
CSRF_HEADER = "X-CSRF-Token"
ROLE_RANK: dict[str, int] = {"viewer": 0, "analyst": 1, "admin": 2}
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Declared for OpenAPI only (auto_error=False: the checks below produce our problems).
_bearer_scheme = HTTPBearer(auto_error=False, description="Personal API token (updog_...).")
_cookie_scheme = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, description="Session.")


class TokenCache:
    """Bearer token → identity (or None: unknown, revoked, expired, user disabled), kept
    ``ttl`` seconds in process; thread-safe, LRU-bounded to ``size`` tokens.

    Only the SHA-256 of a token is kept as the key. ``ttl`` 0 disables the cache (every
    lookup misses). The bound it puts on revocation: a token revoked (``updog tokens revoke``,
    another process) or expired, or whose user is disabled, is refused by this process at most
    ``ttl`` seconds later — an entry is never served past its deadline, nor refreshed by use.
    """

    def __init__(
        self, ttl: float, *, size: int = TOKEN_CACHE_SIZE, clock: Any = time.monotonic
    ) -> None:
        if ttl < 0 or size < 1:
            raise ValueError("ttl must be ≥ 0 and size ≥ 1")
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[Any]] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str) -> tuple[bool, Any]:
        """``(True, identity_or_None)`` for a live entry, else ``(False, None)``."""
        if self.ttl <= 0:
            return False, None
        key = self._key(token)
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return False, None
            if hit[0] <= self.clock():
                del self._entries[key]
                return False, None
            self._entries.move_to_end(key)
            return True, hit[1]

    def put(self, token: str, identity: Any) -> None:
        """Remember what the store said about ``token`` (an identity, or None)."""
        if self.ttl <= 0:
            return
        key = self._key(token)
        with self._lock:
            self._entries[key] = (self.clock() + self.ttl, identity)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    async def lookup(self, token: str, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached answer for ``token``, else ``await load()`` (remembered when it does not
        raise). Concurrent misses for one token share a single ``load`` (event-loop side
        only), so a burst from a new client costs one database round trip, not one each."""
        hit, value = self.get(token)
        if hit:
            return value
        key = self._key(token)
        task = self._inflight.get(key)
        if task is None:

            async def run() -> Any:
                try:
                    value = await load()
                    self.put(token, value)
                    return value
                finally:
                    self._inflight.pop(key, None)

            task = asyncio.ensure_future(run())
            self._inflight[key] = task
        return await asyncio.shield(task)  # one waiter cancelled does not cancel the others

    def clear(self) -> None:
        """Forget every token (e.g. after revoking tokens through this process)."""
        with self._lock:
            self._entries.clear()


def _signer(secret_key: str) -> Signer:
    return Signer(secret_key, salt="updog.session")


def sign_session(secret_key: str, session_secret: str) -> str:
    """The cookie value for a session secret."""
    return _signer(secret_key).sign(session_secret.encode()).decode()


def unsign_session(secret_key: str, cookie: str) -> str | None:
    """The session secret inside a cookie value, or None when the signature is bad."""
    try:
        return _signer(secret_key).unsign(cookie.encode()).decode()
    except (BadSignature, UnicodeError):
        return None


def csrf_token(secret_key: str, session_secret: str) -> str:
    """The CSRF token bound to a session: HMAC-SHA256(secret_key, "csrf:" + secret)."""
    return hmac.new(
        secret_key.encode(), b"csrf:" + session_secret.encode(), hashlib.sha256
    ).hexdigest()


def unauthenticated(detail: str, *, invalid_token: bool = False) -> ProblemError:
    """A 401 problem with the ``WWW-Authenticate`` challenge of RFC 6750."""
    challenge = 'Bearer realm="updog"'
    if invalid_token:
        challenge += ', error="invalid_token"'
    return ProblemError(
        401,
        "INVALID_TOKEN" if invalid_token else "UNAUTHENTICATED",
        detail,
        headers={"WWW-Authenticate": challenge},
    )


async def _token_identity(request: Request, token: str) -> Identity | None:
    """The store's answer for ``token``, through the app's token cache when it has one."""
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    if cache is None:
        return await db_call(request, repo.identity_for_token, token)
    identity = await cache.lookup(token, lambda: db_call(request, repo.identity_for_token, token))
    return identity if isinstance(identity, Identity) else None


def check_csrf(request: Request, session_secret: str) -> None:
    """Demand the session's CSRF token in :data:`CSRF_HEADER` (an unsafe request made with the
    session cookie: a cross-site page cannot read the token, so it cannot forge the request —
    OWASP CSRF Prevention Cheat Sheet, synchronizer token). Raises a 403 problem."""
    sent = request.headers.get(CSRF_HEADER, "")
    expected = csrf_token(get_settings(request).secret_key, session_secret)
    if not hmac.compare_digest(sent, expected):
        raise ProblemError(
            403,
            "CSRF_TOKEN_INVALID",
            f"Writes with a session cookie need the {CSRF_HEADER} header from login.",
        )


async def authenticate(request: Request) -> Identity:
    """Resolve the caller (cached on ``request.state``); raises 401/403 problems."""
    cached = getattr(request.state, "identity", None)
    if isinstance(cached, Identity):
        return cached
    header = request.headers.get("authorization")
    identity: Identity | None
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("Use 'Authorization: Bearer <token>'.", invalid_token=True)
        if len(token) > 256 or "\x00" in token:
            raise unauthenticated("The token is invalid.", invalid_token=True)
        identity = await _token_identity(request, token)
        if identity is None:
            raise unauthenticated("The token is unknown, revoked or expired.", invalid_token=True)
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise unauthenticated("Authentication required: send a bearer token.")
        settings = get_settings(request)
        secret = unsign_session(settings.secret_key, cookie)
        identity = None
        if secret is not None:
            identity = await db_call(request, repo.identity_for_session, secret)
        if secret is None or identity is None:
            raise unauthenticated("The session has expired or was signed out; sign in again.")
        if request.method in _UNSAFE:
            check_csrf(request, secret)
    request.state.identity = identity
    return identity


def require_role(role: str) -> Callable[..., Awaitable[Identity]]:
    """A dependency that authenticates and demands at least ``role``.

    Raises ValueError at import time for an unknown role (a typo fails at start-up).
    """
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")
    needed = ROLE_RANK[role]

    async def dependency(
        request: Request,
        _bearer: object = Depends(_bearer_scheme),
        _cookie: object = Depends(_cookie_scheme),
    ) -> Identity:
        identity = await authenticate(request)
        if ROLE_RANK.get(identity.role, -1) < needed:
            raise ProblemError(
                403,
                "INSUFFICIENT_ROLE",
                f"This operation needs the {role} role; you have {identity.role}.",
            )
        return identity

    dependency.__name__ = f"require_{role}"
    return dependency


#: Shorthands for route signatures.
Viewer = Depends(require_role("viewer"))
Analyst = Depends(require_role("analyst"))
Admin = Depends(require_role("admin"))
