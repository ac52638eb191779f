"""Where rate limits are counted: one ``limits.aio`` storage per process, shared by the HTTP
limits (``service/http_limits.py``) and the per-operation limits (``schema/rate_limits.py``).

In memory (``memory://``) each process counts its own; with Redis (``redis://...``) every
process counts against the same budget. Limits protect capacity, while every invariant is held
by the database, so they **fail open**: a check the storage does not answer within ``timeout``
seconds (a hard bound, also set as the Redis client's socket timeouts) lets the request
through. The outage is logged once, when it starts, and the storage is then left alone for
``retry_seconds``: no request waits on it meanwhile. The first check after that tries it
again; when it answers, the recovery is logged once and the limits hold again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import cast

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from limits.storage import storage_from_string

log = logging.getLogger("cook.rate_limits")

REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://", "redis+sentinel://", "redis+cluster://")


class LimitStorage:
    """Counts hits in a moving window; ``None`` from a check means "not counted" (the
    storage is down, and the limits are open)."""

    def __init__(self, uri: str, *, timeout: float = 0.25, retry_seconds: float = 2.0) -> None:
        self.uri = uri
        self.timeout = timeout
        self.retry_seconds = retry_seconds
        options: dict[str, float | str] = {}
        if uri.startswith(REDIS_SCHEMES):
            # redis-py's asyncio client (the ``redis`` package), bounded on every socket call.
            options = {
                "implementation": "redispy",
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
            }
        self._storage = cast(
            Storage, storage_from_string(f"async+{uri}", wrap_exceptions=True, **options)
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._down_until: float | None = None  # monotonic time of the next try, while down

    @property
    def is_down(self) -> bool:
        return self._down_until is not None

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool | None:
        """True if allowed (and counted), False if over the limit, None if not counted."""
        if self._down_until is not None and time.monotonic() < self._down_until:
            return None
        try:
            async with asyncio.timeout(self.timeout):
                allowed = await self._limiter.hit(item, *identifiers, cost=cost)
        except (StorageError, TimeoutError) as exc:
            self._failed(exc)
            return None
        self._answered()
        return allowed

    async def retry_after(self, item: RateLimitItem, *identifiers: str) -> int:
        """Whole seconds until the window lets one more hit through (at least 1)."""
        reset = time.time() + item.get_expiry()
        if self._down_until is None:
            try:
                async with asyncio.timeout(self.timeout):
                    stats = await self._limiter.get_window_stats(item, *identifiers)
                reset = stats.reset_time
            except (StorageError, TimeoutError) as exc:
                self._failed(exc)
        return max(1, math.ceil(reset - time.time()))

    def _failed(self, exc: BaseException) -> None:
        if self._down_until is None:
            cause = exc.storage_error if isinstance(exc, StorageError) else exc
            log.warning(
                "rate limit storage %s unavailable (%r): limits are open until it answers; "
                "trying it again every %.1f s",
                _redacted(self.uri),
                cause,
                self.retry_seconds,
            )
        self._down_until = time.monotonic() + self.retry_seconds

    def _answered(self) -> None:
        if self._down_until is not None:
            self._down_until = None
            log.warning("rate limit storage %s answers again: limits hold", _redacted(self.uri))

    async def close(self) -> None:
        """Stop the in-memory storage's expiry task (it would outlive the event loop), or
        close the Redis client's connections."""
        if isinstance(self._storage, MemoryStorage) and self._storage.timer is not None:
            self._storage.timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._storage.timer
        client = getattr(getattr(self._storage, "bridge", None), "storage", None)
        if client is not None and hasattr(client, "aclose"):
            with contextlib.suppress(Exception):
                await client.aclose()


def _redacted(uri: str) -> str:
    """The URI without its password (``redis://:secret@host`` -> ``redis://***@host``)."""
    scheme, sep, rest = uri.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"
