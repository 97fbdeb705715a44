"""Repositories against a real PostgreSQL: organisation scoping, optimistic versions,
token and password handling, stored results."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import psycopg.errors
import pytest

from updog.store import repositories as repo

pytestmark = pytest.mark.db


@pytest.fixture
def org_user(db: Any) -> tuple[Any, Any]:
    with db.connection() as conn:
        org = repo.get_or_create_organisation(conn, f"Org {uuid.uuid4().hex[:8]}")
        user = repo.create_user(
            conn, org.id, f"{uuid.uuid4().hex[:8]}@example.com", "correct horse", "analyst"
        )
    return org, user


@pytest.fixture
def other_org(db: Any) -> Any:
    with db.connection() as conn:
        return repo.get_or_create_organisation(conn, f"Other {uuid.uuid4().hex[:8]}")


# --------------------------------------------------------------------------- organisations


def test_organisation_get_or_create_is_case_insensitive(db: Any) -> None:
    with db.connection() as conn:
        a = repo.get_or_create_organisation(conn, "Acme Ventures")
        b = repo.get_or_create_organisation(conn, "  acme ventures ")
        assert a == b
        assert repo.get_organisation(conn, a.id) == a
        with pytest.raises(ValueError):
            repo.get_or_create_organisation(conn, "  ")


# --------------------------------------------------------------------------- users


def test_password_is_argon2_hashed_and_verified(db: Any, org_user: tuple[Any, Any]) -> None:
    _, user = org_user
    with db.connection() as conn:
        stored = conn.execute(
            "SELECT password_hash FROM users WHERE id = %s", (user.id,)
        ).fetchone()["password_hash"]
        assert stored.startswith("$argon2id$") and "correct horse" not in stored
        assert repo.verify_password(conn, user.email.upper(), "correct horse") == user
        assert repo.verify_password(conn, user.email, "wrong horse") is None
        assert repo.verify_password(conn, "nobody@example.com", "correct horse") is None


def test_disabled_user_cannot_sign_in(db: Any, org_user: tuple[Any, Any]) -> None:
    _, user = org_user
    with db.connection() as conn:
        conn.execute("UPDATE users SET disabled_at = now() WHERE id = %s", (user.id,))
        assert repo.verify_password(conn, user.email, "correct horse") is None


def test_duplicate_email_is_reported_and_keeps_the_transaction(
    db: Any, org_user: tuple[Any, Any]
) -> None:
    org, user = org_user
    with db.connection() as conn:
        with pytest.raises(repo.DuplicateEmail):
            repo.create_user(conn, org.id, user.email.upper(), "another password", "viewer")
        assert repo.get_user_by_email(conn, user.email) == user  # transaction still usable


@pytest.mark.parametrize(
    ("email", "password", "role"),
    [
        ("not-an-email", "long enough", "viewer"),
        ("a@b.c", "short", "viewer"),
        ("a@b.c", "long enough", "owner"),
    ],
)
def test_create_user_rejects_bad_input(
    db: Any, org_user: tuple[Any, Any], email: str, password: str, role: Any
) -> None:
    org, _ = org_user
    with db.connection() as conn, pytest.raises(ValueError):
        repo.create_user(conn, org.id, email, password, role)


# --------------------------------------------------------------------------- tokens


def test_token_only_its_hash_is_stored(db: Any, org_user: tuple[Any, Any]) -> None:
    org, user = org_user
    with db.connection() as conn:
        plaintext, record = repo.create_token(conn, user.id, "laptop")
        assert plaintext.startswith("updog_") and len(plaintext) >= 40
        row = conn.execute("SELECT * FROM api_tokens WHERE id = %s", (record.id,)).fetchone()
        assert all(plaintext not in str(value) for value in row.values())
        assert row["prefix"] == plaintext[: repo.TOKEN_DISPLAY_CHARS]
        identity = repo.identity_for_token(conn, plaintext)
        assert identity == repo.Identity(
            user_id=user.id, org_id=org.id, role="analyst", email=user.email, token_id=record.id
        )
        assert repo.list_tokens(conn, user.id)[0].last_used_at is not None


def test_revoked_or_unknown_token_is_rejected(db: Any, org_user: tuple[Any, Any]) -> None:
    _, user = org_user
    with db.connection() as conn:
        plaintext, record = repo.create_token(conn, user.id)
        assert repo.identity_for_token(conn, plaintext[:-1] + "x") is None
        assert repo.identity_for_token(conn, "garbage") is None
        assert not repo.revoke_token(conn, record.id, user_id=uuid.uuid4())  # not theirs
        assert repo.revoke_token(conn, record.id)
        assert not repo.revoke_token(conn, record.id)  # already revoked
        assert repo.identity_for_token(conn, plaintext) is None
        (listed,) = repo.list_tokens(conn, user.id)
        assert listed.revoked_at is not None and not listed.active


def test_create_token_for_unknown_user(db: Any) -> None:
    with db.connection() as conn, pytest.raises(repo.NotFound):
        repo.create_token(conn, uuid.uuid4())


def test_sessions_expire_and_sign_out(db: Any, org_user: tuple[Any, Any]) -> None:
    _, user = org_user
    with db.connection() as conn:
        secret, session_id = repo.create_session(conn, user.id)
        identity = repo.identity_for_session(conn, secret)
        assert identity is not None and identity.session_id == session_id
        conn.execute(
            "UPDATE sessions SET last_seen_at = now() - interval '13 hours' WHERE id = %s",
            (session_id,),
        )
        assert repo.identity_for_session(conn, secret) is None  # idle too long
        conn.execute("UPDATE sessions SET last_seen_at = now() WHERE id = %s", (session_id,))
        assert repo.revoke_session(conn, session_id)
        assert repo.identity_for_session(conn, secret) is None


# --------------------------------------------------------------------------- funds


def test_fund_lifecycle_and_versions(db: Any, org_user: tuple[Any, Any]) -> None:
    org, user = org_user
    with db.connection() as conn:
        fund = repo.create_fund(conn, org.id, user.id, "Seed I", {"name": "Seed I"})
        assert (fund.status, fund.draft_revision, fund.published_version) == ("draft", 1, None)
        assert fund.spec == {"name": "Seed I"} and fund.created_by == user.id
        assert fund.created_at.tzinfo is not None
        assert repo.revision_from_etag(fund.id, fund.etag) == 1
        assert repo.revision_from_etag(fund.id, "W/" + fund.etag) is None
        assert repo.revision_from_etag(uuid.uuid4(), fund.etag) is None
        with pytest.raises(repo.NotPublished):
            repo.get_spec(conn, org.id, fund.id)

        fund2 = repo.replace_draft(conn, org.id, fund.id, {"name": "Seed I", "fund_size": 5e7}, 1)
        assert fund2.draft_revision == 2 and fund2.etag != fund.etag
        with pytest.raises(repo.StaleVersion) as stale:
            repo.replace_draft(conn, org.id, fund.id, {}, 1)
        assert stale.value.current_revision == 2

        with pytest.raises(repo.StaleVersion):
            repo.publish(conn, org.id, fund.id, 1)
        published = repo.publish(conn, org.id, fund.id, 2, user_id=user.id)
        assert (published.status, published.published_version) == ("published", 1)
        assert published.published_revision == 2
        assert repo.publish(conn, org.id, fund.id, 2) == published  # idempotent

        edited = repo.replace_draft(conn, org.id, fund.id, {"name": "Seed II"}, 2, name="Seed II")
        assert (edited.draft_revision, edited.published_revision, edited.name) == (3, 2, "Seed II")
        assert edited.has_unpublished_changes
        pub = repo.get_spec(conn, org.id, fund.id, "published")
        draft = repo.get_spec(conn, org.id, fund.id, "draft")
        assert pub is not None and draft is not None
        assert (pub.revision, pub.published_version, pub.kind) == (2, 1, "published")
        assert pub.spec["fund_size"] == 5e7
        assert (draft.revision, draft.published_version, draft.kind) == (3, None, "draft")
        assert draft.spec == {"name": "Seed II"}
        assert pub.spec_hash == repo.spec_hash({"fund_size": 5e7, "name": "Seed I"})


def test_other_organisation_sees_nothing(
    db: Any, org_user: tuple[Any, Any], other_org: Any
) -> None:
    org, user = org_user
    with db.connection() as conn:
        fund = repo.create_fund(conn, org.id, user.id, "Private", {})
        assert repo.get_fund(conn, other_org.id, fund.id) is None
        assert repo.get_spec(conn, other_org.id, fund.id, "draft") is None
        assert repo.list_funds(conn, other_org.id).items == []
        with pytest.raises(repo.NotFound):
            repo.replace_draft(conn, other_org.id, fund.id, {}, 1)
        with pytest.raises(repo.NotFound):
            repo.publish(conn, other_org.id, fund.id, 1)
        assert repo.get_fund(conn, org.id, fund.id) == fund


def test_list_funds_keyset_pagination(db: Any, org_user: tuple[Any, Any]) -> None:
    org, user = org_user
    with db.connection() as conn:
        created = [repo.create_fund(conn, org.id, user.id, f"F{i}", {}) for i in range(5)]
    expected = sorted(created, key=lambda f: (f.created_at, f.id), reverse=True)
    seen: list[Any] = []
    cursor = None
    with db.connection() as conn:
        while True:
            page = repo.list_funds(conn, org.id, limit=2, cursor=cursor)
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert [f.id for f in seen] == [f.id for f in expected]
        with pytest.raises(repo.InvalidCursor):
            repo.list_funds(conn, org.id, cursor="not-a-cursor")
        with pytest.raises(ValueError):
            repo.list_funds(conn, org.id, limit=0)


def test_concurrent_draft_edits_one_wins(db: Any, org_user: tuple[Any, Any]) -> None:
    """The second writer waits on the row lock, then sees the new revision: StaleVersion."""
    org, user = org_user
    with db.connection() as conn:
        fund = repo.create_fund(conn, org.id, user.id, "Race", {})
    outcome: dict[str, Any] = {}

    def second() -> None:
        try:
            with db.connection() as conn:
                repo.replace_draft(conn, org.id, fund.id, {"by": "second"}, 1)
            outcome["second"] = "won"
        except repo.StaleVersion as exc:
            outcome["second"] = exc.current_revision

    with db.connection() as conn:
        repo.replace_draft(conn, org.id, fund.id, {"by": "first"}, 1)
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert thread.is_alive(), "the second edit should wait for the first's lock"
    thread.join(10)
    assert outcome == {"second": 2}
    with db.connection() as conn:
        current = repo.get_fund(conn, org.id, fund.id)
    assert current is not None and current.spec == {"by": "first"}


def test_publications_are_numbered_apart_from_draft_revisions(
    db: Any, org_user: tuple[Any, Any]
) -> None:
    """Issue 11, item 13: seven saves then a publish is published version 1 (draft revision
    8), and only publishing moves the published version on."""
    org, user = org_user
    with db.connection() as conn:
        fund = repo.create_fund(conn, org.id, user.id, "Counted", {"name": "Counted"})
        for size in range(1, 8):  # the wizard's autosaves
            fund = repo.replace_draft(conn, org.id, fund.id, {"fund_size": size}, size)
        first = repo.publish(conn, org.id, fund.id, 8, user_id=user.id)
        assert first.published_version == 1  # not 8: the saves are not publications
        assert (first.draft_revision, first.published_revision) == (8, 8)
        assert not first.has_unpublished_changes
        fund = repo.replace_draft(conn, org.id, fund.id, {"fund_size": 9}, 8)
        fund = repo.replace_draft(conn, org.id, fund.id, {"fund_size": 10}, 9)
        assert (fund.draft_revision, fund.published_version, fund.published_revision) == (10, 1, 8)
        assert fund.has_unpublished_changes
        second = repo.publish(conn, org.id, fund.id, 10)
        assert (second.published_version, second.published_revision) == (2, 10)
        assert repo.publish(conn, org.id, fund.id, 10).published_version == 2  # same revision
        listed = repo.list_funds(conn, org.id).items[0]
        assert (listed.draft_revision, listed.published_version) == (10, 2)
        old = conn.execute(
            "SELECT version, publication_number FROM fund_versions "
            "WHERE fund_id = %s AND kind = 'published' ORDER BY version",
            (fund.id,),
        ).fetchall()
        assert [(r["version"], r["publication_number"]) for r in old] == [(8, 1), (10, 2)]


def test_pending_edits_are_one_users_per_step(
    db: Any, org_user: tuple[Any, Any], other_org: Any
) -> None:
    """Issue 11, item 12: entries a step could not save are kept per user and step, replaced
    by the next save of the step, forgotten when none are left, scoped to the organisation,
    and gone with the fund."""
    org, user = org_user
    with db.connection() as conn:
        fund = repo.create_fund(conn, org.id, user.id, "Pending", {})
        colleague = repo.create_user(
            conn, org.id, f"{uuid.uuid4().hex[:8]}@x.io", "pass-word", "analyst"
        )
        repo.set_pending_edits(
            conn, org.id, fund.id, user.id, "basics", ["fund_size"], {"fund_size": "-5"}
        )
        repo.set_pending_edits(
            conn, org.id, fund.id, user.id, "fees", ["fees.tiers"], {"fees.tiers.__count": "2"}
        )
        repo.set_pending_edits(
            conn, org.id, fund.id, user.id, "basics", ["vintage_year"], {"vintage_year": "soon"}
        )
        pending = repo.list_pending_edits(conn, org.id, fund.id, user.id)
        assert set(pending) == {"basics", "fees"}
        assert (pending["basics"].held, pending["basics"].texts) == (
            ["vintage_year"],
            {"vintage_year": "soon"},
        )
        assert repo.list_pending_edits(conn, org.id, fund.id, colleague.id) == {}
        assert repo.list_pending_edits(conn, other_org.id, fund.id, user.id) == {}
        with pytest.raises(repo.NotFound):
            repo.set_pending_edits(conn, other_org.id, fund.id, user.id, "basics", ["x"], {})
        repo.set_pending_edits(conn, other_org.id, fund.id, user.id, "fees", [], {})  # no effect
        assert set(repo.list_pending_edits(conn, org.id, fund.id, user.id)) == {"basics", "fees"}
        repo.set_pending_edits(conn, org.id, fund.id, user.id, "basics", [], {})
        assert set(repo.list_pending_edits(conn, org.id, fund.id, user.id)) == {"fees"}
        conn.execute("DELETE FROM funds WHERE id = %s", (fund.id,))
        left = conn.execute("SELECT count(*) AS n FROM wizard_pending_edits").fetchone()
        assert left["n"] == 0


def test_non_finite_spec_is_rejected(db: Any, org_user: tuple[Any, Any]) -> None:
    org, user = org_user
    with db.connection() as conn, pytest.raises(ValueError):
        repo.create_fund(conn, org.id, user.id, "Bad", {"fund_size": float("nan")})


# --------------------------------------------------------------------------- results


def _published(conn: Any, org: Any, user: Any) -> Any:
    fund = repo.create_fund(conn, org.id, user.id, "Results", {"name": "Results"})
    repo.publish(conn, org.id, fund.id, 1)
    version = repo.get_spec(conn, org.id, fund.id)
    assert version is not None
    return version


def test_forecasts_are_stored_once_and_immutable(
    db: Any, org_user: tuple[Any, Any], other_org: Any
) -> None:
    org, user = org_user
    with db.connection() as conn:
        version = _published(conn, org, user)
        saved = repo.save_forecast(conn, version.id, "1.0", version.spec_hash, {"tvpi": 2.5})
        again = repo.save_forecast(conn, version.id, "1.0", version.spec_hash, {"tvpi": 9.9})
        assert again == saved and again.result == {"tvpi": 2.5}
        assert repo.get_forecast(conn, org.id, version.id, "1.0") == saved
        assert repo.get_forecast(conn, org.id, version.id, "2.0") is None
        assert repo.get_forecast(conn, other_org.id, version.id, "1.0") is None
    with db.connection() as conn, pytest.raises(psycopg.errors.RestrictViolation):
        conn.execute("UPDATE forecasts SET result = '{}' WHERE id = %s", (saved.id,))


def test_simulation_lifecycle_and_scoping(
    db: Any, org_user: tuple[Any, Any], other_org: Any
) -> None:
    org, user = org_user
    big_seed = 2**127 + 12345
    with db.connection() as conn:
        version = _published(conn, org, user)
        sim = repo.create_simulation(
            conn,
            org.id,
            version,
            runs=1000,
            seed=big_seed,
            engine_version="1.0",
            user_id=user.id,
            params={"chunk": 4096},
        )
        assert (sim.status, sim.progress, sim.seed, sim.runs) == ("queued", 0.0, big_seed, 1000)
        assert sim.spec_hash == version.spec_hash and sim.fund_id == version.fund_id
        assert repo.get_simulation(conn, other_org.id, sim.id) is None
        with pytest.raises(repo.NotFound):
            repo.create_simulation(conn, other_org.id, version, runs=1, seed=1, engine_version="1")
        assert repo.start_simulation(conn, org.id, sim.id).status == "running"
        assert repo.set_simulation_progress(conn, org.id, sim.id, 0.5).progress == 0.5
        done = repo.complete_simulation(conn, org.id, sim.id, {"tvpi": {"mean": 2.0}})
        assert (done.status, done.progress, done.result) == (
            "succeeded",
            1.0,
            {"tvpi": {"mean": 2.0}},
        )
        assert done.finished_at is not None
        with pytest.raises(repo.NotFound):
            repo.complete_simulation(conn, org.id, sim.id, {})  # results are never overwritten
        assert repo.get_simulation(conn, org.id, sim.id) == done

        failed = repo.create_simulation(
            conn, org.id, version, runs=10, seed=1, engine_version="1.0", status="running"
        )
        assert failed.started_at is not None
        failed = repo.fail_simulation(conn, org.id, failed.id, {"code": "ENGINE_GUARD"})
        assert (failed.status, failed.error) == ("failed", {"code": "ENGINE_GUARD"})


def test_list_simulations_newest_first_and_scoped(
    db: Any, org_user: tuple[Any, Any], other_org: Any
) -> None:
    org, user = org_user
    with db.connection() as conn:
        version = _published(conn, org, user)
    made = []
    for i in range(3):  # one transaction each: now() differs
        with db.connection() as conn:
            made.append(
                repo.create_simulation(
                    conn, org.id, version, runs=100 + i, seed=i, engine_version="1", user_id=user.id
                )
            )
    with db.connection() as conn:
        listed = repo.list_simulations(conn, org.id, version.fund_id, limit=2)
        assert [s.runs for s in listed] == [102, 101]
        assert {s.id for s in repo.list_simulations(conn, org.id, version.fund_id)} == {
            s.id for s in made
        }
        assert repo.list_simulations(conn, other_org.id, version.fund_id) == []
        with pytest.raises(ValueError):
            repo.list_simulations(conn, org.id, version.fund_id, limit=0)
