"""The embedded server, over the wire: flat inserts as a collection grows, duplicates still
refused, and acknowledged writes surviving a SIGKILL."""

from __future__ import annotations

import os
import sqlite3
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from mongoeco import MongoClient as DirectClient
from mongoeco.engines.sqlite import SQLiteEngine
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure

from service.embedded_checkpoints import CheckpointedEngine
from service.embedded_db import DATABASE_FILE, EmbeddedDatabase, insert_fix_applies

# mongoeco's insert without the fix: 5x an empty collection's at 1,000 documents, 10x at 2,000
# (it scans the collection), so 3,000 tells as well as 10,000 at a third of the filling (10,000
# under COOK_SOAK=1).
GROWN_SIZE = 10_000 if os.environ.get("COOK_SOAK") == "1" else 3_000
SAMPLES = 60
ALLOWED_GROWTH = 3.0  # median insert at GROWN_SIZE documents vs. into an empty collection


@pytest.fixture
def client(embedded: EmbeddedDatabase) -> Iterator[MongoClient[dict[str, Any]]]:
    c: MongoClient[dict[str, Any]] = MongoClient(embedded.uri)
    before = set(c.list_database_names())
    try:
        yield c
        for name in set(c.list_database_names()) - before:
            c.drop_database(name)
    finally:
        c.close()


def piece(i: int) -> dict[str, Any]:
    return {
        "_id": f"pc_{uuid.uuid4().hex}",
        "seat": f"ck_x:{i}",
        "cookId": "ck_x",
        "status": "completed",
        "traits": [{"category": "Animal", "name": "Cat", "value": "a cute cat"}],
        "params": {"prompt": "a cute cat wearing a hat " * 4},
    }


def median_insert_ms(*colls: Collection[dict[str, Any]]) -> list[float]:
    """Median insert time into each collection, the inserts taken in turn (one into each, then
    the next round), so a load that comes and goes on the machine falls on all of them alike."""
    times: list[list[float]] = [[] for _ in colls]
    for i in range(SAMPLES):
        for spent, coll in zip(times, colls, strict=True):
            doc = piece(GROWN_SIZE + i)
            began = time.perf_counter()
            coll.insert_one(doc)
            spent.append(time.perf_counter() - began)
    return [statistics.median(spent) * 1000 for spent in times]


def test_the_insert_fix_is_active_on_the_pinned_mongoeco_version() -> None:
    assert insert_fix_applies(), "pyproject pins mongoeco; the fix in embedded_db.py targets it"


@pytest.mark.slow
def test_insert_latency_at_thousands_of_documents_stays_within_a_small_factor_of_empty(
    client: MongoClient[dict[str, Any]],
) -> None:
    database = client[f"flat_{uuid.uuid4().hex[:8]}"]
    empty, coll = database["empty"], database["pieces"]
    for each in (empty, coll):
        each.create_index(
            "seat", unique=True, partialFilterExpression={"seat": {"$type": "string"}}
        )
        each.create_index([("cookId", 1), ("status", 1)])
    for start in range(0, GROWN_SIZE, 1000):
        coll.insert_many([piece(i) for i in range(start, min(start + 1000, GROWN_SIZE))])
    assert coll.estimated_document_count() == GROWN_SIZE
    empty_ms, grown_ms = median_insert_ms(empty, coll)
    ratio = grown_ms / empty_ms
    print(
        f"median insert: empty {empty_ms:.2f} ms, at {GROWN_SIZE} {grown_ms:.2f} ms ({ratio:.2f}x)"
    )
    assert ratio < ALLOWED_GROWTH, f"insert grew {ratio:.1f}x ({empty_ms:.2f} -> {grown_ms:.2f} ms)"

    existing = coll.find_one({}, {"_id": 1, "seat": 1})
    assert existing is not None
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": existing["_id"]})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": f"pc_{uuid.uuid4().hex}", "seat": existing["seat"]})
    assert coll.count_documents({}) == GROWN_SIZE + SAMPLES


def test_numeric_ids_still_collide_by_value(client: MongoClient[dict[str, Any]]) -> None:
    """The fix skips the value scan only for non-numeric ids: 1 and 1.0 remain one key."""
    coll = client[f"num_{uuid.uuid4().hex[:8]}"]["c"]
    coll.insert_one({"_id": 1})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": 1.0})
    coll.insert_one({"_id": {"k": "a", "n": 2}})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": {"k": "a", "n": 2.0}})


def test_a_unique_key_that_later_becomes_an_array_is_still_checked(
    client: MongoClient[dict[str, Any]],
) -> None:
    """The expression index changes speed only: multikey uniqueness behaves as before."""
    coll = client[f"arr_{uuid.uuid4().hex[:8]}"]["c"]
    coll.create_index("k", unique=True)
    coll.insert_one({"_id": "a", "k": ["x", "y"]})
    with pytest.raises(DuplicateKeyError):
        coll.insert_one({"_id": "b", "k": "y"})
    coll.insert_one({"_id": "c", "k": "z"})


@pytest.mark.parametrize("engine", ["mongoeco", "cook"])
def test_a_change_consumer_that_writes_outrun_does_not_fail_a_later_registration(
    tmp_path: Path, engine: str
) -> None:
    """The failure the wire server met: a change hub's consumer registered (for a refused
    ``$changeStream``), the dispatch off so its checkpoint never moves, more writes than the
    outbox keeps, then a hub with the same consumer id registers again. mongoeco refuses it
    and so fails the command; Cook's engine registers no consumer to be outrun."""
    kept = 5  # the outbox's capacity; 10,000 by default
    made = (SQLiteEngine if engine == "mongoeco" else CheckpointedEngine)(
        str(tmp_path / "cook.sqlite3"), change_outbox_max_entries=kept
    )
    client = DirectClient(engine=made)
    try:
        client.db.things.insert_one({"_id": "first"})  # connects the engine
        made.register_change_consumer("local-change-hub:x:1")
        client.db.things.insert_many([{"_id": i} for i in range(3 * kept)])
        if engine == "mongoeco":
            with pytest.raises(OperationFailure, match="no longer available"):
                made.register_change_consumer("local-change-hub:x:1")
        else:
            made.register_change_consumer("local-change-hub:x:1")
            client.db.things.insert_one({"_id": "after"})
            assert client.db.things.count_documents({}) == 3 * kept + 2
    finally:
        client.close()


def test_a_refused_change_stream_leaves_no_change_consumer_on_the_server(
    client: MongoClient[dict[str, Any]], embedded: EmbeddedDatabase
) -> None:
    events = client[f"cs_{uuid.uuid4().hex[:8]}"]["events"]
    with pytest.raises(OperationFailure, match=r"\$changeStream"):
        events.watch([{"$match": {"operationType": "insert"}}])
    events.insert_many([{"_id": i} for i in range(20)])
    with closing(sqlite3.connect(embedded.data_dir / DATABASE_FILE)) as file:
        consumers = file.execute("SELECT consumer_id FROM change_outbox_consumers")
        assert consumers.fetchall() == []
        assert file.execute("SELECT COUNT(*) FROM change_outbox").fetchone() == (0,)


def test_acknowledged_writes_survive_a_sigkill_of_the_server(tmp_path: Path) -> None:
    db = EmbeddedDatabase(tmp_path / "db")
    db.start()
    with MongoClient(db.uri) as c:
        c.cook.things.insert_many([{"_id": f"t_{i}", "n": i} for i in range(200)])
        c.cook.things.update_one({"_id": "t_7"}, {"$set": {"n": -7}})
    db.kill()
    db.start()
    try:
        with MongoClient(db.uri) as c:
            assert c.cook.things.count_documents({}) == 200
            assert c.cook.things.find_one({"_id": "t_7"}) == {"_id": "t_7", "n": -7}
    finally:
        db.stop()


def test_reads_never_fail_while_writes_run_alongside(embedded: EmbeddedDatabase) -> None:
    """Reads must not write: a read transaction that tries to is refused with 'locked'."""
    import threading

    name = f"rw_{uuid.uuid4().hex[:8]}"
    errors: list[Exception] = []
    stop = threading.Event()
    with MongoClient(embedded.uri) as writer_client, MongoClient(embedded.uri) as reader_client:
        wcoll = writer_client[name]["pieces"]
        wcoll.create_index(
            "seat", unique=True, partialFilterExpression={"seat": {"$type": "string"}}
        )
        rcoll = reader_client[name]["pieces"]

        def write() -> None:
            i = 0
            while not stop.is_set():
                try:
                    wcoll.insert_one(piece(i))
                    wcoll.update_one({"seat": f"ck_x:{i}"}, {"$set": {"status": "running"}})
                except Exception as exc:  # noqa: BLE001 - collected for the assertion
                    errors.append(exc)
                i += 1

        def read() -> None:
            while not stop.is_set():
                try:
                    rcoll.count_documents({"cookId": "ck_x", "status": "completed"})
                    rcoll.count_documents({"cookId": "ck_x", "seat": {"$exists": True}})
                    list(rcoll.find({"status": "running"}, {"seat": 1}).limit(5))
                except Exception as exc:  # noqa: BLE001 - collected for the assertion
                    errors.append(exc)

        threads = [
            threading.Thread(target=write),
            threading.Thread(target=read),
            threading.Thread(target=read),
        ]
        for t in threads:
            t.start()
        time.sleep(4)
        stop.set()
        for t in threads:
            t.join()
        writer_client.drop_database(name)
    assert errors == []


def test_an_api_process_that_only_starts_the_server_does_not_load_its_engine() -> None:
    """The engine and the wire server are imported by the server's process alone (about half
    a second of every API process's start, paid by every replica and every test process)."""
    import subprocess
    import sys

    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, service.app, service.embedded_db; "
            "print(sorted(m for m in sys.modules if m.startswith('mongoeco.')"
            " and m != 'mongoeco._version'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[1],
    )
    assert loaded.stdout.strip() == "[]"
