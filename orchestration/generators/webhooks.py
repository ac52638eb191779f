"""Webhook deliveries: signed, fresh, and each accepted once.

A provider signs ``"{timestamp}.{raw body}"`` with HMAC-SHA256 and its secret, and sends
``X-Cook-Timestamp`` (Unix seconds) and ``X-Cook-Signature: sha256=<hex>``. A delivery older
(or newer) than ``TOLERANCE_SECONDS`` is refused, and its signature is recorded under a unique
``_id`` so the same delivery replayed within that window is refused too (after it, the
timestamp refuses it).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from datetime import timedelta
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from orchestration.base import clock
from orchestration.base.indexes import ensure_indexes

TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 1024 * 1024

type Document = dict[str, Any]


class Refused(Exception):
    """Why a delivery is not accepted (now); ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str | None, signed: str | None, body: bytes) -> None:
    """Raises ``Refused`` unless the delivery is signed with ``secret`` and fresh."""
    if not timestamp or not signed:
        raise Refused(401, "X-Cook-Timestamp and X-Cook-Signature are required")
    if not signed.isascii():
        raise Refused(401, "the signature does not match")
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise Refused(401, "X-Cook-Timestamp must be Unix seconds")
    if not hmac.compare_digest(signature(secret, timestamp, body), signed.strip()):
        raise Refused(401, "the signature does not match")
    age = abs(clock.now().timestamp() - int(timestamp))
    if age > TOLERANCE_SECONDS:
        raise Refused(401, f"the delivery is stale (older than {TOLERANCE_SECONDS} s)")


class DeliveryLog:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._deliveries = db["webhook_deliveries"]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._deliveries, [IndexModel("at", name="by_time")])

    async def refuse_seen(self, provider: str, signed: str) -> None:
        """Raises ``Refused`` (409) if this very delivery was applied before."""
        if await self._deliveries.find_one({"_id": _key(provider, signed)}, {"_id": 1}):
            raise Refused(409, "this delivery was already received")

    async def record(self, provider: str, signed: str) -> None:
        """Remember an applied delivery (a concurrent copy of it changes nothing: applying a
        run's report is idempotent)."""
        with contextlib.suppress(DuplicateKeyError):
            await self._deliveries.insert_one({"_id": _key(provider, signed), "at": clock.now()})

    async def forget_old(self) -> None:
        """Past the tolerance a replay is refused by its timestamp: its record can go."""
        cutoff = clock.now() - timedelta(seconds=2 * TOLERANCE_SECONDS)
        await self._deliveries.delete_many({"at": {"$lt": cutoff}})


def _key(provider: str, signed: str) -> str:
    return f"{provider}:{signed.strip()}"
