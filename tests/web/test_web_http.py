"""The web UI over plain HTTP (no browser): sign-in and CSRF rules, organisation scoping,
roles, the strict CSP (no inline script or style, no asset from elsewhere), and the wizard's
unit conversions (dollars with separators, percent ↔ ratio)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_support import PASSWORD, create_user

from updog.store import repositories as repo
from updog.web import forms

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def _signed_in(web: Any, email: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=web.url, timeout=60) as client:
        page = client.get("/sign-in")
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        r = client.post(
            "/sign-in",
            data={"email": email, "password": PASSWORD, "csrf_token": token, "next": "/"},
        )
        assert r.status_code == 303, r.text
        yield client


def _csrf(client: httpx.Client, path: str = "/funds") -> str:
    return CSRF.search(client.get(path).text).group(1)  # type: ignore[union-attr]


@pytest.mark.db
def test_sign_in_rules(web: Any) -> None:
    user = create_user(web.database, "rules@example.com")
    with httpx.Client(base_url=web.url, timeout=60) as anon:
        r = anon.get("/funds")
        assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/funds"
        # No pre-session cookie (a cross-site post): refused.
        r = anon.post("/sign-in", data={"email": user.email, "password": PASSWORD})
        assert r.status_code == 403
        token = CSRF.search(anon.get("/sign-in").text).group(1)  # type: ignore[union-attr]
        r = anon.post(
            "/sign-in", data={"email": user.email, "password": "wrong", "csrf_token": token}
        )
        assert r.status_code == 401 and "Wrong email or password" in r.text
        token = CSRF.search(anon.get("/sign-in").text).group(1)  # type: ignore[union-attr]
        r = anon.post(
            "/sign-in",
            data={
                "email": user.email,
                "password": PASSWORD,
                "csrf_token": token,
                "next": "//evil.example/",
            },
        )
        assert r.status_code == 303 and r.headers["location"] == "/funds"
        cookie = r.headers["set-cookie"]
        assert "updog_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


@pytest.mark.db
def test_writes_need_csrf_and_role(web: Any) -> None:
    create_user(web.database, "writer@example.com")
    create_user(web.database, "reader@example.com", role="viewer")
    with _signed_in(web, "writer@example.com") as client:
        assert client.post("/funds", data={"name": "x"}).status_code == 403
        assert client.post("/funds", data={"csrf_token": "x" * 64}).status_code == 403
        r = client.post("/funds", data={"csrf_token": _csrf(client)})
        assert r.status_code == 303 and r.headers["location"].endswith("/setup/basics")
        fund_path = r.headers["location"]
        # JSON is not a form: refused before anything is read into the draft.
        r = client.post(fund_path, json={"name": "x"})
        assert r.status_code == 415
    with _signed_in(web, "reader@example.com") as reader:
        assert reader.get(fund_path).status_code == 200
        assert "Save and continue" not in reader.get(fund_path).text
        r = reader.post(fund_path, data={"csrf_token": _csrf(reader), "name": "Mine"})
        assert r.status_code == 403


@pytest.mark.db
def test_other_organisations_funds_are_not_found(web: Any) -> None:
    create_user(web.database, "a@one.example", org="One Capital")
    create_user(web.database, "b@two.example", org="Two Capital")
    with _signed_in(web, "a@one.example") as one:
        r = one.post("/funds", data={"csrf_token": _csrf(one)})
        fund_path = r.headers["location"]
    with _signed_in(web, "b@two.example") as two:
        for path in (fund_path, fund_path.replace("/setup/basics", "/forecast")):
            assert two.get(path).status_code == 404
        assert two.get("/funds/not-a-uuid/forecast").status_code == 404
        assert two.get("/simulations/00000000-0000-0000-0000-000000000000").status_code == 404


@pytest.mark.db
def test_pages_keep_a_strict_csp(web: Any) -> None:
    create_user(web.database, "csp@example.com")
    with _signed_in(web, "csp@example.com") as client:
        r = client.post("/funds", data={"csrf_token": _csrf(client)})
        fund = r.headers["location"].rsplit("/setup/", 1)[0]
        paths = ["/funds", *(f"{fund}/setup/{s}" for s in forms.STEP_SLUGS), f"{fund}/forecast"]
        for path in paths:
            r = client.get(path)
            assert r.headers["content-type"].startswith("text/html")
            csp = r.headers["content-security-policy"]
            assert "unsafe-eval" not in csp and "unsafe-inline" not in csp, csp
            html = r.text
            assert not re.search(r"<script(?![^>]*\bsrc=)", html), path  # no inline script
            assert " style=" not in html and "<style" not in html, path  # no inline style
            assert not re.search(r'(src|href)="(https?:)?//', html), path  # nothing from elsewhere
        css = client.get("/static/ui/app.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "DejaVu Sans" in css.text


def _stored(web: Any, fund_id: str) -> dict[str, Any]:
    """The fund's draft spec as stored."""
    with web.database.connection() as conn:
        row = conn.execute("SELECT org_id FROM funds WHERE id = %s", (fund_id,)).fetchone()
        fund = repo.get_fund(conn, row["org_id"], uuid.UUID(fund_id))
    assert fund is not None
    return dict(fund.spec)


def _step_form(
    web: Any, client: httpx.Client, fund_id: str, slug: str, typed: dict[str, str]
) -> dict[str, str]:
    """What the browser posts for a wizard step showing the stored draft, with ``typed``."""
    step = forms.get_step(slug)
    assert step is not None
    state = forms.state_from_spec(step, _stored(web, fund_id))
    form = {**state.values, **{f"{k}.__count": str(n) for k, n in state.counts.items()}}
    return {**form, "csrf_token": _csrf(client), **typed}


def _field(html: str, key: str) -> str:
    """The value attribute of the input named ``key`` on a page."""
    match = re.search(rf'name="{re.escape(key)}" value="([^"]*)"', html)
    assert match is not None, key
    return match.group(1)


#: The texts of the fee tier that "Add tier" appends to a one-tier fund.
_PENDING_TIER = {"rate": "1.5", "basis": "committed", "start_year": "1", "end_year": ""}


@pytest.mark.db
def test_failed_step_keeps_what_was_typed_and_says_what_was_saved(web: Any) -> None:
    """Issue 11, item 12: a step that fails validation saves its valid fields, says which
    were not saved, and keeps the invalid entries as typed (a negative fund size, an
    investment period of 12, an added overlapping fee tier) so a reload shows them with
    their errors; discarding them, or fixing them, clears them."""
    create_user(web.database, "typed@example.com")
    with _signed_in(web, "typed@example.com") as client:
        r = client.post("/funds", data={"csrf_token": _csrf(client)})
        basics = r.headers["location"]
        fund_id = basics.split("/")[2]
        typed = {"name": "Typed Fund I", "fund_size": "-5", "investment_period_years": "12"}
        r = client.post(
            basics,
            data={**_step_form(web, client, fund_id, "basics", typed), "_action": "autosave"},
        )
        body = r.json()
        assert body["saved"] is True
        assert body["not_saved"] == ["Fund size (commitments)", "Investment period"]
        assert body["message"].startswith("Draft saved, except Fund size (commitments), ")
        stored = _stored(web, fund_id)
        assert stored["name"] == "Typed Fund I" and "fund_size" not in stored
        assert stored["investment_period_years"] == 5

        # A reload shows the entries as typed, each with its error, and says they are unsaved.
        page = client.get(basics).text
        assert _field(page, "fund_size") == "-5"
        assert _field(page, "investment_period_years") == "12"
        assert _field(page, "name") == "Typed Fund I"
        assert 'id="f-fund_size-error1"' in page and "Must be at most 10." in page
        assert "Not saved yet:</strong> Fund size (commitments), Investment period." in page

        # An added fee tier that overlaps the first is kept, not dropped.
        fees = basics.replace("/basics", "/fees")
        r = client.post(
            fees,
            data={**_step_form(web, client, fund_id, "fees", {}), "_action": "add:fees.tiers"},
        )
        assert r.status_code == 200
        assert "Not saved: Management fees › Fee tiers." in r.text
        assert len(_stored(web, fund_id)["fees"]["tiers"]) == 1
        page = client.get(fees).text
        assert _field(page, "fees.tiers.__count") == "2"
        assert _field(page, "fees.tiers.1.rate") == "1.5"
        assert "Fee tiers must be in order and must not overlap." in page

        review = client.get(basics.replace("/basics", "/review")).text
        assert "Not saved, so not part of this draft" in review
        assert "Fund size (commitments), Investment period" in review

        # Discarding shows the draft again; fixing saves and clears the pending entries.
        r = client.post(basics, data={"csrf_token": _csrf(client), "_action": "discard"})
        assert r.status_code == 303
        page = client.get(basics).text
        assert _field(page, "investment_period_years") == "5" and "Not saved yet" not in page
        fixed = {
            "fees.tiers.__count": "2",
            "fees.tiers.0.end_year": "5",
            **{f"fees.tiers.1.{k}": v for k, v in _PENDING_TIER.items()},
            "fees.tiers.1.start_year": "6",
            "_action": "continue",
        }
        r = client.post(fees, data={**_step_form(web, client, fund_id, "fees", fixed)})
        assert r.status_code == 303 and r.headers["location"].endswith("/setup/stages")
        tiers = _stored(web, fund_id)["fees"]["tiers"]
        assert [(t["start_year"], t.get("end_year")) for t in tiers] == [(1, 5), (6, None)]
        assert "Not saved yet" not in client.get(fees).text


@pytest.mark.db
def test_first_publication_is_version_1(web: Any) -> None:
    """Issue 11, item 13: after seven autosaves the first publication is "version 1"; the
    draft's revisions are named as such, and a later save shows as unpublished changes."""
    user = create_user(web.database, "counts@example.com")
    spec = json.loads((Path(__file__).parent / "fund.json").read_text())
    with web.database.connection() as conn:
        fund = repo.create_fund(conn, user.org_id, user.user_id, spec["name"], spec)
        for size in range(7):  # what seven autosaves of the wizard do: draft revision 8
            fund = repo.replace_draft(
                conn, user.org_id, fund.id, {**spec, "fund_size": 50_000_000 + size}, size + 1
            )
    with _signed_in(web, user.email) as client:
        r = client.post(f"/funds/{fund.id}/publish", data={"csrf_token": _csrf(client)})
        assert r.status_code == 303, r.text
        forecast = client.get(r.headers["location"]).text
        assert "Published version 8" not in forecast
        assert "Published version 1 (draft revision 8)." in forecast
        assert "Published v1" in client.get("/funds").text
        with web.database.connection() as conn:
            repo.replace_draft(conn, user.org_id, fund.id, spec, 8)
        listing = client.get("/funds").text
        assert "Published v1" in listing and "Unpublished changes" in listing
        review = client.get(f"/funds/{fund.id}/setup/review").text
        assert "Publishing makes this draft (revision 9) version 2 of the fund." in review
        r = client.post(
            f"/funds/{fund.id}/publish", data={"csrf_token": _csrf(client), "revision": "9"}
        )
        assert "Published version 2 (draft revision 9)." in client.get(r.headers["location"]).text


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("money", "50,000,000", 50_000_000.0),
        ("money", "$1,234,567.50", 1_234_567.5),
        ("money", "750000", 750_000.0),
        ("percent", "2", 0.02),
        ("percent", "7", 0.07),
        ("percent", "2.5 %", 0.025),
        ("percent", "0.35", 0.0035),
        ("int", "2025", 2025),
        ("number", "1.16", 1.16),
    ],
)
def test_parse_units(kind: Any, text: str, value: float) -> None:
    assert forms.parse_value(forms.Input("x", "X", kind), text) == value


@pytest.mark.parametrize(
    ("kind", "text"),
    [("money", "1,2,3"), ("money", "50M"), ("percent", "two"), ("int", "1.5"), ("number", "nan")],
)
def test_parse_rejects(kind: Any, text: str) -> None:
    with pytest.raises(forms.ParseError):
        forms.parse_value(forms.Input("x", "X", kind), text)


def test_format_units() -> None:
    assert forms.format_value("money", 50_000_000.0) == "50,000,000"
    assert forms.format_value("percent", 0.07) == "7"
    assert forms.format_value("percent", 0.025) == "2.5"
    assert forms.format_value("number", 18.0) == "18"


def test_issue_messages_speak_percent() -> None:
    rate = forms.Input("rate", "Rate", "percent")
    issue = {
        "path": "/fees/tiers/0/rate",
        "code": "OUT_OF_RANGE",
        "message": "Input should be less than or equal to 0.05",
    }
    assert forms.issue_message(issue, rate) == "Must be at most 5 %."
    shares = {
        "path": "/construction/allocations",
        "code": "SHARES_NOT_ONE",
        "message": "allocation shares must sum to 1 (got 0.600000)",
    }
    assert forms.issue_message(shares, None) == "Allocation shares must add up to 100 % (now 60 %)."


def test_invalid_fields_keep_their_stored_value() -> None:
    spec = forms.new_fund_spec(__import__("datetime").date(2025, 1, 1))
    step = forms.get_step("stages")
    assert step is not None
    form = forms.state_from_spec(step, spec).values
    form["stages.0.exit_rate"] = "95"  # with graduation 30 %: above 100 %
    candidate, errors = forms.parse_step(step, form, spec)
    assert errors == {}
    saved = forms.savable(spec, candidate, errors)
    assert saved is not None and saved["stages"][0]["exit_rate"] == spec["stages"][0]["exit_rate"]


def test_held_back_names_the_entries_the_draft_did_not_take() -> None:
    """Issue 11, item 12, without HTTP: the keys not saved, in form order, and their texts
    shown over the stored draft."""
    spec = forms.new_fund_spec(date(2025, 1, 1))
    step = forms.get_step("basics")
    assert step is not None
    form = {
        **forms.form_texts(step, spec),
        "name": "Held I",
        "fund_size": "-5",
        "vintage_year": "soon",
        "investment_period_years": "12",
    }
    candidate, errors = forms.parse_step(step, form, spec)
    kept = forms.savable(spec, candidate, errors)
    assert kept is not None and kept["name"] == "Held I"
    held = forms.held_back(candidate, kept, errors, form)
    assert held == ["fund_size", "vintage_year", "investment_period_years"]
    texts = forms.pending_texts(form, held)
    assert texts == {"fund_size": "-5", "vintage_year": "soon", "investment_period_years": "12"}
    shown = forms.with_pending(step, kept, held, texts)
    assert (shown["name"], shown["investment_period_years"]) == ("Held I", "12")
    assert forms.save_message(step, held, changed=True) == (
        "Draft saved, except Fund size (commitments), Vintage year, Investment period: the "
        "draft keeps their last saved values until they are fixed."
    )
    assert forms.save_message(step, [], changed=True) == "Draft saved."
