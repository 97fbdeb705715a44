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
from updog.api.middleware.access_log import AccessLogMiddleware
from updog.api.middleware.body_limit import BodyLimitMiddleware
from updog.api.middleware.metrics import MetricsMiddleware
from updog.api.middleware.request_id import RequestIdMiddleware
from updog.api.problems import install_problem_handlers
from updog.api.routes import API_PREFIX, auth, calc, funds, health, simulations
from updog.api.routes.docs import install_docs
from updog.observability.logging import configure_logging
from updog.observability.metrics import HttpMetrics
from updog.settings import Settings

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
    #   4. BodyLimit — last before routing: refuses oversized bodies before any handler
    #      reads them, while the layers above still log and count the refusal.
    # Starlette's ServerErrorMiddleware wraps all of these (it turns an unhandled exception
    # into our problem+json 500) and ExceptionMiddleware sits below them (the other problem
    # handlers). Later layers (security headers, rate limits, shedding) go between
    # RequestId and BodyLimit; their place is to be argued here.
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(AccessLogMiddleware),
        Middleware(MetricsMiddleware, metrics=metrics),
        Middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes),
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
    app.state.metrics = metrics

    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(funds.router)
    app.include_router(simulations.router)
    app.include_router(calc.router)
    install_docs(app, openapi_url=OPENAPI_URL)
    _add_fund_spec_schema(app)
    return app


def _add_fund_spec_schema(app: FastAPI) -> None:
    """Publish the engine's ``FundSpec`` JSON Schema as ``#/components/schemas/FundSpec``.

    The fund routes parse their bodies themselves (so the hostile-input guards run first),
    hence FastAPI cannot infer the schema; the routes reference it by ``$ref``.
    """
    from updog.model.spec import FundSpec

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        spec = FundSpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in spec.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["FundSpec"] = spec
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
