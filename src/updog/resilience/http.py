"""Outbound HTTP behind circuit breakers: an ``httpx`` transport naming one breaker per host.

::

    client = httpx.AsyncClient(transport=BreakerTransport(registry))
    await client.get("https://api.example.com/x")   # through breaker "http:api.example.com"

* A 5xx answer, a transport error (refused, reset, DNS) or a call past the breaker's
  ``operation_timeout`` (the request task is cancelled: the socket is released) is a failure.
* A 4xx answer is the caller's fault: it is returned unchanged and never counted.
* Every answer is returned as it came — a breaker never turns an error into an empty result;
  a refused call raises :class:`~updog.resilience.breaker.CallNotPermittedError` (503 with
  ``Retry-After`` via the app's problem handlers).
"""

from __future__ import annotations

import asyncio

import httpx

from updog.resilience.breaker import BreakerRegistry, OperationTimeoutError

__all__ = ["BreakerTransport", "UpstreamServerError", "breaker_name"]


class UpstreamServerError(Exception):
    """Recorded (not raised) when a remote answers 5xx."""

    def __init__(self, status: int) -> None:
        super().__init__(f"upstream answered {status}")
        self.status = status


def breaker_name(url: httpx.URL) -> str:
    """``http:<host>`` (the port too when it is not the scheme's default)."""
    host = url.host
    default = {"http": 80, "https": 443}.get(url.scheme)
    return f"http:{host}" if url.port in (None, default) else f"http:{host}:{url.port}"


class BreakerTransport(httpx.AsyncBaseTransport):
    """Wraps ``transport`` (default ``httpx.AsyncHTTPTransport()``) with per-host breakers."""

    def __init__(
        self, registry: BreakerRegistry, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.registry = registry
        self.transport = transport or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        breaker = self.registry.get(breaker_name(request.url))
        permit = breaker.acquire()
        timeout = breaker.config.operation_timeout
        try:
            if timeout is None:
                response = await self.transport.handle_async_request(request)
            else:
                try:
                    async with asyncio.timeout(timeout):
                        response = await self.transport.handle_async_request(request)
                except TimeoutError as exc:
                    raise OperationTimeoutError(breaker.name, timeout) from exc
        except Exception as exc:
            breaker.on_error(permit, exc)
            raise
        except BaseException:
            breaker.release(permit)
            raise
        if response.status_code >= 500:
            breaker.on_error(permit, UpstreamServerError(response.status_code))
        elif response.status_code >= 400:
            breaker.release(permit)  # the caller's fault: not a verdict on the remote
        else:
            breaker.on_success(permit)
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()
