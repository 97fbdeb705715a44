"""How the app factory plugs the resilience pieces in (one call from ``create_app``).

:func:`install_resilience` puts on ``app.state``:

- ``breakers`` — the :class:`~updog.resilience.breaker.BreakerRegistry` of the database
  (``pg``; other breakers such as ``redis`` or ``http:<host>`` join it), read by ``/readyz``;
- ``lifecycle`` — the :class:`~updog.resilience.lifecycle.Lifecycle` ``updog serve`` drains;

and exposes the database's pool, query and breaker metrics on the app's ``/metrics`` registry.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from updog.resilience.breaker import BreakerRegistry
from updog.resilience.lifecycle import Lifecycle

__all__ = ["breakers_of", "install_resilience"]


def breakers_of(database: Any) -> BreakerRegistry:
    """The database's breaker registry (a fresh, empty one for a database without breakers)."""
    registry = getattr(database, "breakers", None)
    return registry if isinstance(registry, BreakerRegistry) else BreakerRegistry()


def install_resilience(
    app: Any, database: Any, registry: CollectorRegistry, lifecycle: Lifecycle
) -> None:
    """Wire breakers, lifecycle and database telemetry into ``app`` (see the module doc)."""
    app.state.breakers = breakers_of(database)
    app.state.lifecycle = lifecycle
    telemetry = getattr(database, "telemetry", None)
    if telemetry is not None:
        registry.register(telemetry.bridge())
