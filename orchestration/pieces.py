"""Pieces: what a cook generates. Every transition is one conditional update on one piece.

The limits live on the piece documents themselves, under unique indexes, so the database
refuses whichever writer comes second, in any process:

- ``slot = "cookId:k"`` (k < maxConcurrent) while the piece is in flight;
- ``seat = "cookId:s"`` (s < count) while it is live: in flight, waiting to retry, or completed
  and not rejected. A rejection or a final failure gives the seat back, so a replacement can
  take it;
- ``indexKey = "collectionId:index"``: piece indexes are unique per collection;
- ``combo = "collectionId:<hash of all traits>"`` while live, for collections that want unique
  trait combinations; it is released with the seat.

An attempt's outcome is applied only if the piece is still running that same attempt
(``status: running, attempt: N`` in the filter): a duplicate, late or out-of-order completion
matches nothing and changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from auth.principal import Principal
from orchestration import clock
from orchestration.engine import ChosenTrait, Draw
from orchestration.ids import AccountId, new_id
from orchestration.policy import CookPolicy
from orchestration.scope import owned

type Document = dict[str, Any]

ID_PREFIX = "pc"
# What a piece gives back when it stops being live: its seat and its trait combination.
RELEASE_PLACE = {"seat": "", "combo": ""}


class PieceStatus(StrEnum):
    RUNNING = "running"  # in flight: holds a slot and a seat
    RETRYING = "retrying"  # waiting for its next attempt: holds a seat
    COMPLETED = "completed"  # holds a seat unless rejected
    FAILED = "failed"  # gave up: holds nothing
    CANCELLED = "cancelled"  # its cook ended before it could run again: holds nothing


class Review(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Success:
    text: str
    cost_micros: int


@dataclass(frozen=True)
class Failure:
    reason: str
    retryable: bool


type Outcome = Success | Failure


@dataclass(frozen=True)
class Piece:
    id: str
    cook_id: str
    collection_id: str
    owner_id: AccountId
    index: int
    job_key: str
    status: PieceStatus
    review: Review | None
    attempt: int
    seed: int
    config_hash: str
    traits: tuple[ChosenTrait, ...]
    params: Any
    output_text: str | None
    cost_micros: int
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class CookNumbers:
    in_flight: int = 0
    retrying: int = 0
    completed: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    cancelled: int = 0
    cost_micros: int = 0

    @property
    def pending_review(self) -> int:
        return self.completed - self.accepted - self.rejected

    @property
    def live(self) -> int:
        """Pieces holding a seat: in flight, waiting to retry, or completed and not rejected."""
        return self.in_flight + self.retrying + self.completed - self.rejected


def seat_key(cook_id: str, seat: int) -> str:
    return f"{cook_id}:{seat}"


def slot_key(cook_id: str, slot: int) -> str:
    return f"{cook_id}:{slot}"


def _number(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


class PieceStore:
    def __init__(self, db: AsyncDatabase[Document], policy: CookPolicy) -> None:
        self._pieces = db["pieces"]
        self._policy = policy

    @staticmethod
    def indexes() -> list[IndexModel]:
        string = {"$type": "string"}
        return [
            IndexModel("indexKey", name="unique_index_per_collection", unique=True),
            IndexModel(
                "seat", name="live_seat", unique=True, partialFilterExpression={"seat": string}
            ),
            IndexModel(
                "slot", name="in_flight_slot", unique=True, partialFilterExpression={"slot": string}
            ),
            IndexModel(
                "combo",
                name="unique_combination",
                unique=True,
                partialFilterExpression={"combo": string},
            ),
            IndexModel([("cookId", ASCENDING), ("status", ASCENDING)], name="cook_status"),
            IndexModel(
                [("collectionId", ASCENDING), ("status", ASCENDING)], name="collection_status"
            ),
            IndexModel([("status", ASCENDING), ("leaseExpiresAt", ASCENDING)], name="leases"),
        ]

    async def ensure_indexes(self) -> None:
        await self._pieces.create_indexes(self.indexes())

    # --- what is taken ------------------------------------------------------------------

    async def taken_slots(self, cook_id: str) -> set[int]:
        cursor = self._pieces.find(
            {"cookId": cook_id, "status": PieceStatus.RUNNING.value}, {"slot": 1}
        )
        return {_number(d["slot"]) async for d in cursor if "slot" in d}

    async def count_live(self, cook_id: str) -> int:
        return await self._pieces.count_documents({"cookId": cook_id, "seat": {"$exists": True}})

    async def taken_seats(self, cook_id: str) -> set[int]:
        cursor = self._pieces.find({"cookId": cook_id, "seat": {"$exists": True}}, {"seat": 1})
        return {_number(d["seat"]) async for d in cursor}

    async def supply_used(self, collection_id: str) -> int:
        """Pieces that count against the collection's supply: every live piece of any cook."""
        return await self._pieces.count_documents(
            {"collectionId": collection_id, "seat": {"$exists": True}}
        )

    async def combinations_held(self, collection_id: str) -> int:
        return await self._pieces.count_documents(
            {"collectionId": collection_id, "combo": {"$exists": True}}
        )

    async def count(self, cook_id: str, statuses: tuple[PieceStatus, ...]) -> int:
        return await self._pieces.count_documents(
            {"cookId": cook_id, "status": {"$in": [s.value for s in statuses]}}
        )

    async def completed_live(self, cook_id: str) -> int:
        return await self._pieces.count_documents(
            {"cookId": cook_id, "status": PieceStatus.COMPLETED.value, "seat": {"$exists": True}}
        )

    # --- transitions --------------------------------------------------------------------

    async def create(
        self,
        *,
        cook_id: str,
        collection_id: str,
        owner_id: AccountId,
        config_hash: str,
        drawn: Draw,
        seat: int,
        slot: int,
        combo: str | None = None,
    ) -> Piece:
        """Insert a new piece, in flight on its first attempt. Raises DuplicateKeyError when
        its seat, slot or index is taken."""
        at = clock.now()
        doc: Document = {
            "_id": new_id(ID_PREFIX),
            "cookId": cook_id,
            "collectionId": collection_id,
            "ownerId": owner_id,
            "index": drawn.index,
            "indexKey": f"{collection_id}:{drawn.index}",
            "jobKey": f"{cook_id}:{drawn.index}",
            "status": PieceStatus.RUNNING.value,
            "seat": seat_key(cook_id, seat),
            "slot": slot_key(cook_id, slot),
            "attempt": 1,
            "leaseExpiresAt": at + timedelta(seconds=self._policy.lease_seconds),
            "seed": drawn.seed,
            "configHash": config_hash,
            "traits": [vars(t) for t in drawn.traits],
            # Stored as text: parameter keys may hold '.' or '$'.
            "paramsJson": json.dumps(drawn.params, separators=(",", ":"), ensure_ascii=False),
            "costMicros": 0,
            "attempts": [],
            "createdAt": at,
            "updatedAt": at,
        }
        if combo is not None:
            doc["combo"] = f"{collection_id}:{combo}"
        await self._pieces.insert_one(doc)
        return _from_doc(doc)

    async def claim_retry(self, cook_id: str, slot: int) -> Piece | None:
        """Start the next attempt of a piece whose backoff has passed, in ``slot``."""
        at = clock.now()
        doc = await self._pieces.find_one_and_update(
            {
                "cookId": cook_id,
                "status": PieceStatus.RETRYING.value,
                "nextAttemptAt": {"$lte": at},
            },
            {
                "$set": {
                    "status": PieceStatus.RUNNING.value,
                    "slot": slot_key(cook_id, slot),
                    "leaseExpiresAt": at + timedelta(seconds=self._policy.lease_seconds),
                    "updatedAt": at,
                },
                "$inc": {"attempt": 1},
                "$unset": {"nextAttemptAt": ""},
            },
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _from_doc(doc)

    async def settle(
        self, piece_id: str, attempt: int, outcome: Outcome, *, may_retry: bool
    ) -> Piece | None:
        """The one place an attempt's outcome is applied. None: it was already settled."""
        at = clock.now()
        record: Document = {"attempt": attempt, "endedAt": at}
        unset: Document = {"slot": "", "leaseExpiresAt": ""}
        if isinstance(outcome, Success):
            record["outcome"] = "completed"
            fields: Document = {
                "status": PieceStatus.COMPLETED.value,
                "review": Review.PENDING.value,
                "outputText": outcome.text,
                "costMicros": outcome.cost_micros,
                "completedAt": at,
            }
        elif outcome.retryable and may_retry and attempt < self._policy.max_attempts:
            record.update(outcome="retrying", reason=outcome.reason)
            delay = self._policy.backoff(attempt)
            fields = {
                "status": PieceStatus.RETRYING.value,
                "lastError": outcome.reason,
                "nextAttemptAt": at + timedelta(seconds=delay),
            }
        else:
            record.update(outcome="failed", reason=outcome.reason)
            fields = {"status": PieceStatus.FAILED.value, "lastError": outcome.reason}
            unset.update(RELEASE_PLACE)
        doc = await self._pieces.find_one_and_update(
            {"_id": piece_id, "status": PieceStatus.RUNNING.value, "attempt": attempt},
            {"$set": {**fields, "updatedAt": at}, "$unset": unset, "$push": {"attempts": record}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _from_doc(doc)

    async def cancel_waiting(self, cook_id: str) -> int:
        """Pieces waiting to retry will not run again: they give their seats back."""
        result = await self._pieces.update_many(
            {"cookId": cook_id, "status": PieceStatus.RETRYING.value},
            {
                "$set": {"status": PieceStatus.CANCELLED.value, "updatedAt": clock.now()},
                "$unset": {**RELEASE_PLACE, "nextAttemptAt": ""},
            },
        )
        return result.modified_count

    async def waiting_cook_ids(self) -> list[str]:
        ids: list[str] = await self._pieces.distinct(
            "cookId", {"status": PieceStatus.RETRYING.value}
        )
        return ids

    async def expired_leases(self, limit: int = 100) -> list[tuple[str, str, int]]:
        """(piece id, cook id, attempt) of in-flight pieces whose lease has run out."""
        cursor = self._pieces.find(_lease_expired(), {"cookId": 1, "attempt": 1}).limit(limit)
        return [(d["_id"], d["cookId"], d["attempt"]) async for d in cursor]

    async def list_expired(self, principal: Principal, limit: int) -> list[Piece]:
        """In-flight pieces whose lease has run out, longest expired first: every owner's for
        an admin, else the caller's."""
        cursor = (
            self._pieces.find(owned(principal, _lease_expired()))
            .sort("leaseExpiresAt", ASCENDING)
            .limit(limit)
        )
        return [_from_doc(d) async for d in cursor]

    async def review(self, principal: Principal, piece_id: str, outcome: Review) -> Piece | None:
        """Accept or reject a completed piece. Rejecting gives its seat back. Idempotent.
        None when the caller cannot see a completed piece by that id."""
        query = owned(principal, {"_id": piece_id, "status": PieceStatus.COMPLETED.value})
        update: Document = {"$set": {"review": outcome.value, "updatedAt": clock.now()}}
        if outcome is Review.REJECTED:
            update["$unset"] = dict(RELEASE_PLACE)
        else:
            # A rejected piece's seat may already hold its replacement: it stays rejected.
            query["review"] = {"$ne": Review.REJECTED.value}
        doc = await self._pieces.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else _from_doc(doc)

    async def get(self, principal: Principal, piece_id: str) -> Piece | None:
        doc = await self._pieces.find_one(owned(principal, {"_id": piece_id}))
        return None if doc is None else _from_doc(doc)

    async def numbers(self, cook_id: str) -> CookNumbers:
        """Counts by status and review, and the exact cost, computed from the pieces."""
        pipeline: list[Document] = [
            {"$match": {"cookId": cook_id}},
            {
                "$group": {
                    "_id": {"status": "$status", "review": "$review"},
                    "n": {"$sum": 1},
                    "cost": {"$sum": "$costMicros"},
                }
            },
        ]
        totals: dict[str, int] = {}
        cost = 0
        async for row in await self._pieces.aggregate(pipeline):
            status, review, n = row["_id"]["status"], row["_id"].get("review"), row["n"]
            totals[status] = totals.get(status, 0) + n
            if review in (Review.ACCEPTED.value, Review.REJECTED.value):
                totals[review] = totals.get(review, 0) + n
            cost += row["cost"]
        return CookNumbers(
            in_flight=totals.get(PieceStatus.RUNNING.value, 0),
            retrying=totals.get(PieceStatus.RETRYING.value, 0),
            completed=totals.get(PieceStatus.COMPLETED.value, 0),
            accepted=totals.get(Review.ACCEPTED.value, 0),
            rejected=totals.get(Review.REJECTED.value, 0),
            failed=totals.get(PieceStatus.FAILED.value, 0),
            cancelled=totals.get(PieceStatus.CANCELLED.value, 0),
            cost_micros=cost,
        )

    async def list_for_cook(self, principal: Principal, cook_id: str, limit: int) -> list[Piece]:
        cursor = (
            self._pieces.find(owned(principal, {"cookId": cook_id}))
            .sort("index", ASCENDING)
            .limit(limit)
        )
        return [_from_doc(d) async for d in cursor]


def _lease_expired() -> Document:
    return {"status": PieceStatus.RUNNING.value, "leaseExpiresAt": {"$lt": clock.now()}}


def _from_doc(doc: Document) -> Piece:
    review = doc.get("review")
    return Piece(
        id=doc["_id"],
        cook_id=doc["cookId"],
        collection_id=doc["collectionId"],
        owner_id=AccountId(doc["ownerId"]),
        index=doc["index"],
        job_key=doc["jobKey"],
        status=PieceStatus(doc["status"]),
        review=Review(review) if review else None,
        attempt=doc["attempt"],
        seed=doc["seed"],
        config_hash=doc["configHash"],
        traits=tuple(ChosenTrait(**t) for t in doc["traits"]),
        params=json.loads(doc["paramsJson"]),
        output_text=doc.get("outputText"),
        cost_micros=doc.get("costMicros", 0),
        last_error=doc.get("lastError"),
        created_at=doc["createdAt"],
        completed_at=doc.get("completedAt"),
    )
