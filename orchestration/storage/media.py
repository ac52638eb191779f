"""Media the service keeps: fetched from providers with limits, stored content-addressed.

``MediaStore`` is the one storage interface, for images and export archives alike: a file is
named by the SHA-256 of its bytes, so storing the same bytes twice (a duplicate delivery, two
processes racing) keeps one copy. ``GridFSMediaStore`` (``gridfs_media.py``, the default
with ``MONGODB_URI``) keeps files in the database; ``FileMediaStore`` keeps them under the data
directory, for one machine (the default with the embedded database, see
``service/stores.py``). Both
stream in chunks both ways: ``upload`` writes a file piece by piece (hashing as it goes) and
``stream`` reads any byte range of one; ``digests`` lists what a store holds (``cook media
migrate`` copies it all to the other store).

Nothing is half-written: a file appears under its name only whole (a rename, or the file
document written after its chunks), and a ``put`` that fails removes what it wrote.
``store_trouble`` says when a failure is the store's own (full, unreachable, too slow), so
callers turn it into a retryable attempt failure or an export's error rather than a crash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import errno
import hashlib
import ipaddress
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlsplit

import httpx
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

from orchestration.base import metrics
from orchestration.base.tools import MediaRef, OutputUnavailable, ToolFailure

IMAGE_TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}
MAX_MEDIA_BYTES = 20 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 30.0
READ_CHUNK = 1024 * 1024


class Upload(Protocol):
    """One file being written; ``finish`` names it by its content (or finds it stored)."""

    @property
    def id(self) -> str:
        """The upload's own id, until it is finished (the export worker records it, so the
        collector spares its chunks while the export runs)."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def finish(self) -> MediaRef: ...

    async def abort(self) -> None: ...


class MediaStore(Protocol):
    async def put(self, data: bytes, content_type: str) -> MediaRef: ...

    async def read(self, sha256: str) -> bytes: ...

    async def upload(self, content_type: str) -> Upload: ...

    async def size(self, sha256: str) -> int | None:
        """The stored file's length in bytes, or None when it is not stored."""
        ...

    def stream(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive; None: to the end) in chunks."""
        ...

    def digests(self) -> AsyncIterator[str]:
        """The SHA-256 of every whole file the store holds, in ascending order."""
        ...

    async def collect(self, cutoff: datetime, referenced: Referenced) -> int:
        """Remove files stored or last re-stored before ``cutoff`` that ``referenced`` does
        not name, and chunks of uploads begun before it that never finished (except those
        ``referenced.uploads`` names); returns how many files and uploads were removed."""
        ...


class Referenced(Protocol):
    async def names(self, digests: list[str]) -> set[str]:
        """The digests among ``digests`` that some live document names."""
        ...

    async def uploads(self) -> set[str]:
        """Upload ids that running work is still writing."""
        ...


def store_trouble(exc: BaseException) -> str | None:
    """Why a store operation failed, when the store itself is the cause (it is full, cannot
    be reached or answered too slowly): worth trying again later. None for anything else."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the media store is full (no space left)"
    if isinstance(exc, ConnectionFailure | ExecutionTimeout | WTimeoutError | TimeoutError):
        return "the media store is unreachable or too slow"
    if isinstance(exc, PyMongoError):
        return f"the media store refused the operation ({type(exc).__name__})"
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return f"the media store failed ({exc.strerror or type(exc).__name__})"
    return None


async def put_whole(upload: Upload, data: bytes) -> MediaRef:
    """Write ``data`` through ``upload`` and finish it; on any failure the upload is aborted
    (its bytes removed, as far as the store still answers) and the failure raised."""
    try:
        await upload.write(data)
        return await upload.finish()
    except BaseException:
        with contextlib.suppress(Exception):
            await upload.abort()
        raise


def check_digest(sha256: str) -> str:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError("not a SHA-256")
    return sha256


class FileMediaStore:
    """Files under one directory: ``<root>/<first two hex digits>/<sha256>``, for one machine."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / check_digest(sha256)

    async def put(self, data: bytes, content_type: str) -> MediaRef:
        return await put_whole(await self.upload(content_type), data)

    async def read(self, sha256: str) -> bytes:
        return await asyncio.to_thread(self._path(sha256).read_bytes)

    async def digests(self) -> AsyncIterator[str]:
        if not self.root.is_dir():
            return
        for folder in await asyncio.to_thread(_listing, self.root, "??"):
            for name in await asyncio.to_thread(_listing, self.root / folder, "*"):
                if len(name) == 64 and name[:2] == folder:
                    yield name

    async def upload(self, content_type: str) -> FileUpload:
        return await asyncio.to_thread(FileUpload, self, content_type)

    async def size(self, sha256: str) -> int | None:
        path = self._path(sha256)
        try:
            return (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            return None

    async def stream(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        handle: BinaryIO = await asyncio.to_thread(self._path(sha256).open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = None if end is None else end - start
            while left is None or left > 0:
                want = READ_CHUNK if left is None else min(READ_CHUNK, left)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def collect(self, cutoff: datetime, referenced: Referenced) -> int:
        """On one machine: files not touched since ``cutoff`` and named by nothing, and
        temporary files of uploads begun before it."""
        removed = 0
        limit = cutoff.timestamp()
        if not self.root.is_dir():
            return 0
        for temp in self.root.glob("upload-*"):
            if temp.stat().st_mtime < limit and temp.name not in await referenced.uploads():
                temp.unlink(missing_ok=True)
                removed += 1
        stale = [
            p.name
            for p in self.root.glob("??/*")
            if len(p.name) == 64 and p.stat().st_mtime < limit
        ]
        for start in range(0, len(stale), 500):
            batch = stale[start : start + 500]
            named = await referenced.names(batch)
            for digest in batch:
                path = self._path(digest)
                if digest not in named and path.stat().st_mtime < limit:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


def _listing(folder: Path, pattern: str) -> list[str]:
    return sorted(p.name for p in folder.glob(pattern))


class FileUpload:
    def __init__(self, store: FileMediaStore, content_type: str) -> None:
        store.root.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=store.root, prefix="upload-")
        self._store = store
        self._content_type = content_type
        self._temp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0

    @property
    def id(self) -> str:
        return self._temp.name

    async def write(self, data: bytes) -> None:
        self._size += len(data)
        await asyncio.to_thread(self._write, data)  # hashing too: off the event loop

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)

    async def finish(self) -> MediaRef:
        digest = self._hash.hexdigest()
        await asyncio.to_thread(self._place, self._store._path(digest))
        metrics.media_bytes_stored.inc(self._size)
        return MediaRef(digest, self._content_type, self._size)

    def _place(self, path: Path) -> None:
        self._file.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            os.utime(path)  # stored again: the collector's grace period starts over
            self._temp.unlink(missing_ok=True)
        else:
            os.replace(self._temp, path)  # atomic: a reader sees the whole file or none

    async def abort(self) -> None:
        with contextlib.suppress(OSError):  # a full disk may refuse to flush what is left
            self._file.close()
        self._temp.unlink(missing_ok=True)


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
