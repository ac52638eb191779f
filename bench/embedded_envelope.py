"""How the embedded database's operations grow with collection size, over the wire.

    .venv/bin/python -m bench.embedded_envelope [--sizes 1000,10000,50000]

Prints, per size, the median latency of each operation and its ratio to the smallest size,
all measured in this one run against a fresh embedded server (SQLite, with Cook's fix).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection, ReturnDocument

from service.embedded_db import EmbeddedDatabase

AFTER = ReturnDocument.AFTER
SAMPLES = 40

type Op = Callable[[int], object]


def doc(i: int) -> dict[str, Any]:
    return {
        "_id": f"pc_{uuid.uuid4().hex}",
        "seat": f"ck_a:{i}",
        "ownerId": "alice",
        "cookId": "ck_a",
        "status": "completed",
        "createdAt": i,
        "traits": [{"category": "Animal", "name": "Cat", "value": "a cute cat"}],
        "params": {"prompt": "a cute cat wearing a hat " * 4},
    }


def median_ms(op: Op) -> float:
    times = []
    for i in range(SAMPLES):
        began = time.perf_counter()
        op(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def operations(coll: Collection[dict[str, Any]], ids: list[str]) -> dict[str, Op]:
    def insert(i: int) -> object:
        return coll.insert_one(doc(10**9 + len(ids) * 1000 + i))

    def by_id(i: int) -> object:
        return coll.find_one({"_id": ids[i % len(ids)]})

    def update(i: int) -> object:
        query = {"_id": ids[i % len(ids)]}
        return coll.find_one_and_update(query, {"$inc": {"n": 1}}, return_document=AFTER)

    def by_key(i: int) -> object:
        return coll.find_one({"seat": f"ck_a:{i}"})

    def page(i: int) -> object:
        query = {"ownerId": "alice", "createdAt": {"$gte": -i}}
        return list(coll.find(query).sort("createdAt", DESCENDING).limit(50))

    return {
        "insert_one": insert,
        "find_one by _id": by_id,
        "find_one_and_update by _id": update,
        "find_one by unique key": by_key,
        "page of 50 by indexed sort": page,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,10000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp, EmbeddedDatabase(Path(tmp)) as db:
        coll = MongoClient(db.uri)["bench"]["pieces"]
        partial = {"seat": {"$type": "string"}}
        coll.create_index("seat", unique=True, partialFilterExpression=partial)
        coll.create_index([("ownerId", ASCENDING), ("createdAt", DESCENDING)])
        results: dict[str, list[float]] = {}
        loaded = 0
        ids: list[str] = []
        for size in sizes:
            while loaded < size:
                batch = [doc(loaded + i) for i in range(min(1000, size - loaded))]
                coll.insert_many(batch)
                ids += [d["_id"] for d in batch[:10]]
                loaded += len(batch)
            ops = operations(coll, ids)
            for name, op in ops.items():
                results.setdefault(name, []).append(median_ms(op))
            ids.append(ids[0])
        header = " | ".join(f"{s:,} docs" for s in sizes)
        print(f"| operation (median ms) | {header} | growth |")
        print("|---" * (len(sizes) + 2) + "|")
        for name, row in results.items():
            cells = " | ".join(f"{v:.2f}" for v in row)
            print(f"| {name} | {cells} | {row[-1] / row[0]:.2f}x |")


if __name__ == "__main__":
    main()
