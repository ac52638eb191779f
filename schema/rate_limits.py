"""Per-operation rate limits: one table keyed by root field name, enforced with ``limits.aio``.

The limits apply per signed-in caller (the verified subject; an anonymous or invalid-token
operation is refused UNAUTHENTICATED and charged to nobody) and per root field, however the
operation arrives (HTTP or WebSocket): they are charged by a schema extension
(``schema/guards.py``), once per occurrence of the field in the operation, so aliases cannot
multiply a budget. They are counted in ``orchestration/base/limit_storage.py``'s storage: in
memory by default (per process), or Redis (``redis://``), which shares them between API
processes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from limits import RateLimitItem, parse

from domain.errors import RateLimited
from orchestration.base import metrics
from orchestration.base.limit_storage import LimitStorage

# Root field -> its limit per caller (limits' notation, e.g. "20/minute"). A new expensive
# operation is covered by adding one line; settings may override any entry
# (COOK_OPERATION_RATE_LIMITS).
OPERATION_LIMITS: dict[str, str] = {
    "startCook": "20/minute",
    "reviewPieces": "60/minute",
    "previewPieces": "120/minute",
    "previewLayers": "30/minute",
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
    # Outbound webhooks (docs/webhooks.md)
    "createWebhookEndpoint": "30/minute",
    "updateWebhookEndpoint": "60/minute",
    "deleteWebhookEndpoint": "60/minute",
    "rotateWebhookSecret": "10/minute",
    "sendTestWebhook": "10/minute",
    "redeliver": "30/minute",
}
# Subscriptions a deployment may limit per caller through COOK_OPERATION_RATE_LIMITS (each
# subscription started counts once); none is limited by default, and each WebSocket
# connection holds at most COOK_WS_MAX_SUBSCRIPTIONS at once.
LIMITABLE_SUBSCRIPTIONS = frozenset({"cookProgress"})


def parse_limit(value: str, where: str) -> RateLimitItem:
    try:
        return parse(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {value!r} is not a rate limit like '20/minute'") from exc


def caller_key(subject: str | None, address: str | None) -> str:
    """Whom a limit counts against: the verified subject, else the client address."""
    return f"sub:{subject}" if subject is not None else f"addr:{address or 'unknown'}"


class OperationLimiter:
    """Charges root fields against their limits. Fails open if the storage is down (see
    ``LimitStorage``): limits protect capacity, while correctness is held by the database."""

    def __init__(self, table: Mapping[str, str], storage: LimitStorage | None = None) -> None:
        self.items = {name: parse_limit(limit, name) for name, limit in table.items()}
        self.storage = storage or LimitStorage("memory://")

    async def charge(self, who: str, fields: Counter[str]) -> None:
        """Count each limited field once per occurrence; raise ``RateLimited`` (with
        ``retryAfter`` in seconds) for the first one over its limit. Nothing is charged for a
        field once an earlier one was refused."""
        for name, times in sorted(fields.items()):
            item = self.items.get(name)
            if item is None:
                continue
            if await self.storage.hit(item, "op", name, who, cost=times) is not False:
                continue  # allowed, or not counted (the storage is down: limits are open)
            retry_after = await self.storage.retry_after(item, "op", name, who)
            metrics.rate_limit_refusals.labels(scope="operation").inc()
            raise RateLimited(
                f"too many {name} calls: at most {item.amount} per "
                f"{item.multiples} {item.GRANULARITY.name}; retry in {retry_after} s",
                operation=name,
                retryAfter=retry_after,
            )
