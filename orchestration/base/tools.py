"""Generator tools: what a collection names, and what turns a piece's parameters into output.

A tool's ``run`` returns a ``ToolOutput`` (done), or ``Submitted`` (the outcome comes later,
by webhook or polling), or raises ``ToolFailure`` (retryable or permanent). Every outcome,
from whichever path, reaches the orchestrator's one completion function. Built-in tools are
here; configured providers (``providers.py``) add theirs to the same ``Toolbox``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.errors import Problem

MAX_TEST_LATENCY_MS = 60_000
MAX_TEST_DUPLICATES = 5


@dataclass(frozen=True)
class MediaRef:
    """A stored file: content-addressed by its SHA-256."""

    sha256: str
    content_type: str
    size: int


@dataclass(frozen=True)
class ToolOutput:
    text: str
    cost_micros: int = 0  # exact cost in millionths of a US dollar
    media: tuple[MediaRef, ...] = ()


@dataclass(frozen=True)
class Submitted:
    """The provider accepted the job and reports its outcome later, by webhook or when
    polled, through the orchestrator's completion function."""

    run_id: str
    poll: bool = False  # poll the provider for the outcome (besides any webhook)
    # The attempt fails if no outcome arrives by then; None: the piece's lease decides.
    deadline_seconds: float | None = None


class InputType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ANY = "any"


@dataclass(frozen=True)
class ToolInput:
    name: str
    type: InputType
    required: bool = False
    description: str = ""


class ToolFailure(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class OutputUnavailable(ToolFailure):
    """The provider has an output that cannot be fetched just now (a timeout, 429 or 5xx):
    the run stays pending, to be fetched again by the next poll or webhook delivery."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=True)


@dataclass(frozen=True)
class ToolCall:
    job_key: str  # "cookId:index", stable across attempts: an idempotency key for providers
    attempt: int
    params: Any


@dataclass(frozen=True)
class WebhookReport:
    """What one webhook delivery says about a run."""

    run_id: str
    status: str
    final: bool  # the run ended (success or failure); otherwise a progress update
    failure: str | None = None  # why it failed, for a final failure


@dataclass(frozen=True)
class Webhooks:
    """How a provider's webhooks are verified and read."""

    secret: str
    read: Callable[[Any], WebhookReport]  # raises ValueError on a malformed body
    finish: Callable[[Any], Awaitable[ToolOutput]]  # a final success's output (fetches media)


type Poll = Callable[[str], Awaitable[ToolOutput | None]]  # None: not done; ToolFailure: failed


@dataclass(frozen=True)
class ToolSpec:
    id: str
    description: str
    run: Callable[[ToolCall], Awaitable[ToolOutput | Submitted]]
    # How many times the runner reports each outcome: the test tool simulates providers that
    # deliver one completion through several paths at once.
    deliveries: Callable[[ToolCall], int] = lambda _: 1
    inputs: tuple[ToolInput, ...] = ()
    open_inputs: bool = True  # other parameters than ``inputs`` are passed through
    kind: str = "builtin"
    poll: Poll | None = None
    webhooks: Webhooks | None = None

    def check_params(self, params: Any, path: str) -> list[Problem]:
        """A template (or step parameters) against the declared inputs. ``[[...]]``
        placeholders fill in strings, so a string with one satisfies any type."""
        if not isinstance(params, dict):
            return [Problem(path, "must be a JSON object")]
        problems = []
        declared = {i.name: i for i in self.inputs}
        for name, wanted in declared.items():
            if wanted.required and name not in params:
                problems.append(Problem(f"{path}.{name}", f"is required by the tool {self.id!r}"))
        for name, value in params.items():
            spec = declared.get(name)
            if spec is None:
                if not self.open_inputs:
                    known = ", ".join(sorted(declared)) or "none"
                    problems.append(
                        Problem(f"{path}.{name}", f"is not an input of {self.id!r} ({known})")
                    )
            elif not _fits(value, spec.type):
                problems.append(Problem(f"{path}.{name}", f"must be a {spec.type.value}"))
        return problems


def _fits(value: Any, type: InputType) -> bool:
    if type is InputType.ANY or (isinstance(value, str) and "[[" in value):
        return True
    if type is InputType.STRING:
        return isinstance(value, str)
    if type is InputType.NUMBER:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, bool)


class Toolbox:
    """The tools this deployment offers: the built-ins and the configured providers'."""

    def __init__(self, specs: list[ToolSpec]) -> None:
        self._specs = {s.id: s for s in specs}
        if len(self._specs) != len(specs):
            raise ValueError("two tools share an id")

    def get(self, tool_id: str) -> ToolSpec | None:
        return self._specs.get(tool_id)

    def __contains__(self, tool_id: str) -> bool:
        return tool_id in self._specs

    def all(self) -> list[ToolSpec]:
        return list(self._specs.values())


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


def _number(name: str, description: str) -> ToolInput:
    return ToolInput(name, InputType.NUMBER, description=description)


BUILTIN_TOOLS = (
    ToolSpec("prompt", "Renders the filled template to text; completes at once.", _prompt),
    ToolSpec(
        "test",
        "For tests and benchmarks: completes after `latencyMs`, fails at `failureRate` "
        "(retryable) or `permanentFailureRate`, costs `costMicros`, and delivers each "
        "outcome `duplicates` times; all read from the piece's parameters.",
        _test,
        _test_deliveries,
        inputs=(
            ToolInput("prompt", InputType.ANY, description="the text to return"),
            _number("latencyMs", f"0 to {MAX_TEST_LATENCY_MS}"),
            _number("failureRate", "0 to 1: retryable failures"),
            _number("permanentFailureRate", "0 to 1: permanent failures"),
            _number("costMicros", "cost of a success, in millionths of a dollar"),
            _number("duplicates", f"1 to {MAX_TEST_DUPLICATES}: deliveries of each outcome"),
        ),
    ),
)
