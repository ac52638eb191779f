"""The embedded database's write path, before and after ``service/embedded_writes.py``, in one run.

    .venv/bin/python -m bench.embedded_envelope --writes [--quick]
    .venv/bin/python -m bench.embedded_writes [--quick]

Two embedded servers in their own processes: ``before`` runs ``IndexedReadsEngine`` (Cook's
engine before: whole-table indexes), ``after`` runs ``NamespacedIndexesEngine`` (what
``bin/serve`` runs). Both get Cook's full index set (every store's indexes and GridFS's) and a
few hundred pieces and events, so every collection has its indexes and probe indexes, as after
a normal journey. Then, rounds alternating which server goes first:

- GridFS: PyMongo's ``GridFSBucket`` writes fresh random files, then reads them back (MiB/s,
  and the server's CPU milliseconds per MiB written and read, from ``/proc``; on a loaded
  machine the CPU figures are the steady ones);
- one piece-like document: ``insert_one`` and ``update_one`` by ``_id`` (median ms).

The figures are medians over the rounds, and the after/before ratio of each.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gridfs
from pymongo import AsyncMongoClient, MongoClient
from pymongo.database import Database

from bench.common import table
from bench.embedded_envelope import piece, server_process
from orchestration.catalog.collections import CollectionStore
from orchestration.cooking.casts import CastStore
from orchestration.cooking.cooks import CookStore
from orchestration.cooking.events import EventLog
from orchestration.cooking.pieces import PieceStore
from orchestration.cooking.runs import RunStore
from orchestration.generators.spells import SpellStore
from orchestration.results.exports import Exporter
from orchestration.storage.gridfs_media import GridFSMediaStore

ENGINES = {"before": "IndexedReadsEngine", "after": "NamespacedIndexesEngine"}
STORES = {
    "collections": CollectionStore,
    "cooks": CookStore,
    "pieces": PieceStore,
    "events": EventLog,
    "spells": SpellStore,
    "casts": CastStore,
    "runs": RunStore,
    "exports": Exporter,
}
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Sizes:
    files: int
    file_bytes: int
    rounds: int
    samples: int
    pieces: int


FULL = Sizes(files=4, file_bytes=4 * 2**20, rounds=3, samples=60, pieces=500)
QUICK = Sizes(files=2, file_bytes=2**20, rounds=1, samples=10, pieces=60)


@dataclass
class Side:
    write_mib_s: list[float] = field(default_factory=list)
    read_mib_s: list[float] = field(default_factory=list)
    cpu_ms_per_mib: list[float] = field(default_factory=list)
    read_cpu_ms_per_mib: list[float] = field(default_factory=list)
    insert_ms: list[float] = field(default_factory=list)
    update_ms: list[float] = field(default_factory=list)
    write_cpu_ms: list[float] = field(default_factory=list)  # per insert + update pair


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def prepare(uri: str, db: Database[dict[str, Any]], pieces: int) -> None:
    """Cook's indexes on every collection, and some documents in the busiest ones."""
    for name, store in STORES.items():
        db[name].create_indexes(store.indexes())

    async def media() -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
        await GridFSMediaStore(client[db.name]).ensure_indexes()
        await client.close()

    asyncio.run(media())
    db.pieces.insert_many([piece(n, f"ck_{n % 5}", "completed") for n in range(pieces)])
    db.events.insert_many([{"_id": f"ev{n}", "cookId": "ck_0", "seq": n} for n in range(pieces)])


def round_on(db: Database[dict[str, Any]], pid: int, sizes: Sizes, side: Side) -> None:
    bucket = gridfs.GridFSBucket(db, bucket_name="media")
    files = [os.urandom(sizes.file_bytes) for _ in range(sizes.files)]
    mib = sizes.files * sizes.file_bytes / 2**20
    cpu, began = cpu_seconds(pid), time.perf_counter()
    ids = [bucket.upload_from_stream(uuid.uuid4().hex, data) for data in files]
    side.write_mib_s.append(mib / (time.perf_counter() - began))
    side.cpu_ms_per_mib.append((cpu_seconds(pid) - cpu) * 1000 / mib)
    cpu, began = cpu_seconds(pid), time.perf_counter()
    back = [bucket.open_download_stream(i).read() for i in ids]
    side.read_mib_s.append(mib / (time.perf_counter() - began))
    side.read_cpu_ms_per_mib.append((cpu_seconds(pid) - cpu) * 1000 / mib)
    assert back == files, "GridFS read back other bytes"
    inserts, updates = [], []
    cpu = cpu_seconds(pid)
    for n in range(sizes.samples):
        doc = piece(n, f"ck_w{uuid.uuid4().hex[:8]}", "running")
        began = time.perf_counter()
        db.pieces.insert_one(doc)
        inserts.append(time.perf_counter() - began)
        began = time.perf_counter()
        db.pieces.update_one({"_id": doc["_id"]}, {"$set": {"status": "completed", "at": NOW}})
        updates.append(time.perf_counter() - began)
    side.write_cpu_ms.append((cpu_seconds(pid) - cpu) * 1000 / sizes.samples)
    side.insert_ms.append(statistics.median(inserts) * 1000)
    side.update_ms.append(statistics.median(updates) * 1000)


def measure(sizes: Sizes) -> dict[str, Side]:
    sides = {label: Side() for label in ENGINES}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        running = {}
        for label, engine in ENGINES.items():
            uri, pid = stack.enter_context(server_process(engine, Path(tmp) / label))
            client: MongoClient[dict[str, Any]] = stack.enter_context(MongoClient(uri))
            prepare(uri, client.bench, sizes.pieces)
            running[label] = (client.bench, pid)
        for r in range(sizes.rounds):
            order = list(ENGINES) if r % 2 == 0 else list(reversed(ENGINES))
            for label in order:
                db, pid = running[label]
                round_on(db, pid, sizes, sides[label])
                print(f"round {r + 1} {label}: {vars(sides[label])}", file=sys.stderr)
    return sides


def report(sides: dict[str, Side], sizes: Sizes) -> list[str]:
    before, after = sides["before"], sides["after"]
    rows = []
    for name, attr, digits in (
        ("GridFS write, MiB/s", "write_mib_s", 1),
        ("GridFS read, MiB/s", "read_mib_s", 1),
        ("server CPU per MiB written, ms", "cpu_ms_per_mib", 0),
        ("server CPU per MiB read, ms", "read_cpu_ms_per_mib", 0),
        ("insert_one of a piece, median ms", "insert_ms", 2),
        ("update_one of a piece by _id, median ms", "update_ms", 2),
        ("server CPU per insert_one + update_one, ms", "write_cpu_ms", 2),
    ):
        b, a = statistics.median(getattr(before, attr)), statistics.median(getattr(after, attr))
        rows.append([name, f"{b:.{digits}f}", f"{a:.{digits}f}", f"{a / b:.2f}"])
    return [
        f"{sizes.files} files of {sizes.file_bytes / 2**20:g} MiB per round, {sizes.rounds} "
        f"round(s), {sizes.samples} single writes per round (medians).",
        "",
        *table(["operation", "before", "after", "after / before"], rows),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    print("\n".join(report(measure(sizes), sizes)))


if __name__ == "__main__":
    main()
