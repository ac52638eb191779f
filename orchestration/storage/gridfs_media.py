"""The default ``MediaStore``: files in the database, in GridFS's layout (bucket ``media``).

Chunks (``media.chunks``: ``files_id``, ``n``, ``data``) are written first under a fresh
``ObjectId``, the whole file hashed as it goes; the file document (``media.files``) is written
last, with ``filename`` = the SHA-256 of the bytes under a unique index. So a file exists
only once all its chunks do, the same bytes are stored once however many processes race to
store them (the loser of the unique key deletes its own chunks and uses the winner's), and a
reader (this store, or PyMongo's ``AsyncGridFSBucket`` by name) sees a whole file or none.

Storing bytes that are already stored sets ``metadata.touchedAt`` on the file, and the
collector deletes a file only by a conditional delete on an old ``touchedAt``: a put that
re-stores a file either keeps it alive or, if the collector won, stores it anew.

Chunks are written by the store itself (``insert_many`` of several chunks per round trip,
each insert its own document) rather than through ``AsyncGridIn``, which writes the file
document under a name fixed before the bytes are known. Reads query the chunks themselves
too, in batches of ``CHUNKS_PER_READ``, rather than through the bucket's ``GridOut``, whose
find asks for no batch size: the embedded server then answered a large file's chunks in one
reply past the wire's 48 MB limit, and a 351 MiB archive could not be downloaded.

Each round trip carrying file bytes (a batch of chunks written, a chunk read) gets its own
time budget, ``ROUND_TRIP_SECONDS``, instead of the client's per-operation ``timeoutMS``
(5 s by default, sized for documents): a slow server makes a large file slow to store, not
an attempt that fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pymongo
from bson import Binary, ObjectId
from gridfs.errors import CorruptGridFile
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from orchestration.base import clock, metrics
from orchestration.base.indexes import ensure_indexes
from orchestration.base.tools import MediaRef
from orchestration.storage.media import Referenced, check_digest, put_whole

type Document = dict[str, Any]

BUCKET = "media"
CHUNK_BYTES = 255 * 1024  # GridFS's default chunk size
CHUNKS_PER_WRITE = 4  # about 1 MiB per insert_many (the embedded engine writes each at once)
SEAL_TRIES = 3  # a stored copy collected under a refused insert: the insert is tried again
COLLECT_BATCH = 500
CHUNKS_PER_READ = 16  # about 4 MiB per reply of a read
ROUND_TRIP_SECONDS = 120.0  # per batch of chunks written (about 1 MiB) or read (about 4 MiB)


class GridFSMediaStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._files = db[f"{BUCKET}.files"]
        self._chunks = db[f"{BUCKET}.chunks"]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(
            self._files,
            [
                IndexModel("filename", name="one_file_per_content", unique=True),
                IndexModel("metadata.touchedAt", name="collect_by_age"),
            ],
        )
        await ensure_indexes(
            self._chunks,
            [
                # The name and shape GridFS itself creates, so a bucket finds it in place.
                IndexModel(
                    [("files_id", ASCENDING), ("n", ASCENDING)], name="files_id_1_n_1", unique=True
                ),
                IndexModel([("n", ASCENDING), ("files_id", ASCENDING)], name="first_chunks"),
            ],
        )

    # --- writing ------------------------------------------------------------------------

    async def put(self, data: bytes, content_type: str) -> MediaRef:
        digest = hashlib.sha256(data).hexdigest()
        if await self._touch(digest):
            return MediaRef(digest, content_type, len(data))
        return await put_whole(GridFSUpload(self, content_type), data)

    async def upload(self, content_type: str) -> GridFSUpload:
        return GridFSUpload(self, content_type)

    async def _touch(self, digest: str) -> bool:
        """Mark a stored file as stored again (restarting its grace period)."""
        result = await self._files.update_one(
            {"filename": digest}, {"$set": {"metadata.touchedAt": clock.now()}}
        )
        return result.matched_count == 1

    async def _write_chunks(self, files_id: ObjectId, first: int, chunks: list[bytes]) -> None:
        with pymongo.timeout(ROUND_TRIP_SECONDS):
            await self._chunks.insert_many(
                [
                    {"files_id": files_id, "n": first + i, "data": Binary(chunk)}
                    for i, chunk in enumerate(chunks)
                ],
                ordered=True,
            )

    async def _seal(self, files_id: ObjectId, digest: str, length: int, kind: str) -> bool:
        """Write the file document: True when these chunks became the stored copy, False when
        the same bytes were already stored (that copy is touched, these chunks dropped). A
        copy that the collector removes between our refused insert and the touch (it was old
        and unnamed) leaves the name free: the insert is tried again, our chunks still there."""
        for _ in range(SEAL_TRIES):
            at = clock.now()
            try:
                await self._files.insert_one(
                    {
                        "_id": files_id,
                        "filename": digest,
                        "length": length,
                        "chunkSize": CHUNK_BYTES,
                        "uploadDate": at,
                        "metadata": {"contentType": kind, "touchedAt": at},
                    }
                )
            except DuplicateKeyError:
                if await self._touch(digest):
                    await self._drop_chunks(files_id)
                    return False
                continue
            return True
        raise RuntimeError("the stored copy kept vanishing while storing it again; retry")

    async def _drop_chunks(self, files_id: ObjectId) -> None:
        # The first chunk last: an upload's chunks are found through it (``first_chunks``).
        await self._chunks.delete_many({"files_id": files_id, "n": {"$gt": 0}})
        await self._chunks.delete_many({"files_id": files_id})

    # --- reading ------------------------------------------------------------------------

    async def read(self, sha256: str) -> bytes:
        return b"".join([chunk async for chunk in self.stream(sha256)])

    async def digests(self) -> AsyncIterator[str]:
        last = ""
        while True:
            batch = [
                doc["filename"]
                async for doc in self._files.find({"filename": {"$gt": last}}, {"filename": 1})
                .sort("filename", ASCENDING)
                .limit(COLLECT_BATCH)
            ]
            if not batch:
                return
            for digest in batch:
                yield digest
            last = batch[-1]

    async def size(self, sha256: str) -> int | None:
        doc = await self._files.find_one({"filename": check_digest(sha256)}, {"length": 1})
        return None if doc is None else int(doc["length"])

    async def stream(
        self, sha256: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Bytes ``start`` to ``end`` of a stored file, a chunk at a time, read in batches of
        ``CHUNKS_PER_READ`` (about 4 MiB): a server that answers a find with every match in
        one reply (mongoeco does, however large) would send a large file's chunks as one
        message past the wire's maximum, and the read failed."""
        doc = await self._files.find_one(
            {"filename": check_digest(sha256)}, {"length": 1, "chunkSize": 1}
        )
        if doc is None:
            raise FileNotFoundError(sha256)
        length, size = int(doc["length"]), int(doc["chunkSize"])
        stop = length if end is None else min(end, length)
        if start >= stop:
            return
        first, last = start // size, (stop - 1) // size
        chunks = (
            self._chunks.find(
                {"files_id": doc["_id"], "n": {"$gte": first, "$lte": last}}, {"n": 1, "data": 1}
            )
            .sort("n", ASCENDING)
            .batch_size(CHUNKS_PER_READ)
        )
        try:
            for n in range(first, last + 1):
                with pymongo.timeout(ROUND_TRIP_SECONDS):
                    chunk = await anext(chunks, None)
                data: bytes = b"" if chunk is None or chunk["n"] != n else bytes(chunk["data"])
                if len(data) != min(size, length - n * size):
                    raise CorruptGridFile(f"chunk #{n} of {sha256} is missing or truncated")
                yield data[max(start - n * size, 0) : stop - n * size]
        finally:
            await chunks.close()

    # --- collecting ---------------------------------------------------------------------

    async def collect(self, cutoff: datetime, referenced: Referenced) -> int:
        return await self._collect_files(cutoff, referenced) + await self._collect_uploads(
            cutoff, referenced
        )

    async def _collect_files(self, cutoff: datetime, referenced: Referenced) -> int:
        removed = 0
        last: str = ""
        while True:
            batch = [
                (doc["_id"], doc["filename"])
                async for doc in self._files.find(
                    {"metadata.touchedAt": {"$lt": cutoff}, "filename": {"$gt": last}},
                    {"filename": 1},
                )
                .sort("filename", ASCENDING)
                .limit(COLLECT_BATCH)
            ]
            if not batch:
                return removed
            last = batch[-1][1]
            named = await referenced.names([digest for _, digest in batch])
            for files_id, digest in batch:
                if digest in named:
                    continue
                # Conditional: a put that re-stored the file since the query keeps it.
                gone = await self._files.delete_one(
                    {"_id": files_id, "metadata.touchedAt": {"$lt": cutoff}}
                )
                if gone.deleted_count:
                    await self._drop_chunks(files_id)
                    removed += 1

    async def _collect_uploads(self, cutoff: datetime, referenced: Referenced) -> int:
        """Chunks whose file document never came: uploads begun before ``cutoff`` (their
        ``ObjectId`` says when) that no running work still names."""
        spared = await referenced.uploads()
        removed = 0
        after = ObjectId("0" * 24)
        horizon = ObjectId.from_datetime(cutoff)
        while True:
            firsts = [
                doc["files_id"]
                async for doc in self._chunks.find(
                    {"n": 0, "files_id": {"$gt": after, "$lt": horizon}}, {"files_id": 1}
                )
                .sort("files_id", ASCENDING)
                .limit(COLLECT_BATCH)
            ]
            if not firsts:
                return removed
            after = firsts[-1]
            sealed = {
                doc["_id"] async for doc in self._files.find({"_id": {"$in": firsts}}, {"_id": 1})
            }
            for files_id in firsts:
                if files_id not in sealed and str(files_id) not in spared:
                    await self._drop_chunks(files_id)
                    removed += 1


class GridFSUpload:
    """Chunks go out as they fill (``CHUNKS_PER_WRITE`` per round trip); nothing else stays."""

    def __init__(self, store: GridFSMediaStore, content_type: str) -> None:
        self._store = store
        self._content_type = content_type
        self._files_id = ObjectId()
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._written = 0  # chunks written
        self._size = 0

    @property
    def id(self) -> str:
        return str(self._files_id)

    async def write(self, data: bytes) -> None:
        self._hash.update(data)
        self._size += len(data)
        self._buffer += data
        if len(self._buffer) >= CHUNK_BYTES * CHUNKS_PER_WRITE:
            await self._flush(final=False)

    async def _flush(self, *, final: bool) -> None:
        whole = len(self._buffer) if final else len(self._buffer) // CHUNK_BYTES * CHUNK_BYTES
        if whole == 0:
            return
        view = bytes(self._buffer[:whole])
        del self._buffer[:whole]
        chunks = [view[i : i + CHUNK_BYTES] for i in range(0, len(view), CHUNK_BYTES)]
        await self._store._write_chunks(self._files_id, self._written, chunks)
        self._written += len(chunks)

    async def finish(self) -> MediaRef:
        digest = self._hash.hexdigest()
        ref = MediaRef(digest, self._content_type, self._size)
        if self._written == 0 and await self._store._touch(digest):
            return ref  # nothing written yet and already stored: done
        await self._flush(final=True)
        sealed = await self._store._seal(self._files_id, digest, self._size, self._content_type)
        metrics.media_bytes_stored.inc(self._size if sealed else 0)
        return ref

    async def abort(self) -> None:
        self._buffer.clear()
        await self._store._drop_chunks(self._files_id)
