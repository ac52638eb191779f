"""Serving a file from the media store over HTTP, streamed, with validators and ranges.

The ETag is the file's SHA-256 (its name in the store), so it is strong and the same on every
replica. ``Range: bytes=a-b`` (one range; ``a-``, ``-n``) answers 206 with ``Content-Range``;
an unsatisfiable one 416; ``If-Range`` with another ETag gets the whole file, so a client
resuming against changed content starts over. ``If-None-Match`` with the ETag answers 304.
"""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from orchestration.base import metrics
from orchestration.storage.media import MediaStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """(start, end exclusive), None for the whole file, False when unsatisfiable."""
    if header is None:
        return None
    found = _RANGE.fullmatch(header.strip())
    if found is None or found.group(1) == found.group(2) == "":
        return None  # not one byte range: ignored, as RFC 9110 allows
    first, last = found.group(1), found.group(2)
    if first == "":
        length = int(last)
        return (max(0, size - length), size) if length > 0 and size > 0 else False
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if start >= size or end <= start:
        return False
    return start, end


async def serve_stored(
    request: Request,
    store: MediaStore,
    sha256: str,
    content_type: str,
    headers: dict[str, str],
) -> Response | None:
    """The stored file as a response, or None when the store does not have it."""
    size = await store.size(sha256)
    if size is None:
        return None
    etag = f'"{sha256}"'
    common = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
    if etag in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=common)
    wanted = _range(request.headers.get("range"), size)
    if_range = request.headers.get("if-range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None
    if wanted is False:
        return Response(status_code=416, headers={**common, "Content-Range": f"bytes */{size}"})
    if wanted is None or wanted is True:  # (True never comes; keeps the types narrow)
        body = store.stream(sha256)
        metrics.media_bytes_served.inc(size)
        return StreamingResponse(
            body, media_type=content_type, headers={**common, "Content-Length": str(size)}
        )
    start, end = wanted
    metrics.media_bytes_served.inc(end - start)
    return StreamingResponse(
        store.stream(sha256, start, end),
        status_code=206,
        media_type=content_type,
        headers={
            **common,
            "Content-Length": str(end - start),
            "Content-Range": f"bytes {start}-{end - 1}/{size}",
        },
    )
