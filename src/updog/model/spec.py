"""The fund a GP describes: ``FundSpec`` and its validation (SPEC §2).

One pydantic model is the single source for validation, the API schema, the example files and
the CLI. Field constraints live on the fields; cross-field rules live in
:func:`_cross_field_issues`, which reports *every* problem with a JSON Pointer (RFC 6901) path.

Units: money in US dollars (plain numbers, never $M); rates and shares are ratios in 0..1;
durations are named with their unit (``*_years``, ``months_to_*``).

Two levels of checking:

* :func:`validate_draft` — a draft may be incomplete: types and ranges of the fields that are
  present are checked; missing required fields are allowed.
* :func:`updog.model.validation.validate_publish` — a complete, valid spec is required, and
  its construction must be feasible; returns the ``FundSpec``, the errors (all of them) and
  non-blocking warnings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import types
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, TypedDict, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from updog.finance._decimal import INTEGRAL

#: An RFC 3339 full-date, YYYY-MM-DD.
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

#: Largest amount of money a spec may hold, dollars (ten trillion): beyond it is a units mistake.
MAX_DOLLARS = 1e13


Ratio = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False, strict=True)]
Dollars = Annotated[float, Field(ge=0.0, le=MAX_DOLLARS, allow_inf_nan=False, strict=True)]
PositiveDollars = Annotated[float, Field(gt=0.0, le=MAX_DOLLARS, allow_inf_nan=False, strict=True)]
ShortText = Annotated[
    str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", strict=True)
]

#: Upper bounds on list sizes: a spec is a human-scale document, not a data dump.
MAX_TIERS = 20
MAX_STAGES = 12
MAX_ALLOCATIONS = 12
MAX_EXPENSES = 50
MAX_SECTORS = 50
MAX_BANDS = 10

#: Tolerance on shares that must sum to 1 (SPEC §2).
SHARE_SUM_TOLERANCE = 1e-6


class Issue(TypedDict):
    """One validation problem: ``path`` is a JSON Pointer into the spec (RFC 6901)."""

    path: str
    code: str
    message: str


class _CrossFieldError(ValueError):
    """Raised inside the model validator so pydantic aborts; carries every issue found."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__("; ".join(f"{i['path']}: {i['message']}" for i in issues))
        self.issues = issues


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_year_range(start_year: int, end_year: int | None) -> None:
    """Fund years ``start_year..end_year`` (inclusive; None = to the end) must be ordered."""
    if end_year is not None and end_year < start_year:
        raise _CrossFieldError(
            [
                Issue(
                    path="/end_year",
                    code="END_BEFORE_START",
                    message="end_year must be on or after start_year",
                )
            ]
        )


class FeeBasis(StrEnum):
    """What a management-fee rate applies to (SPEC §3.1 ``management_fees``)."""

    committed = "committed"
    called_cumulative = "called_cumulative"
    called_net_of_returns = "called_net_of_returns"
    invested_cost = "invested_cost"
    nav = "nav"


class FeeTier(_Model):
    """A management-fee tier: ``rate`` × basis per year, for fund years ``start_year..end_year``
    (1-based, inclusive). ``end_year`` None means to the end of the fund's life."""

    rate: Annotated[float, Field(ge=0.0, le=0.05, allow_inf_nan=False, strict=True)] = 0.02
    basis: FeeBasis = FeeBasis.committed
    start_year: Annotated[int, Field(ge=1, le=50, strict=True), INTEGRAL] = 1
    end_year: Annotated[int | None, Field(ge=1, le=50, strict=True), INTEGRAL] = None

    @model_validator(mode="after")
    def _check(self) -> FeeTier:
        _check_year_range(self.start_year, self.end_year)
        return self


class Fees(_Model):
    """Management fees: consecutive tiers express step-downs."""

    tiers: Annotated[list[FeeTier], Field(max_length=MAX_TIERS)] = Field(
        default_factory=lambda: [FeeTier()]
    )


class Expense(_Model):
    """A fund expense: ``annual_amount`` dollars in ``start_year``, growing by ``growth`` a year."""

    category: ShortText
    annual_amount: Dollars
    start_year: Annotated[int, Field(ge=1, le=50, strict=True), INTEGRAL] = 1
    end_year: Annotated[int | None, Field(ge=1, le=50, strict=True), INTEGRAL] = None
    growth: Annotated[float, Field(ge=-0.5, le=0.5, allow_inf_nan=False, strict=True)] = 0.0

    @model_validator(mode="after")
    def _check(self) -> Expense:
        _check_year_range(self.start_year, self.end_year)
        return self


class WaterfallType(StrEnum):
    european = "european"
    american = "american"


class Waterfall(_Model):
    """Carried interest and distribution waterfall (SPEC §2, §3.2)."""

    type: WaterfallType = WaterfallType.european
    carry: Annotated[float, Field(ge=0.0, le=0.5, allow_inf_nan=False, strict=True)] = 0.20
    hurdle: Annotated[float, Field(ge=0.0, le=0.2, allow_inf_nan=False, strict=True)] = 0.08
    catch_up: Ratio = 1.0
    gp_commit_ratio: Annotated[float, Field(ge=0.0, le=0.2, allow_inf_nan=False, strict=True)] = (
        0.01
    )


class Recycling(_Model):
    """Re-investment of exit proceeds: up to ``cap_ratio`` × commitment, for proceeds received
    in fund years 1..``period_years``; ``rate`` is the share of each such proceed recycled."""

    enabled: Annotated[bool, Field(strict=True)] = False
    cap_ratio: Annotated[float, Field(ge=0.0, le=0.25, allow_inf_nan=False, strict=True)] = 0.15
    period_years: Annotated[int, Field(ge=0, le=20, strict=True), INTEGRAL] = 5
    rate: Ratio = 1.0


class OutcomeBand(_Model):
    """A band of exit multiples (on the latest round's post-money) and its probability."""

    min_multiple: Annotated[float, Field(ge=0.0, le=10_000, allow_inf_nan=False, strict=True)]
    max_multiple: Annotated[float, Field(gt=0.0, le=10_000, allow_inf_nan=False, strict=True)]
    probability: Ratio


class OutcomeDistribution(_Model):
    """Exit multiple distribution: a mixture of bands, uniform within each band except the
    highest, which is a bounded Pareto (power law) with exponent ``tail_alpha``."""

    bands: Annotated[list[OutcomeBand], Field(min_length=1, max_length=MAX_BANDS)]
    tail_alpha: Annotated[float, Field(gt=0.0, le=10.0, allow_inf_nan=False, strict=True)] = 1.16

    @model_validator(mode="after")
    def _check(self) -> OutcomeDistribution:
        out: list[Issue] = []
        bands = self.bands
        total = sum(b.probability for b in bands)
        if abs(total - 1.0) > SHARE_SUM_TOLERANCE:
            out.append(
                Issue(
                    path="/bands",
                    code="PROBABILITIES_NOT_ONE",
                    message=f"band probabilities must sum to 1 (got {total:.6f})",
                )
            )
        for j, band in enumerate(bands):
            if band.max_multiple <= band.min_multiple:
                out.append(
                    Issue(
                        path=f"/bands/{j}/max_multiple",
                        code="EMPTY_BAND",
                        message="max_multiple must exceed min_multiple",
                    )
                )
            if j > 0 and band.min_multiple < bands[j - 1].max_multiple - 1e-12:
                out.append(
                    Issue(
                        path=f"/bands/{j}/min_multiple",
                        code="BANDS_OVERLAP_OR_UNORDERED",
                        message="bands must be ordered and must not overlap",
                    )
                )
        if bands[-1].min_multiple <= 0.0:
            out.append(
                Issue(
                    path=f"/bands/{len(bands) - 1}/min_multiple",
                    code="TAIL_NEEDS_POSITIVE_MIN",
                    message="the highest band is a bounded Pareto tail and needs min_multiple > 0",
                )
            )
        if out:
            raise _CrossFieldError(out)
        return self


def _default_outcomes() -> OutcomeDistribution:
    # Seed-stage profile of SPEC §3.3 (70/15/10/4/1 %), α = 1.16.
    return OutcomeDistribution(
        bands=[
            OutcomeBand(min_multiple=0.0, max_multiple=1.0, probability=0.70),
            OutcomeBand(min_multiple=1.0, max_multiple=3.0, probability=0.15),
            OutcomeBand(min_multiple=3.0, max_multiple=10.0, probability=0.10),
            OutcomeBand(min_multiple=10.0, max_multiple=50.0, probability=0.04),
            OutcomeBand(min_multiple=50.0, max_multiple=200.0, probability=0.01),
        ]
    )


class Stage(_Model):
    """A financing stage of the ladder. On entering it a company graduates (raises the next
    stage's round), exits, or fails (the rest); the event happens after a random time with mean
    ``months_to_graduate`` (graduation and failure) or ``months_to_exit`` (exit)."""

    name: ShortText
    round_size: PositiveDollars
    post_money: PositiveDollars
    graduation_rate: Ratio
    exit_rate: Ratio
    months_to_graduate: Annotated[
        float, Field(gt=0.0, le=240.0, allow_inf_nan=False, strict=True)
    ] = 18.0
    months_to_exit: Annotated[float, Field(gt=0.0, le=240.0, allow_inf_nan=False, strict=True)] = (
        36.0
    )
    outcomes: OutcomeDistribution = Field(default_factory=_default_outcomes)

    @model_validator(mode="after")
    def _check(self) -> Stage:
        out: list[Issue] = []
        if self.graduation_rate + self.exit_rate > 1.0 + 1e-12:
            out.append(
                Issue(
                    path="/graduation_rate",
                    code="RATES_EXCEED_ONE",
                    message="graduation_rate + exit_rate must not exceed 1 (the rest fails)",
                )
            )
        if self.round_size > self.post_money:
            out.append(
                Issue(
                    path="/round_size",
                    code="ROUND_ABOVE_POST_MONEY",
                    message="round_size must not exceed post_money",
                )
            )
        if out:
            raise _CrossFieldError(out)
        return self


class FollowOn(StrEnum):
    pro_rata = "pro_rata"
    fixed = "fixed"


class Allocation(_Model):
    """Share of initial capital invested at entry stage ``stage``. At each of the next
    ``follow_on_rounds`` rounds of a company (None: every later round) the fund follows on with
    probability ``participation``: ``pro_rata`` buys its ownership share of the new round,
    ``fixed`` writes ``follow_on_check`` dollars. Most seed funds reserve for the next one or
    two rounds only."""

    stage: ShortText
    share: Ratio
    initial_check: PositiveDollars
    follow_on: FollowOn = FollowOn.pro_rata
    follow_on_check: Dollars = 0.0
    participation: Ratio = 0.5
    follow_on_rounds: Annotated[int | None, Field(ge=0, le=MAX_STAGES, strict=True), INTEGRAL] = (
        None
    )


class DeploymentCurve(StrEnum):
    linear = "linear"
    front = "front"
    back = "back"


class ConstructionMode(StrEnum):
    """How the number of initial investments is set (see :mod:`updog.model.construction`)."""

    #: Solved so that expected initial + expected follow-on dollars = investable capital; the
    #: reserves follow from the stage ladder.
    derived = "derived"
    #: ``(1 − reserve_ratio)`` of investable capital goes to initial checks.
    reserve_ratio = "reserve_ratio"


class UnusedReserves(StrEnum):
    """What happens to reserves the portfolio turns out not to need."""

    #: Reserve-aware pacing: each new investment during the investment period is made only
    #: when uncommitted capital covers its check and its expected follow-ons, so reserves
    #: released by companies that fail or exit early fund additional companies.
    redeploy = "redeploy"
    #: The planned companies only; what reserves are not used stays uncalled.
    hold = "hold"


#: Default share added to the expected basis-dependent management fees when they are budgeted.
DEFAULT_FEE_BUDGET_MARGIN = 0.10


class Construction(_Model):
    """Portfolio construction: allocations by entry stage, how the number of companies and the
    reserves are set (``mode``), what happens to unneeded reserves, the safety margin on the
    fee budget and the deployment pacing. ``reserve_ratio`` is read in ``reserve_ratio`` mode
    only. ``mode`` defaults to ``derived``, except for a construction that gives a
    ``reserve_ratio`` and no ``mode``: funds written before the derived mode existed (engine
    0.2, API v1 clients) keep the reserve-ratio construction they asked for."""

    allocations: Annotated[list[Allocation], Field(min_length=1, max_length=MAX_ALLOCATIONS)]
    mode: ConstructionMode = ConstructionMode.derived
    reserve_ratio: Annotated[float, Field(ge=0.0, le=0.8, allow_inf_nan=False, strict=True)] = 0.4
    unused_reserves: UnusedReserves = UnusedReserves.redeploy
    fee_budget_margin: Ratio = DEFAULT_FEE_BUDGET_MARGIN
    deployment_curve: DeploymentCurve = DeploymentCurve.linear

    @model_validator(mode="before")
    @classmethod
    def _mode_of_a_reserve_ratio(cls, data: Any) -> Any:
        if isinstance(data, dict) and "reserve_ratio" in data and "mode" not in data:
            return {**data, "mode": ConstructionMode.reserve_ratio.value}
        return data


#: Default market volatility, calibrated to the vintage-to-vintage dispersion of US venture
#: returns: the standard deviation of ln(median net TVPI) across vintages 2000–2020 is 0.33
#: (0.36 for the mature vintages 2000–2015) in Cambridge Associates, "US Venture Capital Index
#: and Selected Benchmark Statistics", data as of 31 March 2025 (median TVPI from 0.84x for
#: 2000 to 2.47x for 2010). A $1B seed fund of the seed example (about 800 companies, so that
#: diversification removes the idiosyncratic part) gives a spread of ln(TVPI) (interquartile
#: range / 1.349) of 0.135 without the factor and 0.325 with 0.30 (benchmarks/calibration.py).
DEFAULT_MARKET_VOLATILITY = 0.30


class Market(_Model):
    """The market factor: one shock per simulated path, shared by every company in it, so
    outcomes within a fund correlate (good and bad vintages). Each realisation (exit or
    end-of-term sale) is multiplied by ``exp(volatility · z − volatility² / 2)`` with
    ``z ~ N(0, 1)`` per path — a mean-one lognormal factor, so expected values (the
    deterministic forecast) are unchanged while the spread of fund outcomes widens; this
    systematic part is what diversification cannot remove. 0 switches it off (every company
    independent: a large fund then almost never loses money). The default
    (:data:`DEFAULT_MARKET_VOLATILITY`) is calibrated to the dispersion of vintage-year median
    fund returns."""

    volatility: Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False, strict=True)] = (
        DEFAULT_MARKET_VOLATILITY
    )


class EndOfTermPolicy(StrEnum):
    """What a closed-end fund does with the companies it still holds when its term ends."""

    #: Sold in a secondary sale at ``discount`` to NAV in the last quarter.
    secondary_sale = "secondary_sale"
    #: Kept and reported at NAV as residual value (RVPI); no final liquidation.
    hold_at_nav = "hold_at_nav"


#: Default discount to NAV of an end-of-term secondary sale: tail-end venture positions traded
#: at 55–75 % of NAV in H1 2025 (Jefferies via ION Analytics, "Tail-end secondaries surge"),
#: venture LP interests at 59–71 % (Lazard, Secondary Market Report 2024) and ~68–75 %
#: (Jefferies, Global Secondary Market Review 2023–2024): 65 % of NAV, a 35 % discount.
DEFAULT_SECONDARY_DISCOUNT = 0.35


class EndOfTerm(_Model):
    """End of a closed-end fund's term (after its life and extensions)."""

    policy: EndOfTermPolicy = EndOfTermPolicy.secondary_sale
    discount: Annotated[float, Field(ge=0.0, le=0.9, allow_inf_nan=False, strict=True)] = (
        DEFAULT_SECONDARY_DISCOUNT
    )


class Sector(_Model):
    name: ShortText
    share: Ratio


def _default_stages() -> list[Stage]:
    # Round sizes and post-money valuations: Carta "State of Private Markets" medians, 2024.
    # Graduation rates: Carta's graduation data for the 2018-2020 cohorts (roughly a third to
    # a half of companies raise their next round). Exit rates: small, most exits are late.
    return [
        Stage(
            name="pre-seed",
            round_size=750_000,
            post_money=6_000_000,
            graduation_rate=0.30,
            exit_rate=0.02,
            months_to_graduate=15,
            months_to_exit=36,
        ),
        Stage(
            name="seed",
            round_size=3_000_000,
            post_money=15_000_000,
            graduation_rate=0.40,
            exit_rate=0.05,
            months_to_graduate=20,
            months_to_exit=42,
        ),
        Stage(
            name="series-a",
            round_size=12_000_000,
            post_money=50_000_000,
            graduation_rate=0.45,
            exit_rate=0.10,
            months_to_graduate=24,
            months_to_exit=48,
        ),
        Stage(
            name="series-b",
            round_size=30_000_000,
            post_money=150_000_000,
            graduation_rate=0.45,
            exit_rate=0.15,
            months_to_graduate=24,
            months_to_exit=48,
        ),
        Stage(
            name="series-c",
            round_size=60_000_000,
            post_money=400_000_000,
            graduation_rate=0.40,
            exit_rate=0.25,
            months_to_graduate=24,
            months_to_exit=42,
        ),
        Stage(
            name="growth",
            round_size=120_000_000,
            post_money=1_200_000_000,
            graduation_rate=0.0,
            exit_rate=0.60,
            months_to_graduate=30,
            months_to_exit=36,
        ),
    ]


def _default_construction() -> Construction:
    return Construction(allocations=[Allocation(stage="seed", share=1.0, initial_check=1_000_000)])


class FundSpec(_Model):
    """A complete fund (SPEC §2). Required: ``name``, ``fund_size`` (dollars, > 0),
    ``vintage_year`` (2000..2100) and ``model_inputs_as_of``; everything else has a default."""

    name: ShortText
    fund_size: PositiveDollars
    vintage_year: Annotated[int, Field(ge=2000, le=2100, strict=True), INTEGRAL]
    model_inputs_as_of: date
    first_close: date | None = None
    fund_life_years: Annotated[int, Field(ge=1, le=20, strict=True), INTEGRAL] = 10
    investment_period_years: Annotated[int, Field(ge=1, le=10, strict=True), INTEGRAL] = 5
    extension_years: Annotated[int, Field(ge=0, le=5, strict=True), INTEGRAL] = 2
    end_of_term: EndOfTerm = Field(default_factory=EndOfTerm)
    evergreen: Annotated[bool, Field(strict=True)] = False
    horizon_years: Annotated[int, Field(ge=1, le=30, strict=True), INTEGRAL] = 15
    fees: Fees = Field(default_factory=Fees)
    expenses: Annotated[list[Expense], Field(max_length=MAX_EXPENSES)] = Field(default_factory=list)
    waterfall: Waterfall = Field(default_factory=Waterfall)
    recycling: Recycling = Field(default_factory=Recycling)
    stages: Annotated[list[Stage], Field(min_length=1, max_length=MAX_STAGES)] = Field(
        default_factory=_default_stages
    )
    construction: Construction = Field(default_factory=_default_construction)
    sectors: Annotated[list[Sector], Field(max_length=MAX_SECTORS)] = Field(default_factory=list)
    market: Market = Field(default_factory=Market)

    @field_validator("model_inputs_as_of", "first_close", mode="before")
    @classmethod
    def _iso_dates(cls, value: Any) -> Any:
        # Dates are ISO-8601 calendar dates written YYYY-MM-DD (RFC 3339 full-date, JSON
        # Schema's "date"), or date objects from YAML; a number is not a date here.
        if value is None or isinstance(value, date):
            return value
        if isinstance(value, str) and _FULL_DATE.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise PydanticCustomError(
                    "date_from_datetime_parsing", "Input should be a real calendar date"
                ) from None
        raise PydanticCustomError("date_type", "Input should be an ISO-8601 date (YYYY-MM-DD)")

    @model_validator(mode="after")
    def _check_cross_fields(self) -> FundSpec:
        issues = _cross_field_issues(_View(self.model_dump(mode="json"), set()))
        if issues:
            raise _CrossFieldError(issues)
        return self

    @property
    def first_close_date(self) -> date:
        """First close, defaulting to 1 January of the vintage year."""
        return self.first_close or date(self.vintage_year, 1, 1)

    @property
    def horizon_quarters(self) -> int:
        """Number of quarters modelled: fund life plus extensions, or ``horizon_years`` for an
        evergreen fund."""
        if self.evergreen:
            return 4 * self.horizon_years
        return 4 * (self.fund_life_years + self.extension_years)

    @property
    def life_quarters(self) -> int:
        """Quarters of the fund's life before any extension (the whole horizon of an evergreen
        fund): investments (follow-ons included) are made only in these quarters, and fee
        tiers without an ``end_year`` run to their end."""
        return 4 * self.horizon_years if self.evergreen else 4 * self.fund_life_years

    @property
    def liquidates_at_end(self) -> bool:
        """True when the holdings left at the horizon are sold (a closed-end fund whose
        end-of-term policy is a secondary sale)."""
        return not self.evergreen and self.end_of_term.policy == EndOfTermPolicy.secondary_sale

    def stage_index(self, name: str) -> int:
        """Index of the stage called ``name`` in the ladder. Raises KeyError if absent."""
        for i, stage in enumerate(self.stages):
            if stage.name == name:
                return i
        raise KeyError(name)


# --------------------------------------------------------------------------- drafts


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _draft_type(annotation: Any) -> Any:
    """``annotation`` with every spec model in it replaced by its draft (lists, unions)."""
    if isinstance(annotation, type) and issubclass(annotation, _Model):
        return draft_of(annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list:
        return list[_draft_type(args[0])]  # type: ignore[misc]
    if origin in (Union, types.UnionType):
        return Union[tuple(_draft_type(a) for a in args)]  # noqa: UP007
    return annotation


@functools.cache
def draft_of(model: type[_Model]) -> type[BaseModel]:
    """The draft form of a spec model (SPEC §2: a draft may be incomplete): the same fields
    with the same types, ranges and single-field validators, every one optional at any depth
    and none defaulted, and no cross-field rule (those run at publish, with every field
    present). One model, so the draft's JSON Schema (``FundSpecDraft`` in the API) is what
    :func:`validate_draft` checks. Named ``<Model>Draft``."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = _draft_type(info.annotation)
        if info.metadata:
            annotation = Annotated[annotation, *info.metadata]
        fields[name] = (
            annotation,
            Field(default=None, description=info.description, json_schema_extra=_drop_default),
        )
    validators = {
        name: field_validator(*dec.info.fields, mode=dec.info.mode)(
            getattr(dec.func, "__func__", dec.func)  # the function under the classmethod
        )
        for name, dec in model.__pydantic_decorators__.field_validators.items()
    }
    draft: type[BaseModel] = create_model(
        f"{model.__name__}Draft",
        __config__=ConfigDict(extra="forbid", frozen=True),
        __doc__=f"A draft of {model.__name__}: any field may be missing (see validate_draft).",
        __validators__=validators,
        **fields,
    )
    return draft


_BAD = object()
_MISSING = object()


class _View:
    """Tolerant read access to a spec's JSON for the cross-field rules: a value whose path (or
    an enclosing path) already has an error, is missing, or has the wrong type reads as None,
    so a rule only runs on values that are individually valid. This lets the rules run even
    when other fields are invalid, and every problem is reported at once."""

    def __init__(self, data: Any, bad_paths: set[str]) -> None:
        self.data = data
        self.bad = bad_paths

    def _walk(self, pointer: str) -> Any:
        node = self.data
        walked = ""
        for token in pointer.strip("/").split("/") if pointer else []:
            walked += "/" + token
            if walked in self.bad:
                return _BAD
            if isinstance(node, dict) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                return _MISSING
        return node

    def get(self, pointer: str) -> Any:
        value = self._walk(pointer)
        return None if value is _BAD or value is _MISSING else value

    def num(self, pointer: str, default: float | None = None) -> float | None:
        value = self._walk(pointer)
        if value is _MISSING:
            return default
        if value is _BAD or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value) if math.isfinite(value) else None

    def optional_num(self, pointer: str, default: float | None) -> float | None:
        """Like :meth:`num`, but an explicit ``null`` also reads as ``default``."""
        return default if self._walk(pointer) is None else self.num(pointer, default)

    def text(self, pointer: str) -> str | None:
        value = self.get(pointer)
        return value if isinstance(value, str) else None

    def length(self, pointer: str) -> int:
        value = self.get(pointer)
        return len(value) if isinstance(value, list) else 0


def _with_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the top-level defaults of FundSpec filled in (JSON form)."""
    out = dict(data)
    for name, info in FundSpec.model_fields.items():
        if name not in out and not info.is_required():
            value = info.get_default(call_default_factory=True)
            if isinstance(value, BaseModel):
                value = value.model_dump(mode="json")
            elif isinstance(value, list):
                value = [
                    v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value
                ]
            out[name] = value
    return out


def _cross_field_issues(view: _View) -> list[Issue]:
    """Rules that involve several fields (SPEC §2), on a tolerant view of the spec's JSON.
    Returns every violation among the values that are individually valid."""
    out: list[Issue] = []

    def add(path: str, code: str, message: str) -> None:
        out.append(Issue(path=path, code=code, message=message))

    fund_life = view.num("/fund_life_years")
    evergreen = view.get("/evergreen") is True
    life = view.num("/horizon_years") if evergreen else fund_life
    period = view.num("/investment_period_years")
    if period is not None and life is not None and period > life:
        if evergreen:
            add(
                "/horizon_years",
                "PERIOD_EXCEEDS_HORIZON",
                "the horizon of an evergreen fund must cover its investment period",
            )
        else:
            add(
                "/investment_period_years",
                "PERIOD_EXCEEDS_LIFE",
                "investment period must not exceed the fund life",
            )
    first_close, vintage = view.get("/first_close"), view.num("/vintage_year")
    if isinstance(first_close, str) and vintage is not None:
        try:
            if date.fromisoformat(first_close).year != vintage:
                add(
                    "/first_close",
                    "FIRST_CLOSE_OUTSIDE_VINTAGE",
                    "first close must fall in the vintage year",
                )
        except ValueError:
            pass

    carry, catch_up = view.num("/waterfall/carry", 0.20), view.num("/waterfall/catch_up", 1.0)
    if carry is not None and catch_up is not None and 0.0 < catch_up <= carry:
        add(
            "/waterfall/catch_up",
            "CATCH_UP_NOT_ABOVE_CARRY",
            f"a catch-up of {catch_up:.0%} never catches the GP up to a carry of {carry:.0%} "
            "(it would pay the GP less than no catch-up): use 0 for none or a rate above the "
            "carry (100 % is a full catch-up)",
        )

    last_end = 0.0
    for i in range(view.length("/fees/tiers")):
        start = view.num(f"/fees/tiers/{i}/start_year", 1)
        end = view.optional_num(f"/fees/tiers/{i}/end_year", life)  # null: to the end of life
        if start is None:
            continue
        if start <= last_end:
            add(
                f"/fees/tiers/{i}/start_year",
                "TIERS_OVERLAP_OR_UNORDERED",
                "fee tiers must be ordered and must not overlap (an earlier tier runs to fund "
                f"year {last_end:.0f}; a tier without end_year runs to the end of the life)",
            )
        last_end = max(last_end, end if end is not None else start)

    n_stages = view.length("/stages")
    names = [view.text(f"/stages/{i}/name") for i in range(n_stages)]
    for i, name in enumerate(names):
        if name is not None and names.index(name) != i:
            add(f"/stages/{i}/name", "DUPLICATE_STAGE", f"stage {name!r} appears twice")
    last_graduation = view.num(f"/stages/{n_stages - 1}/graduation_rate") if n_stages else None
    if last_graduation is not None and last_graduation != 0.0:
        add(
            f"/stages/{n_stages - 1}/graduation_rate",
            "LAST_STAGE_GRADUATES",
            "the last stage cannot graduate (graduation_rate must be 0)",
        )

    n_alloc = view.length("/construction/allocations")
    shares = [view.num(f"/construction/allocations/{i}/share") for i in range(n_alloc)]
    if n_alloc and all(share is not None for share in shares):
        total = sum(share for share in shares if share is not None)
        if abs(total - 1.0) > SHARE_SUM_TOLERANCE:
            add(
                "/construction/allocations",
                "SHARES_NOT_ONE",
                f"allocation shares must sum to 1 (got {total:.6f})",
            )
    fund_size = view.num("/fund_size")
    seen: set[str] = set()
    for i in range(n_alloc):
        base = f"/construction/allocations/{i}"
        stage = view.text(f"{base}/stage")
        check = view.num(f"{base}/initial_check")
        if stage is not None and None not in names and stage not in names:
            add(f"{base}/stage", "UNKNOWN_STAGE", f"stage {stage!r} is not in the stage ladder")
        if stage is not None and stage in seen:
            add(f"{base}/stage", "DUPLICATE_ALLOCATION", f"stage {stage!r} is allocated twice")
        if stage is not None:
            seen.add(stage)
        if check is not None and fund_size is not None and check > fund_size:
            add(
                f"{base}/initial_check",
                "CHECK_ABOVE_FUND_SIZE",
                "initial_check must not exceed fund_size",
            )
        follow_check = view.num(f"{base}/follow_on_check", 0.0)
        if follow_check is not None and fund_size is not None and follow_check > fund_size:
            add(
                f"{base}/follow_on_check",
                "CHECK_ABOVE_FUND_SIZE",
                "follow_on_check must not exceed fund_size",
            )
        if check is not None and stage is not None and stage in names:
            post = view.num(f"/stages/{names.index(stage)}/post_money")
            if post is not None and check > post:
                add(
                    f"{base}/initial_check",
                    "CHECK_ABOVE_POST_MONEY",
                    "initial_check must not exceed the stage's post_money",
                )
        participation = view.num(f"{base}/participation", 0.5)
        if (
            view.get(f"{base}/follow_on") == FollowOn.fixed.value
            and follow_check is not None
            and follow_check <= 0.0
            and participation is not None
            and participation > 0.0
        ):
            add(
                f"{base}/follow_on_check",
                "FOLLOW_ON_CHECK_REQUIRED",
                "a fixed follow-on strategy needs follow_on_check > 0",
            )

    sector_shares = [view.num(f"/sectors/{i}/share") for i in range(view.length("/sectors"))]
    if sum(x for x in sector_shares if x is not None) > 1.0 + SHARE_SUM_TOLERANCE:
        add("/sectors", "SECTOR_SHARES_ABOVE_ONE", "sector shares must not sum above 1")
    return out


def spec_warnings(spec: FundSpec) -> list[Issue]:
    """Non-blocking warnings (SPEC §2): unusual but legal choices."""
    out: list[Issue] = []
    construction = spec.construction
    reserve = construction.reserve_ratio
    if construction.mode == ConstructionMode.reserve_ratio and not 0.3 <= reserve <= 0.7:
        out.append(
            Issue(
                path="/construction/reserve_ratio",
                code="RESERVE_RATIO_UNUSUAL",
                message=f"reserve ratio {reserve:.2f} is outside the usual 0.30..0.70",
            )
        )
    if (
        construction.mode == ConstructionMode.derived
        and "reserve_ratio" in construction.model_fields_set
    ):
        out.append(
            Issue(
                path="/construction/reserve_ratio",
                code="RESERVE_RATIO_IGNORED",
                message="derived construction sets the reserves from the stage ladder; the "
                "reserve ratio is used only with mode reserve_ratio",
            )
        )
    ignored = _ignored_settings(spec)
    out.extend(
        Issue(path=path, code="SETTING_IGNORED", message=message) for path, message in ignored
    )
    for i, stage in enumerate(spec.stages):
        if stage.outcomes.bands[-1].max_multiple * stage.post_money < stage.post_money:
            continue
        mean = expected_multiple(stage.outcomes)
        if mean < 1.0:
            out.append(
                Issue(
                    path=f"/stages/{i}/outcomes",
                    code="EXIT_BELOW_ENTRY",
                    message=f"mean exit multiple {mean:.2f}x is below the round's post-money",
                )
            )
    for i, (prev, nxt) in enumerate(zip(spec.stages, spec.stages[1:], strict=False)):
        if nxt.post_money < prev.post_money:
            out.append(
                Issue(
                    path=f"/stages/{i + 1}/post_money",
                    code="DOWN_ROUND_LADDER",
                    message="post-money is below the previous stage's",
                )
            )
    return out


def _ignored_settings(spec: FundSpec) -> list[tuple[str, str]]:
    """Settings given explicitly that the spec's other choices make irrelevant."""
    out: list[tuple[str, str]] = []
    if spec.evergreen:
        if "extension_years" in spec.model_fields_set:
            out.append(("/extension_years", "an evergreen fund has no extensions"))
        if "end_of_term" in spec.model_fields_set:
            out.append(("/end_of_term", "an evergreen fund has no end of term (it holds at NAV)"))
    elif (
        spec.end_of_term.policy == EndOfTermPolicy.hold_at_nav
        and "discount" in spec.end_of_term.model_fields_set
    ):
        out.append(("/end_of_term/discount", "holding at NAV sells nothing: no discount applies"))
    horizon_years = spec.horizon_quarters // 4
    for i, tier in enumerate(spec.fees.tiers):
        if tier.start_year > horizon_years:
            out.append(
                (
                    f"/fees/tiers/{i}/start_year",
                    f"the tier starts after the fund's last year ({horizon_years}): it charges "
                    "nothing",
                )
            )
    return out


def expected_multiple(dist: OutcomeDistribution) -> float:
    """Mean exit multiple of a band mixture: uniform bands have mean (lo + hi) / 2; the top band
    is a bounded Pareto on [L, H] with exponent α, whose mean is
    ``α L^α (H^(1-α) - L^(1-α)) / ((1-α)(1 - (L/H)^α))`` (``α L ln(H/L) / (1 - L/H)`` at α = 1)
    — Johnson, Kotz & Balakrishnan, *Continuous Univariate Distributions* vol. 1, ch. 20."""
    total = 0.0
    for band in dist.bands[:-1]:
        total += band.probability * 0.5 * (band.min_multiple + band.max_multiple)
    top = dist.bands[-1]
    total += top.probability * bounded_pareto_mean(
        top.min_multiple, top.max_multiple, dist.tail_alpha
    )
    return total


def bounded_pareto_mean(low: float, high: float, alpha: float) -> float:
    """Mean of the bounded Pareto distribution on [low, high] (low > 0) with exponent alpha."""
    ratio = float((low / high) ** alpha)
    if math.isclose(alpha, 1.0):
        return float(alpha * low * math.log(high / low) / (1.0 - ratio))
    return float(alpha * low**alpha * (high ** (1.0 - alpha) - low ** (1.0 - alpha))) / (
        (1.0 - alpha) * (1.0 - ratio)
    )


# --------------------------------------------------------------------------- validation API


def _pointer(loc: tuple[int | str, ...]) -> str:
    """JSON Pointer (RFC 6901) for a pydantic error location."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/" + "/".join(parts) if parts else ""


def _issues_from_validation_error(exc: ValidationError) -> list[Issue]:
    out: list[Issue] = []
    for err in exc.errors(include_url=False):
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, _CrossFieldError):
            prefix = _pointer(tuple(err["loc"]))
            out.extend(
                Issue(path=prefix + i["path"], code=i["code"], message=i["message"])
                for i in ctx_error.issues
            )
            continue
        out.append(
            Issue(
                path=_pointer(tuple(err["loc"])), code=issue_code(err["type"]), message=err["msg"]
            )
        )
    return out


def issue_code(pydantic_type: str) -> str:
    """Stable UPPER_SNAKE code for a pydantic error type (the vocabulary of every 422)."""
    mapping = {
        "missing": "REQUIRED",
        "extra_forbidden": "UNKNOWN_FIELD",
        "greater_than": "OUT_OF_RANGE",
        "greater_than_equal": "OUT_OF_RANGE",
        "less_than": "OUT_OF_RANGE",
        "less_than_equal": "OUT_OF_RANGE",
        "finite_number": "NOT_FINITE",
        "too_long": "TOO_LONG",
        "too_short": "TOO_SHORT",
        "string_too_long": "TOO_LONG",
        "string_too_short": "TOO_SHORT",
        "string_pattern_mismatch": "INVALID_CHARACTERS",
        "enum": "NOT_ALLOWED",
        "literal_error": "NOT_ALLOWED",
    }
    if pydantic_type in mapping:
        return mapping[pydantic_type]
    if pydantic_type.startswith(("date_", "datetime_")):
        return "INVALID_DATE"
    if pydantic_type.endswith(("_type", "_parsing")):
        return "WRONG_TYPE"
    return "INVALID_" + pydantic_type.upper()


def all_issues(data: dict[str, Any]) -> list[Issue]:
    """Every problem of ``data``: field errors from pydantic plus the cross-field rules run on
    the values that are individually valid (so one bad field hides no other problem)."""
    try:
        FundSpec.model_validate(data)
    except ValidationError as exc:
        issues = _issues_from_validation_error(exc)
    else:
        return []
    known = {(i["path"], i["code"]) for i in issues}
    view = _View(_with_defaults(data), {i["path"] for i in issues})
    issues.extend(i for i in _cross_field_issues(view) if (i["path"], i["code"]) not in known)
    return issues


#: The draft form of :class:`FundSpec` (:func:`draft_of`).
FundSpecDraft = draft_of(FundSpec)


def present_field_issues(data: object) -> list[Issue]:
    """Every rule the fields present break, cross-field rules among them included; missing
    fields are allowed anywhere. Stricter than :func:`validate_draft`: the setup wizard saves
    only what passes this, so a draft it writes is consistent as far as it goes."""
    if not isinstance(data, dict):
        return [Issue(path="", code="NOT_AN_OBJECT", message="a fund spec must be a JSON object")]
    return [i for i in all_issues(data) if i["code"] != "REQUIRED"]


def validate_draft(data: object) -> list[Issue]:
    """Check a draft: types and ranges of the fields present, at any depth; missing fields are
    allowed anywhere (SPEC §2). Cross-field rules (period within life, shares summing to 1,
    stage references, …) are publish rules: a draft in progress may break them. This is
    :class:`FundSpecDraft`, whose JSON Schema the API publishes. Returns a list of issues
    (empty when the draft is acceptable)."""
    if not isinstance(data, dict):
        return [Issue(path="", code="NOT_AN_OBJECT", message="a fund spec must be a JSON object")]
    try:
        FundSpecDraft.model_validate(data)
    except ValidationError as exc:
        return _issues_from_validation_error(exc)
    return []


class SpecError(ValueError):
    """A spec failed validation; ``issues`` lists every problem with its JSON Pointer path."""

    def __init__(self, issues: list[Issue]) -> None:
        super().__init__(
            "\n".join(f"{i['path'] or '/'}: {i['message']} [{i['code']}]" for i in issues)
        )
        self.issues = issues


def canonical_json(spec_json: Any) -> str:
    """Canonical JSON text (sorted keys, no whitespace, finite numbers only)."""
    return json.dumps(
        spec_json, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False
    )


def spec_hash(spec_json: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of a spec: the provenance key of results."""
    return hashlib.sha256(canonical_json(spec_json).encode("utf-8")).hexdigest()


__all__ = [
    "Allocation",
    "Construction",
    "ConstructionMode",
    "DeploymentCurve",
    "EndOfTerm",
    "EndOfTermPolicy",
    "Expense",
    "FeeBasis",
    "FeeTier",
    "Fees",
    "FollowOn",
    "FundSpec",
    "FundSpecDraft",
    "Issue",
    "Market",
    "OutcomeBand",
    "OutcomeDistribution",
    "Recycling",
    "Sector",
    "SpecError",
    "Stage",
    "UnusedReserves",
    "Waterfall",
    "WaterfallType",
    "all_issues",
    "bounded_pareto_mean",
    "canonical_json",
    "expected_multiple",
    "issue_code",
    "present_field_issues",
    "spec_hash",
    "spec_warnings",
    "validate_draft",
]
