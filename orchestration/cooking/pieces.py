"""Pieces: what a cook generates. Every transition is one conditional update on one piece.

The limits live on the piece documents themselves, under unique indexes, so the database
refuses whichever writer comes second, in any process:

- ``slot = "cookId:k"`` (k < maxConcurrent) while the piece is in flight;
- ``seat = "collectionId:cookId:s"`` (s < count) while it is live: in flight, waiting to retry,
  or completed and not rejected. A rejection or a final failure gives the seat back, so a
  replacement can take it. The collection comes first so that the collection's live pieces
  (its supply used, which ``startCook`` checks) are one range of this index: counting them
  reads the live pieces only, never the failed, rejected or cancelled ones stored beside them;
- ``indexKey = "collectionId:index"``: piece indexes are unique per collection;
- ``combo = "collectionId:<hash of all traits>"`` while live, for collections that want unique
  trait combinations; it is released with the seat.

An attempt's outcome is applied only if the piece is still running that same attempt
(``status: running, attempt: N`` in the filter): a duplicate, late or out-of-order completion
matches nothing and changes nothing.

Each transition records its event in the same update (``outbox``, see ``events.py``), so the
event of a committed transition cannot be lost. The model is in ``piece_model.py``, the
listings' query plans in ``piece_listing.py``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from pymongo import ASCENDING, IndexModel, InsertOne, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, OperationFailure

from domain.ids import AccountId, new_id
from domain.principal import Principal
from orchestration.art.engine import Draw
from orchestration.base import clock
from orchestration.base.indexes import ensure_indexes
from orchestration.base.pagination import Page, check_first
from orchestration.base.policy import CookPolicy
from orchestration.base.scope import owned
from orchestration.cooking.events import EventType, merge_updates, piece_outbox, recorded
from orchestration.cooking.piece_listing import (
    Listing,
    PieceOrder,
    PieceQuery,
    index_cursor,
    listing,
    parse_index_cursor,
)
from orchestration.cooking.piece_model import (
    EXCLUDED,
    Attempt,
    CookNumbers,
    Failure,
    Outcome,
    Piece,
    PieceStatus,
    Review,
    Success,
    from_doc,
    read_projection,
    stored_reviews,
)

# Re-exported: importers of the piece model and listings from before the split.
__all__ = [
    "EXCLUDED",
    "Attempt",
    "CookNumbers",
    "Failure",
    "Listing",
    "Outcome",
    "Piece",
    "PieceOrder",
    "PieceQuery",
    "PieceStatus",
    "PieceStore",
    "Review",
    "Success",
    "index_cursor",
    "listing",
    "parse_index_cursor",
    "stored_reviews",
]

type Document = dict[str, Any]

ID_PREFIX = "pc"
# What a piece gives back when it stops being live: its seat and its trait combination.
RELEASE_PLACE = {"seat": "", "combo": ""}
OUTCOME_EVENTS = {
    PieceStatus.COMPLETED.value: EventType.PIECE_COMPLETED,
    PieceStatus.RETRYING.value: EventType.PIECE_RETRYING,
    PieceStatus.FAILED.value: EventType.PIECE_FAILED,
}


def seat_key(collection_id: str, cook_id: str, seat: int) -> str:
    return f"{collection_id}:{cook_id}:{seat}"


def supply_filter(collection_id: str) -> Document:
    """The collection's live pieces: a range of the ``live_seat`` index (the collection id
    first also targets its shard on a sharded cluster)."""
    return {"collectionId": collection_id, "seat": _prefixed(collection_id)}


# Seats as versions before the collection prefix wrote them (``cookId:s``); cook ids are
# ``ck_<hex>``, collection ids ``col_<hex>``, so these are one range of the seat index.
LEGACY_SEATS = {"$gte": "ck_", "$lt": "ck`"}


def slot_key(cook_id: str, slot: int) -> str:
    return f"{cook_id}:{slot}"


def number_of(key: str) -> int:
    return int(key.rsplit(":", 1)[1])


# Indexes earlier versions created, dropped on start: each one costs every write.
RETIRED_INDEXES = {"unlogged_events"}  # sparse, on ``unlogged`` alone: now ``unlogged_by_cook``


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
            IndexModel([("status", ASCENDING), ("leaseExpiresAt", ASCENDING)], name="leases"),
            # Pieces with events recorded but not yet relayed, by cook (see events.py). Compound,
            # like the listings: the embedded engine serves a single-field or sparse index with
            # a read that grows with the collection.
            IndexModel(
                [("unlogged", ASCENDING), ("index", ASCENDING)],
                name="unlogged_by_cook",
                partialFilterExpression={"unlogged": string},
            ),
            # Listings (and counts, through their prefixes): by scope, optionally one filter
            # field, then the piece index (walked either way).
            *(
                IndexModel([(scope, ASCENDING), *extra, ("index", ASCENDING)], name=name)
                for scope, prefix in (("collectionId", "collection"), ("cookId", "cook"))
                for extra, name in (
                    ((), f"{prefix}_by_index"),
                    ((("status", ASCENDING),), f"{prefix}_status_by_index"),
                    ((("review", ASCENDING),), f"{prefix}_review_by_index"),
                )
            ),
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._pieces, self.indexes())
        await self.migrate_legacy_seats()
        present = await self._pieces.index_information()
        for name in RETIRED_INDEXES.intersection(present):
            try:
                await self._pieces.drop_index(name)
            except OperationFailure:  # another process starting at once dropped it first
                if name in await self._pieces.index_information():
                    raise

    async def migrate_legacy_seats(self) -> int:
        """Give seats written as ``cookId:s`` their collection prefix (one range read when
        there are none). Each rewrite is conditional on the old value, so processes starting
        at once rewrite each seat once; the new value is as unique as the old one."""
        moved = 0
        cursor = self._pieces.find({"seat": LEGACY_SEATS}, {"seat": 1, "collectionId": 1})
        async for d in cursor:
            result = await self._pieces.update_one(
                {"_id": d["_id"], "seat": d["seat"]},
                {"$set": {"seat": f"{d['collectionId']}:{d['seat']}"}},
            )
            moved += result.modified_count
        return moved

    # --- what is taken ------------------------------------------------------------------

    async def flying(self, cook_id: str) -> list[Document]:
        """The cook's pieces in flight or waiting to retry: status, slot, attempt and when the
        next attempt is due (by index ``cook_status_by_index``)."""
        statuses = [PieceStatus.RUNNING.value, PieceStatus.RETRYING.value]
        cursor = self._pieces.find(
            {"cookId": cook_id, "status": {"$in": statuses}},
            {"status": 1, "slot": 1, "attempt": 1, "nextAttemptAt": 1},
        )
        return [d async for d in cursor]

    async def taken_slots(self, cook_id: str) -> set[int]:
        return {
            number_of(d["slot"])
            for d in await self.flying(cook_id)
            if d["status"] == PieceStatus.RUNNING.value and "slot" in d
        }

    async def count_live(self, collection_id: str, cook_id: str) -> int:
        """Pieces holding a seat of the cook (a range of the ``live_seat`` index)."""
        return await self._count({"seat": _prefixed(f"{collection_id}:{cook_id}")})

    async def taken_seats(self, collection_id: str, cook_id: str) -> set[int]:
        cursor = self._pieces.find({"seat": _prefixed(f"{collection_id}:{cook_id}")}, {"seat": 1})
        return {number_of(d["seat"]) async for d in cursor}

    async def supply_used(self, collection_id: str) -> int:
        """Pieces that count against the collection's supply: every live piece of any cook.
        Its cost follows the live pieces, not the pieces stored (see ``supply_filter``)."""
        return await self._count(supply_filter(collection_id))

    async def combinations_held(self, collection_id: str) -> int:
        return await self._count({"combo": _prefixed(collection_id)})

    async def count(self, cook_id: str, statuses: tuple[PieceStatus, ...]) -> int:
        return await self._count(
            {"cookId": cook_id, "status": {"$in": [s.value for s in statuses]}}
        )

    async def _count(self, query: Document) -> int:
        """One ``count`` command (``count_documents`` would run an aggregation)."""
        reply = await self._pieces.database.command({"count": self._pieces.name, "query": query})
        return int(reply["n"])

    # --- transitions --------------------------------------------------------------------

    def new_doc(
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
    ) -> Document:
        """A new piece, in flight on its first attempt, its ``PIECE_SUBMITTED`` recorded."""
        at = clock.now()
        piece_id = new_id(ID_PREFIX)
        submitted = recorded(EventType.PIECE_SUBMITTED, attempt=1)
        doc: Document = {
            "_id": piece_id,
            "cookId": cook_id,
            "collectionId": collection_id,
            "ownerId": owner_id,
            "index": drawn.index,
            "indexKey": f"{collection_id}:{drawn.index}",
            "jobKey": f"{cook_id}:{drawn.index}",
            "status": PieceStatus.RUNNING.value,
            "seat": seat_key(collection_id, cook_id, seat),
            "slot": slot_key(cook_id, slot),
            "attempt": 1,
            "attemptStartedAt": at,
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
            **piece_outbox(cook_id, submitted)["$set"],
            "outbox": [submitted],
        }
        if combo is not None:
            doc["combo"] = f"{collection_id}:{combo}"
        return doc

    async def insert(self, docs: list[Document]) -> list[Document | None]:
        """Insert new pieces in one round trip; for each, None if inserted, else the key
        pattern of the unique index that refused it (its seat, slot, index or combination)."""
        if not docs:
            return []
        refused: list[Document | None] = [None] * len(docs)
        try:
            await self._pieces.bulk_write([InsertOne(d) for d in docs], ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                if error.get("code") != 11000:
                    raise
                refused[error["index"]] = error.get("keyPattern") or {"_unknown": 1}
        return refused

    async def claim_retry(
        self, cook_id: str, piece_id: str, attempt: int, slot: int
    ) -> Piece | None:
        """Start attempt ``attempt + 1`` of a piece waiting to retry, in ``slot``, recording its
        ``PIECE_SUBMITTED``; None if it is no longer waiting there or not yet due. Raises
        DuplicateKeyError when the slot is taken."""
        at = clock.now()
        submitted = recorded(EventType.PIECE_SUBMITTED, attempt=attempt + 1)
        doc = await self._pieces.find_one_and_update(
            {
                "_id": piece_id,
                "status": PieceStatus.RETRYING.value,
                "attempt": attempt,
                "nextAttemptAt": {"$lte": at},
            },
            merge_updates(
                {
                    "$set": {
                        "status": PieceStatus.RUNNING.value,
                        "slot": slot_key(cook_id, slot),
                        "attempt": attempt + 1,
                        "attemptStartedAt": at,
                        "leaseExpiresAt": at + timedelta(seconds=self._policy.lease_seconds),
                        "updatedAt": at,
                    },
                    "$unset": {"nextAttemptAt": ""},
                },
                piece_outbox(cook_id, submitted),
            ),
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else from_doc(doc)

    async def settle(
        self, cook_id: str, piece_id: str, attempt: int, outcome: Outcome, *, may_retry: bool
    ) -> Piece | None:
        """The one place an attempt's outcome is applied, its event recorded in the same
        update. None: it was already settled."""
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
                "media": [vars(m) for m in outcome.media],
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
        detail = outcome.reason if isinstance(outcome, Failure) else None
        event = recorded(OUTCOME_EVENTS[fields["status"]], attempt=attempt, detail=detail)
        doc = await self._pieces.find_one_and_update(
            {"_id": piece_id, "status": PieceStatus.RUNNING.value, "attempt": attempt},
            merge_updates(
                {"$set": {**fields, "updatedAt": at}, "$unset": unset},
                {"$push": {"attempts": record}},
                piece_outbox(cook_id, event),
            ),
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else from_doc(doc)

    async def note_progress(self, cook_id: str, piece_id: str, attempt: int, status: str) -> bool:
        """Record a provider's progress status of the running attempt, once per change, with
        its ``PIECE_PROGRESS`` event; whether it was new."""
        noted = f"{attempt}:{status}"
        event = recorded(EventType.PIECE_PROGRESS, attempt=attempt, detail=status[:100])
        result = await self._pieces.update_one(
            {
                "_id": piece_id,
                "status": PieceStatus.RUNNING.value,
                "attempt": attempt,
                "progress": {"$ne": noted},
            },
            merge_updates({"$set": {"progress": noted}}, piece_outbox(cook_id, event)),
        )
        return result.modified_count == 1

    async def hold(
        self, piece_id: str, attempt: int, seconds: float | None, run_id: str | None = None
    ) -> bool:
        """Extend the running attempt's lease by ``seconds`` from now (a provider accepted it,
        or a spell step starts) and note the provider's run id; False if the attempt is no
        longer running."""
        update: Document = {}
        if seconds is not None:
            update["leaseExpiresAt"] = clock.now() + timedelta(seconds=seconds)
        if run_id is not None:
            update["runId"] = run_id
        if not update:
            return True
        result = await self._pieces.update_one(
            {"_id": piece_id, "status": PieceStatus.RUNNING.value, "attempt": attempt},
            {"$set": update},
        )
        return result.modified_count == 1

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
        return [from_doc(d) async for d in cursor]

    async def review(
        self, principal: Principal, cook_id: str, piece_id: str, outcome: Review
    ) -> Piece | None:
        """Accept or reject a completed piece. Rejecting gives its seat back. Idempotent.
        None when the caller cannot see a completed piece by that id (or, accepting, one that
        is rejected or excluded: accepting an excluded piece leaves it as it is)."""
        at = clock.now()
        query = owned(principal, {"_id": piece_id, "status": PieceStatus.COMPLETED.value})
        update: Document = {"$set": {"review": outcome.value, "reviewedAt": at, "updatedAt": at}}
        if outcome is Review.REJECTED:
            # Rejected once: a rejected piece matches no later rejection, so one event.
            query["review"] = {"$ne": Review.REJECTED.value}
            update["$unset"] = dict(RELEASE_PLACE)
            update = merge_updates(
                update, piece_outbox(cook_id, recorded(EventType.PIECE_REJECTED))
            )
        else:
            # A rejected piece's seat may already hold its replacement: it stays rejected.
            query["review"] = {"$in": [Review.PENDING.value, Review.ACCEPTED.value]}
        doc = await self._pieces.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else from_doc(doc)

    async def set_excluded(
        self, principal: Principal, piece_id: str, excluded: bool
    ) -> Piece | None:
        """Leave an accepted piece out of exports, or include it again. Idempotent. None when
        the caller cannot see an accepted piece by that id."""
        before, after = (
            (Review.ACCEPTED.value, EXCLUDED) if excluded else (EXCLUDED, Review.ACCEPTED.value)
        )
        query = owned(
            principal,
            {
                "_id": piece_id,
                "status": PieceStatus.COMPLETED.value,
                "review": {"$in": [before, after]},
            },
        )
        at = clock.now()
        doc = await self._pieces.find_one_and_update(
            query,
            {"$set": {"review": after, "reviewedAt": at, "updatedAt": at}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else from_doc(doc)

    async def get(self, principal: Principal, piece_id: str) -> Piece | None:
        doc = await self._pieces.find_one(owned(principal, {"_id": piece_id}), read_projection())
        return None if doc is None else from_doc(doc)

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
            if review == EXCLUDED:
                review = Review.ACCEPTED.value
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
        page = await self.find_page(principal, PieceQuery(cook_id=cook_id), limit, None)
        return page.items

    async def find_page(
        self,
        principal: Principal,
        query: PieceQuery,
        first: int,
        after: str | None,
        wanted: frozenset[str] | None = None,
    ) -> Page[Piece]:
        """One page of pieces; the index that serves it is named as a hint (see ``listing``).
        ``wanted``: the GraphQL fields asked for, to leave the others' heavy fields unread."""
        check_first(first)
        plan = listing(principal, query, first + 1, after)
        if plan.matches_nothing:
            return Page([], False, None)
        projection = read_projection(wanted)
        cursor = (
            self._pieces.find(plan.filter, projection)
            .sort(plan.sort)
            .hint(plan.hint)
            .limit(plan.limit)
        )
        items = [from_doc(d) async for d in cursor]
        page = items[:first]
        end = index_cursor(page[-1].index) if page else None
        return Page(page, len(items) > first, end)

    async def eligible_for_export(self, principal: Principal, collection_id: str) -> list[str]:
        """Ids of the collection's accepted, not excluded pieces, by index."""
        query = PieceQuery(collection_id=collection_id, reviews=(Review.ACCEPTED,), excluded=False)
        plan = listing(principal, query, None, None)
        cursor = self._pieces.find(plan.filter, {"_id": 1}).sort(plan.sort).hint(plan.hint)
        return [d["_id"] async for d in cursor]

    async def load_many(self, piece_ids: list[str]) -> dict[str, Piece]:
        """Internal read by id (for the export worker, which has no caller to scope by)."""
        cursor = self._pieces.find({"_id": {"$in": piece_ids}})
        return {d["_id"]: from_doc(d) async for d in cursor}

    async def analytics_rows(self, collection_id: str) -> list[Document]:
        """Counts, cost and duration per (status, review), for collection analytics."""
        pipeline: list[Document] = [
            {"$match": {"collectionId": collection_id}},
            {
                "$group": {
                    "_id": {"status": "$status", "review": "$review"},
                    "n": {"$sum": 1},
                    "cost": {"$sum": "$costMicros"},
                    # milliseconds of the successful attempt (0 for pieces not completed)
                    "durationMs": {
                        "$sum": {
                            "$cond": [
                                {"$eq": ["$status", PieceStatus.COMPLETED.value]},
                                {
                                    "$subtract": [
                                        "$completedAt",
                                        {"$ifNull": ["$attemptStartedAt", "$createdAt"]},
                                    ]
                                },
                                0,
                            ]
                        }
                    },
                }
            },
        ]
        return [row async for row in await self._pieces.aggregate(pipeline)]

    async def trait_rows(self, collection_id: str) -> list[Document]:
        """Per (category, trait name, review): how many pieces drew it."""
        pipeline: list[Document] = [
            {"$match": {"collectionId": collection_id}},
            {"$unwind": "$traits"},
            {
                "$group": {
                    "_id": {
                        "category": "$traits.category",
                        "name": "$traits.name",
                        "review": "$review",
                    },
                    "n": {"$sum": 1},
                }
            },
        ]
        return [row async for row in await self._pieces.aggregate(pipeline)]


def _lease_expired() -> Document:
    return {"status": PieceStatus.RUNNING.value, "leaseExpiresAt": {"$lt": clock.now()}}


def _prefixed(key: str) -> Document:
    """Keys ``key:<n>``, as a range of their index."""
    return {"$gte": f"{key}:", "$lt": f"{key};"}
