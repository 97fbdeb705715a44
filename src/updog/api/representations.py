"""How v1 represents stored results: the counters of the spec a result computed, a stored
simulation (``SimulationOut``) and its location."""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request

from updog.api.routes import API_PREFIX
from updog.store.repositories import SimulationRecord


def result_counters(revision: int | None, published_version: int | None) -> dict[str, int | None]:
    """Which spec a forecast or simulation computed: its draft ``revision`` and
    ``published_version`` (None for a preview of an unpublished draft); ``version`` is the
    deprecated v1 name of the revision."""
    return {"revision": revision, "published_version": published_version, "version": revision}


def simulation_url(request: Request, simulation_id: uuid.UUID) -> str:
    """Path of a simulation resource (the ``Location`` of a created one)."""
    root: str = request.scope.get("root_path", "")
    return f"{root}{API_PREFIX}/simulations/{simulation_id}"


def simulation_body(sim: SimulationRecord) -> dict[str, Any]:
    """The representation of a stored simulation (``SimulationOut``)."""
    params = sim.params or {}
    return {
        "id": str(sim.id),
        "fund_id": str(sim.fund_id),
        "status": sim.status,
        "progress": sim.progress,
        "runs": sim.runs,
        "seed": sim.seed,
        **result_counters(params.get("version"), params.get("published_version")),
        "kind": params.get("kind"),
        "provenance": {
            "engine_version": sim.engine_version,
            "spec_version": params.get("version"),
            "spec_hash": sim.spec_hash,
            "seed": sim.seed,
        },
        "result": sim.result,
        "error": sim.error,
        "created_at": sim.created_at.isoformat(),
        "finished_at": sim.finished_at.isoformat() if sim.finished_at else None,
    }
