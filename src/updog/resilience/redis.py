"""The ``redis`` breaker: how the protection layer (rate-limit windows, single-flight) judges
Redis, so that an outage costs a bounded time and recovery is automatic.

Every Redis call of :mod:`updog.protection` runs under this breaker (one shared instance per
Redis server in the registry, named ``redis:<host>:<port>``; ``/readyz`` shows its state as a
``warn``). While it is OPEN the callers apply
their documented fallback at once (the ``api`` limit fails open, ``auth`` and ``simulation``
fail closed with ``Retry-After`` = the remaining wait, single-flight stays within the
process); after ``redis_breaker_wait_seconds`` one trial call goes to Redis, and if it
answers the breaker closes. So a Redis that comes back is used again within the wait plus one
call, however busy the service is — the earlier back-off, which every refused request pushed
one second further, never retried Redis under steady load.

Judgement: the last 10 calls once 3 are in, half failing (a refused connection, a timeout
after ``redis_timeout``) opens it; calls are cut at ``redis_timeout`` (the operation timeout,
so a hanging Redis costs one timeout, not a stuck request).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from updog.resilience.breaker import BreakerConfig, BreakerRegistry, CircuitBreaker

__all__ = ["redis_breaker", "redis_breaker_config", "redis_breaker_name"]


def redis_breaker_name(url: str) -> str:
    """The registry name of the breaker judging the Redis at ``url``: ``redis:<host>:<port>``
    (as ``http:<host>`` names an HTTP dependency) — one breaker per server, so one Redis's
    outage never short-circuits calls to another."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"redis:{parts.path}"
    return f"redis:{parts.hostname or 'localhost'}:{parts.port or 6379}"


def redis_breaker_config(*, timeout: float, wait: float) -> BreakerConfig:
    """The ``redis`` breaker's configuration: calls cut at ``timeout`` seconds, ``wait``
    seconds OPEN before one trial call (see the module doc for the window)."""
    return BreakerConfig(
        window_size=10,
        minimum_calls=3,
        failure_rate_threshold=0.5,
        slow_call_duration=max(timeout, 0.001),
        wait_in_open=wait,
        permitted_calls_in_half_open=1,
        operation_timeout=timeout,
    )


def redis_breaker(
    registry: BreakerRegistry, url: str, *, timeout: float, wait: float
) -> CircuitBreaker:
    """The registry's breaker for the Redis at ``url`` (named by :func:`redis_breaker_name`,
    created with :func:`redis_breaker_config`), shared by every caller of that server."""
    return registry.get(redis_breaker_name(url), redis_breaker_config(timeout=timeout, wait=wait))
