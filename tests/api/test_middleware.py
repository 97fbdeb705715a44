"""Each middleware alone, around the smallest app (Starlette style); no database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from updog.http.body_limit import BodyLimitMiddleware
from updog.observability.logging import request_id_var
from updog.observability.metrics import HttpMetrics
from updog.observability.request_id import RequestIdMiddleware
from updog.observability.route_metrics import MetricsMiddleware


async def _echo_app(scope: Any, receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = (request_id_var.get() or "").encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-seen", seen)]})
    await send({"type": "http.response.body", "body": body})


def call(
    app: Any,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    chunks: Sequence[bytes] = (),
) -> dict[str, Any]:
    """Drive one HTTP request through ``app``; collect status, headers and body."""
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": list(headers)}
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks or [b""])
    ]
    out: dict[str, Any] = {"body": b""}

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
            out["headers"] = dict(message["headers"])
        else:
            out["body"] += message.get("body", b"")

    asyncio.run(app(scope, receive, send))
    return out


def test_request_id_generated_bound_and_echoed() -> None:
    r = call(RequestIdMiddleware(_echo_app))
    rid = r["headers"][b"x-request-id"]
    assert len(rid) == 32 and r["headers"][b"x-seen"] == rid
    assert request_id_var.get() is None  # reset after the request


@pytest.mark.parametrize(
    "incoming,kept",
    [
        (b"abc-123", True),
        (b"a" * 128, True),
        (b"a" * 129, False),
        (b"has space", False),
        (b"inject\r\nx: y", False),
        (b"", False),
    ],
)
def test_request_id_incoming(incoming: bytes, kept: bool) -> None:
    r = call(RequestIdMiddleware(_echo_app), headers=[(b"x-request-id", incoming)])
    assert (r["headers"][b"x-request-id"] == incoming) is kept


def test_body_limit_content_length_and_streamed() -> None:
    app = BodyLimitMiddleware(_echo_app, max_bytes=10)
    assert call(app, chunks=[b"0123456789"])["status"] == 200
    over = call(app, headers=[(b"content-length", b"11")], chunks=[b"x" * 11])
    assert over["status"] == 413 and b"BODY_TOO_LARGE" in over["body"]
    streamed = call(app, chunks=[b"x" * 6, b"x" * 6])
    assert streamed["status"] == 413
    assert call(app, headers=[(b"content-length", b"nan")])["status"] == 400
    with pytest.raises(ValueError):
        BodyLimitMiddleware(_echo_app, max_bytes=0)


def test_metrics_middleware_counts_unmatched() -> None:
    metrics = HttpMetrics()
    call(MetricsMiddleware(_echo_app, metrics=metrics))
    text = metrics.render().decode()
    assert 'updog_http_requests_total{method="POST",route="<unmatched>",status="200"} 1.0' in text
    assert "updog_http_requests_in_flight 0.0" in text
