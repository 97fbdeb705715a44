"""What an operation's OpenAPI entry says about errors: every problem status it can answer,
as ``application/problem+json`` (RFC 9457) with the :class:`Problem` schema.

:func:`problem_responses` gives the ``responses=`` of a route: the statuses every
authenticated operation can answer (401, 403, 429 and 503 — rate limits, load shedding,
draining and an unavailable database answer before any route does), 400/413/415 for an
operation with a body, 422 for one with parameters or a body, plus the operation's own.
The schema is inlined (it names no component), so an operation's document is complete
wherever it is read.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, Field


class Issue(BaseModel):
    """A validation error or warning: JSON Pointer (RFC 6901) path, code, message."""

    path: str = Field(examples=["/stages/2/graduation_rate"])
    code: str = Field(examples=["OUT_OF_RANGE"])
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details as this API sends them (``application/problem+json``)."""

    type: str = Field(description="URI reference naming the problem type.")
    title: str
    status: int
    detail: str
    instance: str | None = Field(default=None, description="The request path.")
    code: str = Field(description="Stable UPPER_SNAKE error code.")
    request_id: str | None = None
    errors: list[Issue] = Field(default_factory=list)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its local ``$defs`` references replaced by the definitions."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    out: dict[str, Any] = walk(schema)
    return out


#: The problem document's JSON Schema, self-contained.
PROBLEM_SCHEMA = _inlined(Problem.model_json_schema())

#: Answered before routing, by every authenticated operation: no or bad credentials, a role
#: too low, a rate limit, and a service that cannot serve (shedding, draining, database).
COMMON = (401, 403, 429, 503)
#: Answered by the body guards of an operation with a body.
BODY = (400, 413, 415, 422)

_WHY = {
    400: "Malformed JSON, or an invalid header (e.g. Idempotency-Key).",
    401: "No credential, or an unknown, revoked or expired one.",
    403: "The caller's role may not do this, or the CSRF token is missing.",
    404: "No such resource in the caller's organisation.",
    409: "The request conflicts with the resource's current state.",
    412: "If-Match names a revision that is no longer current.",
    413: "The body is larger than the limit.",
    415: "The body is not application/json.",
    422: "The input breaks a rule; errors[] lists every problem with its JSON Pointer.",
    428: "If-Match is required.",
    429: "Too many requests: retry after Retry-After seconds.",
    503: "Overloaded, shutting down or a dependency is unavailable: retry after Retry-After.",
}


def problem_response(status: int) -> dict[str, Any]:
    """The OpenAPI response object of a problem ``status``."""
    return {
        "description": _WHY.get(status, HTTPStatus(status).phrase),
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


def problem_responses(
    *statuses: int, body: bool = False, public: bool = False
) -> dict[int | str, Any]:
    """``responses=`` of an operation: :data:`COMMON` (without 401/403 when ``public``),
    :data:`BODY` when it takes a body, 422 for its parameters, and ``statuses``."""
    wanted = set(statuses) | {422, 429, 503}
    if not public:
        wanted |= {401, 403}
    if body:
        wanted |= set(BODY)
    return {status: problem_response(status) for status in sorted(wanted)}
