"""Migrations: every revision upgrades, downgrades and re-upgrades on a populated database
without losing the data of the tables it keeps; concurrent upgrades serialise on the lock."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest

from updog.store import migrate
from updog.store import repositories as repo
from updog.store.db import Database

pytestmark = pytest.mark.db


def _tables(url: str) -> dict[str, int]:
    """Row count of every table in the public schema."""
    with psycopg.connect(url) as conn:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
        ]
        counts = {}
        for name in names:
            row = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()
            assert row is not None
            counts[name] = row[0]
        return counts


def _schema(url: str) -> list[tuple[Any, ...]]:
    """Columns, constraints, indexes, triggers and functions of the public schema."""
    with psycopg.connect(url) as conn:
        return [
            *conn.execute(
                "SELECT table_name, column_name, data_type, is_nullable, column_default "
                "FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2"
            ).fetchall(),
            *conn.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
                "FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2"
            ).fetchall(),
            *conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall(),
            *conn.execute(
                "SELECT tgname, tgrelid::regclass::text FROM pg_trigger "
                "WHERE NOT tgisinternal ORDER BY 1"
            ).fetchall(),
            *conn.execute(
                "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1"
            ).fetchall(),
        ]


def _populate(url: str) -> None:
    """Rows in every table the application writes today, plus a table of our own."""
    database = Database(url, min_size=0, max_size=2)
    try:
        with database.connection() as conn:
            org = repo.get_or_create_organisation(conn, "Populated")
            user = repo.create_user(conn, org.id, "pop@example.com", "s3cret-pass", "admin")
            repo.create_token(conn, user.id, "ci")
            repo.create_session(conn, user.id)
            fund = repo.create_fund(conn, org.id, user.id, "Fund I", {"name": "Fund I"})
            repo.set_pending_edits(
                conn, org.id, fund.id, user.id, "basics", ["fund_size"], {"fund_size": "-5"}
            )
            fund = repo.publish(conn, org.id, fund.id, fund.draft_revision)
            version = repo.get_spec(conn, org.id, fund.id)
            assert version is not None
            repo.save_forecast(conn, version.id, "0.1.0", version.spec_hash, {"tvpi": 2.0})
            repo.create_simulation(conn, org.id, version, runs=100, seed=42, engine_version="0.1.0")
            conn.execute("CREATE TABLE keep_me (id int PRIMARY KEY, note text)")
            conn.execute("INSERT INTO keep_me VALUES (1, 'outside the migrations')")
    finally:
        database.close()


def test_every_revision_downgrades_and_reupgrades_on_populated_data(
    fresh_database_url: str,
) -> None:
    url = fresh_database_url
    migrate.upgrade(url)
    schema_at_head = _schema(url)
    _populate(url)
    before = _tables(url)
    assert all(n > 0 for t, n in before.items() if t in {"users", "funds", "keep_me"})

    # Step down one revision at a time: tables that survive a step keep every row.
    for _ in migrate.revisions():
        migrate.downgrade(url, "-1")
        after = _tables(url)
        for table, count in after.items():
            if table in before and table != "alembic_version":
                assert count == before[table], f"{table} lost rows"
        before = after
    assert migrate.current(url) is None
    assert set(_tables(url)) == {"alembic_version", "keep_me"}

    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert [r for r in _schema(url) if "keep_me" not in str(r)] == schema_at_head
    assert _tables(url)["keep_me"] == 1


def test_each_revision_round_trips(fresh_database_url: str) -> None:
    url = fresh_database_url
    for revision in migrate.revisions():
        migrate.upgrade(url, revision)
        migrate.downgrade(url, "-1")
        migrate.upgrade(url, revision)
        assert migrate.current(url) == revision
    assert migrate.is_current(url)


def test_concurrent_upgrades_apply_once(fresh_database_url: str) -> None:
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        migrate.upgrade(fresh_database_url)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(run) for _ in range(4)]:
            future.result(timeout=60)
    assert migrate.is_current(fresh_database_url)
    with psycopg.connect(fresh_database_url) as conn:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert rows == [(migrate.head(),)]


def test_upgrade_waits_for_the_advisory_lock(fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (migrate.ADVISORY_LOCK_KEY,))
        worker = threading.Thread(target=migrate.upgrade, args=(fresh_database_url,))
        worker.start()
        time.sleep(0.5)
        assert worker.is_alive(), "upgrade did not wait for the lock"
        assert migrate.current(fresh_database_url) is None
        waiting = holder.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
        assert waiting is not None and waiting[0] == 1
        holder.execute("SELECT pg_advisory_unlock(%s)", (migrate.ADVISORY_LOCK_KEY,))
        worker.join(60)
    assert not worker.is_alive()
    assert migrate.is_current(fresh_database_url)


def test_schema_is_current_on_a_connection(fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url) as conn:
        assert not migrate.schema_is_current(conn)
    migrate.upgrade(fresh_database_url)
    with psycopg.connect(fresh_database_url) as conn:
        assert migrate.schema_is_current(conn)
    migrate.downgrade(fresh_database_url, "base")
    with psycopg.connect(fresh_database_url) as conn:
        assert not migrate.schema_is_current(conn)


def test_0002_numbers_existing_publications_per_fund(fresh_database_url: str) -> None:
    """Issue 11, item 13: a database whose funds were published at draft revisions 3 and 6
    (and another's at 2) gets published versions 1, 2 (and 1); a simulation of a published
    revision records its number; the downgrade restores 0001's data exactly."""
    url = fresh_database_url
    migrate.upgrade(url, "0001")
    with psycopg.connect(url) as conn:
        org = conn.execute("INSERT INTO organisations (name) VALUES ('Old') RETURNING id")
        org_id = org.fetchone()[0]  # type: ignore[index]
        funds = {}
        for name, revisions, published in (("A", 7, (3, 6)), ("B", 2, (2,))):
            row = conn.execute(
                "INSERT INTO funds (org_id, name, draft_version) VALUES (%s, %s, %s) RETURNING id",
                (org_id, name, revisions),
            ).fetchone()
            assert row is not None
            funds[name] = row[0]
            for revision in range(1, revisions + 1):
                kind = "published" if revision in published else "draft"
                conn.execute(
                    "INSERT INTO fund_versions (fund_id, version, kind, spec, spec_hash, "
                    "published_at) VALUES (%s, %s, %s, '{}', repeat('0', 64), "
                    "CASE WHEN %s = 'published' THEN now() END)",
                    (row[0], revision, kind, kind),
                )
            conn.execute(
                "UPDATE funds SET published_version = %s WHERE id = %s", (published[-1], row[0])
            )
        conn.execute(
            "INSERT INTO simulations (org_id, fund_id, fund_version_id, runs, seed, params, "
            "engine_version, spec_hash) SELECT %s, fund_id, id, 100, 1, "
            "jsonb_build_object('version', version, 'kind', kind), '0.1.0', spec_hash "
            "FROM fund_versions WHERE fund_id = %s AND version IN (5, 6)",
            (org_id, funds["A"]),
        )
        before = conn.execute("SELECT * FROM fund_versions ORDER BY fund_id, version").fetchall()

    migrate.upgrade(url, "0002")
    database = Database(url, min_size=0, max_size=1)
    try:
        with database.connection() as conn:
            a = repo.get_fund(conn, org_id, funds["A"])
            b = repo.get_fund(conn, org_id, funds["B"])
            assert a is not None and b is not None
            assert (a.draft_revision, a.published_version, a.published_revision) == (7, 2, 6)
            assert (b.draft_revision, b.published_version, b.published_revision) == (2, 1, 2)
            numbers = conn.execute(
                "SELECT version, publication_number FROM fund_versions "
                "WHERE fund_id = %s ORDER BY version",
                (funds["A"],),
            ).fetchall()
            published_numbers = {r["version"]: r["publication_number"] for r in numbers}
            assert published_numbers == {1: None, 2: None, 3: 1, 4: None, 5: None, 6: 2, 7: None}
            params = conn.execute(
                "SELECT params FROM simulations ORDER BY params ->> 'version'"
            ).fetchall()
            assert [p["params"] for p in params] == [
                {"version": 5, "kind": "draft"},
                {"version": 6, "kind": "published", "published_version": 2},
            ]
            # The next publication of A is its version 3, whatever its revision.
            published = repo.publish(conn, org_id, funds["A"], 7)
            assert (published.published_version, published.published_revision) == (3, 7)
    finally:
        database.close()

    migrate.downgrade(url, "0001")
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE fund_versions SET kind = 'draft', published_at = NULL WHERE version = 7"
        )
        conn.execute("UPDATE funds SET published_version = 6 WHERE id = %s", (funds["A"],))
        after = conn.execute("SELECT * FROM fund_versions ORDER BY fund_id, version").fetchall()
        assert after == before
        params = conn.execute("SELECT params FROM simulations").fetchall()
        assert all("published_version" not in p[0] for p in params)
