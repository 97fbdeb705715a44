"""``updog model`` and ``updog simulate``: the pure engines from the command line.

Exit codes: 0 success, 2 unreadable or invalid fund file (every validation error is printed
with its JSON Pointer path), 1 an engine failure.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import yaml

from updog.model.forecast import run_forecast
from updog.model.guards import EngineGuardError
from updog.model.plan import PlanError
from updog.model.spec import FundSpec, SpecError
from updog.model.validation import load_spec
from updog.simulation import simulate
from updog.simulation.engine import MAX_RUNS, MIN_RUNS

#: Fund files larger than this are refused (a spec is a human-scale document).
MAX_FUND_FILE_BYTES = 1_000_000
#: ``--executor auto`` uses a local process pool from this many runs (eight blocks).
AUTO_POOL_RUNS = 32_768


def read_fund_file(path: Path) -> FundSpec:
    """Load and validate a YAML or JSON fund file; raises click.ClickException (exit 2)."""
    try:
        if path.stat().st_size > MAX_FUND_FILE_BYTES:
            raise _usage(f"{path}: larger than {MAX_FUND_FILE_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _usage(f"{path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise _usage(f"{path}: not UTF-8 text") from exc
    if "\x00" in text:
        raise _usage(f"{path}: contains a NUL character")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _usage(f"{path}: not valid YAML/JSON: {exc}") from exc
    except ValueError as exc:  # e.g. a date that does not exist (2025-02-30)
        raise _usage(f"{path}: invalid value: {exc}") from exc
    except RecursionError:
        raise _usage(f"{path}: nested too deeply") from None
    try:
        return load_spec(data)
    except SpecError as exc:
        raise _usage(f"{path}: the fund is not valid:\n{exc}") from exc


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Turn an engine failure (a plan the engines cannot build, a failed engine guard) into a
    one-line error and exit code 1 instead of a traceback."""
    try:
        yield
    except (PlanError, EngineGuardError) as exc:
        kind = "the plan cannot be built" if isinstance(exc, PlanError) else "engine guard"
        raise click.ClickException(f"{kind}: {exc}") from exc


@contextlib.contextmanager
def progress_bar(total: int, label: str, fmt: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr while the body runs; yields ``advance(done)``. Shown only when
    stderr is a terminal and the output is not a JSON pipeline (``--format json`` with stdout
    redirected), so scripts and CI logs stay clean."""
    if not sys.stderr.isatty() or (fmt == "json" and not sys.stdout.isatty()):
        yield lambda _done: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeRemainingColumn

    with Progress(
        f"[bold]{label}",
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)


class _BadInput(click.ClickException):
    """A fund file or argument the engines cannot use: the message, exit status 2."""

    exit_code = 2


def _usage(message: str) -> click.ClickException:
    return _BadInput(message)


def _money(x: float | None) -> str:
    return "—" if x is None else f"${x:,.0f}"


def _multiple(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}x"


def _percent(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:>16}" for k, v in rows)


def forecast_table(summary: dict[str, Any]) -> str:
    """The forecast summary as a text table, its construction and its warnings."""
    companies = summary["companies"]
    graduated = sum(companies["graduated"].values())
    plan, reserves, term = summary["plan"], summary["reserves"], summary["end_of_term"]
    size = summary["fund_size"]
    by_stage = ", ".join(f"{n} {name}" for name, n in plan["companies_by_stage"].items())
    rows = [
        ("Paid-in", f"{_money(summary['paid_in'])} ({_percent(summary['paid_in'] / size)})"),
        ("Uncalled commitment", _money(summary["uncalled"])),
        ("Distributions (LP)", _money(summary["distributions"])),
        ("NAV (net, at horizon)", _money(summary["net_nav"])),
        ("DPI", _multiple(summary["dpi"])),
        ("RVPI", _multiple(summary["rvpi"])),
        ("TVPI", _multiple(summary["tvpi"])),
        ("Net IRR", _percent(summary["net_irr"])),
        ("Gross IRR", _percent(summary["gross_irr"])),
        ("Gross multiple", _multiple(summary["moic"])),
        ("Management fees", _money(summary["fees"])),
        ("Management fees waived", _money(summary["fees_waived"])),
        ("Expenses", _money(summary["expenses"])),
        ("Carried interest", _money(summary["carry"])),
        ("Recycled", _money(summary["recycled"])),
        ("Construction", f"{plan['mode']}, unused reserves: {plan['unused_reserves']}"),
        ("Investable capital", _money(plan["investable"])),
        ("Fee budget", _money(plan["fee_budget"])),
        ("Companies planned", f"{plan['companies_planned']} ({by_stage})"),
        ("Initial checks planned", _money(plan["initial_planned"])),
        ("Reserves planned", _money(reserves["planned"])),
        ("Reserves: ladder's expected need", _money(reserves["need"])),
        ("Reserves used (follow-ons)", _money(reserves["used"])),
        ("Redeployed into new companies", _money(reserves["redeployed"])),
        ("Companies: invested in", f"{companies['initial']:.1f}"),
        ("Companies: graduated (rounds)", f"{graduated:.1f}"),
        ("Companies: exited", f"{companies['exited']:.1f}"),
        ("Companies: failed", f"{companies['failed']:.1f}"),
        ("Companies: held at horizon", f"{companies['held_at_horizon']:.1f}"),
        (
            f"End of term ({term['policy'].replace('_', ' ')})",
            f"{_money(term['value'])} ({_percent(term['share'])} of value)",
        ),
    ]
    lines = [_table(rows)]
    lines.extend(f"Warning {w['path']}: {w['message']} [{w['code']}]" for w in summary["warnings"])
    return "\n".join(lines)


#: Why P(TVPI < 1) and P(net IRR < 0) are printed once when they are equal.
COINCIDE = (
    "P(TVPI < 1) = P(net IRR < 0): on every path the LPs' net IRR is negative exactly when they "
    "get back (distributions plus residual value) less than they paid in."
)


def simulation_table(result: dict[str, Any]) -> str:
    """The simulation's distribution as a text table."""
    stats = ("mean", "p5", "p25", "p50", "p75", "p95")
    header = f"{'':<16}" + "".join(f"{s:>10}" for s in stats)
    lines = [f"{result['runs']:,} paths, seed {result['seed']}", header]
    metrics = result["metrics"]
    same_dpi = all(metrics["dpi"][s] == metrics["tvpi"][s] for s in stats)
    for key, label, fmt in (
        ("tvpi", "TVPI", _multiple),
        ("dpi", "DPI", _multiple),
        ("net_irr", "Net IRR", _percent),
        ("gross_multiple", "Gross multiple", _multiple),
    ):
        metric = metrics[key]
        lines.append(f"{label:<16}" + "".join(f"{fmt(metric[s]):>10}" for s in stats))
    if same_dpi:
        lines.append("DPI = TVPI: the fund sells what it holds at the end of its term.")
    probs = result["probabilities"]
    if probs["tvpi_below_1"] == probs["net_irr_below_0"]:
        lines.append(f"P(TVPI < 1)     {_percent(probs['tvpi_below_1']):>10}")
        lines.append(COINCIDE)
    else:
        lines.append(f"P(TVPI < 1)     {_percent(probs['tvpi_below_1']):>10}")
        lines.append(f"P(net IRR < 0)  {_percent(probs['net_irr_below_0']):>10}")
    irr = result["irr"]
    if irr["undefined_paths"]:
        paths = "path" if irr["undefined_paths"] == 1 else "paths"
        lines.append(
            f"Net IRR undefined on {irr['undefined_paths']:,} {paths} (no rate sets the NPV to "
            f"zero): excluded from the IRR percentiles; {irr['undefined_losing_paths']:,} of "
            "them lost money and count in P(net IRR < 0)"
        )
    means = result["means"]
    value = means["total_value"]["mean"]
    lines.append(
        f"Mean paid-in {_money(means['paid_in']['mean'])}, recycled "
        f"{_money(means['recycled']['mean'])}, fees waived "
        f"{_money(means['fees_waived']['mean'])}; end of term "
        f"{_percent(means['end_value']['mean'] / value if value > 0 else None)} of gross value"
    )
    return "\n".join(lines)


def _json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, indent=2, allow_nan=False)


@click.command("model")
@click.argument("fund_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table: summary; json: summary and quarterly series.",
)
def model_command(fund_file: Path, fmt: str) -> None:
    """Print the deterministic forecast of FUND_FILE (YAML or JSON)."""
    spec = read_fund_file(fund_file)
    with engine_errors():
        forecast = run_forecast(spec)
    if fmt == "json":
        click.echo(_json(forecast.to_dict()))
    else:
        click.echo(
            f"{spec.name} — deterministic forecast ({forecast.summary['quarters']} quarters)"
        )
        click.echo(forecast_table(forecast.summary))


@click.command("simulate")
@click.argument("fund_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--runs",
    type=click.IntRange(MIN_RUNS, MAX_RUNS),
    default=10_000,
    show_default=True,
    help="Number of Monte Carlo paths.",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**63 - 1),
    default=None,
    help="Seed; the same seed gives the same result. Drawn and printed if absent.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also write a self-contained HTML report with charts.",
)
@click.option(
    "--executor",
    type=click.Choice(["auto", "local", "process", "dask"]),
    default="auto",
    show_default=True,
    help="Where blocks of paths run: local (this process), process (a local process pool), "
    "dask (the cluster at DASK_SCHEDULER_ADDRESS). auto: dask when DASK_SCHEDULER_ADDRESS "
    f"is set, else process from {AUTO_POOL_RUNS:,} runs, else local. Same seed, same result.",
)
def simulate_command(
    fund_file: Path,
    runs: int,
    seed: int | None,
    fmt: str,
    html_path: Path | None,
    executor: str,
) -> None:
    """Print the Monte Carlo outcome distribution of FUND_FILE."""
    spec = read_fund_file(fund_file)
    run_on = _executor(executor, runs)
    with engine_errors(), progress_bar(runs, "simulating", fmt) as advance:
        result = simulate(
            spec, runs, seed, executor=run_on, progress=lambda done, _: advance(done)
        ).to_dict()
    if fmt == "json":
        click.echo(_json(result))
    else:
        click.echo(simulation_table(result))
    if html_path is not None:
        from updog.web.report import render_report

        with engine_errors():
            html = render_report(spec.name, run_forecast(spec).to_dict(), result)
        html_path.write_text(html, encoding="utf-8")
        click.echo(f"report written to {html_path}", err=True)


@click.command("sweep")
@click.argument("fund_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--runs",
    type=click.IntRange(MIN_RUNS, MAX_RUNS),
    default=10_000,
    show_default=True,
    help="Paths per reserve ratio.",
)
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=42, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
def sweep_command(fund_file: Path, runs: int, seed: int, fmt: str) -> None:
    """Median TVPI of FUND_FILE across reserve ratios 0.20..0.70 (same seed for each)."""
    from updog.simulation.sweep import DEFAULT_RATIOS, reserve_sweep

    spec = read_fund_file(fund_file)
    total = runs * len(DEFAULT_RATIOS)
    with engine_errors(), progress_bar(total, "sweeping", fmt) as advance:
        result = reserve_sweep(spec, runs, seed, progress=lambda done, _: advance(done))
    if fmt == "json":
        click.echo(_json(result))
        return
    click.echo(f"{runs:,} paths per ratio, seed {seed}")
    click.echo(f"{'reserve':>8} {'TVPI p50':>10} {'± se':>8} {'mean':>8} {'P(<1x)':>8}")
    for p in result["points"]:
        click.echo(
            f"{p['reserve_ratio']:>8.2f} {p['tvpi_p50']:>9.3f}x {p['tvpi_p50_se']:>8.3f} "
            f"{p['tvpi_mean']:>7.3f}x {100 * p['tvpi_below_1']:>7.1f}%"
        )


def _executor(kind: str, runs: int) -> Any:
    """The executor named by ``--executor`` (None: in this process)."""
    import os

    address = os.environ.get("DASK_SCHEDULER_ADDRESS", "").strip() or None
    if kind == "auto":
        kind = "dask" if address else ("process" if runs >= AUTO_POOL_RUNS else "local")
    if kind == "dask":
        if address is None:
            raise _usage("--executor dask needs DASK_SCHEDULER_ADDRESS (e.g. tcp://host:8786)")
        from updog.simulation.dask_executor import DaskExecutor

        return DaskExecutor(address)
    if kind == "process":
        from updog.simulation.executors import ProcessPoolMap

        return ProcessPoolMap()
    return None
