"""``updog model`` and ``updog simulate`` as a user runs them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from engine_support import EXAMPLES
from updog.cli import main

SEED_FUND = str(next(p for p in EXAMPLES if p.stem == "seed-fund"))


def test_model_prints_a_summary_table() -> None:
    result = CliRunner().invoke(main, ["model", SEED_FUND])
    assert result.exit_code == 0, result.output
    for label in (
        "Paid-in",
        "Distributions",
        "NAV",
        "DPI",
        "TVPI",
        "Net IRR",
        "Gross multiple",
        "Management fees",
        "Carried interest",
        "Companies: invested in",
        "Companies: graduated",
        "Companies: exited",
        "Companies: failed",
    ):
        assert label in result.output


def test_model_json_has_summary_and_quarters() -> None:
    result = CliRunner().invoke(main, ["model", SEED_FUND, "--format", "json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert set(data) == {"summary", "quarters"}
    assert len(data["quarters"]) == 48  # ten years and two one-year extensions
    assert {"called", "nav", "dpi", "tvpi", "lp_distributions"} <= set(data["quarters"][0])


def test_simulate_json_is_reproducible_bytes() -> None:
    args = ["simulate", SEED_FUND, "--runs", "1000", "--seed", "42", "--format", "json"]
    first = CliRunner().invoke(main, args)
    second = CliRunner().invoke(main, args)
    assert first.exit_code == 0
    assert first.output == second.output
    data = json.loads(first.output)
    assert data["runs"] == 1000 and data["seed"] == 42
    for metric in ("tvpi", "dpi", "net_irr"):
        assert {"mean", "p5", "p25", "p50", "p75", "p95"} <= set(data["metrics"][metric])
    assert 0 <= data["probabilities"]["tvpi_below_1"] <= 1


def test_simulate_table() -> None:
    result = CliRunner().invoke(main, ["simulate", SEED_FUND, "--runs", "500", "--seed", "1"])
    assert result.exit_code == 0
    assert "P(TVPI < 1)" in result.output
    assert re.search(r"TVPI\s+\d+\.\d\dx", result.output)


def test_html_report_is_self_contained(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        main, ["simulate", SEED_FUND, "--runs", "500", "--seed", "1", "--html", str(out)]
    )
    assert result.exit_code == 0, result.output
    html = out.read_text(encoding="utf-8")
    assert html.count("<svg") == 3
    assert "J-curve" in html and "TVPI" in html and "fan chart" in html
    # Nothing is loaded from elsewhere: no src/href attributes, url() only to in-document
    # fragments (SVG clip paths and hatches), no scripts.
    assert not re.search(r"\s(src|href)\s*=", html)
    assert re.findall(r"url\((?!#)", html) == []
    assert "<script" not in html and "@import" not in html


def test_invalid_fund_file_lists_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: X\nfund_size: -1\nvintage_year: 1990\nwaterfall: {carry: 0.9}\n")
    result = CliRunner().invoke(main, ["model", str(bad)])
    assert result.exit_code == 2
    for path in ("/fund_size", "/vintage_year", "/model_inputs_as_of", "/waterfall/carry"):
        assert path in result.output
    assert "Traceback" not in result.output


def test_unreadable_inputs_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["model", str(tmp_path / "missing.yaml")]).exit_code == 2
    garbage = tmp_path / "garbage.yaml"
    garbage.write_bytes(b"\xff\xfe\x00 not yaml")
    assert runner.invoke(main, ["model", str(garbage)]).exit_code == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    assert runner.invoke(main, ["model", str(broken)]).exit_code == 2
    assert runner.invoke(main, ["simulate", SEED_FUND, "--runs", "5"]).exit_code == 2


def test_the_installed_command_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "updog", "model", SEED_FUND],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "TVPI" in proc.stdout


def test_impossible_dates_and_deep_nesting_exit_2_without_traceback(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_date = tmp_path / "date.yaml"
    bad_date.write_text(
        "name: X\nfund_size: 5\nvintage_year: 2025\nmodel_inputs_as_of: 2025-02-30\n"
    )
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    nul = tmp_path / "nul.yaml"
    nul.write_text(
        'name: "bad\\0name"\nfund_size: 5\nvintage_year: 2025\nmodel_inputs_as_of: 2025-01-01\n'
    )
    for path in (bad_date, deep, nul):
        result = runner.invoke(main, ["model", str(path)])
        assert result.exit_code == 2, (path, result.output)
        assert "Traceback" not in result.output


def test_an_engine_failure_is_one_line_and_exit_code_1(monkeypatch: pytest.MonkeyPatch) -> None:
    from updog.cli import engines
    from updog.model.guards import EngineGuardError

    def broken(*_args: object, **_kwargs: object) -> object:
        raise EngineGuardError("negative NAV in quarter 2025Q3")

    monkeypatch.setattr(engines, "run_forecast", broken)
    result = CliRunner().invoke(main, ["model", str(SEED_FUND)])
    assert result.exit_code == 1
    assert "engine guard: negative NAV in quarter 2025Q3" in result.output
    assert "Traceback" not in result.output


def test_every_listed_command_loads_under_its_name() -> None:
    from updog.cli import COMMANDS, LazyGroup

    group = main
    assert isinstance(group, LazyGroup)
    for name in COMMANDS:
        command = group.get_command(click.Context(group), name)
        assert command is not None and command.name == name


def _commands(group: click.Group, ctx: click.Context) -> list[tuple[str, click.Command]]:
    """Every command under ``group`` as (``"updog users create"``-style path, command)."""
    found: list[tuple[str, click.Command]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        path = f"{ctx.command_path} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found += _commands(command, click.Context(command, info_name=name, parent=ctx))
    return found


def test_no_help_text_shows_rst_markup() -> None:
    """``updog tokens --help`` showed Sphinx markup (````updog tokens create````, ``:class:``)
    from the docstrings (issue 11, item 14): help is plain text."""
    root = click.Context(main, info_name="updog")
    commands = _commands(main, root)
    assert len(commands) > 10
    for path, _command in commands:
        shown = CliRunner().invoke(main, [*path.split()[1:], "--help"])
        assert shown.exit_code == 0, (path, shown.output)
        assert not re.search(r"``|:(class|func|meth|data|mod|attr):`", shown.output), (
            path,
            shown.output,
        )


def test_the_readme_names_every_command() -> None:
    """``updog sweep`` was missing from the README (issue 11, item 14)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    root = click.Context(main, info_name="updog")
    missing = [path for path, _ in _commands(main, root) if path not in readme]
    assert missing == []


def test_help_imports_none_of_the_heavy_libraries() -> None:
    """``updog --help`` took 5–8 s when it imported scipy, matplotlib and Dask at start-up."""
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom updog.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\nassert result.exit_code == 0\n"
        "heavy = {'numpy', 'scipy', 'matplotlib', 'dask', 'distributed', 'psycopg', 'pydantic'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _in_a_terminal(command: str) -> str:
    """Run ``command`` with a pseudo-terminal (util-linux ``script``); what the terminal got."""
    script = shutil.which("script")
    if script is None:
        pytest.skip("util-linux 'script' is needed to give the CLI a terminal")
    out = subprocess.run(
        [script, "-qec", command, "/dev/null"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "100"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", ["simulate", "sweep"])
def test_long_runs_show_progress_on_a_terminal_only(command: str, tmp_path: Path) -> None:
    """A 1M-path simulation used to print nothing for minutes (issue 11)."""
    cli = f"{sys.executable} -m updog {command} {SEED_FUND} --runs 1000"
    shown = _in_a_terminal(f"{cli} > {tmp_path / 'table.txt'}")
    assert "simulating" in shown or "sweeping" in shown
    quiet = _in_a_terminal(f"{cli} --format json > {tmp_path / 'out.json'}")
    assert "simulating" not in quiet and "sweeping" not in quiet
    assert json.loads((tmp_path / "out.json").read_text())
    piped = subprocess.run([*cli.split()], capture_output=True, text=True, timeout=300, check=True)
    assert "simulating" not in piped.stderr and "sweeping" not in piped.stderr
