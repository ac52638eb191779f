"""Cursor pagination over a (createdAt desc, _id desc) order: stable under inserts."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from domain.errors import BadUserInput

MAX_PAGE = 100


@dataclass(frozen=True)
class Page[T]:
    items: list[T]
    has_next_page: bool
    end_cursor: str | None


def check_first(first: int, path: str = "first") -> int:
    if not 1 <= first <= MAX_PAGE:
        raise BadUserInput.at(path, f"must be between 1 and {MAX_PAGE}")
    return first


def encode_cursor(created_at: datetime, ident: str) -> str:
    millis = int(created_at.timestamp() * 1000)
    return base64.urlsafe_b64encode(f"{millis}:{ident}".encode()).decode()


def after_filter(cursor: str | None, path: str = "after") -> dict[str, Any]:
    """The filter for items strictly after ``cursor`` in (createdAt desc, _id desc) order."""
    if cursor is None:
        return {}
    try:
        millis, ident = base64.urlsafe_b64decode(cursor.encode()).decode().split(":", 1)
        created = datetime.fromtimestamp(int(millis) / 1000, UTC)
    except (ValueError, binascii.Error, UnicodeDecodeError, OverflowError, OSError) as exc:
        raise BadUserInput.at(path, "is not a cursor this API returned") from exc
    return {
        "$or": [
            {"createdAt": {"$lt": created}},
            {"createdAt": created, "_id": {"$lt": ident}},
        ]
    }


class Dated(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


async def newest_first[T: Dated](
    coll: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    first: int,
    after: str | None,
    from_doc: Callable[[dict[str, Any]], T],
) -> Page[T]:
    """One page of ``query``'s matches in (createdAt desc, _id desc) order."""
    check_first(first)
    cursor = (
        coll.find({**query, **after_filter(after)})
        .sort([("createdAt", DESCENDING), ("_id", DESCENDING)])
        .limit(first + 1)
    )
    items = [from_doc(doc) async for doc in cursor]
    page = items[:first]
    end = encode_cursor(page[-1].created_at, page[-1].id) if page else None
    return Page(page, len(items) > first, end)
