"""Parameters the operations of every API version share, declared once: FastAPI validates
them and documents them in each version's OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Header, Path, Query

#: ``Idempotency-Key`` on the operations that create something (SPEC §6.5, IETF
#: draft-ietf-httpapi-idempotency-key-header): optional — without it a retried request may
#: apply twice; with it a retry returns the first response (``Idempotent-Replayed: true``).
#: The middleware (:mod:`updog.protection.idempotency`) acts on it before routing.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Optional but recommended for retries: a unique key (1..255 visible "
        "ASCII characters) per intended operation. A retry with the same key and body returns "
        "the stored response; the same key with another body is 422; a retry while the first "
        "is running is 409.",
    ),
]

#: ``If-Match`` of a conditional write (RFC 9110 §13.1.1): required (428 without it).
IfMatch = Annotated[
    str,
    Header(
        alias="If-Match",
        min_length=1,
        max_length=1024,
        description="The fund's ETag (from GET /funds/{id}), or several, or *. Missing → 428 "
        "PRECONDITION_REQUIRED; stale → 412 PRECONDITION_FAILED.",
    ),
]

#: ``If-Match`` where it is optional: given, a stale tag is refused (412).
OptionalIfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1024,
        description="Optional: the ETag of the revision reviewed; 412 when no longer current.",
    ),
]

#: ``If-None-Match`` of a read (RFC 9110 §13.1.2): 304 when a listed tag is current.
IfNoneMatch = Annotated[
    str | None,
    Header(alias="If-None-Match", max_length=1024, description="304 when it names the ETag."),
]

_UUID = {"format": "uuid"}

FundId = Annotated[
    str, Path(description="The fund's id (a UUID; anything else is 404).", json_schema_extra=_UUID)
]
SimulationId = Annotated[
    str,
    Path(
        description="The simulation's id (a UUID; anything else is 404).", json_schema_extra=_UUID
    ),
]

#: Which version of a fund a result is computed from.
VersionQuery = Annotated[
    Literal["published", "draft"],
    Query(description="published (default), or draft: preview the current draft if it validates."),
]


def if_match_tags(header: str) -> list[str]:
    """Entity tags listed in an ``If-Match``/``If-None-Match`` header (``*`` kept as is)."""
    return [t.strip() for t in header.split(",") if t.strip()]
