"""Every start ensures the app's indexes, and asks only for those its database lacks
(``orchestration/base/indexes.py``): a restart asks for none, a missing one is made again, and
one that differs from the app's is refused at start as before."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo import IndexModel, MongoClient, monitoring
from pymongo.errors import OperationFailure

from orchestration.base.indexes import same
from service.settings import Settings
from tests.api import running_app


@dataclass
class Created(monitoring.CommandListener):
    """The indexes asked for on one database, by collection."""

    database: str = ""
    indexes: Counter[str] = field(default_factory=Counter)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database and event.command_name == "createIndexes":
            self.indexes[event.command["createIndexes"]] += len(event.command["indexes"])

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


CREATED = Created()
monitoring.register(CREATED)


async def start(settings: Settings) -> Counter[str]:
    """One start and stop of the app; the indexes it asked for."""
    CREATED.database, CREATED.indexes = settings.db_name, Counter()
    try:
        async with running_app(settings) as api:
            await api.app.state.runtime.services.orchestrator.stop()
        return CREATED.indexes
    finally:
        CREATED.database = ""


async def test_a_restart_asks_for_no_index_a_missing_one_is_made_and_a_different_one_refused(
    settings: Settings,
) -> None:
    fresh = settings.model_copy(update={"db_name": f"t_{uuid.uuid4().hex[:16]}"})
    first = await start(fresh)
    assert first["pieces"] >= 10, first
    assert sum(first.values()) >= 30, first

    assert await start(fresh) == Counter(), "a restart asked for indexes it has"

    client: MongoClient[dict[str, Any]] = MongoClient(fresh.mongodb_uri)
    with client:
        pieces = client[fresh.db_name].pieces
        pieces.drop_index("leases")
        assert await start(fresh) == Counter({"pieces": 1})
        assert "leases" in pieces.index_information()

        pieces.drop_index("leases")
        pieces.create_index("status", name="leases")  # the name, on another key
        with pytest.raises(OperationFailure):
            await start(fresh)


def test_an_index_is_the_same_only_with_the_same_name_key_order_and_options() -> None:
    wanted = IndexModel(
        [("cookId", 1), ("index", 1)],
        name="by_cook",
        unique=True,
        partialFilterExpression={"seat": {"$type": "string"}},
    ).document
    listed = {
        "v": 2,
        "key": {"cookId": 1, "index": 1},
        "name": "by_cook",
        "unique": True,
        "partialFilterExpression": {"seat": {"$type": "string"}},
        "ns": "cook.pieces",
    }
    assert same(listed, wanted)
    assert same({**listed, "key": {"cookId": 1.0, "index": 1}}, wanted)
    assert not same(None, wanted)
    assert not same({**listed, "key": {"index": 1, "cookId": 1}}, wanted)
    assert not same({**listed, "unique": False}, wanted)
    assert not same({**listed, "sparse": True}, wanted)
    assert not same({**listed, "partialFilterExpression": {"seat": {"$exists": True}}}, wanted)
    plain = IndexModel("status", name="by_status").document
    assert same({"v": 2, "key": {"status": 1}, "name": "by_status", "unique": False}, plain)
