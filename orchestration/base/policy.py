"""Tunable orchestration numbers (from settings), and the retry backoff."""

from __future__ import annotations

import random
from dataclasses import dataclass

MAX_COOK_COUNT = 100_000
SEED_BOUND = 2**31 - 1  # GraphQL Int
MAX_ATTEMPTS = 20  # the highest COOK_MAX_ATTEMPTS


@dataclass(frozen=True)
class CookPolicy:
    max_concurrent_cap: int = 32
    default_max_concurrent: int = 3
    max_attempts: int = 3
    backoff_base_seconds: float = 1.0
    backoff_cap_seconds: float = 60.0
    lease_seconds: float = 60.0
    tick_seconds: float = 0.5

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Capped exponential backoff with full jitter: uniform(0, min(cap, base * 2^(n-1)))."""
        ceiling = min(self.backoff_cap_seconds, self.backoff_base_seconds * 2 ** (attempt - 1))
        return (rng or random).uniform(0, ceiling)

    @property
    def tool_timeout_seconds(self) -> float:
        """A tool call must end well inside its lease, so the sweeper never races a live call."""
        return self.lease_seconds * 0.8


def default_max_failures(count: int) -> int:
    return max(3, count // 10)
