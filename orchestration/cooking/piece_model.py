"""What a piece is: its states, review outcomes, attempt outcomes and the numbers of a cook.

Review state lives in one field, ``review``: ``pending`` (completed, not yet reviewed),
``accepted``, ``rejected``, or ``excluded`` (accepted, but left out of exports; the old
system's "cull").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.ids import AccountId
from orchestration.art.engine import ChosenTrait
from orchestration.base.tools import MediaRef

type Document = dict[str, Any]


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


# What a piece document holds for the service's own bookkeeping (its places under the unique
# indexes, its lease, its event outbox): never part of a piece as read, so reads for callers
# leave them out (``READ_PROJECTION``).
BOOKKEEPING = (
    "indexKey",
    "seat",
    "slot",
    "combo",
    "leaseExpiresAt",
    "nextAttemptAt",
    "updatedAt",
    "progress",
    "outbox",
    "unlogged",
    "lastEvent",
)
# Fields a caller may not ask for, each read only for these GraphQL fields of ``Piece``.
OPTIONAL_FIELDS = {"paramsJson": "params", "attempts": "attempts"}


def read_projection(wanted: frozenset[str] | None = None) -> Document:
    """The projection of a piece read for a caller: the bookkeeping never, and the optional
    fields only if ``wanted`` (the GraphQL field names asked for) names them (None: all)."""
    left_out = list(BOOKKEEPING)
    if wanted is not None:
        left_out += [doc for doc, field in OPTIONAL_FIELDS.items() if field not in wanted]
    return dict.fromkeys(left_out, 0)


def from_doc(doc: Document) -> Piece:
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
        params=json.loads(doc["paramsJson"]) if "paramsJson" in doc else None,
        output_text=doc.get("outputText"),
        cost_micros=doc.get("costMicros", 0),
        last_error=doc.get("lastError"),
        created_at=doc["createdAt"],
        attempt_started_at=doc.get("attemptStartedAt"),
        completed_at=doc.get("completedAt"),
        media=tuple(MediaRef(**m) for m in doc.get("media", [])),
        run_id=doc.get("runId"),
    )
