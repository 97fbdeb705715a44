"""``Idempotency-Key`` for POST and PATCH: a retried write takes effect once.

SPEC §6 practice 5, following draft-ietf-httpapi-idempotency-key-header and Stripe's
published behaviour, with the record in PostgreSQL (table ``idempotency_keys``).

A request with the header, made by an authenticated identity, goes through three phases:

1. **Claim** — one short transaction: forget an *expired* record of the same key, then
   ``INSERT … ON CONFLICT DO NOTHING`` a row ``in_progress`` with the request's fingerprint
   (SHA-256 of method, path, query, content type and the full body). The unique constraint
   on (scope, method, path, key) makes exactly one concurrent request the owner; the
   others read the existing row and get:

   * a different fingerprint → 422 ``IDEMPOTENCY_KEY_REUSED`` (same key, other payload);
   * ``in_progress`` → 409 ``IDEMPOTENCY_KEY_IN_USE`` with ``Retry-After: 1`` (never a
     500 from the unique violation);
   * ``completed`` → the stored status, headers and body, byte for byte, plus
     ``Idempotent-Replayed: true``.

2. **Work** — the route runs outside any transaction of ours (a simulation may take
   seconds; no row lock or open transaction is held meanwhile), with the full body handed
   on in one ``http.request`` message however many messages it arrived in.

3. **Complete** — the response (status, the headers a replay needs, body) is stored and the
   row marked ``completed`` *in the same transaction as the route's effect* (Stripe's
   atomic phases): the effect and the stored response commit together or not at all.
   Only then is the response sent, so the first answer and every replay are identical.

   The routes that create resources cooperate: ``POST /funds`` (the fund),
   ``POST /funds/{id}/publish`` (the published version) and ``POST /funds/{id}/simulations``
   (the stored result of a synchronous run; the queued simulation and its job of a 202) run
   their final write through :func:`commit_with_response`, which finds the claim the
   middleware left in ``scope["state"]`` (:data:`STATE_KEY`) and calls :func:`complete_in`
   on the route's own connection, with the same header selection as below. The middleware
   sees the claim completed and skips its own completion. Every other POST/PATCH route —
   and an error answer of the cooperating ones, which has no effect — is completed by the
   middleware in a transaction of its own after the route returns.

   Responses that mean "nothing was done" — 5xx, 401, 403, 408, 425, 429 — release the key
   instead (the row is deleted), so the client can retry with the same key; so does an
   exception or a cancelled request (if the route's transaction fails, its effect and its
   stored response roll back together and the key is released).

Scope = identity (``user:<uuid>``) + method + concrete path + key. Anonymous requests are
passed through untouched (there is no identity to scope by, and the one anonymous POST,
login, must never replay a ``Set-Cookie``). Keys are 1..255 visible ASCII characters,
optionally as an RFC 8941 string (``"…"``); anything else → 400 ``IDEMPOTENCY_KEY_INVALID``.
Records expire after ``ttl`` seconds (24 h): an expired key is claimable again, and
:func:`updog.store.repositories.purge_expired_idempotency_keys` deletes them (the job
workers run it periodically).

For the routes that complete the key in their own transaction, a crash can no longer
leave their effect committed behind a key still ``in_progress`` — with one stated
exception: a synchronous simulation records itself as ``running`` (its own short
transaction, so it is visible while it computes) before the result and the response commit
together; a crash while computing leaves that ``running`` row and the key ``in_progress``
until it expires. For the other routes the effect commits a
moment before the middleware's completion; a crash in that moment leaves the key
``in_progress`` (retries get 409 until it expires) — never a second effect.

Why our own code: the maintained ASGI packages (``asgi-idempotency-header``,
``fastapi-idempotency``) keep records in memory or Redis, answer a concurrent duplicate by
running it again or with a 500, and do not scope by our identity.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from updog.http.problems import send_problem
from updog.observability.logging import get_logger
from updog.protection.clients import IdentityKeys, header
from updog.settings import Settings

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 255
#: Statuses that mean the request had no effect: the key is released, not stored.
RELEASE_STATUSES = frozenset({401, 403, 408, 425, 429})
#: Response headers never stored for replay (per-request, or never to be replayed).
_log = get_logger("updog.idempotency")
_NOT_STORED = frozenset(
    {b"x-request-id", b"date", b"server", b"set-cookie", b"ratelimit", b"ratelimit-policy"}
)


#: Key of the current request's :class:`Claim` in ``scope["state"]`` (``request.state``).
STATE_KEY = "idempotency"


@dataclass
class Claim:
    """The key this request owns: its row, and whether the route already completed it."""

    id: Any
    completed: bool = False


def _stored_headers(headers: Sequence[tuple[bytes, bytes]]) -> list[list[str]]:
    """The response headers a replay needs (the same selection on every path)."""
    return [
        [k.decode("latin-1"), v.decode("latin-1")]
        for k, v in headers
        if k.lower() not in _NOT_STORED
    ]


def _store(conn: Any, row_id: Any, status: int, headers: list[list[str]], body: bytes) -> None:
    conn.execute(
        "UPDATE idempotency_keys SET status = 'completed', response_status = %s, "
        "response_headers = %s::jsonb, response_body = %s, completed_at = now(), "
        "locked_at = NULL WHERE id = %s AND status = 'in_progress'",
        (status, json.dumps(headers), body, row_id),
    )


def claim_of(request: Request) -> Claim | None:
    """The claim the middleware made for this request, or None (no key, anonymous…)."""
    state = request.scope.get("state")
    claim = state.get(STATE_KEY) if isinstance(state, dict) else None
    return claim if isinstance(claim, Claim) else None


def complete_in(conn: Any, claim: Claim, response: Response) -> None:
    """Store ``response`` as the answer of ``claim`` on ``conn`` — inside the caller's
    transaction, so it commits (or rolls back) with the caller's effect. The caller marks
    ``claim.completed`` once that transaction has committed (:func:`commit_with_response`
    does both)."""
    body = bytes(response.body)
    _store(conn, claim.id, response.status_code, _stored_headers(response.raw_headers), body)


async def commit_with_response(
    request: Request, work: Callable[[Any], Response], *, single_statement: bool = False
) -> Response:
    """Run ``work(conn)`` — the route's effect, returning its response — in one transaction
    in a worker thread, and, when the request holds an idempotency claim, store that
    response in the same transaction. Without a claim this is a plain transaction — or, when
    ``work`` makes a single statement (``single_statement=True``), no explicit transaction
    at all: one statement is atomic on its own, and BEGIN/COMMIT would cost two round trips."""
    database = request.app.state.database
    claim = claim_of(request)
    autocommit = single_statement and claim is None

    def run() -> Response:
        with database.connection(autocommit=autocommit) as conn:
            response = work(conn)
            if claim is not None:
                complete_in(conn, claim, response)
        if claim is not None:  # committed: the middleware must not store or release it
            claim.completed = True
        return response

    return await run_in_threadpool(run)


def parse_key(raw: str) -> str | None:
    """The key of an ``Idempotency-Key`` value, or None when it is not acceptable."""
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not 1 <= len(value) <= MAX_KEY_LENGTH:
        return None
    if not all(" " < c <= "~" for c in value):
        return None
    return value


def fingerprint(scope: Scope, body: bytes) -> str:
    """SHA-256 over what makes two requests "the same request"."""
    h = hashlib.sha256()
    for part in (
        scope["method"].encode(),
        scope["path"].encode(),
        bytes(scope.get("query_string", b"")),
        (header(scope, b"content-type") or "").encode("latin-1"),
    ):
        h.update(part)
        h.update(b"\0")
    h.update(body)
    return h.hexdigest()


class IdempotencyMiddleware:
    """Apply ``Idempotency-Key`` semantics to ``methods`` (see module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        database: Any,
        identities: IdentityKeys,
        ttl: int = 86_400,
        methods: Sequence[str] = ("POST", "PATCH"),
        registry: CollectorRegistry | None = None,
    ) -> None:
        if ttl < 1:
            raise ValueError("ttl must be ≥ 1 second")
        self.app = app
        self.database = database
        self.identities = identities
        self.ttl = ttl
        self.methods = frozenset(m.upper() for m in methods)
        self.outcomes = (
            Counter(
                "updog_idempotency_requests_total",
                "Requests with an Idempotency-Key, by outcome.",
                ("outcome",),
                registry=registry,
            )
            if registry is not None
            else None
        )

    @classmethod
    def options(
        cls,
        settings: Settings,
        database: Any,
        registry: CollectorRegistry,
        identities: IdentityKeys | None = None,
    ) -> dict[str, Any]:
        """Keyword arguments for ``Middleware(IdempotencyMiddleware, **options)``."""
        return {
            "database": database,
            "identities": identities or IdentityKeys(database, settings.secret_key),
            "ttl": settings.idempotency_ttl,
            "registry": registry,
        }

    def _count(self, outcome: str) -> None:
        if self.outcomes is not None:
            self.outcomes.labels(outcome).inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        raw_key = header(scope, HEADER)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = parse_key(raw_key)
        if key is None:
            self._count("invalid_key")
            await send_problem(
                scope,
                send,
                400,
                "IDEMPOTENCY_KEY_INVALID",
                f"Idempotency-Key must be 1..{MAX_KEY_LENGTH} visible ASCII characters.",
            )
            return
        identity = await self.identities.key(scope)
        if identity is None:  # anonymous or bad credential: the route answers (401/login)
            await self.app(scope, receive, send)
            return

        # Read the whole body (the body limit outside us caps it), to fingerprint and replay.
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        ident = (identity, scope["method"], scope["path"], key)
        digest = fingerprint(scope, body)

        try:
            claim = await run_in_threadpool(self._claim, ident, digest)
        except psycopg.OperationalError:
            await send_problem(
                scope,
                send,
                503,
                "DATABASE_UNAVAILABLE",
                "The database is unavailable or overloaded; retry shortly.",
                headers={"Retry-After": "5"},
            )
            return
        if claim["owner"] is False:
            await self._answer_existing(scope, send, claim, digest)
            return

        row_id = claim["id"]
        owned = Claim(row_id)
        scope.setdefault("state", {})[STATE_KEY] = owned
        replayed = False

        async def replay_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        start: Message | None = None
        parts: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        try:
            await self.app(scope, replay_receive, capture)
        except BaseException:
            if not owned.completed:
                await asyncio.shield(run_in_threadpool(self._release, row_id))
                self._count("released")
            raise
        if owned.completed:  # stored by the route, in the transaction of its effect
            self._count("executed")
            if start is not None:
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(parts)})
            return
        if start is None:  # the app sent nothing: treat as not done
            await asyncio.shield(run_in_threadpool(self._release, row_id))
            self._count("released")
            return
        status = int(start["status"])
        headers = list(start.get("headers", ()))
        payload = b"".join(parts)
        if status >= 500 or status in RELEASE_STATUSES:
            await asyncio.shield(run_in_threadpool(self._release, row_id))
            self._count("released")
        else:
            stored = _stored_headers(headers)
            try:
                await asyncio.shield(
                    run_in_threadpool(self._complete, row_id, status, stored, payload)
                )
                self._count("executed")
            except Exception as exc:  # the effect happened: answer; the key stays claimed
                self._count("store_failed")
                _log.error("idempotency_store_failed", error=type(exc).__name__)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _answer_existing(
        self, scope: Scope, send: Send, row: dict[str, Any], digest: str
    ) -> None:
        if row["request_hash"] != digest:
            self._count("payload_mismatch")
            await send_problem(
                scope,
                send,
                422,
                "IDEMPOTENCY_KEY_REUSED",
                "This Idempotency-Key was used for a different request payload; use a new key.",
            )
            return
        if row["status"] != "completed":
            self._count("in_progress")
            await send_problem(
                scope,
                send,
                409,
                "IDEMPOTENCY_KEY_IN_USE",
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                headers={"Retry-After": "1"},
            )
            return
        self._count("replayed")
        stored = row["response_headers"] or []
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored]
        headers.append((b"idempotent-replayed", b"true"))
        await send(
            {"type": "http.response.start", "status": row["response_status"], "headers": headers}
        )
        await send({"type": "http.response.body", "body": bytes(row["response_body"] or b"")})

    # -- the three transactions (run in worker threads) -----------------------------------

    def _claim(self, ident: tuple[str, str, str, str], digest: str) -> dict[str, Any]:
        for _ in range(3):
            with self.database.connection() as conn:
                conn.execute(
                    "DELETE FROM idempotency_keys WHERE scope = %s AND method = %s "
                    "AND path = %s AND key = %s AND expires_at <= now()",
                    ident,
                )
                row = conn.execute(
                    "INSERT INTO idempotency_keys "
                    "(scope, method, path, key, request_hash, status, locked_at, expires_at) "
                    "VALUES (%s, %s, %s, %s, %s, 'in_progress', now(), "
                    "now() + make_interval(secs => %s)) "
                    "ON CONFLICT ON CONSTRAINT idempotency_keys_scope_key DO NOTHING "
                    "RETURNING id",
                    (*ident, digest, self.ttl),
                ).fetchone()
                if row is not None:
                    return {"owner": True, "id": row["id"]}
                existing = conn.execute(
                    "SELECT id, request_hash, status, response_status, response_headers, "
                    "response_body FROM idempotency_keys WHERE scope = %s AND method = %s "
                    "AND path = %s AND key = %s",
                    ident,
                ).fetchone()
                if existing is not None:
                    return {"owner": False, **existing}
            # the other owner released its claim between our INSERT and SELECT: try again
        return {"owner": False, "request_hash": digest, "status": "in_progress"}

    def _complete(self, row_id: Any, status: int, headers: list[list[str]], body: bytes) -> None:
        with self.database.connection() as conn:
            _store(conn, row_id, status, headers, body)

    def _release(self, row_id: Any) -> None:
        with self.database.connection() as conn:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE id = %s AND status = 'in_progress'", (row_id,)
            )
