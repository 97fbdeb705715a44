"""Request ids: accept a sane incoming ``X-Request-ID`` or make one, and echo it.

The id is stored in ``scope["state"]["request_id"]`` (so ``request.state.request_id``
works) and in :data:`updog.observability.logging.request_id_var` for the duration of the
request, so every log line written while serving it carries it. The response always has an
``X-Request-ID`` header.

"Sane" means 1..128 characters from ``[A-Za-z0-9._:@/+=-]``; anything else (including a
header a client stuffed with a log-injection payload) is replaced by a fresh id
(32 hex digits, UUID4).
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.observability.logging import request_id_var

HEADER = b"x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:@/+=-]{1,128}")


class RequestIdMiddleware:
    """Assign, bind and echo the request id (HTTP scopes only)."""

    def __init__(self, app: ASGIApp, *, trust_incoming: bool = True) -> None:
        self.app = app
        self.trust_incoming = trust_incoming

    def _pick(self, scope: Scope) -> str:
        if self.trust_incoming:
            for name, value in scope.get("headers", ()):
                if name == HEADER:
                    candidate: str = bytes(value).decode("latin-1")
                    if _SANE.fullmatch(candidate):
                        return candidate
                    break
        return uuid.uuid4().hex

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        rid = self._pick(scope)
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                headers.append((HEADER, rid.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
