"""Tiered rate limits per identity, with the headers of draft-ietf-httpapi-ratelimit-headers.

SPEC §6 practice 1. Tiers (counts per window, configurable in :class:`~updog.settings.Settings`):

========== ============== ================================= ==========================
tier       default        applies to                        when the store is down
========== ============== ================================= ==========================
api        100 / 60 s     every request but probes, metrics  fail **open** (admitted)
                          and static assets
simulation 10 / 3600 s    ``POST /api/v*/funds/{id}/simulations`` fail **closed** (503)
                          and the web form's ``POST /funds/{id}/simulations``
auth       30 / 300 s     ``POST /api/v*/auth/login``,      fail **closed** (503)
                          ``POST /sign-in`` (web form),
                          per client address
========== ============== ================================= ==========================

Sign-ins are also limited per account (``auth_account``, 5 / 300 s, :class:`AccountLimiter`,
called by the sign-in routes, which know the email), so neither many addresses nor one shared
address can try passwords fast.

A request counts against every tier that applies (a simulation also spends an ``api``
request). The key is the identity (``user:<uuid>``, see :class:`~.clients.IdentityKeys`),
or ``ip:<address>`` for anonymous callers (a forwarded address only from a trusted proxy).

**Algorithm: moving window** (a sliding log): at most ``count`` requests in *any*
``window`` seconds — so "the 101st request in a minute" is always refused, which neither a
fixed window (bursts of 2× at the boundary) nor GCRA (which refills continuously: 100
requests over 3 s leave room for 5 more) guarantee. Cost: one timestamp per admitted request
per key (≤ ``count`` entries). On Redis (:class:`RedisWindows`) the log is a sorted set and
trim-count-add-read is one Lua script run with the *server's* clock: atomic, one round trip,
shared by every process and instance, immune to clock skew between hosts. Without Redis the
logs are deques in process memory (:class:`MemoryWindows`).

Responses: an admitted request carries ``RateLimit-Policy`` (every applicable policy, e.g.
``"api";q=100;w=60``) and ``RateLimit`` for the policy with the least remaining
(``"api";r=42;t=17``: ``r`` remaining, ``t`` seconds until a slot frees). A refused one is
429 ``RATE_LIMITED`` problem+json with the same headers and an integer ``Retry-After`` ≥ 1:
the moment the oldest request leaves the window, rounded *up* past it, so a client that
waits that long is admitted (unless it raced others of the same identity).

Store failures (Redis down or slower than ``redis_timeout``) are counted in
``updog_rate_limit_store_errors_total{tier,outcome}``. Every Redis call runs under the
registry's ``redis`` circuit breaker (:mod:`updog.resilience.redis`): while it is OPEN
requests get the tier's fallback at once (``Retry-After`` = the breaker's remaining wait),
so a dead Redis costs a few timeouts, not one per request, and one trial call after
``redis_breaker_wait_seconds`` puts a recovered Redis back in use — whatever the load.

Why our own code rather than the ``limits`` library (which we tried first): its async
in-memory storage schedules an expiry sweep through ``asyncio.to_thread`` on every hit (a
thread-pool hop per request, competing with the database threads — the benchmark showed
it), and every check costs two calls (hit, then window stats) — two Redis round trips per
tier. The moving window itself is ~40 lines here, one call per tier. The tier table, identity
keys, trusted-proxy addresses, per-tier fail-open/closed, the structured-field headers and an
honest ``Retry-After`` would be ours anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.http.problems import send_problem
from updog.protection.clients import IdentityKeys, Network, client_address
from updog.resilience.breaker import CallNotPermittedError, CircuitBreaker
from updog.resilience.redis import redis_breaker
from updog.resilience.wiring import breakers_of
from updog.settings import Settings, parse_networks, parse_rate

#: Paths never limited (probes must answer under any load; metrics are scraped).
EXEMPT_PREFIXES: tuple[str, ...] = ("/livez", "/readyz", "/startupz", "/metrics", "/static/")
# The API's routes and the web UI's forms that do the same work share a tier.
_SIMULATION = re.compile(r"^(/api/v\d+)?/funds/[^/]+/simulations/?$")
_LOGIN = re.compile(r"^(/api/v\d+/auth/login|/sign-in)/?$")
#: ``Retry-After`` of a fail-closed refusal when the store failed without an open breaker.
STORE_RETRY_AFTER = 5


@dataclass(frozen=True, slots=True)
class Tier:
    """One policy: ``count`` requests per ``window`` seconds for matching requests."""

    name: str
    count: int
    window: int
    fail_open: bool
    applies: Callable[[str, str], bool]

    def __post_init__(self) -> None:
        if self.count < 1 or self.window < 1:
            raise ValueError(f"tier {self.name}: count and window must be ≥ 1")

    @property
    def policy(self) -> str:
        """``"api";q=100;w=60`` (RFC 8941 structured-field item)."""
        return f'"{self.name}";q={self.count};w={self.window}'


def _any(method: str, path: str) -> bool:
    return not path.startswith(EXEMPT_PREFIXES)


def _simulation(method: str, path: str) -> bool:
    return method == "POST" and _SIMULATION.match(path) is not None


def _login(method: str, path: str) -> bool:
    return method == "POST" and _LOGIN.match(path) is not None


def tiers_from(settings: Settings) -> tuple[Tier, ...]:
    """The three tiers of SPEC §6.1 with the counts and windows of ``settings``."""
    return (
        Tier("api", *parse_rate(settings.rate_limit_api), fail_open=True, applies=_any),
        Tier(
            "simulation",
            *parse_rate(settings.rate_limit_simulation),
            fail_open=False,
            applies=_simulation,
        ),
        Tier("auth", *parse_rate(settings.rate_limit_auth), fail_open=False, applies=_login),
    )


class MemoryWindows:
    """Moving-window logs in process memory (one process only)."""

    #: Seconds between sweeps of idle keys.
    SWEEP = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logs: dict[str, deque[float]] = {}
        self._next_sweep = clock() + self.SWEEP

    async def hit(self, key: str, count: int, window: int) -> tuple[bool, int, float]:
        """Admit one request under ``key`` if fewer than ``count`` fell in the last
        ``window`` seconds. Returns (admitted, remaining, seconds until a slot frees)."""
        now = self.clock()
        if now >= self._next_sweep:
            self._sweep(now)
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = deque()
        horizon = now - window
        while log and log[0] <= horizon:
            log.popleft()
        admitted = len(log) < count
        if admitted:
            log.append(now)
        return admitted, count - len(log), (log[0] + window - now) if log else float(window)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + self.SWEEP
        for key in [k for k, log in self._logs.items() if not log or log[-1] < now - 86_400]:
            del self._logs[key]  # (a log's entries expire lazily; this drops idle keys)
        # keys idle for less than a day keep ≤ count timestamps each


_WINDOW_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
local admitted = 0
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  n = n + 1
  admitted = 1
end
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {admitted, limit - n, tostring(reset)}
"""


class RedisWindows:
    """Moving-window logs in Redis sorted sets, one atomic Lua call per check."""

    def __init__(self, client: Any, prefix: str = "updog") -> None:
        self.client = client
        self.prefix = f"{prefix}:rl:"
        self._script = client.register_script(_WINDOW_SCRIPT)

    async def hit(self, key: str, count: int, window: int) -> tuple[bool, int, float]:
        """As :meth:`MemoryWindows.hit`, shared by every process using this Redis."""
        member = f"{time.time_ns()}-{secrets.token_hex(4)}"
        admitted, remaining, reset = await self._script(
            keys=[self.prefix + key], args=[window, count, member]
        )
        return bool(admitted), int(remaining), float(reset)


def make_storage(
    redis_url: str | None, *, prefix: str = "updog", timeout: float = 0.5
) -> MemoryWindows | RedisWindows:
    """Redis windows when ``redis_url`` is set, else process memory."""
    if not redis_url:
        return MemoryWindows()
    from updog.protection.stores import redis_client

    return RedisWindows(redis_client(redis_url, timeout), prefix)


class GuardedWindows:
    """A window store (:class:`MemoryWindows` or :class:`RedisWindows`) whose calls run under
    the ``redis`` breaker when there is one, else under ``timeout`` seconds; shared by the
    middleware and the per-account sign-in limit."""

    def __init__(self, storage: Any, *, timeout: float, breaker: CircuitBreaker | None) -> None:
        self.storage = storage
        self.timeout = timeout
        self.breaker = breaker

    @classmethod
    def from_settings(cls, settings: Settings, database: Any) -> GuardedWindows:
        """Redis windows under the registry's ``redis`` breaker when ``REDIS_URL`` is set,
        else process memory."""
        storage = make_storage(
            settings.redis_url, prefix=settings.redis_key_prefix, timeout=settings.redis_timeout
        )
        breaker = (
            redis_breaker(
                breakers_of(database),
                settings.redis_url,
                timeout=settings.redis_timeout,
                wait=settings.redis_breaker_wait_seconds,
            )
            if settings.redis_url
            else None
        )
        return cls(storage, timeout=settings.redis_timeout, breaker=breaker)

    async def hit(self, key: str, count: int, window: int) -> tuple[bool, int, float]:
        """As :meth:`MemoryWindows.hit`; raises when the store fails
        (:class:`CallNotPermittedError` while the ``redis`` breaker is open)."""
        if self.breaker is not None:
            decision: tuple[bool, int, float] = await self.breaker.acall(
                self.storage.hit, key, count, window
            )
            return decision
        async with asyncio.timeout(self.timeout):
            decided: tuple[bool, int, float] = await self.storage.hit(key, count, window)
            return decided


@dataclass(frozen=True, slots=True)
class AccountDecision:
    """What :meth:`AccountLimiter.check` decided: ``admitted``, or refused with
    ``retry_after`` seconds (429), or ``unavailable`` (the store cannot answer: 503, the
    sign-in limit fails closed); ``headers`` are the RateLimit headers to send."""

    admitted: bool
    retry_after: int
    unavailable: bool
    headers: dict[str, str]


class AccountLimiter:
    """Sign-in attempts per account, on top of the ``auth`` tier's per-address limit.

    OWASP's Authentication Cheat Sheet ("Protect against automated attacks") limits attempts
    per account *and* per source: per address alone lets one attacker behind a shared proxy
    or NAT lock everyone there out (so the per-address tier is looser), per account alone
    lets a botnet try one password on every account. Every attempt counts (a correct password
    too: a person rarely signs in five times in five minutes). The key is a hash of the
    normalised email, so no address is written to Redis."""

    def __init__(self, tier: Tier, windows: GuardedWindows, metrics: RateLimitMetrics | None):
        self.tier = tier
        self.windows = windows
        self.metrics = metrics

    @classmethod
    def from_settings(
        cls, settings: Settings, database: Any, metrics: RateLimitMetrics | None = None
    ) -> AccountLimiter | None:
        """The limiter of a throttled profile (None when nothing is throttled)."""
        if not settings.throttled:
            return None
        count, window = parse_rate(settings.rate_limit_auth_account)
        tier = Tier("auth_account", count, window, fail_open=False, applies=_login)
        return cls(tier, GuardedWindows.from_settings(settings, database), metrics)

    async def check(self, email: str) -> AccountDecision:
        """Count one sign-in attempt for ``email`` and decide."""
        digest = hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:32]
        tier = self.tier
        try:
            admitted, remaining, wait = await self.windows.hit(
                f"{tier.name}:{digest}", tier.count, tier.window
            )
        except Exception as exc:
            retry = exc.retry_after if isinstance(exc, CallNotPermittedError) else 0
            if self.metrics:
                self.metrics.store_errors.labels(tier.name, "refused").inc()
            return AccountDecision(False, max(1, retry or STORE_RETRY_AFTER), True, {})
        seconds = min(tier.window, max(0, math.ceil(wait)))
        headers = {
            "RateLimit-Policy": tier.policy,
            "RateLimit": f'"{tier.name}";r={max(0, remaining)};t={seconds}',
        }
        if admitted:
            return AccountDecision(True, 0, False, headers)
        if self.metrics:
            self.metrics.limited.labels(tier.name).inc()
        retry_after = max(1, math.floor(wait) + 1)
        return AccountDecision(
            False, retry_after, False, {**headers, "Retry-After": str(retry_after)}
        )


class RateLimitMetrics:
    """``updog_rate_limited_total{tier}`` and ``updog_rate_limit_store_errors_total``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.limited = Counter(
            "updog_rate_limited_total",
            "Requests refused with 429, by tier.",
            ("tier",),
            registry=registry,
        )
        self.store_errors = Counter(
            "updog_rate_limit_store_errors_total",
            "Rate-limit store failures, by tier and what the request got (allowed/refused).",
            ("tier", "outcome"),
            registry=registry,
        )


class RateLimitMiddleware:
    """Enforce :class:`Tier` limits per identity (see module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tiers: Sequence[Tier],
        identities: IdentityKeys,
        storage: GuardedWindows,
        trusted_proxies: Sequence[Network] = (),
        metrics: RateLimitMetrics | None = None,
    ) -> None:
        if not tiers:
            raise ValueError("at least one tier is needed")
        if len({t.name for t in tiers}) != len(tiers):
            raise ValueError("tier names must be unique")
        self.app = app
        self.tiers = tuple(tiers)
        self.identities = identities
        self.storage = storage
        self.trusted = tuple(trusted_proxies)
        self.metrics = metrics

    @classmethod
    def options(
        cls,
        settings: Settings,
        database: Any,
        registry: CollectorRegistry,
        identities: IdentityKeys | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for ``Middleware(RateLimitMiddleware, **options)``."""
        return {
            "tiers": tiers_from(settings),
            "identities": identities or IdentityKeys(database, settings.secret_key),
            "storage": GuardedWindows.from_settings(settings, database),
            "trusted_proxies": parse_networks(settings.trusted_proxies),
            "metrics": RateLimitMetrics(registry),
        }

    async def _hit(self, tier: Tier, key: str) -> tuple[bool, int, float]:
        """(admitted, remaining, seconds until a slot frees); raises when the store fails."""
        return await self.storage.hit(f"{tier.name}:{key}", tier.count, tier.window)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        tiers = [t for t in self.tiers if t.applies(method, path)]
        if not tiers:
            await self.app(scope, receive, send)
            return

        key = await self.identities.key(scope)
        if key is None:
            key = "ip:" + client_address(scope, self.trusted)
        states: list[tuple[Tier, int, int]] = []  # (tier, remaining, seconds to reset)
        refused: list[tuple[Tier, int]] = []  # (tier, retry after)
        for tier in tiers:
            try:
                admitted, remaining, wait = await self._hit(tier, key)
            except Exception as exc:
                retry = exc.retry_after if isinstance(exc, CallNotPermittedError) else 0
                outcome = "allowed" if tier.fail_open else "refused"
                if self.metrics:
                    self.metrics.store_errors.labels(tier.name, outcome).inc()
                if tier.fail_open:
                    continue
                await send_problem(
                    scope,
                    send,
                    503,
                    "RATE_LIMIT_UNAVAILABLE",
                    f"The {tier.name} rate limit cannot be checked right now; retry shortly.",
                    headers={"Retry-After": str(max(1, retry or STORE_RETRY_AFTER))},
                )
                return
            seconds = min(tier.window, max(0, math.ceil(wait)))
            states.append((tier, max(0, remaining), seconds))
            if not admitted:  # strictly past the moment the oldest entry leaves the window
                refused.append((tier, max(1, math.floor(wait) + 1)))

        headers = self._headers(states)
        if refused:
            tier, retry_after = max(refused, key=lambda r: r[1])
            if self.metrics:
                for t, _ in refused:
                    self.metrics.limited.labels(t.name).inc()
            await send_problem(
                scope,
                send,
                429,
                "RATE_LIMITED",
                f"Too many requests for the {tier.name} limit ({tier.count} per "
                f"{tier.window} s); retry after {retry_after} s.",
                headers={"Retry-After": str(retry_after), **headers},
            )
            return
        if not headers:
            await self.app(scope, receive, send)
            return
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *raw]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    @staticmethod
    def _headers(states: Sequence[tuple[Tier, int, int]]) -> dict[str, str]:
        if not states:
            return {}
        tier, remaining, seconds = min(states, key=lambda s: (s[1], -s[2]))
        return {
            "RateLimit-Policy": ", ".join(t.policy for t, _, _ in states),
            "RateLimit": f'"{tier.name}";r={remaining};t={seconds}',
        }
