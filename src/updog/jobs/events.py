"""Server-sent events of a simulation (``GET /api/v1/simulations/{id}/events``).

The stream (``text/event-stream``, WHATWG HTML §9.2) polls the simulation row and sends:

* ``event: progress`` — ``{"id", "status", "progress"}`` at the start and whenever the status
  or the progress changes;
* ``event: done`` — ``{"id", "status", "progress", "error", "href"}`` once the simulation has
  succeeded, failed or been cancelled (``href`` is where the result is read); the stream then
  ends;
* a ``: keep-alive`` comment every :data:`KEEPALIVE` seconds of silence, so proxies do not
  time the connection out.

It starts with ``retry: 2000`` so a browser ``EventSource`` reconnects after a dropped
connection. The stream also ends when the server begins shutting down (the :func:`shutdown_flag`
of the app is set, as ``updog serve`` does on SIGTERM/SIGINT) with a final ``event: shutdown``
and a short ``retry:``: an idle stream never holds up a graceful shutdown, and the client
reconnects to another instance.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from updog.store.repositories import SimulationRecord

__all__ = [
    "FINISHED",
    "KEEPALIVE",
    "POLL_INTERVAL",
    "SHUTDOWN_RETRY_MS",
    "shutdown_event",
    "shutdown_flag",
    "simulation_events",
]

#: Seconds between looks at the simulation row.
POLL_INTERVAL = 0.5
#: Seconds of silence after which a comment line is sent.
KEEPALIVE = 15.0
#: Statuses after which nothing changes any more.
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
#: Milliseconds an ``EventSource`` waits before reconnecting after a shutdown.
SHUTDOWN_RETRY_MS = 1000
#: Attribute of ``app.state`` holding the shutdown flag.
_STATE_ATTR = "updog_shutting_down"


def shutdown_flag(app: Any) -> threading.Event:
    """The app's "shutting down" flag (created on first use): set it to end every open
    event stream within :data:`POLL_INTERVAL` seconds."""
    state = app.state
    flag = getattr(state, _STATE_ATTR, None)
    if flag is None:
        flag = threading.Event()
        setattr(state, _STATE_ATTR, flag)
    return flag


def format_event(event: str | None, data: dict[str, Any] | None = None) -> bytes:
    """One SSE message (``event:`` and a single-line JSON ``data:``), or a comment when
    ``event`` is None."""
    if event is None:
        return b": keep-alive\n\n"
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return f"event: {event}\ndata: {text}\n\n".encode()


def shutdown_event(state: dict[str, Any]) -> bytes:
    """The last message of a stream whose server is shutting down: ``event: shutdown`` with
    the simulation's state, and a ``retry:`` of :data:`SHUTDOWN_RETRY_MS` so an
    ``EventSource`` reconnects (to another instance) soon (WHATWG HTML §9.2, server-sent
    events: ``retry`` sets the reconnection time in milliseconds)."""
    return f"retry: {SHUTDOWN_RETRY_MS}\n".encode() + format_event("shutdown", state)


def _state(sim: SimulationRecord) -> dict[str, Any]:
    return {"id": str(sim.id), "status": sim.status, "progress": round(sim.progress, 6)}


async def simulation_events(
    fetch: Callable[[], Awaitable[SimulationRecord | None]],
    *,
    first: SimulationRecord,
    href: str,
    shutting_down: threading.Event,
    poll_interval: float = POLL_INTERVAL,
    keepalive: float = KEEPALIVE,
) -> AsyncIterator[bytes]:
    """The event stream of a simulation; ``fetch()`` re-reads it (None when it is gone)."""
    yield b"retry: 2000\n\n"
    sim: SimulationRecord | None = first
    last: dict[str, Any] | None = None
    quiet_since = time.monotonic()
    while sim is not None:
        state = _state(sim)
        if state != last:
            yield format_event("progress", state)
            last, quiet_since = state, time.monotonic()
        if sim.status in FINISHED:
            yield format_event("done", {**state, "error": sim.error, "href": href})
            return
        if time.monotonic() - quiet_since >= keepalive:
            yield format_event(None)
            quiet_since = time.monotonic()
        waited = 0.0
        while waited < poll_interval and not shutting_down.is_set():
            step = min(0.1, poll_interval - waited)
            await asyncio.sleep(step)
            waited += step
        if shutting_down.is_set():
            yield shutdown_event(state)
            return
        sim = await fetch()
