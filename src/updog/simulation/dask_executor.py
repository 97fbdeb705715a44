"""A Dask distributed executor for simulation blocks (SPEC §5.3).

``DaskExecutor("tcp://scheduler:8786")`` is a map-like executor for
:func:`updog.simulation.simulate`: it submits one task per ``blocks_per_task`` blocks to the
cluster and yields block results as they complete. The engine reduces them in block order and
block ``i`` is seeded by its index, so the result is byte-identical to a single-process run
of the same seed whatever the cluster's size.

The function shipped to the workers is a :func:`functools.partial` of a module-level engine
function over the spec and plan, so the workers need ``updog`` importable (install it in the
workers' environment, the same version as the client: results record the engine version).
``distributed`` is imported only when the executor is used.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["DaskExecutor"]

T = TypeVar("T")
R = TypeVar("R")

#: Seconds to wait for the scheduler to answer when connecting.
CONNECT_TIMEOUT = 30.0


def _run_chunk(fn: Callable[[T], R], chunk: list[T]) -> list[R]:
    return [fn(task) for task in chunk]


class DaskExecutor:
    """Run simulation tasks on a Dask distributed cluster.

    ``address``: the scheduler (``tcp://host:8786``); or pass a connected ``client``
    (``distributed.Client``), which the executor then does not close. ``blocks_per_task``
    groups blocks into one task (fewer, larger tasks for small blocks on a busy scheduler).
    Raises ``ValueError`` for a missing address or a bad ``blocks_per_task``; connection
    failures surface as ``OSError``/``TimeoutError`` from ``distributed`` when the executor
    runs."""

    def __init__(
        self,
        address: str | None = None,
        *,
        client: Any = None,
        blocks_per_task: int = 1,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        if client is None and not address:
            raise ValueError("DaskExecutor needs a scheduler address or a client")
        if blocks_per_task < 1:
            raise ValueError("blocks_per_task must be at least 1")
        self.address = address
        self.blocks_per_task = blocks_per_task
        self.connect_timeout = connect_timeout
        self._client = client

    def __call__(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        from distributed import Client, as_completed

        items = list(tasks)
        chunks = [
            items[i : i + self.blocks_per_task] for i in range(0, len(items), self.blocks_per_task)
        ]
        own = self._client is None
        client: Any = (
            Client(  # type: ignore[no-untyped-call]
                self.address, timeout=self.connect_timeout, set_as_default=False
            )
            if own
            else self._client
        )
        try:
            # pure=False: every call is new work (never a cached result of another run)
            futures = client.map(functools.partial(_run_chunk, fn), chunks, pure=False)
            try:
                done = as_completed(futures, loop=client.loop)  # type: ignore[no-untyped-call]
                for future in done:
                    yield from future.result()
            finally:
                client.cancel(futures)
        finally:
            if own:
                client.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.address!r}, blocks_per_task={self.blocks_per_task})"
