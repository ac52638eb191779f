"""``startCook``'s supply check reads the collection's live pieces only: its cost does not grow
with the pieces stored beside them (failed, rejected, cancelled, or copied in without a seat).

Cost is counted as in ``test_engine_query_shapes.py``: SQLite virtual-machine steps (thousands)
of the exact filter ``PieceStore.supply_used`` sends, right after an unrelated write. The
filter before the collection prefix on seats (``seat: {$exists: true}`` beside the collection
id) grows with the stored pieces on the same files, so the measure can fail.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from orchestration.cooking.pieces import PieceStore, supply_filter
from tests.api import Api, start_cook, wait_for_cook
from tests.test_engine_query_shapes import IndexedReadsEngine, counting, create, opened, piece

SMALL, LARGE = 300, 3_000
LIVE = 40
COLLECTION, COOK = "col_target", "ck_target"
OLD_FILTER = {"collectionId": COLLECTION, "seat": {"$exists": True}}
WRITES = itertools.count(10_000_000)


def build(path: Path, stored: int) -> None:
    """LIVE live pieces in the collection, and ``stored - LIVE`` that hold no seat."""
    with opened(IndexedReadsEngine(str(path))) as db:
        create(db.pieces, PieceStore.indexes())
        docs = [
            piece(n, COOK, COLLECTION, "completed" if n < LIVE else "failed") for n in range(stored)
        ]
        db.pieces.insert_many(docs)


def cost(path: Path, query: dict[str, Any]) -> tuple[int, int]:
    """(the count, thousands of VM steps it took) right after an unrelated write."""
    engine = counting(IndexedReadsEngine)(str(path))
    with opened(engine) as db:
        db.pieces.count_documents(query)  # warms mongoeco's catalogs
        db.pieces.insert_one(piece(next(WRITES), "ck_writer", "col_writer", "completed"))
        type(engine).ticks = 0
        found = db.pieces.count_documents(query)
        return found, int(type(engine).ticks)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("supply")
    small, large = root / "small.sqlite3", root / "large.sqlite3"
    build(small, SMALL)
    build(large, LARGE)
    return small, large


def test_the_supply_count_costs_the_same_with_ten_times_the_stored_pieces(
    files: tuple[Path, Path],
) -> None:
    (n_small, at_small), (n_large, at_large) = (cost(f, supply_filter(COLLECTION)) for f in files)
    assert n_small == n_large == LIVE
    assert at_large <= 1.5 * max(at_small, 1), (at_small, at_large)


def test_the_filter_it_replaced_grows_with_the_stored_pieces(files: tuple[Path, Path]) -> None:
    (n_small, at_small), (n_large, at_large) = (cost(f, OLD_FILTER) for f in files)
    assert n_small == n_large == LIVE
    assert at_large > 3 * max(at_small, 1), (at_small, at_large)


async def test_seats_stored_without_the_collection_prefix_are_migrated_and_counted(
    api: Api,
) -> None:
    collection = await api.create_collection(totalSupply=5)
    cook = await start_cook(api, collection["id"], count=3)
    await wait_for_cook(api, cook["id"])
    db = api.app.state.runtime.client[api.settings.db_name]
    # As an earlier version stored them: "cookId:s".
    async for d in db.pieces.find({"cookId": cook["id"]}, {"seat": 1}):
        legacy = d["seat"].split(":", 1)[1]
        await db.pieces.update_one({"_id": d["_id"]}, {"$set": {"seat": legacy}})
    pieces = api.app.state.runtime.services.pieces
    assert await pieces.supply_used(collection["id"]) == 0  # not counted until migrated
    assert await pieces.migrate_legacy_seats() == 3
    assert await pieces.migrate_legacy_seats() == 0  # once
    assert await pieces.supply_used(collection["id"]) == 3
    error = await api.error(
        "mutation($c: ID!) { startCook(collectionId: $c, count: 3) { id } }",
        {"c": collection["id"]},
    )
    assert "remaining supply: 2 of 5" in error["message"]
