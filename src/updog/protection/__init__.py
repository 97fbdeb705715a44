"""Traffic protection (SPEC §6 practices 1, 3 and 5), one concern per module.

* :mod:`.headers` — security headers on every response (CSP with nonces, HSTS, ...).
* :mod:`.csp_reports` — the CSP violation report endpoint (bounded store).
* :mod:`.shedding` — load shedding on event-loop lag, in-flight requests, pool waiters, memory.
* :mod:`.rate_limit` — tiered rate limits (``api``, ``simulation``, ``auth``) per identity.
* :mod:`.idempotency` — ``Idempotency-Key`` on POST/PATCH, stored in PostgreSQL.
* :mod:`.dedupe` — single-flight of identical concurrent reads and simulation requests.
* :mod:`.clients` — who is calling: the client address (trusted proxies) and the identity key.

Each middleware is a pure ASGI class configured from :class:`~updog.settings.Settings`;
they are composed, in an order explained there, by :func:`updog.api.app.create_app`.
"""
