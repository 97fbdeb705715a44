"""Every page and wizard step in Chromium at 1280 px and 390 px: axe-core finds no serious
or critical violation, no Content-Security-Policy violation is reported, and the full-page
screenshot matches its committed baseline (``scripts/refresh-baselines`` rewrites them).

The data is fixed (a fund from ``fund.json``, published, and a seeded simulation), and the
only changing texts (timestamps) are masked, so the pages render the same on every run."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web_support import WIDTHS, CspWatch, check_axe, check_screenshot, create_user, sign_in

from updog.model.validation import validate_publish
from updog.store import repositories as repo

pytestmark = [pytest.mark.db, pytest.mark.browser]

FUND = json.loads((Path(__file__).parent / "fund.json").read_text())
#: The form texts of the default fee tier.
TIER = {"rate": "2", "basis": "committed", "start_year": "1", "end_year": ""}


@dataclass
class Site:
    base: str
    fund_id: str
    draft_id: str
    simulation_id: str
    contexts: dict[tuple[int, bool], Any]
    version: str


@pytest.fixture(scope="module")
def site(web: Any, browser: Any) -> Iterator[Site]:
    user = create_user(web.database, "gp@example.com")
    with web.database.connection() as conn:
        draft = repo.create_fund(
            conn,
            user.org_id,
            user.user_id,
            "Growth Fund II",
            {
                "name": "Growth Fund II",
                "vintage_year": 2026,
                "model_inputs_as_of": "2026-01-01",
            },
        )
        # An added fee tier that overlaps the first: kept as typed, not saved.
        repo.set_pending_edits(
            conn,
            user.org_id,
            draft.id,
            user.user_id,
            "fees",
            ["fees.tiers"],
            {
                "fees.tiers.__count": "2",
                **{f"fees.tiers.0.{k}": v for k, v in TIER.items()},
                **{f"fees.tiers.1.{k}": v for k, v in {**TIER, "rate": "1.5"}.items()},
            },
        )
    # A transaction of its own: a later created_at, so the list order is fixed.
    with web.database.connection() as conn:
        fund = repo.create_fund(conn, user.org_id, user.user_id, FUND["name"], FUND)
        assert validate_publish(FUND)[0] is not None
        repo.publish(conn, user.org_id, fund.id, fund.draft_revision, user_id=user.user_id)
    contexts: dict[tuple[int, bool], Any] = {}
    for width in WIDTHS:
        for signed in (False, True):
            ctx = browser.new_context(
                viewport={"width": width, "height": 800},
                device_scale_factor=1,
                reduced_motion="reduce",
                locale="en-US",
                timezone_id="UTC",
            )
            if signed:
                sign_in(ctx.new_page(), web.url, user)
            contexts[(width, signed)] = ctx
    page = contexts[(1280, True)].pages[0]
    page.goto(f"{web.url}/funds/{fund.id}/forecast")  # computes and stores the forecast
    page.goto(f"{web.url}/funds/{fund.id}/simulations")
    page.get_by_label("Runs").fill("2,000")
    page.get_by_label("Seed").fill("42")
    page.get_by_role("button", name="Run simulation").click()
    page.wait_for_url(re.compile(r".*/simulations/[0-9a-f-]+$"))
    sim_id = page.url.rsplit("/", 1)[1]
    yield Site(web.url, str(fund.id), str(draft.id), sim_id, contexts, browser.version)
    for ctx in contexts.values():
        ctx.close()


#: name → (path, signed in?, CSS selectors of changing text to mask)
PAGES: dict[str, tuple[Callable[[Site], str], bool, tuple[str, ...]]] = {
    "sign-in": (lambda s: "/sign-in", False, ()),
    "funds": (lambda s: "/funds", True, (".updated",)),
    "setup-basics": (lambda s: f"/funds/{s.fund_id}/setup/basics", True, ()),
    "setup-fees": (lambda s: f"/funds/{s.fund_id}/setup/fees", True, ()),
    "setup-stages": (lambda s: f"/funds/{s.fund_id}/setup/stages", True, ()),
    "setup-construction": (lambda s: f"/funds/{s.fund_id}/setup/construction", True, ()),
    "setup-review": (lambda s: f"/funds/{s.fund_id}/setup/review", True, ()),
    "setup-errors": (lambda s: f"/funds/{s.draft_id}/setup/basics?check=1", True, ()),
    "setup-unsaved": (lambda s: f"/funds/{s.draft_id}/setup/fees", True, ()),
    "review-errors": (lambda s: f"/funds/{s.draft_id}/setup/review", True, ()),
    "forecast": (lambda s: f"/funds/{s.fund_id}/forecast", True, ()),
    "simulations": (lambda s: f"/funds/{s.fund_id}/simulations", True, (".when",)),
    "simulation": (lambda s: f"/simulations/{s.simulation_id}", True, ()),
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", list(PAGES))
def test_page(site: Site, name: str, width: int) -> None:
    path, signed, masked = PAGES[name]
    page = site.contexts[(width, signed)].new_page()
    csp = CspWatch(page)
    try:
        response = page.goto(site.base + path(site), wait_until="load")
        assert response is not None and response.status < 500
        assert page.title().endswith("· Updog")
        check_axe(page, f"{name} at {width} px")
        # Nothing wider than the viewport except inside the scrollable table regions.
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at {width} px"
        check_screenshot(
            page, f"{name}-{width}", site.version, mask=[page.locator(s) for s in masked]
        )
        assert csp.messages == []
    finally:
        page.close()
