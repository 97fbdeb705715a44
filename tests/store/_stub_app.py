"""A minimal app factory with ``create_app``'s signature, for testing ``updog serve`` alone.

``GET /`` answers ``{"users": <count>, "pid": <pid>}`` read from the database.
"""

from __future__ import annotations

import json
import os
from typing import Any


def create_app(settings: Any, database: Any) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        with database.connection() as conn:
            users = conn.execute("SELECT count(*) AS n FROM users").fetchone()["n"]
        body = json.dumps({"users": users, "pid": os.getpid()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app
