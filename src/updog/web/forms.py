"""The setup wizard's forms: which ``FundSpec`` fields each step shows, how a posted form
becomes spec JSON, and how the spec validators' issues become messages next to fields.

Units in the UI (SPEC §1): amounts are dollars typed with or without thousands separators
(``50,000,000``); rates and shares are typed as percent (``2.5``) and stored as ratios
(``0.025``). Nothing here knows about HTTP: :mod:`updog.web.pages` posts forms in and
renders the :class:`FormState` out.

A step is a tree of nodes: :class:`Input` (one field), :class:`Group` (a fieldset over a
nested object, or over fields of the same level) and :class:`Repeat` (a list of items, with
add/remove). Every input's form name is its dotted path in the spec (``stages.2.exit_rate``);
an issue's JSON Pointer (``/stages/2/exit_rate``) maps to the same key.

Saving a step (:func:`savable`, :func:`held_back`): every valid field goes into the draft; a
field that does not parse or breaks a draft rule keeps its last saved value there, and what
the user typed for it is kept as *pending* texts (:func:`pending_texts`) that the step shows
again, with its errors, until it is fixed or discarded (:func:`with_pending`).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel

from updog.model.spec import (
    Allocation,
    ConstructionMode,
    DeploymentCurve,
    EndOfTermPolicy,
    Expense,
    FeeBasis,
    FeeTier,
    FollowOn,
    FundSpec,
    Issue,
    OutcomeBand,
    Sector,
    Stage,
    UnusedReserves,
    WaterfallType,
    present_field_issues,
)
from updog.model.validation import validate_publish

Kind = Literal["text", "money", "percent", "int", "number", "date", "select", "checkbox"]


@dataclass(frozen=True)
class Input:
    """One field. ``optional``: an empty value removes the key (the default or None applies)."""

    name: str
    label: str
    kind: Kind
    hint: str = ""
    optional: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    unit: str = ""


@dataclass(frozen=True)
class Group:
    """A fieldset. ``name`` None: the children are fields of the enclosing object."""

    name: str | None
    legend: str
    children: tuple[Node, ...]
    hint: str = ""
    collapsible: bool = False  # shown in a <details>, open when it holds an error


@dataclass(frozen=True)
class Repeat:
    """A list of items of the same shape, each rendered as its own fieldset."""

    name: str
    legend: str
    item: str
    children: tuple[Node, ...]
    new_item: Callable[[list[Any]], dict[str, Any]]
    min_items: int = 0
    max_items: int = 12
    hint: str = ""
    title_field: str | None = None


Node = Input | Group | Repeat


@dataclass(frozen=True)
class Step:
    slug: str
    title: str
    nodes: tuple[Node, ...]
    owns: tuple[str, ...]  # top-level spec keys this step writes
    intro: str = ""


# --------------------------------------------------------------------------- defaults


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_json_default(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "value"):  # enums
        return value.value
    return value


def model_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON value of every field of ``model`` that has a default."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            continue
        out[name] = _json_default(info.get_default(call_default_factory=True))
    return out


def new_fund_spec(today: date) -> dict[str, Any]:
    """The draft a new fund starts from: every documented default written out, the vintage
    and the as-of date set to today; name and size left for the GP."""
    spec = FundSpec(
        name="x", fund_size=1e9, vintage_year=today.year, model_inputs_as_of=today
    ).model_dump(mode="json")
    for key in ("name", "fund_size", "first_close"):
        spec.pop(key, None)
    return spec


_ITEM_MODELS: dict[str, type[BaseModel]] = {
    "fees.tiers": FeeTier,
    "expenses": Expense,
    "stages": Stage,
    "outcomes.bands": OutcomeBand,
    "construction.allocations": Allocation,
    "sectors": Sector,
}


def view_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with the defaults of every missing field filled in, for display: a fund
    created through the API with four fields shows the values the engine will use."""
    base = model_defaults(FundSpec)
    out: dict[str, Any] = {**base, **copy.deepcopy(dict(spec))}
    for key in ("fees", "waterfall", "recycling", "construction", "market"):
        if isinstance(out.get(key), dict) and isinstance(base.get(key), dict):
            out[key] = {**base[key], **out[key]}

    def fill(items: Any, model: type[BaseModel]) -> Any:
        if not isinstance(items, list):
            return items
        defaults = model_defaults(model)
        return [{**defaults, **i} if isinstance(i, dict) else i for i in items]

    out["fees"]["tiers"] = fill(out["fees"].get("tiers"), FeeTier)
    out["expenses"] = fill(out.get("expenses"), Expense)
    out["stages"] = fill(out.get("stages"), Stage)
    for stage in out["stages"] if isinstance(out["stages"], list) else []:
        if isinstance(stage, dict) and isinstance(stage.get("outcomes"), dict):
            stage["outcomes"] = {"tail_alpha": 1.16, **stage["outcomes"]}
    out["construction"]["allocations"] = fill(out["construction"].get("allocations"), Allocation)
    out["sectors"] = fill(out.get("sectors"), Sector)
    return out


# --------------------------------------------------------------------------- the steps

_BASIS_CHOICES = (
    (FeeBasis.committed.value, "Committed capital"),
    (FeeBasis.called_cumulative.value, "Called capital (cumulative)"),
    (FeeBasis.called_net_of_returns.value, "Called capital net of returns"),
    (FeeBasis.invested_cost.value, "Invested cost"),
    (FeeBasis.nav.value, "NAV"),
)


def _new_tier(items: list[Any]) -> dict[str, Any]:
    last_end = max((t.get("end_year") or 0 for t in items if isinstance(t, dict)), default=0)
    start = last_end + 1 if last_end else 1
    return {"rate": 0.015, "basis": "committed", "start_year": start, "end_year": None}


def _new_expense(_items: list[Any]) -> dict[str, Any]:
    return {
        "category": "Fund administration",
        "annual_amount": 150_000.0,
        "start_year": 1,
        "end_year": None,
        "growth": 0.03,
    }


def _new_stage(items: list[Any]) -> dict[str, Any]:
    n = len(items) + 1
    return {
        **model_defaults(Stage),
        "name": f"stage-{n}",
        "round_size": 5_000_000.0,
        "post_money": 25_000_000.0,
        "graduation_rate": 0.0,
        "exit_rate": 0.5,
    }


def _new_band(items: list[Any]) -> dict[str, Any]:
    top = max((b.get("max_multiple") or 0 for b in items if isinstance(b, dict)), default=0.0)
    return {"min_multiple": float(top), "max_multiple": float(top) * 2 or 1.0, "probability": 0.0}


def _new_allocation(_items: list[Any]) -> dict[str, Any]:
    return {**model_defaults(Allocation), "stage": "seed", "share": 0.0, "initial_check": 1e6}


def _new_sector(_items: list[Any]) -> dict[str, Any]:
    return {"name": "Software", "share": 0.0}


_YEARS = "years"
_BANDS = Repeat(
    "bands",
    "Exit outcome bands",
    "Band",
    (
        Input("min_multiple", "From (multiple)", "number", unit="x"),
        Input("max_multiple", "To (multiple)", "number", unit="x"),
        Input("probability", "Probability", "percent", unit="%"),
    ),
    _new_band,
    min_items=1,
    max_items=10,
    hint="Exit multiples on the latest round's post-money. Probabilities add up to 100 %; "
    "the highest band is a power-law tail.",
)

STEPS: tuple[Step, ...] = (
    Step(
        "basics",
        "Basics",
        (
            Group(
                None,
                "Fund",
                (
                    Input("name", "Fund name", "text", hint="As LPs know it, e.g. Seed Fund I."),
                    Input(
                        "fund_size",
                        "Fund size (commitments)",
                        "money",
                        unit="$",
                        hint="Dollars, e.g. 50,000,000.",
                    ),
                    Input("vintage_year", "Vintage year", "int"),
                    Input("model_inputs_as_of", "Model inputs as of", "date"),
                    Input(
                        "first_close",
                        "First close",
                        "date",
                        optional=True,
                        hint="Optional; defaults to 1 January of the vintage year.",
                    ),
                ),
            ),
            Group(
                None,
                "Term",
                (
                    Input("fund_life_years", "Fund life", "int", unit=_YEARS),
                    Input(
                        "investment_period_years",
                        "Investment period",
                        "int",
                        unit=_YEARS,
                        hint="New investments are made in this period; at most the fund life.",
                    ),
                    Input(
                        "extension_years",
                        "Extensions",
                        "int",
                        unit=_YEARS,
                        hint="LPA extensions after the fund life: exits continue, no new "
                        "investments.",
                    ),
                    Input("evergreen", "Evergreen fund (no final liquidation)", "checkbox"),
                    Input("horizon_years", "Horizon of an evergreen fund", "int", unit=_YEARS),
                ),
            ),
            Group(
                "end_of_term",
                "End of term",
                (
                    Input(
                        "policy",
                        "Companies still held at the end",
                        "select",
                        choices=(
                            (EndOfTermPolicy.secondary_sale.value, "Sold on the secondary market"),
                            (EndOfTermPolicy.hold_at_nav.value, "Kept and reported at NAV"),
                        ),
                    ),
                    Input(
                        "discount",
                        "Secondary-sale discount to NAV",
                        "percent",
                        unit="%",
                        hint="Tail-end venture positions traded at 55–75 % of NAV in 2024–25 "
                        "(Jefferies, Lazard): 35 % by default.",
                    ),
                ),
            ),
        ),
        owns=(
            "name",
            "fund_size",
            "vintage_year",
            "model_inputs_as_of",
            "first_close",
            "fund_life_years",
            "investment_period_years",
            "extension_years",
            "end_of_term",
            "evergreen",
            "horizon_years",
        ),
        intro="Name the fund and set its size and term. Only the four fields of the first "
        "box are required; everything else starts from a documented default.",
    ),
    Step(
        "fees",
        "Fees and waterfall",
        (
            Group(
                "fees",
                "Management fees",
                (
                    Repeat(
                        "tiers",
                        "Fee tiers",
                        "Tier",
                        (
                            Input("rate", "Rate per year", "percent", unit="%"),
                            Input("basis", "Basis", "select", choices=_BASIS_CHOICES),
                            Input("start_year", "From fund year", "int"),
                            Input(
                                "end_year",
                                "To fund year",
                                "int",
                                optional=True,
                                hint="Empty: to the end of the fund life (no fees in extensions).",
                            ),
                        ),
                        _new_tier,
                        max_items=20,
                        hint="Consecutive tiers express step-downs, e.g. 2 % on committed "
                        "capital in years 1–5, then 1.5 % on invested cost.",
                    ),
                ),
            ),
            Repeat(
                "expenses",
                "Fund expenses",
                "Expense",
                (
                    Input("category", "Category", "text"),
                    Input("annual_amount", "Amount per year", "money", unit="$"),
                    Input("start_year", "From fund year", "int"),
                    Input("end_year", "To fund year", "int", optional=True),
                    Input("growth", "Growth per year", "percent", unit="%"),
                ),
                _new_expense,
                max_items=50,
                title_field="category",
            ),
            Group(
                "waterfall",
                "Carried interest and waterfall",
                (
                    Input(
                        "type",
                        "Waterfall",
                        "select",
                        choices=(
                            (WaterfallType.european.value, "European (whole fund)"),
                            (WaterfallType.american.value, "American (deal by deal)"),
                        ),
                    ),
                    Input("carry", "Carried interest", "percent", unit="%"),
                    Input("hurdle", "Hurdle (preferred return)", "percent", unit="%"),
                    Input(
                        "catch_up",
                        "GP catch-up",
                        "percent",
                        unit="%",
                        hint="100 % is a full catch-up.",
                    ),
                    Input("gp_commit_ratio", "GP commitment", "percent", unit="%"),
                ),
            ),
            Group(
                "recycling",
                "Recycling",
                (
                    Input("enabled", "Recycle exit proceeds", "checkbox"),
                    Input("cap_ratio", "Cap (share of commitments)", "percent", unit="%"),
                    Input("period_years", "Recycling period", "int", unit=_YEARS),
                    Input("rate", "Share of each proceed recycled", "percent", unit="%"),
                ),
            ),
        ),
        owns=("fees", "expenses", "waterfall", "recycling"),
        intro="Rates are entered as percent (2 means 2 %).",
    ),
    Step(
        "stages",
        "Stages",
        (
            Repeat(
                "stages",
                "Stage ladder",
                "Stage",
                (
                    Input("name", "Stage name", "text"),
                    Input("round_size", "Round size", "money", unit="$"),
                    Input("post_money", "Post-money valuation", "money", unit="$"),
                    Input(
                        "graduation_rate",
                        "Graduation rate",
                        "percent",
                        unit="%",
                        hint="Share that raise the next stage's round.",
                    ),
                    Input(
                        "exit_rate",
                        "Exit rate",
                        "percent",
                        unit="%",
                        hint="Share that exit from this stage; the rest fail.",
                    ),
                    Input("months_to_graduate", "Months to graduate", "number", unit="months"),
                    Input("months_to_exit", "Months to exit", "number", unit="months"),
                    Group(
                        "outcomes",
                        "Exit outcomes",
                        (
                            _BANDS,
                            Input(
                                "tail_alpha",
                                "Tail exponent (α)",
                                "number",
                                hint="Power-law exponent of the highest band; about 1.16.",
                            ),
                        ),
                        collapsible=True,
                    ),
                ),
                _new_stage,
                min_items=1,
                max_items=12,
                hint="In order, earliest first. The last stage cannot graduate.",
                title_field="name",
            ),
            Group(
                "market",
                "Market factor (simulation only)",
                (
                    Input(
                        "volatility",
                        "Market volatility",
                        "percent",
                        unit="%",
                        hint="A shock shared by all companies of a simulated fund (good and "
                        "bad vintages); 30 % reproduces the spread of US venture vintage "
                        "returns (Cambridge Associates), 0 makes companies independent.",
                    ),
                ),
            ),
        ),
        owns=("stages", "market"),
        intro="Per stage: round size and valuation, what share graduate, exit or fail, how "
        "long it takes, and the distribution of exit multiples.",
    ),
    Step(
        "construction",
        "Construction",
        (
            Group(
                "construction",
                "Portfolio construction",
                (
                    Repeat(
                        "allocations",
                        "Allocations by entry stage",
                        "Allocation",
                        (
                            Input("stage", "Entry stage", "select"),
                            Input("share", "Share of initial capital", "percent", unit="%"),
                            Input("initial_check", "Initial check", "money", unit="$"),
                            Input(
                                "follow_on",
                                "Follow-on strategy",
                                "select",
                                choices=(
                                    (FollowOn.pro_rata.value, "Pro rata"),
                                    (FollowOn.fixed.value, "Fixed check"),
                                ),
                            ),
                            Input("follow_on_check", "Fixed follow-on check", "money", unit="$"),
                            Input("participation", "Follow-on participation", "percent", unit="%"),
                            Input(
                                "follow_on_rounds",
                                "Follow-on rounds",
                                "int",
                                optional=True,
                                hint="How many later rounds the fund follows; empty: every one.",
                            ),
                        ),
                        _new_allocation,
                        min_items=1,
                        max_items=12,
                        hint="Shares add up to 100 %.",
                        title_field="stage",
                    ),
                    Input(
                        "mode",
                        "Number of companies",
                        "select",
                        choices=(
                            (
                                ConstructionMode.derived.value,
                                "Derived: reserves from the stage ladder",
                            ),
                            (ConstructionMode.reserve_ratio.value, "From a reserve ratio"),
                        ),
                        hint="Derived solves the number of companies so that their checks and "
                        "expected follow-ons use the investable capital.",
                    ),
                    Input(
                        "reserve_ratio",
                        "Reserve ratio",
                        "percent",
                        unit="%",
                        hint="With a reserve ratio only: share of investable capital kept for "
                        "follow-ons (30–70 % is usual).",
                    ),
                    Input(
                        "unused_reserves",
                        "Reserves the companies do not need",
                        "select",
                        choices=(
                            (UnusedReserves.redeploy.value, "Redeployed into new companies"),
                            (UnusedReserves.hold.value, "Left uncalled"),
                        ),
                    ),
                    Input(
                        "fee_budget_margin",
                        "Fee budget margin",
                        "percent",
                        unit="%",
                        hint="Added to the expected fees on called, cost or NAV bases.",
                    ),
                    Input(
                        "deployment_curve",
                        "Deployment pacing",
                        "select",
                        choices=tuple((c.value, c.value.capitalize()) for c in DeploymentCurve),
                        hint="How initial checks spread over the investment period.",
                    ),
                ),
            ),
            Repeat(
                "sectors",
                "Sectors (optional)",
                "Sector",
                (
                    Input("name", "Sector", "text"),
                    Input("share", "Share", "percent", unit="%"),
                ),
                _new_sector,
                max_items=50,
                title_field="name",
            ),
        ),
        owns=("construction", "sectors"),
        intro="Where initial capital goes, how much is kept in reserve and how fast it is "
        "deployed.",
    ),
)
REVIEW = "review"
STEP_SLUGS: tuple[str, ...] = (*(s.slug for s in STEPS), REVIEW)
STEP_TITLES: dict[str, str] = {**{s.slug: s.title for s in STEPS}, REVIEW: "Review"}


def get_step(slug: str) -> Step | None:
    return next((s for s in STEPS if s.slug == slug), None)


def step_for_path(pointer: str) -> str:
    """The step that shows the field at JSON Pointer ``pointer`` (review when none does)."""
    top = pointer.split("/")[1] if pointer.startswith("/") else ""
    for step in STEPS:
        if top in step.owns:
            return step.slug
    return REVIEW


# --------------------------------------------------------------------------- values


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_value(kind: Kind, value: Any) -> str:
    """The text an input shows for a stored value."""
    if value is None:
        return ""
    if kind == "checkbox":
        return "on" if value else ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if kind == "money":
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"
    if kind == "percent":
        return _trim(f"{value * 100:.6f}")
    if kind == "int":
        return str(int(value))
    return _trim(f"{value:.6f}")


_MONEY = re.compile(r"^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_INT = re.compile(r"^-?\d+$")
_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_PARSE_MESSAGES: dict[str, str] = {
    "money": "Enter an amount in dollars, such as 50,000,000.",
    "percent": "Enter a percentage, such as 2 or 2.5.",
    "int": "Enter a whole number.",
    "number": "Enter a number, such as 18 or 1.5.",
    "date": "Enter a date as YYYY-MM-DD.",
    "select": "Choose one of the options.",
    "text": "Enter some text.",
}


class ParseError(ValueError):
    pass


def parse_value(inp: Input, raw: str) -> Any:
    """The spec value for the text of an input; raises :class:`ParseError`."""
    text = raw.strip().replace("\u00a0", " ")
    kind = inp.kind
    if kind == "checkbox":
        return bool(text)
    if kind == "text":
        return text
    if kind == "select":
        if inp.choices and text not in {v for v, _ in inp.choices}:
            raise ParseError(_PARSE_MESSAGES["select"])
        return text
    if kind == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ParseError(_PARSE_MESSAGES["date"]) from None
    compact = text.replace(" ", "").replace("_", "")
    if kind == "money":
        compact = compact.removeprefix("$").replace("$", "")
        if not _MONEY.match(compact):
            raise ParseError(_PARSE_MESSAGES["money"])
        value = float(compact.replace(",", ""))
    elif kind == "percent":
        compact = compact.removesuffix("%")
        if not _NUMBER.match(compact):
            raise ParseError(_PARSE_MESSAGES["percent"])
        value = round(float(compact) / 100.0, 12)
    elif kind == "int":
        if not _INT.match(compact):
            raise ParseError(_PARSE_MESSAGES["int"])
        return int(compact)
    else:
        if not _NUMBER.match(compact):
            raise ParseError(_PARSE_MESSAGES["number"])
        value = float(compact)
    if not math.isfinite(value):
        raise ParseError(_PARSE_MESSAGES[kind])
    return value


# --------------------------------------------------------------------------- form state


@dataclass
class FormState:
    """What a step's form shows: each input's text (by dotted key), the number of items of
    each repeat (by dotted key) and the messages next to fields (by dotted key; ``""`` is
    the step as a whole). ``choices`` lists dynamic options (the allocation's stages)."""

    values: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    choices: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def add_error(self, key: str, message: str) -> None:
        bucket = self.errors.setdefault(key, [])
        if message not in bucket:
            bucket.append(message)

    @property
    def error_count(self) -> int:
        return sum(len(v) for v in self.errors.values())


def _join(prefix: str, name: str | None) -> str:
    if not name:
        return prefix
    return f"{prefix}.{name}" if prefix else name


def _get(obj: Any, name: str | None) -> Any:
    if name is None:
        return obj
    return obj.get(name) if isinstance(obj, dict) else None


def state_from_spec(step: Step, spec: Mapping[str, Any]) -> FormState:
    """The form of ``step`` showing ``spec`` (defaults filled in)."""
    state = FormState()
    shown = view_spec(spec)

    def walk(nodes: Iterable[Node], obj: Any, prefix: str) -> None:
        for node in nodes:
            key = _join(prefix, node.name)
            if isinstance(node, Input):
                state.values[key] = format_value(node.kind, _get(obj, node.name))
            elif isinstance(node, Group):
                walk(node.children, _get(obj, node.name), key)
            else:
                items = _get(obj, node.name)
                items = items if isinstance(items, list) else []
                state.counts[key] = len(items)
                for i, item in enumerate(items):
                    walk(node.children, item, f"{key}.{i}")

    walk(step.nodes, shown, "")
    _stage_choices(step, shown, state)
    return state


def _stage_choices(step: Step, spec: Mapping[str, Any], state: FormState) -> None:
    if step.slug != "construction":
        return
    names = [s.get("name") for s in spec.get("stages") or [] if isinstance(s, dict)]
    options = [(str(n), str(n)) for n in names if n]
    for i in range(state.counts.get("construction.allocations", 0)):
        key = f"construction.allocations.{i}.stage"
        current = state.values.get(key, "")
        extra = [] if not current or (current, current) in options else [(current, current)]
        state.choices[key] = (*options, *extra)


def state_from_form(step: Step, form: Mapping[str, str], spec: Mapping[str, Any]) -> FormState:
    """The form of ``step`` as posted (texts kept as typed, so errors can be fixed)."""
    state = FormState()

    def walk(nodes: Iterable[Node], prefix: str) -> None:
        for node in nodes:
            key = _join(prefix, node.name)
            if isinstance(node, Input):
                state.values[key] = form.get(key, "")
            elif isinstance(node, Group):
                walk(node.children, key)
            else:
                count = _count_items(form, key)
                state.counts[key] = count
                for i in range(count):
                    walk(node.children, f"{key}.{i}")

    walk(step.nodes, "")
    _stage_choices(step, view_spec(spec), state)
    return state


def _count_items(form: Mapping[str, str], key: str) -> int:
    pattern = re.compile(rf"^{re.escape(key)}\.(\d+)\.")
    indices = {int(m.group(1)) for k in form if (m := pattern.match(k))}
    declared = form.get(f"{key}.__count")
    n = max(indices) + 1 if indices else 0
    if declared is not None and declared.isdigit():
        n = max(n, min(int(declared), 100))
    return n


def find_node(step: Step, key: str) -> Node | None:
    """The node whose dotted key (indices removed) is ``key``'s."""
    wanted = re.sub(r"\.\d+(?=\.|$)", "", key)

    def walk(nodes: Iterable[Node], prefix: str) -> Node | None:
        for node in nodes:
            k = _join(prefix, node.name)
            if k == wanted:
                return node
            if isinstance(node, Group | Repeat):
                found = walk(node.children, k)
                if found is not None:
                    return found
        return None

    return walk(step.nodes, "")


def restructure(
    step: Step, form: Mapping[str, str], action: str, spec: Mapping[str, Any]
) -> dict[str, str]:
    """Apply ``add:<key>`` / ``remove:<key>.<i>`` to the posted texts (before parsing)."""
    out = dict(form)
    verb, _, target = action.partition(":")
    if verb == "add":
        node = find_node(step, target)
        if not isinstance(node, Repeat):
            return out
        count = _count_items(out, target)
        if count >= node.max_items:
            return out
        existing = _items_as_json(step, node, out, target)
        item = node.new_item(existing)
        state = FormState()
        _flatten(node.children, item, f"{target}.{count}", state)
        out.update(state.values)
        out[f"{target}.__count"] = str(count + 1)
        return out
    if verb == "remove":
        base, _, index = target.rpartition(".")
        node = find_node(step, base)
        if not isinstance(node, Repeat) or not index.isdigit():
            return out
        count = _count_items(out, base)
        i = int(index)
        if count <= node.min_items or i >= count:
            return out
        shifted: dict[str, str] = {}
        prefix = f"{base}."
        for k, v in out.items():
            if not k.startswith(prefix) or k == f"{base}.__count":
                shifted[k] = v
                continue
            head, _, tail = k[len(prefix) :].partition(".")
            if not head.isdigit():
                shifted[k] = v
                continue
            j = int(head)
            if j == i:
                continue
            shifted[f"{base}.{j - 1 if j > i else j}.{tail}"] = v
        shifted[f"{base}.__count"] = str(count - 1)
        return shifted
    return out


def _flatten(nodes: Iterable[Node], obj: Any, prefix: str, state: FormState) -> None:
    for node in nodes:
        key = _join(prefix, node.name)
        if isinstance(node, Input):
            state.values[key] = format_value(node.kind, _get(obj, node.name))
        elif isinstance(node, Group):
            _flatten(node.children, _get(obj, node.name), key, state)
        else:
            items = _get(obj, node.name)
            items = items if isinstance(items, list) else []
            state.values[f"{key}.__count"] = str(len(items))
            for i, item in enumerate(items):
                _flatten(node.children, item, f"{key}.{i}", state)


def _items_as_json(step: Step, node: Repeat, form: Mapping[str, str], key: str) -> list[Any]:
    items: list[Any] = []
    for i in range(_count_items(form, key)):
        item, _ = _parse_nodes(node.children, form, f"{key}.{i}", {})
        items.append(item)
    return items


# --------------------------------------------------------------------------- parsing


def _parse_nodes(
    nodes: Iterable[Node], form: Mapping[str, str], prefix: str, base: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse the inputs under ``prefix`` into an object (starting from ``base``'s keys);
    returns the object and the parse errors by dotted key."""
    obj: dict[str, Any] = dict(base) if isinstance(base, dict) else {}
    errors: dict[str, str] = {}
    for node in nodes:
        key = _join(prefix, node.name)
        if isinstance(node, Input):
            raw = form.get(key, "")
            if node.kind != "checkbox" and not raw.strip():
                obj.pop(node.name, None)  # empty: the default applies (or REQUIRED is raised)
                continue
            try:
                obj[node.name] = parse_value(node, raw)
            except ParseError as exc:
                errors[key] = str(exc)
                obj.pop(node.name, None)
        elif isinstance(node, Group):
            if node.name is None:
                sub, errs = _parse_nodes(node.children, form, prefix, obj)
                obj = sub
            else:
                sub, errs = _parse_nodes(node.children, form, key, _get(obj, node.name))
                obj[node.name] = sub
            errors.update(errs)
        else:
            old = _get(obj, node.name)
            old_items = old if isinstance(old, list) else []
            items = []
            for i in range(_count_items(form, key)):
                base_item = old_items[i] if i < len(old_items) else {}
                item, errs = _parse_nodes(node.children, form, f"{key}.{i}", base_item)
                items.append(item)
                errors.update(errs)
            obj[node.name] = items
    return obj, errors


def parse_step(
    step: Step, form: Mapping[str, str], spec: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """The spec with this step's fields replaced by the posted ones, and the parse errors."""
    owned = {k: spec[k] for k in step.owns if k in spec}
    parsed, errors = _parse_nodes(step.nodes, form, "", owned)
    candidate = {k: v for k, v in spec.items() if k not in step.owns}
    candidate.update({k: v for k, v in parsed.items() if k in step.owns})
    for key in errors:  # a field that did not parse keeps its stored value
        _revert(candidate, spec, key.split("."))
    return candidate, errors


# --------------------------------------------------------------------------- issues


def pointer_to_key(pointer: str) -> str:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    return ".".join(parts)


def key_to_pointer(key: str) -> str:
    return (
        "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in key.split("."))
        if key
        else ""
    )


def _all_keys(step: Step, state: FormState) -> set[str]:
    return set(state.values) | set(state.counts) | _group_keys(step, state)


def _group_keys(step: Step, state: FormState) -> set[str]:
    keys: set[str] = set()

    def walk(nodes: Iterable[Node], prefix: str) -> None:
        for node in nodes:
            key = _join(prefix, node.name)
            if isinstance(node, Group):
                if node.name:
                    keys.add(key)
                walk(node.children, key)
            elif isinstance(node, Repeat):
                for i in range(state.counts.get(key, 0)):
                    keys.add(f"{key}.{i}")
                    walk(node.children, f"{key}.{i}")

    walk(step.nodes, "")
    return keys


def field_for_issue(step: Step, state: FormState, pointer: str) -> str | None:
    """The dotted key of the field or fieldset that shows an issue at ``pointer``; ``""``
    for the step as a whole; None when the issue belongs to another step."""
    if step_for_path(pointer) != step.slug:
        return None
    known = _all_keys(step, state)
    key = pointer_to_key(pointer)
    while key:
        if key in known:
            return key
        key = key.rpartition(".")[0]
    return ""


_BOUND = re.compile(r"(greater|less) than( or equal to)? (-?[0-9.eE+-]+)")


def _human(kind: Kind | None, number: float) -> str:
    if kind == "percent":
        return f"{_trim(f'{number * 100:.4f}')} %"
    if kind == "money":
        return f"${number:,.0f}"
    return _trim(f"{number:.6f}")


def issue_message(issue: Issue, node: Node | None) -> str:
    """A message for a GP: in the units of the field (percent, dollars)."""
    code, message = issue["code"], issue["message"]
    kind = node.kind if isinstance(node, Input) else None
    if code == "REQUIRED":
        return "Enter a value." if isinstance(node, Input) else "This is required."
    if code == "OUT_OF_RANGE" and (m := _BOUND.search(message)):
        bound = _human(kind, float(m.group(3)))
        if m.group(1) == "greater":
            return f"Must be at least {bound}." if m.group(2) else f"Must be more than {bound}."
        return f"Must be at most {bound}." if m.group(2) else f"Must be less than {bound}."
    got = re.search(r"got (-?[0-9.]+)", message)
    total = f" (now {_trim(f'{float(got.group(1)) * 100:.4f}')} %)" if got else ""
    friendly = {
        "SHARES_NOT_ONE": f"Allocation shares must add up to 100 %{total}.",
        "PROBABILITIES_NOT_ONE": f"Band probabilities must add up to 100 %{total}.",
        "RATES_EXCEED_ONE": "Graduation rate plus exit rate must not exceed 100 % (the rest fail).",
        "LAST_STAGE_GRADUATES": "The last stage cannot graduate: set its graduation rate to 0 %.",
        "SECTOR_SHARES_ABOVE_ONE": "Sector shares must not add up to more than 100 %.",
        "PERIOD_EXCEEDS_LIFE": "The investment period must not be longer than the fund life.",
        "FIRST_CLOSE_OUTSIDE_VINTAGE": "The first close must fall in the vintage year.",
        "END_BEFORE_START": "The last year must not be before the first year.",
        "ROUND_ABOVE_POST_MONEY": "The round size must not exceed the post-money valuation.",
        "CHECK_ABOVE_FUND_SIZE": "The initial check must not exceed the fund size.",
        "CHECK_ABOVE_POST_MONEY": "The initial check must not exceed the stage's post-money "
        "valuation.",
        "FOLLOW_ON_CHECK_REQUIRED": "A fixed follow-on strategy needs a follow-on check above $0.",
        "TIERS_OVERLAP_OR_UNORDERED": "Fee tiers must be in order and must not overlap.",
        "BANDS_OVERLAP_OR_UNORDERED": "Bands must be in order and must not overlap.",
        "EMPTY_BAND": "The upper multiple must be above the lower one.",
        "TAIL_NEEDS_POSITIVE_MIN": "The highest band is a power-law tail and needs a lower "
        "multiple above 0.",
    }
    if code in friendly:
        return friendly[code]
    text = message[:1].upper() + message[1:]
    return text if text.endswith(".") else text + "."


def step_issues(step: Step, candidate: Mapping[str, Any], *, complete: bool) -> list[Issue]:
    """Issues of ``candidate`` that this step shows. Draft rules always; with ``complete``
    (the GP pressed Continue) also what publishing would require of this step's fields."""
    issues = list(present_field_issues(dict(candidate)))
    if complete:
        _spec, errors, _warnings = validate_publish(dict(candidate))
        issues.extend(errors)
    seen: set[tuple[str, str]] = set()
    out: list[Issue] = []
    for issue in issues:
        ident = (issue["path"], issue["code"])
        if ident in seen or step_for_path(issue["path"]) != step.slug:
            continue
        seen.add(ident)
        out.append(issue)
    return out


def place_issues(step: Step, state: FormState, issues: Iterable[Issue]) -> None:
    """Put each issue next to its field (or at the top of the step)."""
    for issue in issues:
        key = field_for_issue(step, state, issue["path"])
        if key is None:
            continue
        node = find_node(step, key) if key else None
        state.add_error(key, issue_message(issue, node))


# --------------------------------------------------------------------------- saving


def _resolve(obj: Any, parts: list[str]) -> tuple[bool, Any]:
    for part in parts:
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return False, None
    return True, obj


def _revert(candidate: dict[str, Any], old: Mapping[str, Any], parts: list[str]) -> None:
    found, parent = _resolve(candidate, parts[:-1])
    if not found or not parts:
        return
    last = parts[-1]
    had, value = _resolve(old, parts)
    if isinstance(parent, dict):
        if had:
            parent[last] = copy.deepcopy(value)
        else:
            parent.pop(last, None)
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent) and had:
        parent[int(last)] = copy.deepcopy(value)


def savable(
    old: Mapping[str, Any], candidate: Mapping[str, Any], unparsed: Iterable[str]
) -> dict[str, Any] | None:
    """The part of ``candidate`` that can be stored as a draft: fields that did not parse or
    that break a draft rule keep their stored value (first field by field, then the whole
    top-level entry). None when even that does not validate."""
    work = copy.deepcopy(dict(candidate))
    for key in unparsed:
        _revert(work, old, key.split("."))
    for attempt in range(4):
        issues = present_field_issues(work)
        if not issues:
            return work
        for issue in issues:
            parts = [p.replace("~1", "/").replace("~0", "~") for p in issue["path"].split("/")[1:]]
            if not parts:
                return None
            _revert(work, old, parts if attempt == 0 else parts[:1])
    return None


def _differences(new: Any, old: Any, key: str) -> Iterator[str]:
    """Dotted keys where ``new`` and ``old`` differ (a list of another length differs as a
    whole; a missing key equals null: either way the default applies)."""
    if isinstance(new, dict) and isinstance(old, dict):
        for name in dict.fromkeys([*new, *old]):
            yield from _differences(new.get(name), old.get(name), _join(key, name))
    elif isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            yield from _differences(a, b, f"{key}.{i}")
    elif new != old:
        yield key


def _under(key: str, held: Iterable[str]) -> bool:
    """Is ``key`` one of ``held`` or inside one of them?"""
    return any(key == h or key.startswith(h + ".") for h in held)


def held_back(
    candidate: Mapping[str, Any],
    kept: Mapping[str, Any],
    unparsed: Iterable[str],
    form: Mapping[str, str],
) -> list[str]:
    """The entries of ``candidate`` (what the form asked for) that ``kept`` (what
    :func:`savable` lets the draft store) does not hold: fields that did not parse
    (``unparsed``) and fields or lists that broke a draft rule. Dotted keys, none inside
    another, in the order of the posted ``form``."""
    keys = sorted({*unparsed, *_differences(dict(candidate), dict(kept), "")}, key=len)
    outermost: list[str] = []
    for key in keys:
        if not _under(key, outermost):
            outermost.append(key)
    order = list(form)

    def position(key: str) -> int:
        return next((i for i, k in enumerate(order) if _under(k, [key])), len(order))

    return sorted(outermost, key=position)


def pending_texts(form: Mapping[str, str], held: Iterable[str]) -> dict[str, str]:
    """The texts of ``form`` under the ``held`` keys (item counts of held lists included):
    what the user typed and the draft did not take."""
    held = list(held)
    return {k: v for k, v in form.items() if _under(k, held)}


def form_texts(step: Step, spec: Mapping[str, Any]) -> dict[str, str]:
    """The texts the form of ``step`` posts for ``spec`` unchanged (defaults filled in)."""
    state = FormState()
    _flatten(step.nodes, view_spec(spec), "", state)
    return state.values


def with_pending(
    step: Step, spec: Mapping[str, Any], held: Iterable[str], texts: Mapping[str, str]
) -> dict[str, str]:
    """The texts of ``step``'s form for ``spec``, except under the ``held`` keys, which
    show the pending ``texts`` (see :func:`pending_texts`)."""
    held = list(held)
    form = {k: v for k, v in form_texts(step, spec).items() if not _under(k, held)}
    form.update(texts)
    return form


def check_form(
    step: Step, form: Mapping[str, str], spec: Mapping[str, Any], *, complete: bool
) -> tuple[dict[str, Any], dict[str, str], FormState]:
    """Read the texts of ``step``'s form against the draft ``spec``: the candidate spec (see
    :func:`parse_step`), the parse errors by key, and the form showing the texts as typed
    with every message next to its field (draft rules; with ``complete`` also what
    publishing needs of this step)."""
    candidate, parse_errors = parse_step(step, form, spec)
    state = state_from_form(step, form, spec)
    for key, message in parse_errors.items():
        state.add_error(key, message)
    place_issues(
        step,
        state,
        [
            issue
            for issue in step_issues(step, candidate, complete=complete)
            if field_for_issue(step, state, issue["path"]) not in parse_errors
        ],
    )
    return candidate, parse_errors, state


def save_message(step: Step, held: Iterable[str], *, changed: bool) -> str:
    """What a save of ``step`` did, plainly: saved, or which fields were not saved."""
    names = ", ".join(describe_key(step, key) for key in held)
    if not names:
        return "Draft saved." if changed else "No changes to save."
    if changed:
        return (
            f"Draft saved, except {names}: the draft keeps their last saved values until "
            "they are fixed."
        )
    return f"Not saved: {names}. The draft keeps their last saved values until they are fixed."


def _level(nodes: Iterable[Node]) -> list[Node]:
    """The nodes of one object level (children of unnamed groups inlined)."""
    out: list[Node] = []
    for node in nodes:
        if isinstance(node, Group) and node.name is None:
            out.extend(_level(node.children))
        else:
            out.append(node)
    return out


def describe_key(step: Step, key: str) -> str:
    """A human name for a dotted key: ``Stage 3 › Exit outcomes › Band 2 › Probability``."""
    if not key:
        return step.title
    parts = key.split(".")
    labels: list[str] = []
    nodes: Iterable[Node] = step.nodes
    i = 0
    while i < len(parts):
        node = next((n for n in _level(nodes) if n.name == parts[i]), None)
        if node is None:
            break
        if isinstance(node, Input):
            labels.append(node.label)
            break
        if isinstance(node, Group):
            labels.append(node.legend)
            nodes = node.children
            i += 1
            continue
        if i + 1 < len(parts) and parts[i + 1].isdigit():
            labels.append(f"{node.item} {int(parts[i + 1]) + 1}")
            i += 2
        else:
            labels.append(node.legend)
            i += 1
        nodes = node.children
    return " › ".join(labels) or key
