"""A test's database may be one a test before left (``tests/conftest.py``): only emptied, and
only if its indexes are exactly those the app makes, so no test sees another's documents or
indexes."""

from __future__ import annotations

import uuid
from typing import Any

from pymongo import MongoClient

from service.embedded_db import EmbeddedDatabase
from tests.api import Api
from tests.conftest import WorkerServers


async def test_a_database_is_lent_again_only_emptied_and_with_exactly_the_apps_indexes(
    api: Api, worker_servers: WorkerServers, embedded: EmbeddedDatabase
) -> None:
    await api.create_collection()
    await api.app.state.runtime.services.orchestrator.stop()
    client: MongoClient[dict[str, Any]] = MongoClient(embedded.uri)
    with client:
        db = client[api.settings.db_name]
        assert db.collections.count_documents({}) == 1
        indexes = db.pieces.index_information()

        assert worker_servers.emptied(db)
        assert {
            name: db[name].count_documents({}) for name in db.list_collection_names()
        } == dict.fromkeys(db.list_collection_names(), 0)
        assert db.pieces.index_information() == indexes

        db.pieces.create_index("extra")
        assert not worker_servers.emptied(db), "a database with an index of a test's own"
        db.pieces.drop_index("extra_1")
        db.pieces.drop_index("leases")
        assert not worker_servers.emptied(db), "a database without one of the app's indexes"

        other = client[f"other_{uuid.uuid4().hex[:8]}"]
        other.things.insert_one({"_id": 1})
        assert not worker_servers.emptied(other), "a database that is not a test app's"
        assert other.things.count_documents({}) == 1
