"""Executors for simulation blocks: in-process (the default) and a local process pool.

An executor is any map-like callable ``(fn, tasks) -> iterable of results``; the engine sorts
results by block index, so an executor may return them in any order. Process pools pickle
``fn`` (a :func:`functools.partial` of a module-level function over the spec and plan).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ProcessPoolMap:
    """Runs tasks on ``workers`` local processes (default: the CPU count), ``blocks_per_task``
    blocks to a task. Use as an executor for :func:`updog.simulation.simulate`."""

    def __init__(self, workers: int | None = None, blocks_per_task: int = 1) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        if blocks_per_task < 1:
            raise ValueError("blocks_per_task must be at least 1")
        self.workers = workers or os.cpu_count() or 1
        self.blocks_per_task = blocks_per_task

    def __call__(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        items = list(tasks)
        with ProcessPoolExecutor(max_workers=self.workers) as pool:
            yield from pool.map(fn, items, chunksize=self.blocks_per_task)
