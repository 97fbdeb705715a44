"""What a use case refuses, independent of how it is asked (HTTP status mapping lives in
:mod:`updog.http.problems`, pages in :mod:`updog.web`).

Each error has a stable UPPER_SNAKE ``code`` (the same vocabulary as the API's problems), a
sentence for people (``detail``) and, for invalid input, ``errors``: one
``{path, code, message}`` per problem, ``path`` a JSON Pointer (RFC 6901) into the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ServiceError(Exception):
    """A use case refused the request; subclasses say why."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        errors: Iterable[Mapping[str, Any]] = (),
        etag: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.errors = [dict(e) for e in errors]
        #: The current entity tag, when the refusal is about a stale one.
        self.etag = etag


class NotFound(ServiceError):
    """No such thing in the caller's organisation (``FUND_NOT_FOUND``, …)."""

    def __init__(self, what: str, ident: object = None) -> None:
        detail = f"No {what} with that id." if ident is None else f"No {what} {ident}."
        super().__init__(f"{what.upper().replace(' ', '_')}_NOT_FOUND", detail)
        self.what = what


class Invalid(ServiceError):
    """The input breaks a rule (``VALIDATION_FAILED`` with every error, …)."""


class Conflict(ServiceError):
    """The request does not fit the resource's current state (``FUND_NOT_PUBLISHED``,
    ``DRAFT_CHANGED``, ``SIMULATION_NOT_CANCELLABLE``)."""


class PreconditionFailed(ServiceError):
    """The caller's entity tag is no longer current (``PRECONDITION_FAILED``); ``etag`` is
    the current one."""

    def __init__(self, detail: str, etag: str | None = None) -> None:
        super().__init__("PRECONDITION_FAILED", detail, etag=etag)
