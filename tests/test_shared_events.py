"""A cook event reaching many subscribers of one process is executed once per operation and
variables (``schema/shared_events.py``), and each subscriber still gets exactly its own
selection."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from graphql import DocumentNode, ExecutionResult, parse

from orchestration.cooking.cooks import CookStatus
from orchestration.cooking.events import EventType
from schema.cook_types import CookEvent, CookNumbers, CookProgress
from schema.schema import schema
from schema.shared_events import SharedEventExecutor, shared_payload

PROGRESS = parse(
    "subscription($id: ID!, $after: Int) { cookProgress(cookId: $id, afterSeq: $after) "
    "{ seq status event { seq type } numbers { completed live } } }"
)
SMALL = parse("subscription($id: ID!) { cookProgress(cookId: $id) { seq } }")


def progress(seq: int) -> CookProgress:
    at = datetime(2026, 12, 4, tzinfo=UTC)
    event = CookEvent(
        seq=seq,
        type=EventType.PIECE_COMPLETED,
        at=at,
        piece_id=None,
        index=0,
        attempt=1,
        detail=None,
    )
    numbers = CookNumbers(
        in_flight=0,
        retrying=0,
        completed=seq,
        accepted=0,
        rejected=0,
        pending_review=seq,
        failed=0,
        cancelled=0,
        live=seq,
        cost_usd=Decimal(0),
    )
    return CookProgress(
        seq=seq, event=event, status=CookStatus.RUNNING, count=9, max_concurrent=2, numbers=numbers
    )


@pytest.fixture
def executions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the selection sets actually executed (the shared ones are not)."""
    ran: list[int] = []
    base = SharedEventExecutor.__mro__[1].execute_operation

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        ran.append(1)
        return base(self, *args, **kwargs)

    monkeypatch.setattr(SharedEventExecutor.__mro__[1], "execute_operation", counted)
    return ran


def deliver(document: DocumentNode, variables: dict[str, Any], payload: object) -> Any:
    """What one subscriber's stream does with one event."""
    executor = SharedEventExecutor.build(schema._schema, document, raw_variable_values=variables)
    assert isinstance(executor, SharedEventExecutor), executor
    result = executor.build_per_event_executor(payload).execute_operation(False)
    assert isinstance(result, ExecutionResult)
    assert not result.errors, result
    return result.data


def test_an_event_is_executed_once_for_every_subscriber_with_the_same_operation_and_variables(
    executions: list[int],
) -> None:
    event = progress(1)
    same = [deliver(PROGRESS, {"id": "ck_1"}, event) for _ in range(5)]
    assert len(executions) == 1
    assert same[0]["cookProgress"] == {
        "seq": 1,
        "status": "RUNNING",
        "event": {"seq": 1, "type": "PIECE_COMPLETED"},
        "numbers": {"completed": 1, "live": 1},
    }
    assert all(data == same[0] for data in same)
    # Another selection, or other variables, is executed for itself.
    assert deliver(SMALL, {"id": "ck_1"}, event) == {"cookProgress": {"seq": 1}}
    assert deliver(PROGRESS, {"id": "ck_1", "after": 0}, event) == same[0]
    assert len(executions) == 3
    # The next event is executed again, even if it is equal to the last one.
    assert deliver(PROGRESS, {"id": "ck_1"}, progress(1)) == same[0]
    assert len(executions) == 4


def test_one_progress_object_becomes_one_payload_for_all_of_its_subscribers() -> None:
    source, twin = object(), object()
    built: list[object] = []

    def build(s: object) -> CookProgress:
        built.append(s)
        return progress(len(built))

    payloads = [shared_payload(source, build) for _ in range(3)]
    assert len(built) == 1
    assert all(p is payloads[0] for p in payloads)
    assert shared_payload(twin, build) is not payloads[0]
