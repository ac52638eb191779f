"""Each of Cook's query shapes is served by its index on the embedded engine, and its cost stays
flat as the collection grows around it.

Cost is counted, not timed: SQLite's progress handler ticks every 1,000 virtual-machine steps
on every connection the engine opens, so a query's count covers all the SQL it runs (feature
probes included). Each shape is measured right after an unrelated write to the collection (a
write clears the engine's cached probe answers, as under a cook), on a collection holding
SMALL and then LARGE pieces of other cooks around one fixed cook; the count at LARGE must stay
within FLAT of the count at SMALL. The unpatched engine, measured the same way on the same
files, grows with the collection (so the measure can fail).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mongoeco import MongoClient as DirectClient
from pymongo import IndexModel

from domain.ids import AccountId
from domain.principal import Principal
from orchestration.cooking.cooks import CookStore
from orchestration.cooking.events import EventLog
from orchestration.cooking.pieces import (
    PieceOrder,
    PieceQuery,
    PieceStatus,
    PieceStore,
    Review,
    listing,
    supply_filter,
)
from orchestration.cooking.runs import RunStore
from service.embedded_engine import FlatInsertSQLiteEngine
from service.embedded_index_scope import whole_table_indexes
from service.embedded_writes import NamespacedIndexesEngine as IndexedReadsEngine

SOAK = os.environ.get("COOK_SOAK") == "1"
SMALL, LARGE = (1_000, 20_000) if SOAK else (300, 3_000)
FLAT = 1.5  # VM steps at LARGE / at SMALL, for every shape
OWNER = "acct_owner"
COOK, COLLECTION = "ck_target", "cl_target"
LIVE = f"{COLLECTION}:{COOK}:"  # the prefix of the target cook's seats
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def counting(base: type[Any]) -> type[Any]:
    class Counting(base):  # type: ignore[misc, valid-type]
        ticks = 0

        def _create_sqlite_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_sqlite_connection()

            def tick() -> int:
                type(self).ticks += 1
                return 0

            conn.set_progress_handler(tick, 1000)
            return conn

    return Counting


def piece(n: int, cook: str, collection: str, status: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": f"pc_{cook}_{n:08d}",
        "collectionId": collection,
        "cookId": cook,
        "ownerId": OWNER,
        "index": n,
        "indexKey": f"{collection}:{n}",
        "jobKey": f"{cook}:{n}",
        "status": status,
        "review": ("pending", "accepted", "rejected", "excluded")[n % 4],
        "attempt": 1,
        "params": {"prompt": "a cute cat wearing a hat " * 4},
        "traits": [{"category": "Animal", "name": "Cat", "value": "a cute cat"}],
        "createdAt": NOW,
        "updatedAt": NOW,
    }
    if status in ("running", "completed"):
        doc["seat"] = f"{collection}:{cook}:{n}"
    if status == "running":
        doc["slot"] = f"{cook}:{n}"
        doc["leaseExpiresAt"] = NOW + dt.timedelta(seconds=n % 50 - 25)
    if status == "retrying":
        doc["nextAttemptAt"] = NOW + dt.timedelta(seconds=n % 10 - 5)
    if status == "running" and cook == COOK:  # the target cook's events wait for the relay
        doc["outbox"] = [{"key": f"ev_{n}", "type": "piece_submitted"}]
        doc["unlogged"] = cook
    return doc


def target_cook() -> list[dict[str, Any]]:
    statuses = ["running"] * 8 + ["completed"] * 40 + ["retrying"] * 6 + ["failed"] * 6
    return [piece(i + 1, COOK, COLLECTION, s) for i, s in enumerate(statuses)]


def create(coll: Any, models: list[IndexModel]) -> None:
    for model in models:
        spec = dict(model.document)
        keys = list(spec.pop("key").items())
        if "partialFilterExpression" in spec:
            spec["partial_filter_expression"] = spec.pop("partialFilterExpression")
        coll.create_index(keys, **spec)


@contextmanager
def opened(engine: Any) -> Iterator[Any]:
    client = DirectClient(engine=engine)
    try:
        yield client.cook
    finally:
        client.close()


def build(path: Path, others: int) -> None:
    with opened(IndexedReadsEngine(str(path))) as db:
        fill(db, others)


def fill(db: Any, others: int) -> None:
    create(db.pieces, PieceStore.indexes())
    create(db.events, EventLog.indexes())
    create(db.runs, RunStore.indexes())
    create(db.cooks, CookStore.indexes())
    db.pieces.insert_many(target_cook())
    db.events.insert_many([{"_id": f"{COOK}:{s}", "cookId": COOK, "seq": s} for s in range(60)])
    batch: list[dict[str, Any]] = []
    for n in range(others):
        cook = f"ck_other{n % 25}"
        batch.append(piece(n, cook, f"cl_other{n % 25}", "completed" if n % 9 else "running"))
        if len(batch) == 1000 or n == others - 1:
            db.pieces.insert_many(batch)
            db.events.insert_many(
                [
                    {"_id": f"{d['cookId']}:{d['index']}", "cookId": d["cookId"], "seq": d["index"]}
                    for d in batch
                ]
            )
            batch = []
    db.runs.insert_many(
        [
            {
                "_id": f"run{n}",
                "status": "pending" if n % 10 == 0 else "done",
                "pollAt": NOW + dt.timedelta(seconds=n % 100 - 50),
                "deadline": NOW + dt.timedelta(seconds=n % 100),
                "polls": 0,
            }
            for n in range(max(others // 10, 30))
        ]
    )


@dataclass(frozen=True)
class Shape:
    name: str
    run: Callable[[Any], Any]
    explain: tuple[str, dict[str, Any], list[tuple[str, int]] | None, str | None] | None = None


OWNED = Principal(AccountId(OWNER))
LISTINGS = [
    listing(OWNED, PieceQuery(cook_id=COOK, **kw), 21, after)
    for kw in (
        {},
        {"statuses": (PieceStatus.RUNNING, PieceStatus.COMPLETED)},
        {"reviews": (Review.ACCEPTED,)},
        {"excluded": False},
        {"order": PieceOrder.NEWEST},
    )
    for after in (None, "aTox")
]


def shapes() -> list[Shape]:
    def find(coll: str, q: dict[str, Any], sort: Any = None, hint: Any = None, limit: int = 0):
        def run(db: Any) -> Any:
            cursor = db[coll].find(q)
            if sort:
                cursor = cursor.sort(sort)
            if hint:
                cursor = cursor.hint(hint)
            return list(cursor.limit(limit))

        return run

    running = {"_id": f"pc_{COOK}_00000001", "status": "running", "attempt": 1}
    found = [
        Shape(
            "taken slots",
            find("pieces", {"cookId": COOK, "status": "running"}),
            ("pieces", {"cookId": COOK, "status": "running"}, None, None),
        ),
        Shape(
            "live count",
            lambda db: db.pieces.count_documents({"seat": {"$gte": LIVE, "$lt": LIVE[:-1] + ";"}}),
        ),
        Shape("supply used", lambda db: db.pieces.count_documents(supply_filter(COLLECTION))),
        Shape(
            "count by status",
            lambda db: db.pieces.count_documents(
                {"cookId": COOK, "status": {"$in": ["running", "retrying"]}}
            ),
        ),
        Shape(
            "completed live",
            lambda db: db.pieces.count_documents(
                {"cookId": COOK, "status": "completed", "seat": {"$exists": True}}
            ),
        ),
        Shape(
            "due retry",
            lambda db: db.pieces.find_one_and_update(
                {"cookId": COOK, "status": "retrying", "nextAttemptAt": {"$lte": NOW}},
                {"$set": {"updatedAt": NOW}},
            ),
        ),
        Shape(
            "complete a piece",
            lambda db: db.pieces.find_one_and_update(running, {"$set": {"updatedAt": NOW}}),
        ),
        Shape(
            "renew a lease",
            lambda db: db.pieces.update_one(running, {"$set": {"leaseExpiresAt": NOW}}),
        ),
        Shape(
            "cooks with retries", lambda db: db.pieces.distinct("cookId", {"status": "retrying"})
        ),
        Shape(
            "one piece, owned",
            lambda db: db.pieces.find_one({"_id": f"pc_{COOK}_00000002", "ownerId": OWNER}),
        ),
        Shape(
            "pieces by ids",
            find("pieces", {"_id": {"$in": [f"pc_{COOK}_{i:08d}" for i in range(1, 30)]}}),
        ),
        Shape(
            "events after",
            find("events", {"cookId": COOK, "seq": {"$gt": 20}}, [("seq", 1)], None, 100),
            ("events", {"cookId": COOK, "seq": {"$gt": 20}}, [("seq", 1)], None),
        ),
        Shape(
            "a cook's events to relay",
            find("pieces", {"unlogged": COOK}),
            ("pieces", {"unlogged": COOK}, None, None),
        ),
        Shape(
            "cooks with events to relay",
            find("pieces", {"unlogged": {"$gt": ""}}, limit=1000),
            ("pieces", {"unlogged": {"$gt": ""}}, None, None),
        ),
        Shape(
            "due poll",
            lambda db: db.runs.find_one(
                {"status": "pending", "pollAt": {"$lte": NOW}, "deadline": {"$gt": NOW}}
            ),
        ),
    ]
    for i, plan in enumerate(LISTINGS):
        found.append(
            Shape(
                f"listing {i} {plan.hint}",
                find("pieces", plan.filter, plan.sort, plan.hint, plan.limit),
                ("pieces", plan.filter, plan.sort, plan.hint),
            )
        )
    return found


SHAPES = shapes()


WRITES = itertools.count(10_000_000)


def measure(engine_class: type[Any], path: Path) -> dict[str, int]:
    """Per shape, the VM steps (thousands) it costs right after an unrelated write."""
    if not issubclass(engine_class, IndexedReadsEngine):
        whole_table_indexes(str(path))  # as make_engine does for an unpatched engine
    engine = counting(engine_class)(str(path))
    found = {}
    with opened(engine) as db:
        for shape in SHAPES:
            shape.run(db)  # the first run warms mongoeco's catalogs
            db.pieces.insert_one(piece(next(WRITES), "ck_writer", "cl_writer", "completed"))
            type(engine).ticks = 0
            shape.run(db)
            found[shape.name] = int(type(engine).ticks)
    return found


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """This worker's copies of the two files. They are built once for the whole run (about 6
    s): the first worker to ask builds them under a lock in the directory the workers share,
    the others wait; each copies them, as the tests write to them."""
    built = tmp_path_factory.getbasetemp().parent / f"shapes-{SMALL}-{LARGE}"
    built.mkdir(exist_ok=True)
    names = ("small.sqlite3", "large.sqlite3")
    with (built / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (built / "done").exists():
            for name, others in zip(names, (SMALL, LARGE), strict=True):
                build(built / name, others)
            (built / "done").touch()
    own = tmp_path_factory.mktemp("shapes")
    small, large = (Path(shutil.copy(built / name, own / name)) for name in names)
    return small, large


def test_every_cook_query_shape_costs_the_same_at_ten_times_the_pieces(
    files: tuple[Path, Path],
) -> None:
    at_small, at_large = (measure(IndexedReadsEngine, f) for f in files)
    grew = [
        f"{name}: {at_small[name]} -> {at_large[name]} thousand steps"
        for name in at_small
        if at_large[name] > FLAT * max(at_small[name], 1)
    ]
    assert not grew, grew


def test_the_unpatched_engine_grows_with_the_collection_on_the_same_shapes(
    files: tuple[Path, Path],
) -> None:
    """The measure can fail: without the read fixes most shapes cost ~LARGE/SMALL times more."""
    at_small, at_large = (measure(FlatInsertSQLiteEngine, f) for f in files)
    grew = [name for name in at_small if at_large[name] > 3 * max(at_small[name], 1)]
    assert len(grew) > len(SHAPES) / 2, (at_small, at_large)


@pytest.mark.usefixtures("explain_as_served")
@pytest.mark.parametrize("shape", [s for s in SHAPES if s.explain], ids=lambda s: s.name)
def test_each_find_shape_searches_its_index_on_more_than_the_namespace(
    files: tuple[Path, Path], shape: Shape
) -> None:
    """SQLite's plan seeks the index on the query's own fields (``<expr>=?`` after ``db_name``
    and ``coll_name``) and, for a sorted find, reads in index order (no temporary B-tree)
    unless an ``$in`` precedes the sort field."""
    assert shape.explain is not None
    coll, q, sort, hint = shape.explain
    with opened(IndexedReadsEngine(str(files[1]))) as db:
        cursor = db[coll].find(q)
        if sort:
            cursor = cursor.sort(sort)
        if hint:
            cursor = cursor.hint(hint)
        plan = cursor.explain()
    lines = plan["details"]["engine_details"]
    assert any("USING INDEX" in line and "<expr>" in line for line in lines), lines
    # An $in before the sort field is several seeks; SQLite sorts their matches (bounded by
    # the cook's own pieces, not by the collection) where MongoDB merges them.
    merged = any(isinstance(v, dict) and "$in" in v for v in q.values())
    assert merged or not any("TEMP B-TREE" in line for line in lines), lines
    assert not plan["details"]["pushdown"]["pythonSort"], plan["details"]["pushdown"]
