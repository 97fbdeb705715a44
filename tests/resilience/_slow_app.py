"""The real app plus one test-only route, for driving ``updog serve`` in shutdown tests.

``GET /test/slow?seconds=S`` holds a pooled database connection for ``S`` seconds
(``pg_sleep``) and answers ``{"slept": S}``: a slow request in flight.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool


def create_app(settings: Any, database: Any) -> Any:
    from updog.api.app import create_app as real_create_app

    app = real_create_app(settings, database)

    @app.get("/test/slow", include_in_schema=False)
    async def slow(seconds: float = 2.0) -> dict[str, float]:
        def work() -> None:
            with database.connection() as conn:
                conn.execute("SELECT pg_sleep(%s)", (min(seconds, 20.0),))

        await run_in_threadpool(work)
        return {"slept": seconds}

    return app
