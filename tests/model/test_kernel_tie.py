"""The construction model's European waterfall (:func:`updog.model.fund_cash.run_fund_cash`,
vectorised float) tied to the finance kernel (:func:`updog.finance.european_waterfall` and
:func:`updog.finance.distribute`, Decimal).

One path, no fees, expenses or recycling: capital called = the hand-made investments, and
distributable cash = the hand-made proceeds, so both sides see the same contributions and
distributions by quarter. The kernel has no clawback (SPEC §3.1 puts it in the ledger); the
model claws back at the end of the fund's life whatever carry exceeds
``carry × max(0, distributions − paid-in)`` (SPEC §3.1, §3.2), so the expected model figures are
the kernel's plus that clawback, computed here from the kernel's totals.
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_support import minimal_spec_json, portfolio_flows
from updog.finance import (
    EuropeanTerms,
    QuarterAmount,
    WaterfallPolicy,
    distribute,
    european_waterfall,
)
from updog.model.construction import build_plan
from updog.model.fund_cash import FundCash, run_fund_cash
from updog.model.plan import Plan
from updog.model.spec import FundSpec

CENT = 0.01
#: Float noise allowed on top of a cent (the model's dollars are float64; amounts < 1e9).
EPS = 1e-6
FUND_SIZE = 1e9


def _spec(years: int, carry: float, hurdle: float, catch_up: float) -> FundSpec:
    return FundSpec.model_validate(
        minimal_spec_json(
            fund_size=FUND_SIZE,
            fund_life_years=years,
            investment_period_years=1,
            fees={"tiers": []},
            waterfall={
                "type": "european",
                "carry": carry,
                "hurdle": hurdle,
                "catch_up": catch_up,
            },
            recycling={"enabled": False},
            construction={
                "reserve_ratio": 0.0,
                "allocations": [{"stage": "seed", "share": 1, "initial_check": 5e6}],
            },
        )
    )


@cache
def _plan(years: int) -> Plan:
    """The plan only feeds expenses (none here) to ``run_fund_cash``; it does not depend on
    the waterfall terms, so one per fund life is enough."""
    return build_plan(_spec(years, 0.2, 0.08, 1.0))


def _model(
    years: int,
    terms: tuple[float, float, float],
    contributions: dict[int, float],
    distributions: dict[int, float],
) -> FundCash:
    spec = _spec(years, *terms)
    flows = portfolio_flows(4 * years, invested_initial=contributions, gross_proceeds=distributions)
    return run_fund_cash(spec, _plan(years), flows)


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


def _kernel_terms(carry: float, hurdle: float, catch_up: float) -> EuropeanTerms:
    return EuropeanTerms(carry=_dec(carry), hurdle=_dec(hurdle), catch_up=_dec(catch_up))


def _amounts(by_quarter: dict[int, float]) -> list[QuarterAmount]:
    return [QuarterAmount(quarter=q, amount=_dec(a)) for q, a in sorted(by_quarter.items())]


# -- strategies -------------------------------------------------------------------------

#: Dollars with cents, up to 100 million.
dollars = st.integers(0, 10**10).map(lambda cents: cents / 100)
ratio = st.integers(0, 10_000).map(lambda bp: bp / 10_000)
carries = st.one_of(st.just(0.2), st.just(0.0), ratio.map(lambda r: r / 2))  # 0..0.5
hurdles = st.one_of(st.just(0.08), st.just(0.0), ratio.map(lambda r: r / 5))  # 0..0.2


def catch_ups(carry: float) -> st.SearchStrategy[float]:
    """0 (none) or a rate above the carry: FundSpec refuses a catch-up at or below it."""
    return st.one_of(st.just(1.0), st.just(0.0), ratio.filter(lambda r: r > carry))


@st.composite
def terms(draw: st.DrawFn) -> tuple[float, float, float]:
    carry = draw(carries)
    return carry, draw(hurdles), draw(catch_ups(carry))


@st.composite
def cash_flows(draw: st.DrawFn) -> tuple[int, dict[int, float], dict[int, float]]:
    """Fund life in years, contributions and distributions by quarter (one path)."""
    years = draw(st.integers(1, 6))
    quarter = st.integers(0, 4 * years - 1)
    contributions = draw(st.dictionaries(quarter, dollars, max_size=6))
    distributions = draw(st.dictionaries(quarter, dollars, min_size=1, max_size=8))
    return years, contributions, distributions


# -- the tie ----------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(flows=cash_flows(), waterfall=terms())
def test_model_european_waterfall_equals_the_kernel(
    flows: tuple[int, dict[int, float], dict[int, float]],
    waterfall: tuple[float, float, float],
) -> None:
    years, contributions, distributions = flows
    carry, hurdle, catch_up = waterfall
    cash = _model(years, waterfall, contributions, distributions)
    kernel = european_waterfall(
        _kernel_terms(carry, hurdle, catch_up), _amounts(contributions), _amounts(distributions)
    )

    # Capital called is exactly the contributions (no fees, expenses or recycling).
    called = np.zeros(4 * years)
    for q, amount in contributions.items():
        called[q] = amount
    np.testing.assert_allclose(cash.called[0], called, rtol=0, atol=EPS)

    # The fund-level clawback of SPEC §3.1 on the kernel's totals.
    paid_in = sum((_dec(a) for a in contributions.values()), Decimal(0))
    profit = kernel.lp_exact + kernel.gp_exact - paid_in
    claw = float(max(Decimal(0), kernel.gp_exact - _dec(carry) * max(Decimal(0), profit)))
    assert cash.clawback[0, -1] == pytest.approx(claw, abs=CENT)

    # Totals, to the cent (kernel figures unrounded).
    assert cash.gp_carry.sum() == pytest.approx(float(kernel.gp_exact) - claw, abs=CENT)
    assert cash.lp_distributions.sum() == pytest.approx(float(kernel.lp_exact) + claw, abs=CENT)

    # GP carry per quarter before the clawback (kernel rows: catch-up and carry split, each
    # rounded to cents, so within a cent of the exact figure).
    gp_before_claw = cash.gp_carry[0] + cash.clawback[0]
    kernel_gp = dict.fromkeys(range(4 * years), 0.0)
    for row in kernel.rows:
        kernel_gp[row.quarter] += float(row.gp_total)
    for q in range(4 * years):
        assert gp_before_claw[q] == pytest.approx(kernel_gp[q], abs=CENT + EPS), q


@settings(max_examples=300, deadline=None)
@given(
    cost=dollars.filter(lambda c: c > 0),
    proceeds=dollars,
    waterfall=terms(),
    start=st.integers(0, 7),
)
def test_one_realisation_a_year_after_the_call_equals_distribute(
    cost: float, proceeds: float, waterfall: tuple[float, float, float], start: int
) -> None:
    """Paid in at quarter ``start``, realised four quarters later: the model's preferred
    return compounded over one year is the kernel's flat ``hurdle × cost``, so the European
    model and the American split of one deal coincide."""
    carry, hurdle, catch_up = waterfall
    cash = _model(3, waterfall, {start: cost}, {start + 4: proceeds})
    policy = WaterfallPolicy.standard(_dec(carry), _dec(hurdle), _dec(catch_up))
    deal = distribute(policy, _dec(proceeds), _dec(cost))
    assert cash.gp_carry[0, start + 4] == pytest.approx(float(deal.gp_exact), abs=CENT)
    assert cash.lp_distributions[0, start + 4] == pytest.approx(float(deal.lp_exact), abs=CENT)
    # One realisation never pays more than carry × profit: nothing to claw back.
    assert cash.clawback[0, -1] == pytest.approx(0.0, abs=CENT)


@settings(max_examples=200, deadline=None)
@given(
    cost=dollars,
    proceeds=dollars,
    carry=carries,
    call=st.integers(0, 11),
    gap=st.integers(0, 11),
    data=st.data(),
)
def test_one_realisation_without_a_hurdle_equals_distribute_at_any_date(
    cost: float, proceeds: float, carry: float, call: int, gap: int, data: st.DataObject
) -> None:
    """With no hurdle there is no preferred return to compound (and no catch-up on both
    sides, whatever its rate), so timing does not matter."""
    catch_up = data.draw(catch_ups(carry))
    realised = min(call + gap, 11)
    cash = _model(3, (carry, 0.0, catch_up), {call: cost}, {realised: proceeds})
    deal = distribute(WaterfallPolicy.standard(_dec(carry), 0, _dec(catch_up)), proceeds, cost)
    assert cash.gp_carry[0].sum() == pytest.approx(float(deal.gp_exact), abs=CENT)
    assert cash.lp_distributions[0].sum() == pytest.approx(float(deal.lp_exact), abs=CENT)


def test_known_answer_through_both() -> None:
    """SPEC §3.1 (truth): 1.5M on 1M a year later, 8 % pref, full catch-up, 20 % carry."""
    cash = _model(3, (0.2, 0.08, 1.0), {0: 1_000_000.0}, {4: 1_500_000.0})
    kernel = european_waterfall(
        _kernel_terms(0.2, 0.08, 1.0),
        _amounts({0: 1_000_000.0}),
        _amounts({4: 1_500_000.0}),
    )
    assert kernel.lp_total == Decimal("1400000.00") and kernel.gp_carry == Decimal("100000.00")
    assert cash.lp_distributions[0, 4] == pytest.approx(1_400_000.0, abs=CENT)
    assert cash.gp_carry[0, 4] == pytest.approx(100_000.0, abs=CENT)
