"""Provider runs: a job a provider accepted and will finish later, by webhook or by polling.

A run's ``_id`` is ``provider:runId``, so the provider's run id maps to exactly one piece
attempt (or spell step). A run is resolved once, by a conditional update from ``pending`` to
``done``; whichever path reports second (the webhook or the poller, or a repeated delivery)
matches nothing. Polling is claimed per run with a conditional update of ``pollAt``, so every
process may run the poller and each due run is asked by one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from orchestration.base import clock
from orchestration.base.indexes import ensure_indexes
from orchestration.base.tools import MediaRef
from orchestration.cooking.pieces import Failure, Outcome, Success

type Document = dict[str, Any]

POLL_BACKOFF_CAP_SECONDS = 30.0


@dataclass(frozen=True)
class Run:
    key: str
    provider: str
    run_id: str
    piece_id: str
    cook_id: str
    attempt: int
    step: int | None  # the spell step (from 1), or None when the run is the whole attempt
    done: bool
    outcome: Outcome | None
    deadline: datetime


def run_key(provider: str, run_id: str) -> str:
    return f"{provider}:{run_id}"


class RunStore:
    def __init__(self, db: AsyncDatabase[Document], poll_seconds: float) -> None:
        self._runs = db["runs"]
        self._poll_seconds = poll_seconds

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [
            IndexModel([("status", ASCENDING), ("pollAt", ASCENDING)], name="due_polls"),
            IndexModel([("status", ASCENDING), ("deadline", ASCENDING)], name="deadlines"),
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._runs, self.indexes())

    async def register(
        self,
        provider: str,
        run_id: str,
        *,
        piece_id: str,
        cook_id: str,
        attempt: int,
        step: int | None,
        poll: bool,
        deadline_seconds: float,
    ) -> Run:
        """Raises DuplicateKeyError if the provider gave the same run id twice."""
        at = clock.now()
        doc: Document = {
            "_id": run_key(provider, run_id),
            "provider": provider,
            "runId": run_id,
            "pieceId": piece_id,
            "cookId": cook_id,
            "attempt": attempt,
            "step": step,
            "status": "pending",
            "deadline": at + timedelta(seconds=deadline_seconds),
            "createdAt": at,
        }
        if poll:
            doc["pollAt"] = at + timedelta(seconds=self._poll_seconds)
            doc["polls"] = 0
        await self._runs.insert_one(doc)
        return _from_doc(doc)

    async def get(self, key: str) -> Run | None:
        doc = await self._runs.find_one({"_id": key})
        return None if doc is None else _from_doc(doc)

    async def note_status(self, key: str, status: str) -> Run | None:
        """Record a progress status once per change; None if the run is done or unchanged."""
        doc = await self._runs.find_one_and_update(
            {"_id": key, "status": "pending", "lastStatus": {"$ne": status}},
            {"$set": {"lastStatus": status}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _from_doc(doc)

    async def resolve(self, key: str, outcome: Outcome) -> Run | None:
        """Record the run's outcome; None if it was already resolved (this report is late)."""
        doc = await self._runs.find_one_and_update(
            {"_id": key, "status": "pending"},
            {
                "$set": {"status": "done", "outcome": _outcome_doc(outcome), "doneAt": clock.now()},
                "$unset": {"pollAt": ""},
            },
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _from_doc(doc)

    async def mark_applied(self, key: str) -> None:
        await self._runs.update_one({"_id": key}, {"$set": {"applied": True}})

    async def unapplied(self, older_than_seconds: float, limit: int = 100) -> list[Run]:
        """Whole-attempt runs resolved but not yet applied to their piece: the process that
        resolved one stopped before completing the piece."""
        cutoff = clock.now() - timedelta(seconds=older_than_seconds)
        cursor = self._runs.find(
            {"status": "done", "step": None, "applied": {"$ne": True}, "doneAt": {"$lt": cutoff}}
        ).limit(limit)
        return [_from_doc(d) async for d in cursor]

    async def claim_poll(self) -> Run | bool | None:
        """A pending run due to be polled, pushed back by its backoff so no one else asks it
        meanwhile; None when none is due, False when another process claimed it first."""
        at = clock.now()
        doc = await self._runs.find_one(
            {"status": "pending", "pollAt": {"$lte": at}, "deadline": {"$gt": at}},
            {"polls": 1, "pollAt": 1},
            sort=[("pollAt", 1)],
        )
        if doc is None:
            return None
        delay = min(self._poll_seconds * 2 ** min(doc["polls"], 10), POLL_BACKOFF_CAP_SECONDS)
        claimed = await self._runs.find_one_and_update(
            {"_id": doc["_id"], "status": "pending", "pollAt": doc["pollAt"]},
            {"$set": {"pollAt": at + timedelta(seconds=delay)}, "$inc": {"polls": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return False if claimed is None else _from_doc(claimed)

    async def overdue(self, limit: int = 100) -> list[Run]:
        cursor = self._runs.find({"status": "pending", "deadline": {"$lt": clock.now()}}).limit(
            limit
        )
        return [_from_doc(d) async for d in cursor]


def _outcome_doc(outcome: Outcome) -> Document:
    if isinstance(outcome, Success):
        return {
            "ok": True,
            "text": outcome.text,
            "costMicros": outcome.cost_micros,
            "media": [vars(m) for m in outcome.media],
        }
    return {"ok": False, "reason": outcome.reason, "retryable": outcome.retryable}


def outcome_from_doc(doc: Document) -> Outcome:
    if doc["ok"]:
        media = tuple(MediaRef(**m) for m in doc.get("media", []))
        return Success(doc["text"], doc["costMicros"], media)
    return Failure(doc["reason"], doc["retryable"])


def _from_doc(doc: Document) -> Run:
    return Run(
        key=doc["_id"],
        provider=doc["provider"],
        run_id=doc["runId"],
        piece_id=doc["pieceId"],
        cook_id=doc["cookId"],
        attempt=doc["attempt"],
        step=doc.get("step"),
        done=doc["status"] == "done",
        outcome=outcome_from_doc(doc["outcome"]) if "outcome" in doc else None,
        deadline=doc["deadline"],
    )
