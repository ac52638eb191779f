"""HTTP caching of GraphQL answers to GET: ``Cache-Control: private, no-cache``, a strong ``ETag``
computed from the exact response body, and ``304 Not Modified`` when ``If-None-Match`` names it.

Every answer depends on the caller's token, so it is never shared (``private``, ``Vary:
Authorization``) and always revalidated (``no-cache``): the ETag saves the body, not the query.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

CACHE_CONTROL = "private, no-cache"


def etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def matches(if_none_match: str | None, tag: str) -> bool:
    if not if_none_match:
        return False
    given = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return tag in given or "*" in given


def revalidated(request: Request, response: Response) -> Response:
    """The response with its caching headers, or a bodiless 304 if the client has it."""
    body = getattr(response, "body", None)  # not a streamed file (the IDE's page)
    if response.status_code != 200 or not isinstance(body, bytes):
        return response
    tag = etag(body)
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    if matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return response
