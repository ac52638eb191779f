"""Rate limits on the HTTP routes: one budget per caller and path, applied by the app's
middleware to every HTTP request except the probes.

The caller is the verified subject (identified by the middleware before this runs), or the
client address when anonymous. A refused request gets HTTP 429 with ``Retry-After`` and a
GraphQL-shaped body (``extensions.code`` ``RATE_LIMITED``, ``retryAfter``). Counted with the
``limits`` library's async API in the process's one ``LimitStorage`` (shared by every replica
when it is Redis, and failing open when it is down), so a check never blocks the event loop.
Limits inside GraphQL, per operation, are ``schema/rate_limits.py``'s.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from domain.errors import ErrorCode
from orchestration.base import metrics
from orchestration.base.limit_storage import LimitStorage
from schema.rate_limits import caller_key, parse_limit
from service.settings import Settings


def client_address(connection: HTTPConnection) -> str | None:
    """The peer's address. Behind a proxy, run uvicorn with ``--forwarded-allow-ips`` so this
    is the client's, not the proxy's."""
    return connection.client.host if connection.client else None


def request_key(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return caller_key(principal.subject if principal else None, client_address(request))


PROBES = frozenset({"/healthz", "/readyz"})  # never limited


class HttpLimits:
    def __init__(self, settings: Settings, storage: LimitStorage) -> None:
        self.item = parse_limit(settings.http_rate_limit, "COOK_HTTP_RATE_LIMIT")
        self.storage = storage

    async def refusal(self, request: Request) -> Response | None:
        """None if the request may go on, else the 429 response to send instead."""
        path = request.url.path
        if path in PROBES:
            return None
        who = request_key(request)
        if await self.storage.hit(self.item, "http", path, who) is not False:
            return None  # allowed, or not counted (the storage is down: limits are open)
        retry_after = await self.storage.retry_after(self.item, "http", path, who)
        metrics.rate_limit_refusals.labels(scope="http").inc()
        return self._too_many(retry_after)

    def _too_many(self, retry_after: int) -> Response:
        """HTTP 429 with ``Retry-After``, and the error as a GraphQL client expects it."""
        item = self.item
        message = (
            f"too many requests: at most {item.amount} per {item.multiples} "
            f"{item.GRANULARITY.name}; retry in {retry_after} s"
        )
        error = {"code": ErrorCode.RATE_LIMITED.value, "retryAfter": retry_after}
        return JSONResponse(
            {"errors": [{"message": message, "extensions": error}]},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
