"""A fault-injecting TCP proxy for chaos tests (asyncio; toxiproxy's fault names).

Put it between the service and PostgreSQL (or anything TCP) and switch faults on and off
from a test, from any thread::

    with ChaosProxy("127.0.0.1", 5432) as proxy:          # listens on 127.0.0.1:<proxy.port>
        proxy.add_toxic("latency", latency=500, jitter=50)  # ms, server → client by default
        proxy.remove_toxic("latency")
        proxy.down()                                        # refuse and drop every connection
        proxy.up()

Toxics (attributes as in toxiproxy; times in milliseconds, ``stream`` is ``"downstream"``
(server → client, the default) or ``"upstream"``; ``toxicity`` is the share of connections
affected, drawn once per connection):

=============  ==========================================================================
latency        ``latency``, ``jitter``: every chunk is delivered ``latency ± jitter`` ms
               after it arrived (pipelined, order kept)
jitter         ``jitter``: a random delay of 0..``jitter`` ms per chunk
bandwidth      ``rate``: at most ``rate`` KB/s
slow_close     ``delay``: the other side is closed ``delay`` ms after one side closed
reset_peer     ``timeout``: connections are reset (TCP RST) ``timeout`` ms after they start
               or the toxic is added, whichever is later (0: at once)
timeout        ``timeout``: data stops flowing (a black hole); the connection is closed after
               ``timeout`` ms, or never when 0
=============  ==========================================================================

``down()``/``up()`` (toxiproxy's ``enabled=false``) close the listener and every connection,
then listen again on the same port. ``reset_connections(share)`` resets a share of the open
connections right now (a fault in the middle of whatever they are doing).

Loopback only by default; the proxy runs its own event loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

__all__ = ["TOXICS", "ChaosProxy", "Toxic"]

#: Known toxic kinds.
TOXICS = frozenset({"latency", "jitter", "bandwidth", "slow_close", "reset_peer", "timeout"})
_STREAMS = ("downstream", "upstream")
_CHUNK = 65536


@dataclass
class Toxic:
    name: str
    kind: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, float] = field(default_factory=dict)
    added: float = field(default_factory=time.monotonic)

    def attr(self, key: str, default: float = 0.0) -> float:
        return float(self.attributes.get(key, default))


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, proxy: ChaosProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.started = time.monotonic()
        self.dice: dict[str, float] = {}
        self.tasks: list[asyncio.Task[Any]] = []
        self.closed = False

    def affected(self, toxic: Toxic) -> bool:
        roll = self.dice.setdefault(toxic.name, random.random())
        return roll < toxic.toxicity

    def reset(self) -> None:
        """Close both sides with a TCP RST."""
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            sock = writer.get_extra_info("socket")
            with contextlib.suppress(OSError):
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._finish()

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                with contextlib.suppress(Exception):
                    writer.close()
        self._finish()

    def _finish(self) -> None:
        self.closed = True
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        self.proxy._links.discard(self)


class ChaosProxy:
    """A TCP proxy from ``listen_host:listen_port`` (0: a free port) to ``upstream``
    (``upstream_host:upstream_port``, or the unix socket ``upstream_unix`` when given — e.g.
    an embedded PostgreSQL's ``/path/.s.PGSQL.5432``)."""

    def __init__(
        self,
        upstream_host: str = "127.0.0.1",
        upstream_port: int = 5432,
        *,
        upstream_unix: str | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.upstream_unix = upstream_unix
        self.listen_host = listen_host
        self.port = listen_port
        self.toxics: dict[str, Toxic] = {}
        self.enabled = True
        self.connections_accepted = 0
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None

    # ----------------------------------------------------------------- life cycle

    def start(self) -> ChaosProxy:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._listen())
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="chaos-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("chaos proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        self._loop = None

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.listen_host, self.port

    def _call(self, coro: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        assert self._loop is not None, "proxy not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self._links):
            link.reset()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ----------------------------------------------------------------- control

    def add_toxic(
        self,
        kind: str,
        *,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        **attributes: float,
    ) -> str:
        """Switch a fault on (see the module doc); returns its name (default: ``kind``)."""
        if kind not in TOXICS:
            raise ValueError(f"unknown toxic {kind!r}; known: {sorted(TOXICS)}")
        if stream not in _STREAMS:
            raise ValueError(f"stream must be one of {_STREAMS}")
        if not 0 <= toxicity <= 1:
            raise ValueError("toxicity must be in 0..1")
        toxic = Toxic(name or kind, kind, stream, toxicity, dict(attributes))
        self.toxics[toxic.name] = toxic
        if kind == "reset_peer" and self._loop is not None:
            self._loop.call_soon_threadsafe(self._arm_resets, toxic)
        return toxic.name

    def remove_toxic(self, name: str) -> None:
        self.toxics.pop(name, None)

    def clear(self) -> None:
        """Remove every toxic and bring the proxy up."""
        self.toxics.clear()
        self.up()

    def down(self) -> None:
        """Refuse new connections and drop the open ones (toxiproxy: ``enabled=false``)."""
        self.enabled = False
        self._call(self._shutdown())

    def up(self) -> None:
        if self.enabled and self._server is not None:
            return
        self.enabled = True
        self._call(self._listen())

    def reset_connections(self, share: float = 1.0) -> int:
        """Reset (RST) ``share`` of the open connections now; returns how many."""

        async def reset() -> int:
            links = [link for link in list(self._links) if random.random() < share]
            for link in links:
                link.reset()
            return len(links)

        return int(self._call(reset()))

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # ----------------------------------------------------------------- plumbing

    def _active(self, link: _Link, kind: str, stream: str) -> list[Toxic]:
        return [
            t
            for t in list(self.toxics.values())
            if t.kind == kind and t.stream == stream and link.affected(t)
        ]

    def _arm_resets(self, toxic: Toxic) -> None:
        for link in list(self._links):
            self._arm_reset(link, toxic)

    def _arm_reset(self, link: _Link, toxic: Toxic) -> None:
        if not link.affected(toxic):
            return
        start = max(link.started, toxic.added)
        delay = max(0.0, start + toxic.attr("timeout") / 1000 - time.monotonic())

        def fire() -> None:
            if self.toxics.get(toxic.name) is toxic and not link.closed:
                link.reset()

        assert self._loop is not None
        self._loop.call_later(delay, fire)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.enabled:
            writer.transport.abort()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.connections_accepted += 1
        link = _Link(self, writer)
        self._links.add(link)
        try:
            opening = (
                asyncio.open_unix_connection(self.upstream_unix)
                if self.upstream_unix
                else asyncio.open_connection(self.upstream_host, self.upstream_port)
            )
            up_reader, up_writer = await asyncio.wait_for(opening, 10)
        except (OSError, TimeoutError):
            link.reset()
            return
        link.upstream = up_writer
        for toxic in list(self.toxics.values()):
            if toxic.kind == "reset_peer":
                self._arm_reset(link, toxic)
        pumps = [
            asyncio.ensure_future(self._pump(link, reader, up_writer, "upstream")),
            asyncio.ensure_future(self._pump(link, up_reader, writer, "downstream")),
        ]
        link.tasks = pumps
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pumps, return_exceptions=True)
        link.close()

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        stream: str,
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        deliver = asyncio.ensure_future(self._deliver(link, queue, writer, stream))
        link.tasks.append(deliver)
        try:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                holes = self._active(link, "timeout", stream)
                if holes:  # black hole: swallow; close later if asked to
                    ms = holes[0].attr("timeout")
                    if ms > 0:
                        assert self._loop is not None
                        self._loop.call_later(ms / 1000, link.close)
                    continue
                at = time.monotonic()
                for toxic in self._active(link, "latency", stream):
                    jitter = toxic.attr("jitter")
                    at += (toxic.attr("latency") + random.uniform(-jitter, jitter)) / 1000
                for toxic in self._active(link, "jitter", stream):
                    at += random.uniform(0, toxic.attr("jitter")) / 1000
                await queue.put((at, data))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            await queue.put(None)
        await deliver

    async def _deliver(
        self,
        link: _Link,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        writer: asyncio.StreamWriter,
        stream: str,
    ) -> None:
        try:
            while True:
                item = await queue.get()
                if item is None:
                    break
                at, data = item
                wait = at - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                for toxic in self._active(link, "bandwidth", stream):
                    rate = toxic.attr("rate")
                    if rate > 0:
                        await asyncio.sleep(len(data) / (rate * 1024))
                writer.write(data)
                await writer.drain()
            for toxic in self._active(link, "slow_close", stream):
                await asyncio.sleep(toxic.attr("delay") / 1000)
            link.close()
        except (OSError, ConnectionError):
            link.reset()
