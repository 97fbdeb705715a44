"""The service commands: migrate, users, tokens (CliRunner and real subprocesses), serve."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from updog.cli import main
from updog.store import embedded, migrate
from updog.store import repositories as repo

pytestmark = pytest.mark.db

STUB_DIR = Path(__file__).resolve().parent


def _run(args: list[str], url: str, tmp_path: Path, **kwargs: Any) -> Any:
    env = {"DATABASE_URL": url, "UPDOG_DATA_DIR": str(tmp_path)}
    return CliRunner().invoke(main, args, env=env, catch_exceptions=False, **kwargs)


def _email() -> str:
    return f"{uuid.uuid4().hex[:10]}@example.com"


def test_migrate_up_down_current(fresh_database_url: str, tmp_path: Path) -> None:
    result = _run(["migrate"], fresh_database_url, tmp_path)
    assert result.exit_code == 0, result.output
    assert f"revision {migrate.head()} (up to date)" in result.output
    result = _run(["migrate", "down", "--revision", "base"], fresh_database_url, tmp_path)
    assert result.exit_code == 0, result.output
    assert "base (empty)" in result.output
    assert migrate.current(fresh_database_url) is None
    result = _run(["migrate", "current"], fresh_database_url, tmp_path)
    assert result.exit_code == 0 and "base (empty)" in result.output
    result = _run(["migrate", "--revision", "nope"], fresh_database_url, tmp_path)
    assert result.exit_code == 1 and "Error: upgrade failed" in result.output


def test_users_and_tokens_commands(db: Any, database_url: str, tmp_path: Path) -> None:
    email = _email()
    result = _run(
        ["users", "create", email, "--org", "CLI Org", "--role", "admin"],
        database_url,
        tmp_path,
        input="long password\nlong password\n",
    )
    assert result.exit_code == 0, result.output
    assert f"Created admin {email}" in result.output

    again = _run(
        ["users", "create", email.upper(), "--org", "CLI Org", "--password-stdin"],
        database_url,
        tmp_path,
        input="another password\n",
    )
    assert again.exit_code == 1 and "exists already" in again.output

    created = _run(["tokens", "create", email, "--name", "ci"], database_url, tmp_path)
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    with db.connection() as conn:
        identity = repo.identity_for_token(conn, token)
    assert identity is not None and identity.role == "admin"

    listed = _run(["tokens", "list", email], database_url, tmp_path)
    assert listed.exit_code == 0
    assert token[: repo.TOKEN_DISPLAY_CHARS] in listed.output and "active" in listed.output
    assert token not in listed.output

    revoked = _run(["tokens", "revoke", str(identity.token_id)], database_url, tmp_path)
    assert revoked.exit_code == 0, revoked.output
    with db.connection() as conn:
        assert repo.identity_for_token(conn, token) is None
    twice = _run(["tokens", "revoke", str(identity.token_id)], database_url, tmp_path)
    assert twice.exit_code == 1 and "no active token" in twice.output
    assert "revoked" in _run(["tokens", "list", email], database_url, tmp_path).output


def test_user_management_commands(db: Any, database_url: str, tmp_path: Path) -> None:
    """list, set-role, reset-password, disable and enable (issue 11: only create existed)."""
    email, org = _email(), f"Manage Org {uuid.uuid4().hex[:6]}"
    created = _run(
        ["users", "create", email, "--org", org, "--role", "viewer", "--password-stdin"],
        database_url,
        tmp_path,
        input="first password\n",
    )
    assert created.exit_code == 0, created.output
    token = _run(["tokens", "create", email], database_url, tmp_path).stdout.strip().split()[-1]
    with db.connection() as conn:
        session, _ = repo.create_session(conn, repo.get_user_by_email(conn, email).id)

    listed = _run(["users", "list", "--org", org], database_url, tmp_path)
    assert listed.exit_code == 0
    assert re.search(rf"{re.escape(email)}\s+{org}\s+viewer\s+active", listed.output)

    role = _run(["users", "set-role", email, "analyst"], database_url, tmp_path)
    assert role.exit_code == 0 and "is now analyst" in role.output
    reset = _run(
        ["users", "reset-password", email, "--password-stdin"],
        database_url,
        tmp_path,
        input="second password\n",
    )
    assert reset.exit_code == 0, reset.output
    with db.connection() as conn:
        assert repo.verify_password(conn, email, "first password") is None
        assert repo.verify_password(conn, email, "second password") is not None
        assert repo.identity_for_session(conn, session) is None  # signed out
        assert repo.identity_for_token(conn, token).role == "analyst"  # tokens kept

    disabled = _run(["users", "disable", email], database_url, tmp_path)
    assert disabled.exit_code == 0, disabled.output
    with db.connection() as conn:
        assert repo.verify_password(conn, email, "second password") is None
        assert repo.identity_for_token(conn, token) is None
    assert "disabled" in _run(["users", "list", "--org", org], database_url, tmp_path).output
    enabled = _run(["users", "enable", email], database_url, tmp_path)
    assert enabled.exit_code == 0
    with db.connection() as conn:
        assert repo.verify_password(conn, email, "second password") is not None
        assert repo.identity_for_token(conn, token) is None  # revoked tokens stay revoked
    missing = _run(["users", "disable", "nobody@example.com"], database_url, tmp_path)
    assert missing.exit_code == 1 and "no user with email" in missing.output


def test_a_piped_password_prompt_prints_no_getpass_warning(
    database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "UPDOG_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-m", "updog", "users", "create", _email(), "--org", "Pipe Org"],
        input="piped password\npiped password\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "GetPassWarning" not in proc.stderr and "echo" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["tokens", "create", "nobody@example.com"], None, "no user with email nobody@"),
        (["tokens", "list", "nobody@example.com"], None, "no user with email nobody@"),
        (["tokens", "revoke", "not-a-uuid"], None, "not a token id"),
        (
            ["users", "create", "x@example.com", "--org", "O", "--password-stdin"],
            "short\n",
            "at least 8 characters",
        ),
        (
            ["users", "create", "x@example.com", "--org", "O", "--password-stdin"],
            "\n",
            "no password on stdin",
        ),
        (
            ["users", "create", "not-an-email", "--org", "O", "--password-stdin"],
            "long enough\n",
            "not an email address",
        ),
    ],
)
def test_errors_are_messages_not_tracebacks(
    db: Any, database_url: str, tmp_path: Path, args: list[str], stdin: str | None, message: str
) -> None:
    result = _run(args, database_url, tmp_path, input=stdin)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_unreachable_database_is_a_message(tmp_path: Path) -> None:
    result = _run(
        ["tokens", "list", "a@example.com"],
        "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2",
        tmp_path,
    )
    assert result.exit_code == 1
    assert "Error: cannot open the database" in result.output


def _cli(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_updog(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _updog() -> str:
    exe = shutil.which("updog", path=str(Path(sys.executable).parent))
    assert exe is not None, "the updog console script is not installed in this venv"
    return exe


@pytest.mark.slow
def test_real_processes_create_a_user_and_a_token(
    db: Any, database_url: str, tmp_path: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "UPDOG_DATA_DIR": str(tmp_path)}
    email = _email()
    created = _cli(
        "users",
        "create",
        email,
        "--org",
        "Subprocess Org",
        "--role",
        "analyst",
        "--password-stdin",
        env=env,
        stdin="a real password\n",
    )
    assert created.returncode == 0, created.stderr
    token = _cli("tokens", "create", email, env=env)
    assert token.returncode == 0, token.stderr
    plaintext = token.stdout.strip()
    assert plaintext.startswith("updog_") and "shown only now" in token.stderr
    with db.connection() as conn:
        identity = repo.identity_for_token(conn, plaintext)
        assert identity is not None and identity.role == "analyst"
        assert repo.verify_password(conn, email, "a real password") is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_on_the_embedded_database_shares_it_and_stops_cleanly(stop_signal: int) -> None:
    """``updog serve`` with no DATABASE_URL starts the embedded server; ``users create`` in
    another process reaches the same data; SIGTERM or Ctrl-C stops both and exits 0."""
    data_dir = Path(tempfile.mkdtemp(prefix="updog-test-serve-"))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(UPDOG_DATA_DIR=str(data_dir), PYTHONPATH=str(STUB_DIR))
    port = _free_port()
    proc = subprocess.Popen(
        [_updog(), "serve", "--port", str(port), "--app", "_stub_app:create_app"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                before = _get_json(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    _, err = proc.communicate()
                    pytest.fail(f"serve did not come up (exit {proc.returncode}):\n{err}")
                time.sleep(0.2)
        assert before["users"] == 0
        created = _cli(
            "users",
            "create",
            "ops@example.com",
            "--org",
            "Ops",
            "--password-stdin",
            env=env,
            stdin="long password\n",
        )
        assert created.returncode == 0, created.stderr
        assert _get_json(f"http://127.0.0.1:{port}/")["users"] == 1
        assert embedded.is_running(data_dir)  # the CLI process left, serve still holds it

        proc.send_signal(stop_signal)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "Traceback" not in err
        assert not embedded.is_running(data_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def test_serve_reports_an_unloadable_app(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--app", "no_such_module:create_app"],
        env={"UPDOG_DATA_DIR": str(tmp_path)},
    )
    assert result.exit_code == 1 and "cannot load the app factory" in result.output


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.chaos
def test_serve_starts_without_its_database_and_turns_ready_when_it_answers(
    fresh_database_url: str, tmp_path: Path
) -> None:
    """With DATABASE_URL unreachable at start-up, serve used to exit ("cannot open the
    database"): a crash loop under an orchestrator. It serves probes, then migrates and
    turns ready once the database answers (issue 11)."""
    from services_support import upstream_of, via_proxy
    from updog.resilience.chaos_proxy import ChaosProxy

    with ChaosProxy(**upstream_of(fresh_database_url)) as proxy:
        proxy.down()  # the database "is not there yet"
        url = via_proxy(fresh_database_url, proxy)
        port = _free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "UPDOG_DATA_DIR": str(tmp_path),
            "UPDOG_SECRET_KEY": "k" * 48,
            "UPDOG_DB_CONNECT_TIMEOUT": "1",
        }
        proc = subprocess.Popen(
            [_updog(), "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while _status_or_none(base + "/livez") != 200:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.2)
            # The first request that needs the database gets its 503 within the (short,
            # default, 1 s) pool acquire timeout: it used to hang 5 s, past this client's 3 s.
            request = urllib.request.Request(
                base + "/api/v1/auth/login",
                data=json.dumps({"email": "gp@example.com", "password": "x" * 12}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=3.0)
            assert refused.value.code == 503
            assert refused.value.headers["Retry-After"]
            assert _status(base + "/readyz") == 503
            assert _status(base + "/startupz") == 503
            detail = _get_json_any(base + "/readyz")
            assert detail["checks"]["database"]["status"] == "fail"

            proxy.up()  # the database answers now
            deadline = time.monotonic() + 90
            while _status(base + "/readyz") != 200:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "serve never turned ready"
                time.sleep(0.5)
            assert _status(base + "/startupz") == 200
            assert migrate.current(fresh_database_url) == migrate.head()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert "serving anyway" in err and "migrated" in err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _status_or_none(url: str) -> int | None:
    try:
        return _status(url)
    except OSError:
        return None


def _get_json_any(url: str) -> Any:
    try:
        return _get_json(url)
    except urllib.error.HTTPError as exc:
        return json.loads(exc.read())
