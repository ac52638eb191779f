"""Per-operation rate limits: one table keyed by root field name, enforced with ``limits.aio``.

The limits apply per signed-in caller (the verified subject; an anonymous or invalid-token
operation is refused UNAUTHENTICATED and charged to nobody) and per root field, however the
operation arrives (HTTP or WebSocket): they are charged by a schema extension
(``schema/guards.py``), once per occurrence of the field in the operation, so aliases cannot
multiply a budget. Storage is in memory by default (per process); a storage URI
such as ``redis://`` shares the limits between API processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import Mapping
from typing import cast

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

from domain.errors import RateLimited

log = logging.getLogger("cook.rate_limits")

# Root field -> its limit per caller (limits' notation, e.g. "20/minute"). A new expensive
# operation is covered by adding one line; settings may override any entry
# (COOK_OPERATION_RATE_LIMITS).
OPERATION_LIMITS: dict[str, str] = {
    "startCook": "20/minute",
    "reviewPieces": "60/minute",
    "previewPieces": "120/minute",
    "importTraitTree": "30/minute",
    "importLayers": "10/minute",
    "uploadLayer": "120/minute",
    "createCollection": "60/minute",
    "updateCollection": "120/minute",
    "adminCancelCook": "60/minute",
    "exportCollection": "5/minute",
    "setPiecesExcluded": "60/minute",
    "createSpell": "60/minute",
    "updateSpell": "120/minute",
}

# Outbound webhooks' operations (docs/webhooks.md), merged into the table by the settings.
WEBHOOK_OPERATION_LIMITS: dict[str, str] = {
    "createWebhookEndpoint": "30/minute",
    "updateWebhookEndpoint": "60/minute",
    "deleteWebhookEndpoint": "60/minute",
    "rotateWebhookSecret": "10/minute",
    "sendTestWebhook": "10/minute",
    "redeliver": "30/minute",
}


def parse_limit(value: str, where: str) -> RateLimitItem:
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {value!r} is not a rate limit like '20/minute'") from exc


def caller_key(subject: str | None, address: str | None) -> str:
    """Whom a limit counts against: the verified subject, else the client address."""
    return f"sub:{subject}" if subject is not None else f"addr:{address or 'unknown'}"


class OperationLimiter:
    """Charges root fields against their limits. Fails open (logged) if the storage is down:
    limits protect capacity, while correctness is held by the database."""

    def __init__(self, table: Mapping[str, str], storage_uri: str = "memory://") -> None:
        self.items = {name: parse_limit(limit, name) for name, limit in table.items()}
        self._storage = cast(
            Storage, storage_from_string(f"async+{storage_uri}", wrap_exceptions=True)
        )
        self._limiter = MovingWindowRateLimiter(self._storage)

    async def charge(self, who: str, fields: Counter[str]) -> None:
        """Count each limited field once per occurrence; raise ``RateLimited`` (with
        ``retryAfter`` in seconds) for the first one over its limit. Nothing is charged for a
        field once an earlier one was refused."""
        for name, times in sorted(fields.items()):
            item = self.items.get(name)
            if item is None:
                continue
            try:
                if await self._limiter.hit(item, "op", name, who, cost=times):
                    continue
                stats = await self._limiter.get_window_stats(item, "op", name, who)
            except StorageError:
                log.warning("rate limit storage unavailable: %s not limited", name, exc_info=True)
                continue
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimited(
                f"too many {name} calls: at most {item.amount} per "
                f"{item.multiples} {item.GRANULARITY.name}; retry in {retry_after} s",
                operation=name,
                retryAfter=retry_after,
            )

    async def close(self) -> None:
        """Stop the in-memory storage's expiry task (it would outlive the event loop)."""
        if isinstance(self._storage, MemoryStorage) and self._storage.timer is not None:
            self._storage.timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._storage.timer
