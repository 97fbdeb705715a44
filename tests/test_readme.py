"""The README's shell blocks, pasted in order as a newcomer would (issue 11, item 9).

The first block (the main job: install, model, simulate, serve) runs with its install step
left out — this environment is the installed project (its ``.venv``) — on the embedded
defaults, in a fresh data folder and a scratch project folder holding ``examples/``, with
``UPDOG_PORT`` on a free port.
Every later ``sh`` block then runs, in order, in *one* shell (variables set by one block are
used by the next, as in a terminal), against that server, with the password the account
prompt asks for on stdin. ``curl`` fails on any HTTP error status there, so a request to
``/api/v1/funds//publish`` cannot pass unnoticed. A block preceded by
``<!-- readme-test: skip (reason) -->`` is not run; the reason says what covers it instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: The install step of the set-up commands (done already: this is the installed project).
INSTALL = re.compile(r"^python3 -m venv \.venv && \. \.venv/bin/activate && pip install -e \S+ && ")
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->\s*$")
PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Block:
    """One fenced ``sh`` block: its first line number, code, and skip reason (None: run)."""

    line: int
    code: str
    skip: str | None


def shell_blocks(text: str) -> list[Block]:
    """The ```` ```sh ```` blocks of a Markdown text, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            skip = SKIP.search(previous.strip())
            end = lines.index("```", i + 1)
            blocks.append(Block(i + 1, "\n".join(lines[i + 1 : end]), skip and skip["reason"]))
            i = end
        i += 1
    return blocks


def test_shell_blocks_are_found_with_their_skip_reasons() -> None:
    text = "a\n<!-- readme-test: skip (CI runs it) -->\n\n```sh\nx\n```\n```sh\ny\nz\n```\n"
    assert shell_blocks(text) == [Block(4, "x", "CI runs it"), Block(7, "y\nz", None)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def test_readme_shell_blocks_work_when_pasted_in_order(tmp_path: Path) -> None:
    blocks = shell_blocks(README.read_text())
    main_job, *rest = blocks
    assert INSTALL.match(main_job.code), "the first block is the main job's set-up command"
    assert main_job.code.rstrip().endswith("updog serve"), "the main job ends serving"
    to_run = [b for b in rest if b.skip is None]
    assert to_run, "no block left to run"

    work = tmp_path / "work"  # the project folder as the newcomer sees it
    shutil.copytree(ROOT / "examples", work / "examples")
    venv = Path(sys.prefix)
    if not (venv / "bin" / "activate").is_file():
        pytest.fail(f"run the tests from the virtual environment the README makes (not {venv})")
    (work / ".venv").symlink_to(venv)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {
        "UPDOG_DATA_DIR": str(tmp_path / "data"),
        "UPDOG_PORT": str(port),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    }
    log = (tmp_path / "main-job.log").open("wb")
    server = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", INSTALL.sub("", main_job.code)],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while _status(f"http://127.0.0.1:{port}/readyz") != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the main job did not end serving:\n{_tail(tmp_path)}")
            time.sleep(0.5)
        assert (work / "report.html").stat().st_size > 10_000

        script = "\n".join(
            [
                "set -euo pipefail",
                # an HTTP error status fails the block (the body is still printed)
                'curl() { command curl --fail-with-body "$@"; }',
                *(f"# README.md line {b.line}\n{b.code}" for b in to_run),
            ]
        )
        shell = subprocess.Popen(
            ["bash", "-c", script],
            cwd=work,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = shell.communicate(f"{PASSWORD}\n{PASSWORD}\n", timeout=900)
        finally:
            with contextlib.suppress(ProcessLookupError):  # what a failed block left running
                os.killpg(shell.pid, signal.SIGTERM)
        assert shell.returncode == 0, (
            f"exit {shell.returncode}\n--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}"
        )
        assert '"status":"succeeded"' in out  # the background job's final event
        assert "\ncancelled\n" in out  # ... and the cancelled one
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGINT)  # Ctrl-C in the set-up terminal
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()
    assert server.returncode == 0, _tail(tmp_path)


def _tail(tmp_path: Path) -> str:
    return (tmp_path / "main-job.log").read_text(errors="replace")[-4000:]
