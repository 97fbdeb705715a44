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

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from updog.api.representations import result_counters, simulation_body, simulation_url
from updog.api.routes import API_PREFIX
from updog.api.schemas import (
    ForecastOut,
    FundList,
    FundOut,
    Issue,
    Problem,
    PublishOut,
    SimulationOut,
)
from updog.http.auth import Analyst, Viewer
from updog.http.bodies import read_json
from updog.http.deps import db_call, fault_plan, get_settings, in_thread
from updog.http.problems import ProblemError, pydantic_field_errors
from updog.protection.idempotency import commit_with_response
from updog.service import forecasts, funds, simulations
from updog.service.errors import NotFound
from updog.service.simulations import SimulationRequest
from updog.store import repositories as repo
from updog.store.repositories import FundRecord, Identity

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
        raise NotFound(what) from None


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


def _if_match_tags(header: str) -> list[str]:
    """Entity tags listed in an ``If-Match`` header (``*`` kept as is)."""
    return [t.strip() for t in header.split(",") if t.strip()]


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

    def create(conn: Any) -> Response:  # the fund and the idempotency record: one commit
        fund = funds.create(conn, identity, body)
        return JSONResponse(
            fund_json(fund),
            status_code=201,
            headers={"Location": fund_url(request, fund.id), "ETag": fund.etag},
        )

    # The fund insert is one INSERT … RETURNING statement (both rows).
    return await commit_with_response(request, create, single_statement=True)


@router.get("", response_model=FundList, summary="List the organisation's funds, newest first")
async def list_funds(
    request: Request,
    limit: int = Query(50, ge=1, le=repo.MAX_PAGE_SIZE),
    cursor: str | None = Query(None, max_length=512),
    identity: Identity = Viewer,
) -> Response:
    """Keyset pagination: pass ``next_cursor`` back as ``cursor``; null on the last page."""
    page = await db_call(request, funds.listing, identity, limit, cursor)
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
    fund = await db_call(request, funds.get, identity, parse_id(fund_id))
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
    updated = await db_call(
        request, funds.save_draft, identity, fid, body, if_match=_if_match_tags(if_match)
    )
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
    if_match = request.headers.get("if-match")
    tags = _if_match_tags(if_match) if if_match else None

    def publish(conn: Any) -> Response:  # the publication and the idempotency record
        done = funds.publish(conn, identity, fid, if_match=tags)
        published = done.fund
        assert published.published_version is not None
        assert published.published_revision is not None
        body = PublishOut(
            id=str(published.id),
            draft_revision=published.draft_revision,
            version=published.draft_revision,
            published_version=published.published_version,
            published_revision=published.published_revision,
            etag=published.etag,
            warnings=[Issue.model_validate(w) for w in done.warnings],
        ).model_dump(mode="json")
        return JSONResponse(body, headers={"ETag": published.etag})

    return await commit_with_response(request, publish)


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
    fid = parse_id(fund_id)
    done = await in_thread(
        request, forecasts.forecast, identity, fid, version, faults=fault_plan(request)
    )
    stored, fv = done.stored, done.version
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
        "cached": done.cached,
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
    settings = get_settings(request)
    planned = await db_call(
        request,
        simulations.plan,
        identity,
        fid,
        version,
        params,
        sync_runs_limit=settings.sync_runs_limit,
    )
    if planned.background:

        def submit(conn: Any) -> Response:  # the job and the idempotency record: one commit
            sim = simulations.submit(
                conn, identity, planned, max_attempts=settings.job_max_attempts
            )
            return JSONResponse(
                simulation_body(sim),
                status_code=202,
                headers={"Location": simulation_url(request, sim.id)},
            )

        return await commit_with_response(request, submit)
    record, result = await in_thread(
        request, simulations.run_now, identity, planned, faults=fault_plan(request)
    )

    def complete(conn: Any) -> Response:  # the stored result and the idempotency record
        done = simulations.complete(conn, identity, record, result)
        return JSONResponse(
            simulation_body(done),
            status_code=201,
            headers={"Location": simulation_url(request, done.id)},
        )

    return await commit_with_response(request, complete)
