"""Property-based tests (Hypothesis) of the cent-exact kernels (issue "Done means").

* waterfall conservation: LP + GP = distributable exactly before rounding (American, European);
* monotonicity: more proceeds never lower the LP's or the GP's share;
* carry never above carry rate × profit (American; European with capital paid in first;
  the ledger after its clawback);
* the European waterfall and the ledger agree on the totals when there is one exit, and the
  ledger with one exit is `distribute` (catch-up included);
* every reported waterfall figure is the half-up rounding of its exact (rational) value;
* the American compounded preferred return is the European accrual of a one-deal fund, and
  never below the flat one for holding periods of a year or more;
* fee totals equal the sum of the yearly fees;
* recycling never above its cap.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from updog.finance import (
    Distribution,
    EuropeanTerms,
    ExitEvent,
    FeeBasis,
    FeeTier,
    LedgerConfig,
    LedgerContribution,
    LedgerExit,
    QuarterAmount,
    RecyclingTerms,
    TierKind,
    WaterfallPolicy,
    compounded_pref,
    distribute,
    european_waterfall,
    management_fees,
    recycling,
    waterfall_ledger,
)
from updog.finance._decimal import CONTEXT, round_cents

PROPERTIES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

#: Dollars with up to 3 decimals (rounding tests), up to 10^13.
money = st.decimals(min_value=0, max_value=Decimal("1e13"), places=3, allow_nan=False)
#: Ratios with up to 4 decimals.
ratio = st.decimals(min_value=0, max_value=1, places=4, allow_nan=False)
small_ratio = st.decimals(min_value=0, max_value=Decimal("0.5"), places=4, allow_nan=False)


@st.composite
def policies(draw: st.DrawFn) -> WaterfallPolicy:
    return WaterfallPolicy.standard(
        carry=draw(small_ratio), hurdle=draw(small_ratio), catch_up=draw(ratio)
    )


@PROPERTIES
@given(policies(), st.decimals(min_value=-1e6, max_value=1e13, places=3), money)
def test_distribute_conserves_exactly(
    policy: WaterfallPolicy, proceeds: Decimal, cost: Decimal
) -> None:
    d = distribute(policy, proceeds, cost)
    distributable = max(Decimal(0), proceeds)
    with localcontext(CONTEXT):  # the kernel's precision, not the default 28 digits
        assert d.lp_exact + d.gp_exact == distributable
        assert sum(b.lp_exact + b.gp_exact for b in d.breakdown) == distributable
    assert d.total_distributed == round_cents(distributable)
    assert abs(d.lp_distribution + d.gp_distribution - d.total_distributed) <= Decimal("0.01")
    assert all(b.lp_exact >= 0 and b.gp_exact >= 0 for b in d.breakdown)


@PROPERTIES
@given(policies(), money, money, money)
def test_distribute_is_monotone_in_proceeds(
    policy: WaterfallPolicy, a: Decimal, b: Decimal, cost: Decimal
) -> None:
    low, high = sorted((a, b))
    d_low, d_high = distribute(policy, low, cost), distribute(policy, high, cost)
    assert d_low.lp_exact <= d_high.lp_exact
    assert d_low.gp_exact <= d_high.gp_exact
    assert d_low.lp_distribution <= d_high.lp_distribution
    assert d_low.gp_distribution <= d_high.gp_distribution


@PROPERTIES
@given(policies(), money, money)
def test_distribute_carry_never_above_carry_rate_times_profit(
    policy: WaterfallPolicy, proceeds: Decimal, cost: Decimal
) -> None:
    d = distribute(policy, proceeds, cost)
    carry = policy.rate(policy.tiers[-1].kind) or Decimal(0)
    with_context = CONTEXT.multiply(carry, max(Decimal(0), proceeds - cost))
    assert d.gp_exact <= with_context
    assert d.gp_distribution <= round_cents(with_context)


quarters = st.integers(min_value=0, max_value=60)


@st.composite
def european_case(
    draw: st.DrawFn,
) -> tuple[EuropeanTerms, list[QuarterAmount], list[QuarterAmount]]:
    terms = EuropeanTerms(carry=draw(small_ratio), hurdle=draw(small_ratio), catch_up=draw(ratio))
    first_exit = draw(quarters)
    contributions = [
        QuarterAmount(quarter=draw(st.integers(0, first_exit)), amount=draw(money))
        for _ in range(draw(st.integers(1, 4)))
    ]
    distributions = [
        QuarterAmount(quarter=draw(st.integers(first_exit, 80)), amount=draw(money))
        for _ in range(draw(st.integers(1, 4)))
    ]
    return terms, contributions, distributions


@PROPERTIES
@given(european_case())
def test_european_conserves_and_caps_carry(
    case: tuple[EuropeanTerms, list[QuarterAmount], list[QuarterAmount]],
) -> None:
    terms, contributions, distributions = case
    r = european_waterfall(terms, contributions, distributions)
    total = sum((d.amount for d in distributions), Decimal(0))
    paid_in = sum((c.amount for c in contributions), Decimal(0))
    with localcontext(CONTEXT):
        assert r.lp_exact + r.gp_exact == total
    assert r.gp_exact <= CONTEXT.multiply(terms.carry, max(Decimal(0), total - paid_in))


@PROPERTIES
@given(european_case(), money)
def test_european_is_monotone_in_the_last_distribution(
    case: tuple[EuropeanTerms, list[QuarterAmount], list[QuarterAmount]], extra: Decimal
) -> None:
    """More proceeds in the fund's last distribution never lower the LP's or the GP's total.

    (Not so for an earlier one: returning capital earlier stops the compounding preferred
    return on it, which can shift later dollars from the LP to the GP.)
    """
    terms, contributions, distributions = case
    last_quarter = max(d.quarter for d in distributions)
    i = max(k for k, d in enumerate(distributions) if d.quarter == last_quarter)
    more = list(distributions)
    more[i] = QuarterAmount(quarter=last_quarter, amount=distributions[i].amount + extra)
    base = european_waterfall(terms, contributions, distributions)
    bigger = european_waterfall(terms, contributions, more)
    assert base.lp_exact <= bigger.lp_exact
    assert base.gp_exact <= bigger.gp_exact


@PROPERTIES
@given(
    small_ratio,
    ratio,
    st.lists(st.tuples(st.integers(0, 40), money), min_size=1, max_size=4),
    st.integers(0, 40),
    money,
)
def test_european_matches_the_ledger_with_one_exit_and_no_hurdle(
    carry: Decimal,
    catch_up: Decimal,
    raw_contributions: list[tuple[int, Decimal]],
    exit_after: int,
    proceeds: Decimal,
) -> None:
    exit_quarter = max(q for q, _ in raw_contributions) + exit_after
    ledger = waterfall_ledger(
        LedgerConfig(carry=carry),
        [LedgerContribution(quarter=q, amount=a) for q, a in raw_contributions],
        [LedgerExit(quarter=exit_quarter, gross_proceeds=proceeds)],
    )
    european = european_waterfall(
        EuropeanTerms(carry=carry, hurdle=0, catch_up=catch_up),
        [QuarterAmount(quarter=q, amount=a) for q, a in raw_contributions],
        [QuarterAmount(quarter=exit_quarter, amount=proceeds)],
    )
    assert ledger.totals.paid_in == european.paid_in
    assert ledger.totals.distributed == european.lp_total
    assert ledger.totals.gp_carry_total == european.gp_carry


@PROPERTIES
@given(small_ratio, small_ratio, st.integers(0, 40), money, money)
def test_european_matches_the_ledger_with_one_year_to_a_single_exit(
    carry: Decimal, hurdle: Decimal, start: int, capital: Decimal, proceeds: Decimal
) -> None:
    """A hurdle accrued over exactly one year equals the ledger's flat hurdle on capital."""
    ledger = waterfall_ledger(
        LedgerConfig(carry=carry, hurdle=hurdle),
        [LedgerContribution(quarter=start, amount=capital)],
        [LedgerExit(quarter=start + 4, gross_proceeds=proceeds)],
    )
    european = european_waterfall(
        EuropeanTerms(carry=carry, hurdle=hurdle, catch_up=0),
        [QuarterAmount(quarter=start, amount=capital)],
        [QuarterAmount(quarter=start + 4, amount=proceeds)],
    )
    assert ledger.totals.distributed == european.lp_total
    assert ledger.totals.gp_carry_total == european.gp_carry


@PROPERTIES
@given(
    small_ratio,
    small_ratio,
    ratio,
    st.decimals(min_value=0, max_value=2, places=2),
    st.lists(st.tuples(st.integers(0, 40), money), max_size=4),
    st.lists(st.tuples(st.integers(0, 40), money), max_size=4),
)
def test_ledger_carry_after_clawback_never_above_carry_times_profit(
    carry: Decimal,
    hurdle: Decimal,
    catch_up: Decimal,
    multiple: Decimal,
    raw_contributions: list[tuple[int, Decimal]],
    raw_exits: list[tuple[int, Decimal]],
) -> None:
    r = waterfall_ledger(
        LedgerConfig(
            carry=carry,
            hurdle=hurdle,
            catch_up=catch_up,
            clawback_enabled=True,
            clawback_lp_hurdle_multiple=multiple,
        ),
        [LedgerContribution(quarter=q, amount=a) for q, a in raw_contributions],
        [LedgerExit(quarter=q, gross_proceeds=a) for q, a in raw_exits],
    )
    t = r.totals
    profit = t.distributed + t.gp_carry_net - t.paid_in
    assert t.gp_carry_net <= round_cents(carry * max(Decimal(0), profit)) + Decimal("0.02")
    assert t.gp_carry_net >= 0
    gross = sum((a for _, a in raw_exits), Decimal(0))
    assert abs(t.distributed + t.gp_carry_net + t.recycled - round_cents(gross)) <= Decimal("0.05")


@PROPERTIES
@given(
    st.lists(st.tuples(st.integers(1, 3), ratio.map(lambda r: r / 10)), min_size=1, max_size=5),
    money,
    st.integers(1, 20),
    st.lists(money, min_size=20, max_size=20),
)
def test_fee_total_equals_the_sum_of_yearly_fees(
    spans: list[tuple[int, Decimal]], size: Decimal, years: int, schedule: list[Decimal]
) -> None:
    tiers: list[FeeTier] = []
    start = 1
    bases = list(FeeBasis)
    for i, (length, rate) in enumerate(spans):
        tiers.append(
            FeeTier(
                rate=rate,
                basis=bases[i % len(bases)],
                start_year=start,
                end_year=start + length - 1,
            )
        )
        start += length + (i % 2)  # every other gap is a fee holiday
    fees = management_fees(
        tiers,
        size,
        years,
        called=schedule,
        returned=schedule[::-1],
        invested_cost=schedule,
        nav=schedule,
    )
    assert len(fees.yearly) == years
    assert sum(fees.yearly, Decimal(0)) == fees.total
    assert all(f >= 0 for f in fees.yearly)


@PROPERTIES
@given(
    money,
    st.decimals(min_value=0, max_value=Decimal("0.25"), places=4),
    st.integers(1, 10),
    ratio,
    st.lists(st.tuples(st.integers(0, 15), money, ratio), max_size=8),
)
def test_recycling_never_above_cap(
    size: Decimal,
    cap: Decimal,
    period: int,
    rate: Decimal,
    raw_exits: list[tuple[int, Decimal, Decimal]],
) -> None:
    exits = [
        ExitEvent(exit_id=str(i), year=y, gross_proceeds=g, ownership=o)
        for i, (y, g, o) in enumerate(raw_exits)
    ]
    s = recycling(size, RecyclingTerms(cap=cap, period_years=period, rate=rate), exits)
    assert s.total_recycled <= round_cents(size * cap)
    assert s.total_recycled == s.recycled_from_eligible_exits
    for e in s.by_exit:
        assert e.recycled_amount <= round_cents(e.fund_proceeds * e.applied_rate) + Decimal("0.01")
        assert e.within_period or e.recycled_amount == 0


# --- every reported waterfall figure is the half-up rounding of its exact value ------------


def _half_up(value: Fraction) -> Decimal:
    """``value`` (>= 0) rounded half-up to cents, from the exact fraction."""
    cents = math.floor(value * 100 + Fraction(1, 2))
    return Decimal(cents) / 100


def _reference_tiers(
    policy: WaterfallPolicy, proceeds: Decimal, cost: Decimal
) -> list[tuple[Fraction, Fraction]]:
    """(LP, GP) of each tier of ``policy`` in exact rational arithmetic, straight from the
    rule of SPEC §3.1 (independent of the kernel's Decimal bookkeeping)."""
    left = max(Fraction(0), Fraction(proceeds))
    rate = {t.kind: Fraction(t.rate) if t.rate is not None else None for t in policy.tiers}
    carry = rate.get(TierKind.CARRY)
    pref_paid = Fraction(0)
    out: list[tuple[Fraction, Fraction]] = []
    for tier in policy.tiers:
        if tier.kind is TierKind.RETURN_OF_CAPITAL:
            lp, gp = min(left, Fraction(cost)), Fraction(0)
        elif tier.kind is TierKind.PREFERRED_RETURN:
            lp, gp = min(left, rate[tier.kind] * Fraction(cost)), Fraction(0)  # type: ignore[operator]
            pref_paid = lp
        elif tier.kind is TierKind.GP_CATCH_UP:
            r, c = rate[tier.kind], carry
            assert r is not None and c is not None
            if pref_paid == 0:
                taken = Fraction(0)
            elif r <= c:
                taken = left
            else:
                taken = min(left, c * pref_paid / (r - c))
            lp, gp = taken * (1 - r), taken * r
        else:
            assert carry is not None
            lp, gp = left * (1 - carry), left * carry
        left -= lp + gp
        out.append((lp, gp))
    if left > 0:
        lp, gp = out[-1]
        out[-1] = (lp + left, gp)
    return out


@st.composite
def tie_prone_policies(draw: st.DrawFn) -> WaterfallPolicy:
    """Rates with few digits, so the catch-up tier is often not a finite decimal while the
    GP's figures are, and amounts that often end in an exact half cent."""
    carry = draw(st.sampled_from(["0.03", "0.1", "0.2", "0.25", "0.3", "0.2"]))
    catch_up = draw(st.sampled_from(["0", "0.12", "0.5", "0.8", "1", "0.2", "0.1"]))
    hurdle = draw(st.sampled_from(["0", "0.06", "0.08", "0.1"]))
    return WaterfallPolicy.standard(carry=carry, hurdle=hurdle, catch_up=catch_up)


@PROPERTIES
@given(
    st.one_of(policies(), tie_prone_policies()),
    st.decimals(min_value=0, max_value=Decimal("1e9"), places=4, allow_nan=False),
    st.decimals(min_value=0, max_value=Decimal("1e9"), places=4, allow_nan=False),
)
def test_distribute_reports_the_half_up_rounding_of_every_exact_figure(
    policy: WaterfallPolicy, proceeds: Decimal, cost: Decimal
) -> None:
    d = distribute(policy, proceeds, cost)
    reference = _reference_tiers(policy, proceeds, cost)
    for row, (lp, gp) in zip(d.breakdown, reference, strict=True):
        assert (row.lp_amount, row.gp_amount) == (_half_up(lp), _half_up(gp)), row.tier
        assert row.amount == _half_up(lp + gp), row.tier
    lp_total = sum((lp for lp, _ in reference), Fraction(0))
    gp_total = sum((gp for _, gp in reference), Fraction(0))
    assert d.lp_distribution == _half_up(lp_total)
    assert d.gp_distribution == _half_up(gp_total)
    assert Fraction(d.gp_exact) == gp_total  # the GP's total is a finite decimal: exact
    with localcontext(CONTEXT):
        assert d.lp_exact + d.gp_exact == max(Decimal(0), proceeds)


@PROPERTIES
@given(
    st.one_of(policies(), tie_prone_policies()),
    st.integers(0, 40),
    st.decimals(min_value=0, max_value=Decimal("1e9"), places=4, allow_nan=False),
    st.decimals(min_value=0, max_value=Decimal("1e9"), places=4, allow_nan=False),
)
def test_european_with_one_year_to_a_single_exit_is_distribute(
    policy: WaterfallPolicy, start: int, capital: Decimal, proceeds: Decimal
) -> None:
    """A hurdle compounded over exactly one year is the flat ``hurdle × cost``: the whole-fund
    waterfall of a one-deal fund then reports the deal-by-deal figures to the cent."""
    terms = EuropeanTerms(
        carry=policy.rate(TierKind.CARRY) or 0,
        hurdle=policy.rate(TierKind.PREFERRED_RETURN) or 0,
        catch_up=policy.rate(TierKind.GP_CATCH_UP) or 0,
    )
    european = european_waterfall(
        terms,
        [QuarterAmount(quarter=start, amount=capital)],
        [QuarterAmount(quarter=start + 4, amount=proceeds)],
    )
    d = distribute(policy, proceeds, capital)
    assert (european.lp_exact, european.gp_exact) == (d.lp_exact, d.gp_exact)
    assert (european.lp_total, european.gp_carry) == (d.lp_distribution, d.gp_distribution)


# --- American compounded preferred return (issue #10, item 1) ---------------------------------

EPOCH = date(2020, 1, 1)


@st.composite
def one_deal_fund(
    draw: st.DrawFn,
) -> tuple[WaterfallPolicy, list[tuple[int, Decimal]], int, Decimal]:
    """A policy, the deal's contributions as (day, dollars) after EPOCH, the exit day and the
    proceeds."""
    policy = draw(st.one_of(policies(), tie_prone_policies()))
    contributions = draw(st.lists(st.tuples(st.integers(0, 4000), money), min_size=1, max_size=4))
    exit_day = max(day for day, _ in contributions) + draw(st.integers(0, 4000))
    return policy, contributions, exit_day, draw(money)


def _compounded(
    policy: WaterfallPolicy,
    proceeds: Decimal,
    contributions: list[tuple[int, Decimal]],
    exit_day: int,
) -> Distribution:
    """``distribute`` with the compounded pref, contributions and exit given as day offsets."""
    return distribute(
        policy,
        proceeds,
        sum((a for _, a in contributions), Decimal(0)),
        pref_basis="compounded",
        contributions=[(EPOCH + timedelta(days=day), a) for day, a in contributions],
        exit_date=EPOCH + timedelta(days=exit_day),
    )


@PROPERTIES
@given(one_deal_fund())
def test_compounded_distribute_is_the_european_waterfall_of_a_one_deal_fund(
    case: tuple[WaterfallPolicy, list[tuple[int, Decimal]], int, Decimal],
) -> None:
    """Day-indexed periods with ``periods_per_year=365`` make the European accrual the
    Actual/365 compounding of ``pref_basis="compounded"``: LP and GP agree to the cent."""
    policy, contributions, exit_day, proceeds = case
    d = _compounded(policy, proceeds, contributions, exit_day)
    european = european_waterfall(
        EuropeanTerms(
            carry=policy.rate(TierKind.CARRY) or 0,
            hurdle=policy.rate(TierKind.PREFERRED_RETURN) or 0,
            catch_up=policy.rate(TierKind.GP_CATCH_UP) or 0,
            periods_per_year=365,
        ),
        [QuarterAmount(quarter=day, amount=a) for day, a in contributions],
        [QuarterAmount(quarter=exit_day, amount=proceeds)],
    )
    assert (d.lp_distribution, d.gp_distribution) == (european.lp_total, european.gp_carry)
    # The two accrue the same pref in a different order of 10^-30 roundings.
    assert abs(d.gp_exact - european.gp_exact) <= Decimal("1e-25")


@PROPERTIES
@given(one_deal_fund(), st.integers(365, 4000))
def test_compounded_pref_held_a_year_or_more_is_never_below_the_flat_one(
    case: tuple[WaterfallPolicy, list[tuple[int, Decimal]], int, Decimal], held: int
) -> None:
    """(1 + h)^t − 1 >= h for t >= 1 (Bernoulli): more preferred return to the LP, and the GP
    never gets more than under the flat basis."""
    policy, contributions, _, proceeds = case
    exit_day = max(day for day, _ in contributions) + held
    cost = sum((a for _, a in contributions), Decimal(0))
    flat = distribute(policy, proceeds, cost)
    compounded = _compounded(policy, proceeds, contributions, exit_day)
    hurdle = policy.rate(TierKind.PREFERRED_RETURN) or Decimal(0)
    owed = compounded_pref(
        hurdle, [(EPOCH + timedelta(days=day), a) for day, a in contributions],
        EPOCH + timedelta(days=exit_day),
    )  # fmt: skip
    assert owed >= CONTEXT.multiply(hurdle, cost)
    assert compounded.breakdown[0] == flat.breakdown[0]  # the same return of capital
    if hurdle > 0:
        assert compounded.breakdown[1].lp_exact >= flat.breakdown[1].lp_exact
    assert compounded.gp_exact <= flat.gp_exact
    assert compounded.gp_distribution <= flat.gp_distribution
    assert compounded.lp_distribution >= flat.lp_distribution


@PROPERTIES
@given(
    st.one_of(policies(), tie_prone_policies()),
    st.integers(0, 40),
    st.integers(0, 40),
    money,
    money,
)
def test_ledger_with_one_exit_is_distribute(
    policy: WaterfallPolicy, start: int, held: int, capital: Decimal, proceeds: Decimal
) -> None:
    """The ledger's per-exit tiers (flat pref on outstanding capital, catch-up, carry) are the
    deal-by-deal waterfall: one contribution and one exit give distribute's figures exactly."""
    ledger = waterfall_ledger(
        LedgerConfig(
            carry=policy.rate(TierKind.CARRY) or 0,
            hurdle=policy.rate(TierKind.PREFERRED_RETURN) or 0,
            catch_up=policy.rate(TierKind.GP_CATCH_UP) or 0,
        ),
        [LedgerContribution(quarter=start, amount=capital)],
        [LedgerExit(quarter=start + held, gross_proceeds=proceeds)],
    )
    d = distribute(policy, proceeds, capital)
    assert ledger.totals.gp_carry_total == d.gp_distribution
    assert ledger.totals.distributed == d.lp_distribution
