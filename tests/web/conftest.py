"""Fixtures of the browser tests: the real app under uvicorn on a free loopback port over a
freshly emptied database, with the throttling profile off (``throttle_profile="off"``: rate
limits and load shedding never refuse a test request), a job worker thread, and Debian's
Chromium driven by Playwright. Without Playwright or Chromium the tests skip with a reason
(a failure under ``UPDOG_REQUIRE_SERVICES=1``, as in CI, which installs both)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from web_support import CHROMIUM, launch

from api.api_support import LiveServer, LogTap, serve
from services_support import unavailable
from updog.settings import Settings

#: Runs above this become background jobs in these tests (so the progress bar shows).
SYNC_LIMIT = 5_000


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install -e '.[test]')")
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance: Any) -> Iterator[Any]:
    b = launch(playwright_instance)
    yield b
    b.close()


@pytest.fixture(scope="module")
def web(db: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app with a job worker thread, over the emptied test database."""
    from updog.jobs.worker import WorkerConfig, start_in_thread

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("updog-web"),
        sync_runs_limit=SYNC_LIMIT,
        throttle_profile="off",
        executor="local",
        job_poll_interval=0.2,
    )
    thread, stop = start_in_thread(db, WorkerConfig.from_settings(settings))
    try:
        yield from serve(settings, db, LogTap())
    finally:
        stop.set()
        thread.join(30)
