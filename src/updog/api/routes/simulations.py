"""``/api/v1/simulations/{id}``: a stored simulation (status, progress, provenance, result),
its cancellation (``DELETE``, for background jobs) and its progress as server-sent events
(``/events``; see :mod:`updog.jobs.events`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from updog import ENGINE_VERSION
from updog.api.results import simulation_body, simulation_params
from updog.api.routes import API_PREFIX
from updog.api.routes.funds import not_found, parse_id
from updog.api.schemas import Problem, SimulationOut
from updog.http.auth import Analyst, Viewer
from updog.http.deps import db_call, get_settings
from updog.http.problems import ProblemError
from updog.jobs import queue
from updog.jobs.events import shutdown_flag, simulation_events
from updog.protection.idempotency import commit_with_response
from updog.store import repositories as repo
from updog.store.repositories import FundVersion, Identity

router = APIRouter(prefix=f"{API_PREFIX}/simulations", tags=["simulations"])


@router.get(
    "/{simulation_id}",
    response_model=SimulationOut,
    summary="Read a simulation",
    responses={404: {"model": Problem, "content": {"application/problem+json": {}}}},
)
async def get_simulation(
    request: Request, simulation_id: str, identity: Identity = Viewer
) -> Response:
    """The simulation with its status, provenance and (once succeeded) result; another
    organisation's simulation is a 404."""
    sid = parse_id(simulation_id, "simulation")
    sim = await db_call(request, repo.get_simulation, identity.org_id, sid)
    if sim is None:
        raise not_found("simulation", sid)
    return JSONResponse(simulation_body(sim))


_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}


async def submit_job(
    request: Request,
    identity: Identity,
    fund_version: FundVersion,
    *,
    runs: int,
    seed: int,
    seed_drawn: bool,
) -> Response:
    """Queue a simulation of ``fund_version`` (already validated) as a durable job: 202 with
    ``Location`` of the queued simulation (``POST /funds/{id}/simulations`` above the
    synchronous limit). The job computes from a snapshot of the spec, so a retry computes
    the same thing."""
    settings = get_settings(request)
    root: str = request.scope.get("root_path", "")

    def submit(conn: Any) -> Response:  # the job and the idempotency record: one commit
        sim, _job = queue.submit_simulation(
            conn,
            identity.org_id,
            fund_version,
            spec=fund_version.spec,
            runs=runs,
            seed=seed,
            engine_version=ENGINE_VERSION,
            max_attempts=settings.job_max_attempts,
            user_id=identity.user_id,
            params=simulation_params(fund_version, seed_drawn=seed_drawn),
        )
        return JSONResponse(
            simulation_body(sim),
            status_code=202,
            headers={"Location": f"{root}{API_PREFIX}/simulations/{sim.id}"},
        )

    return await commit_with_response(request, submit)


@router.delete(
    "/{simulation_id}",
    response_model=SimulationOut,
    summary="Cancel a queued or running simulation job",
    responses={404: _PROBLEM, 409: _PROBLEM},
)
async def cancel_simulation(
    request: Request, simulation_id: str, identity: Identity = Analyst
) -> Response:
    """Cancel a background simulation: it becomes ``cancelled`` at once and its worker stops
    computing within a heartbeat. Cancelling a cancelled simulation changes nothing (200);
    one that has succeeded or failed, or a synchronous run, is 409
    ``SIMULATION_NOT_CANCELLABLE``."""
    sid = parse_id(simulation_id, "simulation")
    try:
        sim = await db_call(request, queue.cancel_simulation, identity.org_id, sid)
    except queue.NotCancellable as exc:
        raise ProblemError(
            409, "SIMULATION_NOT_CANCELLABLE", f"Simulation {sid} cannot be cancelled: {exc}."
        ) from None
    if sim is None:
        raise not_found("simulation", sid)
    return JSONResponse(simulation_body(sim))


@router.get(
    "/{simulation_id}/events",
    summary="Progress of a simulation as server-sent events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "``event: progress`` ({id, status, progress}) on every change, then "
            "``event: done`` ({id, status, progress, error, href}) and the end of the stream.",
            "content": {"text/event-stream": {}},
        },
        404: _PROBLEM,
    },
)
async def simulation_events_stream(
    request: Request, simulation_id: str, identity: Identity = Viewer
) -> Response:
    """Follow a simulation until it finishes (``text/event-stream``)."""
    sid = parse_id(simulation_id, "simulation")
    sim = await db_call(request, repo.get_simulation, identity.org_id, sid)
    if sim is None:
        raise not_found("simulation", sid)
    root: str = request.scope.get("root_path", "")

    async def fetch() -> repo.SimulationRecord | None:
        return await db_call(request, repo.get_simulation, identity.org_id, sid)

    return StreamingResponse(
        simulation_events(
            fetch,
            first=sim,
            href=f"{root}{API_PREFIX}/simulations/{sid}",
            shutting_down=shutdown_flag(request.app),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
