"""The Redis client the protection layers share (rate-limit windows, single-flight).

Short timeouts and no client-side retries: a Redis that does not answer within
``timeout`` seconds is "down" for the caller, which then applies its documented fallback
(fail open or closed) instead of making the request wait. Connections are made lazily on
the event loop that first uses them.
"""

from __future__ import annotations

from typing import Any


def redis_pool(url: str, timeout: float) -> Any:
    """A ``redis.asyncio.ConnectionPool`` for ``url`` with ``timeout``-second sockets."""
    from redis.asyncio import ConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return ConnectionPool.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def redis_client(url: str, timeout: float) -> Any:
    """A ``redis.asyncio.Redis`` on :func:`redis_pool`."""
    from redis.asyncio import Redis

    return Redis(connection_pool=redis_pool(url, timeout))
