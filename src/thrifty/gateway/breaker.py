"""A circuit breaker per upstream: closed -> open after K failures in a window -> half-open probe.

Closed: every request goes through; failures are timestamped. K failures within `window_s`
open the circuit: requests fail fast (or fall back) for `cooldown_s`. Then one probe is let
through (half-open): success closes the circuit, failure opens it again for another cooldown.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import IntEnum


class State(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failures: int = 5,
        window_s: float = 30.0,
        cooldown_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures: deque[float] = deque()
        self._opened_at = 0.0
        self._probing = False
        self._state = State.CLOSED

    @property
    def state(self) -> State:
        if self._state is State.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            return State.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """May a request go to this upstream now? In half-open, only one probe at a time."""
        state = self.state
        if state is State.CLOSED:
            return True
        if state is State.HALF_OPEN and not self._probing:
            self._probing = True
            self._state = State.HALF_OPEN
            return True
        return False

    def record_success(self) -> None:
        self._probing = False
        if self._state is not State.CLOSED:
            self._state = State.CLOSED
            self._failures.clear()

    def record_failure(self) -> None:
        now = self._clock()
        if self._probing or self._state is State.HALF_OPEN:
            self._trip(now)
            return
        self._failures.append(now)
        while self._failures and now - self._failures[0] > self.window_s:
            self._failures.popleft()
        if len(self._failures) >= self.threshold:
            self._trip(now)

    def release(self) -> None:
        """A probe ended without a verdict (e.g. the client went away): let another try."""
        self._probing = False

    def _trip(self, now: float) -> None:
        self._state = State.OPEN
        self._opened_at = now
        self._probing = False
        self._failures.clear()
