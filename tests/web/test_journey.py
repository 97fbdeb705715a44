"""End to end in a real browser: sign in (keyboard only), create a fund through every
wizard step (with errors shown next to their fields, and a draft that survives a reload),
publish, read the forecast, run a simulation as a background job with its progress bar,
download the results as CSV and JSON, sign out."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect
from web_support import CspWatch, create_user

from updog.store import repositories as repo

pytestmark = [pytest.mark.db, pytest.mark.browser]


def _stored_spec(web: Any, org_id: Any) -> dict[str, Any]:
    with web.database.connection() as conn:
        page = repo.list_funds(conn, org_id, 10)
        return dict(page.items[0].spec)


def _focus_ring(page: Any) -> str:
    return str(
        page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return s.outlineStyle + ' ' + s.outlineWidth; }"
        )
    )


def test_journey(web: Any, browser: Any) -> None:
    user = create_user(web.database, "journey@example.com")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    csp = CspWatch(page)
    base = web.url

    # Sign in with the keyboard only; focus is visible on every stop.
    page.goto(f"{base}/funds")
    assert page.url.startswith(f"{base}/sign-in?next=/funds")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    assert _focus_ring(page).startswith("solid")
    for _ in range(3):  # the brand link, then the form
        page.keyboard.press("Tab")
        assert _focus_ring(page).startswith("solid")
        if page.evaluate("document.activeElement.id") == "email":
            break
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type(user.email)
    page.keyboard.press("Tab")
    page.keyboard.type(user.password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/funds")

    # New fund → basics, pre-filled with defaults.
    page.get_by_role("button", name="New fund").click()
    page.wait_for_url(re.compile(r".*/setup/basics$"))
    assert page.get_by_label("Fund life").input_value() == "10"
    page.get_by_label("Fund name").fill("Journey Fund I")
    page.get_by_label("Fund size (commitments)").fill("75000000")
    page.get_by_label("Vintage year").fill("2024")
    page.get_by_label("Model inputs as of").fill("2024-06-30")
    page.get_by_label("Investment period").fill("15")
    page.get_by_label("Fund life").focus()  # leaving the field formats it and autosaves
    assert page.get_by_label("Fund size (commitments)").input_value() == "75,000,000"
    expect(page.locator("#save-status")).to_contain_text("Draft saved, except Investment period")

    # The draft survives a reload; the invalid period was not stored, but it is shown as
    # typed, with its error and a note that it is not saved.
    page.reload()
    assert page.get_by_label("Fund name").input_value() == "Journey Fund I"
    assert page.get_by_label("Fund size (commitments)").input_value() == "75,000,000"
    assert page.get_by_label("Investment period").input_value() == "15"
    assert "Must be at most 10." in page.locator("#f-investment_period_years-error1").inner_text()
    assert "Not saved yet: Investment period." in page.locator("#unsaved").inner_text()
    spec = _stored_spec(web, user.org_id)
    assert spec["fund_size"] == 75_000_000 and spec["vintage_year"] == 2024
    assert spec["investment_period_years"] == 5

    # The server checks the step; the error is shown next to its field and summarised.
    page.get_by_role("button", name="Save and continue", exact=True).last.click()
    error = page.locator("#f-investment_period_years-error1")
    assert "Must be at most 10." in error.inner_text()
    field = page.locator("#f-investment_period_years")
    assert field.get_attribute("aria-invalid") == "true"
    assert "f-investment_period_years-error1" in (field.get_attribute("aria-describedby") or "")
    assert page.locator("#error-summary").is_visible()
    field.fill("5")
    page.get_by_role("button", name="Save and continue", exact=True).last.click()
    page.wait_for_url(re.compile(r".*/setup/fees$"))

    # Fees: percent in the UI, ratios in the spec.
    page.get_by_label("Carried interest").fill("25")
    page.get_by_label("Hurdle (preferred return)").fill("7.5")
    page.get_by_role("button", name="Save and continue", exact=True).last.click()
    page.wait_for_url(re.compile(r".*/setup/stages$"))
    spec = _stored_spec(web, user.org_id)
    assert spec["waterfall"]["carry"] == 0.25
    assert spec["waterfall"]["hurdle"] == 0.075

    # Stages: graduation + exit above 100 % is refused next to the field.
    page.locator("#f-stages-0-exit_rate").fill("90")
    page.get_by_role("button", name="Save and continue", exact=True).last.click()
    assert (
        "must not exceed 100 %" in page.locator("#f-stages-0-graduation_rate-error1").inner_text()
    )
    page.locator("#f-stages-0-exit_rate").fill("5")
    page.get_by_role("button", name="Save and continue", exact=True).last.click()
    page.wait_for_url(re.compile(r".*/setup/construction$"))

    # Construction: add a second allocation; shares must add up to 100 %.
    page.get_by_role("button", name="Add allocation").click()
    page.locator("#f-construction-allocations-1-stage").select_option("series-a")
    page.locator("#f-construction-allocations-1-initial_check").fill("2,000,000")
    page.locator("#f-construction-allocations-0-share").fill("60")
    page.get_by_role("button", name="Save and continue", exact=True).last.click()
    assert "add up to 100 % (now 60 %)" in page.locator("#error-summary").inner_text()
    assert page.locator("#f-construction-allocations-error1").is_visible()
    page.locator("#f-construction-allocations-1-share").fill("40")
    page.get_by_role("button", name="Save and continue", exact=True).last.click()
    page.wait_for_url(re.compile(r".*/setup/review$"))

    # Review and publish.
    assert "$75,000,000" in page.locator("main").inner_text()
    assert "25.0 %" in page.locator("main").inner_text()
    page.get_by_role("button", name="Publish fund").click()
    page.wait_for_url(re.compile(r".*/forecast$"))
    assert page.get_by_role("heading", name="Forecast: Journey Fund I").is_visible()
    assert "Published version 1 (draft revision" in page.locator("main").inner_text()
    images = page.locator("figure.chart img")
    assert images.count() == 4
    for i in range(4):
        assert len(images.nth(i).get_attribute("alt") or "") > 20
    assert page.locator("table.data").count() >= 5
    spec = _stored_spec(web, user.org_id)
    assert spec["construction"]["allocations"][1]["share"] == 0.4

    # The fund list shows the fund, published, with its forecast TVPI.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Funds").click()
    row = page.get_by_role("row", name=re.compile("Journey Fund I"))
    assert "Published v1" in row.inner_text()  # the first publication, whatever the saves
    assert re.search(r"\d\.\d\dx", row.inner_text())

    # Simulation above the synchronous limit: a job with a progress bar, then results.
    row.get_by_role("link", name="Journey Fund I").click()
    page.get_by_role("link", name="Simulations").click()
    page.get_by_label("Runs").fill("8,000")
    page.get_by_label("Seed").fill("7")
    page.get_by_role("button", name="Run simulation").click()
    page.wait_for_url(re.compile(r".*/simulations/[0-9a-f-]+$"))
    if page.locator("progress").count():
        assert page.locator("progress").get_attribute("max") == "100"
    page.get_by_role("heading", name="Percentiles").wait_for(timeout=90_000)
    assert page.locator("figure.chart img").count() == 2

    with page.expect_download() as info:
        page.get_by_role("link", name="Download results (CSV)").click()
    rows = list(csv.reader(io.StringIO(info.value.path().read_text())))
    assert rows[0][:6] == ["# simulation", rows[0][1], "runs", "8000", "seed", "7"]
    assert rows[1][:4] == ["metric", "count", "mean", "sd"]
    assert rows[2][0] == "tvpi"
    with page.expect_download() as info:
        page.get_by_role("link", name="Download results (JSON)").click()
    body = json.loads(info.value.path().read_text())
    assert body["runs"] == 8000 and body["seed"] == 7
    assert "tvpi" in body["result"]["metrics"]

    # Sign out: the session is gone.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{base}/sign-in")
    page.goto(f"{base}/funds")
    assert "/sign-in" in page.url
    assert csp.messages == []
    context.close()
