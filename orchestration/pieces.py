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

Review state lives in one field, ``review``: ``pending`` (completed, not yet reviewed),
``accepted``, ``rejected``, or ``excluded`` (accepted, but left out of exports; the old
system's "cull"). Every list query names the index that serves it (``listing``).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from domain.errors import BadUserInput
from domain.ids import AccountId, new_id
from domain.principal import Principal
from orchestration import clock
from orchestration.engine import ChosenTrait, Draw
from orchestration.pagination import Page, check_first
from orchestration.policy import CookPolicy
from orchestration.scope import owned
from orchestration.tools import MediaRef

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


# The stored ``review`` of an accepted piece left out of exports. It is still accepted: it keeps
# its seat and counts as accepted everywhere; only exports skip it.
EXCLUDED = "excluded"


def stored_reviews(reviews: tuple[Review, ...], excluded: bool | None) -> list[str] | None:
    """The stored ``review`` values matching a filter on outcome and exclusion; None: any."""
    if not reviews and excluded is None:
        return None
    wanted = set(reviews or tuple(Review))
    values = {r.value for r in wanted}
    if Review.ACCEPTED in wanted:
        values.add(EXCLUDED)
    if excluded is True:
        values &= {EXCLUDED}
    elif excluded is False:
        values.discard(EXCLUDED)
        if not reviews:
            return None  # "not excluded" alone: handled as a residual filter (see listing)
    return sorted(values)


@dataclass(frozen=True)
class Success:
    text: str
    cost_micros: int
    media: tuple[MediaRef, ...] = ()


@dataclass(frozen=True)
class Failure:
    reason: str
    retryable: bool


type Outcome = Success | Failure


@dataclass(frozen=True)
class Attempt:
    attempt: int
    outcome: str  # completed, retrying or failed
    reason: str | None
    ended_at: datetime


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
    excluded: bool
    reviewed_at: datetime | None
    attempt: int
    attempts: tuple[Attempt, ...]
    seed: int
    config_hash: str
    traits: tuple[ChosenTrait, ...]
    params: Any
    output_text: str | None
    cost_micros: int
    last_error: str | None
    created_at: datetime
    attempt_started_at: datetime | None
    completed_at: datetime | None
    media: tuple[MediaRef, ...] = ()
    run_id: str | None = None  # the provider's run id of the current or last attempt

    @property
    def duration_ms(self) -> int | None:
        """How long the successful attempt took (a completed piece only)."""
        if self.completed_at is None:
            return None
        start = self.attempt_started_at or self.created_at
        return int((self.completed_at - start).total_seconds() * 1000)


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
            IndexModel([("status", ASCENDING), ("leaseExpiresAt", ASCENDING)], name="leases"),
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
                    "attemptStartedAt": at,
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
        doc = await self._pieces.find_one_and_update(
            {"_id": piece_id, "status": PieceStatus.RUNNING.value, "attempt": attempt},
            {"$set": {**fields, "updatedAt": at}, "$unset": unset, "$push": {"attempts": record}},
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else _from_doc(doc)

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
        return [_from_doc(d) async for d in cursor]

    async def review(self, principal: Principal, piece_id: str, outcome: Review) -> Piece | None:
        """Accept or reject a completed piece. Rejecting gives its seat back. Idempotent.
        None when the caller cannot see a completed piece by that id (or, accepting, one that
        is rejected or excluded: accepting an excluded piece leaves it as it is)."""
        at = clock.now()
        query = owned(principal, {"_id": piece_id, "status": PieceStatus.COMPLETED.value})
        update: Document = {"$set": {"review": outcome.value, "reviewedAt": at, "updatedAt": at}}
        if outcome is Review.REJECTED:
            update["$unset"] = dict(RELEASE_PLACE)
        else:
            # A rejected piece's seat may already hold its replacement: it stays rejected.
            query["review"] = {"$in": [Review.PENDING.value, Review.ACCEPTED.value]}
        doc = await self._pieces.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER
        )
        return None if doc is None else _from_doc(doc)

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
        self, principal: Principal, query: PieceQuery, first: int, after: str | None
    ) -> Page[Piece]:
        """One page of pieces; the index that serves it is named as a hint (see ``listing``)."""
        check_first(first)
        plan = listing(principal, query, first + 1, after)
        if plan.matches_nothing:
            return Page([], False, None)
        cursor = self._pieces.find(plan.filter).sort(plan.sort).hint(plan.hint).limit(plan.limit)
        items = [_from_doc(d) async for d in cursor]
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
        return {d["_id"]: _from_doc(d) async for d in cursor}

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


class PieceOrder(StrEnum):
    NEWEST = "newest"  # highest index first: indexes are allocated in creation order
    INDEX = "index"


@dataclass(frozen=True)
class PieceQuery:
    """Which pieces to list: a collection's or a cook's, optionally filtered."""

    collection_id: str | None = None
    cook_id: str | None = None
    statuses: tuple[PieceStatus, ...] = ()
    reviews: tuple[Review, ...] = ()
    excluded: bool | None = None
    order: PieceOrder = PieceOrder.INDEX


@dataclass(frozen=True)
class Listing:
    """A find, its sort and the index that serves it (passed as a hint, checked by explain)."""

    filter: Document
    sort: list[tuple[str, int]]
    hint: str
    limit: int
    matches_nothing: bool = False  # the filters contradict each other: no query is needed


def listing(
    principal: Principal, query: PieceQuery, limit: int | None, after: str | None
) -> Listing:
    """The find for ``query``: scope and at most one filter field as equality (or ``$in``)
    prefix of an index, then the piece index, so MongoDB walks the index with no sort stage."""
    if query.cook_id is not None:
        scope, prefix = {"cookId": query.cook_id}, "cook"
    elif query.collection_id is not None:
        scope, prefix = {"collectionId": query.collection_id}, "collection"
    else:
        raise ValueError("a piece listing needs a collection or a cook")
    found: Document = dict(scope)
    reviews = stored_reviews(query.reviews, query.excluded)
    statuses = [s.value for s in query.statuses]
    if reviews is not None:
        found["review"] = {"$in": reviews}
        hint = f"{prefix}_review_by_index"
        if statuses:
            found["status"] = {"$in": statuses}
    elif statuses:
        found["status"] = {"$in": statuses}
        hint = f"{prefix}_status_by_index"
    else:
        hint = f"{prefix}_by_index"
    if query.excluded is False and reviews is None:
        found["review"] = {"$ne": EXCLUDED}
    direction = DESCENDING if query.order is PieceOrder.NEWEST else ASCENDING
    if after is not None:
        found["index"] = {"$lt" if direction == DESCENDING else "$gt": parse_index_cursor(after)}
    return Listing(owned(principal, found), [("index", direction)], hint, limit or 0, reviews == [])


def index_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"i:{index}".encode()).decode()


def parse_index_cursor(cursor: str, path: str = "after") -> int:
    try:
        kind, value = base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)
        if kind != "i":
            raise ValueError(kind)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadUserInput.at(path, "is not a cursor this API returned") from exc


def _lease_expired() -> Document:
    return {"status": PieceStatus.RUNNING.value, "leaseExpiresAt": {"$lt": clock.now()}}


def _from_doc(doc: Document) -> Piece:
    review = doc.get("review")
    excluded = review == EXCLUDED
    if excluded:
        review = Review.ACCEPTED.value
    return Piece(
        id=doc["_id"],
        cook_id=doc["cookId"],
        collection_id=doc["collectionId"],
        owner_id=AccountId(doc["ownerId"]),
        index=doc["index"],
        job_key=doc["jobKey"],
        status=PieceStatus(doc["status"]),
        review=Review(review) if review else None,
        excluded=excluded,
        reviewed_at=doc.get("reviewedAt"),
        attempt=doc["attempt"],
        attempts=tuple(
            Attempt(a["attempt"], a["outcome"], a.get("reason"), a["endedAt"])
            for a in doc.get("attempts", ())
        ),
        seed=doc["seed"],
        config_hash=doc["configHash"],
        traits=tuple(ChosenTrait(**t) for t in doc["traits"]),
        params=json.loads(doc["paramsJson"]),
        output_text=doc.get("outputText"),
        cost_micros=doc.get("costMicros", 0),
        last_error=doc.get("lastError"),
        created_at=doc["createdAt"],
        attempt_started_at=doc.get("attemptStartedAt"),
        completed_at=doc.get("completedAt"),
        media=tuple(MediaRef(**m) for m in doc.get("media", [])),
        run_id=doc.get("runId"),
    )
