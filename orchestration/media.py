"""Media the service keeps: fetched from providers with limits, stored content-addressed.

``MediaStore`` is the one storage interface; ``FileMediaStore`` keeps files under the data
directory (another store, such as S3, fits behind the same three methods). A file is named by
the SHA-256 of its bytes, so storing the same output twice (a duplicate delivery) is harmless.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from orchestration.tools import MediaRef, OutputUnavailable, ToolFailure

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
MAX_MEDIA_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 30.0


class MediaStore(Protocol):
    async def put(self, data: bytes, content_type: str) -> MediaRef: ...

    async def read(self, sha256: str) -> bytes: ...

    def local_path(self, sha256: str) -> Path | None:
        """Where the file lies on this machine, if it does (lets routes stream it)."""
        ...


class FileMediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError("not a SHA-256")
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes, content_type: str) -> MediaRef:
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, self._path(digest), data)
        return MediaRef(digest, content_type, len(data))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)  # atomic: a reader sees the whole file or none

    async def read(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self._path(sha256).read_bytes)

    def local_path(self, sha256: str) -> Path | None:
        path = self._path(sha256)
        return path if path.exists() else None


def _content_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


async def _refuse_internal(url: str, trusted_host: str | None) -> None:
    """Fetch from the provider's own host, or over https from public addresses only: an
    output URL must not make the service reach into its own network (SSRF). The check
    resolves the name once; a resolver that answers differently the second time (DNS
    rebinding) is not covered."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ToolFailure(f"the output URL {url[:80]!r} is not http(s)", retryable=False)
    if trusted_host is not None and host == trusted_host:
        return
    if parts.scheme != "https":
        raise ToolFailure("an output URL off the provider's host must use https", retryable=False)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, parts.port or 443)
    except OSError as exc:
        raise OutputUnavailable(f"the output host {host!r} does not resolve") from exc
    if not all(ipaddress.ip_address(info[4][0]).is_global for info in found):
        raise ToolFailure(f"the output host {host!r} is not a public address", retryable=False)


async def fetch_image(
    client: httpx.AsyncClient,
    url: str,
    store: MediaStore,
    *,
    trusted_host: str | None = None,
    max_bytes: int = MAX_MEDIA_BYTES,
) -> MediaRef:
    """Download one image within the limits and store it; ``ToolFailure`` says why not."""
    if url.startswith("data:"):
        return await _data_url(url, store, max_bytes)
    await _refuse_internal(url, trusted_host)
    try:
        async with client.stream("GET", url, timeout=FETCH_TIMEOUT_SECONDS) as response:
            if response.status_code >= 500 or response.status_code == 429:
                raise OutputUnavailable(f"fetching an output gave HTTP {response.status_code}")
            if response.status_code != 200:
                reason = f"fetching an output gave HTTP {response.status_code}"
                raise ToolFailure(reason, retryable=False)
            kind = _content_type(response.headers.get("content-type"))
            if kind not in IMAGE_TYPES:
                raise ToolFailure(f"an output has content type {kind or 'none'!r}", retryable=False)
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ToolFailure(f"an output is larger than {max_bytes} bytes", retryable=False)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise ToolFailure(
                        f"an output is larger than {max_bytes} bytes", retryable=False
                    )
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise ToolFailure(
            f"fetching an output failed: {type(exc).__name__}", retryable=True
        ) from exc
    return await store.put(b"".join(chunks), kind)


async def _data_url(url: str, store: MediaStore, max_bytes: int) -> MediaRef:
    header, _, payload = url.partition(",")
    kind = _content_type(header.removeprefix("data:").removesuffix(";base64"))
    if kind not in IMAGE_TYPES or not header.endswith(";base64"):
        raise ToolFailure("an inline output is not a base64 image", retryable=False)
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise ToolFailure(f"an output is larger than {max_bytes} bytes", retryable=False)
    try:
        data = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:
        raise ToolFailure("an inline output is not valid base64", retryable=False) from exc
    return await store.put(data, kind)
