"""The per-cook event log: strictly increasing ``seq`` per cook, no duplicates.

A sequence number comes from ``$inc`` on the cook document, made in the same single-document
update as the cook transition it records where there is one, and the event's ``_id`` is
``cookId:seq``, so an event can never be written twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from orchestration import clock

type Document = dict[str, Any]

MAX_EVENTS_PAGE = 500


class EventType(StrEnum):
    COOK_STARTED = "cook_started"
    COOK_PAUSED = "cook_paused"
    COOK_RESUMED = "cook_resumed"
    COOK_CANCELLING = "cook_cancelling"
    COOK_CANCELLED = "cook_cancelled"
    COOK_COMPLETED = "cook_completed"
    COOK_FAILED = "cook_failed"
    PIECE_SUBMITTED = "piece_submitted"
    PIECE_PROGRESS = "piece_progress"  # a provider's progress update (queued, running...)
    PIECE_COMPLETED = "piece_completed"
    PIECE_RETRYING = "piece_retrying"
    PIECE_FAILED = "piece_failed"
    PIECE_REJECTED = "piece_rejected"


@dataclass(frozen=True)
class Event:
    cook_id: str
    seq: int
    type: EventType
    at: datetime
    piece_id: str | None
    index: int | None
    attempt: int | None
    detail: str | None


class EventLog:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._events = db["cook_events"]
        self._cooks = db["cooks"]

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [IndexModel([("cookId", ASCENDING), ("seq", ASCENDING)], name="cook_seq")]

    async def ensure_indexes(self) -> None:
        await self._events.create_indexes(self.indexes())

    async def next_seq(self, cook_id: str) -> int:
        doc = await self._cooks.find_one_and_update(
            {"_id": cook_id},
            {"$inc": {"lastSeq": 1}},
            projection={"lastSeq": 1},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise LookupError(cook_id)
        seq: int = doc["lastSeq"]
        return seq

    async def write(
        self,
        cook_id: str,
        seq: int,
        type: EventType,
        *,
        piece_id: str | None = None,
        index: int | None = None,
        attempt: int | None = None,
        detail: str | None = None,
    ) -> None:
        await self._events.insert_one(
            {
                "_id": f"{cook_id}:{seq:010d}",
                "cookId": cook_id,
                "seq": seq,
                "type": type.value,
                "at": clock.now(),
                "pieceId": piece_id,
                "index": index,
                "attempt": attempt,
                "detail": detail,
            }
        )

    async def append(self, cook_id: str, type: EventType, **fields: Any) -> None:
        """Record an event that has no cook transition of its own (a piece's)."""
        await self.write(cook_id, await self.next_seq(cook_id), type, **fields)

    async def between(self, cook_id: str, after_seq: int, upto_seq: int) -> AsyncIterator[Event]:
        """Events with ``after_seq < seq <= upto_seq``, in order, read a page at a time."""
        while after_seq < upto_seq:
            page = await self.after(cook_id, after_seq, min(MAX_EVENTS_PAGE, upto_seq - after_seq))
            for event in page:
                if event.seq > upto_seq:
                    return
                yield event
            if not page:
                return
            after_seq = page[-1].seq

    async def wait_for_inserts(
        self, on_open: Callable[[], None], on_insert: Callable[[], None]
    ) -> None:
        """Call ``on_insert`` for each event written by any process, through a change stream.

        Runs until cancelled; raises ``PyMongoError`` where the database has no change streams.
        """
        async with await self._events.watch([{"$match": {"operationType": "insert"}}]) as stream:
            on_open()
            async for _ in stream:
                on_insert()

    async def after(self, cook_id: str, after_seq: int, limit: int) -> list[Event]:
        cursor = (
            self._events.find({"cookId": cook_id, "seq": {"$gt": after_seq}})
            .sort("seq", ASCENDING)
            .limit(limit)
        )
        return [
            Event(
                cook_id=d["cookId"],
                seq=d["seq"],
                type=EventType(d["type"]),
                at=d["at"],
                piece_id=d.get("pieceId"),
                index=d.get("index"),
                attempt=d.get("attempt"),
                detail=d.get("detail"),
            )
            async for d in cursor
        ]
