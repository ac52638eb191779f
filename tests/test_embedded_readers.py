"""Read connections kept between reads (``service/embedded_readers.py``): a read on a kept
connection sees every write made since, as a read on a new one does; a paused read keeps its
own snapshot; the pool stays bounded and is closed with the engine. The random differential
run (``tests/test_embedded_engine.py``) runs on this engine too."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mongoeco import MongoClient as DirectClient
from mongoeco.engines.sqlite import SQLiteEngine

from service.embedded_checkpoints import CheckpointedEngine
from service.embedded_readers import IDLE_CONNECTIONS, PooledReadersEngine

Steps = list[Callable[[Any], Any]]


def connections_made(monkeypatch: pytest.MonkeyPatch) -> list[sqlite3.Connection]:
    """Every SQLite connection the engines below the pool open from now on."""
    made: list[sqlite3.Connection] = []
    create = CheckpointedEngine._create_sqlite_connection

    def counting(engine: CheckpointedEngine) -> sqlite3.Connection:
        made.append(create(engine))
        return made[-1]

    monkeypatch.setattr(CheckpointedEngine, "_create_sqlite_connection", counting)
    return made


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[tuple[DirectClient, PooledReadersEngine]]:
    engine = PooledReadersEngine(str(tmp_path / "pooled.sqlite3"))
    client = DirectClient(engine=engine)
    yield client, engine
    client.close()


def scenario(db: Any) -> list[Any]:
    """Multi-document reads between writes of every kind; what each read returned."""
    seen: list[Any] = []
    pieces = db.pieces

    def read() -> None:
        seen.append(list(pieces.find({"cook": "c"}, sort=[("index", 1)])))
        seen.append(pieces.count_documents({}))
        seen.append(sorted(pieces.distinct("status")))

    pieces.insert_many([{"_id": f"p{i}", "cook": "c", "index": i, "status": "a"} for i in range(5)])
    read()
    pieces.insert_one({"_id": "p9", "cook": "c", "index": 9, "status": "b"})
    read()
    pieces.update_many({"index": {"$gte": 3}}, {"$set": {"status": "done", "index": -1}})
    read()
    pieces.delete_many({"status": "a"})
    read()
    pieces.create_index([("cook", 1), ("index", 1)], name="by_cook")
    seen.append(list(pieces.find({"cook": "c"}, hint="by_cook")))
    seen.append(sorted(i["name"] for i in pieces.list_indexes()))
    pieces.drop_index("by_cook")
    read()
    seen.append(sorted(i["name"] for i in pieces.list_indexes()))
    pieces.drop()
    read()
    pieces.insert_one({"_id": "q", "cook": "c", "index": 1, "status": "new"})
    read()
    return seen


def test_reads_on_kept_connections_see_every_write_made_between_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = DirectClient(engine=SQLiteEngine(str(tmp_path / "reference.sqlite3")))
    try:
        expected = scenario(reference.db)
    finally:
        reference.close()
    made = connections_made(monkeypatch)
    engine = PooledReadersEngine(str(tmp_path / "pooled.sqlite3"))
    client = DirectClient(engine=engine)
    try:
        assert scenario(client.db) == expected
    finally:
        client.close()
    # The writer and one kept reader served every read: without the pool, one per read.
    assert len(made) <= 3, len(made)


def test_a_paused_read_keeps_its_snapshot_and_the_next_read_on_a_kept_connection_does_not(
    pooled: tuple[DirectClient, PooledReadersEngine],
) -> None:
    client, engine = pooled
    items = client.db.items
    items.insert_many([{"_id": f"i{n:02}", "n": n} for n in range(10)])
    list(items.find())  # a reader connection, kept
    assert engine._cook_idle
    paused = iter(items.find(batch_size=2))
    first = [next(paused) for _ in range(2)]
    items.insert_many([{"_id": f"j{n:02}", "n": n} for n in range(10, 15)])
    assert len(first + list(paused)) == 10, "a read in progress sees its own snapshot"
    assert items.count_documents({}) == 15
    assert len(list(items.find())) == 15, "a kept connection's next read sees the insert"


def test_the_pool_keeps_at_most_its_bound_and_closes_them_with_the_engine(
    tmp_path: Path,
) -> None:
    engine = PooledReadersEngine(str(tmp_path / "pooled.sqlite3"))
    client = DirectClient(engine=engine)
    try:
        items = client.db.items
        items.insert_many([{"_id": f"i{n:03}"} for n in range(100)])
        cursors = [iter(items.find(batch_size=1)) for _ in range(IDLE_CONNECTIONS + 4)]
        for cursor in cursors:
            next(cursor)  # each holds a reader connection of its own
        assert engine._cook_idle == []
        for cursor in cursors:
            assert len(list(cursor)) == 99
        kept = list(engine._cook_idle)
        assert len(kept) == IDLE_CONNECTIONS
        assert not any(c.in_transaction for c in kept)
        kept[0].close()  # closed again while idle: still kept, still open
        assert kept[0] in engine._cook_idle
        assert kept[0].execute("SELECT 1").fetchone() == (1,)
        next(iter(items.find(batch_size=1)))  # a read still holding one when the client closes
    finally:
        client.close()
    assert engine._cook_idle == []
    for connection in kept:
        with pytest.raises(sqlite3.ProgrammingError):
            connection.execute("SELECT 1")
