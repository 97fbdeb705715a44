"""The embedded PostgreSQL: start, stop, restart with the data found again, shared between
processes, and not kept alive by a process that died without releasing it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from updog.store import embedded

pytestmark = [pytest.mark.db, pytest.mark.slow]


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not tmp_path: the library loosens the permissions of every parent folder (root runs the
    # server as another user), which pytest's private temp root should not get.
    folder = Path(tempfile.mkdtemp(prefix="updog-test-embedded-"))
    yield folder
    if embedded.is_running(folder):  # a failed test must not leave a server behind
        subprocess.run(
            [sys.executable, "-c", _SCRIPT.format(folder=str(folder), tail="h.stop()")],
            check=False,
        )
    shutil.rmtree(folder, ignore_errors=True)


def _start(data_dir: Path) -> embedded.EmbeddedPostgres:
    try:
        return embedded.start(data_dir)
    except embedded.EmbeddedPostgresError as exc:
        if os.environ.get("UPDOG_REQUIRE_SERVICES") == "1":
            raise
        pytest.skip(f"embedded PostgreSQL unavailable here: {exc}")


def test_restart_finds_the_data_again(data_dir: Path) -> None:
    handle = _start(data_dir)
    assert embedded.is_running(data_dir)
    with psycopg.connect(handle.url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("updog",)
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    handle.stop()
    handle.stop()  # idempotent
    assert not embedded.is_running(data_dir)

    again = _start(data_dir)
    try:
        with psycopg.connect(again.url) as conn:
            assert conn.execute("SELECT v FROM kept").fetchall() == [("still here",)]
    finally:
        again.stop()
    assert not embedded.is_running(data_dir)


def test_handles_in_one_process_are_counted(data_dir: Path) -> None:
    first = _start(data_dir)
    second = embedded.start(data_dir)
    first.stop()
    assert embedded.is_running(data_dir)
    with psycopg.connect(second.url) as conn:
        conn.execute("SELECT 1")
    second.stop()
    assert not embedded.is_running(data_dir)


_SCRIPT = """
from pathlib import Path
from updog.store import embedded
h = embedded.start(Path({folder!r}))
print(h.url, flush=True)
{tail}
"""


def test_another_process_joins_and_leaves_without_stopping_it(data_dir: Path) -> None:
    handle = _start(data_dir)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT.format(folder=str(data_dir), tail="")],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == handle.url
        assert embedded.is_running(data_dir)  # we still hold it
    finally:
        handle.stop()
    assert not embedded.is_running(data_dir)


def test_a_crashed_holder_does_not_keep_the_server_alive(data_dir: Path) -> None:
    # The child registers and dies without its atexit clean-up (like kill -9).
    subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(folder=str(data_dir), tail="import os; os._exit(0)")],
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert embedded.is_running(data_dir)
    handle = _start(data_dir)  # prunes the dead pid, joins the running server
    handle.stop()
    assert not embedded.is_running(data_dir)
