"""A circuit breaker for the shadow: stop sending copies to a shadow that keeps failing.

A shadow that fails fast (refusing, resetting, answering garbage) frees its
in-flight slot at once, so the cap does not limit it, and every copy costs a new
TCP connection on the event loop that serves the primary (measured: up to 22%
of primary throughput, benchmarks/isolation.py). After `threshold` failures in a
row the breaker opens: copies are skipped (counted `shadow_unhealthy`) for
`cooldown` seconds. Then one copy is let through as a probe: a success closes
the breaker, a failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Breaker:
    def __init__(self, threshold: int, cooldown: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = threshold  # 0: never opens
        self._cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._open_until > 0.0

    def allow(self) -> bool:
        """Whether to send a copy now. While open, only one probe after the cooldown."""
        if not self._open_until:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True
        return True

    def record(self, ok: bool) -> None:
        """The outcome of one shadow exchange."""
        if ok:
            self._failures, self._open_until, self._probing = 0, 0.0, False
            return
        self._failures += 1
        if self._probing or (self._threshold and self._failures >= self._threshold):
            self._open_until = self._clock() + self._cooldown
            self._probing = False
