"""Engine guards over real HTTP: a corrupted engine result is a 422 problem+json with code
``ENGINE_GUARD_FAILED`` (never a 500, never stored), injected through ``UPDOG_FAULTS``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import LiveServer, LogTap, assert_problem, make_account, serve

from updog.settings import Settings

pytestmark = pytest.mark.db

FUND = {
    "name": "Guarded Fund",
    "fund_size": 50_000_000,
    "vintage_year": 2025,
    "model_inputs_as_of": "2025-01-01",
}


@pytest.fixture(scope="module", params=["block:nan", "reduce:negative_nav"])
def faulty(
    request: pytest.FixtureRequest, db: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    data_dir: Path = tmp_path_factory.mktemp("updog-faults")
    settings = Settings(data_dir=data_dir, faults=f"{request.param},forecast:inf")
    yield from serve(settings, db, LogTap())


def test_guard_failures_are_422_and_nothing_is_stored(faulty: LiveServer) -> None:
    account = make_account(faulty.database, "Guarded Ventures", "analyst")
    with faulty.client(account.token) as api:
        created = api.post("/api/v1/funds", json=FUND)
        assert created.status_code == 201, created.text
        fund_id = created.json()["id"]
        assert api.post(f"/api/v1/funds/{fund_id}/publish").status_code == 200
        forecast = api.get(f"/api/v1/funds/{fund_id}/forecast")
        assert_problem(forecast, 422, "ENGINE_GUARD_FAILED")
        simulation = api.post(f"/api/v1/funds/{fund_id}/simulations", json={"runs": 200, "seed": 1})
        assert_problem(simulation, 422, "ENGINE_GUARD_FAILED")
    with faulty.database.connection() as conn:
        stored = conn.execute(
            "SELECT count(*) AS n FROM forecasts f JOIN fund_versions v ON v.id = f.fund_version_id"
            " WHERE v.fund_id = %s",
            (fund_id,),
        ).fetchone()
        done = conn.execute(
            "SELECT count(*) AS n FROM simulations WHERE fund_id = %s AND status = 'succeeded'",
            (fund_id,),
        ).fetchone()
    assert stored["n"] == 0 and done["n"] == 0
