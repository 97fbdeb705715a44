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
``UPDOG_DB_POOL_MIN_SIZE`` …       pool tuning, see the fields below; also
                                   ``UPDOG_DB_STATEMENT_TIMEOUT_MS``, ``_LOCK_TIMEOUT_MS``,
                                   ``_IDLE_IN_TRANSACTION_TIMEOUT_MS``, ``_OPERATION_TIMEOUT``,
                                   ``_SLOW_QUERY_MS`` (all ``UPDOG_DB_…``)
``UPDOG_PG_BREAKER_*``             the ``pg`` circuit breaker (``_FAILURE_RATE``,
                                   ``_SLOW_CALL_SECONDS``, ``_WINDOW``, ``_MINIMUM_CALLS``,
                                   ``_WAIT_SECONDS``, ``_HALF_OPEN_CALLS``)
``UPDOG_SHUTDOWN_GRACE_PERIOD``    seconds to drain on SIGTERM before exiting 0 (30)
``UPDOG_READYZ_CACHE_SECONDS``     seconds a ``/readyz`` result is reused (1)
``UPDOG_EXECUTOR``                 where a job's simulation blocks run: ``auto`` (Dask when
                                   ``DASK_SCHEDULER_ADDRESS`` is set, else ``process``),
                                   ``local`` (one core), ``process`` (local process pool),
                                   ``dask``
``DASK_SCHEDULER_ADDRESS``         Dask distributed scheduler, e.g. ``tcp://10.0.0.5:8786``
``UPDOG_INPROCESS_WORKER``         run a job worker inside ``updog serve``: ``auto`` (only
                                   on the embedded database), ``on``, ``off``
``UPDOG_JOB_LEASE_SECONDS`` …      job queue and compute limits: ``_LEASE_SECONDS`` (30),
                                   ``UPDOG_JOB_MAX_ATTEMPTS`` (3), ``UPDOG_JOB_POLL_INTERVAL``
                                   (1.0), ``UPDOG_JOB_TIME_LIMIT`` (3600 s),
                                   ``UPDOG_JOB_MEMORY_LIMIT_MB`` (2048)
``UPDOG_THROTTLE_PROFILE``         ``standard`` (rate limits and load shedding on; the
                                   default of ``from_env``) or ``off`` (never 429/503 for
                                   load; the default of ``Settings()`` built in code, which
                                   is what tests and benchmarks use)
``UPDOG_RATE_LIMIT_API`` …         tier limits as ``COUNT/SECONDS``: ``_API`` (100/60),
                                   ``_SIMULATION`` (10/3600), ``_AUTH`` (5/300)
``UPDOG_TRUSTED_PROXIES``          comma-separated IPs/CIDRs whose ``X-Forwarded-For`` and
                                   ``X-Forwarded-Proto`` are believed (none)
``UPDOG_SHED_*``                   load-shedding thresholds, see the fields below
``UPDOG_IDEMPOTENCY_TTL``          seconds an ``Idempotency-Key`` is remembered (86400)
``UPDOG_FAULTS``                   engine fault injection for guard tests (unset: none)
=================================  =======================================================
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

__all__ = [
    "Settings",
    "SettingsError",
    "default_data_dir",
    "load_or_create_secret_key",
    "parse_networks",
    "parse_rate",
]

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
    # -- database pool (updog.store.db; SPEC §6 practice 7) ------------------------------
    # Reasoning for the defaults: requests hold a connection for a few milliseconds (no
    # transaction spans an engine run), so a small pool serves many requests; PostgreSQL
    # degrades past a few connections per core, and several instances share its default
    # max_connections = 100 — hence 10 per process. Waiting is bounded in both count and time
    # so that an overloaded or unreachable database produces a quick 503, never a pile-up.
    #: Connections the pool keeps open even when idle (one warm connection: the first
    #: request after a quiet spell does not pay the connect).
    db_pool_min_size: int = 1
    #: Most connections the pool opens (PostgreSQL's default max_connections is 100).
    db_pool_max_size: int = 10
    #: Seconds a request waits for a free connection before failing (``PoolTimeout`` → 503
    #: with ``Retry-After``). A healthy wait is milliseconds; a second of queueing means the
    #: pool is saturated or the database is unreachable, and the caller is better served by
    #: a quick 503 (and the ``pg`` breaker by a quick verdict) than by a request that hangs.
    db_pool_timeout: float = 1.0
    #: Most requests queued for a connection; more are refused at once (503, counted in
    #: ``updog_db_pool_acquire_failures_total{reason="queue_full"}``; 0 = unbounded). 100
    #: waiters at ~5 ms each drain in well under the acquire timeout.
    db_pool_max_waiting: int = 100
    #: Seconds after which a connection is replaced (spreads reconnects, picks up failover).
    db_pool_max_lifetime: float = 3600.0
    #: Seconds an idle connection above ``db_pool_min_size`` is kept.
    db_pool_max_idle: float = 600.0
    #: Seconds allowed to establish one connection (the pool connects in the background:
    #: a request waits ``db_pool_timeout`` at most).
    db_connect_timeout: float = 5.0
    #: Server-side ``statement_timeout`` for pooled connections, milliseconds (0 = none).
    #: Set per connection at connect time, it overrides a per-role default; 0 leaves the
    #: role's (``ALTER ROLE updog SET statement_timeout = …``) in force.
    db_statement_timeout_ms: int = 30_000
    #: Server-side ``idle_in_transaction_session_timeout``, milliseconds (0 = none): a
    #: transaction left open by a stuck client releases its locks after this long.
    db_idle_in_transaction_timeout_ms: int = 60_000
    #: Server-side ``lock_timeout``, milliseconds (0 = none): a request waiting this long for
    #: a lock another transaction holds gives up (503 ``DATABASE_CONTENTION`` with
    #: ``Retry-After``) instead of queueing every later request behind it.
    db_lock_timeout_ms: int = 5_000
    #: Seconds one ``Database.connection()`` block may last before it is cancelled from the
    #: client side (server cancel, then the socket is shut down; 0 = no limit). The backstop
    #: behind ``statement_timeout`` for a network that went silent: statement_timeout + 5 s.
    db_operation_timeout: float = 35.0
    #: Statements at least this long are logged as ``slow_query`` (literals and parameters
    #: redacted) and counted, milliseconds.
    db_slow_query_ms: int = 500
    # -- the ``pg`` circuit breaker (updog.resilience; SPEC §6 practice 2) ----------------
    # It judges the last ``pg_breaker_window`` calls once ``pg_breaker_minimum_calls`` are in:
    # with the defaults, 3 failures in 5 calls during an outage open it in about one acquire
    # timeout, and a recovered database is back in rotation ``pg_breaker_wait_seconds`` later
    # (plus 3 trial calls) — well inside the 15 s recovery target.
    #: Failure rate (0..1] at or above which the breaker opens.
    pg_breaker_failure_rate: float = 0.5
    #: A call at least this long counts as slow; the breaker opens when every call in the
    #: window is slow (slow-call rate 100 %).
    pg_breaker_slow_call_seconds: float = 10.0
    #: Calls in the sliding window.
    pg_breaker_window: int = 20
    #: Calls the window must hold before the breaker judges.
    pg_breaker_minimum_calls: int = 5
    #: Seconds OPEN (503 with ``Retry-After`` = the remaining wait) before trial calls.
    pg_breaker_wait_seconds: float = 5.0
    #: Trial calls in HALF_OPEN.
    pg_breaker_half_open_calls: int = 3
    # -- probes and shutdown (SPEC §6 practice 4) -----------------------------------------
    #: Seconds ``updog serve`` gives in-flight requests (and the running job) to finish after
    #: SIGTERM/SIGINT before it closes what is left and exits 0.
    shutdown_grace_period: float = 30.0
    #: Seconds a ``/readyz`` result is reused (it probes the database; draining is never
    #: cached). Probes every few seconds from several balancers cost one query per second.
    readyz_cache_seconds: float = 1.0
    #: Seconds a resolved bearer token (token → identity, or "unknown") is remembered in
    #: process, shared by authentication and the rate-limit identity keys (0 = no cache: every
    #: request asks the database). Bound: a token revoked or expired elsewhere (``updog tokens
    #: revoke``, another instance) is refused by this process within this many seconds, and
    #: so is the token of a disabled user. Unknown tokens are remembered as unknown for as
    #: long. Saves the database round trip of authentication on most requests.
    auth_cache_seconds: float = 5.0
    # -- jobs and compute (updog.jobs; SPEC §5.3, §6 practice 12) --------------------------
    #: Seconds a worker's claim on a running job lasts without a heartbeat (heartbeats come
    #: every third of it). A worker that dies loses its job after at most this long; the job
    #: is then retried by another worker.
    job_lease_seconds: float = 30.0
    #: Attempts a job gets (a lost worker or a crashed compute process costs one).
    job_max_attempts: int = 3
    #: Seconds an idle worker waits between looks at the queue.
    job_poll_interval: float = 1.0
    #: Wall-clock limit of one job's compute, seconds; beyond it the job fails with
    #: ``TIME_LIMIT_EXCEEDED`` (not retried: it would run out of time again).
    job_time_limit: float = 3600.0
    #: Memory limit of one job's compute process and its pool, MiB (resident memory, plus a
    #: data-segment rlimit); beyond it the job fails with ``MEMORY_LIMIT_EXCEEDED``.
    job_memory_limit_mb: int = 2048
    #: Where a job's blocks run: ``auto`` (``dask`` when ``dask_scheduler_address`` is set,
    #: else ``process``), ``local`` (the compute process alone), ``process`` (a local pool of
    #: one process per CPU), ``dask`` (the cluster at ``dask_scheduler_address``).
    executor: str = "auto"
    #: Address of a Dask distributed scheduler (``tcp://host:8786``); see ``executor``.
    dask_scheduler_address: str | None = None
    #: Run a job worker inside ``updog serve``: ``auto`` (only on the embedded database, the
    #: single-machine default), ``on`` or ``off`` (run ``updog worker`` processes instead).
    inprocess_worker: str = "auto"
    # -- traffic protection (updog.protection; SPEC §6 practices 1, 3, 5) ------------------
    #: ``"standard"``: rate limits and load shedding enforced. ``"off"``: neither ever
    #: refuses a request (headers, idempotency and dedupe still work). ``from_env`` defaults
    #: to ``"standard"``; ``Settings()`` built in code defaults to ``"off"`` so test suites
    #: and benchmarks are never throttled unless they ask to be.
    throttle_profile: str = "off"
    #: Tier ``api`` (every ``/api`` request): ``COUNT/SECONDS`` per identity.
    rate_limit_api: str = "100/60"
    #: Tier ``simulation`` (``POST …/simulations``), on top of ``api``.
    rate_limit_simulation: str = "10/3600"
    #: Tier ``auth`` (``POST /api/v1/auth/login``), on top of ``api``; keyed by client address.
    rate_limit_auth: str = "30/300"
    #: Sign-in attempts per account (``COUNT/SECONDS``), on top of ``rate_limit_auth`` per
    #: address (OWASP: both; the per-address limit is looser so that one attacker behind a
    #: shared proxy cannot lock everyone out).
    rate_limit_auth_account: str = "5/300"
    #: Comma-separated addresses/CIDRs of reverse proxies whose forwarded headers are trusted.
    trusted_proxies: str = ""
    #: Prefix of every Redis key the service writes (rate-limit windows, single-flight).
    redis_key_prefix: str = "updog"
    #: Seconds a Redis operation may take before it counts as "Redis down".
    redis_timeout: float = 0.5
    #: Seconds the ``redis`` circuit breaker stays OPEN after Redis failed, before one trial
    #: call (see :mod:`updog.resilience.redis`): the bound on how long a recovered Redis goes
    #: unused, and how often a dead one is tried.
    redis_breaker_wait_seconds: float = 5.0
    #: Bearer token ``/metrics`` demands (unset: open — loopback by default and no personal
    #: data in it; set it, or keep ``/metrics`` off the public route, when the instance is
    #: reachable from elsewhere).
    metrics_token: str | None = field(default=None, repr=False)
    #: Event-loop lag is sustained pressure once the p90 of the lag samples of the last
    #: ``shed_lag_window_seconds`` is above this (ms; 0 = lag is not judged). Pressure sheds
    #: only above ``shed_in_flight_floor`` (see :mod:`updog.protection.shedding`).
    shed_loop_lag_ms: int = 500
    #: The lag judgement ends only when that p90 falls below this (ms; below
    #: ``shed_loop_lag_ms``: the hysteresis that keeps it from flickering at the threshold).
    shed_loop_lag_exit_ms: int = 250
    #: Seconds of lag samples judged. Sustained means at least one sample in ten of this
    #: window was late; one stall is one sample, so a single slow call never counts.
    shed_lag_window_seconds: float = 5.0
    #: Pressure (lag, pool waiters, memory) sheds only while more requests than this are in
    #: flight: refusing the only few users of an instance relieves nothing, so one person on a
    #: busy machine is always served.
    shed_in_flight_floor: int = 8
    #: Shed while more requests than this are in flight in this process (0 = off).
    shed_max_in_flight: int = 256
    #: Shed while more requests than this wait for a database connection (0 = off).
    shed_max_db_waiters: int = 20
    #: Shed while the process's resident memory exceeds this many MiB (0 = off).
    shed_max_rss_mb: int = 0
    #: ``Retry-After`` seconds sent with a shed request's 503.
    shed_retry_after: int = 2
    #: Seconds an ``Idempotency-Key`` and its stored response are kept (IETF draft: 24 h).
    idempotency_ttl: int = 86_400
    #: Engine fault injection, ``point:kind[=value],...`` (:mod:`updog.model.faults`), for the
    #: guard tests only; empty (the default) injects nothing.
    faults: str = ""

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
            "db_lock_timeout_ms",
            "db_slow_query_ms",
            "db_operation_timeout",
            "readyz_cache_seconds",
            "auth_cache_seconds",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if self.db_connect_timeout <= 0:
            raise SettingsError(f"db_connect_timeout must be > 0, got {self.db_connect_timeout}")
        if not 0 < self.pg_breaker_failure_rate <= 1:
            raise SettingsError(
                f"pg_breaker_failure_rate must be in (0, 1], got {self.pg_breaker_failure_rate}"
            )
        for name in ("pg_breaker_slow_call_seconds", "pg_breaker_wait_seconds"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 1 <= self.pg_breaker_minimum_calls <= self.pg_breaker_window:
            raise SettingsError(
                "need 1 ≤ pg_breaker_minimum_calls ≤ pg_breaker_window, got "
                f"{self.pg_breaker_minimum_calls} and {self.pg_breaker_window}"
            )
        if self.pg_breaker_half_open_calls < 1:
            raise SettingsError(
                f"pg_breaker_half_open_calls must be ≥ 1, got {self.pg_breaker_half_open_calls}"
            )
        if self.shutdown_grace_period <= 0:
            raise SettingsError(
                f"shutdown_grace_period must be > 0, got {self.shutdown_grace_period}"
            )
        if not self.secret_key:
            raise SettingsError("secret_key must not be empty")
        for name in ("job_lease_seconds", "job_poll_interval", "job_time_limit"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise SettingsError(f"{name} must be > 0, got {value}")
        if self.job_max_attempts < 1:
            raise SettingsError(f"job_max_attempts must be ≥ 1, got {self.job_max_attempts}")
        if self.job_memory_limit_mb < 16:
            raise SettingsError(f"job_memory_limit_mb must be ≥ 16, got {self.job_memory_limit_mb}")
        if self.executor not in EXECUTORS:
            raise SettingsError(
                f"executor must be one of {sorted(EXECUTORS)}, got {self.executor!r}"
            )
        if self.executor == "dask" and not self.dask_scheduler_address:
            raise SettingsError("executor 'dask' needs dask_scheduler_address")
        if self.inprocess_worker not in ("auto", "on", "off"):
            raise SettingsError(
                f"inprocess_worker must be auto, on or off, got {self.inprocess_worker!r}"
            )
        if self.throttle_profile not in THROTTLE_PROFILES:
            raise SettingsError(
                f"throttle_profile must be one of {sorted(THROTTLE_PROFILES)}, "
                f"got {self.throttle_profile!r}"
            )
        for name in (
            "rate_limit_api",
            "rate_limit_simulation",
            "rate_limit_auth",
            "rate_limit_auth_account",
        ):
            try:
                parse_rate(getattr(self, name))
            except ValueError as exc:
                raise SettingsError(f"{name}: {exc}") from None
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise SettingsError(f"trusted_proxies: {exc}") from None
        try:
            from updog.model.faults import FaultPlan

            FaultPlan.parse(self.faults)
        except ValueError as exc:
            raise SettingsError(f"faults: {exc}") from None
        for name in (
            "shed_loop_lag_ms",
            "shed_loop_lag_exit_ms",
            "shed_in_flight_floor",
            "shed_max_in_flight",
            "shed_max_db_waiters",
            "shed_max_rss_mb",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be ≥ 0 (0 = off), got {getattr(self, name)}")
        if self.shed_loop_lag_ms and self.shed_loop_lag_exit_ms >= self.shed_loop_lag_ms:
            raise SettingsError(
                f"shed_loop_lag_exit_ms ({self.shed_loop_lag_exit_ms}) must be below "
                f"shed_loop_lag_ms ({self.shed_loop_lag_ms})"
            )
        window = self.shed_lag_window_seconds
        if not (math.isfinite(window) and window > 0):
            raise SettingsError(f"shed_lag_window_seconds must be > 0, got {window}")
        if self.shed_retry_after < 1:
            raise SettingsError(f"shed_retry_after must be ≥ 1, got {self.shed_retry_after}")
        if self.idempotency_ttl < 60:
            raise SettingsError(f"idempotency_ttl must be ≥ 60 s, got {self.idempotency_ttl}")
        if self.redis_timeout <= 0:
            raise SettingsError(f"redis_timeout must be > 0, got {self.redis_timeout}")
        wait = self.redis_breaker_wait_seconds
        if not (math.isfinite(wait) and wait > 0):
            raise SettingsError(f"redis_breaker_wait_seconds must be > 0, got {wait}")

    @property
    def throttled(self) -> bool:
        """True when rate limits and load shedding may refuse requests."""
        return self.throttle_profile == "standard"

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
        # The running service protects itself unless told otherwise (code-built settings,
        # as tests use, default to "off"; see ``throttle_profile``).
        values.setdefault("throttle_profile", "standard")
        data_dir = Path(values.get("data_dir") or default_data_dir()).expanduser()
        values["data_dir"] = data_dir
        if "secret_key" not in values:
            values["secret_key"] = load_or_create_secret_key(data_dir)
        return cls(**values)


#: Values of ``Settings.executor``.
EXECUTORS = frozenset({"auto", "local", "process", "dask"})

#: Values of ``Settings.throttle_profile``.
THROTTLE_PROFILES = frozenset({"standard", "off"})


def parse_rate(text: str) -> tuple[int, int]:
    """``"100/60"`` → ``(100, 60)``: a count per window of seconds, both ≥ 1."""
    count, sep, seconds = text.partition("/")
    try:
        parsed = int(count.strip()), int(seconds.strip())
    except ValueError:
        parsed = (0, 0)
    if not sep or parsed[0] < 1 or parsed[1] < 1:
        raise ValueError(f"expected COUNT/SECONDS with both ≥ 1 (e.g. 100/60), got {text!r}")
    return parsed


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``"10.0.0.0/8, ::1"`` → networks; an empty string → none."""
    return tuple(
        ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()
    )


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
    "db_lock_timeout_ms": "UPDOG_DB_LOCK_TIMEOUT_MS",
    "db_operation_timeout": "UPDOG_DB_OPERATION_TIMEOUT",
    "db_slow_query_ms": "UPDOG_DB_SLOW_QUERY_MS",
    "pg_breaker_failure_rate": "UPDOG_PG_BREAKER_FAILURE_RATE",
    "pg_breaker_slow_call_seconds": "UPDOG_PG_BREAKER_SLOW_CALL_SECONDS",
    "pg_breaker_window": "UPDOG_PG_BREAKER_WINDOW",
    "pg_breaker_minimum_calls": "UPDOG_PG_BREAKER_MINIMUM_CALLS",
    "pg_breaker_wait_seconds": "UPDOG_PG_BREAKER_WAIT_SECONDS",
    "pg_breaker_half_open_calls": "UPDOG_PG_BREAKER_HALF_OPEN_CALLS",
    "shutdown_grace_period": "UPDOG_SHUTDOWN_GRACE_PERIOD",
    "readyz_cache_seconds": "UPDOG_READYZ_CACHE_SECONDS",
    "auth_cache_seconds": "UPDOG_AUTH_CACHE_SECONDS",
    "job_lease_seconds": "UPDOG_JOB_LEASE_SECONDS",
    "job_max_attempts": "UPDOG_JOB_MAX_ATTEMPTS",
    "job_poll_interval": "UPDOG_JOB_POLL_INTERVAL",
    "job_time_limit": "UPDOG_JOB_TIME_LIMIT",
    "job_memory_limit_mb": "UPDOG_JOB_MEMORY_LIMIT_MB",
    "executor": "UPDOG_EXECUTOR",
    "dask_scheduler_address": "DASK_SCHEDULER_ADDRESS",
    "inprocess_worker": "UPDOG_INPROCESS_WORKER",
    "throttle_profile": "UPDOG_THROTTLE_PROFILE",
    "rate_limit_api": "UPDOG_RATE_LIMIT_API",
    "rate_limit_simulation": "UPDOG_RATE_LIMIT_SIMULATION",
    "rate_limit_auth": "UPDOG_RATE_LIMIT_AUTH",
    "rate_limit_auth_account": "UPDOG_RATE_LIMIT_AUTH_ACCOUNT",
    "redis_breaker_wait_seconds": "UPDOG_REDIS_BREAKER_WAIT_SECONDS",
    "metrics_token": "UPDOG_METRICS_TOKEN",
    "trusted_proxies": "UPDOG_TRUSTED_PROXIES",
    "redis_key_prefix": "UPDOG_REDIS_KEY_PREFIX",
    "redis_timeout": "UPDOG_REDIS_TIMEOUT",
    "shed_loop_lag_ms": "UPDOG_SHED_LOOP_LAG_MS",
    "shed_loop_lag_exit_ms": "UPDOG_SHED_LOOP_LAG_EXIT_MS",
    "shed_lag_window_seconds": "UPDOG_SHED_LAG_WINDOW_SECONDS",
    "shed_in_flight_floor": "UPDOG_SHED_IN_FLIGHT_FLOOR",
    "shed_max_in_flight": "UPDOG_SHED_MAX_IN_FLIGHT",
    "shed_max_db_waiters": "UPDOG_SHED_MAX_DB_WAITERS",
    "shed_max_rss_mb": "UPDOG_SHED_MAX_RSS_MB",
    "shed_retry_after": "UPDOG_SHED_RETRY_AFTER",
    "idempotency_ttl": "UPDOG_IDEMPOTENCY_TTL",
    "faults": "UPDOG_FAULTS",
}

#: Field annotation (a string, because of ``from __future__ import annotations``) → parser.
_PARSERS: dict[str, Callable[[str], Any]] = {
    "int": int,
    "float": _finite_float,
    "Path": Path,
    "str | None": str,
}
