"""Chaos report for PostgreSQL: run every scenario of ``tests/chaos/chaos_support.py`` against
a real server through the fault-injecting proxy and print, per scenario, the requests sent,
the status counts, p95 latency, error rate, writes acknowledged vs found, and recovery time.

    python chaos/report.py                 # DATABASE_URL's server, else an embedded one

Loopback only, bounded load (a minute or so). Targets (SPEC §6.11 / issue 7): latency 500 ms
→ p95 < 2 s and errors < 5 %; database down → recovery < 15 s; no acknowledged write lost,
no partial write, ever.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "chaos"), str(ROOT / "tests")]

import chaos_support as cs  # noqa: E402

from updog.observability.logging import configure_logging  # noqa: E402


def main() -> int:
    configure_logging("CRITICAL", stream=open(os.devnull, "w"))  # noqa: SIM115
    folder = Path(tempfile.mkdtemp(prefix="updog-chaos-"))
    handle = None
    admin = os.environ.get("DATABASE_URL")
    if admin:
        from updog.store.db import libpq_url

        admin, where = libpq_url(admin), "DATABASE_URL (TCP)"
    else:
        from updog.store import embedded

        handle = embedded.start(folder / "pg", database="postgres")
        admin, where = handle.admin_url, "embedded PostgreSQL (unix socket)"
    print(f"Chaos report — PostgreSQL via {where}, proxy on 127.0.0.1")
    tuned = [f"{k}={v}" for k, v in cs.CHAOS_SETTINGS.items() if k.startswith(("db_", "pg_"))]
    print("settings: " + ", ".join(tuned))
    header = (
        f"{'scenario':<20} {'sent':>4}  {'statuses':<26} {'p95 s':>6} {'err %':>6} "
        f"{'acked':>5} {'found':>5} {'lost':>4} {'part':>4} {'recov s':>7}"
    )
    print(header)
    print("-" * len(header))
    failures = 0
    try:
        with cs.stack_on(admin, folder / "data") as stack:
            for scenario in cs.SCENARIOS:
                stack.proxy.clear()
                stack.wait_until_ok(30)
                stack.database.breaker.reset()
                started = time.monotonic()
                r = scenario(stack)
                statuses = " ".join(f"{k}:{v}" for k, v in sorted(r.statuses.items()))
                recovery = f"{r.recovery_s:.1f}" if r.recovery_s is not None else "-"
                print(
                    f"{r.name:<20} {r.sent:>4}  {statuses:<26} {r.p95:>6.2f} "
                    f"{100 * r.error_rate:>6.1f} {r.acknowledged:>5} {r.found:>5} {r.lost:>4} "
                    f"{r.partial:>4} {recovery:>7}"
                )
                codes = ", ".join(f"{k}×{v}" for k, v in sorted(r.codes.items()))
                extra = "; ".join([*r.notes, f"codes: {codes or '-'}"])
                print(f"{'':<20} {extra}  ({time.monotonic() - started:.0f} s)")
                bad = r.lost or r.partial or r.missing_retry_after
                bad = bad or any(s.startswith(("500", "transport")) for s in r.statuses)
                failures += bool(bad)
    finally:
        if handle is not None:
            handle.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print("result:", "OK" if not failures else f"{failures} scenario(s) misbehaved")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
