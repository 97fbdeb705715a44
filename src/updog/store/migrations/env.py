"""Alembic environment of Updog (run through :mod:`updog.store.migrate`, never ``alembic.ini``).

Online mode expects an open SQLAlchemy connection in ``config.attributes["connection"]``
(``updog.store.migrate`` opens it with the ``postgresql+psycopg`` driver and holds the
migration advisory lock on it). Offline mode (``--sql``) renders PostgreSQL DDL.
Migrations are hand-written SQL (no ``target_metadata``; the application uses plain psycopg).
"""

from __future__ import annotations

from alembic import context

config = context.config


def run_offline() -> None:
    context.configure(
        url="postgresql+psycopg://", literal_binds=True, dialect_opts={"paramstyle": "named"}
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through updog.store.migrate (it opens the connection)")
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
