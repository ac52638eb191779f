"""A session ended while one of its writes runs must not leave the server's connection inside
that write's transaction.

A client that stops (an API process shutting down, a cancelled request) sends ``endSessions``
for the sessions it pooled, and one of them may still be in a write the server is running.
mongoeco 4.11.0 then refused both the write's commit and its rollback ("the session is already
closed"), so the ``BEGIN IMMEDIATE`` stayed open on the connection every write shares: every
later write became a savepoint inside it, seen by that connection and by nobody else, never
committed. Readers on their own connections saw the database stop at that moment (an export
whose archive had no chunks), and the change outbox found the file locked.

The write is held at a known point inside its transaction, so ``endSessions`` lands there every
time.
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
