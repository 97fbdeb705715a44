"""The deterministic forecast of a fund version (SPEC §3.2), computed once per (version,
engine version) and stored with its provenance."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from updog import ENGINE_VERSION
from updog.model.faults import FaultPlan
from updog.model.forecast import run_forecast
from updog.service import funds
from updog.service.results import checked_json
from updog.store import repositories as repo
from updog.store.db import Database
from updog.store.repositories import ForecastRecord, FundVersion, Identity


@dataclass(frozen=True, slots=True)
class ForecastOutcome:
    """A stored forecast, the version it forecasts, and whether it was already stored."""

    stored: ForecastRecord
    version: FundVersion
    cached: bool


def forecast(
    database: Database,
    identity: Identity,
    fund_id: uuid.UUID,
    which: funds.Which = "published",
    *,
    faults: FaultPlan | None = None,
) -> ForecastOutcome:
    """The forecast of the fund's published version (or draft), reused when this engine
    version already computed it; else computed (outside any transaction) and stored.
    Raises :class:`~updog.service.errors.NotFound`, ``Conflict`` ``FUND_NOT_PUBLISHED``,
    ``Invalid`` (the version does not validate), :class:`updog.model.guards.EngineGuardError`
    (no trustworthy result) and
    :class:`~updog.service.results.EngineResultInvalid`. ``faults``: guard tests only."""
    with database.connection(autocommit=True) as conn:
        version = funds.version_of(conn, identity, fund_id, which)
        stored = repo.get_forecast(conn, identity.org_id, version.id, ENGINE_VERSION)
    if stored is not None:
        return ForecastOutcome(stored, version, cached=True)
    spec = funds.valid_spec(version)
    result = checked_json(run_forecast(spec, faults=faults).to_dict())
    with database.connection() as conn:
        stored = repo.save_forecast(conn, version.id, ENGINE_VERSION, version.spec_hash, result)
    return ForecastOutcome(stored, version, cached=False)
