"""Piece listings: which index serves each list query (named as a hint, checked by explain),
and the opaque cursors of their pages."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING

from domain.errors import BadUserInput
from domain.principal import Principal
from orchestration.base.scope import owned
from orchestration.cooking.piece_model import EXCLUDED, PieceStatus, Review, stored_reviews

type Document = dict[str, Any]


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
    traits: tuple[tuple[str, str], ...] = ()  # (category, name): pieces that drew all of them
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
    if query.traits:  # a residual filter on the hinted index's walk
        found["traits"] = {
            "$all": [{"$elemMatch": {"category": c, "name": n}} for c, n in query.traits]
        }
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
