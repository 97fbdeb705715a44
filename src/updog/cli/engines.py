"""``updog model`` and ``updog simulate``: the pure engines from the command line."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add the engine commands to ``group``."""
