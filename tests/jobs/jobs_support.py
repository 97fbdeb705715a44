"""Helpers of the job tests (imported as ``jobs_support``; fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SEED_FUND = ROOT / "examples" / "seed-fund.yaml"
#: Runs above this are jobs in these tests (the service default is 20,000).
SYNC_LIMIT = 500
#: Lease of the test workers, seconds: a killed worker's job is retried this soon.
LEASE = 2.0


def seed_fund_spec() -> dict[str, Any]:
    """The example seed fund as a JSON-ready dict."""
    data = yaml.safe_load(SEED_FUND.read_text())
    return json.loads(json.dumps(data, default=str))  # type: ignore[no-any-return]


def wait_for(
    fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float, what: str
) -> Any:
    """Poll ``fetch()`` every 0.1 s until ``done(value)``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}; last: {value!r}")
        time.sleep(0.1)


@dataclass
class WorkerProcess:
    """An ``updog worker`` subprocess (leader of its own process group)."""

    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill_group(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


def job_row(database: Any, simulation_id: str) -> dict[str, Any]:
    with database.connection() as conn:
        row = conn.execute(
            "SELECT * FROM jobs WHERE simulation_id = %s", (simulation_id,)
        ).fetchone()
    assert row is not None
    return dict(row)
