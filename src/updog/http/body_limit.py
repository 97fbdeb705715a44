"""Cap request bodies: more than ``max_bytes`` → 413 ``BODY_TOO_LARGE`` (problem+json).

Two checks, so neither an honest nor a lying client gets past:

1. a ``Content-Length`` above the cap is refused before a byte of the body is read;
2. the ``receive`` channel counts the bytes actually streamed (chunked uploads, or a
   ``Content-Length`` that lies) and raises :class:`BodyTooLarge` as soon as the count
   passes the cap. :class:`BodyTooLarge` is a :class:`~updog.http.problems.ProblemError`,
   so the app's handler renders it; if it escapes the app anyway, this middleware
   answers 413 itself (when no response has started yet).

RFC 9110 §15.5.14 (413 Content Too Large).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.http.problems import ProblemError, send_problem


class BodyTooLarge(ProblemError):
    """The request body exceeds the configured cap."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            "BODY_TOO_LARGE",
            f"The request body exceeds the limit of {max_bytes} bytes.",
            headers={"Connection": "close"},
        )


class BodyLimitMiddleware:
    """Refuse HTTP request bodies larger than ``max_bytes``."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_problem(scope, send, 400, "BAD_REQUEST", "Invalid Content-Length.")
                    return
                if declared > self.max_bytes:
                    await send_problem(
                        scope,
                        send,
                        413,
                        "BODY_TOO_LARGE",
                        f"The request body exceeds the limit of {self.max_bytes} bytes.",
                        headers={"Connection": "close"},
                    )
                    return
                break

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await send_problem(scope, send, 413, exc.code, exc.detail or "", headers=exc.headers)
