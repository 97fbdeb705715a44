"""The simulation event stream (``updog.jobs.events``) on its own, without a server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime

from updog.jobs.events import SHUTDOWN_RETRY_MS, simulation_events
from updog.store.repositories import SimulationRecord


def _queued() -> SimulationRecord:
    return SimulationRecord(
        id=uuid.uuid4(),
        org_id=uuid.uuid4(),
        fund_id=uuid.uuid4(),
        fund_version_id=uuid.uuid4(),
        created_by=None,
        runs=1000,
        seed=1,
        params={},
        status="queued",
        progress=0.0,
        engine_version="test",
        spec_hash="h",
        result=None,
        error=None,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        started_at=None,
        finished_at=None,
    )


def test_a_stream_open_at_shutdown_ends_with_a_shutdown_event_and_a_retry() -> None:
    """SIGTERM sets the shutdown flag: the open stream's last message is ``event: shutdown``
    with the state and a ``retry:`` (the EventSource reconnects elsewhere), then it ends."""
    sim = _queued()
    flag = threading.Event()

    async def fetch() -> SimulationRecord:
        flag.set()  # the server starts shutting down while the client waits
        return sim

    async def collect() -> list[bytes]:
        stream = simulation_events(
            fetch, first=sim, href="/x", shutting_down=flag, poll_interval=0.05
        )
        return [message async for message in stream]

    messages = asyncio.run(collect())
    last = messages[-1].decode()
    assert last.startswith(f"retry: {SHUTDOWN_RETRY_MS}\n")
    assert "\nevent: shutdown\n" in last and '"status":"queued"' in last
    assert last.endswith("\n\n")
    assert sum(m.startswith(b"event: progress") for m in messages) == 1
