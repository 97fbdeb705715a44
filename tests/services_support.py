"""What every suite that needs a service (PostgreSQL, Redis, Chromium) shares: skip-or-fail
when one is missing, and the addresses that put a chaos proxy in front of PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import pytest
from psycopg import conninfo

from updog.resilience.chaos_proxy import ChaosProxy

#: CI sets this: a missing service is a failure, not a skip.
REQUIRE_SERVICES = os.environ.get("UPDOG_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip with ``reason``, or fail when the run requires its services (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (and UPDOG_REQUIRE_SERVICES=1)", pytrace=False)
    pytest.skip(reason)


def upstream_of(url: str) -> dict[str, Any]:
    """Proxy constructor arguments reaching the server of libpq ``url``."""
    params = conninfo.conninfo_to_dict(url)
    host = str(params.get("host") or "127.0.0.1")
    port = int(params.get("port") or 5432)
    if host.startswith("/"):
        return {"upstream_unix": str(Path(host) / f".s.PGSQL.{port}")}
    return {"upstream_host": host, "upstream_port": port}


def via_proxy(url: str, proxy: ChaosProxy) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    params = conninfo.conninfo_to_dict(url)
    params.update(host=proxy.listen_host, port=str(proxy.port))
    params.pop("hostaddr", None)
    return conninfo.make_conninfo(**params)
