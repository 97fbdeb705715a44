"""How the example funds and the market factor compare with published data and with each other.

Usage: ``python benchmarks/calibration.py [--runs 20000] [--large-runs 2000]``

Prints, for each example fund, the figures a fund CFO checks first: paid-in against the
commitment, reserves used against planned, the forecast's paid-in against the simulated mean
(in standard errors and in % of the commitment), the share of value from the end of the term,
and the simulated TVPI quartiles next to Cambridge Associates' US venture quartiles for recent
mature vintages. Then the calibration of the market factor: the spread of ln(TVPI) of a
diversified $1B version of the seed fund (about 800 companies) with the factor off and at its
default, against the 0.33 standard deviation of ln(median TVPI) across vintages 2000–2020.

Sources: Cambridge Associates, "US Venture Capital Index and Selected Benchmark Statistics",
data as of 31 March 2025 (net TVPI quartiles by vintage; median TVPI by vintage 2000–2020).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import yaml

from updog.model.forecast import run_forecast
from updog.model.spec import DEFAULT_MARKET_VOLATILITY
from updog.model.validation import load_spec
from updog.simulation import simulate

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("seed-fund", "series-a-fund", "growth-fund")
#: Cambridge Associates US VC net TVPI (lower quartile, median, upper quartile) by vintage.
CA_QUARTILES = {
    2012: (1.58, 2.26, 4.18),
    2013: (1.60, 2.30, 3.05),
    2014: (1.66, 2.35, 3.49),
    2015: (1.48, 2.09, 2.98),
    2016: (1.49, 2.13, 2.74),
}
#: Standard deviation of ln(median TVPI) across vintages 2000–2020 (same source).
CA_VINTAGE_SPREAD = 0.33


def _examples(runs: int) -> None:
    print(f"Example funds: forecast vs {runs:,} simulated paths (seed 2024)")
    header = (
        f"{'fund':<15}{'paid-in':>9}{'reserves':>10}{'paid-in gap':>24}"
        f"{'end of term':>13}{'TVPI p25/p50/p75':>20}"
    )
    print(header)
    for name in EXAMPLES:
        spec = load_spec(yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text()))
        s = run_forecast(spec).summary
        r = simulate(spec, runs, 2024).to_dict()
        mean, se = r["means"]["paid_in"]["mean"], r["means"]["paid_in"]["se"]
        gap = s["paid_in"] - mean
        tvpi = r["metrics"]["tvpi"]
        print(
            f"{name:<15}{s['paid_in'] / spec.fund_size:>9.1%}"
            f"{s['reserves']['used'] / s['reserves']['planned']:>10.1%}"
            f"{gap / se:>+10.1f} σ ({gap / spec.fund_size:+.2%} C)"
            f"{s['end_of_term']['share']:>13.1%}"
            f"{tvpi['p25']:>8.2f}/{tvpi['p50']:.2f}/{tvpi['p75']:.2f}"
        )
    print("Cambridge Associates US VC net TVPI quartiles (lower/median/upper):")
    for vintage, (low, mid, high) in CA_QUARTILES.items():
        print(f"  vintage {vintage}: {low:.2f}/{mid:.2f}/{high:.2f}")


def _market_factor(runs: int) -> None:
    data = yaml.safe_load((ROOT / "examples" / "seed-fund.yaml").read_text())
    scale = 1e9 / data["fund_size"]
    data["fund_size"] = 1e9
    for expense in data.get("expenses", []):
        expense["annual_amount"] *= scale
    print(f"\nMarket factor: $1B seed fund, {runs:,} paths")
    for volatility in (0.0, DEFAULT_MARKET_VOLATILITY):
        data["market"] = {"volatility": volatility}
        tvpi = simulate(load_spec(data), runs, 5).to_dict()["metrics"]["tvpi"]
        spread = math.log(tvpi["p75"] / tvpi["p25"]) / 1.349  # IQR of a normal = 1.349 σ
        print(f"  volatility {volatility:.2f}: spread of ln(TVPI) {spread:.3f}")
    print(f"  target (vintage dispersion of median TVPI): {CA_VINTAGE_SPREAD:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--large-runs", type=int, default=2_000)
    args = parser.parse_args()
    _examples(args.runs)
    _market_factor(args.large_runs)


if __name__ == "__main__":
    main()
