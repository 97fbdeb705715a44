"""Monte Carlo driver (SPEC §3.3): fixed-size blocks of paths, one seeded stream per block.

Block ``i`` of a run with seed ``s`` draws from ``SeedSequence(s, spawn_key=(i,))`` — the
``i``-th child that ``SeedSequence(s).spawn`` would hand out — through ``PCG64``. A task may
take any number of blocks, on any executor; block results are reduced in block order. So the
result for a seed is identical for every chunking, worker count and executor.

Memory: per-path final metrics are kept for every path (eight float64 a path); quarterly
series for the fan chart are kept for the first :data:`FAN_SUBSAMPLE_PATHS` paths only (a
stated subsample; the percentile standard errors of the final metrics show the effect of the
sample size).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from updog import ENGINE_VERSION
from updog.finance import STATUS_OK, STATUS_TOTAL_LOSS, periodic_irr_batch
from updog.model.construction import build_plan
from updog.model.faults import FaultPlan
from updog.model.guards import CENT, EngineGuardError, check_simulation
from updog.model.plan import Plan, quarter_end, quarter_label
from updog.model.spec import FundSpec
from updog.simulation import stats
from updog.simulation.sampling import BlockStreams, sample_portfolio

Array = NDArray[np.float64]

#: Paths per block: the unit of seeding (a constant: changing it changes every result).
BLOCK_SIZE = 4096
#: Working memory a slice of a block may use, bytes (see :func:`run_block`).
SLICE_BUDGET_BYTES = 96 * 1024 * 1024
#: Paths whose quarterly series feed the fan chart.
FAN_SUBSAMPLE_PATHS = 20_000
#: Bounds on the number of runs (SPEC §3.3).
MIN_RUNS, MAX_RUNS = 100, 5_000_000
#: Edges of the investment-level gross multiple bins reported in ``deal_outcomes``: written
#: off (0x), (0, 1), [1, 3), [3, 10), 10x and above — the bins of Correlation Ventures'
#: published deal-outcome distribution, so the stage assumptions can be checked against it.
DEAL_BINS = ("written_off", "below_1x", "1x_to_3x", "3x_to_10x", "10x_and_above")
#: Per-path outcomes reported for every path.
METRICS = ("tvpi", "dpi", "net_irr", "gross_multiple", "carry")
#: Per-path dollar totals whose means (with standard errors) are reported: the quantities the
#: deterministic forecast is compared with, recycling, fees waived (beyond the fee budget or
#: the undrawn commitment), and the value from the end of the term against the total gross
#: value (gross proceeds plus NAV at the horizon).
MOMENTS = (
    "paid_in",
    "gross_proceeds",
    "invested",
    "recycled",
    "fees_waived",
    "end_value",
    "total_value",
)


@dataclass(frozen=True)
class BlockResult:
    """Outcomes of one block, shapes (paths,) except the fan-chart series (paths, quarters)."""

    index: int
    metrics: dict[str, Array]
    irr_status: NDArray[np.int8]
    paths: int
    #: Per-quantity (sum, sum of squares) over the block's paths, dollars, for each name of
    #: :data:`MOMENTS` — enough for means and standard errors, O(1) memory.
    moments: dict[str, tuple[float, float]]
    fan_nav: Array
    fan_dpi: Array
    fan_tvpi: Array
    deal_counts: NDArray[np.int64]
    min_nav: float
    max_paid_in: float


def block_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed sequence of block ``index`` of a run seeded with ``seed``."""
    return np.random.SeedSequence(seed, spawn_key=(index,))


def block_sizes(runs: int, block_size: int = BLOCK_SIZE) -> list[int]:
    """Paths in each block: full blocks and a final partial one."""
    full, rest = divmod(runs, block_size)
    return [block_size] * full + ([rest] if rest else [])


def _ratio(num: Array, den: Array) -> Array:
    out: Array = np.divide(num, den, out=np.full(num.shape, np.nan), where=den > 0.0)
    return out


def run_block(
    spec: FundSpec,
    plan: Plan,
    seed: int,
    index: int,
    paths: int,
    faults: FaultPlan | None = None,
) -> BlockResult:
    """Simulate block ``index`` (``paths`` paths) of the run seeded with ``seed``.

    Portfolios are sampled in slices of paths sized to keep working memory near
    :data:`SLICE_BUDGET_BYTES` whatever the company count; every company's stream continues
    from one slice to the next and everything computed per slice is elementwise per path, so
    the result does not depend on the slicing. Whole-block reductions (IRR, sums) run once on
    the concatenated block. ``faults`` (tests only) may inject a fault at the ``block`` point."""
    streams = BlockStreams(block_seed(seed, index), plan, spec.market.volatility)
    per_path_bytes = 8 * (streams.width + 16) * max(1, streams.companies) + 8 * 24 * plan.quarters
    step = max(1, min(paths, SLICE_BUDGET_BYTES // per_path_bytes))
    keep = max(0, min(paths, FAN_SUBSAMPLE_PATHS - index * BLOCK_SIZE))
    slices = [
        _evaluate_slice(spec, plan, streams, min(step, paths - start), max(0, keep - start))
        for start in range(0, paths, step)
    ]

    def cat(name: str) -> Array:
        return np.concatenate([s[name] for s in slices])

    first = quarter_end(spec.first_close_date, 0)
    times = np.array(
        [(quarter_end(spec.first_close_date, q) - first).days / 365.0 for q in range(plan.quarters)]
    )
    irr, status = periodic_irr_batch(cat("net_flows"), times)
    metrics = {m: (irr if m == "net_irr" else cat(m)) for m in METRICS}
    nav = cat("fan_nav")
    if faults is not None:
        _corrupt(faults.act("block"), metrics, nav)
    return BlockResult(
        index=index,
        metrics=metrics,
        irr_status=status,
        paths=paths,
        moments={
            name: (float(v.sum()), float(np.square(v).sum()))
            for name, v in ((n, cat(n)) for n in MOMENTS)
        },
        fan_nav=nav,
        fan_dpi=cat("fan_dpi"),
        fan_tvpi=cat("fan_tvpi"),
        deal_counts=np.sum([s["deal_counts"] for s in slices], axis=0),
        min_nav=min(float(cat("min_nav").min()), float(nav.min(initial=0.0))),
        max_paid_in=float(cat("paid_in").max(initial=0.0)),
    )


def _evaluate_slice(
    spec: FundSpec, plan: Plan, streams: BlockStreams, paths: int, keep: int
) -> dict[str, Array]:
    """Sample ``paths`` paths from ``streams`` and compute their per-path outcomes (arrays with
    a leading paths axis); the first ``keep`` paths' quarterly series feed the fan chart."""
    uniforms, market = streams.take(paths)
    portfolio = sample_portfolio(spec, plan, uniforms, market)
    flows = portfolio.flows
    cash = portfolio.cash

    paid_in = cash.called.sum(axis=1)
    lp = cash.lp_distributions.sum(axis=1)
    net_nav_end = cash.net_nav[:, -1]
    invested = (flows.invested_initial + flows.invested_follow_on).sum(axis=1)
    proceeds = flows.gross_proceeds.sum(axis=1)
    net = cash.lp_distributions - cash.called
    net[:, -1] += net_nav_end
    cum_paid = np.cumsum(cash.called, axis=1)
    cum_lp = np.cumsum(cash.lp_distributions, axis=1)
    assert portfolio.company_multiple is not None
    multiple = portfolio.company_multiple
    keep = min(keep, paths)
    return {
        "tvpi": _ratio(lp + net_nav_end, paid_in),
        "dpi": _ratio(lp, paid_in),
        # A path that invested nothing (pacing skipped every company) returned nothing: 0.
        "gross_multiple": np.nan_to_num(_ratio(proceeds + flows.nav[:, -1], invested)),
        "carry": cash.gp_carry.sum(axis=1),
        "net_flows": net,
        "paid_in": paid_in,
        "gross_proceeds": proceeds,
        "invested": invested,
        "recycled": cash.recycled.sum(axis=1),
        "fees_waived": cash.fees_waived.sum(axis=1),
        "end_value": portfolio.end_value,
        "total_value": proceeds + flows.nav[:, -1],
        "fan_nav": flows.nav[:keep],
        "fan_dpi": _ratio(cum_lp, cum_paid)[:keep],
        "fan_tvpi": _ratio(cum_lp + cash.net_nav, cum_paid)[:keep],
        "min_nav": flows.nav.min(axis=1, initial=0.0),
        "deal_counts": np.array(
            [
                (multiple <= 0.0).sum(),
                ((multiple > 0.0) & (multiple < 1.0)).sum(),
                ((multiple >= 1.0) & (multiple < 3.0)).sum(),
                ((multiple >= 3.0) & (multiple < 10.0)).sum(),
                (multiple >= 10.0).sum(),
            ],
            dtype=np.int64,
        ),
    }


@dataclass(frozen=True)
class SimulationResult:
    """A Monte Carlo result; :meth:`to_dict` gives the JSON form (see the README)."""

    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): the same seed gives the same bytes."""
        return json.dumps(self.data, sort_keys=True, allow_nan=False, indent=2)


#: A map-like executor: applies a function to each task and yields results in task order.
Executor = Callable[
    [Callable[[tuple[int, int]], BlockResult], Iterable[tuple[int, int]]], Iterable[BlockResult]
]


def check_block(block: BlockResult, commitment: float) -> None:
    """Guard one block before it is reduced: paid-in within the commitment (dollars), NAV
    never negative, and every per-path metric
    finite except net IRR (undefined IRRs are counted, not hidden). Raises
    :class:`~updog.model.guards.EngineGuardError`."""
    if not block.max_paid_in <= commitment + CENT:
        raise EngineGuardError(f"paid-in above the commitment in block {block.index}")
    if not block.min_nav >= -CENT:
        raise EngineGuardError(f"negative NAV {block.min_nav:.2f} in block {block.index}")
    for name, values in block.metrics.items():
        if name != "net_irr" and not np.isfinite(values).all():
            raise EngineGuardError(f"non-finite {name} in block {block.index}")
    if not all(np.isfinite(m).all() for m in block.moments.values()):
        raise EngineGuardError(f"non-finite cash totals in block {block.index}")


def _corrupt(kind: str | None, metrics: dict[str, Array], nav: Array) -> None:
    """Apply a value-corrupting fault to a block's outputs (fault injection only)."""
    if kind == "nan":
        metrics["tvpi"][0] = np.nan
    elif kind == "inf":
        metrics["dpi"][0] = np.inf
    elif kind == "negative_nav":
        nav[0, :] = -1e6


def _run_task(
    spec: FundSpec, plan: Plan, seed: int, faults: FaultPlan | None, task: tuple[int, int]
) -> BlockResult:
    return run_block(spec, plan, seed, task[0], task[1], faults)


def _local_map(
    fn: Callable[[tuple[int, int]], BlockResult], tasks: Iterable[tuple[int, int]]
) -> Iterator[BlockResult]:
    return map(fn, tasks)


def new_seed() -> int:
    """A fresh random seed (reported with the result) when the caller gives none."""
    return secrets.randbits(63)


def simulate(
    spec: FundSpec,
    runs: int,
    seed: int | None = None,
    *,
    executor: Executor | None = None,
    progress: Callable[[int, int], None] | None = None,
    faults: FaultPlan | None = None,
) -> SimulationResult:
    """Run ``runs`` Monte Carlo paths of ``spec`` (SPEC §3.3).

    ``seed`` None draws one (reported in the result). ``executor`` maps a block function over
    ``(index, paths)`` tasks (default: in this process, in order); results are reduced in block
    order whatever the executor. ``progress(done_paths, runs)`` is called after each block.
    ``faults`` injects faults for guard tests (never set in production). The result passes
    :func:`updog.model.guards.check_simulation` or :class:`EngineGuardError` is raised.
    Raises ValueError for runs outside 100..5,000,000 or a negative seed."""
    if isinstance(runs, bool) or not isinstance(runs, int) or not MIN_RUNS <= runs <= MAX_RUNS:
        raise ValueError(f"runs must be an integer in {MIN_RUNS}..{MAX_RUNS}")
    if seed is None:
        seed = new_seed()
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError("seed must be a non-negative integer")
    plan = build_plan(spec)
    tasks = list(enumerate(block_sizes(runs)))

    one = functools.partial(_run_task, spec, plan, seed, faults)
    results: list[BlockResult] = []
    done = 0
    for block in (executor or _local_map)(one, tasks):
        results.append(block)
        done += block.paths
        if progress is not None:
            progress(done, runs)
    results.sort(key=lambda b: b.index)
    if faults is not None and results:
        kind = faults.act("reduce")
        _corrupt(kind, results[0].metrics, results[0].fan_nav)
        if kind == "negative_nav":
            results[0] = dataclasses.replace(results[0], min_nav=-1e6)
    for block in results:
        check_block(block, spec.fund_size)
    data = _reduce(spec, plan, runs, seed, results)
    check_simulation(data)
    return SimulationResult(data)


def _reduce(
    spec: FundSpec, plan: Plan, runs: int, seed: int, blocks: list[BlockResult]
) -> dict[str, Any]:
    def cat(get: Callable[[BlockResult], Array]) -> Array:
        return np.concatenate([get(b) for b in blocks])

    per_path = {m: np.concatenate([b.metrics[m] for b in blocks]) for m in METRICS}
    status = np.concatenate([b.irr_status for b in blocks])
    metrics = {m: stats.describe(v) for m, v in per_path.items()}
    tvpi = per_path["tvpi"]
    irr = per_path["net_irr"]
    defined_irr = np.isfinite(irr)
    # An IRR no rate defines (NPV below zero at every rate, e.g. fees called after the last
    # distribution of a losing fund) is still a loss when the LPs got back less than they paid
    # in: such paths count as "net IRR < 0"; the IRR percentiles cover defined IRRs only.
    undefined = (status != STATUS_OK) & (status != STATUS_TOTAL_LOSS)
    losing_undefined = undefined & (tvpi < 1.0)
    classified = int(defined_irr.sum() + losing_undefined.sum())

    def mean_se(name: str) -> dict[str, float]:
        total = sum(b.moments[name][0] for b in blocks)
        squares = sum(b.moments[name][1] for b in blocks)
        mean = total / runs
        variance = max(squares - runs * mean * mean, 0.0) / max(runs - 1, 1)
        return {"mean": mean, "se": float(np.sqrt(variance / runs))}

    fan_nav = cat(lambda b: b.fan_nav)
    deals = np.sum([b.deal_counts for b in blocks], axis=0)
    return {
        "runs": runs,
        "seed": seed,
        "block_size": BLOCK_SIZE,
        "engine_version": ENGINE_VERSION,
        "metrics": metrics,
        "probabilities": {
            "tvpi_below_1": float((tvpi < 1.0).mean()),
            "net_irr_below_0": float(((irr < 0.0) & defined_irr).sum() + losing_undefined.sum())
            / classified
            if classified
            else None,
        },
        "risk": {"tvpi": stats.tail_risk(tvpi), "net_irr": stats.tail_risk(irr)},
        "histograms": {"tvpi": stats.histogram(tvpi), "net_irr": stats.histogram(irr)},
        "irr": {
            "total_loss_paths": int((status == STATUS_TOTAL_LOSS).sum()),
            "undefined_paths": int(undefined.sum()),
            "undefined_losing_paths": int(losing_undefined.sum()),
        },
        "means": {name: mean_se(name) for name in MOMENTS},
        "deal_outcomes": {
            name: float(count) / float(deals.sum())
            for name, count in zip(DEAL_BINS, deals, strict=True)
        },
        "fan_chart": {
            "subsample_paths": int(fan_nav.shape[0]),
            "quarters": [quarter_label(spec.first_close_date, q) for q in range(plan.quarters)],
            "nav": stats.fan(fan_nav),
            "dpi": stats.fan(cat(lambda b: b.fan_dpi)),
            "tvpi": stats.fan(cat(lambda b: b.fan_tvpi)),
        },
    }


__all__ = ["BLOCK_SIZE", "BlockResult", "SimulationResult", "block_seed", "simulate"]
