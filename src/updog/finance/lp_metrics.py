"""LP capital-account metrics (DPI, RVPI, TVPI, MOIC, net IRR) from events and marks.

SPEC §3.1 ``lp_metrics(events, marks, as_of)``; truth: lp-metrics.json.

**Events** count when they are *live* (status ``approved`` or ``locked``), dated on or before
``as_of``, and not reversed (status ``reversed``, or the target of a live ``reversal`` event;
reversal rows themselves carry no money). Amounts are magnitudes; the event type gives the
direction:

* contributions ``C = Σ lp_capital_call − Σ recallable_distribution`` (a recallable
  distribution returns capital the fund may call again, so it nets down paid-in capital and is
  not a distribution);
* distributions ``D = Σ lp_distribution + Σ realized_proceeds`` (SPEC §3.1);
* every other type — ``portfolio_investment`` and ``fund_expense`` today — is a fund-level flow
  that does not enter the LP's account: such events are left out of the metrics, never
  silently: warning ``EXCLUDED_FUND_LEVEL_EVENTS`` lists them;
* a ``reversal`` removes the event named by its ``reversal_of``; one that names no event (or
  another reversal) removes nothing and is reported (``UNMATCHED_REVERSALS``).

**Marks**: live marks (``approved``/``locked``) with ``mark_date <= as_of``; per company the
latest mark date wins (ties: the higher id); a mark without a company is a position of its own.
NAV is the sum of the selected fair values. Live marks dated after ``as_of`` are listed in
``excluded_future_marks``.

**Ratios** (ILPA Reporting Template 2016; CFA Institute GIPS 2020 §2): ``DPI = D/C``,
``RVPI = NAV/C``, ``TVPI = DPI + RVPI``, ``MOIC = (D + NAV)/C``; all None when ``C = 0``
(warning ``ZERO_CONTRIBUTIONS``) or ``C < 0`` (``NEGATIVE_CONTRIBUTIONS``).

**Net IRR**: :func:`updog.finance.xirr` (Actual/365) of the LP's cash flows — calls negative,
distributions (``lp_distribution`` and ``realized_proceeds``) and recallable distributions
positive on their dates — plus the NAV as an inflow on ``as_of``.

Money is rounded half-up to cents at the end; ratios are unrounded Decimals.

Warnings (codes, in this order): ``EXCLUDED_NON_LIVE_EVENTS`` (events neither live nor
reversed), ``EXCLUDED_FUTURE_EVENTS`` (live events after ``as_of``),
``EXCLUDED_FUND_LEVEL_EVENTS`` (counted events of a type that does not enter the LP's account),
``UNMATCHED_REVERSALS`` (live reversals on or before ``as_of`` that name no other non-reversal
event), ``EXCLUDED_NON_LIVE_MARKS`` (marks on or before ``as_of`` that are neither live,
superseded nor reversed), ``ZERO_CONTRIBUTIONS``, ``NEGATIVE_CONTRIBUTIONS``. So every event is
either in the figures or named by a warning (reversed events excepted: their reversal is).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal, localcontext
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from updog.finance._decimal import CONTEXT, ZERO, Money, NonNegative, RecordId, round_cents
from updog.finance.xirr import xirr_result

__all__ = [
    "DISTRIBUTION_TYPES",
    "LP_FLOWS",
    "CashFlowEvent",
    "LpMetrics",
    "MetricWarning",
    "ValuationMark",
    "lp_metrics",
]

EventType = Literal[
    "lp_capital_call",
    "lp_distribution",
    "recallable_distribution",
    "reversal",
    "portfolio_investment",
    "realized_proceeds",
    "fund_expense",
]
EventStatus = Literal["draft", "approved", "locked", "reversed"]
MarkStatus = Literal["draft", "approved", "locked", "superseded", "reversed"]
Confidence = Literal["high", "medium", "low"]

_LIVE = frozenset({"approved", "locked"})
#: The event types that enter the LP's capital account and their direction for the LP: -1 paid
#: in, +1 received. Every other type is a fund-level flow (excluded with a warning).
LP_FLOWS: Final[Mapping[str, int]] = {
    "lp_capital_call": -1,
    "recallable_distribution": 1,
    "lp_distribution": 1,
    "realized_proceeds": 1,
}
#: The types summed as distributions (SPEC §3.1).
DISTRIBUTION_TYPES: Final[tuple[str, ...]] = ("lp_distribution", "realized_proceeds")


class CashFlowEvent(BaseModel):
    """A cash-flow event of the fund's LP capital account (amount in dollars)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RecordId
    event_type: EventType
    amount: Money
    event_date: date
    status: EventStatus | None = None
    reversal_of: RecordId | None = None


class ValuationMark(BaseModel):
    """A fair-value mark of a position (dollars, >= 0)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: RecordId
    fair_value: NonNegative
    mark_date: date
    status: MarkStatus | None = None
    confidence: Confidence = "medium"
    company_id: RecordId | None = None


class MetricWarning(BaseModel):
    """A warning attached to the metrics (stable ``code``, human ``message``)."""

    model_config = ConfigDict(frozen=True)

    code: str
    message: str


class LpMetrics(BaseModel):
    """Outcome of :func:`lp_metrics`."""

    model_config = ConfigDict(frozen=True)

    as_of: date
    contributions: Money
    distributions: NonNegative
    nav: NonNegative
    dpi: Decimal | None
    rvpi: Decimal | None
    tvpi: Decimal | None
    moic: Decimal | None
    net_irr: float | None
    net_irr_converges: bool
    mark_confidence_mix: Mapping[str, int]
    excluded_future_marks: tuple[int, ...]
    warnings: tuple[MetricWarning, ...]

    @property
    def warning_codes(self) -> tuple[str, ...]:
        return tuple(w.code for w in self.warnings)


def _ids(ids: Sequence[int]) -> str:
    return ", ".join(str(i) for i in sorted(ids))


def lp_metrics(
    events: Sequence[CashFlowEvent], marks: Sequence[ValuationMark], as_of: date
) -> LpMetrics:
    """DPI, RVPI, TVPI, MOIC and net IRR as of ``as_of`` (rules in the module docstring).

    Args:
        events: the fund's cash-flow events (amounts are magnitudes in dollars; the type gives
            the direction), ids unique.
        marks: fair-value marks (dollars), ids unique.
        as_of: the reporting date; later events and marks are left out (with a warning).

    Returns:
        :class:`LpMetrics`: money rounded half-up to cents, ratios unrounded, ``net_irr`` an
        annual rate (ratio) or None, and every exclusion named in ``warnings``.

    Raises:
        ValueError: an event or mark that is not of the right type, duplicate ids.
    """
    if not isinstance(as_of, date):
        raise ValueError(f"as_of must be a date, got {type(as_of).__name__}")
    for i, ev in enumerate(events):
        if not isinstance(ev, CashFlowEvent):
            raise ValueError(f"events[{i}] must be a CashFlowEvent")
    for i, mk in enumerate(marks):
        if not isinstance(mk, ValuationMark):
            raise ValueError(f"marks[{i}] must be a ValuationMark")
    for name, ids in (("event", [e.id for e in events]), ("mark", [m.id for m in marks])):
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name} ids must be unique")

    warnings: list[MetricWarning] = []
    non_live = [e.id for e in events if e.status not in _LIVE and e.status != "reversed"]
    if non_live:
        warnings.append(
            MetricWarning(
                code="EXCLUDED_NON_LIVE_EVENTS",
                message=f"{len(non_live)} events excluded because their status is not "
                f"approved or locked: ids {_ids(non_live)}",
            )
        )
    live = [e for e in events if e.status in _LIVE]
    future = [e.id for e in live if e.event_date > as_of]
    if future:
        warnings.append(
            MetricWarning(
                code="EXCLUDED_FUTURE_EVENTS",
                message=f"{len(future)} events dated after {as_of.isoformat()} excluded: "
                f"ids {_ids(future)}",
            )
        )
    live = [e for e in live if e.event_date <= as_of]
    reversals = [e for e in live if e.event_type == "reversal"]
    reversible = {e.id for e in events if e.event_type != "reversal"}
    unmatched = [e.id for e in reversals if e.reversal_of not in reversible]
    reversed_ids = {e.reversal_of for e in reversals}
    counted = [e for e in live if e.event_type != "reversal" and e.id not in reversed_ids]
    fund_level: dict[str, list[int]] = {}
    for e in counted:
        if e.event_type not in LP_FLOWS:
            fund_level.setdefault(e.event_type, []).append(e.id)
    if fund_level:
        listed = "; ".join(f"{kind} ids {_ids(ids)}" for kind, ids in sorted(fund_level.items()))
        warnings.append(
            MetricWarning(
                code="EXCLUDED_FUND_LEVEL_EVENTS",
                message=f"{sum(map(len, fund_level.values()))} events are fund-level flows that "
                f"do not enter the LP's capital account and were excluded: {listed}",
            )
        )
    if unmatched:
        warnings.append(
            MetricWarning(
                code="UNMATCHED_REVERSALS",
                message=f"{len(unmatched)} reversals name no event they could reverse "
                f"(reversal_of missing, unknown or itself a reversal) and changed nothing: "
                f"ids {_ids(unmatched)}",
            )
        )
    counted = [e for e in counted if e.event_type in LP_FLOWS]

    non_live_marks = [
        m.id
        for m in marks
        if m.mark_date <= as_of and m.status not in _LIVE | {"superseded", "reversed"}
    ]
    if non_live_marks:
        warnings.append(
            MetricWarning(
                code="EXCLUDED_NON_LIVE_MARKS",
                message=f"{len(non_live_marks)} marks excluded because their status is not "
                f"approved or locked: ids {_ids(non_live_marks)}",
            )
        )
    live_marks = [m for m in marks if m.status in _LIVE]
    excluded_future = tuple(sorted(m.id for m in live_marks if m.mark_date > as_of))
    selected: dict[tuple[str, int], ValuationMark] = {}
    for mark in live_marks:
        if mark.mark_date > as_of:
            continue
        key = ("company", mark.company_id) if mark.company_id is not None else ("mark", mark.id)
        best = selected.get(key)
        if best is None or (mark.mark_date, mark.id) > (best.mark_date, best.id):
            selected[key] = mark
    mix = {"high": 0, "medium": 0, "low": 0}
    for mark in selected.values():
        mix[mark.confidence] += 1

    with localcontext(CONTEXT):

        def total(kind: str) -> Decimal:
            return sum((abs(e.amount) for e in counted if e.event_type == kind), ZERO)

        contributions = total("lp_capital_call") - total("recallable_distribution")
        distributions = sum((total(kind) for kind in DISTRIBUTION_TYPES), ZERO)
        nav = sum((m.fair_value for m in selected.values()), ZERO)
        dpi = rvpi = tvpi = moic = None
        if contributions == 0:
            warnings.append(
                MetricWarning(
                    code="ZERO_CONTRIBUTIONS",
                    message="net contributions are zero; DPI, RVPI, TVPI and MOIC are undefined",
                )
            )
        elif contributions < 0:
            warnings.append(
                MetricWarning(
                    code="NEGATIVE_CONTRIBUTIONS",
                    message="recallable distributions exceed capital called; DPI, RVPI, TVPI "
                    "and MOIC are undefined",
                )
            )
        else:
            dpi = distributions / contributions
            rvpi = nav / contributions
            tvpi = dpi + rvpi
            moic = (distributions + nav) / contributions

    dates: list[date] = []
    amounts: list[float] = []
    for e in counted:
        dates.append(e.event_date)
        amounts.append(LP_FLOWS[e.event_type] * float(abs(e.amount)))
    if nav > 0:
        dates.append(as_of)
        amounts.append(float(nav))
    irr = xirr_result(dates, amounts)

    return LpMetrics(
        as_of=as_of,
        contributions=round_cents(contributions),
        distributions=round_cents(distributions),
        nav=round_cents(nav),
        dpi=dpi,
        rvpi=rvpi,
        tvpi=tvpi,
        moic=moic,
        net_irr=irr.rate,
        net_irr_converges=irr.converged,
        mark_confidence_mix=mix,
        excluded_future_marks=excluded_future,
        warnings=tuple(warnings),
    )
