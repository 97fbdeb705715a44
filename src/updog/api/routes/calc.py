"""``/api/v1/calc/*``: the finance kernel (SPEC §3.1, :mod:`updog.finance`) over HTTP.

One ``POST`` per kernel family — ``xirr``, ``fees``, ``waterfall``, ``ledger``, ``moic``,
``recycling``, ``lp-metrics`` — each taking a JSON body and answering the kernel's own result
model. Any authenticated caller may use them (viewer and up); they touch no stored data.

Units are ours (SPEC §1): money in US dollars, rates and shares as ratios 0..1 (0.2 = 20 %),
dates ISO-8601. Money and ratio inputs may be JSON numbers or decimal strings (``"0.08"``,
``"1500000.00"``; a string keeps every digit, a number is read as the shortest decimal of its
double). Cent-exact outputs are ``Decimal`` and are serialised as **strings** (``"1400000.00"``;
the ``*_exact`` figures carry the unrounded value); XIRR rates are JSON numbers.

A body passes, in order:

1. :func:`updog.http.bodies.read_json` — media type, size, UTF-8, finite numbers, no NUL,
   bounded depth and lists (400/415/422);
2. the request model, validated in strict JSON mode (:class:`updog.http.routing.GuardedRoute`:
   integers are JSON integers, booleans are not numbers, decimal text has no exponent;
   ``extra="forbid"``; every number and list bounded, as the OpenAPI document says) — 422
   ``VALIDATION_FAILED`` with every error's JSON Pointer;
3. cross-field checks the kernel would otherwise raise without a location (fee tier order,
   schedules a fee basis needs, duplicate ids) — 422 ``VALIDATION_FAILED`` with paths;
4. the kernel, in a worker thread; a ``ValueError`` (or a Decimal overflow) it still raises is
   a 422 ``INVALID_INPUT`` with its message. Nothing a client sends produces a 500.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Context, Decimal
from fractions import Fraction
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from updog.api.routes import API_PREFIX
from updog.finance import (
    CashFlowEvent,
    Distribution,
    ExitEvent,
    FeeBasis,
    FeeSchedule,
    FeeTier,
    Investment,
    LedgerConfig,
    LedgerContribution,
    LedgerExit,
    LedgerResult,
    LpMetrics,
    PrefBasis,
    RecyclingSchedule,
    RecyclingTerms,
    ValuationMark,
    WaterfallPolicy,
    XirrResult,
    blended_moic,
    current_moic,
    distribute,
    exit_moic,
    follow_on_moic,
    initial_moic,
    lp_metrics,
    management_fees,
    opportunity_cost_moic,
    recycling,
    reserves_moic,
    waterfall_ledger,
    xirr_result,
)
from updog.finance._decimal import INTEGRAL, Money, NonNegative, Ratio
from updog.finance._decimal import MAX_MAGNITUDE as DECIMAL_MAGNITUDE
from updog.finance.xirr import RATE_MAX, DayCount, Strategy
from updog.http.auth import Viewer
from updog.http.openapi import problem_responses
from updog.http.problems import MAX_REPORTED_ERRORS, FieldError, ProblemError
from updog.http.routing import GuardedRoute
from updog.store.repositories import Identity

router = APIRouter(prefix=f"{API_PREFIX}/calc", tags=["calc"], route_class=GuardedRoute)

#: Longest list in a request (events, exits, schedules, investments...).
MAX_ITEMS: Final = 10_000
#: Most XIRR flows: the solver scans 2,001 rates × flows, so this bounds its memory and time.
MAX_XIRR_FLOWS: Final = 2_000
#: Most fee tiers, and most fund years a fee schedule is computed for.
MAX_FEE_TIERS: Final = 100
MAX_FEE_YEARS: Final = 100
#: Largest magnitude of a float input (XIRR amounts), as the kernels' decimal inputs.
MAX_MAGNITUDE: Final = float(DECIMAL_MAGNITUDE)
#: Longest exit id.
MAX_ID_LENGTH: Final = 200
#: Longest kernel message echoed in a problem's detail.
_MAX_DETAIL: Final = 500

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

Dollars = NonNegative
RatioIn = Ratio
#: A JSON integer (integral floats included) in ``ge..le``.
Count = Annotated[int, Field(strict=True), INTEGRAL]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- request models ---------------------------------------------------------------------


class XirrFlow(_Request):
    """A dated cash flow: dollars, negative paid in, positive received."""

    date: date
    amount: float = Field(
        ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE, allow_inf_nan=False, examples=[-10_000_000]
    )


class XirrRequest(_Request):
    """``POST /calc/xirr``: dated flows and solver options (:func:`updog.finance.xirr`)."""

    flows: list[XirrFlow] = Field(min_length=1, max_length=MAX_XIRR_FLOWS)
    day_count: DayCount = Field(
        "actual/365", description="actual/365 (Excel, pyxirr) or actual/365.25."
    )
    guess: float = Field(0.1, gt=-1.0, le=RATE_MAX, allow_inf_nan=False)
    strategy: Strategy = "hybrid"
    max_iterations: Count = Field(100, ge=1, le=1_000)
    tolerance: float = Field(1e-7, gt=0.0, le=1.0, allow_inf_nan=False)


class FeesRequest(_Request):
    """``POST /calc/fees``: tiers and bases (:func:`updog.finance.management_fees`).

    Schedules are indexed by fund year (entry 0 = year 1) and need at least ``years``
    entries when a tier uses them: ``called`` (cumulative capital called, for
    ``called_cumulative`` and ``called_net_of_returns``), ``returned`` (cumulative capital
    returned, for ``called_net_of_returns``), ``invested_cost`` and ``nav``."""

    tiers: list[FeeTier] = Field(max_length=MAX_FEE_TIERS)
    commitment: Dollars
    years: Count = Field(ge=1, le=MAX_FEE_YEARS)
    called: list[Dollars] | None = Field(None, max_length=MAX_ITEMS)
    returned: list[Dollars] | None = Field(None, max_length=MAX_ITEMS)
    invested_cost: list[Dollars] | None = Field(None, max_length=MAX_ITEMS)
    nav: list[Dollars] | None = Field(None, max_length=MAX_ITEMS)


class WaterfallTerms(_Request):
    """The usual tiers: return of capital, preferred return at ``hurdle`` (a flat share of
    cost; none when 0), GP catch-up at ``catch_up`` (none when 0 or without a preferred
    return) and ``carry`` (:meth:`updog.finance.WaterfallPolicy.standard`)."""

    carry: RatioIn
    hurdle: RatioIn = Decimal(0)
    catch_up: RatioIn = Decimal(1)


class DealContribution(_Request):
    """Dollars paid into the deal on a date (``pref_basis`` ``compounded``)."""

    date: date
    amount: Dollars


class WaterfallRequest(_Request):
    """``POST /calc/waterfall``: one realisation (American, :func:`updog.finance.distribute`).
    Give exactly one of ``policy`` (explicit tiers) and ``terms``. The preferred return is
    ``hurdle × deal_cost`` (``pref_basis`` ``flat``, the default) or compounds annually on each
    contribution from its date to ``exit_date`` (``compounded``, Actual/365)."""

    policy: WaterfallPolicy | None = None
    terms: WaterfallTerms | None = None
    exit_proceeds: Money = Field(
        description="Dollars realised; zero or negative distributes nothing."
    )
    deal_cost: Dollars
    pref_basis: PrefBasis = Field(
        "flat",
        description="flat: the preferred return is hurdle × deal_cost (default). compounded: "
        "Σ amount × ((1 + hurdle) ** (days to exit_date / 365) − 1) over contributions.",
    )
    contributions: list[DealContribution] | None = Field(
        None,
        max_length=MAX_ITEMS,
        description="compounded only (required there): the deal's dated contributions, none "
        "after exit_date, summing exactly to deal_cost.",
    )
    exit_date: date | None = Field(
        None, description="compounded only (required there): the date of the realisation."
    )


class LedgerRequest(_Request):
    """``POST /calc/ledger``: :func:`updog.finance.waterfall_ledger`."""

    config: LedgerConfig
    contributions: list[LedgerContribution] = Field(max_length=MAX_ITEMS)
    exits: list[LedgerExit] = Field(max_length=MAX_ITEMS)


class MoicRequest(_Request):
    """``POST /calc/moic``: positions and the alternative multiple of the opportunity-cost
    variant (1 = the money would have earned nothing)."""

    investments: list[Investment] = Field(min_length=1, max_length=MAX_ITEMS)
    alternative_multiple: Dollars = Decimal(1)


class RecyclingExit(ExitEvent):
    """An exit (:class:`updog.finance.ExitEvent`) with a bounded id."""

    exit_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)


class RecyclingRequest(_Request):
    """``POST /calc/recycling``: :func:`updog.finance.recycling`."""

    fund_size: Dollars
    terms: RecyclingTerms
    exits: list[RecyclingExit] = Field(max_length=MAX_ITEMS)


class LpMetricsRequest(_Request):
    """``POST /calc/lp-metrics``: :func:`updog.finance.lp_metrics`."""

    events: list[CashFlowEvent] = Field(max_length=MAX_ITEMS)
    marks: list[ValuationMark] = Field(max_length=MAX_ITEMS)
    as_of: date


# -- response models the kernel has no class for ---------------------------------------


class MoicVariants(BaseModel):
    """The MOIC variants of one position (unrounded Decimal ratios, as strings; null when
    the denominator is 0). ``exit`` and ``reserves`` are probability-weighted."""

    current: Decimal | None
    exit: Decimal | None
    exit_unweighted: Decimal | None
    initial: Decimal | None
    follow_on: Decimal | None
    reserves: Decimal | None
    reserves_unweighted: Decimal | None
    opportunity_cost: Decimal | None


class MoicOut(BaseModel):
    """Per position variants, in request order, and the portfolio's blended MOIC."""

    investments: list[MoicVariants]
    blended: Decimal | None


# -- helpers ----------------------------------------------------------------------------


def _invalid(errors: Sequence[FieldError | dict[str, str]]) -> ProblemError:
    errors = list(errors)[:MAX_REPORTED_ERRORS]
    return ProblemError(
        422,
        "VALIDATION_FAILED",
        f"The request has {len(errors)} invalid field(s); see errors[].",
        errors=errors,
    )


async def _compute(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a kernel function in a worker thread; its input errors become 422s."""
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except ArithmeticError:  # decimal.InvalidOperation / Overflow on extreme decimal strings
        raise ProblemError(
            422,
            "INVALID_INPUT",
            "A figure is too large or too precise to compute exactly; keep amounts below "
            f"{MAX_MAGNITUDE:.0e} dollars.",
        ) from None
    except ValueError as exc:
        message = str(exc)
        if len(message) > _MAX_DETAIL:
            message = message[:_MAX_DETAIL] + "..."
        raise ProblemError(422, "INVALID_INPUT", f"The input was rejected: {message}") from None


def _json(result: BaseModel) -> Response:
    return JSONResponse(result.model_dump(mode="json"))


def _duplicate_ids(values: Sequence[object], path: str, field: str) -> list[FieldError]:
    seen: set[object] = set()
    errors: list[FieldError] = []
    for i, value in enumerate(values):
        if value in seen:
            errors.append(
                FieldError(f"{path}/{i}/{field}", "DUPLICATE_ID", f"{field} {value!r} repeats.")
            )
        seen.add(value)
    return errors


#: Schedules each fee basis needs.
_FEE_SCHEDULES: Final[dict[FeeBasis, tuple[str, ...]]] = {
    FeeBasis.CALLED_CUMULATIVE: ("called",),
    FeeBasis.CALLED_NET_OF_RETURNS: ("called", "returned"),
    FeeBasis.INVESTED_COST: ("invested_cost",),
    FeeBasis.NAV: ("nav",),
}


#: Context of sums shown in messages (comparisons are exact, in fractions).
_DISPLAY: Final = Context(prec=40)


def _waterfall_errors(req: WaterfallRequest) -> list[FieldError]:
    """The one-of rule and the fields ``pref_basis`` needs or refuses (with their paths)."""
    errors: list[FieldError] = []
    if (req.policy is None) == (req.terms is None):
        path = "/terms" if req.terms is not None else "/policy"
        errors.append(FieldError(path, "ONE_OF_REQUIRED", "Give exactly one of policy and terms."))
    dated = {"/contributions": req.contributions, "/exit_date": req.exit_date}
    if req.pref_basis == "flat":
        errors += [
            FieldError(
                path,
                "NOT_FOR_BASIS",
                f"{path[1:]} is only used with pref_basis compounded; the flat preferred "
                "return is hurdle × deal_cost.",
            )
            for path, value in dated.items()
            if value is not None
        ]
        return errors
    errors += [
        FieldError(path, "REQUIRED_FOR_BASIS", f"pref_basis compounded needs {path[1:]}.")
        for path, value in dated.items()
        if value is None
    ]
    if req.contributions is None:
        return errors
    if req.exit_date is not None:
        errors += [
            FieldError(
                f"/contributions/{i}/date",
                "AFTER_EXIT",
                f"The contribution is dated {c.date.isoformat()}, after exit_date "
                f"{req.exit_date.isoformat()}.",
            )
            for i, c in enumerate(req.contributions)
            if c.date > req.exit_date
        ]
    amounts = [c.amount for c in req.contributions]
    if sum(map(Fraction, amounts), Fraction(0)) != Fraction(req.deal_cost):  # exact
        shown = functools.reduce(_DISPLAY.add, amounts, Decimal(0))
        errors.append(
            FieldError(
                "/contributions",
                "SUM_NOT_DEAL_COST",
                f"The contributions sum to {shown} dollars; they must sum exactly to "
                f"deal_cost ({req.deal_cost}).",
            )
        )
    return errors


def _fee_errors(req: FeesRequest) -> list[FieldError]:
    errors: dict[str, FieldError] = {}
    for i in range(1, len(req.tiers)):
        prev, tier = req.tiers[i - 1], req.tiers[i]
        if tier.start_year <= prev.end_year:
            path = f"/tiers/{i}/start_year"
            errors[path] = FieldError(
                path,
                "TIERS_UNORDERED",
                f"Tier {i} starts in year {tier.start_year}, before tier {i - 1} ends "
                f"(year {prev.end_year}); tiers must be ordered and must not overlap.",
            )
    for i, tier in enumerate(req.tiers):
        for name in _FEE_SCHEDULES.get(tier.basis, ()):
            path = f"/{name}"
            values = getattr(req, name)
            if path in errors:
                continue
            if values is None:
                errors[path] = FieldError(
                    path,
                    "REQUIRED_FOR_BASIS",
                    f"tiers[{i}] uses the {tier.basis.value} basis, which needs {name}.",
                )
            elif len(values) < req.years:
                errors[path] = FieldError(
                    path,
                    "TOO_SHORT",
                    f"{name} has {len(values)} entries; the fund runs {req.years} years.",
                )
    return list(errors.values())


# -- routes -----------------------------------------------------------------------------


@router.post(
    "/xirr",
    operation_id="calc_xirr",
    response_model=XirrResult,
    summary="XIRR of dated cash flows",
    responses=problem_responses(body=True),
)
async def calc_xirr(req: XirrRequest, identity: Identity = Viewer) -> Response:
    """Excel-compatible XIRR (:func:`updog.finance.xirr_result`).

    Body: ``{"flows": [{"date": "2020-01-01", "amount": -10000000}, ...] (1..2,000),
    "day_count": "actual/365" | "actual/365.25", "guess": 0.1, "strategy": "hybrid" |
    "newton" | "bisection", "max_iterations": 100, "tolerance": 1e-7}`` (all but ``flows``
    optional). Same-day flows are summed; order does not matter.

    Response: ``{"rate", "converged", "method", "iterations", "multiple_roots", "reason",
    "reason_message"}`` — ``rate`` is the annual effective rate as a ratio (a JSON number;
    0.2 = 20 %), or null and then ``reason`` says why, as a stable code:
    ``TOO_FEW_FLOWS`` (fewer than two dates once same-day flows are summed),
    ``NO_SIGN_CHANGE`` (flows all of one sign), ``NO_ROOT_IN_RANGE`` (no rate in
    [-0.999999, 200] zeroes the NPV) or ``DID_NOT_CONVERGE`` (the solver stopped first: the
    ``newton`` strategy or ``max_iterations``), with ``reason_message`` a sentence for people;
    both are null when a rate was found."""
    result = await _compute(
        xirr_result,
        [f.date for f in req.flows],
        [f.amount for f in req.flows],
        day_count=req.day_count,
        guess=req.guess,
        strategy=req.strategy,
        max_iterations=req.max_iterations,
        tolerance=req.tolerance,
    )
    return JSONResponse(dataclasses.asdict(result))


@router.post(
    "/fees",
    operation_id="calc_fees",
    response_model=FeeSchedule,
    summary="Management fees by fund year",
    responses=problem_responses(body=True),
)
async def calc_fees(req: FeesRequest, identity: Identity = Viewer) -> Response:
    """Yearly management fees (:func:`updog.finance.management_fees`): Σ active tiers
    rate × basis.

    Body: ``{"tiers": [{"rate": 0.02, "basis": "committed", "start_year": 1, "end_year": 5},
    ...], "commitment": 100000000, "years": 10, "called": [...], "returned": [...],
    "invested_cost": [...], "nav": [...]}`` — tiers ordered and non-overlapping (a step-down
    is the next tier; years no tier covers pay nothing); a schedule is needed only by a tier
    on its basis.

    Response: ``{"yearly": ["2000000.00", ...], "total", "average"}`` — dollars as decimal
    strings, each year rounded half-up to cents, the total their sum."""
    errors = _fee_errors(req)
    if errors:
        raise _invalid(errors)
    result = await _compute(
        management_fees,
        req.tiers,
        req.commitment,
        req.years,
        called=req.called,
        returned=req.returned,
        invested_cost=req.invested_cost,
        nav=req.nav,
    )
    return _json(result)


@router.post(
    "/waterfall",
    operation_id="calc_waterfall",
    response_model=Distribution,
    summary="Split one realisation between LP and GP (American waterfall)",
    responses=problem_responses(body=True),
)
async def calc_waterfall(req: WaterfallRequest, identity: Identity = Viewer) -> Response:
    """Tiered split of one exit (:func:`updog.finance.distribute`): return of capital →
    preferred return → GP catch-up (market definition, SPEC §3.1) → carry. The GP commitment
    is part of ``deal_cost``.

    Body: ``{"terms": {"carry": 0.2, "hurdle": 0.08, "catch_up": 1.0}, "exit_proceeds":
    1500000, "deal_cost": 1000000}``, or ``"policy": {"tiers": [{"kind":
    "return_of_capital"}, {"kind": "preferred_return", "rate": 0.08}, {"kind":
    "gp_catch_up", "rate": 1.0}, {"kind": "carry", "rate": 0.2}]}`` instead of ``terms``.
    The preferred return is ``hurdle × deal_cost`` unless ``"pref_basis": "compounded"``,
    ``"contributions": [{"date": "2018-01-01", "amount": 1000000}, ...]`` and ``"exit_date":
    "2023-12-31"`` are given: then it compounds annually (Actual/365) on each contribution from
    its date to the exit (contributions sum exactly to ``deal_cost``, none after the exit;
    422 ``VALIDATION_FAILED`` with the offending paths otherwise, also for contributions or an
    exit date sent with the flat basis).

    Response: ``{"lp_distribution": "1400000.00", "gp_distribution": "100000.00",
    "total_distributed", "lp_exact", "gp_exact", "breakdown": [{"tier", "lp_amount",
    "gp_amount", "lp_exact", "gp_exact"}, ...]}`` — dollars as decimal strings, each rounded
    half-up to cents on its own (``*_exact``: unrounded, LP + GP = distributable exactly)."""
    errors = _waterfall_errors(req)
    if errors:
        raise _invalid(errors)
    policy = req.policy
    if policy is None:
        assert req.terms is not None
        terms = req.terms
        policy = await _compute(WaterfallPolicy.standard, terms.carry, terms.hurdle, terms.catch_up)
    contributions = (
        None if req.contributions is None else [(c.date, c.amount) for c in req.contributions]
    )
    result = await _compute(
        distribute,
        policy,
        req.exit_proceeds,
        req.deal_cost,
        pref_basis=req.pref_basis,
        contributions=contributions,
        exit_date=req.exit_date,
    )
    return _json(result)


@router.post(
    "/ledger",
    operation_id="calc_ledger",
    response_model=LedgerResult,
    summary="Quarterly distribution ledger with hurdle, recycling and clawback",
    responses=problem_responses(body=True),
)
async def calc_ledger(req: LedgerRequest, identity: Identity = Viewer) -> Response:
    """The distribution ledger (:func:`updog.finance.waterfall_ledger`).

    Body: ``{"config": {"carry": 0.2, "hurdle": 0.08, "catch_up": 0, "recycling_enabled": false,
    "recycling_cap": 0.15, "recycling_window_quarters": 20, "recycling_take_rate": 1.0,
    "committed": 100000000, "clawback_enabled": true, "clawback_lp_hurdle_multiple": 1.0},
    "contributions": [{"quarter": 0, "amount": 10000000}, ...], "exits": [{"quarter": 8,
    "gross_proceeds": 25000000}, ...]}`` (quarter 0 = the fund's first quarter). Per exit,
    after the return of capital the LP gets ``hurdle`` × outstanding capital, then the GP
    catch-up at ``catch_up`` (0, the default: none; market definition, SPEC §3.1), then the
    carry split — the tiers of ``/calc/waterfall``.

    Response: ``{"rows": [{"quarter", "gross_proceeds", "lp_capital_return",
    "lp_profit_share", "gp_carry", "recycled_amount", "gp_clawback", "paid_in",
    "distributed", "recycled", "unrealized_capital", "dpi", "tvpi"}, ...], "totals":
    {"paid_in", "distributed", "recycled", "unrealized_capital", "dpi", "tvpi",
    "gp_carry_total", "gp_clawback", "gp_carry_net"}}`` — dollars as decimal strings rounded
    to cents; ``dpi``/``tvpi`` unrounded decimal strings (null with nothing paid in); a
    clawback adds a synthetic row with negative ``gp_carry``."""
    result = await _compute(waterfall_ledger, req.config, req.contributions, req.exits)
    return _json(result)


def _moic(req: MoicRequest) -> MoicOut:
    rows = [
        MoicVariants(
            current=current_moic(inv),
            exit=exit_moic(inv),
            exit_unweighted=exit_moic(inv, probability_weighted=False),
            initial=initial_moic(inv),
            follow_on=follow_on_moic(inv),
            reserves=reserves_moic(inv),
            reserves_unweighted=reserves_moic(inv, probability_weighted=False),
            opportunity_cost=opportunity_cost_moic(inv, req.alternative_multiple),
        )
        for inv in req.investments
    ]
    return MoicOut(investments=rows, blended=blended_moic(req.investments))


@router.post(
    "/moic",
    operation_id="calc_moic",
    response_model=MoicOut,
    summary="MOIC variants of positions and the blended portfolio MOIC",
    responses=problem_responses(body=True),
)
async def calc_moic(req: MoicRequest, identity: Identity = Viewer) -> Response:
    """MOIC variants (:mod:`updog.finance.moic`) of each position and the portfolio's
    investment-weighted blended MOIC.

    Body: ``{"investments": [{"initial_investment": 1000000, "follow_on_investment": 500000,
    "current_valuation": 3000000, "projected_exit_value": 6000000, "exit_probability": 0.5,
    "planned_reserves": 1000000, "reserve_exit_multiple": 3}, ...] (1..10,000),
    "alternative_multiple": 1.0}`` (dollars; ``exit_probability`` a ratio).

    Response: ``{"investments": [{"current", "exit", "exit_unweighted", "initial",
    "follow_on", "reserves", "reserves_unweighted", "opportunity_cost"}, ...], "blended"}``
    — unrounded ratios as decimal strings, null when the denominator is 0."""
    return _json(await _compute(_moic, req))


@router.post(
    "/recycling",
    operation_id="calc_recycling",
    response_model=RecyclingSchedule,
    summary="Exit recycling within a cap and a period",
    responses=problem_responses(body=True),
)
async def calc_recycling(req: RecyclingRequest, identity: Identity = Viewer) -> Response:
    """Recycle exit proceeds (:func:`updog.finance.recycling`): capacity = fund_size × cap;
    exits in years ``<= period_years`` recycle ``rate`` × fund proceeds up to what remains.

    Body: ``{"fund_size": 100000000, "terms": {"cap": 0.15, "period_years": 5, "rate": 1.0},
    "exits": [{"exit_id": "acme", "year": 3, "gross_proceeds": 20000000, "ownership":
    0.1}, ...]}`` (exit ids unique).

    Response: ``{"capacity": {"max_recyclable", "annual_capacity", "cap", "period_years"},
    "by_exit": [{"exit_id", "exit_year", "fund_proceeds", "recycled_amount",
    "returned_to_lps", "within_period", "applied_rate"}, ...], "by_year": [{"year",
    "annual_recycled", "cumulative_recycled"}, ...], "total_recycled",
    "total_returned_to_lps", "remaining_capacity", "cap_reached", "excess_proceeds",
    "exits_within_period", "exits_after_period", "recycled_from_eligible_exits",
    "returned_from_ineligible_exits"}`` — dollars as decimal strings rounded to cents."""
    errors = _duplicate_ids([e.exit_id for e in req.exits], "/exits", "exit_id")
    if errors:
        raise _invalid(errors)
    result = await _compute(recycling, req.fund_size, req.terms, req.exits)
    return _json(result)


@router.post(
    "/lp-metrics",
    operation_id="calc_lp_metrics",
    response_model=LpMetrics,
    summary="DPI, RVPI, TVPI, MOIC and net IRR from events and marks",
    responses=problem_responses(body=True),
)
async def calc_lp_metrics(req: LpMetricsRequest, identity: Identity = Viewer) -> Response:
    """LP capital-account metrics as of a date (:func:`updog.finance.lp_metrics`).

    Body: ``{"events": [{"id": 1, "event_type": "lp_capital_call", "amount": 1000000,
    "event_date": "2024-01-15", "status": "approved", "reversal_of": null}, ...], "marks":
    [{"id": 1, "fair_value": 1500000, "mark_date": "2024-12-31", "status": "approved",
    "confidence": "high", "company_id": 7}, ...], "as_of": "2024-12-31"}`` — event types
    ``lp_capital_call``, ``lp_distribution``, ``recallable_distribution``, ``reversal``,
    ``portfolio_investment``, ``realized_proceeds``, ``fund_expense``; only ``approved`` or
    ``locked`` events and marks count; ids unique. Distributions are ``lp_distribution`` +
    ``realized_proceeds``; ``portfolio_investment`` and ``fund_expense`` do not enter the LP's
    account and are listed in an ``EXCLUDED_FUND_LEVEL_EVENTS`` warning (no event is dropped
    without a warning).

    Response: ``{"as_of", "contributions", "distributions", "nav", "dpi", "rvpi", "tvpi",
    "moic", "net_irr", "net_irr_converges", "mark_confidence_mix", "excluded_future_marks",
    "warnings": [{"code", "message"}, ...]}`` — dollars as decimal strings rounded to cents,
    ratios as unrounded decimal strings (null with zero contributions, with a
    ``ZERO_CONTRIBUTIONS`` warning), ``net_irr`` a JSON number (Actual/365) or null."""
    errors = _duplicate_ids([e.id for e in req.events], "/events", "id")
    errors += _duplicate_ids([m.id for m in req.marks], "/marks", "id")
    if errors:
        raise _invalid(errors)
    result = await _compute(lp_metrics, req.events, req.marks, req.as_of)
    return _json(result)
