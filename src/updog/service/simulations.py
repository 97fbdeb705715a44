"""Monte Carlo simulations of a fund version (SPEC §3.3): planned, then computed at once or
queued as a durable job (SPEC §5.3), completed, read and cancelled.

A request of at most the synchronous limit is computed by the caller's worker thread
(:func:`run_now`); a larger one becomes a job (:func:`submit`) that a worker computes in a
separate process. Every stored simulation records its provenance: engine version, spec
revision and hash, and seed (drawn and reported when the request has none).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from updog import ENGINE_VERSION
from updog.finance._decimal import INTEGRAL
from updog.jobs import queue
from updog.model.faults import FaultPlan
from updog.model.spec import FundSpec
from updog.service import funds
from updog.service.errors import Conflict, NotFound
from updog.service.results import checked_json, simulation_params
from updog.simulation import simulate
from updog.simulation.engine import MAX_RUNS, MIN_RUNS
from updog.store import repositories as repo
from updog.store.db import Connection, Database
from updog.store.repositories import FundVersion, Identity, SimulationRecord

#: Largest accepted seed (PCG64 ``SeedSequence`` takes any non-negative int; bounded so it
#: round-trips through JSON numbers and PostgreSQL ``bigint`` exactly).
MAX_SEED = 2**63 - 1
#: Seeds drawn by the server stay below 2**53 so they survive JSON clients using doubles.
DRAWN_SEED_BITS = 53


class SimulationRequest(BaseModel):
    """What to simulate: ``runs`` paths with ``seed`` (drawn and reported when omitted).
    Integers are JSON integers (``20000`` or ``20000.0``), never strings."""

    model_config = ConfigDict(extra="forbid", strict=True)

    runs: Annotated[int, Field(ge=MIN_RUNS, le=MAX_RUNS), INTEGRAL] = Field(
        description="Monte Carlo paths."
    )
    seed: Annotated[int | None, Field(ge=0, le=MAX_SEED), INTEGRAL] = Field(
        default=None, description="Seed; omitted → drawn and reported."
    )


@dataclass(frozen=True, slots=True)
class SimulationPlan:
    """A simulation ready to run: the version and its engine spec, runs, the seed (and
    whether it was drawn), and whether it runs as a background job."""

    version: FundVersion
    spec: FundSpec
    runs: int
    seed: int
    seed_drawn: bool
    background: bool


def plan(
    conn: Connection,
    identity: Identity,
    fund_id: uuid.UUID,
    which: funds.Which,
    request: SimulationRequest,
    *,
    sync_runs_limit: int,
) -> SimulationPlan:
    """Plan ``request`` on the fund's published version (or draft): a job above
    ``sync_runs_limit`` runs. Raises ``NotFound``, ``Conflict`` ``FUND_NOT_PUBLISHED`` and
    ``Invalid`` (the version does not validate)."""
    version = funds.version_of(conn, identity, fund_id, which)
    spec = funds.valid_spec(version)
    drawn = request.seed is None
    seed = secrets.randbits(DRAWN_SEED_BITS) if request.seed is None else request.seed
    return SimulationPlan(
        version, spec, request.runs, seed, drawn, background=request.runs > sync_runs_limit
    )


def submit(
    conn: Connection, identity: Identity, planned: SimulationPlan, *, max_attempts: int
) -> SimulationRecord:
    """Queue ``planned`` as a durable job (one transaction with the caller's). The job
    computes from a snapshot of the spec, so a retry computes the same thing."""
    sim, _job = queue.submit_simulation(
        conn,
        identity.org_id,
        planned.version,
        spec=planned.version.spec,
        runs=planned.runs,
        seed=planned.seed,
        engine_version=ENGINE_VERSION,
        max_attempts=max_attempts,
        user_id=identity.user_id,
        params=simulation_params(planned.version, seed_drawn=planned.seed_drawn),
    )
    return sim


def run_now(
    database: Database,
    identity: Identity,
    planned: SimulationPlan,
    *,
    faults: FaultPlan | None = None,
) -> tuple[SimulationRecord, dict[str, object]]:
    """Record ``planned`` as ``running`` (its own short transaction, with its provenance),
    compute it in this thread, and return the record and the JSON-safe result for the caller
    to :func:`complete`. On an engine error the record is marked failed and the error
    propagates (guard failures are :class:`updog.model.guards.EngineGuardError`).
    ``faults``: guard tests only."""
    with database.connection() as conn:
        record = repo.create_simulation(
            conn,
            identity.org_id,
            planned.version,
            runs=planned.runs,
            seed=planned.seed,
            engine_version=ENGINE_VERSION,
            user_id=identity.user_id,
            params=simulation_params(planned.version, seed_drawn=planned.seed_drawn),
            status="running",
        )
    try:
        result = checked_json(
            simulate(planned.spec, planned.runs, planned.seed, faults=faults).to_dict()
        )
    except Exception as exc:
        with database.connection() as conn:
            repo.fail_simulation(
                conn,
                identity.org_id,
                record.id,
                {"code": getattr(exc, "code", "ENGINE_ERROR"), "message": type(exc).__name__},
            )
        raise
    return record, result


def complete(
    conn: Connection, identity: Identity, record: SimulationRecord, result: dict[str, object]
) -> SimulationRecord:
    """Store the result of a simulation run now (one transaction with the caller's)."""
    return repo.complete_simulation(conn, identity.org_id, record.id, result)


def get(conn: Connection, identity: Identity, simulation_id: uuid.UUID) -> SimulationRecord:
    """A simulation of the caller's organisation. Raises :class:`NotFound`."""
    sim = repo.get_simulation(conn, identity.org_id, simulation_id)
    if sim is None:
        raise NotFound("simulation", simulation_id)
    return sim


def cancel(conn: Connection, identity: Identity, simulation_id: uuid.UUID) -> SimulationRecord:
    """Cancel a queued or running job: it becomes ``cancelled`` at once and its worker stops
    within a heartbeat; cancelling a cancelled one changes nothing. Raises :class:`NotFound`
    and :class:`Conflict` ``SIMULATION_NOT_CANCELLABLE`` (succeeded, failed, or run now)."""
    try:
        sim = queue.cancel_simulation(conn, identity.org_id, simulation_id)
    except queue.NotCancellable as exc:
        raise Conflict(
            "SIMULATION_NOT_CANCELLABLE",
            f"Simulation {simulation_id} cannot be cancelled: {exc}.",
        ) from None
    if sim is None:
        raise NotFound("simulation", simulation_id)
    return sim
