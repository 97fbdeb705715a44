"""Reserves from the stage ladder: the expected follow-on dollars a company will still need.

This is the reserve model GPs know from Tactyc/Carta fund forecasting ("reserves from
graduation rates"), made exact for this construction model and conditional on what the GP
knows about a company: its allocation (follow-on strategy and participation), its current
stage, the quarter it entered that stage and how long it has been there without news.

For a company of allocation ``a`` that entered stage ``s`` in quarter ``t`` and has had no event
for ``τ`` quarters, the *unnormalised* future need is

    A[a, s, t, τ] = Σ_{k > τ} g_s · pmf_s[k] · ( [t + k < L] · p_a · R_{s+1}
                        + (p_a + (1 − p_a) · keep_{s+1}) · A[a, s+1, t+k, 0] )

per unit of ownership for a pro-rata allocation (at a graduation the fund buys ``ownership ×
round size`` with probability ``p_a`` and keeps its ownership, or is diluted by ``keep = 1 −
round / post-money``), and

    B[a, s, t, τ] = Σ_{k > τ} g_s · pmf_s[k] · ( [t + k < L] · p_a · F_{a,s+1} + B[a, s+1, t+k, 0] )

per company for a fixed follow-on check ``F_{a,s+1} = min(follow_on_check, R_{s+1})`` (a
fund cannot buy more than the whole round). ``g_s`` is the graduation rate, ``pmf_s`` the
distribution of the time to the stage's event (:func:`updog.model.plan.event_time_pmf`), ``L``
the first quarter in which the fund no longer invests (the end of its life: no follow-ons in
extension years); rounds past the allocation's ``follow_on_rounds`` are not followed (the
indicator also requires ``s + 1`` ≤ the allocation's last follow-on stage) and events past the
horizon do not count. The conditional expected need of a
live company is ``(ownership · A + B) / S_s(τ)`` with ``S_s(τ)`` the probability of no event in
the first ``τ`` quarters; the expected need of a portfolio in expectation (the deterministic
engine, which tracks ownership mass × survival) is ``Σ ownership mass · A + company mass · B``.
With ``τ = 0`` this is the need at entry, which the construction uses to size the portfolio.

Follow-ons that reserves cannot fully fund (rationing) are ignored by the tables: they describe
the plan, not a path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class NeedTables:
    """Expected future follow-on need, dollars, shapes (allocations, stages, quarters, lags):
    ``per_ownership`` multiplies a company's ownership (pro-rata allocations; zero for fixed
    ones), ``per_company`` is added once (fixed-check allocations; zero for pro-rata ones).
    Both are unnormalised by survival (see the module docstring); ``survival`` (stages, lags)
    is ``S_s(τ)``. Lags beyond the last column mean no event can still come (need 0)."""

    per_ownership: Array
    per_company: Array
    survival: Array
    #: ``per_ownership`` and ``per_company`` divided by ``survival`` (0 where no company can
    #: still be alive), re-indexed by the current quarter instead of the lag and laid out
    #: current quarter first — shape (current quarter, :attr:`rows` + 1): a row per
    #: (allocation, stage, quarter entered) and a last column of zeros (:attr:`no_need_row`)
    #: — flattened: the conditional tables of :meth:`conditional`. One quarter's entries are
    #: contiguous, so a simulation reading every held company's need in a quarter touches a
    #: few kilobytes, not the whole table.
    conditional_ownership: Array
    conditional_company: Array

    @property
    def lags(self) -> int:
        return int(self.survival.shape[1])

    @property
    def quarters(self) -> int:
        return int(self.per_ownership.shape[2])

    @property
    def rows(self) -> int:
        """Rows of the conditional tables: allocations × stages × quarters entered."""
        allocations, stages, quarters, _ = self.per_ownership.shape
        return int(allocations * stages * quarters)

    @property
    def no_need_row(self) -> int:
        """A :meth:`row` whose need is 0 in every quarter: companies not (or no longer) held."""
        return self.rows

    def row(
        self, allocation: NDArray[np.int64], stage: NDArray[np.int64], entered: NDArray[np.int64]
    ) -> NDArray[np.int64]:
        """Row of the conditional tables for companies of ``allocation`` that entered ``stage``
        in quarter ``entered`` (arrays of one shape); :meth:`conditional` reads it at the
        current quarter. A simulation keeps one row per held company and updates it only when
        the company changes stage, so a quarter's need costs one gather."""
        _, stages, quarters, _ = self.per_ownership.shape
        out: NDArray[np.int64] = (allocation * stages + stage) * quarters + entered
        return out

    def at_entry(
        self,
        allocation: NDArray[np.int64],
        stage: NDArray[np.int64],
        quarter: NDArray[np.int64],
        ownership: Array,
    ) -> Array:
        """Expected follow-on need (dollars) of companies entering ``stage`` in ``quarter``
        with ``ownership`` (all arrays of one shape)."""
        out: Array = (
            ownership * self.per_ownership[allocation, stage, quarter, 0]
            + self.per_company[allocation, stage, quarter, 0]
        )
        return out

    def conditional(self, row: NDArray[np.int64], quarter: int, ownership: Array) -> Array:
        """Expected follow-on need (dollars) in ``quarter`` of live companies at table ``row``
        (:meth:`row`; entered their stage in a quarter ≤ ``quarter`` and have had no event
        since) holding ``ownership`` (arrays of one shape), given that they are still alive."""
        at = row + quarter * (self.rows + 1)
        out: Array = ownership * self.conditional_ownership.take(at)
        out += self.conditional_company.take(at)
        return out


def need_tables(
    *,
    quarters: int,
    invest_until: int,
    graduation_rate: Array,
    graduation_pmf: tuple[Array, ...],
    survival: tuple[Array, ...],
    round_size: Array,
    post_money: Array,
    participation: Array,
    pro_rata: NDArray[np.bool_],
    follow_on_check: Array,
    last_follow_on_stage: NDArray[np.int64],
) -> NeedTables:
    """Build :class:`NeedTables` for a ladder (stage arrays of shape (stages,)), allocations
    (arrays of shape (allocations,), with the last stage each may follow on in), ``quarters``
    modelled and follow-ons allowed in quarters ``< invest_until``. ``survival[s]`` is
    ``S_s(τ)`` for τ = 0..K_s (shape (K_s + 1,))."""
    n_alloc, n_stage = len(participation), len(round_size)
    lags = max(max(len(p) for p in graduation_pmf), max(len(s) for s in survival))
    per_own = np.zeros((n_alloc, n_stage, quarters, lags))
    per_co = np.zeros((n_alloc, n_stage, quarters, lags))
    surv = np.zeros((n_stage, lags))
    for s in range(n_stage):
        surv[s, : len(survival[s])] = survival[s]
    keep = 1.0 - round_size / post_money
    t = np.arange(quarters)
    p = participation[:, None, None]
    for s in range(n_stage - 2, -1, -1):
        pmf = graduation_pmf[s]
        k = np.arange(len(pmf))
        at = t[:, None] + k[None, :]  # (quarters, K) quarter of the graduation
        inside = at < quarters
        funded = (at < invest_until)[None, :, :] & (s + 1 <= last_follow_on_stage)[:, None, None]
        nxt = np.minimum(at, quarters - 1)
        weight = graduation_rate[s] * pmf[None, :] * inside  # (quarters, K)
        own_next = per_own[:, s + 1, nxt, 0]  # (allocations, quarters, K)
        co_next = per_co[:, s + 1, nxt, 0]
        own_terms = weight[None] * (
            funded * p * round_size[s + 1] + (p + (1.0 - p) * keep[s + 1]) * own_next
        )
        check = np.minimum(follow_on_check, round_size[s + 1])[:, None, None]
        co_terms = weight[None] * (funded * p * check + co_next)
        # A[..., τ] = Σ_{k > τ} term_k: a reversed cumulative sum, shifted by one.
        for table, terms in ((per_own, own_terms), (per_co, co_terms)):
            suffix = np.cumsum(terms[:, :, ::-1], axis=2)[:, :, ::-1]
            width = len(pmf) - 1
            table[:, s, :, :width] = suffix[:, :, 1:]
    per_own[~pro_rata] = 0.0
    per_co[pro_rata] = 0.0
    alive = surv[None, :, None, :]
    # By current quarter: column ``now`` of row ``entered`` is lag ``now − entered`` (the last
    # lag past it; quarters before the entry are never read).
    lag = np.clip(t[None, :] - t[:, None], 0, lags - 1)  # (entered, now)
    conditional = []
    for table in (per_own, per_co):
        by_now = np.divide(table, alive, out=np.zeros(table.shape), where=alive > 0.0)[
            :, :, t[:, None], lag
        ]  # (allocations, stages, entered, now)
        rows = np.moveaxis(by_now, 3, 0).reshape(quarters, -1)
        conditional.append(np.hstack([rows, np.zeros((quarters, 1))]).ravel())
    return NeedTables(
        per_ownership=per_own,
        per_company=per_co,
        survival=surv,
        conditional_ownership=conditional[0],
        conditional_company=conditional[1],
    )
