"""The application factory: :func:`create_app` composes the HTTP service.

``updog serve`` builds ``Settings`` and a ``Database`` and calls ``create_app(settings,
database)``; tests do the same with their own settings and database. Nothing here reads the
environment or opens connections at import time.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.middleware import Middleware

from updog import __version__
from updog.api.routes import API_PREFIX, auth, calc, funds, health, simulations
from updog.api.routes.docs import install_docs
from updog.http.auth import TokenCache
from updog.http.body_limit import BodyLimitMiddleware
from updog.http.head import HeadMiddleware
from updog.http.problems import install_problem_handlers
from updog.observability.access_log import AccessLogMiddleware
from updog.observability.logging import configure_logging
from updog.observability.metrics import HttpMetrics
from updog.observability.request_id import RequestIdMiddleware
from updog.observability.route_metrics import MetricsMiddleware
from updog.protection import csp_reports
from updog.protection.clients import IdentityKeys
from updog.protection.dedupe import SingleFlightMiddleware
from updog.protection.drain import DrainMiddleware
from updog.protection.headers import SecurityHeadersMiddleware
from updog.protection.idempotency import IdempotencyMiddleware
from updog.protection.rate_limit import AccountLimiter, RateLimitMiddleware
from updog.protection.shedding import LoadSheddingMiddleware
from updog.resilience.lifecycle import Lifecycle
from updog.resilience.wiring import install_resilience
from updog.settings import Settings, parse_networks
from updog.web.problem_pages import ProblemPagesMiddleware

OPENAPI_URL = f"{API_PREFIX}/openapi.json"


def create_app(
    settings: Settings,
    database: Any,
    *,
    configure_logs: bool = True,
    metrics: HttpMetrics | None = None,
) -> FastAPI:
    """Build the FastAPI app.

    ``database`` is the store's ``Database`` (``.connection()`` yields a psycopg connection).
    ``configure_logs`` installs the JSON-lines logging (:mod:`updog.observability.logging`);
    ``metrics`` lets a caller share a registry (default: a fresh one per app).
    """
    if configure_logs:
        configure_logging()
    metrics = metrics or HttpMetrics()

    # Middleware, outermost first. Each layer is a small pure-ASGI class (one per module);
    # a request passes down this list and its response comes back up it:
    #   1. RequestId — first, so every layer below (and every log line, problem body and
    #      response, including the 413s of the body limit) carries the request id.
    #   2. AccessLog — one JSON line per request, for everything below, rejections included.
    #   3. Metrics — counts/times every request, including those rejected below it, and
    #      labels them by route template (known only once routing has run, on the way out).
    #   4. LoadShedding (throttled profiles only) — the cheapest refusal comes first: an
    #      overloaded process spends nothing (no Redis, no database) on a request it sheds;
    #      probes and /metrics pass. Below the layers that log and count, so sheds show.
    #   5. RateLimit (throttled profiles only) — before any body is read or any route work
    #      is done; after shedding, so overload does not also cost Redis round trips.
    #   6. BodyLimit — refuses oversized bodies before anything below reads them (the two
    #      layers below buffer bodies to fingerprint them).
    #   7. Idempotency — a retried POST/PATCH with a known key is answered from the stored
    #      response before it could join a fresh execution below; it reads the whole body.
    #   8. SingleFlight — only requests that really execute are shared between identical
    #      concurrent callers.
    #   9. Head — last before routing: a HEAD is routed as the GET it mirrors (every layer
    #      above saw it as the HEAD it is), its response sent without the body.
    # Starlette's ServerErrorMiddleware wraps all of these (it turns an unhandled exception
    # into our problem+json 500) and ExceptionMiddleware sits below them (the other problem
    # handlers). Two layers wrap even ServerErrorMiddleware (see below): SecurityHeaders,
    # outermost, so every response — a 500 included — carries them; inside it ProblemPages,
    # which turns every problem+json above (handlers, 404s, 429s, 503s, the 500) into an HTML
    # page for a browser that asks for HTML, and gets the UI's CSP on its way out.
    registry = metrics.registry
    # Bearer token → identity, a few seconds (settings.auth_cache_seconds): shared by the
    # rate-limit keys and authentication, so a request pays at most one lookup, usually none.
    tokens = TokenCache(settings.auth_cache_seconds)
    identities = IdentityKeys(database, settings.secret_key, tokens=tokens)  # one cache, 2 users
    throttling: list[Middleware] = []
    shedding: dict[str, Any] = {}
    accounts: AccountLimiter | None = None
    if settings.throttled:
        shedding = LoadSheddingMiddleware.options(settings, database, registry)
        limits = RateLimitMiddleware.options(settings, database, registry, identities)
        throttling = [
            Middleware(LoadSheddingMiddleware, **shedding),
            Middleware(RateLimitMiddleware, **limits),
        ]
        # Sign-in attempts per account (the routes call it: the middleware reads no body).
        accounts = AccountLimiter.from_settings(settings, database, limits["metrics"])
    # Drain gate (updog.resilience.lifecycle): below the layers that log and count, so the
    # 503s of a stopping instance show; above everything that does work, so a draining
    # instance refuses new requests before spending anything on them.
    lifecycle = Lifecycle()
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(MetricsMiddleware, metrics=metrics),
        Middleware(DrainMiddleware, lifecycle=lifecycle),
        *throttling,
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
        Middleware(
            IdempotencyMiddleware,
            **IdempotencyMiddleware.options(settings, database, registry, identities),
        ),
        Middleware(
            SingleFlightMiddleware, **SingleFlightMiddleware.options(settings, database, registry)
        ),
        Middleware(HeadMiddleware),
    ]

    app = FastAPI(
        title="Updog API",
        version=__version__,
        summary="Venture-capital fund modeling: deterministic forecasts and Monte Carlo "
        "outcome distributions.",
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
        middleware=middleware,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.token_cache = tokens
    app.state.metrics = metrics
    app.state.pressure = shedding.get("monitor")  # load signals for /readyz (None: off)
    app.state.account_limiter = accounts
    install_resilience(app, database, registry, lifecycle)  # breakers, lifecycle, DB metrics
    _wrap_outermost(app, settings)

    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(funds.router)
    app.include_router(simulations.router)
    app.include_router(calc.router)
    app.include_router(csp_reports.router)
    # The web UI (SPEC §5.4): server-rendered pages and their static assets (no CDN).
    from updog.web import pages

    app.include_router(pages.router)
    app.mount(pages.STATIC_PATH, pages.static_files(), name="web-static")
    install_docs(app, openapi_url=OPENAPI_URL)
    return app


def _wrap_outermost(app: FastAPI, settings: Settings) -> None:
    """Make :class:`SecurityHeadersMiddleware` the outermost layer and
    :class:`ProblemPagesMiddleware` the next, outside Starlette's ServerErrorMiddleware (which
    ``middleware=`` cannot reach), so that even the 500 of an unhandled exception carries the
    security headers and is a page for a browser."""
    build = app.build_middleware_stack
    trusted = parse_networks(settings.trusted_proxies)

    def build_middleware_stack() -> Any:
        return SecurityHeadersMiddleware(ProblemPagesMiddleware(build()), trusted_proxies=trusted)

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
