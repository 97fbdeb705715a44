"""Distribution waterfalls: one realisation (American, deal by deal) and the whole fund (European).

**Tiers** (ILPA Principles 3.0, 2019, "Distribution waterfall"; Metrick & Yasuda, "The Economics
of Private Equity Funds", RFS 23(6), 2010, §2.3), in this order:

1. *return of capital*: the LP gets back the cost (paid-in capital) first;
2. *preferred return*: the LP then gets the hurdle, ``pref``;
3. *GP catch-up*: the GP takes ``r`` (the catch-up rate) of each dollar — the LP the rest —
   until the GP holds ``c`` (the carry rate) of everything paid above cost so far, i.e.
   ``GP = c × (pref + tier)``. That makes the tier ``c·pref / (r − c)`` dollars (with
   ``r = 1``: ``pref·c / (1 − c)``). If ``r <= c`` the GP never catches up and the tier takes
   all that remains (this is the market definition of a partial catch-up, SPEC §3.1); with no
   preferred return paid there is nothing to catch up and the tier is empty;
4. *carry*: what remains is split ``c`` to the GP and ``1 − c`` to the LP.

The GP's own commitment is treated as LP capital (it sits in the cost and is returned with it).

**American** (:func:`distribute`): one realisation against its own deal cost. ``pref`` is, by
explicit choice (``pref_basis``):

* ``"flat"`` (the default, and the rule of the reference truth cases): ``hurdle × cost``, whatever
  the holding period;
* ``"compounded"``: the hurdle as an annual rate compounded annually on each contribution from
  its date to the exit date, ``Σ a_i × ((1 + hurdle) ** (days_i / 365) − 1)`` (Actual/365 Fixed,
  the kernel's XIRR default). This is how limited partnership agreements word the preferred
  return ("8 % per annum, compounded annually, on capital contributions from the date of
  contribution"; e.g. ILPA Model LPA, 2019, and its deal-by-deal variant, 2020) and how the
  worked examples compute it: 8 % a year on a deal held 6 years is 1.08⁶ − 1 ≈ 58.7 % of cost,
  not 8 %. On a one-deal fund it is the European waterfall's accrual exactly.

**European** (:func:`european_waterfall`): all the fund's distributions in date order against
all paid-in capital; ``pref`` compounds annually at the hurdle on unreturned paid-in capital and
on unpaid preferred return (the LP's IRR must reach the hurdle), and each tier is filled
cumulatively across distributions (SPEC §3.2).

Arithmetic is Decimal (:data:`updog.finance._decimal.CONTEXT`). The one division of the tiers,
the catch-up tier ``c·pref / (r − c)``, is kept as an exact fraction (:func:`catch_up_tier_size`)
and never rounded on its own: every figure derived from it is converted to Decimal once, exactly
when its value is a finite decimal, else carried to 10^-30 (:func:`catch_up_and_carry`). So every
reported figure is the half-up rounding to cents of its exact value — an exact half-cent rounds
up — each figure on its own, so LP + GP may differ from the rounded total by a cent, while the
unrounded figures (``*_exact``) add up exactly to what was distributed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Final, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from updog.finance._decimal import (
    CONTEXT,
    FINE,
    INTEGRAL,
    ONE,
    ZERO,
    Money,
    NonNegative,
    Number,
    Quarter,
    Ratio,
    fine,
    round_cents,
    to_decimal,
)

__all__ = [
    "Distribution",
    "EuropeanResult",
    "EuropeanRow",
    "EuropeanTerms",
    "PrefBasis",
    "ProfitSplit",
    "QuarterAmount",
    "TierAllocation",
    "TierKind",
    "WaterfallPolicy",
    "WaterfallTier",
    "catch_up_and_carry",
    "catch_up_tier_size",
    "compounded_pref",
    "distribute",
    "european_waterfall",
]

_ORDER = ("return_of_capital", "preferred_return", "gp_catch_up", "carry")

#: How :func:`distribute` computes the preferred return: ``"flat"`` (``hurdle × cost``) or
#: ``"compounded"`` (annual compounding on dated contributions to the exit date).
PrefBasis = Literal["flat", "compounded"]
#: Day-count denominator of the compounded preferred return (Actual/365 Fixed, like ``xirr``).
DAYS_PER_YEAR: Final[int] = 365


class TierKind(StrEnum):
    """Waterfall tier types, in the only order they may appear."""

    RETURN_OF_CAPITAL = "return_of_capital"
    PREFERRED_RETURN = "preferred_return"
    GP_CATCH_UP = "gp_catch_up"
    CARRY = "carry"


class WaterfallTier(BaseModel):
    """One tier. ``rate`` is the hurdle for ``preferred_return``, the catch-up rate for
    ``gp_catch_up`` and the carry rate for ``carry`` (ratios 0..1); ``return_of_capital``
    has none."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TierKind
    rate: Ratio | None = None

    @model_validator(mode="after")
    def _rate_matches_kind(self) -> Self:
        if self.kind is TierKind.RETURN_OF_CAPITAL and self.rate is not None:
            raise ValueError("return_of_capital takes no rate")
        if self.kind is not TierKind.RETURN_OF_CAPITAL and self.rate is None:
            raise ValueError(f"{self.kind.value} needs a rate")
        return self


#: Most tiers a policy has (each kind at most once, and there are four kinds).
MAX_TIERS: Final = 4


class WaterfallPolicy(BaseModel):
    """An ordered list of tiers (see the module docstring).

    Rules: return of capital comes first; each kind at most once; kinds in the order return of
    capital → preferred return → GP catch-up → carry (a tier may be left out); a catch-up needs
    a carry tier after it. Build the usual one with :meth:`standard`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tiers: tuple[WaterfallTier, ...] = Field(min_length=1, max_length=MAX_TIERS)

    @model_validator(mode="after")
    def _tiers_ordered(self) -> Self:
        kinds = [tier.kind.value for tier in self.tiers]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each tier kind may appear once, got {kinds}")
        positions = [_ORDER.index(kind) for kind in kinds]
        if positions != sorted(positions):
            raise ValueError(
                "tiers must be ordered return_of_capital, preferred_return, gp_catch_up, "
                f"carry; got {kinds}"
            )
        if kinds[0] != TierKind.RETURN_OF_CAPITAL:
            raise ValueError("the first tier must be return_of_capital")
        if TierKind.GP_CATCH_UP in kinds and TierKind.CARRY not in kinds:
            raise ValueError("a gp_catch_up tier needs a carry tier (its target)")
        return self

    @classmethod
    def standard(cls, carry: Number, hurdle: Number = 0, catch_up: Number = 1) -> Self:
        """Return of capital, preferred return at ``hurdle`` (left out when 0), GP catch-up at
        ``catch_up`` (left out when 0 or when there is no preferred return) and ``carry``."""
        hurdle_d = to_decimal(hurdle, "hurdle")
        catch_up_d = to_decimal(catch_up, "catch_up")
        tiers = [WaterfallTier(kind=TierKind.RETURN_OF_CAPITAL)]
        if hurdle_d != 0:
            tiers.append(WaterfallTier(kind=TierKind.PREFERRED_RETURN, rate=hurdle_d))
            if catch_up_d != 0:
                tiers.append(WaterfallTier(kind=TierKind.GP_CATCH_UP, rate=catch_up_d))
        tiers.append(WaterfallTier(kind=TierKind.CARRY, rate=to_decimal(carry, "carry")))
        return cls(tiers=tuple(tiers))

    def rate(self, kind: TierKind) -> Decimal | None:
        """The rate of the tier of ``kind``, or None when the policy has no such tier."""
        for tier in self.tiers:
            if tier.kind is kind:
                return tier.rate if tier.rate is not None else ZERO
        return None


class TierAllocation(BaseModel):
    """What one tier paid: LP and GP dollars (rounded to cents) and the exact figures."""

    model_config = ConfigDict(frozen=True)

    tier: TierKind
    lp_amount: Money
    gp_amount: Money
    lp_exact: Money
    gp_exact: Money

    @property
    def amount(self) -> Decimal:
        """LP + GP of this tier, rounded half-up to cents on its own."""
        return round_cents(self.lp_exact + self.gp_exact)


class Distribution(BaseModel):
    """Outcome of :func:`distribute`.

    ``lp_distribution``, ``gp_distribution`` and ``total_distributed`` (dollars) are each the
    half-up rounding to cents of their exact value, on their own; ``lp_exact + gp_exact``
    equals the distributable amount (``max(0, exit_proceeds)``) exactly, and each ``*_exact``
    figure is its exact value whenever that is a finite decimal (else within 10^-30 of it).
    ``breakdown`` has one entry per policy tier, in order (zeros for tiers the proceeds did not
    reach).
    """

    model_config = ConfigDict(frozen=True)

    lp_distribution: Money
    gp_distribution: Money
    total_distributed: Money
    lp_exact: Money
    gp_exact: Money
    breakdown: tuple[TierAllocation, ...]


#: Decimal places of :data:`updog.finance._decimal.FINE` (10^-30 dollars).
_FINE_PLACES: Final[int] = -int(FINE.as_tuple().exponent)


def _to_decimal(value: Fraction, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """``value`` (dollars) as a Decimal: exactly when its decimal expansion is finite, else
    carried to 10^-30 with ``rounding`` (``ROUND_HALF_EVEN`` or ``ROUND_DOWN``)."""
    rest = value.denominator
    twos = fives = 0
    while rest % 2 == 0:
        rest //= 2
        twos += 1
    while rest % 5 == 0:
        rest //= 5
        fives += 1
    if rest == 1:  # a finite decimal: exact, however many digits it has
        places = max(twos, fives)
        return Decimal(f"{value.numerator * (10**places // value.denominator)}E-{places}")
    scaled = value * 10**_FINE_PLACES
    units = int(scaled) if rounding == ROUND_DOWN else round(scaled)  # round(): half-even
    return Decimal(f"{units}E-{_FINE_PLACES}")


def catch_up_tier_size(carry: Decimal, rate: Decimal, pref: Decimal) -> Fraction | None:
    """Exact size in dollars of the catch-up tier, ``carry · pref / (rate − carry)`` (SPEC §3.1,
    market definition), or None when it never closes (``rate <= carry``: the tier takes all
    that remains).

    ``carry`` and ``rate`` are ratios 0..1, ``pref`` the preferred return paid in dollars
    (cumulative, for a whole-fund waterfall). With no preferred return paid the GP already
    holds ``carry`` of it (0 of 0): the tier is empty whatever the rate. The size is a
    :class:`fractions.Fraction` so that it is never rounded on its own (0.2 · 80,000 / 0.3 is
    53,333.33… dollars).
    """
    if pref == 0:
        return Fraction(0)
    if rate <= carry:
        return None
    return Fraction(carry) * Fraction(pref) / (Fraction(rate) - Fraction(carry))


@dataclass(frozen=True, slots=True)
class ProfitSplit:
    """What the GP catch-up and carry tiers pay out of the dollars left after the preferred
    return (outcome of :func:`catch_up_and_carry`).

    Attributes:
        lp_catch_up, gp_catch_up: the LP's and the GP's shares of the catch-up tier (dollars).
        lp_carry, gp_carry: the carry split of what the catch-up tier left (dollars).
        tier_taken: the exact dollars this amount put into the catch-up tier (add it to
            ``tier_paid`` for the next distribution of a whole-fund waterfall).

    The four figures add up to the amount split exactly. Each is exact when its value is a
    finite decimal and otherwise within 10^-30 of it (the catch-up shares rounded toward
    zero, so no figure is ever negative); ``gp_catch_up + gp_carry`` and
    ``lp_catch_up + lp_carry`` are exact whenever the GP's total is a finite decimal, which it
    is for decimal inputs. None of them is rounded to cents.
    """

    lp_catch_up: Decimal
    gp_catch_up: Decimal
    lp_carry: Decimal
    gp_carry: Decimal
    tier_taken: Fraction

    @property
    def lp(self) -> Decimal:
        """The LP's dollars, both tiers."""
        return self.lp_catch_up + self.lp_carry

    @property
    def gp(self) -> Decimal:
        """The GP's dollars, both tiers."""
        return self.gp_catch_up + self.gp_carry


def catch_up_and_carry(
    amount: Decimal,
    *,
    carry: Decimal,
    catch_up: Decimal | None,
    pref_paid: Decimal,
    tier_paid: Fraction = Fraction(0),
) -> ProfitSplit:
    """Split ``amount`` dollars (what is left after return of capital and preferred return)
    through the GP catch-up and carry tiers (tiers 3 and 4 of the module docstring).

    Args:
        amount: dollars to split (>= 0).
        carry: carry rate ``c`` (ratio 0..1).
        catch_up: catch-up rate ``r`` (ratio 0..1), or None when there is no catch-up tier
            (then everything is split ``c`` / ``1 − c``). A rate at or below ``c`` never
            closes: the tier takes all of ``amount``.
        pref_paid: preferred return paid so far (dollars, cumulative for a whole-fund
            waterfall); the tier's size is :func:`catch_up_tier_size` of it.
        tier_paid: what earlier distributions already put into the catch-up tier (exact
            dollars; 0 for a single realisation).

    Returns:
        :class:`ProfitSplit`. Inside the tier the GP takes ``r`` of each dollar; once it closes
        the GP holds ``c`` × (pref + tier), i.e. its dollars from this amount are exactly
        ``c·(amount − room) + r·room`` with ``room`` the tier still open, and the rest is split
        ``c`` / ``1 − c``. Nothing is rounded before the figures are converted (the rule of
        the module docstring), shared by :func:`distribute`, :func:`european_waterfall` and
        :func:`updog.finance.ledger.waterfall_ledger`.
    """
    with localcontext(CONTEXT):
        if catch_up is None:
            gp = amount * carry
            return ProfitSplit(ZERO, ZERO, amount - gp, gp, Fraction(0))
        size = catch_up_tier_size(carry, catch_up, pref_paid)
        exact_amount = Fraction(amount)
        room = None if size is None else max(Fraction(0), size - tier_paid)
        if room is None or exact_amount <= room:  # the tier takes everything
            gp = amount * catch_up
            return ProfitSplit(amount - gp, gp, ZERO, ZERO, exact_amount)
        rate = Fraction(catch_up)
        gp_total = _to_decimal(Fraction(carry) * (exact_amount - room) + rate * room)
        gp_catch_up = _to_decimal(rate * room, ROUND_DOWN)
        lp_catch_up = _to_decimal((1 - rate) * room, ROUND_DOWN)
        return ProfitSplit(
            lp_catch_up=lp_catch_up,
            gp_catch_up=gp_catch_up,
            lp_carry=amount - gp_total - lp_catch_up,
            gp_carry=gp_total - gp_catch_up,
            tier_taken=room,
        )


def _dated_contributions(
    contributions: Sequence[tuple[date, Number]], exit_date: date, cost: Decimal | None
) -> dict[date, Decimal]:
    """Validated contributions summed by date (dollars), checked to sum to ``cost`` when it is
    given; see :func:`distribute`."""
    if isinstance(exit_date, datetime) or not isinstance(exit_date, date):
        raise ValueError("exit_date must be a datetime.date")
    if isinstance(contributions, (str, bytes)) or not isinstance(contributions, Sequence):
        raise ValueError("contributions must be a sequence of (date, amount) pairs")
    by_day: dict[date, Decimal] = {}
    with localcontext(CONTEXT):
        for i, item in enumerate(contributions):
            if not isinstance(item, tuple) or len(item) != 2:
                raise ValueError(f"contributions[{i}] must be a (date, amount) pair")
            day, raw = item
            if isinstance(day, datetime) or not isinstance(day, date):
                raise ValueError(f"contributions[{i}] date must be a datetime.date")
            amount = to_decimal(raw, f"contributions[{i}] amount", minimum=ZERO)
            if day > exit_date:
                raise ValueError(
                    f"contributions[{i}] is dated {day.isoformat()}, after the exit date "
                    f"{exit_date.isoformat()}"
                )
            by_day[day] = by_day.get(day, ZERO) + amount
        total = sum(by_day.values(), ZERO)
    if cost is not None and total != cost:
        raise ValueError(
            f"contributions sum to {total}, but deal_cost is {cost}; they must be equal"
        )
    return by_day


def compounded_pref(
    hurdle: Number, contributions: Sequence[tuple[date, Number]], exit_date: date
) -> Decimal:
    """Preferred return owed at ``exit_date`` on dated contributions, compounded annually.

    ``Σ a_i × ((1 + hurdle) ** (days_i / 365) − 1)`` with ``days_i`` the actual days from
    contribution ``i`` to ``exit_date`` (Actual/365 Fixed; sources in the module docstring).
    Same-day contributions are summed first; each fractional power is carried to 10^-30
    (:func:`updog.finance._decimal.fine`), as the European waterfall's accrual is.

    Args:
        hurdle: annual rate as a ratio (0.08 = 8 % a year), >= 0.
        contributions: ``(date, dollars)`` pairs, dollars >= 0, none after ``exit_date``.
        exit_date: the date the preferred return is owed at.

    Returns:
        Dollars, unrounded (not rounded to cents). Example: 1,000,000 held 2,190 days (6 × 365)
        at 8 % owes 1.08⁶ − 1 = 586,874.322944.

    Raises:
        ValueError: a negative or non-finite hurdle or amount, a date that is not a
            ``datetime.date`` (datetimes are refused), a contribution after ``exit_date``.
    """
    rate = to_decimal(hurdle, "hurdle", minimum=ZERO)
    return _accrued(rate, _dated_contributions(contributions, exit_date, None), exit_date)


def _accrued(hurdle: Decimal, by_day: dict[date, Decimal], exit_date: date) -> Decimal:
    pref = ZERO
    with localcontext(CONTEXT):
        growth = ONE + hurdle
        for day, amount in sorted(by_day.items()):
            days = (exit_date - day).days
            if days > 0 and hurdle > 0 and amount > 0:
                years = Decimal(days) / DAYS_PER_YEAR
                pref += fine(amount * (growth**years - ONE))
    return pref


def distribute(
    policy: WaterfallPolicy,
    exit_proceeds: Number,
    deal_cost: Number,
    *,
    pref_basis: PrefBasis = "flat",
    contributions: Sequence[tuple[date, Number]] | None = None,
    exit_date: date | None = None,
) -> Distribution:
    """Split one realisation between LP and GP (American, deal by deal; SPEC §3.1).

    Args:
        policy: the tiers (:class:`WaterfallPolicy`).
        exit_proceeds: dollars realised. Zero or negative proceeds distribute nothing (every
            figure 0): a loss on exit is not allocated to anyone here.
        deal_cost: the deal's cost in dollars (>= 0), GP commitment included.
        pref_basis: ``"flat"`` (default): the preferred return is ``hurdle × deal_cost``.
            ``"compounded"``: it is :func:`compounded_pref` of ``contributions`` at
            ``exit_date`` (annual compounding, Actual/365; sources in the module docstring).
        contributions: ``"compounded"`` only (required there): the deal's dated contributions,
            ``(datetime.date, dollars >= 0)`` pairs in any order, none after ``exit_date``,
            summing exactly to ``deal_cost``.
        exit_date: ``"compounded"`` only (required there): the date of the realisation.

    Returns:
        :class:`Distribution`; the tiers are filled in order as the module docstring says, and
        every reported figure is the half-up rounding to cents of its exact value (the
        catch-up tier is not rounded before the split: see :func:`catch_up_and_carry`).

    Raises:
        ValueError: a negative or non-finite cost, non-finite proceeds; an unknown
            ``pref_basis``; ``contributions`` or ``exit_date`` given with ``"flat"`` (they
            would be ignored) or missing with ``"compounded"``; a contribution after the exit
            date, a negative amount, contributions that do not sum to ``deal_cost``.

    Example: 1,500,000 on a cost of 1,000,000 with an 8 % pref, full catch-up and 20 % carry
    gives LP 1,400,000 and GP 100,000 (ROC 1,000,000; pref 80,000; catch-up 20,000 to the GP;
    400,000 split 320,000 / 80,000). With ``pref_basis="compounded"`` and the cost paid in
    2,190 days (6 × 365) before the exit, the pref is 586,874.32 and 1,700,000 gives the GP
    113,125.68 instead of the flat basis's 140,000.
    """
    if not isinstance(policy, WaterfallPolicy):
        raise ValueError(f"policy must be a WaterfallPolicy, got {type(policy).__name__}")
    proceeds = to_decimal(exit_proceeds, "exit_proceeds")
    cost = to_decimal(deal_cost, "deal_cost", minimum=ZERO)
    hurdle = policy.rate(TierKind.PREFERRED_RETURN)
    if pref_basis == "flat":
        if contributions is not None or exit_date is not None:
            raise ValueError(
                "contributions and exit_date are only used with pref_basis='compounded'; the "
                "flat preferred return is hurdle × deal_cost"
            )
        owed = ZERO if hurdle is None else CONTEXT.multiply(hurdle, cost)
    elif pref_basis == "compounded":
        if contributions is None or exit_date is None:
            raise ValueError("pref_basis='compounded' needs contributions and exit_date")
        by_day = _dated_contributions(contributions, exit_date, cost)
        owed = ZERO if hurdle is None else _accrued(hurdle, by_day, exit_date)
    else:
        allowed = ", ".join(get_args(PrefBasis))
        raise ValueError(f"unknown pref_basis {pref_basis!r}; expected one of: {allowed}")
    with localcontext(CONTEXT):
        remaining = max(ZERO, proceeds)
        capital = min(remaining, cost)
        remaining -= capital
        pref = min(remaining, owed)
        remaining -= pref
        paid: dict[TierKind, tuple[Decimal, Decimal]] = {
            TierKind.RETURN_OF_CAPITAL: (capital, ZERO),
            TierKind.PREFERRED_RETURN: (pref, ZERO),
        }
        carry = policy.rate(TierKind.CARRY)
        if carry is not None:
            split = catch_up_and_carry(
                remaining,
                carry=carry,
                catch_up=policy.rate(TierKind.GP_CATCH_UP),
                pref_paid=pref,
            )
            paid[TierKind.GP_CATCH_UP] = (split.lp_catch_up, split.gp_catch_up)
            paid[TierKind.CARRY] = (split.lp_carry, split.gp_carry)
            remaining = ZERO
        rows = [(tier.kind, *paid[tier.kind]) for tier in policy.tiers]
        # What no tier took (a policy without a carry tier) belongs to the LP.
        if remaining > 0:
            kind, lp, gp = rows[-1]
            rows[-1] = (kind, lp + remaining, gp)
        lp_exact = sum((lp for _, lp, _ in rows), ZERO)
        gp_exact = sum((gp for _, _, gp in rows), ZERO)
        breakdown = tuple(
            TierAllocation(
                tier=kind,
                lp_amount=round_cents(lp),
                gp_amount=round_cents(gp),
                lp_exact=lp,
                gp_exact=gp,
            )
            for kind, lp, gp in rows
        )
        return Distribution(
            lp_distribution=round_cents(lp_exact),
            gp_distribution=round_cents(gp_exact),
            total_distributed=round_cents(lp_exact + gp_exact),
            lp_exact=lp_exact,
            gp_exact=gp_exact,
            breakdown=breakdown,
        )


# --------------------------------------------------------------------------------------------
# European (whole-fund) waterfall
# --------------------------------------------------------------------------------------------


class QuarterAmount(BaseModel):
    """A non-negative dollar amount in a quarter (period index, 0 = the fund's first quarter)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quarter: Quarter
    amount: NonNegative


class EuropeanTerms(BaseModel):
    """Whole-fund terms: ``carry`` (0.20), ``hurdle`` (annual, compounding; 0.08) and
    ``catch_up`` (the GP's share in the catch-up tier; 1.0 = full, 0 = none), as ratios."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    carry: Ratio
    hurdle: Ratio = Decimal("0")
    catch_up: Ratio = Decimal("1")
    periods_per_year: Annotated[int, Field(ge=1, le=365, strict=True), INTEGRAL] = 4


class EuropeanRow(BaseModel):
    """One distribution through the European waterfall (dollars, rounded to cents)."""

    model_config = ConfigDict(frozen=True)

    quarter: int
    distributable: NonNegative
    lp_capital: NonNegative
    lp_preferred: NonNegative
    gp_catch_up: NonNegative
    lp_catch_up: NonNegative
    lp_carry_split: NonNegative
    gp_carry_split: NonNegative

    @property
    def lp_total(self) -> Decimal:
        return self.lp_capital + self.lp_preferred + self.lp_catch_up + self.lp_carry_split

    @property
    def gp_total(self) -> Decimal:
        return self.gp_catch_up + self.gp_carry_split


class EuropeanResult(BaseModel):
    """Outcome of :func:`european_waterfall`; totals rounded half-up to cents on their own,
    ``lp_exact + gp_exact`` = total distributable exactly."""

    model_config = ConfigDict(frozen=True)

    rows: tuple[EuropeanRow, ...]
    paid_in: NonNegative
    distributable: NonNegative
    lp_total: NonNegative
    gp_carry: NonNegative
    preferred_paid: NonNegative
    unreturned_capital: NonNegative
    preferred_unpaid: NonNegative
    lp_exact: NonNegative
    gp_exact: NonNegative


def european_waterfall(
    terms: EuropeanTerms,
    contributions: Sequence[QuarterAmount],
    distributions: Sequence[QuarterAmount],
) -> EuropeanResult:
    """Whole-fund (European) waterfall over quarter-indexed paid-in capital and distributions.

    State, in dollars: unreturned capital ``K``, unpaid preferred return ``U``, cumulative
    preferred return paid ``P`` and catch-up tier paid ``T``. Events are processed in quarter
    order, contributions of a quarter before its distributions. Between events ``Δ`` years
    apart (``Δ = quarters / periods_per_year``) the hurdle accrues with annual compounding:
    ``U += (K + U) × ((1 + hurdle) ** Δ − 1)``. A distribution ``D`` then pays, in order:
    ``min(D, K)`` to the LP (return of capital), ``min(rest, U)`` to the LP (preferred return),
    the catch-up tier up to ``c·P/(r − c) − T`` (GP ``r``, LP ``1 − r`` of each dollar; all that
    remains when ``r <= c``; no tier when ``r = 0``), and the rest split ``c`` / ``1 − c``.

    With one distribution this is :func:`distribute` on the fund's paid-in capital with the
    preferred return accrued to that date: with ``periods_per_year=365`` and day-indexed periods
    it is ``distribute(..., pref_basis="compounded")`` of the same dated contributions. There is
    no interim clawback here (see :func:`updog.finance.ledger.waterfall_ledger` for a
    fund-level clawback).

    Raises:
        ValueError: invalid terms or amounts (negative, non-finite), non-integer quarters.
    """
    if not isinstance(terms, EuropeanTerms):
        raise ValueError(f"terms must be EuropeanTerms, got {type(terms).__name__}")
    events: list[tuple[int, int, Decimal]] = []
    for i, c in enumerate(contributions):
        if not isinstance(c, QuarterAmount):
            raise ValueError(f"contributions[{i}] must be a QuarterAmount")
        events.append((c.quarter, 0, c.amount))
    for i, d in enumerate(distributions):
        if not isinstance(d, QuarterAmount):
            raise ValueError(f"distributions[{i}] must be a QuarterAmount")
        events.append((d.quarter, 1, d.amount))
    events.sort(key=lambda e: (e[0], e[1]))  # stable: input order within a quarter and kind

    carry, rate = terms.carry, terms.catch_up
    with localcontext(CONTEXT):
        growth = ONE + terms.hurdle
        capital = unpaid = pref_paid = paid_in = total = ZERO
        tier_paid = Fraction(0)
        lp_exact = gp_exact = ZERO
        last_quarter: int | None = None
        rows: list[EuropeanRow] = []
        for quarter, kind, amount in events:
            if last_quarter is not None and quarter > last_quarter and terms.hurdle > 0:
                years = Decimal(quarter - last_quarter) / terms.periods_per_year
                unpaid += fine((capital + unpaid) * (growth**years - ONE))
            last_quarter = quarter
            if kind == 0:
                capital += amount
                paid_in += amount
                continue
            total += amount
            remaining = amount
            roc = min(remaining, capital)
            capital -= roc
            remaining -= roc
            pref = min(remaining, unpaid)
            unpaid -= pref
            pref_paid += pref
            remaining -= pref
            split = catch_up_and_carry(
                remaining,
                carry=carry,
                catch_up=rate if rate > 0 else None,
                pref_paid=pref_paid,
                tier_paid=tier_paid,
            )
            tier_paid += split.tier_taken
            gp_cu, lp_cu = split.gp_catch_up, split.lp_catch_up
            gp_split, lp_split = split.gp_carry, split.lp_carry
            lp_exact += roc + pref + lp_cu + lp_split
            gp_exact += gp_cu + gp_split
            rows.append(
                EuropeanRow(
                    quarter=quarter,
                    distributable=round_cents(amount),
                    lp_capital=round_cents(roc),
                    lp_preferred=round_cents(pref),
                    gp_catch_up=round_cents(gp_cu),
                    lp_catch_up=round_cents(lp_cu),
                    lp_carry_split=round_cents(lp_split),
                    gp_carry_split=round_cents(gp_split),
                )
            )
        return EuropeanResult(
            rows=tuple(rows),
            paid_in=round_cents(paid_in),
            distributable=round_cents(total),
            lp_total=round_cents(lp_exact),
            gp_carry=round_cents(gp_exact),
            preferred_paid=round_cents(pref_paid),
            unreturned_capital=round_cents(capital),
            preferred_unpaid=round_cents(unpaid),
            lp_exact=lp_exact,
            gp_exact=gp_exact,
        )
