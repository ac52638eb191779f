"""When a failed delivery is tried again: capped exponential backoff with jitter.

After the n-th failed attempt the next comes after ``uniform(d/2, d)`` seconds, where
``d = min(cap, base * 2^(n-1))`` ("equal jitter": never sooner than half the nominal delay, so
a struggling receiver is not hammered, and receivers failing together do not retry together).
After ``max_attempts`` attempts the delivery is marked failed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetrySchedule:
    base_seconds: float = 60.0
    cap_seconds: float = 7200.0
    max_attempts: int = 12

    def nominal(self, failed_attempts: int) -> float:
        """The delay's ceiling after ``failed_attempts`` failures (1, 2, ...)."""
        return min(self.cap_seconds, self.base_seconds * 2.0 ** (failed_attempts - 1))

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float | None:
        """Seconds until the next attempt, or None when the schedule is exhausted."""
        if failed_attempts >= self.max_attempts:
            return None
        ceiling = self.nominal(failed_attempts)
        return (rng or random).uniform(ceiling / 2, ceiling)

    def total_nominal(self) -> float:
        """The whole schedule's span at its ceilings (from the first attempt to the last)."""
        return sum(self.nominal(n) for n in range(1, self.max_attempts))
