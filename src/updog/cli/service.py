"""Service commands: ``serve``, ``worker``, ``migrate``, ``users``, ``tokens``.

Every command reads :class:`~updog.settings.Settings` from the environment and resolves the
database the same way ``updog serve`` does (``DATABASE_URL``, else the embedded server of
``UPDOG_DATA_DIR``), so ``updog users create`` run while ``updog serve`` runs reaches the same
data. Failures are one-line messages on stderr with exit status 1, never a traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from updog.settings import Settings
    from updog.store.db import Database

T = TypeVar("T")

#: ``module:callable`` building the ASGI app as ``factory(settings, database)``.
DEFAULT_APP_FACTORY = "updog.api.app:create_app"


# --------------------------------------------------------------------------- plumbing


def _settings(**overrides: Any) -> Settings:
    from updog.settings import Settings, SettingsError

    try:
        return Settings.from_env(**{k: v for k, v in overrides.items() if v is not None})
    except (SettingsError, OSError) as exc:
        raise click.ClickException(f"invalid settings: {exc}") from None


def _expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the environment's or the user's fault: shown as a message."""
    import psycopg
    import psycopg_pool
    import sqlalchemy.exc
    from alembic.util.exc import CommandError

    from updog.store.embedded import EmbeddedPostgresError
    from updog.store.repositories import StoreError

    return (
        psycopg.Error,
        psycopg_pool.PoolTimeout,
        sqlalchemy.exc.SQLAlchemyError,
        CommandError,
        EmbeddedPostgresError,
        StoreError,
        ValueError,
        OSError,
    )


@contextlib.contextmanager
def _reported(action: str) -> Iterator[None]:
    """Turn an expected error into ``Error: <action>: <message>`` and exit status 1."""
    try:
        yield
    except click.ClickException:
        raise
    except _expected_errors() as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(f"{action}: {message}") from None


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[Database]:
    """A migrated, pooled database for one CLI command (small pool, closed afterwards)."""
    from dataclasses import replace

    from updog.store.db import open_database

    small = replace(settings, db_pool_min_size=0, db_pool_max_size=2)
    with _reported("cannot open the database"):
        database = open_database(small)
    try:
        yield database
    finally:
        database.close()


def _with_conn(fn: Callable[..., T], *args: Any, action: str) -> T:
    settings = _settings()
    with _database(settings) as database, _reported(action), database.connection() as conn:
        return fn(conn, *args)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


# --------------------------------------------------------------------------- migrate


@click.group("migrate", invoke_without_command=True)
@click.option("--revision", default="head", show_default=True, help="Revision to upgrade to.")
@click.pass_context
def migrate_group(ctx: click.Context, revision: str) -> None:
    """Apply the database migrations (up to the newest by default).

    Safe to run while other processes start: migrations run under an advisory lock.
    """
    if ctx.invoked_subcommand is not None:
        return
    from updog.store import migrate

    _run_migration(lambda url: migrate.upgrade(url, revision), "upgrade failed")


@migrate_group.command("down")
@click.option(
    "--revision",
    default="-1",
    show_default=True,
    help='Revision to downgrade to: "-1" one step, "base" removes every table.',
)
def migrate_down(revision: str) -> None:
    """Revert migrations (one step by default)."""
    from updog.store import migrate

    _run_migration(lambda url: migrate.downgrade(url, revision), "downgrade failed")


@migrate_group.command("current")
def migrate_current() -> None:
    """Print the database's revision and the newest one."""
    _run_migration(lambda url: None, "cannot read the revision")


def _run_migration(action: Callable[[str], None], failure: str) -> None:
    from updog.store import migrate
    from updog.store.db import resolve_database_url

    settings = _settings()
    with _reported("cannot open the database"):
        url, handle = resolve_database_url(settings)
    try:
        with _reported(failure):
            action(url)
            now = migrate.current(url)
        head = migrate.head()
        state = "up to date" if now == head else f"newest is {head}"
        click.echo(f"Database at revision {now or 'base (empty)'} ({state}).")
    finally:
        if handle is not None:
            handle.stop()


# --------------------------------------------------------------------------- users


_PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


def _read_password(from_stdin: bool) -> str:
    """The new password: the first line of stdin, or asked twice (hidden on a terminal)."""
    from updog.store import repositories as repo

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on stdin")
    else:
        # getpass on a pipe warns that input "may be echoed": there is no terminal to echo on.
        password = click.prompt(
            "Password",
            hide_input=sys.stdin.isatty(),
            confirmation_prompt="Repeat the password",
        )
    if len(password) < repo.PASSWORD_MIN_LENGTH:
        raise click.ClickException(
            f"the password needs at least {repo.PASSWORD_MIN_LENGTH} characters"
        )
    return password


@click.group("users")
def users_group() -> None:
    """Manage user accounts."""


@users_group.command("create")
@click.argument("email")
@click.option("--org", "org_name", required=True, help="Organisation (created if missing).")
@click.option(
    "--role",
    type=click.Choice(["viewer", "analyst", "admin"]),
    default="viewer",
    show_default=True,
    help="viewer reads; analyst edits funds and runs simulations; admin manages users.",
)
@_PASSWORD_STDIN
def users_create(email: str, org_name: str, role: str, password_stdin: bool) -> None:
    """Create a user EMAIL in organisation --org (asks for the password twice)."""
    from updog.store import repositories as repo

    password = _read_password(password_stdin)

    def create(conn: Any) -> tuple[Any, Any]:
        org = repo.get_or_create_organisation(conn, org_name)
        user = repo.create_user(conn, org.id, email, password, role)  # type: ignore[arg-type]
        return org, user

    org, user = _with_conn(create, action="cannot create the user")
    click.echo(f"Created {user.role} {user.email} in organisation {org.name!r} (user {user.id}).")


@users_group.command("list")
@click.option("--org", "org_name", default=None, help="Only this organisation's users.")
def users_list(org_name: str | None) -> None:
    """List users: email, organisation, role, status."""
    from updog.store import repositories as repo

    users = _with_conn(repo.list_users, org_name, action="cannot list the users")
    if not users:
        click.echo("No users." if org_name is None else f"No users in {org_name!r}.")
        return
    header = ("EMAIL", "ORGANISATION", "ROLE", "STATUS", "CREATED")
    rows = [
        (u.email, org, u.role, "disabled" if u.disabled_at else "active", _when(u.created_at))
        for u, org in users
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@users_group.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable user EMAIL: signed out everywhere, tokens revoked, no sign-in."""
    from updog.store import repositories as repo

    user = _with_conn(repo.set_user_disabled, email, True, action="cannot disable the user")
    click.echo(f"Disabled {user.email}; their sessions and tokens no longer work.")


@users_group.command("enable")
@click.argument("email")
def users_enable(email: str) -> None:
    """Enable user EMAIL again (they sign in anew; revoked tokens stay revoked)."""
    from updog.store import repositories as repo

    user = _with_conn(repo.set_user_disabled, email, False, action="cannot enable the user")
    click.echo(f"Enabled {user.email}.")


@users_group.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["viewer", "analyst", "admin"]))
def users_set_role(email: str, role: str) -> None:
    """Give user EMAIL the role ROLE (viewer, analyst or admin)."""
    from updog.store import repositories as repo

    user = _with_conn(repo.set_user_role, email, role, action="cannot change the role")
    click.echo(f"{user.email} is now {user.role}.")


@users_group.command("reset-password")
@click.argument("email")
@_PASSWORD_STDIN
def users_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password for user EMAIL and sign them out everywhere."""
    from updog.store import repositories as repo

    password = _read_password(password_stdin)
    user = _with_conn(repo.reset_password, email, password, action="cannot reset the password")
    click.echo(f"New password set for {user.email}; their sessions were ended.")


# --------------------------------------------------------------------------- tokens


@click.group("tokens")
def tokens_group() -> None:
    """Manage personal API tokens (sent as "Authorization: Bearer <token>")."""


def _user(conn: Any, email: str) -> Any:
    from updog.store import repositories as repo

    user = repo.get_user_by_email(conn, email)
    if user is None:
        raise click.ClickException(f"no user with email {email}")
    return user


@tokens_group.command("create")
@click.argument("email")
@click.option("--name", default="", help="A label to recognise the token by (≤ 100 chars).")
def tokens_create(email: str, name: str) -> None:
    """Issue a token for user EMAIL and print it (once: only its hash is stored)."""
    from updog.store import repositories as repo

    def create(conn: Any) -> tuple[str, Any]:
        return repo.create_token(conn, _user(conn, email).id, name)

    plaintext, record = _with_conn(create, action="cannot create the token")
    click.echo(f"Token {record.id} for {email} — shown only now, store it safely:", err=True)
    click.echo(plaintext)


@tokens_group.command("list")
@click.argument("email")
def tokens_list(email: str) -> None:
    """List user EMAIL's tokens (prefix only; the tokens themselves are not stored)."""
    from updog.store import repositories as repo

    def fetch(conn: Any) -> list[Any]:
        return repo.list_tokens(conn, _user(conn, email).id)

    tokens = _with_conn(fetch, action="cannot list the tokens")
    if not tokens:
        click.echo(f"{email} has no tokens.")
        return
    header = ("ID", "NAME", "PREFIX", "CREATED", "LAST USED", "STATUS")
    rows = [
        (
            str(t.id),
            t.name or "-",
            t.prefix + "…",
            _when(t.created_at),
            _when(t.last_used_at),
            "active" if t.active else ("revoked" if t.revoked_at else "expired"),
        )
        for t in tokens
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())


@tokens_group.command("revoke")
@click.argument("token_id")
def tokens_revoke(token_id: str) -> None:
    """Revoke the token TOKEN_ID (see "updog tokens list"); it stops working at once."""
    from updog.store import repositories as repo

    try:
        tid = uuid.UUID(token_id)
    except ValueError:
        raise click.ClickException(f"not a token id: {token_id!r}") from None
    if not _with_conn(repo.revoke_token, tid, action="cannot revoke the token"):
        raise click.ClickException(f"no active token {tid}")
    click.echo(f"Revoked token {tid}.")


# --------------------------------------------------------------------------- serve


def _load_factory(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, attr or "create_app")
    except (ImportError, AttributeError) as exc:
        raise click.ClickException(f"cannot load the app factory {spec!r}: {exc}") from None
    return factory  # type: ignore[no-any-return]


def _uvicorn_server_class() -> type[Any]:
    import uvicorn

    class ServiceServer(uvicorn.Server):
        """uvicorn's server with our signal handling: SIGINT/SIGTERM ask for a graceful stop
        (a second SIGINT forces it) and are *not* re-raised afterwards, so the process can
        close the pool, stop the embedded database and exit 0.

        The first signal *drains* (:meth:`begin_drain`): the app's lifecycle fails ``/readyz``
        and answers new requests 503 + ``Connection: close`` at once, the shutdown hooks end
        event streams and release the running job, and only once the requests in flight have
        finished *and* every connection has closed (each keep-alive client got its 503 +
        ``Connection: close``, or sat idle past uvicorn's keep-alive timeout) — or
        ``drain_timeout`` passed — is uvicorn told to stop, closing the listener. So no
        request that reached the server goes unanswered: uvicorn alone closes idle
        keep-alive connections at once on exit, racing requests already on the wire. A
        second signal stops without waiting for the drain.
        """

        signals_received: list[int]
        #: The app's ``updog.resilience.lifecycle.Lifecycle`` (None: the app has none).
        lifecycle: Any = None
        #: Seconds to wait for in-flight requests after the first signal.
        drain_timeout: float = 25.0
        #: ``time.monotonic()`` of the first signal (None: not draining).
        drain_started: float | None = None

        def open_connections(self) -> int:
            """HTTP connections open right now (idle keep-alive ones included)."""
            return len(self.server_state.connections)

        def begin_drain(self) -> None:
            """Start draining (idempotent); uvicorn is stopped when the drain is over."""
            if self.drain_started is not None:
                return
            self.drain_started = time.monotonic()
            lifecycle = self.lifecycle
            if lifecycle is not None:
                lifecycle.begin_drain()
            for hook in getattr(self, "shutdown_hooks", ()):
                hook()  # e.g. end event streams, release running jobs

            def wait_then_stop() -> None:
                deadline = time.monotonic() + self.drain_timeout
                while time.monotonic() < deadline:
                    left = deadline - time.monotonic()
                    if lifecycle is not None and not lifecycle.wait_idle(left):
                        break
                    if not self.open_connections():
                        break
                    # Keep-alive connections still open: their next request is answered
                    # 503 + Connection: close (and the connection closed after it), or they
                    # reach uvicorn's keep-alive timeout. Closing them now would race with a
                    # request already on the wire — a client would see no response.
                    time.sleep(0.05)
                self.should_exit = True

            threading.Thread(target=wait_then_stop, name="updog-drain", daemon=True).start()

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            self.signals_received = []
            if threading.current_thread() is not threading.main_thread():
                yield
                return

            def handle(sig: int, _frame: Any) -> None:
                self.signals_received.append(sig)
                if self.should_exit and sig == signal.SIGINT:
                    self.force_exit = True
                if self.drain_started is None:
                    self.begin_drain()
                else:  # a second signal: stop without waiting for the drain
                    self.should_exit = True

            handled = [signal.SIGINT, signal.SIGTERM]
            previous = {sig: signal.signal(sig, handle) for sig in handled}
            try:
                yield
            finally:
                for sig, old in previous.items():
                    signal.signal(sig, old)

    return ServiceServer


@click.command("serve")
@click.option("--host", default=None, help="Listen address [default: UPDOG_HOST or 127.0.0.1].")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Listen port [default: UPDOG_PORT or 8000].",
)
@click.option(
    "--app",
    "app_factory",
    default=DEFAULT_APP_FACTORY,
    hidden=True,
    help="module:callable building the ASGI app from (settings, database).",
)
def serve(host: str | None, port: int | None, app_factory: str) -> None:
    """Run the HTTP API (and web UI) until Ctrl-C or SIGTERM.

    Without DATABASE_URL it starts (or joins) the embedded PostgreSQL in the data folder,
    migrates it, serves, and stops it again on exit.
    """
    import psycopg
    import uvicorn
    from sqlalchemy.exc import OperationalError as MigrationConnectError

    from updog.store.db import Database, open_database

    settings = _settings(host=host, port=port)
    factory = _load_factory(app_factory)
    where = "DATABASE_URL" if settings.database_url else f"embedded, in {settings.pgdata}"
    click.echo(f"updog: opening the database ({where}) …", err=True)
    worker: tuple[threading.Thread, threading.Event] | None = None
    server: Any = None
    migrator: tuple[threading.Thread, threading.Event] | None = None
    with _sigterm_as_interrupt():
        with _reported("cannot open the database"):
            try:
                database = open_database(settings)
            except (psycopg.OperationalError, MigrationConnectError) as exc:
                if not settings.database_url:
                    raise
                # An orchestrator would restart a process that exits into a crash loop:
                # serve probes (/livez 200; /startupz and /readyz 503 saying why) and migrate
                # once the database answers.
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "error"
                click.echo(
                    f"updog: the database does not answer ({first_line}); serving anyway — "
                    "/readyz stays 503 until it is reachable and migrated",
                    err=True,
                )
                database = Database.from_settings(settings, settings.database_url)
                migrator = _migrate_in_background(settings.database_url)
        try:
            app = factory(settings, database)
            grace = settings.shutdown_grace_period
            server = _uvicorn_server_class()(
                uvicorn.Config(
                    app,
                    host=settings.host,
                    port=settings.port,
                    log_config=None,  # the app configures logging (JSON lines)
                    access_log=False,  # the app writes its own access log
                    server_header=False,  # no "Server: uvicorn" (SPEC §6.3)
                    # Forwarded headers are the app's business: it believes them only from
                    # UPDOG_TRUSTED_PROXIES (rate-limit keys, HSTS). uvicorn would otherwise
                    # trust any local peer's X-Forwarded-For.
                    proxy_headers=False,
                    lifespan="auto",
                    # the drain (above) waits for requests; this only covers what is left
                    timeout_graceful_shutdown=max(1, round(grace * 0.1)),
                )
            )
            # Grace budget (settings.shutdown_grace_period, default 30 s): 75 % for in-flight
            # requests, 10 % for uvicorn to close connections, the rest for the job worker,
            # the pool and the embedded database — so the process exits 0 within the period.
            server.lifecycle = getattr(getattr(app, "state", None), "lifecycle", None)
            server.drain_timeout = grace * 0.75
            hooks: list[Callable[[], None]] = []
            if getattr(app, "state", None) is not None:
                from updog.jobs.events import shutdown_flag

                hooks.append(shutdown_flag(app).set)
            worker = _start_inprocess_worker(settings, database)
            if worker is not None:
                hooks.append(worker[1].set)
            server.shutdown_hooks = hooks
            try:
                server.run()
            except SystemExit as exc:  # uvicorn exits(1) when it cannot bind
                if exc.code not in (0, None):
                    raise click.ClickException(
                        f"the server could not start on {settings.host}:{settings.port} "
                        "(address in use?)"
                    ) from None
        finally:
            if migrator is not None:
                migrator[1].set()
                migrator[0].join(5)
            started = getattr(server, "drain_started", None) or time.monotonic()
            if worker is not None:
                worker[1].set()  # the running job (if any) is released for retry
                left = started + settings.shutdown_grace_period - 3 - time.monotonic()
                worker[0].join(max(1.0, left))
            database.close(timeout=2)
            click.echo("updog: stopped.", err=True)
    if not server.started:
        raise click.ClickException("the server did not start (see the log above)")


def _migrate_in_background(url: str) -> tuple[threading.Thread, threading.Event]:
    """Apply the migrations from a thread as soon as the database answers (with back-off);
    the returned event stops it."""
    from updog.store.migrate import upgrade_when_reachable

    stop = threading.Event()

    def report(exc: BaseException, wait: float) -> None:
        click.echo(f"updog: database still unreachable; next try in {wait:.0f} s", err=True)

    def run() -> None:
        if upgrade_when_reachable(url, stop, on_retry=report):
            click.echo("updog: the database answers and is migrated.", err=True)

    thread = threading.Thread(target=run, name="updog-migrate", daemon=True)
    thread.start()
    return thread, stop


def _start_inprocess_worker(
    settings: Settings, database: Database
) -> tuple[threading.Thread, threading.Event] | None:
    """Start a job worker thread inside ``updog serve`` when ``inprocess_worker`` says so
    (``auto``: only on the embedded database, where a separate worker is unlikely)."""
    wanted = settings.inprocess_worker
    if wanted == "off" or (wanted == "auto" and settings.database_url):
        return None
    from updog.jobs.worker import WorkerConfig, start_in_thread

    with _reported("cannot start the job worker"):
        config = WorkerConfig.from_settings(settings)
    click.echo(f"updog: running jobs in process ({config.executor.describe()}).", err=True)
    return start_in_thread(database, config)


# --------------------------------------------------------------------------- worker


@click.command("worker")
@click.option(
    "--executor",
    type=click.Choice(["auto", "local", "process", "dask"]),
    default=None,
    help="Where simulation blocks run: local (this machine, one process), process (a local "
    "process pool), dask (the cluster at --dask-scheduler) [default: UPDOG_EXECUTOR or "
    "auto = dask when a scheduler address is set, else process].",
)
@click.option(
    "--dask-scheduler",
    "dask_address",
    default=None,
    metavar="ADDRESS",
    help="Dask scheduler, e.g. tcp://10.0.0.5:8786 [default: DASK_SCHEDULER_ADDRESS].",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Jobs computed at once by this worker.",
)
def worker_command(executor: str | None, dask_address: str | None, concurrency: int) -> None:
    """Execute simulation jobs from the database until Ctrl-C or SIGTERM.

    Start as many workers, on as many machines, as you like: each job runs once at a time
    (leases), a killed worker's job is retried by another after its lease expires, and
    SIGTERM releases the running job to the queue before exiting 0.
    """
    from dataclasses import replace

    from updog.jobs.worker import Worker, WorkerConfig
    from updog.observability.logging import configure_logging
    from updog.store.db import open_database

    settings = _settings(executor=executor, dask_scheduler_address=dask_address)
    with _reported("invalid worker settings"):
        config = WorkerConfig.from_settings(settings)
    configure_logging()
    stop = threading.Event()
    where = "DATABASE_URL" if settings.database_url else f"embedded, in {settings.pgdata}"

    def handle(sig: int, _frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with _reported("cannot open the database"):
            database = open_database(
                replace(settings, db_pool_min_size=0, db_pool_max_size=2 * concurrency + 1)
            )
        try:
            click.echo(
                f"updog worker: database {where}; executor {config.executor.describe()}; "
                f"{concurrency} at a time; waiting for jobs.",
                err=True,
            )
            threads = [
                threading.Thread(
                    target=Worker(database, config).run, args=(stop,), name=f"updog-worker-{i}"
                )
                for i in range(concurrency)
            ]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(0.2)
        finally:
            database.close()
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
    click.echo("updog worker: stopped.", err=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM abort like Ctrl-C (KeyboardInterrupt) until uvicorn installs its own
    handlers, so the clean-up (pool, embedded server) runs when stopped during start-up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
