"""Service settings: one immutable object, read once from the environment.

``Settings.from_env()`` is the only place that reads environment variables; everything else
receives a ``Settings`` (or a value taken from it). Building ``Settings(...)`` directly is the
way tests choose their own values. A bad value (``UPDOG_PORT=abc``) raises
:class:`SettingsError` at start-up with the variable's name, never later.

Environment variables (all optional):

=================================  =======================================================
``DATABASE_URL``                   external PostgreSQL (``postgresql://user@host:5432/db``);
                                   unset → the embedded server under ``data_dir/pgdata``
``UPDOG_DATA_DIR``                 data folder (embedded database, secret key); default
                                   ``platformdirs.user_data_dir("updog")``
``REDIS_URL``                      Redis for rate limits and caches; unset → in process
``UPDOG_SECRET_KEY``               signing secret for sessions and CSRF; unset → generated
                                   once and kept in ``data_dir/secret_key`` (mode 0600)
``UPDOG_HOST`` / ``UPDOG_PORT``    listen address of ``updog serve`` (127.0.0.1:8000)
``UPDOG_SYNC_RUNS_LIMIT``          largest simulation answered synchronously (20000)
``UPDOG_MAX_BODY_BYTES``           request body cap in bytes (1000000)
``UPDOG_DB_POOL_MIN_SIZE`` …       pool tuning, see the fields below
=================================  =======================================================
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

__all__ = ["Settings", "SettingsError", "default_data_dir", "load_or_create_secret_key"]

#: File (inside the data folder) holding the generated signing secret.
SECRET_KEY_FILE = "secret_key"


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def default_data_dir() -> Path:
    """The per-user data folder, e.g. ``~/.local/share/updog`` on Linux."""
    return Path(platformdirs.user_data_dir("updog", appauthor=False))


def _ephemeral_secret() -> str:
    return secrets.token_urlsafe(48)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service can be configured with.

    Sizes are counts, times are seconds unless the name says ``_ms`` (milliseconds).
    """

    #: External PostgreSQL URL (``postgresql://…``; ``postgresql+psycopg://`` is accepted too).
    #: ``None`` → start or join the embedded server under ``data_dir / "pgdata"``.
    database_url: str | None = field(default=None, repr=False)
    #: Folder for the embedded database (``pgdata/``) and the generated ``secret_key``.
    data_dir: Path = field(default_factory=default_data_dir)
    #: Redis URL for shared rate limits and caches; ``None`` → in-process (single process only).
    redis_url: str | None = field(default=None, repr=False)
    #: Signing secret for sessions and CSRF tokens. ``Settings()`` built directly gets a random
    #: key that lives as long as the object; ``from_env`` reads ``UPDOG_SECRET_KEY`` or the key
    #: persisted in the data folder.
    secret_key: str = field(default_factory=_ephemeral_secret, repr=False)
    #: Address ``updog serve`` listens on.
    host: str = "127.0.0.1"
    #: Port ``updog serve`` listens on (1..65535).
    port: int = 8000
    #: Largest number of simulation runs answered synchronously; above it → a job (or 422).
    sync_runs_limit: int = 20_000
    #: Largest accepted request body, in bytes (SPEC §1: 1 MB).
    max_body_bytes: int = 1_000_000
    #: Connections the pool keeps open even when idle.
    db_pool_min_size: int = 1
    #: Most connections the pool opens (PostgreSQL's default max_connections is 100).
    db_pool_max_size: int = 10
    #: Seconds a request waits for a free connection before failing (``PoolTimeout``).
    db_pool_timeout: float = 10.0
    #: Most requests queued for a connection; more are refused at once (0 = unbounded).
    db_pool_max_waiting: int = 100
    #: Seconds after which a connection is replaced (spreads reconnects, picks up failover).
    db_pool_max_lifetime: float = 3600.0
    #: Seconds an idle connection above ``db_pool_min_size`` is kept.
    db_pool_max_idle: float = 600.0
    #: Seconds allowed to establish one connection.
    db_connect_timeout: float = 5.0
    #: Server-side ``statement_timeout`` for pooled connections, milliseconds (0 = none).
    db_statement_timeout_ms: int = 30_000
    #: Server-side ``idle_in_transaction_session_timeout``, milliseconds (0 = none).
    db_idle_in_transaction_timeout_ms: int = 60_000

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise SettingsError(f"port must be 1..65535, got {self.port}")
        if self.sync_runs_limit < 1:
            raise SettingsError(f"sync_runs_limit must be ≥ 1, got {self.sync_runs_limit}")
        if self.max_body_bytes < 1:
            raise SettingsError(f"max_body_bytes must be ≥ 1, got {self.max_body_bytes}")
        if not 0 <= self.db_pool_min_size <= self.db_pool_max_size or self.db_pool_max_size < 1:
            raise SettingsError(
                "need 0 ≤ db_pool_min_size ≤ db_pool_max_size and db_pool_max_size ≥ 1, got "
                f"{self.db_pool_min_size}..{self.db_pool_max_size}"
            )
        for name in ("db_pool_timeout", "db_pool_max_lifetime", "db_pool_max_idle"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "db_pool_max_waiting",
            "db_statement_timeout_ms",
            "db_idle_in_transaction_timeout_ms",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.db_connect_timeout <= 0:
            raise SettingsError(f"db_connect_timeout must be > 0, got {self.db_connect_timeout}")
        if not self.secret_key:
            raise SettingsError("secret_key must not be empty")

    @property
    def pgdata(self) -> Path:
        """Folder of the embedded PostgreSQL cluster (``data_dir / "pgdata"``)."""
        return self.data_dir / "pgdata"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build the settings from ``env`` (default ``os.environ``), then apply ``overrides``.

        Creates the data folder (mode 0700) and, when no ``UPDOG_SECRET_KEY`` is given, the
        persisted secret key. Raises :class:`SettingsError` naming the bad variable.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for name, var in _ENV_NAMES.items():
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                continue
            values[name] = _parse(var, raw.strip(), _PARSERS.get(str(types[name]), str))
        values.update(overrides)
        data_dir = Path(values.get("data_dir") or default_data_dir()).expanduser()
        values["data_dir"] = data_dir
        if "secret_key" not in values:
            values["secret_key"] = load_or_create_secret_key(data_dir)
        return cls(**values)


def load_or_create_secret_key(data_dir: Path) -> str:
    """Return the secret kept in ``data_dir/secret_key``, creating it (mode 0600) if missing.

    Safe when several processes start at once: the file appears atomically (written to a
    private temporary name, then hard-linked into place), so every process reads the same key.
    """
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        tmp = data_dir / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text().strip()
    if not key:
        raise SettingsError(f"{path} is empty; delete it to generate a new key")
    return key


def _parse(var: str, raw: str, parser: Callable[[str], Any]) -> Any:
    try:
        return parser(raw)
    except ValueError as exc:
        raise SettingsError(f"{var}={raw!r} is not valid: {exc}") from None


def _finite_float(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


_ENV_NAMES: dict[str, str] = {
    "database_url": "DATABASE_URL",
    "data_dir": "UPDOG_DATA_DIR",
    "redis_url": "REDIS_URL",
    "secret_key": "UPDOG_SECRET_KEY",
    "host": "UPDOG_HOST",
    "port": "UPDOG_PORT",
    "sync_runs_limit": "UPDOG_SYNC_RUNS_LIMIT",
    "max_body_bytes": "UPDOG_MAX_BODY_BYTES",
    "db_pool_min_size": "UPDOG_DB_POOL_MIN_SIZE",
    "db_pool_max_size": "UPDOG_DB_POOL_MAX_SIZE",
    "db_pool_timeout": "UPDOG_DB_POOL_TIMEOUT",
    "db_pool_max_waiting": "UPDOG_DB_POOL_MAX_WAITING",
    "db_pool_max_lifetime": "UPDOG_DB_POOL_MAX_LIFETIME",
    "db_pool_max_idle": "UPDOG_DB_POOL_MAX_IDLE",
    "db_connect_timeout": "UPDOG_DB_CONNECT_TIMEOUT",
    "db_statement_timeout_ms": "UPDOG_DB_STATEMENT_TIMEOUT_MS",
    "db_idle_in_transaction_timeout_ms": "UPDOG_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS",
}

#: Field annotation (a string, because of ``from __future__ import annotations``) → parser.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": _finite_float,
    "Path": Path,
    "str | None": str,
}
