"""What is in scope for logs and traces: the request, cook, piece and collection ids, and the
tracer (None until the service turns tracing on, so an untraced process makes no span at all).

The ids live in context variables, so each asyncio task (a request, a piece's attempt) sees its
own; the JSON log formatter reads them. The decorators here are the one-line hooks the
orchestration code wears: a piece attempt and a tool (provider) call get a span, their ids in
scope, and their metrics.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from opentelemetry.trace import Tracer

from orchestration.base import metrics

log = logging.getLogger("cook.orchestrator")

request_id: ContextVar[str | None] = ContextVar("cook_request_id", default=None)
cook_id: ContextVar[str | None] = ContextVar("cook_cook_id", default=None)
piece_id: ContextVar[str | None] = ContextVar("cook_piece_id", default=None)
collection_id: ContextVar[str | None] = ContextVar("cook_collection_id", default=None)

_tracer: Tracer | None = None


def use_tracer(tracer: Tracer | None) -> None:
    """Set by the service when tracing is configured (and reset to None when it stops)."""
    global _tracer
    _tracer = tracer


def in_scope() -> dict[str, str]:
    """The ids in scope now, by their log field names."""
    found = {
        "request_id": request_id.get(),
        "cook_id": cook_id.get(),
        "piece_id": piece_id.get(),
        "collection_id": collection_id.get(),
    }
    return {k: v for k, v in found.items() if v is not None}


@contextmanager
def _span(name: str, attributes: dict[str, str]) -> Iterator[None]:
    if _tracer is None:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield


class _CookLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def collection_id(self) -> str: ...


class _PieceLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def created_at(self) -> Any: ...


def attempt[S, C: _CookLike, P: _PieceLike](
    run: Callable[[S, C, P], Coroutine[Any, Any, None]],
) -> Callable[[S, C, P], Coroutine[Any, Any, None]]:
    """Wraps ``Attempts.run``: the ids in scope, a ``piece.attempt`` span, the queue wait."""

    @functools.wraps(run)
    async def wrapped(self: S, cook: C, piece: P) -> None:
        tokens = (
            cook_id.set(cook.id),
            piece_id.set(piece.id),
            collection_id.set(cook.collection_id),
        )
        try:
            metrics.attempt_started(piece.attempt, piece.created_at)
            attributes = {"cook.id": cook.id, "piece.id": piece.id, "piece.attempt": piece.attempt}
            with _span("piece.attempt", attributes):  # type: ignore[arg-type]
                await run(self, cook, piece)
        finally:
            collection_id.reset(tokens[2])
            piece_id.reset(tokens[1])
            cook_id.reset(tokens[0])

    return wrapped


def tool_call[S, R](
    call: Callable[[S, Any, str, Any], Coroutine[Any, Any, R]],
) -> Callable[[S, Any, str, Any], Coroutine[Any, Any, R]]:
    """Wraps ``Attempts._run_tool(spec, tool_id, ...)``: a ``provider.call`` span and the
    provider metrics (outcome ``ok``, ``submitted``, ``retryable`` or ``failed``)."""

    @functools.wraps(call)
    async def wrapped(self: S, spec: Any, tool_id: str, tool_call: Any) -> R:
        began = time.perf_counter()
        outcome = "failed"
        attributes = {"provider": tool_id}
        if (cook := cook_id.get()) is not None:
            attributes["cook.id"] = cook
        if (piece := piece_id.get()) is not None:
            attributes["piece.id"] = piece
        try:
            with _span("provider.call", attributes):
                result = await call(self, spec, tool_id, tool_call)
            outcome = "submitted" if type(result).__name__ == "Submitted" else "ok"
            return result
        except Exception as exc:
            outcome = "retryable" if getattr(exc, "retryable", False) else "failed"
            log.info("tool %s: the call failed (%s): %s", tool_id, outcome, exc)
            raise
        finally:
            # An unknown tool id is not configured: one fixed label, never the caller's text.
            provider = tool_id if spec is not None else "unknown"
            metrics.provider_call(provider, outcome, time.perf_counter() - began)

    return wrapped
