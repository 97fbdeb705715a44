"""Durable simulation jobs (SPEC §5.3): a PostgreSQL queue with leases, a worker, limits.

- :mod:`updog.jobs.queue` — the ``jobs`` table: submit, claim (``FOR UPDATE SKIP LOCKED``),
  heartbeat, finish, retry, release, cancel.
- :mod:`updog.jobs.compute` — one simulation in a separate process under a time limit and a
  memory limit, on a local, process-pool or Dask executor.
- :mod:`updog.jobs.worker` — the loop ``updog worker`` runs (and ``updog serve`` in process
  on the embedded defaults).
- :mod:`updog.jobs.events` — the server-sent events of a simulation's progress.
"""
