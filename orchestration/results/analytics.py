"""Collection analytics, computed from the pieces by two aggregations (nothing cached)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from domain.principal import Principal
from orchestration.art.traits import ManualCategory
from orchestration.catalog.collections import CollectionStore
from orchestration.cooking.pieces import EXCLUDED, PieceStatus, PieceStore, Review


@dataclass(frozen=True)
class TraitStat:
    category: str
    name: str
    drawn: int
    share: float | None  # drawn / pieces
    expected_share: float | None  # weight / total weight today; None: no longer in the tree
    accepted: int
    rejected: int

    @property
    def approval_rate(self) -> float | None:
        return _rate(self.accepted, self.accepted + self.rejected)


@dataclass(frozen=True)
class Analytics:
    pieces: int
    by_status: dict[PieceStatus, int]
    pending_review: int
    accepted: int
    rejected: int
    excluded: int
    cost_micros: int
    duration_ms: int  # summed over completed pieces (their successful attempt)
    traits: list[TraitStat]

    @property
    def completed(self) -> int:
        return self.by_status.get(PieceStatus.COMPLETED, 0)

    @property
    def approval_rate(self) -> float | None:
        return _rate(self.accepted, self.accepted + self.rejected)

    @property
    def average_cost_micros(self) -> float | None:
        return _rate(self.cost_micros, self.completed)

    @property
    def average_duration_ms(self) -> float | None:
        return _rate(self.duration_ms, self.completed)


def _rate(part: float, whole: int) -> float | None:
    return part / whole if whole else None


async def collection_analytics(
    collections: CollectionStore, pieces: PieceStore, principal: Principal, collection_id: str
) -> Analytics:
    collection = await collections.get(principal, collection_id)  # NOT_FOUND if not theirs
    by_status: dict[PieceStatus, int] = {}
    reviews: dict[str, int] = {}
    cost = duration = 0
    for row in await pieces.analytics_rows(collection.id):
        status = PieceStatus(row["_id"]["status"])
        by_status[status] = by_status.get(status, 0) + row["n"]
        review = row["_id"].get("review")
        if review:
            reviews[review] = reviews.get(review, 0) + row["n"]
        cost += row["cost"]
        duration += int(row["durationMs"])
    total = sum(by_status.values())

    drawn: dict[tuple[str, str], dict[str, int]] = {}
    for row in await pieces.trait_rows(collection.id):
        key = (row["_id"]["category"], row["_id"]["name"])
        counts = drawn.setdefault(key, {})
        review = row["_id"].get("review") or ""
        counts[review] = counts.get(review, 0) + row["n"]
        counts["*"] = counts.get("*", 0) + row["n"]

    traits: list[TraitStat] = []
    manual = [c for c in collection.spec.trait_tree if isinstance(c, ManualCategory)]
    known: set[tuple[str, str]] = set()
    for category in manual:
        weight = math.fsum(t.weight for t in category.traits if t.weight > 0)
        for trait in category.traits:
            key = (category.name, trait.name)
            known.add(key)
            traits.append(_stat(key, drawn.get(key, {}), total, trait.weight / weight))
    names = {c.name for c in manual}
    for key in sorted(drawn):
        if key[0] in names and key not in known:
            traits.append(_stat(key, drawn[key], total, None))

    accepted = reviews.get(Review.ACCEPTED.value, 0) + reviews.get(EXCLUDED, 0)
    return Analytics(
        pieces=total,
        by_status=by_status,
        pending_review=reviews.get(Review.PENDING.value, 0),
        accepted=accepted,
        rejected=reviews.get(Review.REJECTED.value, 0),
        excluded=reviews.get(EXCLUDED, 0),
        cost_micros=cost,
        duration_ms=duration,
        traits=traits,
    )


def _stat(
    key: tuple[str, str], counts: dict[str, int], total: int, expected: float | None
) -> TraitStat:
    return TraitStat(
        category=key[0],
        name=key[1],
        drawn=counts.get("*", 0),
        share=_rate(counts.get("*", 0), total),
        expected_share=expected,
        accepted=counts.get(Review.ACCEPTED.value, 0) + counts.get(EXCLUDED, 0),
        rejected=counts.get(Review.REJECTED.value, 0),
    )
