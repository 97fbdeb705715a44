"""Circuit breakers with the semantics of resilience4j's ``CircuitBreaker``.

Four parts, as in resilience4j-circuitbreaker:

* :class:`BreakerConfig` — an immutable configuration with named, documented defaults;
* the **states** — one small class each (:class:`ClosedState`, :class:`OpenState`,
  :class:`HalfOpenState`, :class:`DisabledState`, :class:`ForcedOpenState`) answering "may I
  call?" and "record this outcome";
* the **machine** — :class:`CircuitBreaker` owns the transitions (an illegal one raises
  :class:`IllegalStateTransition`) and publishes an **event** for every outcome, rejection and
  transition (:class:`StateTransitionEvent`, :class:`SuccessEvent`, :class:`ErrorEvent`,
  :class:`IgnoredErrorEvent`, :class:`NotPermittedEvent`, :class:`ResetEvent`); metrics and logs
  subscribe to events (:meth:`EventPublisher.subscribe`) instead of living in the logic;
* the **registry** — :class:`BreakerRegistry` names breakers (``pg``, ``redis``,
  ``http:<host>``) and hands out shared instances.

Behaviour:

CLOSED
    Calls pass. Outcomes go into a sliding window (the last ``window_size`` calls, or the
    calls of the last ``window_size`` seconds). Once the window holds at least
    ``minimum_calls`` calls and the failure rate ≥ ``failure_rate_threshold`` or the slow-call
    rate (calls longer than ``slow_call_duration``) ≥ ``slow_call_rate_threshold``, the
    breaker goes OPEN.
OPEN
    Calls are rejected with :class:`CallNotPermittedError` (which carries the remaining wait,
    the value of a ``Retry-After``) until ``wait_in_open`` seconds have passed; the first call
    after that moves the breaker to HALF_OPEN and is its first trial call.
HALF_OPEN
    ``permitted_calls_in_half_open`` trial calls pass; any further call is rejected. When all
    trial outcomes are in, the same thresholds decide: CLOSED (fresh window) or OPEN again.
DISABLED / FORCED_OPEN
    Manual states: every call passes and nothing is recorded / every call is rejected.

Errors are classified by ``BreakerConfig.is_failure``: ``True`` counts as a failure, ``False``
means *ignored* — the error is the caller's fault (a constraint violation, a 4xx), it passes
through unchanged and is recorded neither as success nor failure. No error is ever swallowed
or turned into a result. An outcome of a call admitted under an earlier state (e.g. a slow
call that started while CLOSED and ends after the breaker opened) is published as an event but
does not feed the new state's window.

Time comes from an injected clock (``clock=time.monotonic`` by default), so tests drive it.
"""

from __future__ import annotations

import asyncio
import enum
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, TypeVar

__all__ = [
    "LEGAL_TRANSITIONS",
    "BreakerConfig",
    "BreakerEvent",
    "BreakerRegistry",
    "CallNotPermittedError",
    "CircuitBreaker",
    "ClosedState",
    "DisabledState",
    "ErrorEvent",
    "EventPublisher",
    "ForcedOpenState",
    "HalfOpenState",
    "IgnoredErrorEvent",
    "IllegalStateTransition",
    "NotPermittedEvent",
    "OpenState",
    "OperationTimeoutError",
    "Permit",
    "ResetEvent",
    "State",
    "StateTransitionEvent",
    "SuccessEvent",
    "WindowSnapshot",
]

T = TypeVar("T")
#: Seconds since an arbitrary origin that never goes backwards (``time.monotonic``).
Clock = Callable[[], float]


class State(enum.Enum):
    """Breaker states; the value is the label used in metrics and ``/readyz``."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    DISABLED = "disabled"
    FORCED_OPEN = "forced_open"


#: Every transition the machine may make; anything else raises IllegalStateTransition.
#: Automatic: CLOSED→OPEN (thresholds), OPEN→HALF_OPEN (wait elapsed), HALF_OPEN→CLOSED/OPEN
#: (trial outcomes). Manual (operators, tests): to CLOSED (reset), DISABLED and FORCED_OPEN
#: from anywhere, and OPEN from DISABLED/FORCED_OPEN. CLOSED→HALF_OPEN is never legal: a
#: breaker only probes a dependency it has given up on.
LEGAL_TRANSITIONS: frozenset[tuple[State, State]] = frozenset(
    {
        (State.CLOSED, State.OPEN),
        (State.OPEN, State.HALF_OPEN),
        (State.HALF_OPEN, State.CLOSED),
        (State.HALF_OPEN, State.OPEN),
        (State.OPEN, State.CLOSED),
        (State.DISABLED, State.CLOSED),
        (State.FORCED_OPEN, State.CLOSED),
        (State.DISABLED, State.OPEN),
        (State.FORCED_OPEN, State.OPEN),
        (State.FORCED_OPEN, State.HALF_OPEN),
        (State.DISABLED, State.HALF_OPEN),
    }
    | {(s, State.DISABLED) for s in State if s is not State.DISABLED}
    | {(s, State.FORCED_OPEN) for s in State if s is not State.FORCED_OPEN}
)


def _every_error_counts(_exc: BaseException) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """How a breaker judges its dependency. Times are seconds, rates ratios in (0, 1].

    The defaults suit a dependency called many times a second (the database): judge on the
    last 20 calls once 10 are in; half of them failing, or all of them slower than 5 s, means
    the dependency is sick; give it 5 s before 3 trial calls decide whether it is back. A
    recovering dependency is thus noticed within about ``wait_in_open`` seconds, which keeps
    the time to heal well under the 15 s the chaos tests allow.
    """

    #: Failure rate (failed / recorded calls) at or above which the breaker opens.
    failure_rate_threshold: float = 0.5
    #: Slow-call rate at or above which the breaker opens (1.0: only when every call is slow).
    slow_call_rate_threshold: float = 1.0
    #: A call taking at least this long is slow (whether it succeeded or failed).
    slow_call_duration: float = 5.0
    #: ``"count"``: the window is the last ``window_size`` calls; ``"time"``: the calls of
    #: the last ``window_size`` seconds (one-second buckets).
    window_type: Literal["count", "time"] = "count"
    #: Size of the sliding window, in calls or seconds (see ``window_type``).
    window_size: int = 20
    #: Calls the window must hold before any rate is judged (fewer: never opens).
    minimum_calls: int = 10
    #: Seconds OPEN before trial calls are let through.
    wait_in_open: float = 5.0
    #: Trial calls let through in HALF_OPEN; their outcomes decide CLOSED or OPEN.
    permitted_calls_in_half_open: int = 3
    #: Seconds a guarded call may take before it is cancelled and counted as a failure
    #: (``None``: no limit). Async calls are cancelled by :meth:`CircuitBreaker.acall`;
    #: blocking database calls by the store's watchdog (a server-side query cancel).
    operation_timeout: float | None = None
    #: ``is_failure(exc)``: True → a failure; False → ignored (the caller's fault; passes
    #: through unrecorded).
    is_failure: Callable[[BaseException], bool] = field(default=_every_error_counts, repr=False)

    def __post_init__(self) -> None:
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            value = getattr(self, name)
            if not (0 < value <= 1):
                raise ValueError(f"{name} must be in (0, 1], got {value}")
        for name in ("slow_call_duration", "wait_in_open"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")
        if self.window_type not in ("count", "time"):
            raise ValueError(f"window_type must be 'count' or 'time', got {self.window_type!r}")
        if self.window_size < 1:
            raise ValueError(f"window_size must be ≥ 1, got {self.window_size}")
        if self.minimum_calls < 1:
            raise ValueError(f"minimum_calls must be ≥ 1, got {self.minimum_calls}")
        if self.window_type == "count" and self.minimum_calls > self.window_size:
            raise ValueError("minimum_calls cannot exceed a count window's window_size")
        if self.permitted_calls_in_half_open < 1:
            raise ValueError(
                f"permitted_calls_in_half_open must be ≥ 1, got {self.permitted_calls_in_half_open}"
            )
        if self.operation_timeout is not None and not (
            math.isfinite(self.operation_timeout) and self.operation_timeout > 0
        ):
            raise ValueError(f"operation_timeout must be > 0 or None, got {self.operation_timeout}")

    def with_(self, **changes: Any) -> BreakerConfig:
        """A copy with ``changes`` applied (validated again)."""
        return replace(self, **changes)


# --------------------------------------------------------------------------- errors


class CallNotPermittedError(Exception):
    """The breaker refused the call (OPEN, FORCED_OPEN, or HALF_OPEN with no trial left).

    ``remaining_wait`` is the number of seconds until trial calls may pass (0 when unknown or
    already due); :attr:`retry_after` is its ``Retry-After`` form (an integer ≥ 1).
    """

    def __init__(self, breaker: str, state: State, remaining_wait: float) -> None:
        super().__init__(
            f"circuit breaker {breaker!r} is {state.value}; retry in {remaining_wait:.1f} s"
        )
        self.breaker = breaker
        self.state = state
        self.remaining_wait = max(0.0, remaining_wait)

    @property
    def retry_after(self) -> int:
        """Whole seconds to wait, at least 1."""
        return max(1, math.ceil(self.remaining_wait))


class OperationTimeoutError(TimeoutError):
    """A guarded operation exceeded its ``operation_timeout`` and was cancelled."""

    def __init__(self, breaker: str, timeout: float) -> None:
        super().__init__(f"operation guarded by {breaker!r} cancelled after {timeout:g} s")
        self.breaker = breaker
        self.timeout = timeout


class IllegalStateTransition(RuntimeError):
    """A transition outside :data:`LEGAL_TRANSITIONS` was requested."""

    def __init__(self, breaker: str, from_state: State, to_state: State) -> None:
        super().__init__(
            f"circuit breaker {breaker!r}: illegal transition {from_state.value} → {to_state.value}"
        )
        self.from_state = from_state
        self.to_state = to_state


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """Something a breaker did; ``at`` is the breaker's clock reading."""

    breaker: str
    at: float


@dataclass(frozen=True, slots=True)
class StateTransitionEvent(BreakerEvent):
    from_state: State
    to_state: State


@dataclass(frozen=True, slots=True)
class SuccessEvent(BreakerEvent):
    duration: float
    slow: bool


@dataclass(frozen=True, slots=True)
class ErrorEvent(BreakerEvent):
    duration: float
    slow: bool
    error: str  #: the exception's class name
    timeout: bool = False


@dataclass(frozen=True, slots=True)
class IgnoredErrorEvent(BreakerEvent):
    duration: float
    error: str


@dataclass(frozen=True, slots=True)
class NotPermittedEvent(BreakerEvent):
    state: State
    remaining_wait: float


@dataclass(frozen=True, slots=True)
class ResetEvent(BreakerEvent):
    pass


Subscriber = Callable[[BreakerEvent], None]


class EventPublisher:
    """Fan-out of a breaker's events. A subscriber that raises is dropped from that delivery
    (the breaker's logic never fails because of an observer)."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(event)`` for every future event; returns an unsubscribe function."""
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: BreakerEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:  # an observer's bug must not break the caller's call
                import logging

                logging.getLogger(__name__).exception("breaker event subscriber failed")


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class WindowSnapshot:
    """Aggregates of a sliding window."""

    calls: int = 0
    failures: int = 0
    slow_calls: int = 0

    @property
    def failure_rate(self) -> float:
        """failures / calls (0.0 for an empty window)."""
        return self.failures / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """slow calls / calls (0.0 for an empty window)."""
        return self.slow_calls / self.calls if self.calls else 0.0


class CountWindow:
    """The last ``size`` outcomes, with running totals (O(1) per record)."""

    def __init__(self, size: int) -> None:
        self._outcomes: deque[tuple[bool, bool]] = deque()
        self._size = size
        self._failures = 0
        self._slow = 0

    def record(self, _now: float, failed: bool, slow: bool) -> None:
        if len(self._outcomes) == self._size:
            old_failed, old_slow = self._outcomes.popleft()
            self._failures -= old_failed
            self._slow -= old_slow
        self._outcomes.append((failed, slow))
        self._failures += failed
        self._slow += slow

    def snapshot(self, _now: float) -> WindowSnapshot:
        return WindowSnapshot(len(self._outcomes), self._failures, self._slow)


class TimeWindow:
    """The outcomes of the last ``size`` seconds, in one-second buckets."""

    def __init__(self, size: int) -> None:
        self._size = size
        # bucket i holds [epoch_second, calls, failures, slow]
        self._buckets: list[list[int]] = [[-1, 0, 0, 0] for _ in range(size)]

    def record(self, now: float, failed: bool, slow: bool) -> None:
        second = math.floor(now)
        bucket = self._buckets[second % self._size]
        if bucket[0] != second:
            bucket[:] = [second, 0, 0, 0]
        bucket[1] += 1
        bucket[2] += failed
        bucket[3] += slow

    def snapshot(self, now: float) -> WindowSnapshot:
        oldest = math.floor(now) - self._size + 1
        calls = failures = slow = 0
        for second, c, f, s in self._buckets:
            if second >= oldest:
                calls += c
                failures += f
                slow += s
        return WindowSnapshot(calls, failures, slow)


def _window(config: BreakerConfig) -> CountWindow | TimeWindow:
    if config.window_type == "time":
        return TimeWindow(config.window_size)
    return CountWindow(config.window_size)


def _exceeded(config: BreakerConfig, snap: WindowSnapshot, minimum: int) -> bool:
    if snap.calls < minimum:
        return False
    return (
        snap.failure_rate >= config.failure_rate_threshold
        or snap.slow_call_rate >= config.slow_call_rate_threshold
    )


# --------------------------------------------------------------------------- states


class BreakerState:
    """One state of the machine: decides admission and what an outcome means."""

    state: ClassVar[State]

    def __init__(self, machine: CircuitBreaker) -> None:
        self.machine = machine
        self.config = machine.config

    def acquire(self, now: float) -> bool:
        """May a call start now? (A True answer holds a permission until recorded.)"""
        raise NotImplementedError

    def release(self) -> None:
        """Give back a permission without an outcome (ignored error, cancelled call)."""

    def record(self, now: float, failed: bool, slow: bool) -> None:
        """Record the outcome of a call admitted by this state."""

    def remaining_wait(self, now: float) -> float:
        """Seconds until calls may pass again (0: they may)."""
        return 0.0

    def snapshot(self, now: float) -> WindowSnapshot:
        return WindowSnapshot()


class ClosedState(BreakerState):
    state = State.CLOSED

    def __init__(self, machine: CircuitBreaker) -> None:
        super().__init__(machine)
        self.window = _window(self.config)

    def acquire(self, now: float) -> bool:
        return True

    def record(self, now: float, failed: bool, slow: bool) -> None:
        self.window.record(now, failed, slow)
        if _exceeded(self.config, self.window.snapshot(now), self.config.minimum_calls):
            self.machine._transition(State.OPEN, now)

    def snapshot(self, now: float) -> WindowSnapshot:
        return self.window.snapshot(now)


class OpenState(BreakerState):
    state = State.OPEN

    def __init__(self, machine: CircuitBreaker, now: float) -> None:
        super().__init__(machine)
        self.until = now + self.config.wait_in_open

    def acquire(self, now: float) -> bool:
        if now < self.until:
            return False
        self.machine._transition(State.HALF_OPEN, now)
        return self.machine._state.acquire(now)

    def remaining_wait(self, now: float) -> float:
        return max(0.0, self.until - now)


class HalfOpenState(BreakerState):
    state = State.HALF_OPEN

    def __init__(self, machine: CircuitBreaker) -> None:
        super().__init__(machine)
        self.permits = self.config.permitted_calls_in_half_open
        self.window = CountWindow(self.config.permitted_calls_in_half_open)

    def acquire(self, now: float) -> bool:
        if self.permits <= 0:
            return False
        self.permits -= 1
        return True

    def release(self) -> None:
        self.permits = min(self.permits + 1, self.config.permitted_calls_in_half_open)

    def record(self, now: float, failed: bool, slow: bool) -> None:
        self.window.record(now, failed, slow)
        snap = self.window.snapshot(now)
        if snap.calls < self.config.permitted_calls_in_half_open:
            return
        target = State.OPEN if _exceeded(self.config, snap, snap.calls) else State.CLOSED
        self.machine._transition(target, now)

    def remaining_wait(self, now: float) -> float:
        # the trials are out: a verdict is near; the smallest honest Retry-After
        return 0.0 if self.permits > 0 else 1.0

    def snapshot(self, now: float) -> WindowSnapshot:
        return self.window.snapshot(now)


class DisabledState(BreakerState):
    state = State.DISABLED

    def acquire(self, now: float) -> bool:
        return True


class ForcedOpenState(BreakerState):
    state = State.FORCED_OPEN

    def acquire(self, now: float) -> bool:
        return False

    def remaining_wait(self, now: float) -> float:
        return self.config.wait_in_open  # unknown: an operator decides; suggest the usual wait


# --------------------------------------------------------------------------- machine


@dataclass(frozen=True, slots=True)
class Permit:
    """A permission to make one call: which state generation admitted it, and when."""

    generation: int
    started: float


class CircuitBreaker:
    """A named circuit breaker (thread-safe; usable from threads and event loops).

    Use :meth:`call` / :meth:`acall` / :meth:`guard`, or the low-level
    :meth:`acquire` + :meth:`on_success` / :meth:`on_error` / :meth:`release`.
    """

    def __init__(
        self,
        name: str,
        config: BreakerConfig | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name = name
        self.config = config or BreakerConfig()
        self.clock = clock
        self.events = EventPublisher()
        self._lock = threading.RLock()
        self._pending: list[BreakerEvent] = []
        self._generation = 0
        self._state: BreakerState = ClosedState(self)

    # ----------------------------------------------------------- inspection

    @property
    def state(self) -> State:
        return self._state.state

    def remaining_wait(self) -> float:
        """Seconds until a call may pass (0 in CLOSED/HALF_OPEN with trials left)."""
        with self._lock:
            return self._state.remaining_wait(self.clock())

    def snapshot(self) -> WindowSnapshot:
        """The current state's window (CLOSED: the sliding window; HALF_OPEN: the trials)."""
        with self._lock:
            return self._state.snapshot(self.clock())

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state.value}>"

    # ----------------------------------------------------------- transitions

    def _transition(self, to: State, now: float) -> None:
        """Move to ``to`` (under the lock). Raises IllegalStateTransition."""
        frm = self._state.state
        if (frm, to) not in LEGAL_TRANSITIONS:
            raise IllegalStateTransition(self.name, frm, to)
        new: BreakerState
        if to is State.CLOSED:
            new = ClosedState(self)
        elif to is State.OPEN:
            new = OpenState(self, now)
        elif to is State.HALF_OPEN:
            new = HalfOpenState(self)
        elif to is State.DISABLED:
            new = DisabledState(self)
        else:
            new = ForcedOpenState(self)
        self._state = new
        self._generation += 1
        self._pending.append(StateTransitionEvent(self.name, now, frm, to))

    def _manual(self, to: State) -> None:
        with self._lock:
            self._transition(to, self.clock())
        self._flush()

    def transition_to_open(self) -> None:
        self._manual(State.OPEN)

    def transition_to_half_open(self) -> None:
        self._manual(State.HALF_OPEN)

    def transition_to_closed(self) -> None:
        self._manual(State.CLOSED)

    def transition_to_disabled(self) -> None:
        self._manual(State.DISABLED)

    def transition_to_forced_open(self) -> None:
        self._manual(State.FORCED_OPEN)

    def reset(self) -> None:
        """Back to a fresh CLOSED state (empty window) from any state."""
        with self._lock:
            now = self.clock()
            frm = self._state.state
            self._state = ClosedState(self)
            self._generation += 1
            if frm is not State.CLOSED:
                self._pending.append(StateTransitionEvent(self.name, now, frm, State.CLOSED))
            self._pending.append(ResetEvent(self.name, now))
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for event in pending:
            self.events.publish(event)

    # ----------------------------------------------------------- low-level protocol

    def try_acquire(self) -> Permit | None:
        """A permission to call, or None (a :class:`NotPermittedEvent` is published)."""
        with self._lock:
            now = self.clock()
            if self._state.acquire(now):
                permit: Permit | None = Permit(self._generation, now)
            else:
                permit = None
                self._pending.append(
                    NotPermittedEvent(
                        self.name, now, self._state.state, self._state.remaining_wait(now)
                    )
                )
        self._flush()
        return permit

    def acquire(self) -> Permit:
        """A permission to call; raises :class:`CallNotPermittedError` when refused."""
        permit = self.try_acquire()
        if permit is None:
            with self._lock:
                state, wait = self._state.state, self._state.remaining_wait(self.clock())
            raise CallNotPermittedError(self.name, state, wait)
        return permit

    def on_success(self, permit: Permit) -> None:
        """Record that the call admitted by ``permit`` succeeded."""
        self._record(permit, None)

    def on_error(self, permit: Permit, exc: BaseException) -> None:
        """Record that the call admitted by ``permit`` raised ``exc`` (classified by
        ``config.is_failure``: a failure, or ignored and its permission released)."""
        self._record(permit, exc)

    def release(self, permit: Permit) -> None:
        """Give the permission back without an outcome (e.g. the caller was cancelled)."""
        with self._lock:
            if permit.generation == self._generation:
                self._state.release()

    def _record(self, permit: Permit, exc: BaseException | None) -> None:
        with self._lock:
            now = self.clock()
            duration = max(0.0, now - permit.started)
            slow = duration >= self.config.slow_call_duration
            current = permit.generation == self._generation
            if exc is not None and not self.config.is_failure(exc):
                if current:
                    self._state.release()
                ignored = IgnoredErrorEvent(self.name, now, duration, type(exc).__name__)
                self._pending.append(ignored)
            else:
                if exc is None:
                    self._pending.append(SuccessEvent(self.name, now, duration, slow))
                else:
                    self._pending.append(
                        ErrorEvent(
                            self.name,
                            now,
                            duration,
                            slow,
                            type(exc).__name__,
                            isinstance(exc, OperationTimeoutError),
                        )
                    )
                if current:
                    self._state.record(now, exc is not None, slow)
        self._flush()

    # ----------------------------------------------------------- conveniences

    @contextmanager
    def guard(self) -> Iterator[Permit]:
        """``with breaker.guard(): ...`` — acquire, run the block, record its outcome."""
        permit = self.acquire()
        try:
            yield permit
        except Exception as exc:
            self.on_error(permit, exc)
            raise
        except BaseException:
            self.release(permit)
            raise
        self.on_success(permit)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run blocking ``fn(*args, **kwargs)`` under the breaker.

        A blocking call cannot be cancelled from outside; bound it where it blocks (socket
        timeouts, the database's statement timeout — see ``updog.store.db``). Its duration
        still counts towards the slow-call rate.
        """
        with self.guard():
            return fn(*args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` under the breaker; past ``operation_timeout`` the
        task is cancelled (the awaited I/O really stops) and :class:`OperationTimeoutError`
        is raised and counted as a failure."""
        permit = self.acquire()
        timeout = self.config.operation_timeout
        try:
            if timeout is None:
                result = await fn(*args, **kwargs)
            else:
                try:
                    async with asyncio.timeout(timeout):
                        result = await fn(*args, **kwargs)
                except TimeoutError as exc:
                    raise OperationTimeoutError(self.name, timeout) from exc
        except Exception as exc:
            self.on_error(permit, exc)
            raise
        except BaseException:  # our own cancellation: no verdict on the dependency
            self.release(permit)
            raise
        self.on_success(permit)
        return result


# --------------------------------------------------------------------------- registry


class BreakerRegistry:
    """Named, shared breakers.

    ``configs`` maps a name (``"pg"``) or a name's prefix before ``:`` (``"http"`` for
    ``"http:api.example.com"``) to its configuration; other names get ``default``.
    :meth:`on_added` lets metrics attach to every breaker, present and future.
    """

    def __init__(
        self,
        default: BreakerConfig | None = None,
        *,
        configs: Mapping[str, BreakerConfig] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.default = default or BreakerConfig()
        self.configs = dict(configs or {})
        self.clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._listeners: list[Callable[[CircuitBreaker], None]] = []
        self._lock = threading.Lock()

    def config_for(self, name: str) -> BreakerConfig:
        if name in self.configs:
            return self.configs[name]
        return self.configs.get(name.partition(":")[0], self.default)

    def get(self, name: str, config: BreakerConfig | None = None) -> CircuitBreaker:
        """The breaker called ``name``, created on first use (``config`` applies then only)."""
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is not None:
                return breaker
            breaker = CircuitBreaker(name, config or self.config_for(name), clock=self.clock)
            self._breakers[name] = breaker
            listeners = list(self._listeners)
        for listener in listeners:
            listener(breaker)
        return breaker

    def find(self, name: str) -> CircuitBreaker | None:
        with self._lock:
            return self._breakers.get(name)

    def all(self) -> list[CircuitBreaker]:
        with self._lock:
            return sorted(self._breakers.values(), key=lambda b: b.name)

    def on_added(self, listener: Callable[[CircuitBreaker], None]) -> None:
        """Call ``listener(breaker)`` for every breaker, existing and future."""
        with self._lock:
            self._listeners.append(listener)
            existing = list(self._breakers.values())
        for breaker in existing:
            listener(breaker)
