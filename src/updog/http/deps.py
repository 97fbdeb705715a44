"""Request-scoped access to the app's settings and database, and the helpers that run
blocking work — a use case of :mod:`updog.service`, a store function — in a worker thread
(never on the event loop)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from updog.model.faults import FaultPlan
from updog.settings import Settings

T = TypeVar("T")


def get_settings(request: Request) -> Settings:
    """The :class:`~updog.settings.Settings` the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def fault_plan(request: Request) -> FaultPlan | None:
    """The engine fault plan of ``UPDOG_FAULTS`` (guard tests only; None in production)."""
    text = get_settings(request).faults
    return FaultPlan.parse(text) if text else None


def get_database(request: Request) -> Any:
    """The store's ``Database`` the app was built with."""
    return request.app.state.database


async def db_call(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(conn, *args, **kwargs)`` with a pooled connection, in a worker thread.

    The connection context commits when ``fn`` returns and rolls back when it raises
    (psycopg's ``with conn:`` semantics, as the store's ``Database.connection()`` provides).
    A ``fn`` marked :func:`~updog.store.repositories.single_statement` runs in autocommit
    instead (one statement is its own transaction): no ``BEGIN``/``COMMIT`` round trips.
    """
    database = get_database(request)
    autocommit = bool(getattr(fn, "single_statement", False))

    def work() -> T:
        with database.connection(autocommit=autocommit) as conn:
            return fn(conn, *args, **kwargs)

    return await run_in_threadpool(work)


async def in_thread(request: Request, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(database, *args, **kwargs)`` in a worker thread: a use case that opens its own
    transactions around work done outside them (an engine run)."""
    database = get_database(request)
    return await run_in_threadpool(lambda: fn(database, *args, **kwargs))
