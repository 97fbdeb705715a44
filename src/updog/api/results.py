"""Engine results on their way to storage and clients: JSON-safe and finite, or an error.

SPEC §1: floats are finite only. An engine result with NaN/Infinity (or a type JSON cannot
hold) is a server fault, reported as 500 ``ENGINE_RESULT_INVALID`` and never stored.
"""

from __future__ import annotations

import json
from typing import Any

from updog.http.problems import ProblemError
from updog.store.repositories import FundVersion, SimulationRecord


def _default(obj: Any) -> Any:
    # numpy scalars and arrays, without importing numpy here
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def checked_json(result: Any) -> dict[str, Any]:
    """Round-trip ``result`` through strict JSON (``allow_nan=False``); returns plain dicts.

    Raises ``ProblemError(500, "ENGINE_RESULT_INVALID")`` for non-finite numbers or
    unserialisable values.
    """
    try:
        text = json.dumps(result, allow_nan=False, default=_default)
    except (ValueError, TypeError) as exc:
        raise ProblemError(
            500,
            "ENGINE_RESULT_INVALID",
            "The engine produced a result that cannot be stored (non-finite or invalid "
            "values). Quote the request id when reporting it.",
        ) from exc
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ProblemError(500, "ENGINE_RESULT_INVALID", "The engine result is not an object.")
    return value


def result_counters(revision: int | None, published_version: int | None) -> dict[str, int | None]:
    """Which spec a forecast or simulation computed: its draft ``revision`` and
    ``published_version`` (None for a preview of an unpublished draft); ``version`` is the
    deprecated v1 name of the revision."""
    return {"revision": revision, "published_version": published_version, "version": revision}


def simulation_params(fund_version: FundVersion, *, seed_drawn: bool) -> dict[str, Any]:
    """The ``params`` stored with a simulation of ``fund_version``: its draft revision (as
    ``version``), kind and published version number, and whether the seed was drawn."""
    return {
        "version": fund_version.revision,
        "kind": fund_version.kind,
        "published_version": fund_version.published_version,
        "seed_drawn": seed_drawn,
    }


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


def fault_plan(request: Any) -> Any:
    """The engine fault plan of ``UPDOG_FAULTS`` (guard tests only; None in production)."""
    from updog.http.deps import get_settings
    from updog.model.faults import FaultPlan

    text = get_settings(request).faults
    return FaultPlan.parse(text) if text else None


async def compute_simulation(
    request: Any,
    identity: Any,
    fund_version: Any,
    spec: Any,
    *,
    runs: int,
    seed: int,
    seed_drawn: bool,
) -> tuple[SimulationRecord, dict[str, Any]]:
    """The synchronous simulation path shared by the API and the web pages: record the
    simulation as ``running`` (with its provenance), compute it in a worker thread (never
    on the event loop; with ``UPDOG_FAULTS`` when set) and return the record and the
    JSON-safe result for the caller to complete. On an engine error the record is marked
    failed and the error propagates (guard failures become 422 ``ENGINE_GUARD_FAILED``)."""
    from starlette.concurrency import run_in_threadpool

    from updog import ENGINE_VERSION
    from updog.http.deps import db_call
    from updog.simulation import simulate
    from updog.store import repositories as repo

    record = await db_call(
        request,
        repo.create_simulation,
        identity.org_id,
        fund_version,
        runs=runs,
        seed=seed,
        engine_version=ENGINE_VERSION,
        user_id=identity.user_id,
        params=simulation_params(fund_version, seed_drawn=seed_drawn),
        status="running",
    )
    faults = fault_plan(request)
    try:
        result = await run_in_threadpool(
            lambda: checked_json(simulate(spec, runs, seed, faults=faults).to_dict())
        )
    except Exception as exc:
        await db_call(
            request,
            repo.fail_simulation,
            identity.org_id,
            record.id,
            {"code": getattr(exc, "code", "ENGINE_ERROR"), "message": type(exc).__name__},
        )
        raise
    return record, result
