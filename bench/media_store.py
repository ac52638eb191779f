"""Media store: throughput through ``GridFSMediaStore`` against raw GridFS calls, and the
resident memory of a process exporting a 1,000-image archive.

Throughput: the same files (fresh random bytes, so nothing deduplicates) are written with
``store.put`` and with ``AsyncGridFSBucket.upload_from_stream`` (another bucket), then read
back with ``store.read``, ``store.stream`` and ``open_download_stream(...).read()``,
alternating which goes first each round. The figure is the store's time over raw GridFS's
(aim: at most 1.2x).

Memory: one ``cook serve`` process exports N accepted pieces with distinct images (the pieces
are inserted directly, the images stored through the store first); its VmRSS is sampled while
it builds the archive. The archive streams into the store entry by entry, so the peak should
stay near the start however large the archive.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient

from bench.common import PROCESS_ENV, clone_pieces, cook_to_end, embedded, owner_token, table
from bench.memory import rss_mib
from orchestration.storage.gridfs_media import GridFSMediaStore
from tests.api import collection_input
from tests.processes import api_process_handle, gql


@dataclass(frozen=True)
class Throughput:
    size: int
    count: int
    seconds: dict[str, list[float]]  # operation -> per-round times


async def _throughput(uri: str, count: int, size: int, rounds: int) -> Throughput:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db = client["bench_media"]
    store = GridFSMediaStore(db)
    await store.ensure_indexes()
    raw = AsyncGridFSBucket(db, bucket_name="raw")
    seconds: dict[str, list[float]] = {}

    def took(name: str, began: float) -> None:
        seconds.setdefault(name, []).append(time.perf_counter() - began)

    try:
        for r in range(rounds):
            files = [os.urandom(size) for _ in range(count)]
            order = ["store", "raw"] if r % 2 == 0 else ["raw", "store"]
            digests: list[str] = []
            ids: list[Any] = []
            for who in order:
                began = time.perf_counter()
                if who == "store":
                    digests = [(await store.put(f, "image/png")).sha256 for f in files]
                else:
                    ids = [await raw.upload_from_stream(f"f{i}", f) for i, f in enumerate(files)]
                took(f"write {who}", began)
            for who in order:
                began = time.perf_counter()
                if who == "store":
                    for d in digests:
                        await store.read(d)
                    took("read store", began)
                    began = time.perf_counter()
                    for d in digests:
                        b"".join([c async for c in store.stream(d)])
                    took("stream store", began)
                else:
                    for i in ids:
                        await (await raw.open_download_stream(i)).read()
                    took("read raw", began)
    finally:
        await client.close()
    return Throughput(size, count, seconds)


def measure_throughput(count: int, size: int, rounds: int) -> Throughput:
    with embedded() as (db, _):
        return asyncio.run(_throughput(db.uri, count, size, rounds))


@dataclass(frozen=True)
class ExportMemory:
    images: int
    image_bytes: int
    archive_bytes: int
    seconds: float
    samples: list[float]  # MiB


CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }"
EXPORT = "mutation($c: ID!) { exportCollection(collectionId: $c) { id } }"
STATE = "query($id: ID!) { export(id: $id) { status sizeBytes } }"


async def _fill(uri: str, db_name: str, collection_id: str, images: int, size: int) -> None:
    """``images`` accepted pieces, each with its own stored image, from one cooked template."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    db = client[db_name]
    store = GridFSMediaStore(db)
    template = await db.pieces.find_one({"collectionId": collection_id})
    assert template is not None

    async def image(_: int) -> dict[str, Any]:
        ref = await store.put(os.urandom(size), "image/png")
        return {"media": [vars(ref)]}

    await clone_pieces(db.pieces, template, 1, images, image, status="completed", review="accepted")
    await db.pieces.delete_one({"_id": template["_id"]})
    await db.collections.update_one(
        {"_id": collection_id}, {"$set": {"nextPieceIndex": images + 1}}
    )
    await client.close()


def measure_export(images: int, image_bytes: int) -> ExportMemory:
    with embedded() as (db, root):
        env = {
            "MONGODB_URI": db.uri,
            "COOK_TICK_SECONDS": "0.05",
            "COOK_DB_NAME": "bench_export",
            "COOK_DB_TIMEOUT_MS": "60000",
            **PROCESS_ENV,
        }
        data = root / "data"
        with api_process_handle(env, data, root / "api.log") as (base, proc):
            token = owner_token(data)
            spec = collection_input(
                totalSupply=images + 10, generator={"toolId": "test"}, template={"p": "[[Animal]]"}
            )
            collection = gql(base, token, CREATE, {"i": spec})["createCollection"]["id"]
            cook_to_end(base, token, collection, 1)
            asyncio.run(_fill(db.uri, "bench_export", collection, images, image_bytes))
            samples = [rss_mib(proc.pid)]
            began = time.monotonic()
            export = gql(base, token, EXPORT, {"c": collection})["exportCollection"]["id"]
            while (job := gql(base, token, STATE, {"id": export})["export"])["status"] not in (
                "COMPLETED",
                "FAILED",
            ):
                samples.append(rss_mib(proc.pid))
                time.sleep(0.2)
            samples.append(rss_mib(proc.pid))
            assert job["status"] == "COMPLETED", job
            seconds = time.monotonic() - began
    return ExportMemory(images, image_bytes, job["sizeBytes"], seconds, samples)


def report(t: Throughput, m: ExportMemory) -> list[str]:
    mib = t.size * t.count / 2**20

    def row(name: str, baseline: str) -> list[str]:
        ours = statistics.median(t.seconds[name])
        theirs = statistics.median(t.seconds[baseline])
        return [name, f"{mib / ours:.1f}", f"{mib / theirs:.1f}", f"{ours / theirs:.2f}x"]

    lines = [
        f"{t.count} files of {t.size // 1024} KiB, {len(t.seconds['write store'])} rounds "
        "(median); MiB/s through the store and through raw GridFS calls on another bucket, "
        "and the store's time over raw GridFS's. Aim: at most 1.2x.",
        "",
        *table(
            ["operation", "store MiB/s", "raw GridFS MiB/s", "time ratio"],
            [
                row("write store", "write raw"),
                row("read store", "read raw"),
                row("stream store", "read raw"),
            ],
        ),
        "",
        f"Exporting {m.images} pieces with {m.image_bytes // 1024} KiB images each "
        f"(a {m.archive_bytes / 2**20:.0f} MiB archive) took {m.seconds:.0f} s; the exporting "
        f"process's VmRSS: {m.samples[0]:.0f} MiB before, peak {max(m.samples):.0f} MiB, "
        f"{m.samples[-1]:.0f} MiB after ({len(m.samples)} samples). "
        f"Peak growth {max(m.samples) - m.samples[0]:.0f} MiB for the archive's "
        f"{m.archive_bytes / 2**20:.0f} MiB.",
    ]
    return lines
