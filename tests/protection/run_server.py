"""A server process for the multi-process tests: ``python run_server.py PORT``.

Settings come from the environment (``Settings.from_env``: ``DATABASE_URL``, ``REDIS_URL``,
``UPDOG_*``); the database must already be migrated. Serves on 127.0.0.1:PORT until killed.
"""

from __future__ import annotations

import sys

import uvicorn

from updog.api.app import create_app
from updog.settings import Settings
from updog.store.db import Database


def main() -> None:
    port = int(sys.argv[1])
    settings = Settings.from_env()
    assert settings.database_url
    database = Database(settings.database_url, min_size=1, max_size=4)
    app = create_app(settings, database, configure_logs=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")


if __name__ == "__main__":
    main()
