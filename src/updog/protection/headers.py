"""Security headers on every HTTP response — errors, 413s, 429s and 503s included.

SPEC §6 practice 3. Per response:

* ``Content-Security-Policy``: HTML gets the UI policy (``default-src 'self'``, scripts only
  with this response's nonce, no ``'unsafe-eval'``/``'unsafe-inline'`` for scripts,
  ``object-src 'none'``, ``base-uri 'self'``, ``frame-ancestors 'none'``, reports to
  :data:`REPORT_PATH`); everything else the API policy ``default-src 'none';
  frame-ancestors 'none'``. A route that sets its own CSP (``/docs`` hashes its inline
  script) keeps it. The nonce is in ``scope["state"]["csp_nonce"]`` (``request.state.csp_nonce``)
  for templates: ``<script nonce="{{ request.state.csp_nonce }}">``.
* ``Strict-Transport-Security: max-age=31536000; includeSubDomains; preload`` when the request
  came over HTTPS, or through a trusted proxy that says so (``X-Forwarded-Proto: https``);
  never over plain HTTP (RFC 6797 §7.2: user agents ignore it there anyway).
* ``X-Content-Type-Options: nosniff``, ``Referrer-Policy``, ``Cross-Origin-Opener-Policy``,
  ``Cross-Origin-Resource-Policy``, ``Permissions-Policy``, ``X-Frame-Options: DENY``.
* ``Cache-Control: no-store`` on every API response (paths under :data:`PRIVATE_PREFIXES`)
  that does not set its own: they carry private fund data, which no shared or browser cache
  may keep (RFC 9111 §5.2.2.5).
* No ``Server`` header from the app (uvicorn's own says ``uvicorn``, no version;
  ``updog serve`` can turn it off).

The app factory installs this *outside* Starlette's ``ServerErrorMiddleware`` so even an
unhandled-exception 500 carries the headers.

Why our own code: the ``secure``/``secweb`` packages set static headers; we need a per-response
choice (HTML vs API policy), a per-request nonce handed to templates, HSTS that depends on
trusted-proxy information, and a pure ASGI layer with no per-request allocation beyond the
nonce. It is ~100 lines.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.protection.clients import Network, forwarded_https

#: Where browsers send CSP violation reports (see :mod:`updog.protection.csp_reports`).
REPORT_PATH = "/csp-reports"
#: HSTS value for HTTPS deployments (one year, subdomains, preload-list eligible).
HSTS = "max-age=31536000; includeSubDomains; preload"
API_CSP = "default-src 'none'; frame-ancestors 'none'"
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
_STATIC: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", PERMISSIONS_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
)
_CSP = b"content-security-policy"
_CACHE_CONTROL = b"cache-control"
#: Paths whose responses are private data: never cached unless the route says otherwise.
PRIVATE_PREFIXES: tuple[str, ...] = ("/api/",)


def ui_csp(nonce: str, report_path: str = REPORT_PATH) -> str:
    """The CSP of an HTML page whose scripts carry ``nonce``."""
    return (
        "default-src 'self'; "
        f"script-src 'self' 'nonce-{nonce}'; "
        "style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; "
        "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; "
        f"report-uri {report_path}"
    )


class SecurityHeadersMiddleware:
    """Add the security headers to every HTTP response (see module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Sequence[Network] = (),
        hsts: str = HSTS,
        report_path: str = REPORT_PATH,
    ) -> None:
        if not report_path.startswith("/"):
            raise ValueError(f"report_path must be an absolute path, got {report_path!r}")
        self.app = app
        self.trusted = tuple(trusted_proxies)
        self.hsts = hsts.encode()
        self.report_path = report_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        https = forwarded_https(scope, self.trusted)
        private = scope["path"].startswith(PRIVATE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"server"]
                present = {k.lower() for k, _ in headers}
                if _CSP not in present:
                    ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                    policy = ui_csp(nonce, self.report_path) if b"html" in ctype else API_CSP
                    headers.append((_CSP, policy.encode()))
                headers.extend(h for h in _STATIC if h[0] not in present)
                if private and _CACHE_CONTROL not in present:
                    headers.append((_CACHE_CONTROL, b"no-store"))
                if https:
                    headers.append((b"strict-transport-security", self.hsts))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
