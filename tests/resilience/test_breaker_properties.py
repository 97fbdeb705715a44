"""Property tests of the circuit breaker, driven by a fake clock.

A Hypothesis state machine runs random interleavings of call starts, outcomes (success,
failure, ignored), clock advances and manual transitions against a small reference model of
the resilience4j semantics, and checks after every step that the breaker agrees with the
model on admission, state and remaining wait, and that its events tell a consistent story.
Focused properties then pin each transition on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from updog.resilience.breaker import (
    LEGAL_TRANSITIONS,
    BreakerConfig,
    BreakerRegistry,
    CallNotPermittedError,
    CircuitBreaker,
    ErrorEvent,
    IgnoredErrorEvent,
    IllegalStateTransition,
    NotPermittedEvent,
    Permit,
    State,
    StateTransitionEvent,
    SuccessEvent,
)


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CallerFault(Exception):
    """Stands for a constraint violation / 4xx: never counted."""


class DependencyDown(Exception):
    """Stands for a lost connection: a failure."""


def is_failure(exc: BaseException) -> bool:
    return not isinstance(exc, CallerFault)


@st.composite
def configs(draw: Any) -> BreakerConfig:
    window_type = draw(st.sampled_from(["count", "time"]))
    window_size = draw(st.integers(1, 8))
    minimum = draw(st.integers(1, window_size if window_type == "count" else 10))
    return BreakerConfig(
        failure_rate_threshold=draw(st.sampled_from([0.2, 0.5, 0.75, 1.0])),
        slow_call_rate_threshold=draw(st.sampled_from([0.3, 0.5, 1.0])),
        slow_call_duration=draw(st.sampled_from([0.5, 1.0, 3.0])),
        window_type=window_type,
        window_size=window_size,
        minimum_calls=minimum,
        wait_in_open=draw(st.sampled_from([0.5, 1.0, 5.0])),
        permitted_calls_in_half_open=draw(st.integers(1, 4)),
        is_failure=is_failure,
    )


# --------------------------------------------------------------------------- reference model


@dataclass
class Model:
    """The specification, written as plainly as possible."""

    cfg: BreakerConfig
    state: State = State.CLOSED
    gen: int = 0
    window: list[tuple[float, bool, bool]] = field(default_factory=list)
    open_until: float = 0.0
    trials_left: int = 0
    trials: list[tuple[bool, bool]] = field(default_factory=list)

    def _go(self, to: State, now: float) -> None:
        self.state = to
        self.gen += 1
        self.window = []
        self.trials = []
        if to is State.OPEN:
            self.open_until = now + self.cfg.wait_in_open
        if to is State.HALF_OPEN:
            self.trials_left = self.cfg.permitted_calls_in_half_open

    def _tripped(self, outcomes: list[tuple[bool, bool]], minimum: int) -> bool:
        n = len(outcomes)
        if n < minimum or n == 0:
            return False
        failures = sum(f for f, _ in outcomes)
        slow = sum(s for _, s in outcomes)
        return (
            failures / n >= self.cfg.failure_rate_threshold
            or slow / n >= self.cfg.slow_call_rate_threshold
        )

    def admit(self, now: float) -> bool:
        if self.state in (State.CLOSED, State.DISABLED):
            return True
        if self.state is State.FORCED_OPEN:
            return False
        if self.state is State.OPEN:
            if now < self.open_until:
                return False
            self._go(State.HALF_OPEN, now)
        if self.trials_left > 0:
            self.trials_left -= 1
            return True
        return False

    def finish(self, gen: int, now: float, started: float, outcome: str) -> None:
        if gen != self.gen:
            return
        if outcome == "ignored":
            if self.state is State.HALF_OPEN:
                self.trials_left = min(self.trials_left + 1, self.cfg.permitted_calls_in_half_open)
            return
        failed = outcome == "failure"
        slow = now - started >= self.cfg.slow_call_duration
        if self.state is State.CLOSED:
            self.window.append((now, failed, slow))
            if self.cfg.window_type == "count":
                recent = self.window[-self.cfg.window_size :]
            else:
                oldest = math.floor(now) - self.cfg.window_size + 1
                recent = [w for w in self.window if math.floor(w[0]) >= oldest]
            if self._tripped([(f, s) for _, f, s in recent], self.cfg.minimum_calls):
                self._go(State.OPEN, now)
        elif self.state is State.HALF_OPEN:
            self.trials.append((failed, slow))
            if len(self.trials) == self.cfg.permitted_calls_in_half_open:
                tripped = self._tripped(self.trials, len(self.trials))
                self._go(State.OPEN if tripped else State.CLOSED, now)

    def remaining_wait(self, now: float) -> float:
        if self.state is State.OPEN:
            return max(0.0, self.open_until - now)
        if self.state is State.HALF_OPEN:
            return 0.0 if self.trials_left > 0 else 1.0
        if self.state is State.FORCED_OPEN:
            return self.cfg.wait_in_open
        return 0.0


# --------------------------------------------------------------------------- state machine


@dataclass
class InFlight:
    permit: Permit
    gen: int
    started: float


class BreakerMachine(RuleBasedStateMachine):
    @initialize(cfg=configs())
    def setup(self, cfg: BreakerConfig) -> None:
        self.clock = FakeClock()
        self.breaker = CircuitBreaker("pg", cfg, clock=self.clock)
        self.model = Model(cfg)
        self.events: list[Any] = []
        self.breaker.events.subscribe(self.events.append)
        self.in_flight: list[InFlight] = []
        self.rejections = 0

    @rule()
    def start_call(self) -> None:
        now = self.clock()
        expected = self.model.admit(now)
        permit = self.breaker.try_acquire()
        assert (permit is not None) == expected, (self.breaker.state, self.model.state)
        if permit is not None:
            self.in_flight.append(InFlight(permit, self.model.gen, now))
        else:
            self.rejections += 1
            assert isinstance(self.events[-1], NotPermittedEvent)

    @precondition(lambda self: bool(self.in_flight))
    @rule(
        index=st.integers(0, 50),
        outcome=st.sampled_from(["success", "failure", "failure", "ignored"]),
    )
    def finish_call(self, index: int, outcome: str) -> None:
        call = self.in_flight.pop(index % len(self.in_flight))
        now = self.clock()
        self.model.finish(call.gen, now, call.started, outcome)
        before = len(self.events)
        if outcome == "success":
            self.breaker.on_success(call.permit)
            assert isinstance(self.events[before], SuccessEvent)
        elif outcome == "failure":
            self.breaker.on_error(call.permit, DependencyDown("down"))
            assert isinstance(self.events[before], ErrorEvent)
        else:
            self.breaker.on_error(call.permit, CallerFault("unique violation"))
            assert isinstance(self.events[before], IgnoredErrorEvent)

    @rule(seconds=st.sampled_from([0.1, 0.4, 0.5, 1.0, 2.5, 6.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(target_state=st.sampled_from([State.DISABLED, State.FORCED_OPEN, State.CLOSED]))
    def manual(self, target_state: State) -> None:
        now = self.clock()
        if target_state is State.CLOSED:
            if self.model.state is State.CLOSED:
                return
            if (self.model.state, State.CLOSED) not in LEGAL_TRANSITIONS:
                with pytest.raises(IllegalStateTransition):
                    self.breaker.transition_to_closed()
                return
            self.breaker.transition_to_closed()
        elif target_state is State.DISABLED:
            if self.model.state is State.DISABLED:
                with pytest.raises(IllegalStateTransition):
                    self.breaker.transition_to_disabled()
                return
            self.breaker.transition_to_disabled()
        else:
            if self.model.state is State.FORCED_OPEN:
                with pytest.raises(IllegalStateTransition):
                    self.breaker.transition_to_forced_open()
                return
            self.breaker.transition_to_forced_open()
        self.model._go(target_state, now)

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "model"):
            return
        assert self.breaker.state is self.model.state
        assert self.breaker.remaining_wait() == pytest.approx(
            self.model.remaining_wait(self.clock())
        )

    @invariant()
    def transitions_chain(self) -> None:
        if not hasattr(self, "events"):
            return
        current = State.CLOSED
        for event in self.events:
            if isinstance(event, StateTransitionEvent):
                assert event.from_state is current
                assert (event.from_state, event.to_state) in LEGAL_TRANSITIONS
                current = event.to_state
        assert current is self.breaker.state


TestBreakerMachine = BreakerMachine.TestCase
TestBreakerMachine.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --------------------------------------------------------------------------- focused properties


def _fail(breaker: CircuitBreaker, clock: FakeClock, n: int, duration: float = 0.0) -> None:
    for _ in range(n):
        permit = breaker.acquire()
        clock.advance(duration)
        breaker.on_error(permit, DependencyDown())


def _succeed(breaker: CircuitBreaker, clock: FakeClock, n: int, duration: float = 0.0) -> None:
    for _ in range(n):
        permit = breaker.acquire()
        clock.advance(duration)
        breaker.on_success(permit)


@given(cfg=configs(), outcomes=st.lists(st.booleans(), min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_closed_opens_exactly_when_the_count_window_trips(
    cfg: BreakerConfig, outcomes: list[bool]
) -> None:
    cfg = cfg.with_(window_type="count", minimum_calls=min(cfg.minimum_calls, cfg.window_size))
    clock = FakeClock()
    breaker = CircuitBreaker("pg", cfg, clock=clock)
    window: list[bool] = []
    for failed in outcomes:
        permit = breaker.acquire()
        if failed:
            breaker.on_error(permit, DependencyDown())
        else:
            breaker.on_success(permit)
        window = [*window, failed][-cfg.window_size :]
        tripped = (
            len(window) >= cfg.minimum_calls
            and sum(window) / len(window) >= cfg.failure_rate_threshold
        )
        if tripped:
            assert breaker.state is State.OPEN
            return
        assert breaker.state is State.CLOSED


@given(cfg=configs(), waited=st.floats(0, 10, allow_nan=False))
@settings(max_examples=200, deadline=None)
def test_open_rejects_with_the_remaining_wait_then_half_opens(
    cfg: BreakerConfig, waited: float
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("pg", cfg.with_(window_type="count", minimum_calls=1), clock=clock)
    _fail(breaker, clock, 1)
    assert breaker.state is State.OPEN
    clock.advance(waited)
    if waited < cfg.wait_in_open:
        with pytest.raises(CallNotPermittedError) as caught:
            breaker.acquire()
        remaining = cfg.wait_in_open - waited
        assert caught.value.remaining_wait == pytest.approx(remaining)
        assert caught.value.retry_after == max(1, math.ceil(caught.value.remaining_wait))
        assert breaker.state is State.OPEN
    else:
        breaker.acquire()  # the first trial call
        assert breaker.state is State.HALF_OPEN


@given(cfg=configs(), trial_failures=st.lists(st.booleans(), min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_half_open_admits_exactly_the_trials_then_decides(
    cfg: BreakerConfig, trial_failures: list[bool]
) -> None:
    permitted = len(trial_failures)
    cfg = cfg.with_(window_type="count", minimum_calls=1, permitted_calls_in_half_open=permitted)
    clock = FakeClock()
    breaker = CircuitBreaker("pg", cfg, clock=clock)
    _fail(breaker, clock, 1)
    clock.advance(cfg.wait_in_open)
    permits = [breaker.acquire() for _ in range(permitted)]
    assert breaker.state is State.HALF_OPEN
    with pytest.raises(CallNotPermittedError):
        breaker.acquire()  # one more than permitted
    for permit, failed in zip(permits, trial_failures, strict=True):
        if failed:
            breaker.on_error(permit, DependencyDown())
        else:
            breaker.on_success(permit)
    rate = sum(trial_failures) / permitted
    expected = State.OPEN if rate >= cfg.failure_rate_threshold else State.CLOSED
    assert breaker.state is expected
    if expected is State.CLOSED:
        assert breaker.snapshot().calls == 0  # a fresh window


@given(cfg=configs(), n=st.integers(1, 30))
@settings(max_examples=100, deadline=None)
def test_caller_faults_pass_through_and_never_count(cfg: BreakerConfig, n: int) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("pg", cfg, clock=clock)
    for _ in range(n):
        error = CallerFault("duplicate key")
        with pytest.raises(CallerFault) as caught, breaker.guard():
            raise error
        assert caught.value is error  # the very same error, unchanged
    assert breaker.state is State.CLOSED
    assert breaker.snapshot().calls == 0


@given(duration=st.floats(0, 5, allow_nan=False), threshold=st.sampled_from([0.5, 1.0, 3.0]))
@settings(max_examples=100, deadline=None)
def test_slow_calls_open_the_breaker(duration: float, threshold: float) -> None:
    clock = FakeClock()
    cfg = BreakerConfig(
        slow_call_duration=threshold,
        slow_call_rate_threshold=1.0,
        window_size=4,
        minimum_calls=4,
    )
    breaker = CircuitBreaker("pg", cfg, clock=clock)
    _succeed(breaker, clock, 4, duration)
    assert breaker.state is (State.OPEN if duration >= threshold else State.CLOSED)


@given(gap=st.integers(0, 12))
@settings(max_examples=50, deadline=None)
def test_time_window_forgets_old_calls(gap: int) -> None:
    clock = FakeClock(0.0)
    cfg = BreakerConfig(window_type="time", window_size=5, minimum_calls=4)
    breaker = CircuitBreaker("pg", cfg, clock=clock)
    _fail(breaker, clock, 2)
    clock.advance(gap)
    _fail(breaker, clock, 2)
    # all four failures count only while the first two are still inside the 5-second window
    assert breaker.state is (State.OPEN if gap < 5 else State.CLOSED)


def test_outcomes_of_an_older_state_do_not_feed_the_new_one() -> None:
    clock = FakeClock()
    cfg = BreakerConfig(window_size=2, minimum_calls=2, permitted_calls_in_half_open=1)
    breaker = CircuitBreaker("pg", cfg, clock=clock)
    slow_success = breaker.acquire()  # admitted while CLOSED
    _fail(breaker, clock, 2)
    assert breaker.state is State.OPEN
    breaker.on_success(slow_success)  # arrives late: must not count in OPEN
    assert breaker.state is State.OPEN
    clock.advance(cfg.wait_in_open)
    trial = breaker.acquire()
    assert breaker.state is State.HALF_OPEN
    breaker.on_success(trial)
    assert breaker.state is State.CLOSED


def test_every_illegal_transition_raises_and_legal_ones_work() -> None:
    for frm in State:
        for to in State:
            breaker = CircuitBreaker("x", BreakerConfig())
            with breaker._lock:
                if frm is not State.CLOSED:
                    # reach ``frm`` through legal steps
                    path = {
                        State.OPEN: [State.OPEN],
                        State.HALF_OPEN: [State.OPEN, State.HALF_OPEN],
                        State.DISABLED: [State.DISABLED],
                        State.FORCED_OPEN: [State.FORCED_OPEN],
                    }[frm]
                    for step in path:
                        breaker._transition(step, 0.0)
                if (frm, to) in LEGAL_TRANSITIONS:
                    breaker._transition(to, 0.0)
                    assert breaker.state is to
                else:
                    with pytest.raises(IllegalStateTransition):
                        breaker._transition(to, 0.0)
    assert (State.CLOSED, State.HALF_OPEN) not in LEGAL_TRANSITIONS


def test_disabled_and_forced_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("pg", BreakerConfig(minimum_calls=1), clock=clock)
    breaker.transition_to_disabled()
    _fail(breaker, clock, 20)
    assert breaker.state is State.DISABLED
    breaker.transition_to_forced_open()
    with pytest.raises(CallNotPermittedError) as caught:
        breaker.acquire()
    assert caught.value.state is State.FORCED_OPEN and caught.value.retry_after >= 1
    clock.advance(1000)
    assert breaker.try_acquire() is None  # never half-opens by itself
    breaker.reset()
    assert breaker.state is State.CLOSED and breaker.try_acquire() is not None


def test_registry_shares_instances_and_configures_by_prefix() -> None:
    special = BreakerConfig(wait_in_open=42.0)
    registry = BreakerRegistry(
        configs={"http": special, "pg": BreakerConfig(window_size=7, minimum_calls=5)}
    )
    seen: list[str] = []
    registry.on_added(lambda b: seen.append(b.name))
    assert registry.get("pg") is registry.get("pg")
    assert registry.get("pg").config.window_size == 7
    assert registry.get("http:api.example.com").config is special
    assert registry.get("redis").config == registry.default
    late: list[str] = []
    registry.on_added(lambda b: late.append(b.name))
    assert seen == ["pg", "http:api.example.com", "redis"]
    assert sorted(late) == sorted(seen)  # existing breakers are announced to late listeners


def test_a_failing_subscriber_does_not_break_calls() -> None:
    breaker = CircuitBreaker("pg")

    def bad(_event: object) -> None:
        raise RuntimeError("observer bug")

    breaker.events.subscribe(bad)
    assert breaker.call(lambda: 7) == 7


def test_config_validation() -> None:
    for bad in (
        {"failure_rate_threshold": 0},
        {"failure_rate_threshold": 1.5},
        {"window_size": 0},
        {"minimum_calls": 30, "window_size": 20},
        {"permitted_calls_in_half_open": 0},
        {"wait_in_open": 0},
        {"operation_timeout": -1},
        {"window_type": "sliding"},
    ):
        with pytest.raises(ValueError):
            BreakerConfig(**bad)
