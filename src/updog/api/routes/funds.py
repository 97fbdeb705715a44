"""``/api/v1/funds``: create, list, read, replace the draft, publish, forecast, simulate.

Every query goes through the caller's organisation: another organisation's fund is a 404,
exactly like a missing one (never a 403 that would confirm it exists).

Two counters, never mixed: ``draft_revision`` counts saved changes of the draft (every
``PUT …/draft`` adds one); ``published_version`` counts publications (1 for the first). The
deprecated ``version`` field repeats the draft revision for v1 clients; ``published_version``
used to hold the published draft revision, now ``published_revision``.

Conditional requests (RFC 9110 §13): the ETag names the fund's draft revision. ``PUT
/funds/{id}/draft`` requires ``If-Match`` (RFC 6585 §3: 428 without it) and answers 412
when no listed tag is current; ``GET /funds/{id}`` honours ``If-None-Match`` (304).
Request bodies are parsed by :mod:`updog.http.bodies` (size, media type, finite numbers,
no NUL, bounded depth and lists) before the engine's validators see them.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from updog import ENGINE_VERSION
from updog.api.results import (
    checked_json,
    compute_simulation,
    fault_plan,
    result_counters,
    simulation_body,
)
from updog.api.routes import API_PREFIX
from updog.api.schemas import (
    MAX_SEED,
    ForecastOut,
    FundList,
    FundOut,
    Issue,
    Problem,
    PublishOut,
    SimulationOut,
    SimulationRequest,
)
from updog.http.auth import Analyst, Viewer
from updog.http.bodies import read_json
from updog.http.deps import db_call, get_settings
from updog.http.problems import FieldError, ProblemError, pydantic_field_errors
from updog.model.spec import FundSpec, validate_draft
from updog.model.validation import validate_publish
from updog.protection.idempotency import commit_with_response
from updog.store import repositories as repo
from updog.store.repositories import FundRecord, FundVersion, Identity

router = APIRouter(prefix=f"{API_PREFIX}/funds", tags=["funds"])

_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
_SPEC_BODY = {
    "requestBody": {
        "required": True,
        "description": "A FundSpec as JSON. Drafts may be incomplete.",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FundSpec"}}},
    }
}
#: ``Idempotency-Key`` on the routes that create something (SPEC §6.5, IETF
#: draft-ietf-httpapi-idempotency-key-header): optional — without it a retried request may
#: apply twice; with it a retry returns the first response (``Idempotent-Replayed: true``).
IDEMPOTENCY_KEY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Optional but recommended for retries: a unique key (1..255 characters) "
    "per intended operation. A retry with the same key and body returns the stored response; "
    "the same key with another body is 422; a retry while the first is running is 409.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
_IDEMPOTENT = {"parameters": [IDEMPOTENCY_KEY_HEADER]}
#: Seeds drawn by the server stay below 2**53 so they survive JSON clients using doubles.
_DRAWN_SEED_BITS = 53


# -- helpers ----------------------------------------------------------------------------


def fund_url(request: Request, fund_id: uuid.UUID) -> str:
    """Path of a fund resource (the Location of a created fund)."""
    root: str = request.scope.get("root_path", "")
    return f"{root}{API_PREFIX}/funds/{fund_id}"


def parse_id(raw: str, what: str = "fund") -> uuid.UUID:
    """A path id as UUID; a malformed id names no resource, so it is a 404."""
    try:
        return uuid.UUID(raw)
    except ValueError:  # never echo the malformed text back
        raise ProblemError(404, f"{what.upper()}_NOT_FOUND", f"No {what} with that id.") from None


def not_found(what: str, raw: object) -> ProblemError:
    return ProblemError(404, f"{what.upper()}_NOT_FOUND", f"No {what} {raw}.")


def fund_counters(fund: FundRecord) -> dict[str, int | None]:
    """The revision and version numbers of a fund's representations (see the module doc)."""
    return {
        "draft_revision": fund.draft_revision,
        "version": fund.draft_revision,
        "published_version": fund.published_version,
        "published_revision": fund.published_revision,
    }


def fund_json(fund: FundRecord) -> dict[str, Any]:
    """The representation of a fund (``FundOut``)."""
    return FundOut(
        id=str(fund.id),
        name=fund.name,
        **fund_counters(fund),
        status=fund.status,
        etag=fund.etag,
        spec=fund.spec,
        created_at=fund.created_at,
        updated_at=fund.updated_at,
    ).model_dump(mode="json")


def _issues_error(
    issues: list[dict[str, Any]] | list[Any], detail: str, code: str = "VALIDATION_FAILED"
) -> ProblemError:
    return ProblemError(422, code, detail, errors=[dict(i) for i in issues])


def _spec_name(spec: object) -> str | None:
    if isinstance(spec, dict) and isinstance(spec.get("name"), str):
        return str(spec["name"])
    return None


def _if_match_tags(header: str) -> list[str]:
    """Entity tags listed in an ``If-Match`` header (``*`` kept as is)."""
    return [t.strip() for t in header.split(",") if t.strip()]


async def _load_fund(request: Request, identity: Identity, fund_id: uuid.UUID) -> FundRecord:
    fund = await db_call(request, repo.get_fund, identity.org_id, fund_id)
    if fund is None:
        raise not_found("fund", fund_id)
    return fund


async def _load_version(
    request: Request, identity: Identity, fund_id: uuid.UUID, which: Literal["published", "draft"]
) -> FundVersion:
    try:
        version = await db_call(request, repo.get_spec, identity.org_id, fund_id, which)
    except repo.NotPublished:
        raise ProblemError(
            409,
            "FUND_NOT_PUBLISHED",
            f"Fund {fund_id} has no published version; publish it, or pass ?version=draft "
            "to preview a draft that validates.",
        ) from None
    if version is None:
        raise not_found("fund", fund_id)
    return version


async def _valid_spec(version: FundVersion) -> FundSpec:
    spec, errors, _warnings = await run_in_threadpool(validate_publish, version.spec)
    if spec is None:
        raise _issues_error(
            errors,
            f"Revision {version.revision} of the fund does not validate; fix the draft "
            "(and publish it) to compute results.",
        )
    return spec


# -- routes -----------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=FundOut,
    summary="Create a fund from a (possibly incomplete) FundSpec (Idempotency-Key optional)",
    responses={400: _PROBLEM, 413: _PROBLEM, 415: _PROBLEM, 422: _PROBLEM},
    openapi_extra={**_SPEC_BODY, **_IDEMPOTENT},
)
async def create_fund(request: Request, identity: Identity = Analyst) -> Response:
    """Store the body as draft revision 1. Draft rules apply: the fields present must have the
    right types and ranges; missing ones are allowed. 201 with ``Location`` and ``ETag``."""
    body = await read_json(request)
    issues = await run_in_threadpool(validate_draft, body)
    if issues:
        raise _issues_error(issues, f"The draft has {len(issues)} error(s); see errors[].")
    name = _spec_name(body)

    def create(conn: Any) -> Response:  # the fund and the idempotency record: one commit
        fund = repo.create_fund(conn, identity.org_id, identity.user_id, name, body)
        return JSONResponse(
            fund_json(fund),
            status_code=201,
            headers={"Location": fund_url(request, fund.id), "ETag": fund.etag},
        )

    try:
        # repo.create_fund is one INSERT … RETURNING statement (both rows).
        return await commit_with_response(request, create, single_statement=True)
    except ValueError as exc:  # the store's own checks (name length, JSON object)
        raise ProblemError(422, "VALIDATION_FAILED", str(exc)) from None


@router.get("", response_model=FundList, summary="List the organisation's funds, newest first")
async def list_funds(
    request: Request,
    limit: int = Query(50, ge=1, le=repo.MAX_PAGE_SIZE),
    cursor: str | None = Query(None, max_length=512),
    identity: Identity = Viewer,
) -> Response:
    """Keyset pagination: pass ``next_cursor`` back as ``cursor``; null on the last page."""
    try:
        page = await db_call(request, repo.list_funds, identity.org_id, limit, cursor)
    except repo.InvalidCursor:
        raise ProblemError(
            422,
            "INVALID_CURSOR",
            "The cursor was not produced by this listing.",
            errors=[FieldError("/query/cursor", "INVALID_CURSOR", "Unknown cursor.")],
        ) from None
    items = [
        {
            "id": str(f.id),
            "name": f.name,
            **fund_counters(f),
            "status": f.status,
            "updated_at": f.updated_at.isoformat(),
        }
        for f in page.items
    ]
    return JSONResponse({"items": items, "next_cursor": page.next_cursor})


@router.get(
    "/{fund_id}",
    response_model=FundOut,
    summary="Read a fund and its draft",
    responses={404: _PROBLEM},
)
async def get_fund(request: Request, fund_id: str, identity: Identity = Viewer) -> Response:
    """The fund with its current draft spec; ``ETag`` names the draft revision."""
    fund = await _load_fund(request, identity, parse_id(fund_id))
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or fund.etag in _if_match_tags(inm)):
        return Response(status_code=304, headers={"ETag": fund.etag})
    return JSONResponse(fund_json(fund), headers={"ETag": fund.etag})


@router.put(
    "/{fund_id}/draft",
    response_model=FundOut,
    summary="Replace the draft (full replace; If-Match required)",
    responses={404: _PROBLEM, 412: _PROBLEM, 422: _PROBLEM, 428: _PROBLEM},
    openapi_extra=_SPEC_BODY,
)
async def replace_draft(request: Request, fund_id: str, identity: Identity = Analyst) -> Response:
    """Replace the draft with the body as a new revision. ``If-Match`` must carry the current
    ETag (RFC 9110 §13.1.1): missing → 428 ``PRECONDITION_REQUIRED``, stale → 412
    ``PRECONDITION_FAILED``. The response carries the new ETag."""
    fid = parse_id(fund_id)
    if_match = request.headers.get("if-match")
    if not if_match or not if_match.strip():
        raise ProblemError(
            428,
            "PRECONDITION_REQUIRED",
            "Send If-Match with the fund's ETag (from GET /funds/{id}) to replace the draft.",
        )
    body = await read_json(request)
    fund = await _load_fund(request, identity, fid)
    tags = _if_match_tags(if_match)
    if "*" not in tags and fund.etag not in tags:
        raise ProblemError(
            412,
            "PRECONDITION_FAILED",
            "The draft has changed since you read it; fetch it again and reapply your edit.",
            headers={"ETag": fund.etag},
        )
    issues = await run_in_threadpool(validate_draft, body)
    if issues:
        raise _issues_error(issues, f"The draft has {len(issues)} error(s); see errors[].")
    try:
        updated = await db_call(
            request,
            repo.replace_draft,
            identity.org_id,
            fid,
            body,
            fund.draft_revision,
            user_id=identity.user_id,
            name=_spec_name(body),
        )
    except repo.StaleVersion:
        raise ProblemError(
            412, "PRECONDITION_FAILED", "The draft changed while this edit was applied."
        ) from None
    except repo.NotFound:
        raise not_found("fund", fid) from None
    except ValueError as exc:
        raise ProblemError(422, "VALIDATION_FAILED", str(exc)) from None
    return JSONResponse(fund_json(updated), headers={"ETag": updated.etag})


@router.post(
    "/{fund_id}/publish",
    response_model=PublishOut,
    summary="Validate the draft completely and publish it (Idempotency-Key optional)",
    responses={404: _PROBLEM, 409: _PROBLEM, 412: _PROBLEM, 422: _PROBLEM},
    openapi_extra=_IDEMPOTENT,
)
async def publish_fund(request: Request, fund_id: str, identity: Identity = Analyst) -> Response:
    """Publish the current draft. 422 ``VALIDATION_FAILED`` lists every error with its JSON
    Pointer; warnings do not block and come back in the body. An optional ``If-Match``
    makes sure the version published is the one the caller reviewed (412 otherwise)."""
    fid = parse_id(fund_id)
    fund = await _load_fund(request, identity, fid)
    if_match = request.headers.get("if-match")
    if if_match:
        tags = _if_match_tags(if_match)
        if "*" not in tags and fund.etag not in tags:
            raise ProblemError(
                412,
                "PRECONDITION_FAILED",
                "The draft has changed since you read it.",
                headers={"ETag": fund.etag},
            )
    spec, errors, warnings = await run_in_threadpool(validate_publish, fund.spec)
    if spec is None:
        raise _issues_error(
            errors,
            f"The fund cannot be published: {len(errors)} error(s); see errors[].",
        )

    def publish(conn: Any) -> Response:  # the publication and the idempotency record
        published = repo.publish(
            conn, identity.org_id, fid, fund.draft_revision, user_id=identity.user_id
        )
        assert published.published_version is not None
        assert published.published_revision is not None
        body = PublishOut(
            id=str(published.id),
            draft_revision=published.draft_revision,
            version=published.draft_revision,
            published_version=published.published_version,
            published_revision=published.published_revision,
            etag=published.etag,
            warnings=[Issue.model_validate(w) for w in warnings],
        ).model_dump(mode="json")
        return JSONResponse(body, headers={"ETag": published.etag})

    try:
        return await commit_with_response(request, publish)
    except repo.StaleVersion:
        raise ProblemError(
            409, "DRAFT_CHANGED", "The draft changed while publishing; review it and retry."
        ) from None
    except repo.NotFound:
        raise not_found("fund", fid) from None


@router.get(
    "/{fund_id}/forecast",
    response_model=ForecastOut,
    summary="Deterministic quarterly forecast of the published version (or the draft)",
    responses={404: _PROBLEM, 409: _PROBLEM, 422: _PROBLEM},
)
async def get_forecast(
    request: Request,
    fund_id: str,
    version: Literal["published", "draft"] = Query("published"),
    identity: Identity = Viewer,
) -> Response:
    """The forecast of the published version (``?version=draft``: of the current draft, when
    it validates). Unpublished without ``?version=draft`` → 409 ``FUND_NOT_PUBLISHED``.

    Results are stored per (draft revision, engine version) with their provenance and reused:
    ``cached`` says whether this answer was computed now.
    """
    from updog.model.forecast import run_forecast

    fid = parse_id(fund_id)
    fv = await _load_version(request, identity, fid, version)
    stored = await db_call(request, repo.get_forecast, identity.org_id, fv.id, ENGINE_VERSION)
    cached = stored is not None
    if stored is None:
        spec = await _valid_spec(fv)
        faults = fault_plan(request)
        result = await run_in_threadpool(
            lambda: checked_json(run_forecast(spec, faults=faults).to_dict())
        )
        stored = await db_call(
            request, repo.save_forecast, fv.id, ENGINE_VERSION, fv.spec_hash, result
        )
    body = {
        "id": str(stored.id),
        "fund_id": str(fid),
        **result_counters(fv.revision, fv.published_version),
        "kind": fv.kind,
        "provenance": {
            "engine_version": stored.engine_version,
            "spec_version": fv.revision,
            "spec_hash": stored.spec_hash,
            "seed": None,
        },
        "cached": cached,
        "result": stored.result,
    }
    return JSONResponse(body)


def _simulation_request(data: object) -> SimulationRequest:
    try:
        return SimulationRequest.model_validate(data, strict=True)
    except ValidationError as exc:
        raise ProblemError(
            422,
            "VALIDATION_FAILED",
            "Invalid simulation request; see errors[].",
            errors=pydantic_field_errors(exc.errors(), drop_location=False),
        ) from None


@router.post(
    "/{fund_id}/simulations",
    status_code=201,
    response_model=SimulationOut,
    summary="Run a Monte Carlo simulation of the published version (Idempotency-Key optional)",
    responses={
        202: {"model": SimulationOut, "description": "Queued as a background job."},
        404: _PROBLEM,
        409: _PROBLEM,
        422: _PROBLEM,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": SimulationRequest.model_json_schema()}},
        },
        **_IDEMPOTENT,
    },
)
async def create_simulation(
    request: Request,
    fund_id: str,
    version: Literal["published", "draft"] = Query("published"),
    identity: Identity = Analyst,
) -> Response:
    """Simulate ``runs`` paths (100..5,000,000) with ``seed`` (drawn and reported when
    omitted). Up to ``sync_runs_limit`` (20,000) runs are answered synchronously (201),
    computed in a worker thread; more become a durable background job: 202 with
    ``Location`` of the queued simulation (follow it, or its ``/events``). The stored
    result records engine version, spec version and hash, and seed."""

    fid = parse_id(fund_id)
    params = _simulation_request(await read_json(request))
    limit = get_settings(request).sync_runs_limit
    fv = await _load_version(request, identity, fid, version)
    spec = await _valid_spec(fv)
    seed = params.seed if params.seed is not None else secrets.randbits(_DRAWN_SEED_BITS)
    assert seed <= MAX_SEED
    if params.runs > limit:
        from updog.api.routes.simulations import submit_job

        return await submit_job(
            request, identity, fv, runs=params.runs, seed=seed, seed_drawn=params.seed is None
        )
    record, result = await compute_simulation(
        request, identity, fv, spec, runs=params.runs, seed=seed, seed_drawn=params.seed is None
    )
    root: str = request.scope.get("root_path", "")

    def complete(conn: Any) -> Response:  # the stored result and the idempotency record
        done = repo.complete_simulation(conn, identity.org_id, record.id, result)
        return JSONResponse(
            simulation_body(done),
            status_code=201,
            headers={"Location": f"{root}{API_PREFIX}/simulations/{done.id}"},
        )

    return await commit_with_response(request, complete)
