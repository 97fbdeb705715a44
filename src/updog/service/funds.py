"""Funds: create, read, list, save the draft, publish, and the version a result is computed
from.

Drafts follow the draft rules of :func:`updog.model.spec.validate_draft` (types and ranges of
the fields present; missing fields allowed); publishing needs a complete, valid spec
(:func:`updog.model.validation.validate_publish`), whose warnings never block. Concurrent
edits are guarded by entity tags (RFC 9110 §13.1.1): the draft's ETag names its revision, a
write with a stale tag is refused (:class:`~updog.service.errors.PreconditionFailed`); ``*``
matches any revision.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from updog.model.spec import FundSpec, validate_draft
from updog.model.validation import validate_publish
from updog.service.errors import Conflict, Invalid, NotFound, PreconditionFailed
from updog.store import repositories as repo
from updog.store.db import Connection
from updog.store.repositories import FundPage, FundRecord, FundVersion, Identity

#: Which version of a fund a result is computed from.
Which = Literal["published", "draft"]


@dataclass(frozen=True, slots=True)
class Publication:
    """A published fund and the warnings of its spec (``{path, code, message}`` each)."""

    fund: FundRecord
    warnings: list[dict[str, Any]] = field(default_factory=list)


def spec_name(spec: object) -> str | None:
    """The fund's ``name`` when the spec carries one as text."""
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return str(spec["name"])
    return None


def _matches(fund: FundRecord, if_match: Sequence[str]) -> bool:
    return "*" in if_match or fund.etag in if_match


def _check_draft(spec: object) -> None:
    issues = validate_draft(spec)
    if issues:
        raise Invalid(
            "VALIDATION_FAILED",
            f"The draft has {len(issues)} error(s); see errors[].",
            errors=issues,
        )


def create(conn: Connection, identity: Identity, spec: object) -> FundRecord:
    """Store ``spec`` as draft revision 1 of a new fund of the caller's organisation (one
    statement). Raises :class:`Invalid` with every draft error."""
    _check_draft(spec)
    assert isinstance(spec, dict)
    try:
        return repo.create_fund(conn, identity.org_id, identity.user_id, spec_name(spec), spec)
    except ValueError as exc:  # the store's own checks (name length, JSON object)
        raise Invalid("VALIDATION_FAILED", str(exc)) from None


def get(conn: Connection, identity: Identity, fund_id: uuid.UUID) -> FundRecord:
    """The fund with its current draft. Raises :class:`NotFound`."""
    fund = repo.get_fund(conn, identity.org_id, fund_id)
    if fund is None:
        raise NotFound("fund", fund_id)
    return fund


def listing(conn: Connection, identity: Identity, limit: int, cursor: str | None) -> FundPage:
    """One page of the organisation's funds, newest first (keyset pagination: pass
    ``next_cursor`` back as ``cursor``). Raises :class:`Invalid` ``INVALID_CURSOR`` for a
    cursor the listing did not produce (its error points at the ``cursor`` query parameter,
    ``/query/cursor``)."""
    try:
        return repo.list_funds(conn, identity.org_id, limit, cursor)
    except repo.InvalidCursor:
        raise Invalid(
            "INVALID_CURSOR",
            "The cursor was not produced by this listing.",
            errors=[
                {"path": "/query/cursor", "code": "INVALID_CURSOR", "message": "Unknown cursor."}
            ],
        ) from None


def save_draft(
    conn: Connection,
    identity: Identity,
    fund_id: uuid.UUID,
    spec: object,
    *,
    if_match: Sequence[str],
) -> FundRecord:
    """Replace the draft with ``spec`` as its next revision, if ``if_match`` names the current
    one. Raises :class:`NotFound`, :class:`PreconditionFailed` (with the current ETag) and
    :class:`Invalid` (every draft error)."""
    fund = get(conn, identity, fund_id)
    if not _matches(fund, if_match):
        raise PreconditionFailed(
            "The draft has changed since you read it; fetch it again and reapply your edit.",
            etag=fund.etag,
        )
    _check_draft(spec)
    assert isinstance(spec, dict)
    try:
        return repo.replace_draft(
            conn,
            identity.org_id,
            fund_id,
            spec,
            fund.draft_revision,
            user_id=identity.user_id,
            name=spec_name(spec),
        )
    except repo.StaleVersion:
        raise PreconditionFailed("The draft changed while this edit was applied.") from None
    except repo.NotFound:
        raise NotFound("fund", fund_id) from None
    except ValueError as exc:
        raise Invalid("VALIDATION_FAILED", str(exc)) from None


def publish(
    conn: Connection,
    identity: Identity,
    fund_id: uuid.UUID,
    *,
    if_match: Sequence[str] | None = None,
) -> Publication:
    """Publish the current draft (its revision becomes the next published version; the
    revision already published changes nothing). ``if_match``, when given, makes sure the
    revision published is the one the caller reviewed. Raises :class:`NotFound`,
    :class:`PreconditionFailed`, :class:`Invalid` (every error of the spec) and
    :class:`Conflict` ``DRAFT_CHANGED`` (the draft moved while publishing)."""
    fund = get(conn, identity, fund_id)
    if if_match is not None and not _matches(fund, if_match):
        raise PreconditionFailed("The draft has changed since you read it.", etag=fund.etag)
    spec, errors, warnings = validate_publish(fund.spec)
    if spec is None:
        raise Invalid(
            "VALIDATION_FAILED",
            f"The fund cannot be published: {len(errors)} error(s); see errors[].",
            errors=errors,
        )
    try:
        published = repo.publish(
            conn, identity.org_id, fund_id, fund.draft_revision, user_id=identity.user_id
        )
    except repo.StaleVersion:
        raise Conflict(
            "DRAFT_CHANGED", "The draft changed while publishing; review it and retry."
        ) from None
    except repo.NotFound:
        raise NotFound("fund", fund_id) from None
    return Publication(published, [dict(w) for w in warnings])


def version_of(
    conn: Connection, identity: Identity, fund_id: uuid.UUID, which: Which
) -> FundVersion:
    """The published version of a fund, or its current draft (``which="draft"``: a preview).
    Raises :class:`NotFound` and :class:`Conflict` ``FUND_NOT_PUBLISHED``."""
    try:
        version = repo.get_spec(conn, identity.org_id, fund_id, which)
    except repo.NotPublished:
        raise Conflict(
            "FUND_NOT_PUBLISHED",
            f"Fund {fund_id} has no published version; publish it, or pass ?version=draft "
            "to preview a draft that validates.",
        ) from None
    if version is None:
        raise NotFound("fund", fund_id)
    return version


def valid_spec(version: FundVersion) -> FundSpec:
    """The engine's spec of ``version``. Raises :class:`Invalid` (every error) when it does
    not validate — a draft being previewed, or a version this engine reads differently."""
    spec, errors, _warnings = validate_publish(version.spec)
    if spec is None:
        raise Invalid(
            "VALIDATION_FAILED",
            f"Revision {version.revision} of the fund does not validate; fix the draft "
            "(and publish it) to compute results.",
            errors=errors,
        )
    return spec
