"""Self-contained HTML report of a forecast and a simulation (``updog simulate --html``).

Charts are drawn with matplotlib as inline SVG (text converted to paths), so the file opens
offline with no script, font or stylesheet from anywhere else. Each chart has a text
alternative (``<title>``/``aria-label``) and a data table, and series differ by line style or
hatching as well as colour.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import itertools

import matplotlib.pyplot as plt
from jinja2 import Environment, PackageLoader, select_autoescape

_env = Environment(
    loader=PackageLoader("updog.web", "templates"),
    autoescape=select_autoescape(["html"]),
    keep_trailing_newline=True,
)


def svg_of(fig: Any) -> str:
    buf = io.StringIO()
    with plt.rc_context({"svg.fonttype": "path", "svg.hashsalt": "updog"}):
        fig.savefig(
            buf,
            format="svg",
            bbox_inches="tight",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def dollar_axis(values: list[float]) -> Callable[[float, float], str]:
    """A tick formatter for dollars fitted to the span of ``values``: $M without decimals
    from $10M, with one decimal from $1M, $K below (so a small fund's ticks stay distinct),
    and never a "−0"."""
    span = max((abs(v) for v in values), default=0.0)
    scale, suffix, digits = (1e6, "M", 0) if span >= 1e7 else (1e6, "M", 1)
    if span < 1e6:
        scale, suffix, digits = 1e3, "K", 0

    def fmt(x: float, _pos: float | None = None) -> str:
        value = round(x / scale, digits) + 0.0  # + 0.0 turns −0.0 into 0.0
        sign = "−" if value < 0 else ""
        return f"{sign}${abs(value):,.{digits}f}{suffix}"

    return fmt


def j_curve_svg(forecast: dict[str, Any]) -> str:
    """J-curve: LP net cash flow per quarter (bars) and cumulative (line), dollars."""
    rows = forecast["quarters"]
    labels = [r["quarter"] for r in rows]
    net = [r["lp_distributions"] - r["called"] for r in rows]
    cumulative: list[float] = []
    total = 0.0
    for v in net:
        total += v
        cumulative.append(total)
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = range(len(labels))
    ax.bar(x, net, color="#7aa6c2", edgecolor="#1f4e79", hatch="//", label="net cash flow")
    ax.plot(
        x,
        cumulative,
        color="#b03a2e",
        linewidth=2,
        linestyle="--",
        marker="o",
        markersize=3,
        label="cumulative",
    )
    ax.axhline(0, color="black", linewidth=0.8)
    step = max(1, len(labels) // 10)
    ax.set_xticks(list(x)[::step], labels[::step], rotation=45, ha="right", fontsize=8)
    ax.yaxis.set_major_formatter(dollar_axis(net + cumulative))
    ax.set_title("J-curve: LP net cash flow")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return svg_of(fig)


def histogram_svg(simulation: dict[str, Any]) -> str:
    """Histogram of TVPI over all paths, with a marker at 1.0x."""
    hist = simulation["histograms"]["tvpi"]
    edges, counts = hist["edges"], hist["counts"]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    if counts:
        widths = [b - a for a, b in itertools.pairwise(edges)]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color="#7aa6c2", edgecolor="#1f4e79")
        ax.axvline(1.0, color="#b03a2e", linestyle="--", label="1.0x (capital returned)")
        ax.legend(fontsize=8)
    ax.set_xlabel("net TVPI (x)")
    ax.set_ylabel("paths")
    ax.set_title(f"TVPI distribution ({simulation['runs']:,} paths)")
    ax.grid(axis="y", alpha=0.3)
    return svg_of(fig)


def fan_svg(simulation: dict[str, Any]) -> str:
    """NAV fan chart: p10 / p50 / p90 of NAV per quarter."""
    fan = simulation["fan_chart"]
    labels = fan["quarters"]
    nav = fan["nav"]
    x = list(range(len(labels)))
    p10 = [v or 0.0 for v in nav["p10"]]
    p50 = [v or 0.0 for v in nav["p50"]]
    p90 = [v or 0.0 for v in nav["p90"]]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.fill_between(x, p10, p90, color="#c9dceb", label="p10–p90")
    ax.plot(x, p90, color="#1f4e79", linestyle=":", label="p90")
    ax.plot(x, p50, color="#1f4e79", linewidth=2, label="median")
    ax.plot(x, p10, color="#1f4e79", linestyle="--", label="p10")
    step = max(1, len(labels) // 10)
    ax.set_xticks(x[::step], labels[::step], rotation=45, ha="right", fontsize=8)
    ax.yaxis.set_major_formatter(dollar_axis(p90))
    ax.set_title(f"NAV fan chart ({fan['subsample_paths']:,} paths)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return svg_of(fig)


def render_report(spec_name: str, forecast: dict[str, Any], simulation: dict[str, Any]) -> str:
    """The HTML text of the report (one file, no external references)."""
    template = _env.get_template("report.html")
    return template.render(
        name=spec_name,
        forecast=forecast,
        simulation=simulation,
        j_curve=j_curve_svg(forecast),
        histogram=histogram_svg(simulation),
        fan=fan_svg(simulation),
    )
