"""PostgreSQL persistence (psycopg 3, no ORM).

* :mod:`updog.store.db` — ``Database`` (connection pool) and ``open_database(settings)``.
* :mod:`updog.store.embedded` — the embedded PostgreSQL used when no ``DATABASE_URL`` is set.
* :mod:`updog.store.migrate` — Alembic migrations run in code, under an advisory lock.
* :mod:`updog.store.repositories` — parameterised SQL per aggregate, scoped by organisation.
"""
