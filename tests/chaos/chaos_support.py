"""Chaos scenarios for PostgreSQL (SPEC §6 practice 11), shared by the tests and the report
(``chaos/report.py``).

A :class:`ChaosStack` is the real app served by uvicorn on a loopback port, whose database
pool reaches PostgreSQL only through a :class:`~updog.resilience.chaos_proxy.ChaosProxy`
(TCP, or a unix socket for the embedded server). Accounts are created and writes verified
over a direct connection that bypasses the proxy. Each scenario sends a bounded load over
real HTTP and returns a :class:`Result` (statuses, latencies, acknowledged vs found writes);
the tests assert behaviour, the report prints the figures.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import conninfo

from services_support import upstream_of, via_proxy
from updog.resilience.chaos_proxy import ChaosProxy
from updog.settings import Settings

#: Settings of the stack under chaos: small pool and short timeouts, so faults show quickly.
CHAOS_SETTINGS: dict[str, Any] = {
    "db_pool_min_size": 1,
    "db_pool_max_size": 4,
    "db_pool_timeout": 2.0,
    "db_pool_max_waiting": 8,
    "db_connect_timeout": 2.0,
    "db_statement_timeout_ms": 5_000,
    "db_lock_timeout_ms": 500,
    "db_operation_timeout": 6.0,
    "pg_breaker_window": 10,
    "pg_breaker_minimum_calls": 3,
    "pg_breaker_wait_seconds": 2.0,
    "pg_breaker_half_open_calls": 2,
    "readyz_cache_seconds": 0.0,
}

SPEC = {"fund_size": 50_000_000, "vintage_year": 2025, "model_inputs_as_of": "2025-01-01"}


@dataclass
class Result:
    """What one scenario saw."""

    name: str
    sent: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    acknowledged: int = 0
    found: int = 0
    partial: int = 0  # writes found incomplete (a fund without its version row): must be 0
    lost: int = 0  # acknowledged writes not found: must be 0
    recovery_s: float | None = None
    missing_retry_after: int = 0  # 503s without Retry-After: must be 0
    codes: Counter[str] = field(default_factory=Counter)  # problem codes of the errors
    notes: list[str] = field(default_factory=list)

    @property
    def p95(self) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    @property
    def error_rate(self) -> float:
        ok = sum(n for s, n in self.statuses.items() if s.startswith("2"))
        return 1 - ok / self.sent if self.sent else 0.0

    def record(self, status: str, seconds: float) -> None:
        self.sent += 1
        self.statuses[status] += 1
        self.latencies.append(seconds)


class ChaosStack:
    """The app over a proxied pool; ``direct`` is a proxy-free URL of the same database."""

    def __init__(self, direct_url: str, data_dir: Path, **overrides: Any) -> None:
        self.direct_url = direct_url
        self.data_dir = data_dir
        self.overrides = {**CHAOS_SETTINGS, **overrides}

    def __enter__(self) -> ChaosStack:
        from api.api_support import make_account, running
        from updog.api.app import create_app
        from updog.store import migrate
        from updog.store.db import Database

        migrate.upgrade(self.direct_url)
        self._exit = contextlib.ExitStack()
        self.proxy = self._exit.enter_context(ChaosProxy(**upstream_of(self.direct_url)))
        self.settings = Settings(data_dir=self.data_dir, **self.overrides)
        self.database = Database.from_settings(
            self.settings, via_proxy(self.direct_url, self.proxy)
        )
        self._exit.callback(self.database.close, 2)
        with Database(self.direct_url, min_size=0, max_size=1) as direct:
            self.account = make_account(direct, "Chaos Capital", "analyst")
        app = create_app(self.settings, self.database, configure_logs=False)
        self.url = self._exit.enter_context(running(app))
        return self

    def __exit__(self, *exc: object) -> None:
        self.proxy.clear()
        self._exit.close()

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.account.token}"},
            timeout=timeout,
        )

    # ------------------------------------------------------------------ load

    def load(
        self,
        result: Result,
        request: Callable[[httpx.Client, int], httpx.Response],
        count: int,
        concurrency: int = 4,
        on_response: Callable[[int, httpx.Response], None] | None = None,
    ) -> None:
        """Send ``count`` requests, ``concurrency`` at a time, recording each outcome."""
        lock = threading.Lock()

        def one(i: int) -> None:
            with self.client() as c:
                start = time.monotonic()
                try:
                    r = request(c, i)
                    status = str(r.status_code)
                except httpx.HTTPError as exc:
                    r, status = None, f"transport:{type(exc).__name__}"
                elapsed = time.monotonic() - start
            with lock:
                result.record(status, elapsed)
                if r is not None and r.status_code >= 400:
                    if r.status_code == 503 and not r.headers.get("retry-after"):
                        result.missing_retry_after += 1
                    with contextlib.suppress(ValueError):
                        result.codes[str(r.json().get("code"))] += 1
                if r is not None and on_response is not None:
                    on_response(i, r)

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(count)))

    def wait_until_ok(self, limit: float) -> float | None:
        """Seconds until ``GET /api/v1/funds`` answers 200 again (None: not within limit)."""
        start = time.monotonic()
        with self.client(timeout=10) as c:
            while time.monotonic() - start < limit:
                with contextlib.suppress(httpx.HTTPError):
                    if c.get("/api/v1/funds").status_code == 200:
                        return time.monotonic() - start
                time.sleep(0.25)
        return None

    # ------------------------------------------------------------------ writes

    def create_fund(self, c: httpx.Client, name: str) -> httpx.Response:
        return c.post("/api/v1/funds", json={**SPEC, "name": name})

    def verify_writes(self, result: Result, acked: set[str], attempted: set[str]) -> None:
        """Count acknowledged writes found, lost ones, and partial ones (fund w/o version)."""
        with psycopg.connect(self.direct_url) as conn:
            rows = conn.execute(
                "SELECT f.name, count(v.id) AS versions FROM funds f "
                "LEFT JOIN fund_versions v ON v.fund_id = f.id "
                "WHERE f.name = ANY(%s) GROUP BY f.id, f.name",
                (list(attempted),),
            ).fetchall()
        present = Counter(name for name, _ in rows)
        result.acknowledged = len(acked)
        result.found = sum(1 for name in acked if present[name] >= 1)
        result.lost = result.acknowledged - result.found
        result.partial = sum(1 for _, versions in rows if versions == 0)
        duplicates = sum(n - 1 for n in present.values() if n > 1)
        if duplicates:
            result.notes.append(f"{duplicates} duplicate writes")
        unacked_present = sum(1 for name in attempted - acked if present[name])
        result.notes.append(f"unacknowledged but committed: {unacked_present}")


# --------------------------------------------------------------------------- scenarios


def _names(prefix: str, n: int) -> list[str]:
    tag = uuid.uuid4().hex[:6]
    return [f"{prefix}-{tag}-{i}" for i in range(n)]


def latency(stack: ChaosStack, requests: int = 16) -> Result:
    """500 ms added to every server→client chunk; a mix of reads and writes."""
    result = Result("latency 500 ms")
    names = _names("lat", requests)
    acked: set[str] = set()
    stack.proxy.add_toxic("latency", latency=500, jitter=50)
    try:

        def request(c: httpx.Client, i: int) -> httpx.Response:
            if i % 2:
                return c.get("/api/v1/funds", params={"limit": 5})
            return stack.create_fund(c, names[i])

        def seen(i: int, r: httpx.Response) -> None:
            if r.status_code == 201:
                acked.add(names[i])

        stack.load(result, request, requests, concurrency=4, on_response=seen)
    finally:
        stack.proxy.remove_toxic("latency")
    stack.verify_writes(result, acked, {names[i] for i in range(0, requests, 2)})
    return result


def database_down(stack: ChaosStack, requests: int = 16, recovery_limit: float = 30) -> Result:
    """The database goes away (connections dropped, new ones refused), then comes back."""
    result = Result("database down")
    stack.proxy.down()
    try:
        stack.load(result, lambda c, i: c.get("/api/v1/funds"), requests, concurrency=4)
        with stack.client() as c:
            ready = c.get("/readyz")
            result.notes.append(f"readyz {ready.status_code}")
            breaker = ready.json().get("checks", {}).get("breakers", {}).get("detail", {})
            result.notes.append(f"pg breaker {breaker.get('pg')}")
            r = c.get("/api/v1/funds")
            result.notes.append(f"retry-after {r.headers.get('retry-after')}")
    finally:
        stack.proxy.up()
    result.recovery_s = stack.wait_until_ok(recovery_limit)
    return result


def connection_resets(stack: ChaosStack, requests: int = 40) -> Result:
    """Connections reset (RST) at random moments while writes run."""
    result = Result("connection resets")
    names = _names("rst", requests)
    acked: set[str] = set()
    stop = threading.Event()
    resets = [0]

    def monkey() -> None:
        while not stop.wait(0.3):
            resets[0] += stack.proxy.reset_connections(0.5)

    thread = threading.Thread(target=monkey, daemon=True)
    thread.start()
    try:

        def seen(i: int, r: httpx.Response) -> None:
            if r.status_code == 201:
                acked.add(names[i])

        stack.load(
            result, lambda c, i: stack.create_fund(c, names[i]), requests, 4, on_response=seen
        )
    finally:
        stop.set()
        thread.join()
    result.notes.append(f"{resets[0]} connections reset")
    result.recovery_s = stack.wait_until_ok(30)
    stack.verify_writes(result, acked, set(names))
    return result


def pool_exhaustion(stack: ChaosStack, requests: int = 32) -> Result:
    """Slow queries (0.5 s per server answer) hold every connection; more callers than the
    pool and its waiting queue can hold arrive at once (distinct URLs, so single-flight does
    not merge them)."""
    result = Result("pool exhaustion")
    stack.proxy.add_toxic("latency", latency=500)
    try:
        stack.load(
            result,
            lambda c, i: c.get("/api/v1/funds", params={"limit": i + 1}),
            requests,
            concurrency=16,
        )
    finally:
        stack.proxy.remove_toxic("latency")
    text = httpx.get(stack.url + "/metrics").text
    failures = [
        line
        for line in text.splitlines()
        if line.startswith("updog_db_pool_acquire_failures_total{")
    ]
    result.notes.extend(failures)
    result.recovery_s = stack.wait_until_ok(30)
    return result


def _draft(c: httpx.Client, fid: str) -> tuple[str, dict[str, Any]]:
    r = c.get(f"/api/v1/funds/{fid}")
    r.raise_for_status()
    return r.headers["etag"], r.json()


def lock_contention(stack: ChaosStack, requests: int = 6) -> Result:
    """A transaction outside the service holds the fund's row lock; edits of that fund time
    out on ``lock_timeout`` (a clean 503) and succeed once the lock is gone."""
    result = Result("lock contention")
    with stack.client() as c:
        fid = stack.create_fund(c, _names("lock", 1)[0]).json()["id"]
        etag, _ = _draft(c, fid)
    with psycopg.connect(stack.direct_url) as holder:
        holder.execute("SELECT 1 FROM funds WHERE id = %s FOR UPDATE", (fid,))
        stack.load(
            result,
            lambda c, i: c.put(
                f"/api/v1/funds/{fid}/draft",
                json={**SPEC, "name": f"locked {i}"},
                headers={"If-Match": etag},
            ),
            requests,
            concurrency=3,
        )
        holder.rollback()
    with stack.client() as c:
        after = c.put(
            f"/api/v1/funds/{fid}/draft",
            json={**SPEC, "name": "unlocked"},
            headers={"If-Match": etag},
        )
    result.record(str(after.status_code), 0.0)
    result.notes.append(f"after release: {after.status_code}")
    return result


def deadlock(stack: ChaosStack) -> Result:
    """A forced deadlock between an API edit and an outside transaction: PostgreSQL aborts one
    side; the API answers a clean 503 (or wins, when the other side is the victim)."""
    result = Result("deadlock")
    with stack.client() as c:
        fid = stack.create_fund(c, _names("dl", 1)[0]).json()["id"]
        etag, fund = _draft(c, fid)
    next_version = int(fund["draft_revision"]) + 1
    outside_error: list[str] = []
    with psycopg.connect(stack.direct_url) as other:
        # make the API's backend the one that detects the deadlock (it waits 1 s, we 10 s)
        other.execute("SET deadlock_timeout = '10s'")
        other.execute(
            "INSERT INTO fund_versions (fund_id, version, kind, spec, spec_hash) "
            "VALUES (%s, %s, 'draft', '{}'::jsonb, repeat('0', 64))",
            (fid, next_version),
        )
        answers: list[httpx.Response] = []

        def edit() -> None:
            with stack.client() as c:
                start = time.monotonic()
                r = c.put(
                    f"/api/v1/funds/{fid}/draft",
                    json={**SPEC, "name": "deadlocked"},
                    headers={"If-Match": etag},
                )
                result.record(str(r.status_code), time.monotonic() - start)
                answers.append(r)

        thread = threading.Thread(target=edit)
        thread.start()
        time.sleep(0.5)  # the API holds the fund row and waits for our version row
        try:
            other.execute("SELECT 1 FROM funds WHERE id = %s FOR UPDATE", (fid,))
        except psycopg.errors.DeadlockDetected:
            outside_error.append("DeadlockDetected")
        thread.join(30)
        other.rollback()
    result.notes.append(f"outside transaction: {outside_error or 'ok'}")
    if answers:
        result.notes.append(f"api code: {answers[0].json().get('code', '-')}")
    with stack.client() as c:
        etag, _ = _draft(c, fid)
        retry = c.put(
            f"/api/v1/funds/{fid}/draft",
            json={**SPEC, "name": "retried"},
            headers={"If-Match": etag},
        )
    result.record(str(retry.status_code), 0.0)
    result.notes.append(f"retry: {retry.status_code}")
    return result


SCENARIOS: list[Callable[[ChaosStack], Result]] = [
    latency,
    database_down,
    connection_resets,
    pool_exhaustion,
    lock_contention,
    deadlock,
]


@contextlib.contextmanager
def stack_on(admin_url: str, data_dir: Path) -> Iterator[ChaosStack]:
    """A fresh database on the server of ``admin_url`` and a stack over it (dropped after)."""
    from psycopg import sql

    name = f"updog_chaos_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = conninfo.make_conninfo(admin_url, dbname=name)
    try:
        with ChaosStack(url, data_dir) as stack:
            yield stack
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
