"""Pydantic models of the API's request and response bodies (the OpenAPI source).

Fund specs themselves are opaque JSON objects here: the engine's ``FundSpec`` validates
them (:mod:`updog.model.spec`); the API only guards the raw JSON (:mod:`updog.http.bodies`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from updog.http.openapi import Issue

#: Descriptions of the two counters of a fund (also in the README's API section).
DRAFT_REVISION = (
    "Revision of the current draft: 1 when the fund is created, +1 with every saved change "
    "(the ETag names it)."
)
VERSION_ALIAS = "Deprecated: the same number as draft_revision (kept for v1 clients)."
PUBLISHED_VERSION = (
    "Latest published version: 1 for the fund's first publication, 2 for the second, … ; "
    "null before the first. Earlier releases put the published draft revision here; that "
    "number is now published_revision."
)
PUBLISHED_REVISION = "The draft revision the latest published version was made from, or null."


class FundOut(BaseModel):
    """A fund with its current draft and its latest published version (if any)."""

    id: str
    name: str | None = None
    draft_revision: int = Field(description=DRAFT_REVISION)
    version: int = Field(description=VERSION_ALIAS, deprecated=True)
    published_version: int | None = Field(default=None, description=PUBLISHED_VERSION)
    published_revision: int | None = Field(default=None, description=PUBLISHED_REVISION)
    status: Literal["draft", "published"]
    etag: str = Field(description="Entity tag of the draft; send it as If-Match.")
    spec: dict[str, Any] = Field(description="The draft FundSpec (may be incomplete).")
    created_at: datetime | None = None
    updated_at: datetime | None = None


class FundSummary(BaseModel):
    """A fund in a listing (no spec)."""

    id: str
    name: str | None = None
    draft_revision: int = Field(description=DRAFT_REVISION)
    version: int = Field(description=VERSION_ALIAS, deprecated=True)
    published_version: int | None = Field(default=None, description=PUBLISHED_VERSION)
    published_revision: int | None = Field(default=None, description=PUBLISHED_REVISION)
    status: Literal["draft", "published"]
    updated_at: datetime | None = None


class FundList(BaseModel):
    """One page of funds; pass ``next_cursor`` as ``cursor`` for the next (null at the end)."""

    items: list[FundSummary]
    next_cursor: str | None = None


class PublishOut(BaseModel):
    """Result of publishing: the published version and non-blocking warnings."""

    id: str
    draft_revision: int = Field(description=DRAFT_REVISION)
    version: int = Field(description=VERSION_ALIAS, deprecated=True)
    published_version: int = Field(
        description="The version published: 1 for the fund's first publication, 2 for the "
        "second, … (publishing the same draft revision again keeps its number)."
    )
    published_revision: int = Field(description="The draft revision that was published.")
    etag: str
    warnings: list[Issue] = Field(default_factory=list)


class Provenance(BaseModel):
    """What produced a stored result (SPEC §3.3 "Provenance")."""

    engine_version: str
    spec_version: int = Field(description="The draft revision of the spec computed.")
    spec_hash: str
    seed: int | None = None


class ForecastOut(BaseModel):
    """A deterministic forecast (``result`` = ``{"summary": {...}, "quarters": [...]}``)."""

    id: str | None = None
    fund_id: str
    revision: int = Field(description="The draft revision of the spec forecast.")
    published_version: int | None = Field(
        description="Its published version number; null for a preview of an unpublished draft."
    )
    version: int = Field(description="Deprecated: the same number as revision.", deprecated=True)
    kind: Literal["draft", "published"]
    provenance: Provenance
    cached: bool = Field(description="True when a stored result was reused.")
    result: dict[str, Any]


class SimulationOut(BaseModel):
    """A stored simulation: parameters, status, provenance and result."""

    id: str
    fund_id: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1)
    runs: int
    seed: int
    revision: int | None = Field(default=None, description="The draft revision simulated.")
    published_version: int | None = Field(
        default=None,
        description="Its published version number; null for a preview of an unpublished draft.",
    )
    version: int | None = Field(
        default=None, description="Deprecated: the same number as revision.", deprecated=True
    )
    kind: Literal["draft", "published"] | None = None
    provenance: Provenance
    result: dict[str, Any] | None = Field(
        default=None,
        description='The engine result: {"runs", "seed", "metrics": {...}, '
        '"probabilities": {...}, ...}; null until succeeded.',
    )
    error: dict[str, Any] | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None


class LoginRequest(BaseModel):
    """``POST /auth/login`` body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    """The authenticated identity."""

    user_id: str
    email: str | None = None
    org_id: str
    role: str
    csrf_token: str | None = Field(
        default=None, description="Send as X-CSRF-Token on writes made with the session cookie."
    )
