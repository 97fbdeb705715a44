"""The event-loop lag judgement alone, on an injected clock: a brief spike never sheds,
sustained lag does, and shedding ends only once the lag is below the lower (exit) threshold."""

from __future__ import annotations

import pytest

from updog.protection.shedding import (
    LagConfig,
    LagState,
    LagStateMachine,
    LagTransition,
    PressureMonitor,
    nearest_rank,
)

#: Judge the p90 of 2 s of samples: shed above 0.3 s, stop below 0.1 s.
CONFIG = LagConfig(enter_lag=0.3, exit_lag=0.1, window=2.0, percentile=0.9)
INTERVAL = 0.05  # the sampler's sleep, seconds


class FakeClock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def feed(machine: LagStateMachine, clock: FakeClock, lag: float, seconds: float) -> set[LagState]:
    """Samples of ``lag`` as the sampler takes them (one per ``INTERVAL + lag`` seconds) for
    ``seconds``; the states seen after each."""
    seen = set()
    end = clock.now + seconds
    while clock.now < end:
        clock.now += INTERVAL + lag
        seen.add(machine.record(lag))
    return seen


def machine_and_events() -> tuple[LagStateMachine, FakeClock, list[LagTransition]]:
    clock = FakeClock()
    machine = LagStateMachine(CONFIG, clock=clock)
    events: list[LagTransition] = []
    machine.subscribe(events.append)
    return machine, clock, events


def test_a_brief_lag_spike_does_not_shed() -> None:
    machine, clock, events = machine_and_events()
    assert feed(machine, clock, 0.005, 3.0) == {LagState.ACCEPTING}
    clock.now += INTERVAL + 1.2  # one stall of 1.2 s: four times the entry threshold
    assert machine.record(1.2) is LagState.ACCEPTING
    assert machine.lag < CONFIG.enter_lag  # one sample in ten or fewer: not the p90
    assert feed(machine, clock, 0.005, 3.0) == {LagState.ACCEPTING}
    assert events == []


def test_sustained_lag_sheds_and_recovers_only_below_the_exit_threshold() -> None:
    machine, clock, events = machine_and_events()
    feed(machine, clock, 0.005, 3.0)
    # Lag of 0.4 s on every sample: shedding within one window.
    assert feed(machine, clock, 0.4, CONFIG.window) >= {LagState.SHEDDING}
    assert machine.state is LagState.SHEDDING
    # Between the thresholds (0.1 < 0.2 < 0.3): still shedding — the hysteresis.
    assert feed(machine, clock, 0.2, 3 * CONFIG.window) == {LagState.SHEDDING}
    # Below the exit threshold: back to accepting once the window forgets the lag.
    assert feed(machine, clock, 0.05, 2 * CONFIG.window) == {
        LagState.SHEDDING,
        LagState.ACCEPTING,
    }
    clock.now += INTERVAL + 0.05
    assert machine.record(0.05) is LagState.ACCEPTING
    # And between the thresholds again it stays accepting (0.2 < 0.3 to enter).
    assert feed(machine, clock, 0.2, 3 * CONFIG.window) == {LagState.ACCEPTING}
    assert [(e.from_state, e.to_state) for e in events] == [
        (LagState.ACCEPTING, LagState.SHEDDING),
        (LagState.SHEDDING, LagState.ACCEPTING),
    ]
    assert events[0].lag > CONFIG.enter_lag and events[1].lag < CONFIG.exit_lag
    assert events[0].at < events[1].at


def test_no_verdict_before_a_full_window() -> None:
    machine, clock, _ = machine_and_events()
    clock.now += 1.05
    assert machine.record(1.0) is LagState.ACCEPTING  # first sample: nothing observed yet
    clock.now += 1.05
    assert machine.record(1.0) is LagState.ACCEPTING  # 1.05 s observed of a 2 s window
    clock.now += 1.05
    assert machine.record(1.0) is LagState.SHEDDING  # a whole window of stalls


def test_pressure_sheds_only_above_the_in_flight_floor() -> None:
    clock = FakeClock()
    monitor = PressureMonitor(lag=CONFIG, in_flight_floor=2, max_in_flight=0, clock=clock)
    assert monitor.lag_machine is not None
    feed(monitor.lag_machine, clock, 0.4, 2 * CONFIG.window)
    assert monitor.pressure() == ["event_loop_lag"]
    for in_flight in (0, 1, 2):  # one user, or a few: served however slow the loop is
        monitor.in_flight = in_flight
        assert monitor.reasons() == []
    monitor.in_flight = 3
    assert monitor.reasons() == ["event_loop_lag"]
    snapshot = monitor.snapshot()
    assert snapshot["event_loop_lag_state"] == "shedding" and snapshot["overloaded"]
    assert snapshot["thresholds"]["in_flight_floor"] == 2


def test_nearest_rank_and_validation() -> None:
    assert nearest_rank([], 0.9) == 0.0
    assert nearest_rank([float(v) for v in range(1, 11)], 0.9) == 9.0
    assert nearest_rank([float(v) for v in range(1, 12)], 0.9) == 10.0
    assert nearest_rank([3.0, 1.0, 2.0], 1.0) == 3.0
    for bad in (
        {"exit_lag": 0.3},  # not below enter_lag: no hysteresis
        {"exit_lag": -0.1},
        {"enter_lag": 0.0},
        {"window": 0.0},
        {"percentile": 0.0},
        {"percentile": 1.5},
    ):
        with pytest.raises(ValueError):
            LagConfig(**{"enter_lag": 0.3, "exit_lag": 0.1, **bad})
    with pytest.raises(ValueError):
        LagStateMachine(CONFIG).record(float("nan"))
