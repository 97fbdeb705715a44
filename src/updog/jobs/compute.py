"""One simulation's compute in a separate process, under a time limit and a memory limit.

:func:`run_limited` starts a *compute process* (``forkserver``: forked from a small server
that has already imported the engine, so a job starts in milliseconds and never inherits the
worker's threads or database connections), which runs
:func:`updog.simulation.simulate` with the configured executor and reports over a pipe:
``ready``, ``progress`` after each block, then ``ok`` (the result as canonical JSON) or
``error`` (a code and a message). The calling thread watches it:

* **time limit** — the compute's wall-clock time (from ``ready``) beyond ``time_limit``
  kills it: ``TIME_LIMIT_EXCEEDED``;
* **memory limit** — the compute process sets ``RLIMIT_DATA`` to its current data segment
  plus ``memory_limit`` (an allocation beyond it raises ``MemoryError``), and the caller
  watches the resident memory of the process and its pool (``psutil``) and kills them beyond
  the limit: ``MEMORY_LIMIT_EXCEEDED``;
* **stop** — ``should_stop()`` (called a few times a second; the worker's heartbeat) returning
  a reason kills the compute: the outcome is ``stopped`` with that reason.

The compute process leads its own process group and asks the kernel to kill it when its
parent dies (``PR_SET_PDEATHSIG``), as do its pool processes; a kill takes the whole group,
so nothing is left behind when a job is stopped or a worker is killed.

An engine error becomes ``error`` with the exception's ``code`` when it has one (the engine
guards raise ``ENGINE_GUARD_FAILED``), ``ENGINE_RESULT_INVALID`` for a result that is not
strict JSON, else ``ENGINE_ERROR``. A compute process that dies without reporting (a signal,
the OOM killer) is ``crashed`` — the only outcome a worker retries.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal, TypeVar

__all__ = ["ExecutorConfig", "Limits", "Outcome", "run_limited"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: Seconds the compute process may take to start before the job counts as crashed.
START_TIMEOUT = 120.0
#: Seconds between looks at the compute process (progress, limits, ``should_stop``).
WATCH_INTERVAL = 0.1
#: Modules the forkserver imports once, so each compute process starts warm (with the
#: engines' compiled kernels in memory: :mod:`updog.simulation.warm`).
PRELOAD = ["updog.simulation.warm", "updog.model.spec", "updog.jobs.compute"]

_PR_SET_PDEATHSIG = 1

ExecutorKind = Literal["local", "process", "dask"]


@dataclass(frozen=True, slots=True)
class ExecutorConfig:
    """Where the blocks of a job run (picklable; the executor is built in the compute
    process): ``local`` (the compute process itself), ``process`` (a pool of ``processes``
    local processes, default one per CPU) or ``dask`` (the scheduler at ``dask_address``)."""

    kind: ExecutorKind = "process"
    dask_address: str | None = None
    processes: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("local", "process", "dask"):
            raise ValueError(f"unknown executor {self.kind!r}: use local, process or dask")
        if self.kind == "dask" and not self.dask_address:
            raise ValueError("the dask executor needs a scheduler address")

    @classmethod
    def choose(
        cls, kind: str = "auto", dask_address: str | None = None, processes: int | None = None
    ) -> ExecutorConfig:
        """``auto`` → ``dask`` when a scheduler address is given, else ``process``."""
        if kind == "auto":
            kind = "dask" if dask_address else "process"
        for known in ("local", "process", "dask"):
            if kind == known:
                return cls(
                    kind=known,
                    dask_address=dask_address if known == "dask" else None,
                    processes=processes,
                )
        raise ValueError(f"unknown executor {kind!r}: use auto, local, process or dask")

    def describe(self) -> str:
        if self.kind == "dask":
            return f"dask ({self.dask_address})"
        if self.kind == "process":
            return f"process pool ({self.processes or os.cpu_count() or 1} processes)"
        return "local (one process)"


@dataclass(frozen=True, slots=True)
class Limits:
    """Compute limits: wall-clock seconds and memory in bytes (both > 0)."""

    time_seconds: float
    memory_bytes: int

    def __post_init__(self) -> None:
        if not self.time_seconds > 0 or self.memory_bytes <= 0:
            raise ValueError("limits must be positive")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a compute ended. ``status``: ``succeeded`` (``result``), ``failed`` (``error`` =
    ``{"code", "message"}``; not worth retrying), ``crashed`` (died without a word; ``error``
    says how) or ``stopped`` (``should_stop`` asked; ``error["message"]`` is its reason)."""

    status: Literal["succeeded", "failed", "crashed", "stopped"]
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None


# --------------------------------------------------------------------------- compute process


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (best effort elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _data_segment_bytes() -> int:
    """This process's data segment (``VmData``), bytes; 0 when unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def _limit_memory(extra_bytes: int) -> None:
    """Cap the data segment at its current size + ``extra_bytes`` (inherited by the pool)."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        limit = _data_segment_bytes() + extra_bytes
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))


class _PoolMap:
    """A local process pool whose processes die with the compute process (fork: they share
    its imports and memory limit); results come back as they complete."""

    def __init__(self, processes: int | None) -> None:
        self.processes = processes or os.cpu_count() or 1

    def __call__(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        from concurrent.futures import as_completed

        items = list(tasks)
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(
            max_workers=min(self.processes, max(1, len(items))),
            mp_context=ctx,
            initializer=_die_with_parent,
        ) as pool:
            futures = [pool.submit(fn, item) for item in items]
            try:
                for future in as_completed(futures):
                    yield future.result()
            finally:
                for future in futures:
                    future.cancel()


def _build_executor(config: ExecutorConfig) -> Any:
    if config.kind == "process":
        return _PoolMap(config.processes)
    if config.kind == "dask":
        from updog.simulation.dask_executor import DaskExecutor

        return DaskExecutor(config.dask_address)
    return None


def _error_of(exc: BaseException) -> dict[str, str]:
    if isinstance(exc, MemoryError):
        return {
            "code": "MEMORY_LIMIT_EXCEEDED",
            "message": "the simulation needed more memory than the job memory limit allows",
        }
    code = getattr(exc, "code", None)
    reason = getattr(exc, "reason", None)
    if isinstance(code, str) and code.isupper():
        return {"code": code, "message": str(reason or exc)[:1000]}
    return {
        "code": "ENGINE_ERROR",
        "message": f"the engine failed: {type(exc).__name__}: {str(exc)[:500]}",
    }


def _compute_main(
    conn: Connection,
    spec_data: dict[str, Any],
    runs: int,
    seed: int,
    executor: ExecutorConfig,
    memory_bytes: int,
    faults: str | None = None,
) -> None:
    """Entry point of the compute process (see the module docstring for the protocol)."""
    os.setpgrp()  # lead a process group: a kill takes the pool too
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the worker, which decides

    def send(message: tuple[Any, ...]) -> None:
        try:
            conn.send(message)
        except (BrokenPipeError, EOFError, OSError):
            os._exit(3)  # the worker is gone: nobody wants this result any more

    from updog.model.validation import load_spec
    from updog.simulation import simulate

    _limit_memory(memory_bytes)
    send(("ready",))
    built = None
    try:
        extra: dict[str, Any] = {}
        if faults:  # fault injection for the guard tests; never set in production
            from updog.model.faults import FaultPlan

            extra["faults"] = FaultPlan.parse(faults)
        spec = load_spec(spec_data)
        built = _build_executor(executor)
        result = simulate(
            spec,
            runs,
            seed,
            executor=built,
            progress=lambda done, total: send(("progress", done, total)),
            **extra,
        )
        try:
            text = result.to_json()
        except (ValueError, TypeError) as exc:
            send(
                (
                    "error",
                    {
                        "code": "ENGINE_RESULT_INVALID",
                        "message": f"the result is not finite, strict JSON: {exc}",
                    },
                )
            )
            return
        send(("ok", text))
    except BaseException as exc:
        send(("error", _error_of(exc)))
    finally:
        close = getattr(built, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
        conn.close()


# --------------------------------------------------------------------------- the watcher


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


def _kill_group(process: multiprocessing.process.BaseProcess) -> None:
    pid = process.pid
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)
    process.join(10)


def _memory_of(process: Any) -> int:
    """Proportional set size (shared pages split between their users, so a forked pool is not
    counted twice), else resident set size, bytes."""
    try:
        info = process.memory_full_info()
        return int(getattr(info, "pss", info.rss))
    except Exception:
        return int(process.memory_info().rss)


def _tree_memory(pid: int) -> int:
    """Memory of ``pid`` and its descendants, bytes (0 when unknown)."""
    try:
        import psutil

        root = psutil.Process(pid)
        total = _memory_of(root)
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += _memory_of(child)
        return total
    except Exception:
        return 0


def run_limited(
    spec_data: dict[str, Any],
    runs: int,
    seed: int,
    *,
    executor: ExecutorConfig,
    limits: Limits,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], str | None] | None = None,
    faults: str | None = None,
) -> Outcome:
    """Simulate ``spec_data`` (a spec as JSON) in a compute process under ``limits``.

    ``on_progress(done_paths, runs)`` is called as blocks finish; ``should_stop()`` is called
    every :data:`WATCH_INTERVAL` seconds and returning a reason stops the compute. ``faults``
    (``point:kind,...``, see :mod:`updog.model.faults`) injects faults, for tests only. Never
    raises for what the compute does; see :class:`Outcome`."""
    ctx = _context()
    parent_end, child_end = ctx.Pipe(duplex=False)
    process = ctx.Process(  # type: ignore[attr-defined]
        target=_compute_main,
        args=(child_end, spec_data, runs, seed, executor, limits.memory_bytes, faults),
        name="updog-compute",
        daemon=False,
    )
    process.start()
    child_end.close()
    started = time.monotonic()
    deadline: float | None = None
    last_rss_check = 0.0
    try:
        while True:
            message: tuple[Any, ...] | None = None
            if parent_end.poll(WATCH_INTERVAL):
                try:
                    message = parent_end.recv()
                except (EOFError, OSError):
                    return _crashed(process)
            if message is not None:
                kind = message[0]
                if kind == "ready":
                    deadline = time.monotonic() + limits.time_seconds
                elif kind == "progress" and on_progress is not None:
                    on_progress(int(message[1]), int(message[2]))
                elif kind == "ok":
                    process.join(10)
                    return Outcome("succeeded", result=json.loads(message[1]))
                elif kind == "error":
                    process.join(10)
                    return Outcome("failed", error=dict(message[1]))
            now = time.monotonic()
            reason = should_stop() if should_stop is not None else None
            if reason:
                _kill_group(process)
                return Outcome("stopped", error={"code": "STOPPED", "message": reason})
            if deadline is None and now - started > START_TIMEOUT:
                _kill_group(process)
                return Outcome(
                    "crashed",
                    error={"code": "WORKER_START_FAILED", "message": "compute did not start"},
                )
            if deadline is not None and now > deadline:
                _kill_group(process)
                return Outcome(
                    "failed",
                    error={
                        "code": "TIME_LIMIT_EXCEEDED",
                        "message": f"the simulation ran longer than the job time limit "
                        f"of {limits.time_seconds:g} s",
                    },
                )
            if process.pid is not None and now - last_rss_check >= 0.25:
                last_rss_check = now
                if _tree_memory(process.pid) > limits.memory_bytes + _BASELINE_ALLOWANCE:
                    _kill_group(process)
                    return Outcome(
                        "failed",
                        error={
                            "code": "MEMORY_LIMIT_EXCEEDED",
                            "message": "the simulation needed more memory than the job "
                            f"memory limit of {limits.memory_bytes // 2**20} MiB allows",
                        },
                    )
            if message is None and not process.is_alive() and not parent_end.poll(0):
                return _crashed(process)
    finally:
        if process.is_alive():
            _kill_group(process)
        parent_end.close()


#: Resident memory a compute process has before it computes anything (interpreter, numpy,
#: the engine), not counted against the job's memory limit, bytes.
_BASELINE_ALLOWANCE = 256 * 2**20


def _crashed(process: multiprocessing.process.BaseProcess) -> Outcome:
    process.join(10)
    code = process.exitcode
    how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
    _log.warning("compute process %s %s", process.pid, how)
    return Outcome(
        "crashed",
        error={"code": "COMPUTE_PROCESS_DIED", "message": f"the compute process {how}"},
    )
