"""Server-side SVG charts for the pages, each with a text alternative and a data table.

The charts are matplotlib SVG with text drawn as paths (so they look the same on every
machine), served inside ``<img src="data:image/svg+xml;base64,…">``: an image document runs
no script and its inline styles are outside the page's CSP, which stays strict. Series differ
by line style, marker or hatching as well as by colour. The J-curve, TVPI histogram and NAV
fan chart are those of the HTML report (:mod:`updog.web.report`).

pyplot keeps global state, so every drawing holds :data:`_LOCK`; stored results are
immutable, so a chart is cached per stored result id.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import matplotlib.pyplot as plt

from updog.web import report
from updog.web.report import dollar_axis, svg_of

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Chart:
    """An image (``src`` is a data URI), its short ``alt`` text and a longer ``summary``
    of what it shows; the page adds the data table."""

    slug: str
    title: str
    src: str
    alt: str
    summary: str


def _data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _draw(fn: Callable[..., str], *args: Any) -> str:
    with _LOCK:
        return _data_uri(fn(*args))


def _money(value: float) -> str:
    sign = "−" if value < 0 else ""
    return f"{sign}${abs(value) / 1e6:,.1f}M"


def cash_flow_svg(forecast: dict[str, Any]) -> str:
    """Cumulative paid-in, LP distributions and NAV per quarter (three line styles)."""
    rows = forecast["quarters"]
    labels = [r["quarter"] for r in rows]
    x = list(range(len(labels)))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(x, [r["paid_in"] for r in rows], color="#1f4e79", linewidth=2, label="paid-in")
    ax.plot(
        x,
        [r["distributions"] for r in rows],
        color="#b03a2e",
        linewidth=2,
        linestyle="--",
        marker="o",
        markersize=3,
        label="distributions (LP)",
    )
    ax.plot(
        x,
        [r["net_nav"] for r in rows],
        color="#3b6e22",
        linewidth=2,
        linestyle=":",
        marker="s",
        markersize=3,
        label="NAV (net)",
    )
    step = max(1, len(labels) // 10)
    ax.set_xticks(x[::step], labels[::step], rotation=45, ha="right", fontsize=8)
    values = [v for r in rows for v in (r["paid_in"], r["distributions"], r["net_nav"])]
    ax.yaxis.set_major_formatter(dollar_axis(values))
    ax.set_title("Paid-in, distributions and NAV")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return svg_of(fig)


def multiples_svg(forecast: dict[str, Any]) -> str:
    """DPI and TVPI per quarter."""
    rows = forecast["quarters"]
    labels = [r["quarter"] for r in rows]
    x = list(range(len(labels)))
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.plot(x, [r["tvpi"] or 0.0 for r in rows], color="#1f4e79", linewidth=2, label="TVPI")
    ax.plot(
        x,
        [r["dpi"] or 0.0 for r in rows],
        color="#b03a2e",
        linewidth=2,
        linestyle="--",
        marker="o",
        markersize=3,
        label="DPI",
    )
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
    step = max(1, len(labels) // 10)
    ax.set_xticks(x[::step], labels[::step], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("multiple of paid-in (x)")
    ax.set_title("DPI and TVPI")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return svg_of(fig)


def company_outcomes(summary: dict[str, Any]) -> list[tuple[str, float]]:
    """Expected companies by outcome: exited, failed, held at the horizon."""
    companies = summary.get("companies") or {}
    return [
        ("Exited", float(companies.get("exited") or 0.0)),
        ("Failed", float(companies.get("failed") or 0.0)),
        ("Held at horizon", float(companies.get("held_at_horizon") or 0.0)),
    ]


def companies_svg(summary: dict[str, Any]) -> str:
    """Horizontal bars of expected companies by outcome, each labelled with its value."""
    rows = company_outcomes(summary)
    fig, ax = plt.subplots(figsize=(8, 2.6))
    names = [n for n, _ in rows]
    values = [v for _, v in rows]
    hatches = ["//", "xx", ".."]
    bars = ax.barh(names, values, color=["#7aa6c2", "#d9a19a", "#b5cf9f"], edgecolor="#1b1b1b")
    for bar, hatch in zip(bars, hatches, strict=False):
        bar.set_hatch(hatch)
    for bar, value in zip(bars, values, strict=False):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.1f}", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("companies (expected)")
    ax.set_title(f"Companies by outcome ({summary['companies']['initial']:.0f} initial)")
    ax.set_xlim(0, max([*values, 1.0]) * 1.15)
    ax.grid(axis="x", alpha=0.3)
    return svg_of(fig)


@lru_cache(maxsize=32)
def _forecast_images(key: str, forecast_json: str) -> tuple[str, str, str, str]:
    import json

    forecast = json.loads(forecast_json)
    return (
        _draw(report.j_curve_svg, forecast),
        _draw(cash_flow_svg, forecast),
        _draw(multiples_svg, forecast),
        _draw(companies_svg, forecast["summary"]),
    )


def forecast_charts(key: str, forecast: dict[str, Any]) -> list[Chart]:
    """The forecast page's four charts (``key``: the stored forecast's id)."""
    import json

    jc, cf, mu, co = _forecast_images(key, json.dumps(forecast, sort_keys=True))
    rows = forecast["quarters"]
    net = [r["lp_distributions"] - r["called"] for r in rows]
    cumulative, total, trough, trough_q, breakeven = [], 0.0, 0.0, rows[0]["quarter"], None
    for r, v in zip(rows, net, strict=True):
        total += v
        cumulative.append(total)
        if total < trough:
            trough, trough_q = total, r["quarter"]
        if breakeven is None and total >= 0 and trough < 0:
            breakeven = r["quarter"]
    last = rows[-1]
    s = forecast["summary"]
    companies = ", ".join(f"{n.lower()} {v:.1f}" for n, v in company_outcomes(s))
    return [
        Chart(
            "j-curve",
            "J-curve: LP net cash flow",
            jc,
            "J-curve of LP net cash flow per quarter (bars) and cumulative (dashed line).",
            f"The cumulative LP net cash flow bottoms out at {_money(trough)} in {trough_q} "
            + (f"and turns positive in {breakeven}" if breakeven else "and stays negative")
            + f"; it ends at {_money(total)}.",
        ),
        Chart(
            "cash-flows",
            "Paid-in, distributions and NAV over time",
            cf,
            "Line chart of cumulative paid-in (solid), LP distributions (dashed, circles) "
            "and net NAV (dotted, squares) per quarter.",
            f"By {last['quarter']} LPs have paid in {_money(last['paid_in'])} and received "
            f"{_money(last['distributions'])}; NAV is {_money(last['net_nav'])}.",
        ),
        Chart(
            "multiples",
            "DPI and TVPI over time",
            mu,
            "Line chart of TVPI (solid) and DPI (dashed, circles) per quarter, with a "
            "dotted line at 1.0x.",
            f"TVPI ends at {(last['tvpi'] or 0):.2f}x and DPI at {(last['dpi'] or 0):.2f}x "
            f"in {last['quarter']}.",
        ),
        Chart(
            "companies",
            "Companies by outcome",
            co,
            "Bar chart of expected companies by outcome, each bar labelled with its count.",
            f"Of {s['companies']['initial']:.0f} initial investments (expected): {companies}.",
        ),
    ]


@lru_cache(maxsize=32)
def _simulation_images(key: str, sim_json: str) -> tuple[str, str]:
    import json

    sim = json.loads(sim_json)
    return _draw(report.histogram_svg, sim), _draw(report.fan_svg, sim)


def simulation_charts(key: str, sim: dict[str, Any]) -> list[Chart]:
    """The simulation page's histogram and fan chart (``key``: the simulation's id)."""
    import json

    hist, fan = _simulation_images(key, json.dumps(sim, sort_keys=True))
    tvpi = sim["metrics"]["tvpi"]
    below = sim["probabilities"]["tvpi_below_1"]
    nav = sim["fan_chart"]["nav"]
    quarters = sim["fan_chart"]["quarters"]
    peak = max(range(len(quarters)), key=lambda i: nav["p50"][i] or 0.0)
    return [
        Chart(
            "tvpi-histogram",
            "Distribution of net TVPI",
            hist,
            "Histogram of net TVPI over all simulated paths with a dashed line at 1.0x.",
            f"Median TVPI {tvpi['p50']:.2f}x (p5 {tvpi['p5']:.2f}x, p95 {tvpi['p95']:.2f}x); "
            f"{below * 100:.1f} % of paths return less than the capital paid in.",
        ),
        Chart(
            "nav-fan",
            "NAV fan chart",
            fan,
            "Fan chart of NAV per quarter: median (solid), p10 (dashed) and p90 (dotted) "
            "with the band between them shaded.",
            f"Median NAV peaks at {_money(nav['p50'][peak] or 0.0)} in {quarters[peak]} "
            f"(p10 {_money(nav['p10'][peak] or 0.0)}, p90 {_money(nav['p90'][peak] or 0.0)}).",
        ),
    ]
