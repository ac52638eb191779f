"""The GridFS media store over the embedded server: round trips, ranges, deduplication under
races between processes, and the collector's grace period under races with storing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gridfs.errors import CorruptGridFile
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from orchestration.storage.gridfs_media import CHUNK_BYTES, GridFSMediaStore
from orchestration.storage.media import FileMediaStore
from orchestration.storage.media_gc import REFERENCES, MediaCollector
from service.embedded_db import EmbeddedDatabase

type Db = AsyncDatabase[dict[str, Any]]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def db(embedded: EmbeddedDatabase) -> AsyncIterator[Db]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(embedded.uri, tz_aware=True)
    name = f"media_{uuid.uuid4().hex[:16]}"  # the worker's server is shared between tests
    yield client[name]
    await client.drop_database(name)
    await client.close()


async def store_of(db: Db) -> GridFSMediaStore:
    store = GridFSMediaStore(db)
    await store.ensure_indexes()
    return store


async def orphan_chunks(db: Db) -> int:
    sealed = {doc["_id"] async for doc in db["media.files"].find({}, {"_id": 1})}
    return sum(
        [
            1
            async for c in db["media.chunks"].find({}, {"files_id": 1})
            if c["files_id"] not in sealed
        ]
    )


async def test_a_three_megabyte_file_round_trips_through_gridfs_on_the_embedded_server(
    db: Db,
) -> None:
    store = await store_of(db)
    data = os.urandom(3 * 1024 * 1024)
    ref = await store.put(data, "image/png")
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert ref.size == len(data)
    assert await store.read(ref.sha256) == data
    assert b"".join([c async for c in store.stream(ref.sha256)]) == data
    assert await store.size(ref.sha256) == len(data)
    chunks = await db["media.chunks"].count_documents({})
    assert chunks == -(-len(data) // CHUNK_BYTES)


async def test_any_byte_range_streams_exactly_those_bytes(db: Db) -> None:
    store = await store_of(db)
    data = os.urandom(CHUNK_BYTES * 3 + 17)
    ref = await store.put(data, "application/zip")
    rng = random.Random(5)
    cuts = [(0, 1), (CHUNK_BYTES - 1, CHUNK_BYTES + 1), (len(data) - 5, len(data)), (3, None)]
    cuts += [tuple(sorted(rng.sample(range(len(data) + 1), 2))) for _ in range(6)]  # type: ignore[misc]
    for start, end in cuts:
        got = b"".join([c async for c in store.stream(ref.sha256, start, end)])
        assert got == data[start:end]


async def test_a_file_larger_than_the_wires_largest_message_streams_whole(db: Db) -> None:
    """The embedded server answers a find with every match in one reply unless asked for a
    batch size; a file's chunks past 48 MB in one reply failed its download (a 351 MiB
    archive in bench section 8)."""
    store = await store_of(db)
    upload = await store.upload("application/zip")
    block = os.urandom(1024 * 1024)
    for n in range(50):
        await upload.write(block[n:] + block[:n])
    ref = await upload.finish()
    digest = hashlib.sha256()
    async for piece in store.stream(ref.sha256):
        digest.update(piece)
    assert digest.hexdigest() == ref.sha256
    tail = b"".join([c async for c in store.stream(ref.sha256, ref.size - 10)])
    assert tail == (block[49:] + block[:49])[-10:]


async def test_a_missing_chunk_fails_the_read_and_never_shortens_it(db: Db) -> None:
    store = await store_of(db)
    data = os.urandom(CHUNK_BYTES * 3)
    ref = await store.put(data, "application/zip")
    await db["media.chunks"].delete_one({"n": 1})
    with pytest.raises(CorruptGridFile, match="chunk #1"):
        await store.read(ref.sha256)


async def test_a_streamed_upload_is_named_by_its_content_and_stored_once(db: Db) -> None:
    store = await store_of(db)
    data = os.urandom(CHUNK_BYTES * 9 + 3)
    for _ in range(2):
        upload = await store.upload("application/zip")
        for start in range(0, len(data), 100_000):
            await upload.write(data[start : start + 100_000])
        ref = await upload.finish()
        assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert await db["media.files"].count_documents({}) == 1
    assert await orphan_chunks(db) == 0
    assert await store.read(ref.sha256) == data


class CollectedUnderTheRefusal(GridFSMediaStore):
    """The collector removes the stored copy just after an upload's insert was refused for it
    (the copy was old and named by nothing), before the upload touches it."""

    async def _touch(self, digest: str) -> bool:
        await self._files.delete_many({"filename": digest})  # the stored copy's chunks stay:
        return await super()._touch(digest)  # orphans, the collector's next round


async def test_a_stored_copy_collected_while_the_same_bytes_are_uploaded_leaves_the_upload_stored(
    db: Db,
) -> None:
    store = await store_of(db)
    data = os.urandom(CHUNK_BYTES * 5 + 5)  # chunks written before the end: no early touch
    first = await store.put(data, "application/zip")
    racing = CollectedUnderTheRefusal(db)
    upload = await racing.upload("application/zip")
    await upload.write(data)
    assert await upload.finish() == first  # once "the stored copy vanished": a failed export
    assert await db["media.files"].count_documents({"filename": first.sha256}) == 1
    assert await store.read(first.sha256) == data


WRITER = """
import asyncio, sys, time
from pymongo import AsyncMongoClient
from orchestration.storage.gridfs_media import GridFSMediaStore
from tests.test_media_store import blob

async def main(uri: str, name: str, start_at: float, count: int) -> None:
    client = AsyncMongoClient(uri, tz_aware=True)
    store = GridFSMediaStore(client[name])
    await store.ensure_indexes()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(store.put(blob(i), "image/png") for i in range(count)))
    await client.close()

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
"""


def blob(i: int) -> bytes:
    """The same bytes in every process: some one chunk, some several."""
    return random.Random(i).randbytes(1000 + (i % 3) * CHUNK_BYTES)


async def test_identical_bytes_uploaded_concurrently_by_two_processes_are_stored_once(
    db: Db, embedded: EmbeddedDatabase
) -> None:
    count = 12
    start_at = time.time() + 3  # both processes start writing at the same moment
    writers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, embedded.uri, db.name, str(start_at), str(count), cwd=ROOT
        )
        for _ in range(2)
    ]
    assert [await asyncio.wait_for(w.wait(), 120) for w in writers] == [0, 0]
    names = [doc["filename"] async for doc in db["media.files"].find({}, {"filename": 1})]
    assert sorted(names) == sorted(hashlib.sha256(blob(i)).hexdigest() for i in range(count))
    assert await orphan_chunks(db) == 0  # each loser of the unique key removed its chunks
    store = GridFSMediaStore(db)
    for i in range(count):
        assert await store.read(hashlib.sha256(blob(i)).hexdigest()) == blob(i)


async def test_the_collector_never_removes_a_file_a_document_names_under_races(db: Db) -> None:
    """Writers store bytes (often the same bytes again) and then name them in a document, or
    store them and never name them, or drop their names; collectors with a grace period far
    shorter than the test run meanwhile. Every named file stays readable."""
    store = await store_of(db)
    collector = MediaCollector(db, store, grace_seconds=0.3, every_seconds=0.01)
    await collector.ensure_indexes()
    pieces = db["pieces"]
    stop = asyncio.Event()
    rng = random.Random(11)

    async def writer(w: int) -> None:
        for n in range(40):
            data = blob(rng.randrange(8))  # a small pool: re-storing is common
            ref = await store.put(data, "image/png")
            await asyncio.sleep(rng.random() * 0.02)
            if rng.random() < 0.8:
                await pieces.insert_one({"_id": f"{w}:{n}", "media": [{"sha256": ref.sha256}]})
            if rng.random() < 0.3:
                await pieces.delete_one({"_id": f"{w}:{rng.randrange(n + 1)}"})

    async def collect() -> None:
        while not stop.is_set():
            await collector.collect()
            await asyncio.sleep(0.01)

    collectors = [asyncio.create_task(collect()) for _ in range(2)]
    await asyncio.gather(*(writer(w) for w in range(4)))
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*collectors)
    named = {m["sha256"] async for p in pieces.find() for m in p["media"]}
    assert named
    for digest in named:
        assert await store.size(digest) is not None, "a named file was collected"
        assert hashlib.sha256(await store.read(digest)).hexdigest() == digest
    await asyncio.sleep(0.4)
    await collector.collect()
    stored = {doc["filename"] async for doc in db["media.files"].find({}, {"filename": 1})}
    assert stored == named  # and everything unnamed is gone after the grace period
    assert await orphan_chunks(db) == 0


async def test_the_filesystem_store_keeps_the_same_contract_on_one_machine(
    tmp_path: Path, db: Db
) -> None:
    store = FileMediaStore(tmp_path / "media")
    data = os.urandom(700_000)
    ref = await store.put(data, "image/png")
    again = await store.upload("image/png")
    await again.write(data[:100])
    await again.write(data[100:])
    assert await again.finish() == ref
    assert await store.read(ref.sha256) == data
    assert b"".join([c async for c in store.stream(ref.sha256, 10, 300_000)]) == data[10:300_000]
    assert await store.size(ref.sha256) == len(data)
    unnamed = await store.put(b"nobody names me", "image/png")
    half = await store.upload("application/zip")
    await half.write(b"half an archive")
    await db["pieces"].insert_one({"media": [{"sha256": ref.sha256}]})
    await asyncio.sleep(1.1)
    collector = MediaCollector(db, store, grace_seconds=0.5, every_seconds=1)
    assert await collector.collect() == 2  # the unnamed file and the unfinished upload
    assert await store.size(unnamed.sha256) is None
    assert await store.read(ref.sha256) == data
    await half.abort()


def naming(path: str, digest: str) -> dict[str, Any]:
    """A document naming ``digest`` at the dotted ``path`` (arrays of objects between)."""
    first, *rest = path.split(".")
    node: Any = digest
    for key in reversed(rest):
        node = [{key: node}]
    return {first: node}


@pytest.mark.parametrize(("collection", "path"), REFERENCES)
async def test_a_file_named_by_any_kind_of_document_outlives_the_grace_period(
    db: Db, collection: str, path: str
) -> None:
    store = await store_of(db)
    collector = MediaCollector(db, store, grace_seconds=0.1, every_seconds=0.01)
    await collector.ensure_indexes()
    named = await store.put(blob(1), "image/png")
    unnamed = await store.put(blob(2), "image/png")
    await db[collection].insert_one({"_id": "doc", **naming(path, named.sha256)})
    await asyncio.sleep(0.3)
    await collector.collect()
    assert await store.size(named.sha256) is not None
    assert await store.size(unnamed.sha256) is None
