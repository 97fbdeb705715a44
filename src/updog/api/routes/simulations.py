"""``/api/v1/simulations/{id}``: a stored simulation (status, progress, provenance, result),
its cancellation (``DELETE``, for background jobs) and its progress as server-sent events
(``/events``; see :mod:`updog.jobs.events`)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from updog.api.params import SimulationId
from updog.api.representations import simulation_body, simulation_url
from updog.api.routes import API_PREFIX
from updog.api.routes.funds import parse_id
from updog.api.schemas import SimulationOut
from updog.http.auth import Analyst, Viewer
from updog.http.deps import db_call
from updog.http.openapi import problem_responses
from updog.http.routing import GuardedRoute
from updog.jobs.events import shutdown_flag, simulation_events
from updog.service import simulations
from updog.service.errors import NotFound
from updog.store.repositories import Identity, SimulationRecord

router = APIRouter(
    prefix=f"{API_PREFIX}/simulations", tags=["simulations"], route_class=GuardedRoute
)


@router.get(
    "/{simulation_id}",
    response_model=SimulationOut,
    operation_id="get_simulation",
    summary="Read a simulation",
    responses=problem_responses(404),
)
async def get_simulation(
    request: Request, simulation_id: SimulationId, identity: Identity = Viewer
) -> Response:
    """The simulation with its status, provenance and (once succeeded) result; another
    organisation's simulation is a 404."""
    sim = await db_call(request, simulations.get, identity, parse_id(simulation_id, "simulation"))
    return JSONResponse(simulation_body(sim))


@router.delete(
    "/{simulation_id}",
    response_model=SimulationOut,
    operation_id="cancel_simulation",
    summary="Cancel a queued or running simulation job",
    responses=problem_responses(404, 409),
)
async def cancel_simulation(
    request: Request, simulation_id: SimulationId, identity: Identity = Analyst
) -> Response:
    """Cancel a background simulation: it becomes ``cancelled`` at once and its worker stops
    computing within a heartbeat. Cancelling a cancelled simulation changes nothing (200);
    one that has succeeded or failed, or a synchronous run, is 409
    ``SIMULATION_NOT_CANCELLABLE``."""
    sid = parse_id(simulation_id, "simulation")
    return JSONResponse(simulation_body(await db_call(request, simulations.cancel, identity, sid)))


@router.get(
    "/{simulation_id}/events",
    operation_id="simulation_events",
    summary="Progress of a simulation as server-sent events",
    response_class=StreamingResponse,
    responses={
        **problem_responses(404),
        200: {
            "description": "``event: progress`` ({id, status, progress}) on every change, then "
            "``event: done`` ({id, status, progress, error, href}) and the end of the stream.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
    },
)
async def simulation_events_stream(
    request: Request, simulation_id: SimulationId, identity: Identity = Viewer
) -> Response:
    """Follow a simulation until it finishes (``text/event-stream``)."""
    sid = parse_id(simulation_id, "simulation")
    sim = await db_call(request, simulations.get, identity, sid)

    async def fetch() -> SimulationRecord | None:
        try:
            return await db_call(request, simulations.get, identity, sid)
        except NotFound:  # deleted while followed: the stream ends
            return None

    return StreamingResponse(
        simulation_events(
            fetch,
            first=sim,
            href=simulation_url(request, sid),
            shutting_down=shutdown_flag(request.app),
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
