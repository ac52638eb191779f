"""The embedded database's envelope: Cook's own queries as the collection grows, before and after
the read fixes, over the wire, in one run.

    .venv/bin/python -m bench.embedded_envelope [--sizes 1000,10000,30000,100000]
                                                 [--before-up-to 30000] [--samples 15]
    .venv/bin/python -m bench.embedded_envelope --writes [--quick]   (bench/embedded_writes.py)

Two embedded servers in their own processes, one per engine: ``before`` is Cook's engine
without the read fixes (``FlatInsertSQLiteEngine``), ``after`` is ``IndexedReadsEngine``. Both
get the same pieces, with Cook's real piece indexes: one cook of 60 pieces, and the rest spread
over 25 other cooks. Each sample of an operation follows an unrelated insert (as under a cook,
where every write clears the engine's cached answers about the collection), and the tables give
the median wall milliseconds per operation and its ratio to the smallest size. The ``before``
server stops growing at ``--before-up-to`` (its reads scan the collection: minutes per size).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymongo import MongoClient, ReturnDocument
from pymongo.collection import Collection

from bench.common import table
from orchestration.cooking.pieces import PieceStore
from service.embedded_db import wait_until_answering

ENGINES = {"before": "FlatInsertSQLiteEngine", "after": "IndexedReadsEngine"}
COOK = "ck_target"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
type Op = Callable[[int], object]


def piece(n: int, cook: str, status: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": f"pc_{cook}_{n:09d}",
        "collectionId": f"cl_{cook}",
        "cookId": cook,
        "ownerId": "acct_owner",
        "index": n,
        "indexKey": f"cl_{cook}:{n}",
        "jobKey": f"{cook}:{n}",
        "status": status,
        "review": ("pending", "accepted", "rejected", "excluded")[n % 4],
        "attempt": 1,
        "params": {"prompt": "a cute cat wearing a hat " * 4},
        "traits": [{"category": "Animal", "name": "Cat", "value": "a cute cat"}],
        "createdAt": NOW,
    }
    if status in ("running", "completed"):
        doc["seat"] = f"{cook}:{n}"
    if status == "running":
        doc["slot"] = f"{cook}:{n}"
        doc["leaseExpiresAt"] = NOW
    return doc


def target() -> list[dict[str, Any]]:
    statuses = ["running"] * 8 + ["completed"] * 46 + ["retrying"] * 6
    return [piece(i + 1, COOK, s) for i, s in enumerate(statuses)]


def others(start: int, stop: int) -> list[dict[str, Any]]:
    return [
        piece(n, f"ck_other{n % 25}", "completed" if n % 9 else "running")
        for n in range(start, stop)
    ]


def operations(coll: Collection[dict[str, Any]], writes: Iterator[int]) -> dict[str, Op]:
    running = f"pc_{COOK}_{1:09d}"

    def page(status: bool) -> Op:
        query: dict[str, Any] = {"cookId": COOK, "ownerId": "acct_owner"}
        hint = "cook_by_index"
        if status:
            query |= {"status": {"$in": ["running", "completed"]}, "index": {"$lt": 59}}
            hint = "cook_status_by_index"
        return lambda _: list(coll.find(query).sort("index", -1).hint(hint).limit(51))

    return {
        "insert one piece": lambda _: coll.insert_one(
            piece(next(writes), "ck_writer", "completed")
        ),
        "find_one by _id": lambda _: coll.find_one({"_id": running}),
        "find_one_and_update by _id": lambda _: coll.find_one_and_update(
            {"_id": running}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
        ),
        "complete: find_one_and_update {_id, status, attempt}": lambda _: coll.find_one_and_update(
            {"_id": running, "status": "running", "attempt": 1}, {"$inc": {"n": 1}}
        ),
        "count a cook's running pieces": lambda _: coll.count_documents(
            {"cookId": COOK, "status": "running"}
        ),
        "count a cook's live pieces ($exists)": lambda _: coll.count_documents(
            {"cookId": COOK, "seat": {"$exists": True}}
        ),
        "page of 50 by cook, index order": page(False),
        "page of 50, status $in, after a cursor": page(True),
        "cooks with retrying pieces (distinct)": lambda _: coll.distinct(
            "cookId", {"status": "retrying"}
        ),
    }


def median_ms(
    coll: Collection[dict[str, Any]], op: Op, samples: int, writes: Iterator[int]
) -> float:
    times = []
    for i in range(samples):
        coll.insert_one(piece(next(writes), "ck_noise", "completed"))  # clears cached answers
        began = time.perf_counter()
        op(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


@contextmanager
def server(engine: str, data_dir: Path) -> Iterator[str]:
    with server_process(engine, data_dir) as (uri, _):
        yield uri


@contextmanager
def server_process(engine: str, data_dir: Path) -> Iterator[tuple[str, int]]:
    """A wire server on the named engine in its own process: its URI and process id."""
    address = data_dir / "address"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.embedded_envelope", "--serve", engine, str(data_dir)]
    )
    try:
        deadline = time.monotonic() + 60
        while not address.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {engine} server did not start")
            time.sleep(0.05)
        uri = address.read_text()
        wait_until_answering(uri, 30)
        yield uri, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def serve(engine: str, data_dir: Path) -> None:
    """The server process: mongoeco's wire server on the named engine class."""
    from mongoeco.wire import AsyncMongoEcoProxyServer

    from service import embedded_engine, embedded_writes

    engine_class = getattr(embedded_writes, engine, None) or getattr(embedded_engine, engine)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        engine_obj = engine_class(str(data_dir / "bench.sqlite3"))
        async with AsyncMongoEcoProxyServer(engine=engine_obj, host="127.0.0.1", port=0) as srv:
            uri = f"mongodb://127.0.0.1:{srv.address.port}/?directConnection=true"
            (data_dir / "address.tmp").write_text(uri)
            os.replace(data_dir / "address.tmp", data_dir / "address")
            await stop.wait()

    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(main())


def measure(
    sizes: list[int], before_up_to: int, samples: int
) -> dict[str, dict[int, dict[str, float]]]:
    results: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, engine in ENGINES.items():
            with server(engine, Path(tmp) / label) as uri:
                client: MongoClient[dict[str, Any]] = MongoClient(uri)
                coll = client.bench.pieces
                coll.create_indexes(PieceStore.indexes())
                coll.insert_many(target())
                writes = itertools.count(10**9)
                loaded = 0
                for size in sizes:
                    if label == "before" and size > before_up_to:
                        break
                    for start in range(loaded, size, 1000):
                        coll.insert_many(others(start, min(size, start + 1000)))
                    loaded = size
                    began = time.monotonic()
                    ops = operations(coll, writes)
                    results.setdefault(label, {})[size] = {
                        name: median_ms(coll, op, samples, writes) for name, op in ops.items()
                    }
                    took = time.monotonic() - began
                    print(f"{label} {size:,} ({took:.0f} s):", file=sys.stderr)
                    for name, ms in results[label][size].items():
                        print(f"  {name}: {ms:.1f} ms", file=sys.stderr)
                client.close()
    return results


def report(results: dict[str, dict[int, dict[str, float]]]) -> list[str]:
    lines: list[str] = []
    after = results["after"]
    before = results.get("before", {})
    sizes = sorted(after)
    rows = []
    for name in after[sizes[0]]:
        cells = []
        for s in sizes:
            b = before.get(s, {}).get(name)
            a = after[s][name]
            cells.append(f"{b:.1f} → {a:.1f}" if b is not None else f"- → {a:.1f}")
        growth = after[sizes[-1]][name] / after[sizes[0]][name]
        rows.append([name, *cells, f"x{growth:.2f}"])
    header = ["operation (median ms, before → after)", *[f"{s:,} pieces" for s in sizes]]
    lines += table([*header, f"after: {sizes[-1]:,} / {sizes[0]:,}"], rows)
    return lines


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        serve(sys.argv[2], Path(sys.argv[3]))
        return
    if "--writes" in sys.argv:  # the write path: GridFS and single writes, before and after
        from bench import embedded_writes

        embedded_writes.main([a for a in sys.argv[1:] if a != "--writes"])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000,30000,100000")
    parser.add_argument("--before-up-to", type=int, default=30_000)
    parser.add_argument("--samples", type=int, default=15)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("\n".join(report(measure(sizes, args.before_up_to, args.samples))))


if __name__ == "__main__":
    main()
