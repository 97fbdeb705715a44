"""``updog check-cases FILE...``: run reference truth-case files through the finance kernel.

For model validators and auditors: each file (the format of ``../shared/truth-cases/``) is read,
its family detected from its content, its units converted to ours, each case run and compared
as SPEC §3.1 says (see :mod:`updog.finance.cases`). Output: one line per case —
``<id> PASS`` or ``<id> FAIL <field>: expected <x>, actual <y>; ...`` — then
``N passed, N failed``. A file that cannot be read counts as one failure (``<file> FAIL ...``).

Exit codes: 0 when every case passed, 1 when a case failed or a file could not be read.
"""

from __future__ import annotations

from pathlib import Path

import click

from updog.finance.cases import CaseFileError, check_file

__all__ = ["check_cases"]


@click.command("check-cases")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
def check_cases(files: tuple[Path, ...]) -> None:
    """Run truth-case FILES through the finance kernel and compare each case."""
    passed = failed = 0
    for path in files:
        try:
            outcomes = check_file(path)
        except CaseFileError as exc:
            click.echo(f"{path} FAIL unreadable file: {exc}")
            failed += 1
            continue
        for outcome in outcomes:
            click.echo(outcome.line())
            if outcome.passed:
                passed += 1
            else:
                failed += 1
    click.echo(f"{passed} passed, {failed} failed")
    if failed:
        raise SystemExit(1)
