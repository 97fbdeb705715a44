"""Service commands: ``serve``, ``migrate``, ``users``, ``tokens``."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add the service commands to ``group``."""
