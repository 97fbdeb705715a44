"""The route class of every API operation: JSON bodies pass the guards, then their model in
strict JSON mode, before the operation runs.

:class:`GuardedRoute` is FastAPI's ``APIRoute`` with two steps in front of an operation that
takes a body:

1. :func:`updog.http.bodies.read_json` — media type, size, UTF-8, finite numbers, no NUL,
   bounded depth and lists, no duplicate keys (415/400/422 problems);
2. the operation's body model, validated in pydantic's **strict JSON mode**: JSON strings
   are dates, decimals and enum values where the model says so, but a string is never a
   number, a number never a boolean (422 ``VALIDATION_FAILED`` with every error's JSON
   Pointer, as FastAPI's own validation errors).

Both refusals are answered once the caller is authenticated (an anonymous caller learns
nothing about bodies): the route then binds no body, and the validation handler sends the
refusal. The parsed JSON stays available as :func:`json_body`. So one schema — the pydantic
model — validates the body and documents it, and the guards JSON Schema cannot express still
run first.

Why our own code: FastAPI parses JSON with the standard library as is (``NaN``, ``1e999``,
NUL characters and duplicate keys all pass) and validates bodies in pydantic's lax Python
mode (``"12"`` is an integer there); its documented hook before binding is the route class
(FastAPI docs, "Custom Request and APIRoute class").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from updog.http.bodies import read_json
from updog.http.problems import ProblemError


def json_body(request: Request) -> Any:
    """The request's body as parsed by the guards (before its model read it)."""
    return request.state.json_body


class GuardedRoute(APIRoute):
    """An ``APIRoute`` whose JSON body is guarded and validated strictly (module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler
        model: TypeAdapter[Any] = TypeAdapter(self.body_field.field_info.annotation or Any)

        async def guarded(request: Request) -> Response:
            # Starlette's Request caches the parsed body in ``_json``; FastAPI's
            # request.json() reads it back instead of parsing the bytes again.
            try:
                body = await read_json(request)
                request.state.json_body = body
                request._json = model.validate_json(json.dumps(body), strict=True)
            except ProblemError as problem:
                refuse(request, problem)
            except ValidationError as exc:
                errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                refuse(request, RequestValidationError(errors))
            return await handler(request)

        return guarded


def refuse(request: Request, refusal: ProblemError | RequestValidationError) -> None:
    """Bind no body and leave ``refusal`` for the validation handler, which sends it once the
    operation's dependencies (authentication) have passed."""
    request.state.body_refusal = refusal
    request._json = None
    if not hasattr(request, "_body"):  # the read itself failed (too large)
        request._body = b""
