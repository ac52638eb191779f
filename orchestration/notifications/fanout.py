"""The relay half of a notification: from a marked cook or export to its deliveries.

Every process runs it (right after a transition it made, and on each tick): it reads marked
documents (``notify`` set, by a partial index), records one delivery per enabled endpoint of
the owner that wants the event (``DeliveryStore.record``: a repeat is a no-op, the ids being
derived), then clears the mark conditionally. A fan-out that dies halfway is finished by the
next; the payload is built from the document as it ended (and, for a cook, its numbers).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from orchestration.base import notify_marker as marker
from orchestration.base.indexes import ensure_indexes
from orchestration.cooking.pieces import PieceStore
from orchestration.notifications.deliveries import DeliveryStore, message_id_for
from orchestration.notifications.endpoints import EndpointStore

type Document = dict[str, Any]

log = logging.getLogger("cook.notifications")

BATCH = 100


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat().replace("+00:00", "Z")


def _usd(micros: int) -> str:
    return str((Decimal(micros) / 1_000_000).quantize(Decimal("0.000001")))


def body_of(event: str, at: datetime | None, data: Document) -> str:
    """The JSON body every delivery sends: Standard Webhooks' ``{type, timestamp, data}``."""
    return json.dumps(
        {"type": event, "timestamp": _iso(at), "data": data},
        separators=(",", ":"),
        sort_keys=True,
    )


class FanOut:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        endpoints: EndpointStore,
        deliveries: DeliveryStore,
        pieces: PieceStore,
        public_url: str,
    ) -> None:
        self._sources = {"cook": db["cooks"], "export": db["exports"]}
        self._endpoints = endpoints
        self._deliveries = deliveries
        self._pieces = pieces
        self._public_url = public_url.rstrip("/")

    async def ensure_indexes(self) -> None:
        for source in self._sources.values():
            await ensure_indexes(
                source,
                [
                    IndexModel(
                        marker.FIELD,
                        name="notify_outbox",
                        partialFilterExpression={marker.FIELD: {"$exists": True}},
                    )
                ],
            )

    async def relay_all(self) -> int:
        """Fan out every marked cook and export (up to a batch of each); how many."""
        done = 0
        for kind, source in self._sources.items():
            cursor = source.find({marker.FIELD: {"$exists": True}}).limit(BATCH)
            async for doc in cursor:
                await self._relay(kind, doc)
                done += 1
        return done

    async def _relay(self, kind: str, doc: Document) -> None:
        event: str = doc[marker.FIELD]
        if kind == "cook":
            ended_at, data = doc.get("endedAt"), await self._cook_data(doc)
        else:
            ended_at, data = doc.get("finishedAt"), self._export_data(doc)
        body = body_of(event, ended_at, data)
        message_id = message_id_for(doc["_id"], event)
        for endpoint in await self._endpoints.subscribed(doc["ownerId"], event):
            await self._deliveries.record(endpoint, message_id, event, body, ended_at)
        await self._sources[kind].update_one(
            {"_id": doc["_id"], marker.FIELD: event}, {"$unset": {marker.FIELD: ""}}
        )

    async def _cook_data(self, doc: Document) -> Document:
        numbers = await self._pieces.numbers(doc["_id"])
        return {
            "cookId": doc["_id"],
            "collectionId": doc["collectionId"],
            "status": doc["status"],
            "reason": doc.get("reason"),
            "count": doc["count"],
            "seed": doc["seed"],
            "numbers": {
                "completed": numbers.completed,
                "accepted": numbers.accepted,
                "rejected": numbers.rejected,
                "pendingReview": numbers.pending_review,
                "failed": numbers.failed,
                "cancelled": numbers.cancelled,
                "costUsd": _usd(numbers.cost_micros),
            },
            "createdAt": _iso(doc.get("createdAt")),
            "endedAt": _iso(doc.get("endedAt")),
            "url": f"{self._public_url}/studio#/cooks/{doc['_id']}",
        }

    def _export_data(self, doc: Document) -> Document:
        completed = doc["status"] == "completed"
        return {
            "exportId": doc["_id"],
            "collectionId": doc["collectionId"],
            "status": doc["status"],
            "total": doc.get("total"),
            "sizeBytes": doc.get("sizeBytes"),
            "provenanceHash": doc.get("provenanceHash"),
            "archiveSha256": doc.get("archiveSha256"),
            "error": doc.get("error"),
            "createdAt": _iso(doc.get("createdAt")),
            "finishedAt": _iso(doc.get("finishedAt")),
            "url": f"{self._public_url}/exports/{doc['_id']}/archive"
            if completed
            else f"{self._public_url}/studio#/collections/{doc['collectionId']}",
        }
