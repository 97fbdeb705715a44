"""``/api/v1/simulations/{id}``: a stored simulation (status, progress, provenance, result)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from updog.api.auth import Viewer
from updog.api.deps import db_call
from updog.api.results import simulation_body
from updog.api.routes import API_PREFIX
from updog.api.routes.funds import not_found, parse_id
from updog.api.schemas import Problem, SimulationOut
from updog.store import repositories as repo
from updog.store.repositories import Identity

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
