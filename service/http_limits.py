"""Rate limits on the HTTP routes (slowapi): one limit per caller across every route.

The caller is the verified subject (identified by the middleware before this runs), or the
client address when anonymous. A refused request gets HTTP 429 with ``Retry-After`` and a
GraphQL-shaped body (``extensions.code`` ``RATE_LIMITED``, ``retryAfter``). Limits inside
GraphQL, per operation, are ``schema/rate_limits.py``'s.
"""

from __future__ import annotations

import math
import time
import warnings

from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from domain.errors import ErrorCode
from schema.rate_limits import caller_key
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
    """slowapi's limiter, applied by the app's middleware to every HTTP request (GraphQL's
    routes are made inside Strawberry's router, which slowapi's own middleware cannot see
    through FastAPI's router inclusion, and a decorator cannot reach), through slowapi's
    public per-route decorator on one gate function. Each path has its own budget per caller.
    """

    def __init__(self, settings: Settings) -> None:
        self.limiter = Limiter(
            key_func=request_key,
            storage_uri=settings.rate_limit_storage_uri,
            strategy="moving-window",
            key_prefix="http",
            key_style="url",
            swallow_errors=True,  # fail open if a shared storage is down (logged by slowapi)
        )

        async def gate(request: Request) -> None:  # noqa: ARG001 - slowapi reads it
            return None

        with warnings.catch_warnings():
            # slowapi 0.1.10 calls asyncio.iscoroutinefunction, deprecated from Python 3.14.
            warnings.filterwarnings("ignore", ".*iscoroutinefunction", DeprecationWarning)
            self._gate = self.limiter.limit(settings.http_rate_limit)(gate)

    async def refusal(self, request: Request) -> Response | None:
        """None if the request may go on, else the 429 response to send instead."""
        if request.url.path in PROBES:
            return None
        try:
            await self._gate(request)
        except RateLimitExceeded as exc:
            return self._too_many(request, exc)
        return None

    def _too_many(self, request: Request, exc: RateLimitExceeded) -> Response:
        """HTTP 429 with ``Retry-After``, and the error as a GraphQL client expects it."""
        item, identifiers = request.state.view_rate_limit
        reset = self.limiter.limiter.get_window_stats(item, *identifiers).reset_time
        retry_after = max(1, math.ceil(reset - time.time()))
        message = f"too many requests: at most {exc.detail}; retry in {retry_after} s"
        error = {"code": ErrorCode.RATE_LIMITED.value, "retryAfter": retry_after}
        return JSONResponse(
            {"errors": [{"message": message, "extensions": error}]},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )
