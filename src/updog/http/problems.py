"""RFC 9457 problem details (``application/problem+json``) for every error the API returns.

Body shape (RFC 9457 §3 members plus our extensions)::

    {
      "type": "urn:updog:problem:fund-not-published",  # URI reference naming the problem type
      "title": "Fund not published",                   # short, stable per type
      "status": 409,                                   # same as the HTTP status
      "detail": "Fund 7 has no published version ...", # this occurrence, for humans
      "instance": "/api/v1/funds/7/forecast",          # the request path
      "code": "FUND_NOT_PUBLISHED",                    # stable UPPER_SNAKE for programs
      "request_id": "b1946ac92492d2347c6235b4d2611184",
      "errors": [{"path": "/stages/2/graduation_rate", "code": "OUT_OF_RANGE",
                  "message": "..."}]
    }

``errors[].path`` is a JSON Pointer (RFC 6901) into the request body. Errors about query,
path or header parameters point into the notional document
``{"query": {...}, "path": {...}, "header": {...}}`` (``/query/limit``).

Handlers are installed for :class:`ProblemError` (our domain errors),
Starlette's :class:`~starlette.exceptions.HTTPException`, FastAPI's
:class:`~fastapi.exceptions.RequestValidationError` and, as a last resort, any other
exception: a 500 that never carries a stack trace or exception text (the trace goes to the
log, with the request id the client sees).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import Scope, Send

from updog.model.spec import issue_code
from updog.observability.logging import get_logger, request_id_var

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: Most entries of ``errors[]`` in one problem (the first ones, in document order).
MAX_REPORTED_ERRORS = 100
_log = get_logger("updog.api")

#: Codes for plain HTTP errors raised by the framework (routing, methods, ...).
_STATUS_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    412: "PRECONDITION_FAILED",
    413: "BODY_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    428: "PRECONDITION_REQUIRED",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    """One entry of ``errors[]``: a JSON Pointer, a stable code and a message."""

    path: str
    code: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "message": self.message}


class ProblemError(Exception):
    """A domain error rendered as problem+json.

    ``status`` is the HTTP status, ``code`` the stable UPPER_SNAKE code; ``errors`` lists
    field errors (dicts with ``path``/``code``/``message`` or :class:`FieldError`);
    ``headers`` are added to the response (``WWW-Authenticate``, ``Retry-After``...);
    ``extra`` adds members to the body (e.g. ``warnings``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        errors: Iterable[FieldError | Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or code)
        self.status = status
        self.code = code
        self.detail = detail
        self.title = title
        self.errors = [e.to_dict() if isinstance(e, FieldError) else dict(e) for e in errors]
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def problem_type(code: str) -> str:
    """The ``type`` URI of a code.

    ``FUND_NOT_PUBLISHED`` → ``urn:updog:problem:fund-not-published`` (a URN: stable, and
    it names no host a client would try to fetch).
    """
    return "urn:updog:problem:" + code.lower().replace("_", "-")


def _title(status: int, code: str) -> str:
    if code in _STATUS_CODES.values() or code.startswith("HTTP_"):
        try:
            return HTTPStatus(status).phrase
        except ValueError:
            return "Error"
    return code.replace("_", " ").capitalize()


def code_for_status(status: int) -> str:
    """The default code of a bare HTTP status (``404`` → ``NOT_FOUND``)."""
    return _STATUS_CODES.get(status, f"HTTP_{status}")


def problem_body(
    *,
    status: int,
    code: str,
    detail: str | None = None,
    title: str | None = None,
    instance: str | None = None,
    request_id: str | None = None,
    errors: Sequence[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the problem document (a dict ready for JSON)."""
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title or _title(status, code),
        "status": status,
        "detail": detail or title or _title(status, code),
        "instance": instance,
        "code": code,
        "request_id": request_id,
        "errors": [dict(e) for e in errors],
    }
    for key, value in (extra or {}).items():
        body.setdefault(key, value)
    return body


def encode(body: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes; ``allow_nan=False`` so we never emit a non-finite number."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def _request_id(scope: Scope) -> str | None:
    state = scope.get("state") or {}
    rid = state.get("request_id") if isinstance(state, Mapping) else None
    return rid or request_id_var.get()


def problem_response(
    request: Request,
    status: int,
    code: str,
    detail: str | None = None,
    *,
    title: str | None = None,
    errors: Sequence[Mapping[str, Any]] = (),
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """A problem+json :class:`Response` for ``request``."""
    rid = _request_id(request.scope)
    body = problem_body(
        status=status,
        code=code,
        detail=detail,
        title=title,
        instance=request.url.path,
        request_id=rid,
        errors=errors,
        extra=extra,
    )
    hdrs = dict(headers or {})
    if rid:
        hdrs.setdefault("X-Request-ID", rid)
    return Response(encode(body), status_code=status, headers=hdrs, media_type=PROBLEM_CONTENT_TYPE)


async def send_problem(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Send a problem response from pure ASGI code (middleware), without a Request."""
    rid = _request_id(scope)
    payload = encode(
        problem_body(
            status=status,
            code=code,
            detail=detail,
            instance=scope.get("path"),
            request_id=rid,
        )
    )
    raw = [
        (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    if rid:
        raw.append((b"x-request-id", rid.encode()))
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


# -- JSON Pointer (RFC 6901) ----------------------------------------------------------


def pointer(tokens: Iterable[str | int]) -> str:
    """Join reference tokens into a JSON Pointer, escaping ``~`` → ``~0`` and ``/`` → ``~1``.

    ``pointer(["stages", 2, "graduation_rate"]) == "/stages/2/graduation_rate"``;
    ``pointer([]) == ""`` (the whole document).
    """
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


def pydantic_field_errors(
    errors: Iterable[Mapping[str, Any]], *, drop_location: bool = True
) -> list[dict[str, str]]:
    """Convert pydantic / FastAPI error dicts to ``errors[]`` entries.

    FastAPI locations start with ``body``/``query``/``path``/``header``/``cookie``: a body
    location loses that first token (the pointer is into the body); the others keep it
    (``/query/limit``). Codes use the vocabulary of FundSpec validation
    (:func:`updog.model.spec.issue_code`: ``REQUIRED``, ``OUT_OF_RANGE``, ``WRONG_TYPE``,
    ``UNKNOWN_FIELD``, …) so every 422 speaks one language. Pydantic's internal tokens for
    tagged unions or function validators (``function-after[...]``) are dropped, since they
    are not in the document.
    """
    out: list[dict[str, str]] = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if drop_location and loc and loc[0] == "body":
            loc = loc[1:]
        loc = [t for t in loc if not (isinstance(t, str) and ("[" in t and t.endswith("]")))]
        out.append(
            {
                "path": pointer(loc),
                "code": issue_code(str(err.get("type", "invalid"))),
                "message": str(err.get("msg", "Invalid value")),
            }
        )
    return out


# -- handlers -------------------------------------------------------------------------


async def _problem_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.status,
        exc.code,
        exc.detail,
        title=exc.title,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers at the request's path (``HEAD`` wherever
    ``GET`` is, :mod:`updog.http.head`), sorted: the ``Allow`` of a 405 (RFC 9110 §10.2.1).
    Starlette's own 405 names the methods of the first route matching the path only."""
    path = request.url.path
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and getattr(route, "methods", None) and regex.match(path):
            methods |= set(route.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(
        request, status, code_for_status(status), detail, headers=headers or None
    )


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    refused = getattr(request.state, "body_refusal", None)
    if isinstance(refused, ProblemError):  # the body failed its guards (updog.http.routing)
        return await _problem_error_handler(request, refused)
    if isinstance(refused, RequestValidationError):  # … or its model, in strict JSON mode
        exc = refused
    raw = exc.errors()
    if raw and all(
        e.get("type") == "missing" and tuple(e.get("loc", ()))[-1:] == ("If-Match",) for e in raw
    ):  # a conditional write without its precondition: RFC 6585 §3
        return problem_response(
            request,
            428,
            "PRECONDITION_REQUIRED",
            "Send If-Match with the resource's ETag (from a GET of it) to change it.",
        )
    errors = pydantic_field_errors(raw[:MAX_REPORTED_ERRORS])
    return problem_response(
        request,
        422,
        "VALIDATION_FAILED",
        f"The request has {len(errors)} invalid field(s); see errors[].",
        errors=errors,
    )


async def _unhandled_handler(request: Request, exc: Exception) -> Response:
    rid = _request_id(request.scope)
    token = request_id_var.set(rid)
    try:
        _log.error(
            "unhandled_exception",
            path=request.url.path,
            method=request.method,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    finally:
        request_id_var.reset(token)
    return problem_response(
        request,
        500,
        "INTERNAL_ERROR",
        "An unexpected error occurred. Quote the request id when reporting it.",
    )


#: Store errors that reach the app unhandled by a route (each is the caller's fault).
_STORE_ERRORS: dict[str, tuple[int, str]] = {
    "NotFound": (404, "NOT_FOUND"),
    "StaleVersion": (412, "PRECONDITION_FAILED"),
    "NotPublished": (409, "FUND_NOT_PUBLISHED"),
    "DuplicateEmail": (409, "DUPLICATE_EMAIL"),
    "InvalidCursor": (422, "INVALID_CURSOR"),
}


async def _store_error_handler(request: Request, exc: Exception) -> Response:
    status, code = _STORE_ERRORS.get(type(exc).__name__, (422, "INVALID_REQUEST"))
    return problem_response(request, status, code, str(exc))


#: HTTP status of each kind of use-case refusal (:mod:`updog.service.errors`).
_SERVICE_STATUS: dict[str, int] = {
    "NotFound": 404,
    "Invalid": 422,
    "Conflict": 409,
    "PreconditionFailed": 412,
}


async def _service_error_handler(request: Request, exc: Exception) -> Response:
    from updog.service.errors import ServiceError

    assert isinstance(exc, ServiceError)
    status = next(
        (_SERVICE_STATUS[k.__name__] for k in type(exc).__mro__ if k.__name__ in _SERVICE_STATUS),
        422,
    )
    headers = {"ETag": exc.etag} if exc.etag else None
    return problem_response(
        request, status, exc.code, exc.detail, errors=exc.errors, headers=headers
    )


async def _engine_result_invalid_handler(request: Request, exc: Exception) -> Response:
    _log.error("engine_result_invalid", reason=str(exc), path=request.url.path)
    return problem_response(
        request,
        500,
        "ENGINE_RESULT_INVALID",
        "The engine produced a result that cannot be stored (non-finite or invalid values). "
        "Quote the request id when reporting it.",
    )


async def _engine_guard_handler(request: Request, exc: Exception) -> Response:
    _log.warning("engine_guard_failed", reason=str(exc), path=request.url.path)
    return problem_response(
        request,
        422,
        "ENGINE_GUARD_FAILED",
        f"The engine could not produce a trustworthy result for this fund: {exc}",
    )


async def _database_unavailable_handler(request: Request, exc: Exception) -> Response:
    from updog.resilience.postgres import is_contention

    if is_contention(exc):  # a lock timeout or deadlock between requests: retry soon
        _log.info("database_contention", error=type(exc).__name__, path=request.url.path)
        return problem_response(
            request,
            503,
            "DATABASE_CONTENTION",
            "The request collided with another one on the same data; retry shortly.",
            headers={"Retry-After": "1"},
        )
    _log.warning("database_unavailable", error=type(exc).__name__, path=request.url.path)
    return problem_response(
        request,
        503,
        "DATABASE_UNAVAILABLE",
        "The database is unavailable or overloaded; retry shortly.",
        headers={"Retry-After": "5"},
    )


async def _circuit_open_handler(request: Request, exc: Exception) -> Response:
    """A circuit breaker refused the call: 503 with ``Retry-After`` = its remaining wait."""
    from updog.resilience.breaker import CallNotPermittedError

    assert isinstance(exc, CallNotPermittedError)
    code = "DATABASE_UNAVAILABLE" if exc.breaker == "pg" else "DEPENDENCY_UNAVAILABLE"
    return problem_response(
        request,
        503,
        code,
        f"A dependency ({exc.breaker}) is failing; requests to it are paused. "
        f"Retry after {exc.retry_after} s.",
        headers={"Retry-After": str(exc.retry_after)},
        extra={"breaker": exc.breaker},
    )


def install_problem_handlers(app: FastAPI) -> None:
    """Register the problem+json exception handlers on ``app``.

    Besides the HTTP and validation errors: the use cases' refusals
    (:mod:`updog.service.errors`: not found 404, invalid 422, conflict 409, stale entity tag
    412 with the current ``ETag``), an engine result that cannot be stored (500
    ``ENGINE_RESULT_INVALID``), the store's errors (the caller's fault: 404,
    409, 412, 422) as a safety net behind the routes' own mapping, and an unreachable or
    saturated database (``psycopg.OperationalError``, pool timeout / queue full) as 503
    ``DATABASE_UNAVAILABLE`` with ``Retry-After`` rather than a 500; lock timeouts and
    deadlocks as 503 ``DATABASE_CONTENTION`` (``Retry-After: 1``); an OPEN circuit breaker
    as 503 with ``Retry-After`` = the breaker's remaining wait.
    """
    import psycopg

    from updog.model.guards import EngineGuardError
    from updog.service.errors import ServiceError
    from updog.service.results import EngineResultInvalid
    from updog.store.repositories import StoreError

    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(EngineResultInvalid, _engine_result_invalid_handler)
    app.add_exception_handler(EngineGuardError, _engine_guard_handler)
    app.add_exception_handler(StoreError, _store_error_handler)
    # psycopg_pool's PoolTimeout and TooManyRequests are OperationalErrors too.
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable_handler)
    # An OPEN breaker (``pg``'s refusal is an OperationalError too; this handler wins, being
    # earlier in its MRO): 503 with Retry-After = the breaker's remaining wait.
    from updog.resilience.breaker import CallNotPermittedError

    app.add_exception_handler(CallNotPermittedError, _circuit_open_handler)
    app.add_exception_handler(ProblemError, _problem_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(Exception, _unhandled_handler)
