"""The main journey over real HTTP, plus organisation scoping and conditional requests."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from api_support import VALID_SPEC, Account, LiveServer, assert_problem

pytestmark = pytest.mark.db


def create(client: httpx.Client, spec: dict[str, Any] | None = None) -> httpx.Response:
    r = client.post("/api/v1/funds", json=spec if spec is not None else VALID_SPEC)
    assert r.status_code == 201, r.text
    return r


def test_round_trip(client: httpx.Client) -> None:
    r = create(client, {"name": "Draft only", "fund_size": 50_000_000})
    fund = r.json()
    fid = fund["id"]
    assert fund["version"] == 1 and fund["status"] == "draft"
    assert r.headers["location"] == f"/api/v1/funds/{fid}"
    etag = r.headers["etag"]
    assert etag == fund["etag"]

    got = client.get(f"/api/v1/funds/{fid}")
    assert got.status_code == 200 and got.headers["etag"] == etag
    assert got.json()["spec"] == {"name": "Draft only", "fund_size": 50_000_000}
    assert client.get(f"/api/v1/funds/{fid}", headers={"If-None-Match": etag}).status_code == 304

    # unpublished: forecast is 409 FUND_NOT_PUBLISHED
    assert_problem(client.get(f"/api/v1/funds/{fid}/forecast"), 409, "FUND_NOT_PUBLISHED")
    assert_problem(
        client.post(f"/api/v1/funds/{fid}/simulations", json={"runs": 100, "seed": 1}),
        409,
        "FUND_NOT_PUBLISHED",
    )

    put = client.put(f"/api/v1/funds/{fid}/draft", json=VALID_SPEC, headers={"If-Match": etag})
    assert put.status_code == 200, put.text
    assert put.json()["version"] == 2 and put.headers["etag"] != etag
    etag2 = put.headers["etag"]

    pub = client.post(f"/api/v1/funds/{fid}/publish", headers={"If-Match": etag2})
    assert pub.status_code == 200, pub.text
    assert (pub.json()["published_version"], pub.json()["published_revision"]) == (1, 2)
    assert isinstance(pub.json()["warnings"], list)

    fc = client.get(f"/api/v1/funds/{fid}/forecast")
    assert fc.status_code == 200, fc.text
    body = fc.json()
    assert body["cached"] is False and body["revision"] == 2 and body["kind"] == "published"
    assert body["provenance"]["spec_hash"] and body["provenance"]["engine_version"]
    assert {"summary", "quarters"} <= set(body["result"])
    again = client.get(f"/api/v1/funds/{fid}/forecast").json()
    assert again["cached"] is True and again["id"] == body["id"]
    assert again["result"] == body["result"]

    sim = client.post(f"/api/v1/funds/{fid}/simulations", json={"runs": 500, "seed": 42})
    assert sim.status_code == 201, sim.text
    s = sim.json()
    assert s["status"] == "succeeded" and s["runs"] == 500 and s["seed"] == 42
    assert s["provenance"]["seed"] == 42 and s["provenance"]["spec_version"] == 2
    assert "metrics" in s["result"]
    assert sim.headers["location"] == f"/api/v1/simulations/{s['id']}"

    got_sim = client.get(f"/api/v1/simulations/{s['id']}")
    assert got_sim.status_code == 200
    assert got_sim.json()["result"] == s["result"]

    drawn = client.post(f"/api/v1/funds/{fid}/simulations", json={"runs": 100})
    assert drawn.status_code == 201, drawn.text
    assert isinstance(drawn.json()["seed"], int)


def test_revisions_and_published_versions_are_counted_apart(client: httpx.Client) -> None:
    """Issue 11, item 13: every draft save is a revision; publishing counts on its own, so
    the first publication is version 1 however many saves came before. ``version`` stays
    the draft revision for v1 clients."""
    r = create(client, {**VALID_SPEC, "fund_size": 10_000_000})
    fid, etag = r.json()["id"], r.headers["etag"]
    for size in (20_000_000, 30_000_000, 40_000_000):
        r = client.put(
            f"/api/v1/funds/{fid}/draft",
            json={**VALID_SPEC, "fund_size": size},
            headers={"If-Match": etag},
        )
        assert r.status_code == 200, r.text
        etag = r.headers["etag"]
    fund = r.json()
    pub = client.post(f"/api/v1/funds/{fid}/publish").json()
    assert pub["published_version"] == 1  # not 4: the saves are not publications
    assert (pub["published_revision"], pub["draft_revision"], pub["version"]) == (4, 4, 4)
    assert (fund["draft_revision"], fund["version"], fund["published_version"]) == (4, 4, None)
    fc = client.get(f"/api/v1/funds/{fid}/forecast").json()
    assert (fc["published_version"], fc["revision"], fc["version"]) == (1, 4, 4)
    assert fc["provenance"]["spec_version"] == 4
    sim = client.post(f"/api/v1/funds/{fid}/simulations", json={"runs": 100, "seed": 1}).json()
    assert (sim["published_version"], sim["revision"], sim["kind"]) == (1, 4, "published")

    r = client.put(f"/api/v1/funds/{fid}/draft", json=VALID_SPEC, headers={"If-Match": pub["etag"]})
    assert (r.json()["draft_revision"], r.json()["published_version"]) == (5, 1)
    preview = client.get(f"/api/v1/funds/{fid}/forecast", params={"version": "draft"}).json()
    assert (preview["revision"], preview["published_version"]) == (5, None)
    again = client.post(f"/api/v1/funds/{fid}/publish").json()
    assert (again["published_version"], again["published_revision"]) == (2, 5)
    listed = {f["id"]: f for f in client.get("/api/v1/funds").json()["items"]}[fid]
    assert (listed["published_version"], listed["published_revision"]) == (2, 5)
    assert listed["draft_revision"] == listed["version"] == 5


def test_draft_preview_forecast(client: httpx.Client) -> None:
    fid = create(client).json()["id"]
    r = client.get(f"/api/v1/funds/{fid}/forecast", params={"version": "draft"})
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "draft"
    incomplete = create(client, {"name": "half"}).json()["id"]
    body = assert_problem(
        client.get(f"/api/v1/funds/{incomplete}/forecast", params={"version": "draft"}),
        422,
        "VALIDATION_FAILED",
    )
    assert {e["path"] for e in body["errors"]} >= {"/fund_size", "/vintage_year"}


def test_list_pagination(live: LiveServer, outsider: Account, client: httpx.Client) -> None:
    for i in range(3):
        create(client, {**VALID_SPEC, "name": f"Paged {i}"})
    seen: list[str] = []
    cursor = None
    for _ in range(50):
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/funds", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        assert set(body) == {"items", "next_cursor"}
        seen += [f["id"] for f in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) >= 3
    with live.client(outsider.token) as other:
        assert all(f["id"] not in seen for f in other.get("/api/v1/funds").json()["items"])
    assert_problem(client.get("/api/v1/funds", params={"cursor": "bogus"}), 422, "INVALID_CURSOR")
    assert_problem(client.get("/api/v1/funds", params={"limit": 0}), 422, "VALIDATION_FAILED")


def test_other_organisation_gets_404(
    live: LiveServer, outsider: Account, client: httpx.Client
) -> None:
    fid = create(client).json()["id"]
    etag = client.get(f"/api/v1/funds/{fid}").headers["etag"]
    with live.client(outsider.token) as other:
        assert_problem(other.get(f"/api/v1/funds/{fid}"), 404, "FUND_NOT_FOUND")
        assert_problem(
            other.put(f"/api/v1/funds/{fid}/draft", json=VALID_SPEC, headers={"If-Match": etag}),
            404,
            "FUND_NOT_FOUND",
        )
        assert_problem(other.post(f"/api/v1/funds/{fid}/publish"), 404, "FUND_NOT_FOUND")
        assert_problem(other.get(f"/api/v1/funds/{fid}/forecast"), 404, "FUND_NOT_FOUND")
    client.post(f"/api/v1/funds/{fid}/publish").raise_for_status()
    sim = client.post(f"/api/v1/funds/{fid}/simulations", json={"runs": 100, "seed": 3})
    assert sim.status_code == 201, sim.text
    with live.client(outsider.token) as other:
        assert_problem(
            other.get(f"/api/v1/simulations/{sim.json()['id']}"), 404, "SIMULATION_NOT_FOUND"
        )
        assert_problem(
            other.post(f"/api/v1/funds/{fid}/simulations", json={"runs": 100}),
            404,
            "FUND_NOT_FOUND",
        )
    assert_problem(client.get("/api/v1/funds/not-a-uuid"), 404, "FUND_NOT_FOUND")


def test_if_match_required_and_checked(client: httpx.Client) -> None:
    r = create(client)
    fid, etag = r.json()["id"], r.headers["etag"]
    assert_problem(
        client.put(f"/api/v1/funds/{fid}/draft", json=VALID_SPEC), 428, "PRECONDITION_REQUIRED"
    )
    ok = client.put(f"/api/v1/funds/{fid}/draft", json=VALID_SPEC, headers={"If-Match": etag})
    assert ok.status_code == 200
    stale = client.put(f"/api/v1/funds/{fid}/draft", json=VALID_SPEC, headers={"If-Match": etag})
    body = assert_problem(stale, 412, "PRECONDITION_FAILED")
    assert stale.headers["etag"] == ok.headers["etag"]
    assert body["instance"] == f"/api/v1/funds/{fid}/draft"
    weak = client.put(
        f"/api/v1/funds/{fid}/draft",
        json=VALID_SPEC,
        headers={"If-Match": "W/" + ok.headers["etag"]},
    )
    assert_problem(weak, 412, "PRECONDITION_FAILED")
    assert_problem(
        client.post(f"/api/v1/funds/{fid}/publish", headers={"If-Match": etag}),
        412,
        "PRECONDITION_FAILED",
    )


def test_validation_lists_every_error(client: httpx.Client) -> None:
    bad = {
        "name": "Bad",
        "fund_size": -5,
        "waterfall": {"carry": 0.9},
        "stages": [{"name": "seed", "graduation_rate": 1.5}],
    }
    body = assert_problem(client.post("/api/v1/funds", json=bad), 422, "VALIDATION_FAILED")
    paths = {e["path"] for e in body["errors"]}
    assert {"/fund_size", "/waterfall/carry", "/stages/0/graduation_rate"} <= paths
    assert all(e["code"] and e["message"] for e in body["errors"])

    fid = create(client, {"name": "Incomplete", "fund_size": 10_000_000}).json()["id"]
    etag = client.get(f"/api/v1/funds/{fid}").headers["etag"]
    body = assert_problem(
        client.put(f"/api/v1/funds/{fid}/draft", json=bad, headers={"If-Match": etag}),
        422,
        "VALIDATION_FAILED",
    )
    assert "/stages/0/graduation_rate" in {e["path"] for e in body["errors"]}

    body = assert_problem(client.post(f"/api/v1/funds/{fid}/publish"), 422, "VALIDATION_FAILED")
    assert {"/vintage_year", "/model_inputs_as_of"} <= {e["path"] for e in body["errors"]}
    assert_problem(client.post("/api/v1/funds", json=[1, 2]), 422, "VALIDATION_FAILED")


def test_simulation_request_rules(client: httpx.Client) -> None:
    fid = create(client).json()["id"]
    client.post(f"/api/v1/funds/{fid}/publish").raise_for_status()
    url = f"/api/v1/funds/{fid}/simulations"
    for runs in (20_001, 5_000_000):  # above the synchronous limit: a background job
        queued = client.post(url, json={"runs": runs})
        assert queued.status_code == 202, queued.text
        assert queued.headers["location"] == f"/api/v1/simulations/{queued.json()['id']}"
        assert queued.json()["status"] == "queued" and queued.json()["runs"] == runs
        assert client.delete(queued.headers["location"]).json()["status"] == "cancelled"
    for bad, path in [
        ({"runs": 99}, "/runs"),
        ({"runs": 5_000_001}, "/runs"),
        ({"runs": "1000"}, "/runs"),
        ({"runs": 1000.5}, "/runs"),
        ({"runs": True}, "/runs"),
        ({"runs": 1000, "seed": -1}, "/seed"),
        ({}, "/runs"),
        ({"runs": 1000, "extra": 1}, "/extra"),
    ]:
        problem = assert_problem(client.post(url, json=bad), 422, "VALIDATION_FAILED")
        assert path in {e["path"] for e in problem["errors"]}, (bad, problem)


@pytest.mark.parametrize("method,path", [("get", "/api/v1/funds"), ("post", "/api/v1/funds")])
def test_401_without_or_with_bad_token(live: LiveServer, method: str, path: str) -> None:
    with live.client() as anon:
        r = anon.request(method.upper(), path, json=VALID_SPEC)
        assert_problem(r, 401, "UNAUTHENTICATED")
        assert r.headers["www-authenticate"].startswith("Bearer")
    with live.client("updog_" + "x" * 43) as bad:
        r = bad.request(method.upper(), path, json=VALID_SPEC)
        assert_problem(r, 401, "INVALID_TOKEN")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    with live.client() as basic:
        r = basic.request(method.upper(), path, headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert_problem(r, 401, "INVALID_TOKEN")


def test_viewer_reads_but_cannot_write(
    live: LiveServer, viewer: Account, client: httpx.Client
) -> None:
    fid = create(client).json()["id"]
    with live.client(viewer.token) as v:
        assert v.get(f"/api/v1/funds/{fid}").status_code == 200
        assert_problem(v.post("/api/v1/funds", json=VALID_SPEC), 403, "INSUFFICIENT_ROLE")
        assert_problem(v.post(f"/api/v1/funds/{fid}/publish"), 403, "INSUFFICIENT_ROLE")


def test_spec_is_stored_as_sent(client: httpx.Client) -> None:
    spec = copy.deepcopy(VALID_SPEC)
    spec["name"] = "Unicode ✓ fund — €"
    fid = create(client, spec).json()["id"]
    assert client.get(f"/api/v1/funds/{fid}").json()["spec"] == spec


def test_concurrent_edits_one_wins(live: LiveServer, analyst: Account) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with live.client(analyst.token) as c:
        r = create(c)
    fid, etag = r.json()["id"], r.headers["etag"]

    def edit(i: int) -> int:
        with live.client(analyst.token) as c:
            spec = {**VALID_SPEC, "name": f"Edit {i}"}
            resp = c.put(f"/api/v1/funds/{fid}/draft", json=spec, headers={"If-Match": etag})
            return resp.status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(edit, range(8)))
    assert statuses.count(200) == 1 and statuses.count(412) == 7, statuses
