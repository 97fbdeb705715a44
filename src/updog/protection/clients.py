"""Who is calling, cheaply enough to ask before routing: client address and identity key.

Rate limits, idempotency scopes and single-flight keys need "the identity" *before* FastAPI's
dependencies run. :class:`IdentityKeys` resolves the credential the same way
:func:`updog.http.auth.authenticate` does (bearer token, else signed session cookie) to the
user's id, with a small in-process TTL cache so a hot client costs one database lookup per
:data:`CACHE_TTL` seconds. It never *authorises* anything: the route still authenticates
(here a revoked credential only changes which bucket a request is counted in, for at most
:data:`CACHE_TTL` seconds). An unknown or malformed credential is treated as anonymous, so
sending random tokens does not buy fresh rate-limit buckets.

Bearer tokens go through a :class:`TokenCache` shared with
:func:`updog.http.auth.authenticate` when the app provides one (``settings.auth_cache_seconds``,
a few seconds): one database lookup per token and TTL serves both the rate-limit key and the
authentication of the request, and a token revoked elsewhere is refused within that TTL.

The client address is the socket peer, unless the peer is a configured trusted proxy: then
the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy (the left
part of that header is whatever the client wrote, so it is never believed).

Why our own code: the identity lives in our store and session format; no rate-limit library
knows it, and Starlette's ``ProxyHeadersMiddleware`` rewrites the scope for every layer
(we only want the protection layers to see the forwarded address, and only from proxies).
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from updog.http.auth import SESSION_COOKIE, TokenCache, unsign_session

#: Seconds a resolved (or unknown) credential is remembered.
CACHE_TTL = 30.0
#: Most credentials remembered (least recently used are dropped first).
CACHE_SIZE = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of request header ``name`` (lower-case bytes), decoded as latin-1."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def cookie(scope: Scope, name: str) -> str | None:
    """The value of cookie ``name`` in the request, if any."""
    raw = header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return None


def _in(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(scope: Scope, trusted: Sequence[Network]) -> str:
    """The caller's address: the peer, or what a trusted proxy forwarded (see module doc)."""
    client = scope.get("client")
    peer = str(client[0]) if client else "unknown"
    if not trusted or not _in(peer, trusted):
        return peer
    forwarded = header(scope, b"x-forwarded-for")
    if not forwarded:
        return peer
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from a proxy: fall back to the proxy itself
    return peer


def forwarded_https(scope: Scope, trusted: Sequence[Network]) -> bool:
    """True when the request came over HTTPS, directly or per a trusted proxy."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    client = scope.get("client")
    if client and trusted and _in(str(client[0]), trusted):
        proto = header(scope, b"x-forwarded-proto") or ""
        return proto.split(",")[0].strip().lower() == "https"
    return False


class IdentityKeys:
    """Map a request's credential to a stable key: ``user:<uuid>`` or ``None`` (anonymous).

    ``database`` is the store's ``Database``; ``secret_key`` signs session cookies.
    ``tokens``: the app's :class:`TokenCache`, shared with authentication (bearer tokens are
    then resolved through it rather than this object's own cache). ``clock`` is injectable
    for tests.
    """

    def __init__(
        self,
        database: Any,
        secret_key: str,
        *,
        ttl: float = CACHE_TTL,
        size: int = CACHE_SIZE,
        clock: Any = time.monotonic,
        tokens: TokenCache | None = None,
    ) -> None:
        if ttl <= 0 or size < 1:
            raise ValueError("ttl must be > 0 and size ≥ 1")
        self.tokens = tokens
        self.database = database
        self.secret_key = secret_key
        self.ttl = ttl
        self.size = size
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def credential(self, scope: Scope) -> tuple[str, str] | None:
        """``("token", value)`` or ``("session", cookie)`` or None."""
        auth = header(scope, b"authorization")
        if auth is not None:
            scheme, _, token = auth.partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and 0 < len(token) <= 256 and "\x00" not in token:
                return "token", token
            return None
        value = cookie(scope, SESSION_COOKIE)
        if value and len(value) <= 512:
            return "session", value
        return None

    async def key(self, scope: Scope) -> str | None:
        """The identity key of the request, resolving (and caching) its credential."""
        cred = self.credential(scope)
        if cred is None:
            return None
        if cred[0] == "token" and self.tokens is not None:
            token = cred[1]
            try:
                identity = await self.tokens.lookup(
                    token, lambda: run_in_threadpool(self._token_identity, token)
                )
            except Exception:
                return None  # the database is the route's problem; anonymous here
            return None if identity is None else f"user:{identity.user_id}"
        digest = hashlib.sha256(f"{cred[0]}:{cred[1]}".encode()).hexdigest()
        now = self.clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            self._cache.move_to_end(digest)
            return hit[1]
        try:
            resolved = await run_in_threadpool(self._resolve, *cred)
        except Exception:
            return None  # the database is the route's problem; count as anonymous here
        self._cache[digest] = (now + self.ttl, resolved)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return resolved

    def _token_identity(self, token: str) -> Any:
        from updog.store import repositories as repo

        with self.database.connection(autocommit=True) as conn:  # one statement
            return repo.identity_for_token(conn, token)

    def _resolve(self, kind: str, value: str) -> str | None:
        from updog.store import repositories as repo

        if kind == "token":
            with self.database.connection() as conn:
                identity = repo.identity_for_token(conn, value)
        else:
            secret = unsign_session(self.secret_key, value)
            if secret is None:
                return None
            with self.database.connection() as conn:
                identity = repo.identity_for_session(conn, secret)
        return None if identity is None else f"user:{identity.user_id}"
