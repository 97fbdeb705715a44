"""Swagger UI at ``/docs`` served entirely from the app (no CDN).

The Swagger UI distribution comes from the ``swagger-ui-bundle-v2`` wheel
(``swagger_ui_bundle.swagger_ui_path``) and is mounted at ``/static/swagger-ui``; the page
is FastAPI's :func:`~fastapi.openapi.docs.get_swagger_ui_html` pointed at those files.

The page carries a Content-Security-Policy of its own (SPEC §5.1): every asset from
``'self'``; the one inline script (Swagger UI's initialiser) is allowed by its SHA-256 hash
(CSP Level 2 hash source), not by ``'unsafe-inline'``; no ``'unsafe-eval'``. Inline *styles*
are allowed because Swagger UI sets some at run time.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.requests import Request
from starlette.responses import HTMLResponse

SWAGGER_STATIC = "/static/swagger-ui"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_csp(html: str) -> str:
    """The CSP for a docs page: ``'self'`` assets plus the hashes of its inline scripts."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    return (
        "default-src 'none'; "
        f"script-src 'self' {hashes}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "font-src 'self'; "
        "connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def swagger_ui_dir() -> Path:
    """Folder holding ``swagger-ui-bundle.js`` and ``swagger-ui.css`` from the wheel."""
    import swagger_ui_bundle  # type: ignore[import-untyped]

    return Path(swagger_ui_bundle.swagger_ui_path)


def install_docs(app: FastAPI, *, openapi_url: str) -> None:
    """Mount the bundled assets and add ``GET /docs``."""
    app.mount(SWAGGER_STATIC, StaticFiles(directory=swagger_ui_dir()), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} — docs",
            swagger_js_url=f"{root}{SWAGGER_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_STATIC}/favicon-32x32.png",
        )
        page.headers["Content-Security-Policy"] = docs_csp(bytes(page.body).decode())
        return page
