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
Bodies pass the guards of :mod:`updog.http.bodies` (size, media type, finite numbers, no NUL,
bounded depth and lists) and then their pydantic model (:class:`~updog.http.routing.GuardedRoute`):
a fund body is a ``FundSpecDraft``, the engine's ``FundSpec`` with every field optional.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from updog.api.params import (
    FundId,
    IdempotencyKey,
    IfMatch,
    IfNoneMatch,
    OptionalIfMatch,
    VersionQuery,
    if_match_tags,
)
from updog.api.representations import result_counters, simulation_body, simulation_url
from updog.api.routes import API_PREFIX
from updog.api.schemas import ForecastOut, FundList, FundOut, PublishOut, SimulationOut
from updog.http.auth import Analyst, Viewer
from updog.http.deps import db_call, fault_plan, get_settings, in_thread
from updog.http.openapi import Issue, problem_responses
from updog.http.routing import GuardedRoute, json_body
from updog.model.spec import FundSpecDraft
from updog.protection.idempotency import commit_with_response
from updog.service import forecasts, funds, simulations
from updog.service.errors import NotFound
from updog.service.simulations import SimulationRequest
from updog.store import repositories as repo
from updog.store.repositories import FundRecord, Identity

router = APIRouter(prefix=f"{API_PREFIX}/funds", tags=["funds"], route_class=GuardedRoute)

#: OpenAPI links from a created fund to what can be done with it (stateful testing follows
#: them: create → read → replace the draft → publish → forecast → simulate).
_FUND_LINKS = {
    "GetFund": {"operationId": "get_fund", "parameters": {"path.fund_id": "$response.body#/id"}},
    "ReplaceDraft": {
        "operationId": "replace_draft",
        "parameters": {
            "path.fund_id": "$response.body#/id",
            "header.If-Match": "$response.header.ETag",
        },
    },
    "PublishFund": {
        "operationId": "publish_fund",
        "parameters": {"path.fund_id": "$response.body#/id"},
    },
    "GetForecast": {
        "operationId": "get_forecast",
        "parameters": {"path.fund_id": "$response.body#/id"},
    },
    "CreateSimulation": {
        "operationId": "create_simulation",
        "parameters": {"path.fund_id": "$response.body#/id"},
    },
}
_SIMULATION_LINKS = {
    "GetSimulation": {
        "operationId": "get_simulation",
        "parameters": {"path.simulation_id": "$response.body#/id"},
    },
    "CancelSimulation": {
        "operationId": "cancel_simulation",
        "parameters": {"path.simulation_id": "$response.body#/id"},
    },
}

if TYPE_CHECKING:  # a model built at import time (updog.model.spec.draft_of)
    FundBody = BaseModel
else:
    FundBody = Annotated[
        FundSpecDraft,
        Body(
            description="A FundSpec as JSON; a draft may leave out any field (the rules between "
            "fields are checked when it is published)."
        ),
    ]


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


# -- routes -----------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=FundOut,
    operation_id="create_fund",
    summary="Create a fund from a (possibly incomplete) FundSpec (Idempotency-Key optional)",
    responses={**problem_responses(body=True), 201: {"links": _FUND_LINKS}},
)
async def create_fund(
    request: Request,
    spec: FundBody,
    idempotency_key: IdempotencyKey = None,
    identity: Identity = Analyst,
) -> Response:
    """Store the body as draft revision 1. Draft rules apply: the fields present must have the
    right types and ranges; missing ones are allowed. 201 with ``Location`` and ``ETag``."""
    body = json_body(request)  # as sent (the guarded parse), not as the model reads it

    def create(conn: Any) -> Response:  # the fund and the idempotency record: one commit
        fund = funds.create(conn, identity, body)
        return JSONResponse(
            fund_json(fund),
            status_code=201,
            headers={"Location": fund_url(request, fund.id), "ETag": fund.etag},
        )

    # The fund insert is one INSERT … RETURNING statement (both rows).
    return await commit_with_response(request, create, single_statement=True)


@router.get(
    "",
    response_model=FundList,
    operation_id="list_funds",
    summary="List the organisation's funds, newest first",
    responses=problem_responses(),
)
async def list_funds(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=repo.MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
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
    operation_id="get_fund",
    summary="Read a fund and its draft",
    responses={**problem_responses(404), 304: {"description": "The ETag is still current."}},
)
async def get_fund(
    request: Request,
    fund_id: FundId,
    if_none_match: IfNoneMatch = None,
    identity: Identity = Viewer,
) -> Response:
    """The fund with its current draft spec; ``ETag`` names the draft revision."""
    fund = await db_call(request, funds.get, identity, parse_id(fund_id))
    if if_none_match and (
        if_none_match.strip() == "*" or fund.etag in if_match_tags(if_none_match)
    ):
        return Response(status_code=304, headers={"ETag": fund.etag})
    return JSONResponse(fund_json(fund), headers={"ETag": fund.etag})


@router.put(
    "/{fund_id}/draft",
    response_model=FundOut,
    operation_id="replace_draft",
    summary="Replace the draft (full replace; If-Match required)",
    responses=problem_responses(404, 412, 428, body=True),
)
async def replace_draft(
    request: Request,
    fund_id: FundId,
    spec: FundBody,
    if_match: IfMatch,
    identity: Identity = Analyst,
) -> Response:
    """Replace the draft with the body as a new revision. ``If-Match`` must carry the current
    ETag (RFC 9110 §13.1.1): missing → 428 ``PRECONDITION_REQUIRED``, stale → 412
    ``PRECONDITION_FAILED``. The response carries the new ETag."""
    fid = parse_id(fund_id)
    body = json_body(request)
    updated = await db_call(
        request, funds.save_draft, identity, fid, body, if_match=if_match_tags(if_match)
    )
    return JSONResponse(fund_json(updated), headers={"ETag": updated.etag})


@router.post(
    "/{fund_id}/publish",
    response_model=PublishOut,
    operation_id="publish_fund",
    summary="Validate the draft completely and publish it (Idempotency-Key optional)",
    responses=problem_responses(400, 404, 409, 412),
)
async def publish_fund(
    request: Request,
    fund_id: FundId,
    if_match: OptionalIfMatch = None,
    idempotency_key: IdempotencyKey = None,
    identity: Identity = Analyst,
) -> Response:
    """Publish the current draft. 422 ``VALIDATION_FAILED`` lists every error with its JSON
    Pointer; warnings do not block and come back in the body. An optional ``If-Match``
    makes sure the version published is the one the caller reviewed (412 otherwise)."""
    fid = parse_id(fund_id)
    tags = if_match_tags(if_match) if if_match else None

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
    operation_id="get_forecast",
    summary="Deterministic quarterly forecast of the published version (or the draft)",
    responses=problem_responses(404, 409),
)
async def get_forecast(
    request: Request,
    fund_id: FundId,
    version: VersionQuery = "published",
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


@router.post(
    "/{fund_id}/simulations",
    status_code=201,
    response_model=SimulationOut,
    operation_id="create_simulation",
    summary="Run a Monte Carlo simulation of the published version (Idempotency-Key optional)",
    responses={
        **problem_responses(404, 409, body=True),
        201: {"links": _SIMULATION_LINKS},
        202: {
            "model": SimulationOut,
            "description": "Queued as a background job.",
            "links": _SIMULATION_LINKS,
        },
    },
)
async def create_simulation(
    request: Request,
    fund_id: FundId,
    params: SimulationRequest,
    version: VersionQuery = "published",
    idempotency_key: IdempotencyKey = None,
    identity: Identity = Analyst,
) -> Response:
    """Simulate ``runs`` paths (100..5,000,000) with ``seed`` (drawn and reported when
    omitted). Up to ``sync_runs_limit`` (20,000) runs are answered synchronously (201),
    computed in a worker thread; more become a durable background job: 202 with
    ``Location`` of the queued simulation (follow it, or its ``/events``). The stored
    result records engine version, spec version and hash, and seed."""
    fid = parse_id(fund_id)
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
