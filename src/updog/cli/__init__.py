"""The ``updog`` command: engines (``model``, ``simulate``), the reference-case checker
(``check-cases``) and service (``serve``, ``migrate``, ``users``, ``tokens``) subcommands, each
group in its own module."""

from __future__ import annotations

import click

from updog import __version__


@click.group()
@click.version_option(__version__, prog_name="updog")
def main() -> None:
    """Updog: venture-capital fund modeling."""


def _register() -> None:
    from updog.cli import check_cases, engines, service

    engines.register(main)
    check_cases.register(main)
    service.register(main)


_register()
