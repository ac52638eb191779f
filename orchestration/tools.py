"""Generator tools: what a collection names, and what turns a piece's parameters into output.

A tool's ``run`` returns a ``ToolOutput`` (done), or ``Submitted`` (the outcome comes later),
or raises ``ToolFailure`` (retryable or permanent).
Every outcome, from whichever path, reaches the orchestrator's one completion function.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

MAX_TEST_LATENCY_MS = 60_000
MAX_TEST_DUPLICATES = 5


@dataclass(frozen=True)
class ToolOutput:
    text: str
    cost_micros: int = 0  # exact cost in millionths of a US dollar


@dataclass(frozen=True)
class Submitted:
    """The tool accepted the job and will report its outcome later (a webhook or a poll),
    through the orchestrator's completion function."""

    run_id: str


class ToolFailure(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


@dataclass(frozen=True)
class ToolCall:
    job_key: str  # "cookId:index", stable across attempts: an idempotency key for providers
    attempt: int
    params: Any


@dataclass(frozen=True)
class ToolSpec:
    id: str
    description: str
    run: Callable[[ToolCall], Awaitable[ToolOutput | Submitted]]
    # How many times the runner reports each outcome: the test tool simulates providers that
    # deliver one completion through several paths at once.
    deliveries: Callable[[ToolCall], int] = lambda _: 1


def render_text(params: Any) -> str:
    """A template with one string value renders as that string; anything else as JSON."""
    if isinstance(params, dict) and len(params) == 1:
        (only,) = params.values()
        if isinstance(only, str):
            return only
    return json.dumps(params, sort_keys=True, ensure_ascii=False)


async def _prompt(call: ToolCall) -> ToolOutput:
    return ToolOutput(render_text(call.params))


def _setting(params: Any, key: str, default: float, low: float, high: float) -> float:
    value = params.get(key, default) if isinstance(params, dict) else default
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(max(float(value), low), high)


def _chance(call: ToolCall, salt: str) -> float:
    """A reproducible number in [0, 1) for this attempt: tests can predict outcomes."""
    digest = hashlib.sha256(f"{salt}:{call.job_key}:{call.attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


async def _test(call: ToolCall) -> ToolOutput:
    """Configured by the piece's parameters: ``latencyMs``, ``failureRate``,
    ``permanentFailureRate``, ``costMicros``, ``duplicates``. Outcomes are a function of the
    job key and attempt, so a test can predict them."""
    p = call.params
    await asyncio.sleep(_setting(p, "latencyMs", 0, 0, MAX_TEST_LATENCY_MS) / 1000)
    if _chance(call, "permanent") < _setting(p, "permanentFailureRate", 0, 0, 1):
        raise ToolFailure("test tool: permanent failure", retryable=False)
    if _chance(call, "transient") < _setting(p, "failureRate", 0, 0, 1):
        raise ToolFailure("test tool: transient failure", retryable=True)
    cost = int(_setting(p, "costMicros", 0, 0, 10**9))
    return ToolOutput(render_text(p.get("prompt", p) if isinstance(p, dict) else p), cost)


def _test_deliveries(call: ToolCall) -> int:
    return int(_setting(call.params, "duplicates", 1, 1, MAX_TEST_DUPLICATES))


TOOLS: dict[str, ToolSpec] = {
    spec.id: spec
    for spec in (
        ToolSpec("prompt", "Renders the filled template to text; completes at once.", _prompt),
        ToolSpec(
            "test",
            "For tests and benchmarks: completes after `latencyMs`, fails at `failureRate` "
            "(retryable) or `permanentFailureRate`, costs `costMicros`, and delivers each "
            "outcome `duplicates` times; all read from the piece's parameters.",
            _test,
            _test_deliveries,
        ),
    )
}
