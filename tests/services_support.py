"""What every suite that needs a service (PostgreSQL, Redis, Chromium) shares."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

#: CI sets this: a missing service is a failure, not a skip.
REQUIRE_SERVICES = os.environ.get("UPDOG_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when the run requires its services (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (and UPDOG_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)
