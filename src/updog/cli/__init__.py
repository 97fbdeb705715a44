"""The ``updog`` command: engines (``model``, ``simulate``, ``sweep``), the reference-case
checker (``check-cases``) and service (``serve``, ``worker``, ``migrate``, ``users``,
``tokens``) subcommands, each group in its own module.

Subcommands are loaded when they run (:class:`LazyGroup`): the engines pull in numpy, scipy
and matplotlib, the service commands psycopg, SQLAlchemy and Dask, and ``updog --help`` or
``updog users list`` must not pay for what they do not use (``python -X importtime -m updog
--help`` shows what a start costs; ``benchmarks/cli_start.py`` measures it).
"""

from __future__ import annotations

import importlib

import click

from updog import __version__

#: Subcommand → (module, attribute, one-line help shown by ``updog --help``).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "check-cases": (
        "updog.cli.check_cases",
        "check_cases",
        "Run truth-case files through the finance kernel and compare.",
    ),
    "migrate": ("updog.cli.service", "migrate_group", "Apply or undo the database migrations."),
    "model": ("updog.cli.engines", "model_command", "Print the deterministic forecast of a fund."),
    "serve": ("updog.cli.service", "serve", "Run the HTTP API and web UI until Ctrl-C/SIGTERM."),
    "simulate": (
        "updog.cli.engines",
        "simulate_command",
        "Print the Monte Carlo outcome distribution of a fund.",
    ),
    "sweep": (
        "updog.cli.engines",
        "sweep_command",
        "Median TVPI of a fund across reserve ratios (common random numbers).",
    ),
    "tokens": ("updog.cli.service", "tokens_group", "Manage personal API tokens."),
    "users": ("updog.cli.service", "users_group", "Manage user accounts."),
    "worker": ("updog.cli.service", "worker_command", "Execute simulation jobs until stopped."),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when one of them is invoked (or its
    own help is asked for); the group's help lists them from :data:`COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="updog")
def main() -> None:
    """Updog: venture-capital fund modeling."""
