"""Errors as HTML pages for browsers, problem+json for everyone else.

Every error of the service — the API's exception handlers, 404s of unknown paths, and the
refusals of the middleware (shedding 503, rate-limit 429, draining 503, body-limit 413, …) —
is produced as RFC 9457 ``application/problem+json``. That is right for programs and wrong
for a person whose browser navigated to the page: they got raw JSON. This layer negotiates
on the request's ``Accept`` (RFC 9110 §12.5.1): when it prefers ``text/html`` over JSON
(``application/problem+json`` or ``application/json``), a problem response is re-rendered as
an HTML page (``templates/problem.html``) with

* the same status code and headers (``Retry-After``, ``WWW-Authenticate``, ``RateLimit*``,
  ``X-Request-ID``), only the body, ``Content-Type`` and ``Content-Length`` change;
* the problem's title, detail, field errors and request id, every value escaped;
* the retry time in words when the response has ``Retry-After`` (seconds or an HTTP-date);
* the stylesheet of the UI and no inline script or style, so the strict CSP holds.

Clients whose ``Accept`` is absent, ``*/*``, JSON, or anything that does not rank HTML
strictly higher keep the problem+json unchanged (a tie goes to JSON: the API's default).
Both forms carry ``Vary: Accept``. Any other response passes through untouched.

The app factory installs this outside Starlette's ``ServerErrorMiddleware`` (inside the
security headers, which then give the page the UI's CSP), so a 500 is covered too.

Why our own Accept parsing: no negotiation library is a dependency, and choosing between two
media types needs ~30 lines — the q-values, the most specific matching range, and ranges
with media-type parameters (``text/html;level=1``) matching only such representations.
"""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime
from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.http.problems import PROBLEM_CONTENT_TYPE

_QVALUE = re.compile(r"^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$")
_JSON_TYPES = (PROBLEM_CONTENT_TYPE, "application/json")
_env = Environment(
    loader=PackageLoader("updog.web", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def media_quality(accept: str | None, media_type: str) -> float:
    """The quality (0..1) an ``Accept`` field value gives ``media_type`` (``type/subtype``,
    no parameters), per RFC 9110 §12.5.1.

    The most specific matching range decides (``text/html`` over ``text/*`` over ``*/*``); a
    range with media-type parameters does not match a type without them; ranges that are
    malformed or have an invalid ``q`` are ignored. No field (None, or an empty value) is
    ``*/*``: everything at quality 1.
    """
    if accept is None or not accept.strip():
        return 1.0
    main, _, sub = media_type.lower().partition("/")
    best: tuple[int, float] = (-1, 0.0)  # (specificity, quality) of the best match so far
    for item in accept.split(","):
        media_range, *params = (part.strip() for part in item.split(";"))
        rtype, slash, rsub = media_range.lower().partition("/")
        quality: float | None = 1.0
        media_params = False
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                quality = float(value.strip()) if _QVALUE.match(value.strip()) else None
                break  # the weight ends the range (RFC 9110 dropped accept-ext)
            media_params = True
        if not slash or quality is None or media_params:
            continue
        if (rtype, rsub) == (main, sub):
            specificity = 2
        elif (rtype, rsub) == (main, "*"):
            specificity = 1
        elif (rtype, rsub) == ("*", "*"):
            specificity = 0
        else:
            continue
        best = max(best, (specificity, quality))
    return best[1]


def prefers_html(accept: str | None) -> bool:
    """True when ``accept`` ranks ``text/html`` strictly above every JSON type we serve
    errors as (a browser navigation: ``text/html,…,*/*;q=0.8``)."""
    html = media_quality(accept, "text/html")
    return html > max(media_quality(accept, t) for t in _JSON_TYPES)


def _retry_time(value: str | None) -> tuple[int | None, str | None]:
    """(seconds, None) or (None, a readable UTC time) from a ``Retry-After`` value."""
    if value is None:
        return None, None
    value = value.strip()
    if value.isdigit():
        return int(value), None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None, None
    return None, when.strftime("%H:%M:%S UTC on %d %B %Y")


def render_problem_page(scope: Scope, status: int, headers: Headers, problem: Any) -> bytes:
    """The HTML page (UTF-8) of a problem document.

    ``problem`` is the decoded problem+json body (a dict with ``title``, ``detail``,
    ``code``, ``instance``, ``request_id`` and ``errors[]`` of ``{path, message}``, any of
    them possibly missing); ``headers`` are the response's (for ``Retry-After``); ``scope``
    the request's (a GET page offers to try the same address again).
    """
    errors = [
        {"path": str(e.get("path") or ""), "message": str(e.get("message") or "")}
        for e in problem.get("errors") or ()
        if isinstance(e, dict)
    ]
    seconds, at = _retry_time(headers.get("retry-after"))
    retry_href = None  # a transient refusal of a GET: offer the same address again
    if scope.get("method") == "GET" and (seconds is not None or at is not None):
        path = scope.get("raw_path") or scope.get("path", "/").encode("utf-8")
        query = scope.get("query_string", b"")
        retry_href = (path + (b"?" + query if query else b"")).decode("latin-1")
    html = _env.get_template("problem.html").render(
        title=str(problem.get("title") or "Error"),
        detail=str(problem.get("detail") or ""),
        code=str(problem.get("code") or ""),
        status=status,
        instance=str(problem.get("instance") or ""),
        request_id=str(problem.get("request_id") or ""),
        errors=errors,
        retry_seconds=seconds,
        retry_at=at,
        retry_href=retry_href,
        path=scope.get("path", "/"),
    )
    return html.encode("utf-8")


def _with_vary_accept(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out, seen = [], False
    for name, value in raw:
        if name.lower() == b"vary":
            seen = True
            if b"accept" not in [v.strip().lower() for v in value.split(b",")]:
                value += b", Accept"
        out.append((name, value))
    return out if seen else [*out, (b"vary", b"Accept")]


class ProblemPagesMiddleware:
    """Problem+json responses as HTML pages when the request prefers HTML (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        html = prefers_html(Headers(scope=scope).get("accept"))
        held: Message | None = None  # the start of a problem response being re-rendered
        chunks: list[bytes] = []

        async def send_negotiated(message: Message) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                ctype = Headers(raw=message.get("headers", [])).get("content-type", "")
                if ctype.startswith(PROBLEM_CONTENT_TYPE):
                    message["headers"] = _with_vary_accept(list(message.get("headers", [])))
                    if html:
                        held = message
                        return
            elif message["type"] == "http.response.body" and held is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                start, held = held, None
                await self._send_page(scope, start, b"".join(chunks), send)
                return
            await send(message)

        await self.app(scope, receive, send_negotiated)

    @staticmethod
    async def _send_page(scope: Scope, start: Message, body: bytes, send: Send) -> None:
        try:
            problem = json.loads(body)
        except ValueError:
            problem = None
        if not isinstance(problem, dict):  # not a problem document after all: as it was
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        headers = Headers(raw=start["headers"])
        page = render_problem_page(scope, start["status"], headers, problem)
        raw = [
            (k, v)
            for k, v in start["headers"]
            if k.lower() not in (b"content-type", b"content-length")
        ]
        raw += [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
        ]
        if "cache-control" not in headers:
            raw.append((b"cache-control", b"no-store"))
        await send({**start, "headers": raw})
        await send({"type": "http.response.body", "body": page})
