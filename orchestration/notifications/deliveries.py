"""Deliveries: one message to one endpoint, kept in the database until it is delivered or its
schedule runs out.

A delivery's ``_id`` is derived from its endpoint and its message (``whd_`` and the first 32 hex
of their SHA-256), so recording it twice (a fan-out repeated after a crash) is refused by the
primary key: one delivery, one id, however often it is recorded. Its ``messageId`` is the
``webhook-id`` header, the same on every attempt and redelivery, derived from what ended
(``msg_`` and the SHA-256 of the cook's or export's id and the event), so receivers can
deduplicate on it.

Any process may send: a sender *claims* a due delivery with one conditional update that moves
its ``nextAttemptAt`` a lease into the future, sets a fresh ``leaseOwner`` token and counts the
attempt; the outcome is written only under that token. A sender that dies mid-attempt leaves
the delivery due again when the lease runs out, so it is sent at least once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from domain.errors import Conflict, NotFound
from domain.ids import AccountId
from domain.principal import Principal
from orchestration.base import clock
from orchestration.base.indexes import ensure_indexes
from orchestration.base.pagination import Page, newest_first
from orchestration.base.scope import owned
from orchestration.notifications.endpoints import Endpoint

type Document = dict[str, Any]

ID_PREFIX = "whd"
MAX_LOGGED_ATTEMPTS = 50  # the newest attempts kept on a delivery


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at nextAttemptAt (or being sent, under a lease)
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # its schedule ran out, or its endpoint is gone or disabled


@dataclass(frozen=True)
class Attempt:
    number: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None


@dataclass(frozen=True)
class Delivery:
    id: str
    endpoint_id: str
    owner_id: AccountId
    message_id: str
    event: str
    body: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    source_ended_at: datetime | None
    error: str | None
    attempt_log: tuple[Attempt, ...]


def _hex(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def message_id_for(source_id: str, event: str) -> str:
    """The ``webhook-id`` of what ended: stable, whoever records it and however often."""
    return f"msg_{_hex(source_id, event)}"


def delivery_id(endpoint_id: str, message_id: str) -> str:
    return f"{ID_PREFIX}_{_hex(endpoint_id, message_id)}"


class DeliveryStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._deliveries = db["notification_deliveries"]

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [
            IndexModel([("status", ASCENDING), ("nextAttemptAt", ASCENDING)], name="due"),
            IndexModel(
                [("endpointId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                name="endpoint_listing",
            ),
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._deliveries, self.indexes())

    async def record(
        self,
        endpoint: Endpoint,
        message_id: str,
        event: str,
        body: str,
        source_ended_at: datetime | None,
    ) -> Delivery:
        """Record the delivery (due now); recording it again changes nothing."""
        at = clock.now()
        doc: Document = {
            "_id": delivery_id(endpoint.id, message_id),
            "endpointId": endpoint.id,
            "ownerId": endpoint.owner_id,
            "messageId": message_id,
            "event": event,
            "body": body,
            "status": DeliveryStatus.PENDING.value,
            "attempts": 0,
            "nextAttemptAt": at,
            "createdAt": at,
            "updatedAt": at,
            "sourceEndedAt": source_ended_at,
            "attemptLog": [],
        }
        try:
            await self._deliveries.insert_one(doc)
        except DuplicateKeyError:
            found = await self._deliveries.find_one({"_id": doc["_id"]})
            return _from_doc(found or doc)
        return _from_doc(doc)

    async def claim(self, lease_seconds: float) -> tuple[Delivery, str] | None:
        """Take the most overdue delivery for one attempt, under a fresh lease token."""
        at = clock.now()
        token = secrets.token_hex(8)
        doc = await self._deliveries.find_one_and_update(
            {"status": DeliveryStatus.PENDING.value, "nextAttemptAt": {"$lte": at}},
            {
                "$set": {
                    "nextAttemptAt": at + timedelta(seconds=lease_seconds),
                    "leaseOwner": token,
                    "updatedAt": at,
                },
                "$inc": {"attempts": 1},
            },
            sort=[("nextAttemptAt", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else (_from_doc(doc), token)

    async def release(self, delivery_id_: str, token: str, after_seconds: float) -> None:
        """Hand a claimed delivery back unsent (the owner's send rate is spent): not an
        attempt, due again in ``after_seconds``."""
        at = clock.now()
        await self._deliveries.update_one(
            {"_id": delivery_id_, "leaseOwner": token},
            {
                "$set": {"nextAttemptAt": at + timedelta(seconds=after_seconds), "updatedAt": at},
                "$inc": {"attempts": -1},
                "$unset": {"leaseOwner": ""},
            },
        )

    async def finish(
        self,
        delivery_id_: str,
        token: str,
        attempt: Attempt,
        *,
        delivered: bool,
        retry_in: float | None,
    ) -> bool:
        """Write an attempt's outcome under its lease: delivered, due again in ``retry_in``
        seconds, or (``retry_in`` None) failed. Returns whether the lease was still held."""
        at = clock.now()
        fields: Document = {"updatedAt": at, "error": attempt.error}
        if delivered:
            fields.update(status=DeliveryStatus.DELIVERED.value, deliveredAt=at, error=None)
        elif retry_in is not None:
            fields["nextAttemptAt"] = at + timedelta(seconds=retry_in)
        else:
            fields["status"] = DeliveryStatus.FAILED.value
        if delivered or retry_in is None:
            fields["nextAttemptAt"] = None
        entry = {
            "number": attempt.number,
            "at": attempt.at,
            "statusCode": attempt.status_code,
            "durationMs": attempt.duration_ms,
            "error": attempt.error,
        }
        result = await self._deliveries.update_one(
            {"_id": delivery_id_, "leaseOwner": token, "status": DeliveryStatus.PENDING.value},
            {
                "$set": fields,
                "$unset": {"leaseOwner": ""},
                "$push": {"attemptLog": {"$each": [entry], "$slice": -MAX_LOGGED_ATTEMPTS}},
            },
        )
        return result.matched_count == 1

    async def get(self, principal: Principal, delivery_id_: str) -> Delivery:
        doc = await self._deliveries.find_one(owned(principal, {"_id": delivery_id_}))
        if doc is None:
            raise NotFound("webhook delivery", delivery_id_)
        return _from_doc(doc)

    async def list_for_endpoint(
        self, principal: Principal, endpoint_id: str, first: int, after: str | None
    ) -> Page[Delivery]:
        query = owned(principal, {"endpointId": endpoint_id})
        return await newest_first(self._deliveries, query, first, after, _from_doc)

    async def redeliver(self, principal: Principal, delivery_id_: str) -> Delivery:
        """Send a delivered or failed delivery again, now, with a fresh schedule and the same
        ``webhook-id``; its earlier attempts stay listed."""
        at = clock.now()
        doc = await self._deliveries.find_one_and_update(
            owned(
                principal,
                {
                    "_id": delivery_id_,
                    "status": {
                        "$in": [DeliveryStatus.DELIVERED.value, DeliveryStatus.FAILED.value]
                    },
                },
            ),
            {
                "$set": {
                    "status": DeliveryStatus.PENDING.value,
                    "attempts": 0,
                    "nextAttemptAt": at,
                    "updatedAt": at,
                    "error": None,
                },
                "$inc": {"redeliveries": 1},
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            current = await self.get(principal, delivery_id_)  # NotFound when not theirs
            raise Conflict(
                "the delivery is still pending: it is sent on its schedule",
                status=current.status.value.upper(),
            )
        return _from_doc(doc)

    async def count_due(self) -> int:
        """Pending deliveries (for tests and the benchmark)."""
        return await self._deliveries.count_documents({"status": DeliveryStatus.PENDING.value})


def _from_doc(doc: Document) -> Delivery:
    return Delivery(
        id=doc["_id"],
        endpoint_id=doc["endpointId"],
        owner_id=AccountId(doc["ownerId"]),
        message_id=doc["messageId"],
        event=doc["event"],
        body=doc["body"],
        status=DeliveryStatus(doc["status"]),
        attempts=doc.get("attempts", 0),
        next_attempt_at=doc.get("nextAttemptAt"),
        created_at=doc["createdAt"],
        delivered_at=doc.get("deliveredAt"),
        source_ended_at=doc.get("sourceEndedAt"),
        error=doc.get("error"),
        attempt_log=tuple(
            Attempt(
                number=a["number"],
                at=a["at"],
                status_code=a.get("statusCode"),
                duration_ms=a["durationMs"],
                error=a.get("error"),
            )
            for a in doc.get("attemptLog") or ()
        ),
    )
