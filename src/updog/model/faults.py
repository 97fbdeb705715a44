"""Fault injection for the engines (SPEC §6 practice 12): proves that each guard fires.

A :class:`FaultPlan` is passed explicitly to the engine (no global switch), so production
code paths carry ``None`` and nothing can be injected by accident; the service builds a plan
only from the ``UPDOG_FAULTS`` setting, which is unset by default. The spec format is a comma
separated list of ``point:kind[=value]``, e.g. ``block:nan,forecast:negative_nav`` or
``block:delay=2.5``.

Points: ``block`` (after a Monte Carlo block is computed), ``reduce`` (before the statistics are
computed), ``forecast`` (after the deterministic forecast is computed).
Kinds: ``raise`` (an :class:`InjectedFault`), ``delay`` (sleep ``value`` seconds), ``nan`` and
``inf`` (corrupt a result value), ``negative_nav`` (a negative NAV), ``kill`` (the process
exits at once with status 137, as if killed — for worker-crash tests).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

POINTS = ("block", "reduce", "forecast")
KINDS = ("raise", "delay", "nan", "inf", "negative_nav", "kill")


class InjectedFault(RuntimeError):
    """Raised by a ``raise`` fault."""


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind`` at ``point``; ``value`` is the delay in seconds for ``delay``."""

    point: str
    kind: str
    value: float = 0.0


@dataclass(frozen=True)
class FaultPlan:
    """The faults to inject, at most one per point."""

    faults: dict[str, Fault] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """Parse ``point:kind[=value],...``; raises ValueError naming the bad part."""
        faults: dict[str, Fault] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            point, _, rest = part.partition(":")
            kind, _, raw = rest.partition("=")
            if point not in POINTS:
                raise ValueError(f"unknown fault point {point!r} (one of {', '.join(POINTS)})")
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r} (one of {', '.join(KINDS)})")
            try:
                value = float(raw) if raw else 0.0
            except ValueError:
                raise ValueError(f"bad fault value {raw!r} in {part!r}") from None
            if not 0.0 <= value <= 3600.0:
                raise ValueError(f"fault value out of range in {part!r}")
            faults[point] = Fault(point, kind, value)
        return cls(faults)

    def at(self, point: str) -> Fault | None:
        """The fault planned at ``point``, if any."""
        return self.faults.get(point)

    def act(self, point: str) -> str | None:
        """Carry out the side-effect kinds (raise, delay, kill) at ``point``; return the kind
        of a value-corrupting fault for the caller to apply, else None."""
        fault = self.faults.get(point)
        if fault is None:
            return None
        if fault.kind == "raise":
            raise InjectedFault(f"fault injected at {point}")
        if fault.kind == "delay":
            time.sleep(fault.value)
            return None
        if fault.kind == "kill":
            os._exit(137)
        return fault.kind
