"""Races of the embedded engine that lost or failed writes (``service/embedded_races.py``).

1. A session ended while one of its writes runs must not leave the server's connection inside
   that write's transaction. A client that stops (an API process shutting down, a cancelled
   request) sends ``endSessions`` for the sessions it pooled, and one of them may still be in a
   write the server is running. mongoeco 4.11.0 then refused both the write's commit and its
   rollback, so the ``BEGIN IMMEDIATE`` stayed open on the connection every write shares:
   every later write became a savepoint inside it, never committed. The write is held at a
   known point inside its transaction, so ``endSessions`` lands there every time.
2. A write's invalidation of the collection-features cache must not fail while a reader (which
   plans without the engine's lock) fills that cache.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from service.embedded_db import make_wire_server
from service.embedded_writes import NamespacedIndexesEngine
from tests.test_embedded_engine import serving


class StallingEngine(NamespacedIndexesEngine):
    """Holds the next write to the collection ``stalled``, once armed, inside its transaction
    (where every write clears the collection's cached features) until released."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.armed = threading.Event()
        self.inside = threading.Event()
        self.release = threading.Event()

    def _invalidate_collection_features_cache(
        self, db_name: str | None = None, coll_name: str | None = None
    ) -> None:
        if coll_name == "stalled" and self.armed.is_set():
            self.armed.clear()
            self.inside.set()
            assert self.release.wait(30), "the test never released the write"
        super()._invalidate_collection_features_cache(db_name, coll_name)


@pytest.fixture
def stalling(tmp_path: Path) -> Iterator[tuple[StallingEngine, str]]:
    engine = StallingEngine(str(tmp_path / "cook.sqlite3"))
    with serving(make_wire_server(engine, "127.0.0.1", 0)) as uri:
        yield engine, uri


@pytest.mark.parametrize("write", ["update", "insert"])
def test_a_write_whose_session_ends_midway_leaves_later_writes_committed_for_every_reader(
    stalling: tuple[StallingEngine, str], write: str
) -> None:
    engine, uri = stalling
    with MongoClient(uri, retryWrites=False) as writer, MongoClient(uri) as other:
        pieces = writer.cook.stalled
        pieces.insert_one({"_id": "p0", "state": "waiting"})
        lsid: list[Any] = []
        outcome: list[BaseException | None] = []

        def stalled_write() -> None:
            with writer.start_session() as session:
                lsid.append(session.session_id)
                try:
                    if write == "update":
                        pieces.update_one(
                            {"_id": "p0"}, {"$set": {"state": "stalled"}}, session=session
                        )
                    else:
                        pieces.insert_one({"_id": "p1"}, session=session)
                    outcome.append(None)
                except PyMongoError as error:
                    outcome.append(error)

        thread = threading.Thread(target=stalled_write)
        engine.armed.set()
        thread.start()
        assert engine.inside.wait(30), "the write never reached its transaction"
        other.admin.command("endSessions", lsid)  # as a stopping client does
        engine.release.set()
        thread.join(30)
        assert outcome, "the stalled write never returned"

        pieces.insert_one({"_id": "after", "state": "waiting"})
        pieces.update_one({"_id": "p0"}, {"$set": {"state": "running"}})
        with MongoClient(uri) as reader:  # a connection of its own: what is committed
            seen = {d["_id"]: d.get("state") for d in reader.cook.stalled.find({}, {"state": 1})}
        assert seen.get("after") == "waiting", seen
        assert seen.get("p0") == "running", seen


def test_a_write_invalidating_the_features_cache_while_a_reader_fills_it_does_not_fail(
    tmp_path: Path,
) -> None:
    engine = NamespacedIndexesEngine(str(tmp_path / "cook.sqlite3"))
    cache: dict[tuple[Any, ...], Any] = engine._collection_features_cache
    stop = threading.Event()

    def reader() -> None:  # what planning a find does, many times, with no lock
        n = 0
        while not stop.is_set():
            cache[("cook", "pieces", "field", n)] = True
            n += 1
            if n % 5_000 == 0:
                cache.clear()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(2_000):  # a write's invalidation, each one a pass over the keys
            engine._invalidate_collection_features_cache("cook", "cooks")
    finally:
        stop.set()
        thread.join()
