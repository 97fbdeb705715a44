"""Cost of the protection middleware: a cheap GET with and without the full stack.

Usage: ``python benchmarks/middleware.py [--seconds 5] [--rounds 3] [--concurrency 16]
[--identical] [--path ...]``

Each configuration is served by its own uvicorn process (loopback, free port) over the same
PostgreSQL (``DATABASE_URL``'s server — a fresh database is created and dropped — or, without
it, an embedded server in a temporary folder) and driven by one asyncio httpx client with
``--concurrency`` connections for ``--seconds`` after a warm-up. The GET is
``/api/v1/auth/me`` with a bearer token (authentication is one indexed query), so the
middleware is a visible share of the work. Configurations:

* ``bare`` — the same app with every protection layer removed (no security headers, rate
  limits, shedding, idempotency, single-flight);
* ``stack`` — everything on (``throttle_profile=standard``) with limits far above the load,
  rate-limit windows in process memory;
* ``stack+redis`` — the same with ``REDIS_URL`` (rate-limit windows and cross-process
  single-flight in Redis), when ``REDIS_URL`` is set.

Configurations are measured in ``--rounds`` interleaved rounds (machine load drifts);
prints the median requests per second, p50/p95 latency and the ratio to ``bare``. Loopback only;
bounded in time; no assertions (figures vary with the machine).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PROTECTION = (
    "SecurityHeadersMiddleware",
    "LoadSheddingMiddleware",
    "RateLimitMiddleware",
    "IdempotencyMiddleware",
    "SingleFlightMiddleware",
)


def serve(mode: str, port: int, database_url: str, redis_url: str) -> None:
    """Child process: serve the app in ``mode`` on 127.0.0.1:``port``."""
    import uvicorn
    from fastapi import FastAPI

    from updog.api.app import create_app
    from updog.observability.logging import configure_logging
    from updog.settings import Settings
    from updog.store.db import Database

    settings = Settings(
        data_dir=Path(tempfile.mkdtemp(prefix="updog-bench-")),
        throttle_profile="off" if mode == "bare" else "standard",
        rate_limit_api="100000000/60",
        redis_url=redis_url if mode == "stack+redis" else None,
        redis_key_prefix=f"updog-bench-{uuid.uuid4().hex[:8]}",
        shed_loop_lag_ms=0,  # a benchmark saturates the loop by design
    )
    database = Database(database_url, min_size=4, max_size=8)
    # Access logs to nowhere: both configurations log the same, and a console renderer
    # would dominate what is measured.
    configure_logging("WARNING", stream=open(os.devnull, "w"))  # noqa: SIM115
    app = create_app(settings, database, configure_logs=False)
    if mode == "bare":
        app.user_middleware = [
            m for m in app.user_middleware if getattr(m.cls, "__name__", "") not in PROTECTION
        ]
        del app.build_middleware_stack  # back to FastAPI's own (no security-header wrapper)
        assert isinstance(app, FastAPI)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _drive(
    url: str, token: str, path: str, seconds: float, concurrency: int, identical: bool
) -> Any:
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as c:
        sequence = 0

        async def worker(until: float, record: bool) -> None:
            nonlocal errors, sequence
            while time.perf_counter() < until:
                sequence += 1
                start = time.perf_counter()
                # distinct query strings keep single-flight from merging the requests, so
                # the figure is the stack's pure cost; --identical measures what it saves
                r = await c.get(path, params=None if identical else {"i": sequence})
                if record:
                    latencies.append(time.perf_counter() - start)
                    errors += r.status_code != 200

        warm = time.perf_counter() + 1.5
        await asyncio.gather(*(worker(warm, False) for _ in range(concurrency)))
        start = time.perf_counter()
        until = start + seconds
        await asyncio.gather(*(worker(until, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": statistics.median(latencies) * 1000,
        "p95": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
        "errors": errors,
        "requests": len(latencies),
    }


def _measure(mode: str, db_url: str, redis_url: str, token: str, args: Any) -> dict[str, Any]:
    import httpx

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", mode, str(port), db_url, redis_url or ""],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{mode} server did not start")
            try:
                if httpx.get(url + "/livez", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        return dict(
            asyncio.run(
                _drive(url, token, args.path, args.seconds, args.concurrency, args.identical)
            )
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--path", default="/api/v1/auth/me")
    parser.add_argument(
        "--identical",
        action="store_true",
        help="send identical requests (single-flight may merge concurrent ones)",
    )
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        mode, port, db_url, redis_url = args.serve
        serve(mode, int(port), db_url, redis_url)
        return

    import psycopg
    from psycopg import sql

    from updog.store import migrate
    from updog.store import repositories as repo
    from updog.store.db import Database, libpq_url

    handle = None
    admin = os.environ.get("DATABASE_URL")
    folder = None
    if admin:
        admin = libpq_url(admin)
    else:
        from updog.store import embedded

        folder = tempfile.mkdtemp(prefix="updog-bench-pg-")
        handle = embedded.start(Path(folder), database="postgres")
        admin = handle.admin_url
    name = f"updog_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db_url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    try:
        migrate.upgrade(db_url)
        with Database(db_url, min_size=1, max_size=2) as database, database.connection() as c:
            org = repo.get_or_create_organisation(c, "Bench Capital")
            user = repo.create_user(c, org.id, "bench@bench.example", "x" * 16, "analyst")
            token, _ = repo.create_token(c, user.id, "bench")
        redis_url = os.environ.get("REDIS_URL", "")
        modes = ["bare", "stack"] + (["stack+redis"] if redis_url else [])
        print(
            f"GET {args.path}  concurrency {args.concurrency}  {args.seconds:g} s per run  "
            f"(one uvicorn worker per configuration, loopback; "
            f"{'identical' if args.identical else 'distinct'} requests)"
        )
        print(
            f"{'configuration':<14}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}{'ratio':>8}"
        )
        runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
        for _ in range(args.rounds):  # interleaved, so drifting machine load hits all alike
            for mode in modes:
                runs[mode].append(_measure(mode, db_url, redis_url, token, args))
        results = {
            mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            for mode, rs in runs.items()
        }
        for mode, r in results.items():
            ratio = r["rps"] / results["bare"]["rps"]
            print(
                f"{mode:<14}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p95']:>9.2f}"
                f"{r['errors']:>8.0f}{ratio:>8.2f}"
            )
        print(
            f"(medians of {args.rounds} interleaved rounds; req/s of each round: "
            + "; ".join(f"{m} " + "/".join(f"{r['rps']:.0f}" for r in rs) for m, rs in runs.items())
            + ")"
        )
        cost = 1 - results["stack"]["rps"] / results["bare"]["rps"]
        print(f"stack costs {cost:.1%} of bare throughput (in-memory windows)")
        if "stack+redis" in results:
            cost = 1 - results["stack+redis"]["rps"] / results["bare"]["rps"]
            print(f"stack+redis costs {cost:.1%} of bare throughput")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if handle is not None:
            handle.stop()


if __name__ == "__main__":
    main()
