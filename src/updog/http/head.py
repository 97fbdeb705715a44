"""``HEAD`` is ``GET`` without the body (RFC 9110 §9.3.2), on every ``GET`` route.

FastAPI's routes answer only the methods they declare, so a ``HEAD`` would be a 405.
:class:`HeadMiddleware`, innermost before the router, hands a ``HEAD`` request to the router as
a ``GET`` and sends the response's status and headers (``Content-Length`` included) with an
empty body. A streamed response (server-sent events) ends after its headers: the app is told
the client has gone, as Starlette's streaming responses listen for.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadMiddleware:
    """Serve ``HEAD`` as ``GET`` minus the body (HTTP scopes only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        started = False
        done = False

        async def send_head(message: Message) -> None:
            nonlocal started, done
            if message["type"] == "http.response.start":
                started = True
                await send(message)
            elif message["type"] == "http.response.body" and not done:
                done = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def receive_head() -> Message:
            if done:  # the body is not wanted: a streaming response stops here
                return {"type": "http.disconnect"}
            return await receive()

        await self.app({**scope, "method": "GET"}, receive_head, send_head)
