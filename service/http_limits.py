"""Rate limits on the HTTP routes (slowapi): one limit per caller across every route.

The caller is the verified subject (identified by the middleware before this runs), or the
client address when anonymous. A refused request gets HTTP 429 with ``Retry-After`` and a
GraphQL-shaped body (``extensions.code`` ``RATE_LIMITED``, ``retryAfter``). Limits inside
GraphQL, per operation, are ``schema/rate_limits.py``'s.
"""

from __future__ import annotations

import math
import time

from slowapi import Limiter
from slowapi.errors import RateLimitExceeded
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from orchestration.errors import ErrorCode
from schema.rate_limits import caller_key
from service.settings import Settings


def client_address(connection: HTTPConnection) -> str | None:
    """The peer's address. Behind a proxy, run uvicorn with ``--forwarded-allow-ips`` so this
    is the client's, not the proxy's."""
    return connection.client.host if connection.client else None


def request_key(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return caller_key(principal.subject if principal else None, client_address(request))


def build_limiter(settings: Settings) -> Limiter:
    return Limiter(
        key_func=request_key,
        default_limits=[settings.http_rate_limit],
        storage_uri=settings.rate_limit_storage_uri,
        strategy="moving-window",
        key_prefix="http",
        swallow_errors=True,  # fail open if a shared storage is down (logged by slowapi)
    )


def rate_limit_exceeded(request: Request, exc: Exception) -> Response:
    """HTTP 429 with ``Retry-After``, and the error as a GraphQL client expects it."""
    assert isinstance(exc, RateLimitExceeded)
    limiter: Limiter = request.app.state.limiter
    item, identifiers = request.state.view_rate_limit
    reset = limiter.limiter.get_window_stats(item, *identifiers).reset_time
    retry_after = max(1, math.ceil(reset - time.time()))
    message = f"too many requests: at most {exc.detail}; retry in {retry_after} s"
    body = {
        "errors": [
            {
                "message": message,
                "extensions": {"code": ErrorCode.RATE_LIMITED.value, "retryAfter": retry_after},
            }
        ]
    }
    return JSONResponse(body, status_code=429, headers={"Retry-After": str(retry_after)})
