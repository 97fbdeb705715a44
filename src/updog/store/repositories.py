"""Repositories: plain parameterised SQL over a psycopg 3 connection (rows as dicts).

Every function takes an open connection and runs inside the caller's transaction (use
``Database.connection()``); none commits. Conventions:

* Ids are :class:`uuid.UUID`; timestamps are timezone-aware UTC ``datetime``.
* Anything that belongs to an organisation is read and written *through* ``org_id``: a fund of
  another organisation is indistinguishable from a missing one. Reads return ``None`` for it;
  writes raise :class:`NotFound`.
* Specs are JSON objects (``dict``) stored as ``jsonb``; the repository neither validates nor
  interprets them (the API validates with ``FundSpec`` before calling).
* Secrets are never stored: API tokens as SHA-256, passwords as Argon2id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import psycopg.errors
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from psycopg.types.json import Jsonb

from updog.store.db import Connection

__all__ = [
    "ROLES",
    "TOKEN_PREFIX",
    "DuplicateEmail",
    "ForecastRecord",
    "FundPage",
    "FundRecord",
    "FundVersion",
    "Identity",
    "InvalidCursor",
    "NotFound",
    "NotPublished",
    "Organisation",
    "PendingEdits",
    "SimulationRecord",
    "StaleVersion",
    "StoreError",
    "TokenRecord",
    "UserRecord",
    "complete_simulation",
    "create_fund",
    "create_session",
    "create_simulation",
    "create_token",
    "create_user",
    "etag_for",
    "fail_simulation",
    "get_forecast",
    "get_fund",
    "get_or_create_organisation",
    "get_organisation",
    "get_simulation",
    "get_spec",
    "get_user",
    "get_user_by_email",
    "hash_password",
    "identity_for_session",
    "identity_for_token",
    "list_funds",
    "list_pending_edits",
    "list_tokens",
    "publish",
    "replace_draft",
    "revision_from_etag",
    "revoke_session",
    "revoke_token",
    "save_forecast",
    "set_pending_edits",
    "set_simulation_progress",
    "spec_hash",
    "start_simulation",
    "verify_password",
]

Role = Literal["viewer", "analyst", "admin"]
#: Roles, least to most privileged: viewer reads, analyst writes funds and runs simulations,
#: admin also manages users and flags.
ROLES: tuple[Role, ...] = ("viewer", "analyst", "admin")

#: Every API token starts with this, so leaked tokens are recognisable by secret scanners.
TOKEN_PREFIX = "updog_"
#: Characters of a token kept in clear for display (``updog_`` + 6 characters).
TOKEN_DISPLAY_CHARS = 12
#: Shortest accepted password (characters).
PASSWORD_MIN_LENGTH = 8
#: Page sizes accepted by :func:`list_funds`.
MAX_PAGE_SIZE = 100

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_TOKEN_RE = re.compile(r"^updog_[A-Za-z0-9_-]{20,100}$")
#: Argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4).
_hasher = PasswordHasher()
#: A valid hash of a random password: verifying against it when the email is unknown keeps
#: the response time the same as for a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


# --------------------------------------------------------------------------- errors


class StoreError(Exception):
    """Base class of the repository errors (all are the caller's fault, not the database's)."""


class NotFound(StoreError):
    """The object does not exist, or belongs to another organisation."""


class StaleVersion(StoreError):
    """The caller edited an old revision of the draft; ``current_revision`` is the draft's
    revision now."""

    def __init__(self, expected_revision: int, current_revision: int) -> None:
        super().__init__(
            f"draft is at revision {current_revision}, not {expected_revision} as expected"
        )
        self.expected_revision = expected_revision
        self.current_revision = current_revision


class NotPublished(StoreError):
    """The fund exists but has no published version."""


class DuplicateEmail(StoreError):
    """A user with this email (case-insensitive) exists already."""


class InvalidCursor(StoreError, ValueError):
    """A pagination cursor that this module did not produce (or from another listing)."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Organisation:
    id: uuid.UUID
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user; ``password_hash`` is deliberately not part of it."""

    id: uuid.UUID
    org_id: uuid.UUID
    email: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: the user, their organisation and role, and the credential used
    (``token_id`` for an API token, ``session_id`` for a browser session)."""

    user_id: uuid.UUID
    org_id: uuid.UUID
    role: Role
    email: str
    token_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as stored: never the token itself, only a display prefix."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        """Not revoked and not expired."""
        return self.revoked_at is None and (
            self.expires_at is None or self.expires_at > datetime.now(UTC)
        )


@dataclass(frozen=True, slots=True)
class FundRecord:
    """A fund with its current draft spec.

    Two counters, never mixed: ``draft_revision`` counts saved changes of the draft (1 when
    the fund is created, +1 with every save); ``published_version`` counts publications (1
    for the first, null before it), and ``published_revision`` is the draft revision that
    publication was made from. ``status`` is ``"published"`` once any version was published
    (the draft may have moved on since: ``draft_revision > published_revision``). ``etag``
    stands for the draft revision and changes with every draft edit (use it for
    ``If-Match``).
    """

    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    status: Literal["draft", "published"]
    draft_revision: int
    published_version: int | None
    published_revision: int | None
    spec: dict[str, Any]
    spec_hash: str
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        """Strong ETag (with quotes) of the current draft revision."""
        return etag_for(self.id, self.draft_revision)

    @property
    def has_unpublished_changes(self) -> bool:
        """Published, and the draft has been saved since."""
        return self.published_revision is not None and self.draft_revision > self.published_revision


@dataclass(frozen=True, slots=True)
class FundPage:
    """One page of :func:`list_funds`; ``next_cursor`` is None on the last page."""

    items: list[FundRecord]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class FundVersion:
    """One immutable revision of a fund's spec: ``revision`` counts the draft's saves;
    ``published_version`` is its publication number (1 for the fund's first), None while
    it was never published."""

    id: uuid.UUID
    fund_id: uuid.UUID
    revision: int
    published_version: int | None
    kind: Literal["draft", "published"]
    spec: dict[str, Any]
    spec_hash: str
    created_at: datetime
    published_at: datetime | None


@dataclass(frozen=True, slots=True)
class PendingEdits:
    """What a user typed on a setup-wizard step and the draft did not take (it did not parse
    or broke a draft rule): ``held`` names the spec keys not saved (dotted paths such as
    ``fees.tiers``), ``texts`` holds the step form's texts under them, as typed."""

    step: str
    held: list[str]
    texts: dict[str, str]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ForecastRecord:
    id: uuid.UUID
    fund_version_id: uuid.UUID
    engine_version: str
    spec_hash: str
    result: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SimulationRecord:
    """A simulation run: parameters, provenance, status and (when succeeded) its result.

    ``status`` ∈ queued, running, succeeded, failed, cancelled; ``progress`` ∈ [0, 1].
    """

    id: uuid.UUID
    org_id: uuid.UUID
    fund_id: uuid.UUID
    fund_version_id: uuid.UUID
    created_by: uuid.UUID | None
    runs: int
    seed: int
    params: dict[str, Any]
    status: str
    progress: float
    engine_version: str
    spec_hash: str
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


# --------------------------------------------------------------------------- helpers


def _one(conn: Connection, query: str, params: Mapping[str, Any] | tuple[Any, ...] = ()) -> Any:
    return conn.execute(query, params).fetchone()


def single_statement(fn: Any) -> Any:
    """Mark a store function that sends exactly one statement (or none) and needs no
    transaction around it: :func:`updog.http.deps.db_call` runs it in autocommit, sparing the
    ``BEGIN`` and ``COMMIT`` round trips. A single statement is atomic on its own, and reads
    one snapshot. Only for functions that stay correct when the caller's connection is in
    autocommit; inside a caller's transaction they behave as before."""
    fn.single_statement = True
    return fn


def _record(cls: type[Any], row: Mapping[str, Any]) -> Any:
    return cls(**{name: row[name] for name in cls.__dataclass_fields__})


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form hashed by :func:`spec_hash`."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def spec_hash(spec: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 64 chars) of the canonical JSON of ``spec``; equal specs hash equal."""
    return hashlib.sha256(canonical_json(spec).encode()).hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def etag_for(fund_id: uuid.UUID, draft_revision: int) -> str:
    """The ETag (quoted) of a fund's draft revision: ``"<fund id hex>.<revision>"``."""
    return f'"{fund_id.hex}.{draft_revision}"'


def revision_from_etag(fund_id: uuid.UUID, etag: str) -> int | None:
    """The draft revision an ``If-Match`` entity tag names, or None when it is not a strong
    ETag of this fund (weak ``W/`` tags never match, RFC 9110 §13.1.1)."""
    tag = etag.strip()
    if not (len(tag) >= 2 and tag[0] == tag[-1] == '"'):
        return None
    fid, _, revision = tag[1:-1].partition(".")
    if fid != fund_id.hex or not revision.isdigit() or len(revision) > 9:
        return None
    return int(revision)


# --------------------------------------------------------------------------- organisations


def get_or_create_organisation(conn: Connection, name: str) -> Organisation:
    """The organisation called ``name`` (case-insensitive), created if missing.

    Raises ValueError for an empty name or one over 200 characters. Safe under concurrency.
    """
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise ValueError("organisation name must be 1..200 characters")
    row = _one(
        conn,
        "INSERT INTO organisations (name) VALUES (%s) "
        "ON CONFLICT ((lower(name))) DO NOTHING RETURNING *",
        (name,),
    )
    if row is None:
        row = _one(conn, "SELECT * FROM organisations WHERE lower(name) = lower(%s)", (name,))
    return _record(Organisation, row)  # type: ignore[no-any-return]


def get_organisation(conn: Connection, org_id: uuid.UUID) -> Organisation | None:
    """The organisation with this id, or None."""
    row = _one(conn, "SELECT * FROM organisations WHERE id = %s", (org_id,))
    return None if row is None else _record(Organisation, row)


# --------------------------------------------------------------------------- users


def hash_password(password: str) -> str:
    """Argon2id hash (PHC string) of ``password``."""
    return _hasher.hash(password)


def _normalise_email(email: str) -> str:
    email = email.strip()
    if not (3 <= len(email) <= 254 and _EMAIL_RE.match(email)):
        raise ValueError(f"not an email address: {email!r}")
    return email


def create_user(
    conn: Connection, org_id: uuid.UUID, email: str, password: str, role: Role
) -> UserRecord:
    """Create a user of ``org_id``.

    Raises ValueError (bad email, unknown role, password shorter than
    :data:`PASSWORD_MIN_LENGTH`) and :class:`DuplicateEmail`.
    """
    email = _normalise_email(email)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"password must have at least {PASSWORD_MIN_LENGTH} characters")
    try:
        with conn.transaction():  # a savepoint: a duplicate leaves the caller's transaction usable
            row = _one(
                conn,
                "INSERT INTO users (org_id, email, password_hash, role) "
                "VALUES (%s, %s, %s, %s) RETURNING *",
                (org_id, email, hash_password(password), role),
            )
    except psycopg.errors.UniqueViolation:
        raise DuplicateEmail(f"a user with email {email} exists already") from None
    return _record(UserRecord, row)  # type: ignore[no-any-return]


def get_user_by_email(conn: Connection, email: str) -> UserRecord | None:
    """The user with this email (case-insensitive), or None."""
    row = _one(conn, "SELECT * FROM users WHERE lower(email) = lower(%s)", (email.strip(),))
    return None if row is None else _record(UserRecord, row)


def get_user(conn: Connection, user_id: uuid.UUID) -> UserRecord | None:
    """The user with this id, or None."""
    row = _one(conn, "SELECT * FROM users WHERE id = %s", (user_id,))
    return None if row is None else _record(UserRecord, row)


def verify_password(conn: Connection, email: str, password: str) -> UserRecord | None:
    """The user when ``password`` is theirs (and the account is enabled), else None.

    Takes as long for an unknown email as for a wrong password. Rehashes the stored hash
    when the Argon2 parameters have changed since it was made.
    """
    row = _one(conn, "SELECT * FROM users WHERE lower(email) = lower(%s)", (email.strip(),))
    stored = row["password_hash"] if row is not None else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled_at"] is not None:
        return None
    if _hasher.check_needs_rehash(stored):
        conn.execute(
            "UPDATE users SET password_hash = %s, updated_at = now() WHERE id = %s",
            (hash_password(password), row["id"]),
        )
    return _record(UserRecord, row)  # type: ignore[no-any-return]


def list_users(conn: Connection, org_name: str | None = None) -> list[tuple[UserRecord, str]]:
    """Every user (of organisation ``org_name`` when given) with its organisation's name,
    by organisation then email."""
    rows = conn.execute(
        "SELECT u.*, o.name AS org_name FROM users u JOIN organisations o ON o.id = u.org_id "
        "WHERE %(org)s::text IS NULL OR o.name = %(org)s ORDER BY o.name, lower(u.email)",
        {"org": org_name},
    ).fetchall()
    return [(_record(UserRecord, row), row["org_name"]) for row in rows]


def _update_user(conn: Connection, email: str, sql: str, params: tuple[Any, ...]) -> UserRecord:
    """Apply ``UPDATE users SET <sql>, updated_at = now()`` to the user with ``email``; raises
    :class:`NotFound` when there is none."""
    row = _one(
        conn,
        f"UPDATE users SET {sql}, updated_at = now() WHERE lower(email) = lower(%s) RETURNING *",
        (*params, email.strip()),
    )
    if row is None:
        raise NotFound(f"no user with email {email.strip()}")
    return _record(UserRecord, row)  # type: ignore[no-any-return]


def revoke_credentials(conn: Connection, user_id: uuid.UUID) -> None:
    """End every session and revoke every API token of ``user_id``."""
    conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user_id,),
    )
    conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user_id,),
    )


def set_user_disabled(conn: Connection, email: str, disabled: bool) -> UserRecord:
    """Disable (sign out everywhere, tokens revoked, no new sign-in) or enable a user; raises
    :class:`NotFound`."""
    sql = "disabled_at = COALESCE(disabled_at, now())" if disabled else "disabled_at = NULL"
    user = _update_user(conn, email, sql, ())
    if disabled:
        revoke_credentials(conn, user.id)
    return user


def set_user_role(conn: Connection, email: str, role: Role) -> UserRecord:
    """Change a user's role; raises ValueError for an unknown role and :class:`NotFound`."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return _update_user(conn, email, "role = %s", (role,))


def reset_password(conn: Connection, email: str, password: str) -> UserRecord:
    """Set a new password and end the user's sessions (tokens stay: they are not passwords);
    raises ValueError for a short password and :class:`NotFound`."""
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValueError(f"password must have at least {PASSWORD_MIN_LENGTH} characters")
    user = _update_user(conn, email, "password_hash = %s", (hash_password(password),))
    conn.execute(
        "UPDATE sessions SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user.id,),
    )
    return user


# --------------------------------------------------------------------------- API tokens


def create_token(conn: Connection, user_id: uuid.UUID, name: str = "") -> tuple[str, TokenRecord]:
    """Issue an API token for ``user_id``; returns ``(plaintext, record)``.

    The plaintext (``updog_`` + 43 URL-safe characters, 256 bits) is shown once and never
    stored: the table keeps its SHA-256 and the first :data:`TOKEN_DISPLAY_CHARS` characters.
    Raises :class:`NotFound` for an unknown user, ValueError for a name over 100 characters.
    """
    if len(name) > 100:
        raise ValueError("token name must be at most 100 characters")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with conn.transaction():
            row = _one(
                conn,
                "INSERT INTO api_tokens (user_id, name, token_hash, prefix) "
                "VALUES (%s, %s, %s, %s) RETURNING *",
                (user_id, name, _sha256(plaintext), plaintext[:TOKEN_DISPLAY_CHARS]),
            )
    except psycopg.errors.ForeignKeyViolation:
        raise NotFound(f"no user {user_id}") from None
    return plaintext, _record(TokenRecord, row)


def identity_for_token(conn: Connection, plaintext: str) -> Identity | None:
    """Who a bearer token belongs to, or None (unknown, revoked, expired, user disabled).

    Records the use in ``last_used_at`` (at most once a minute per token), in the same
    statement as the lookup: one round trip, atomic on its own (safe in autocommit).
    """
    if not _TOKEN_RE.match(plaintext):
        return None
    row = _one(
        conn,
        "WITH hit AS ("
        " SELECT t.id AS token_id, u.id AS user_id, u.org_id, u.role, u.email"
        " FROM api_tokens t JOIN users u ON u.id = t.user_id"
        " WHERE t.token_hash = %s AND t.revoked_at IS NULL"
        " AND (t.expires_at IS NULL OR t.expires_at > now()) AND u.disabled_at IS NULL"
        "), touched AS ("
        " UPDATE api_tokens SET last_used_at = now()"
        " WHERE id IN (SELECT token_id FROM hit)"
        " AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')"
        " RETURNING id"
        ") SELECT * FROM hit",
        (_sha256(plaintext),),
    )
    if row is None:
        return None
    return Identity(
        user_id=row["user_id"],
        org_id=row["org_id"],
        role=row["role"],
        email=row["email"],
        token_id=row["token_id"],
    )


single_statement(identity_for_token)


def list_tokens(conn: Connection, user_id: uuid.UUID) -> list[TokenRecord]:
    """The user's tokens, newest first, revoked ones included."""
    rows = conn.execute(
        "SELECT * FROM api_tokens WHERE user_id = %s ORDER BY created_at DESC, id", (user_id,)
    ).fetchall()
    return [_record(TokenRecord, r) for r in rows]


def revoke_token(
    conn: Connection, token_id: uuid.UUID, *, user_id: uuid.UUID | None = None
) -> bool:
    """Revoke a token (only ``user_id``'s when given). True when it was active until now;
    False when unknown or already revoked."""
    row = _one(
        conn,
        "UPDATE api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL "
        "AND (%s::uuid IS NULL OR user_id = %s::uuid) RETURNING id",
        (token_id, user_id, user_id),
    )
    return row is not None


# --------------------------------------------------------------------------- sessions


def create_session(
    conn: Connection,
    user_id: uuid.UUID,
    *,
    absolute_lifetime: timedelta = timedelta(days=7),
) -> tuple[str, uuid.UUID]:
    """Open a browser session; returns ``(secret for the cookie, session id)``. Only the
    secret's SHA-256 is stored; the session ends after ``absolute_lifetime`` at the latest."""
    secret = secrets.token_urlsafe(32)
    row = _one(
        conn,
        "INSERT INTO sessions (user_id, token_hash, expires_at) "
        "VALUES (%s, %s, now() + %s) RETURNING id",
        (user_id, _sha256(secret), absolute_lifetime),
    )
    conn.execute("UPDATE users SET last_login_at = now() WHERE id = %s", (user_id,))
    return secret, row["id"]


def identity_for_session(
    conn: Connection, secret: str, *, idle_timeout: timedelta = timedelta(hours=12)
) -> Identity | None:
    """Who a session cookie belongs to, or None (unknown, revoked, idle longer than
    ``idle_timeout``, past its absolute expiry, user disabled). Refreshes ``last_seen_at``."""
    if not 20 <= len(secret) <= 200:
        return None
    row = _one(
        conn,
        "UPDATE sessions s SET last_seen_at = now() FROM users u "
        "WHERE s.token_hash = %s AND u.id = s.user_id AND s.revoked_at IS NULL "
        "AND s.expires_at > now() AND s.last_seen_at > now() - %s AND u.disabled_at IS NULL "
        "RETURNING s.id AS session_id, u.id AS user_id, u.org_id, u.role, u.email",
        (_sha256(secret), idle_timeout),
    )
    if row is None:
        return None
    return Identity(
        user_id=row["user_id"],
        org_id=row["org_id"],
        role=row["role"],
        email=row["email"],
        session_id=row["session_id"],
    )


def revoke_session(conn: Connection, session_id: uuid.UUID) -> bool:
    """Sign a session out. True when it was active until now."""
    row = _one(
        conn,
        "UPDATE sessions SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL RETURNING id",
        (session_id,),
    )
    return row is not None


# --------------------------------------------------------------------------- funds

# Column names (migration 0002): ``funds.draft_version`` is the draft's revision,
# ``funds.published_version`` the *revision* that is published, and that revision's
# ``fund_versions.publication_number`` its published version number.
_FUND_SELECT = (
    "SELECT f.id, f.org_id, f.name, f.draft_version AS draft_revision, "
    "f.published_version AS published_revision, p.publication_number AS published_version, "
    "f.created_by, f.created_at, f.updated_at, v.spec, v.spec_hash "
    "FROM funds f JOIN fund_versions v ON v.fund_id = f.id AND v.version = f.draft_version "
    "LEFT JOIN fund_versions p ON p.fund_id = f.id AND p.version = f.published_version "
)


def _fund(row: Mapping[str, Any]) -> FundRecord:
    return FundRecord(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        status="published" if row["published_revision"] is not None else "draft",
        draft_revision=row["draft_revision"],
        published_version=row["published_version"],
        published_revision=row["published_revision"],
        spec=row["spec"],
        spec_hash=row["spec_hash"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _fund_name(name: str | None) -> str:
    name = (name or "").strip() or "Untitled fund"
    if len(name) > 200:
        raise ValueError("fund name must be at most 200 characters")
    return name


def create_fund(
    conn: Connection,
    org_id: uuid.UUID,
    user_id: uuid.UUID | None,
    name: str | None,
    spec_json: Mapping[str, Any],
) -> FundRecord:
    """Create a fund of ``org_id`` whose draft revision 1 holds ``spec_json``.

    ``name`` None or blank → "Untitled fund". Raises ValueError for a name over 200
    characters or a spec that is not a JSON object of finite numbers.
    """
    spec = dict(spec_json)
    digest = spec_hash(spec)
    # One statement (both rows or neither, even in autocommit), one round trip; the fund is
    # built from the two RETURNING rows, as _FUND_SELECT would read it back.
    row = _one(
        conn,
        "WITH f AS ("
        " INSERT INTO funds (org_id, created_by, name) VALUES (%s, %s, %s) RETURNING *"
        "), v AS ("
        " INSERT INTO fund_versions (fund_id, version, kind, spec, spec_hash, created_by)"
        " SELECT f.id, 1, 'draft', %s, %s, %s FROM f RETURNING spec, spec_hash"
        ") SELECT f.id, f.org_id, f.name, f.draft_version AS draft_revision,"
        " NULL::integer AS published_revision, NULL::integer AS published_version,"
        " f.created_by, f.created_at, f.updated_at, v.spec, v.spec_hash FROM f, v",
        (org_id, user_id, _fund_name(name), Jsonb(spec), digest, user_id),
    )
    return _fund(row)


single_statement(create_fund)


def get_fund(conn: Connection, org_id: uuid.UUID, fund_id: uuid.UUID) -> FundRecord | None:
    """The fund with its current draft, or None when missing or another organisation's."""
    row = _one(conn, _FUND_SELECT + "WHERE f.id = %s AND f.org_id = %s", (fund_id, org_id))
    return None if row is None else _fund(row)


single_statement(get_fund)


def _encode_cursor(created_at: datetime, fund_id: uuid.UUID) -> str:
    raw = json.dumps(["f", created_at.isoformat(), str(fund_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, created_at, fund_id = json.loads(raw)
        if kind != "f":
            raise ValueError(kind)
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError("naive timestamp")
        return when, uuid.UUID(fund_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("invalid cursor") from None


def list_funds(
    conn: Connection, org_id: uuid.UUID, limit: int = 50, cursor: str | None = None
) -> FundPage:
    """One page of the organisation's funds, newest first (keyset pagination, stable while
    funds are added). Pass the returned ``next_cursor`` to get the next page.

    Raises ValueError when ``limit`` is outside 1..:data:`MAX_PAGE_SIZE` and
    :class:`InvalidCursor` for a cursor this function did not produce.
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be 1..{MAX_PAGE_SIZE}")
    if cursor:
        created_at, last_id = _decode_cursor(cursor)
        rows = conn.execute(
            _FUND_SELECT + "WHERE f.org_id = %s AND (f.created_at, f.id) < (%s, %s) "
            "ORDER BY f.created_at DESC, f.id DESC LIMIT %s",
            (org_id, created_at, last_id, limit + 1),
        ).fetchall()
    else:
        rows = conn.execute(
            _FUND_SELECT + "WHERE f.org_id = %s ORDER BY f.created_at DESC, f.id DESC LIMIT %s",
            (org_id, limit + 1),
        ).fetchall()
    items = [_fund(r) for r in rows[:limit]]
    next_cursor = _encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return FundPage(items=items, next_cursor=next_cursor)


single_statement(list_funds)


def _lock_fund(conn: Connection, org_id: uuid.UUID, fund_id: uuid.UUID) -> Mapping[str, Any]:
    row = _one(
        conn,
        "SELECT id, draft_version AS draft_revision, published_version AS published_revision "
        "FROM funds WHERE id = %s AND org_id = %s FOR UPDATE",
        (fund_id, org_id),
    )
    if row is None:
        raise NotFound(f"no fund {fund_id}")
    return row  # type: ignore[no-any-return]


def replace_draft(
    conn: Connection,
    org_id: uuid.UUID,
    fund_id: uuid.UUID,
    spec_json: Mapping[str, Any],
    expected_revision: int,
    *,
    user_id: uuid.UUID | None = None,
    name: str | None = None,
) -> FundRecord:
    """Replace the draft with ``spec_json`` as a new revision ``expected_revision + 1``
    (published version numbers are not touched: they count publications only).

    The fund row is locked (``SELECT … FOR UPDATE``) so two concurrent edits of the same
    revision cannot both win. ``name`` (when given) renames the fund. Raises
    :class:`NotFound` and :class:`StaleVersion` (the draft is no longer at
    ``expected_revision``).
    """
    fund = _lock_fund(conn, org_id, fund_id)
    if fund["draft_revision"] != expected_revision:
        raise StaleVersion(expected_revision, fund["draft_revision"])
    spec = dict(spec_json)
    new_revision = expected_revision + 1
    conn.execute(
        "INSERT INTO fund_versions (fund_id, version, kind, spec, spec_hash, created_by) "
        "VALUES (%s, %s, 'draft', %s, %s, %s)",
        (fund_id, new_revision, Jsonb(spec), spec_hash(spec), user_id),
    )
    conn.execute(
        "UPDATE funds SET draft_version = %s, updated_at = now(), "
        "name = COALESCE(%s, name) WHERE id = %s",
        (new_revision, _fund_name(name) if name is not None else None, fund_id),
    )
    record = get_fund(conn, org_id, fund_id)
    assert record is not None
    return record


def publish(
    conn: Connection,
    org_id: uuid.UUID,
    fund_id: uuid.UUID,
    expected_revision: int,
    *,
    user_id: uuid.UUID | None = None,
) -> FundRecord:
    """Publish the current draft revision (the caller has validated it) as the fund's next
    published version: 1 for the first publication, then 2, 3 …

    The revision's row becomes ``kind = 'published'`` and the database numbers it (trigger
    ``updog_number_publication``, migration 0002; the fund row is locked first, so numbers
    are handed out in order); the fund's published revision points at it. Publishing the
    revision already published changes nothing. Raises :class:`NotFound` and
    :class:`StaleVersion`.
    """
    fund = _lock_fund(conn, org_id, fund_id)
    if fund["draft_revision"] != expected_revision:
        raise StaleVersion(expected_revision, fund["draft_revision"])
    if fund["published_revision"] != expected_revision:
        conn.execute(
            "UPDATE fund_versions SET kind = 'published', published_at = now(), "
            "published_by = %s WHERE fund_id = %s AND version = %s",
            (user_id, fund_id, expected_revision),
        )
        conn.execute(
            "UPDATE funds SET published_version = %s, updated_at = now() WHERE id = %s",
            (expected_revision, fund_id),
        )
    record = get_fund(conn, org_id, fund_id)
    assert record is not None
    return record


def get_spec(
    conn: Connection,
    org_id: uuid.UUID,
    fund_id: uuid.UUID,
    which: Literal["published", "draft"] = "published",
) -> FundVersion | None:
    """The published (default) revision of a fund, or its current draft.

    None when the fund is missing or another organisation's; raises :class:`NotPublished`
    when ``which="published"`` and the fund was never published.
    """
    if which not in ("published", "draft"):
        raise ValueError("which must be 'published' or 'draft'")
    column = "published_version" if which == "published" else "draft_version"
    row = _one(
        conn,
        f"SELECT f.{column} AS wanted, v.* FROM funds f "
        f"LEFT JOIN fund_versions v ON v.fund_id = f.id AND v.version = f.{column} "
        "WHERE f.id = %s AND f.org_id = %s",
        (fund_id, org_id),
    )
    if row is None:
        return None
    if row["wanted"] is None:
        raise NotPublished(f"fund {fund_id} has no published version")
    return FundVersion(
        id=row["id"],
        fund_id=row["fund_id"],
        revision=row["version"],
        published_version=row["publication_number"],
        kind=row["kind"],
        spec=row["spec"],
        spec_hash=row["spec_hash"],
        created_at=row["created_at"],
        published_at=row["published_at"],
    )


# --------------------------------------------------------------------------- pending edits


def set_pending_edits(
    conn: Connection,
    org_id: uuid.UUID,
    fund_id: uuid.UUID,
    user_id: uuid.UUID,
    step: str,
    held: list[str],
    texts: Mapping[str, str],
) -> None:
    """Keep a user's pending edits of a wizard step of a fund (replacing earlier ones), or
    forget them when ``held`` is empty. Raises :class:`NotFound` when keeping edits of a
    fund that is missing or another organisation's."""
    if not held:
        conn.execute(
            "DELETE FROM wizard_pending_edits p USING funds f "
            "WHERE p.fund_id = f.id AND f.id = %s AND f.org_id = %s "
            "AND p.user_id = %s AND p.step = %s",
            (fund_id, org_id, user_id, step),
        )
        return
    row = _one(
        conn,
        "INSERT INTO wizard_pending_edits (fund_id, user_id, step, held, texts) "
        "SELECT f.id, %s, %s, %s, %s FROM funds f WHERE f.id = %s AND f.org_id = %s "
        "ON CONFLICT (fund_id, user_id, step) DO UPDATE "
        "SET held = EXCLUDED.held, texts = EXCLUDED.texts, updated_at = now() "
        "RETURNING fund_id",
        (user_id, step, Jsonb(list(held)), Jsonb(dict(texts)), fund_id, org_id),
    )
    if row is None:
        raise NotFound(f"no fund {fund_id}")


single_statement(set_pending_edits)


def list_pending_edits(
    conn: Connection, org_id: uuid.UUID, fund_id: uuid.UUID, user_id: uuid.UUID
) -> dict[str, PendingEdits]:
    """A user's pending edits of a fund, by wizard step (empty for another organisation's
    fund)."""
    rows = conn.execute(
        "SELECT p.step, p.held, p.texts, p.updated_at FROM wizard_pending_edits p "
        "JOIN funds f ON f.id = p.fund_id "
        "WHERE p.fund_id = %s AND f.org_id = %s AND p.user_id = %s",
        (fund_id, org_id, user_id),
    ).fetchall()
    return {row["step"]: _record(PendingEdits, row) for row in rows}


single_statement(list_pending_edits)


# --------------------------------------------------------------------------- forecasts


def save_forecast(
    conn: Connection,
    fund_version_id: uuid.UUID,
    engine_version: str,
    spec_hash: str,
    result: Mapping[str, Any],
) -> ForecastRecord:
    """Store the forecast of a fund version by an engine version; stored results are
    immutable, so when one exists already (a concurrent request) that one is returned."""
    row = _one(
        conn,
        "INSERT INTO forecasts (fund_version_id, engine_version, spec_hash, result) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (fund_version_id, engine_version) DO NOTHING "
        "RETURNING *",
        (fund_version_id, engine_version, spec_hash, Jsonb(dict(result))),
    )
    if row is None:
        row = _one(
            conn,
            "SELECT * FROM forecasts WHERE fund_version_id = %s AND engine_version = %s",
            (fund_version_id, engine_version),
        )
    return _record(ForecastRecord, row)  # type: ignore[no-any-return]


def get_forecast(
    conn: Connection, org_id: uuid.UUID, fund_version_id: uuid.UUID, engine_version: str
) -> ForecastRecord | None:
    """The stored forecast of this fund version and engine version, or None (also when the
    version belongs to another organisation's fund)."""
    row = _one(
        conn,
        "SELECT fc.* FROM forecasts fc JOIN fund_versions v ON v.id = fc.fund_version_id "
        "JOIN funds f ON f.id = v.fund_id "
        "WHERE fc.fund_version_id = %s AND fc.engine_version = %s AND f.org_id = %s",
        (fund_version_id, engine_version, org_id),
    )
    return None if row is None else _record(ForecastRecord, row)


# --------------------------------------------------------------------------- simulations


def _simulation(row: Mapping[str, Any]) -> SimulationRecord:
    data = {name: row[name] for name in SimulationRecord.__dataclass_fields__}
    data["seed"] = int(data["seed"]) if isinstance(data["seed"], Decimal) else data["seed"]
    return SimulationRecord(**data)


def create_simulation(
    conn: Connection,
    org_id: uuid.UUID,
    fund_version: FundVersion,
    *,
    runs: int,
    seed: int,
    engine_version: str,
    user_id: uuid.UUID | None = None,
    params: Mapping[str, Any] | None = None,
    status: Literal["queued", "running"] = "queued",
) -> SimulationRecord:
    """Record a simulation of ``fund_version`` (from :func:`get_spec`, so already scoped to
    ``org_id``) with its provenance: engine version, spec hash, runs and seed (an int ≥ 0 of up
    to 128 bits). Raises ValueError for ``runs < 1`` or a negative seed."""
    if runs < 1:
        raise ValueError("runs must be ≥ 1")
    if seed < 0:
        raise ValueError("seed must be ≥ 0")
    row = _one(
        conn,
        "INSERT INTO simulations (org_id, fund_id, fund_version_id, created_by, runs, seed, "
        "params, status, engine_version, spec_hash, started_at) "
        "SELECT %s, f.id, %s, %s, %s, %s, %s, %s, %s, %s, "
        "CASE WHEN %s = 'running' THEN now() END "
        "FROM funds f WHERE f.id = %s AND f.org_id = %s RETURNING *",
        (
            org_id,
            fund_version.id,
            user_id,
            runs,
            Decimal(seed),
            Jsonb(dict(params or {})),
            status,
            engine_version,
            fund_version.spec_hash,
            status,
            fund_version.fund_id,
            org_id,
        ),
    )
    if row is None:
        raise NotFound(f"no fund {fund_version.fund_id}")
    return _simulation(row)


def get_simulation(
    conn: Connection, org_id: uuid.UUID, simulation_id: uuid.UUID
) -> SimulationRecord | None:
    """The simulation, or None when missing or another organisation's."""
    row = _one(
        conn, "SELECT * FROM simulations WHERE id = %s AND org_id = %s", (simulation_id, org_id)
    )
    return None if row is None else _simulation(row)


def list_simulations(
    conn: Connection, org_id: uuid.UUID, fund_id: uuid.UUID, *, limit: int = 10
) -> list[SimulationRecord]:
    """The fund's most recent simulations, newest first (``limit`` 1..100); another
    organisation's fund gives an empty list."""
    if not 1 <= limit <= 100:
        raise ValueError("limit must be in 1..100")
    rows = conn.execute(
        "SELECT * FROM simulations WHERE org_id = %s AND fund_id = %s "
        "ORDER BY created_at DESC, id DESC LIMIT %s",
        (org_id, fund_id, limit),
    ).fetchall()
    return [_simulation(row) for row in rows]


def _update_simulation(
    conn: Connection,
    org_id: uuid.UUID,
    simulation_id: uuid.UUID,
    assignments: str,
    params: tuple[Any, ...],
) -> SimulationRecord:
    row = _one(
        conn,
        f"UPDATE simulations SET {assignments} "
        "WHERE id = %s AND org_id = %s AND status IN ('queued', 'running') RETURNING *",
        (*params, simulation_id, org_id),
    )
    if row is None:
        raise NotFound(f"no unfinished simulation {simulation_id}")
    return _simulation(row)


def start_simulation(
    conn: Connection, org_id: uuid.UUID, simulation_id: uuid.UUID
) -> SimulationRecord:
    """queued → running. Raises :class:`NotFound` unless the simulation is unfinished."""
    return _update_simulation(
        conn,
        org_id,
        simulation_id,
        "status = 'running', started_at = COALESCE(started_at, now())",
        (),
    )


def set_simulation_progress(
    conn: Connection, org_id: uuid.UUID, simulation_id: uuid.UUID, progress: float
) -> SimulationRecord:
    """Record progress ∈ [0, 1] of an unfinished simulation."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError("progress must be within 0..1")
    return _update_simulation(conn, org_id, simulation_id, "progress = %s", (progress,))


def complete_simulation(
    conn: Connection, org_id: uuid.UUID, simulation_id: uuid.UUID, result: Mapping[str, Any]
) -> SimulationRecord:
    """Store the result: status succeeded, progress 1. Raises :class:`NotFound` unless the
    simulation is unfinished (results are never overwritten)."""
    return _update_simulation(
        conn,
        org_id,
        simulation_id,
        "status = 'succeeded', progress = 1, result = %s, finished_at = now(), "
        "started_at = COALESCE(started_at, now())",
        (Jsonb(dict(result)),),
    )


def fail_simulation(
    conn: Connection, org_id: uuid.UUID, simulation_id: uuid.UUID, error: Mapping[str, Any]
) -> SimulationRecord:
    """Mark an unfinished simulation failed with ``error`` (e.g. ``{"code", "message"}``)."""
    return _update_simulation(
        conn,
        org_id,
        simulation_id,
        "status = 'failed', error = %s, finished_at = now()",
        (Jsonb(dict(error)),),
    )


def purge_expired_idempotency_keys(conn: Connection) -> int:
    """Delete the expired records of :mod:`updog.protection.idempotency`; return how many."""
    cur = conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= now()")
    return int(cur.rowcount or 0)
