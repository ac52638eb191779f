"""A subscription event executed once for all of its subscribers in this process.

The progress feed hands one cook event to every subscriber of the cook in this process as one
``Progress`` object, and ``shared_payload`` turns it into one ``CookProgress`` for all of them.
Executing a subscription's selection set on that payload is then a function of the payload,
the operation and the variables alone: the payload's types (``SHAREABLE``) hold plain data, no
field of them reads the caller or the context, and who may follow the cook was checked when
each subscription began. So ``SharedEventExecutor`` keeps the result of the first subscriber's
execution and hands it to every other subscriber with the same operation (the document cache
gives one text one parsed document) and the same variables. A thousand subscribers of one cook
cost one execution per event instead of a thousand (it was about half of the API's CPU in
bench section 3).

Nothing here is state: both caches are bounded LRUs keyed by identity, each entry holding the
objects whose identity it uses (so an id cannot be reused while its entry lives), and a miss
executes exactly what a hit returns. Results with errors are never shared, so each subscriber
still has its errors processed and logged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from graphql import ExecutionResult

from schema.cook_types import CookProgress
from schema.document_cache import Lru
from schema.plain_fields import PlainFieldExecutor

SHAREABLE: tuple[type, ...] = (CookProgress,)  # payload types whose fields are plain data
EVENTS = 1024  # events (and their results) kept

_payloads: Lru[int, tuple[object, object]] = Lru(EVENTS)
_results: Lru[tuple[int, int, str], tuple[object, object, ExecutionResult]] = Lru(EVENTS)


def shared_payload[S, P](source: S, build: Callable[[S], P]) -> P:
    """``build(source)``, built once per ``source`` object for every subscriber it reaches."""
    found = _payloads.get(id(source))
    if found is not None and found[0] is source:
        payload: P = found[1]  # type: ignore[assignment]
        return payload
    payload = build(source)
    _payloads.put(id(source), (source, payload))
    return payload


class SharedEventExecutor(PlainFieldExecutor):
    """Strawberry's executor; a subscription event with a ``SHAREABLE`` payload is executed
    once per operation and variables, its result shared by every subscriber."""

    _operation_key: tuple[int, str] | None = None  # a subscription's operation and variables
    _event_key: tuple[int, int, str] | None = None

    def build_per_event_executor(self, payload: Any) -> Any:
        if not isinstance(payload, SHAREABLE):
            return super().build_per_event_executor(payload)
        if self._operation_key is None:
            variables = json.dumps(self.variable_values.coerced, sort_keys=True, default=repr)
            self._operation_key = (id(self.operation), variables)
        key = (id(payload), *self._operation_key)
        found = _results.get(key)
        if found is not None and found[0] is payload and found[1] is self.operation:
            return _Executed(found[2])  # no copy of this executor, no execution
        executor = super().build_per_event_executor(payload)
        assert isinstance(executor, SharedEventExecutor)
        executor._event_key = key
        return executor

    def execute_operation(self, *args: Any, **kwargs: Any) -> Any:
        result = super().execute_operation(*args, **kwargs)
        key = self._event_key
        if key is not None and isinstance(result, ExecutionResult) and not result.errors:
            _results.put(key, (self.root_value, self.operation, result))
        return result


class _Executed:
    """Stands in for a per-event executor whose event was executed already (graphql-core asks
    it only to ``execute_operation``)."""

    def __init__(self, result: ExecutionResult) -> None:
        self._result = result

    def execute_operation(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        return self._result
