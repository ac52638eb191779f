"""A schema ready to shard: every collection the code writes has a declared shard key, every
unique index the code creates starts with its collection's shard key on a sharded cluster
(as is, or rewritten), each rewrite refuses exactly the duplicates the original refuses, and
the migration to that layout is idempotent and resumable."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import IndexModel
from pymongo.errors import DuplicateKeyError

from orchestration.base.sharding import (
    REWRITES,
    SHARD_KEYS,
    ensure_sharded_layout,
    is_sharded_cluster,
    sharded_form,
    starts_with_shard_key,
)
from orchestration.services import Services
from tests.api import Api, start_cook, wait_for_cook, with_test_tool

DECLARED_BY_STORES = {
    "pieces": "PieceStore",
    "cooks": "CookStore",
    "exports": "Exporter",
    "casts": "CastStore",
}


def model(name: str, info: dict[str, Any]) -> IndexModel:
    """An IndexModel from ``index_information()``'s description of it."""
    options = {k: v for k, v in info.items() if k not in ("key", "v", "ns")}
    return IndexModel(list(info["key"]), name=name, **options)


def problems(collection: str, indexes: list[IndexModel]) -> list[str]:
    """Why these indexes could not be held by the collection sharded on its declared key."""
    if collection not in SHARD_KEYS:
        return [f"{collection} has no declared shard key (orchestration/base/sharding.py)"]
    found = []
    key = SHARD_KEYS[collection]
    for index in indexes:
        spec = index.document
        if not spec.get("unique") or spec["name"] == "_id_" or key is None:
            continue
        if any(direction == "hashed" for _, direction in key):
            found.append(f"{collection}.{spec['name']}: unique, and the shard key is hashed")
            continue
        try:
            sharded = sharded_form(collection, index).document
        except ValueError as refused:
            found.append(str(refused))
            continue
        if not starts_with_shard_key(collection, list(sharded["key"].items())):
            found.append(f"{collection}.{sharded['name']} does not start with the shard key")
    return found


async def created_indexes(api: Api) -> dict[str, list[IndexModel]]:
    """Every index of every collection, as the app's start created them."""
    db = api.app.state.runtime.services.cooks._cooks.database
    created: dict[str, list[IndexModel]] = {}
    for name in await db.list_collection_names():
        info = await db[name].index_information()
        created[name] = [model(index, spec) for index, spec in info.items()]
    return created


async def test_every_unique_index_the_code_creates_starts_with_its_shard_key_once_sharded(
    api: Api,
) -> None:
    # Documents in every collection a cook and an export touch, so each exists.
    collection = await api.create_collection(**with_test_tool(latencyMs=1))
    cook = await start_cook(api, collection["id"], count=2)
    await wait_for_cook(api, cook["id"])
    created = await created_indexes(api)
    assert {"pieces", "cooks", "cook_events", "collections", "media.files"} <= set(created)
    assert not await is_sharded_cluster(api.app.state.runtime.client["admin"])
    found = [p for name, indexes in created.items() for p in problems(name, indexes)]
    assert found == []
    # Every store whose indexes are rewritten declares them (what the migration creates).
    for name, store in DECLARED_BY_STORES.items():
        declared = getattr(__import__("orchestration.services").services, store).indexes()
        assert problems(name, declared) == []
    assert {r.collection for r in REWRITES} == set(DECLARED_BY_STORES)


@pytest.mark.parametrize(
    ("collection", "index", "refused"),
    [
        ("pieces", IndexModel("jobKey", name="new_unique", unique=True), "declare a Rewrite"),
        ("cooks", IndexModel("status", name="one_per_status", unique=True), "declare a Rewrite"),
        ("runs", IndexModel("status", name="u", unique=True), "the shard key is hashed"),
        ("new_things", IndexModel("x", name="x"), "no declared shard key"),
    ],
)
def test_the_check_refuses_a_unique_index_that_does_not_start_with_the_shard_key(
    collection: str, index: IndexModel, refused: str
) -> None:
    [problem] = problems(collection, [index])
    assert refused in problem


def test_the_check_accepts_unique_indexes_that_start_with_the_shard_key() -> None:
    fine = IndexModel([("collectionId", 1), ("jobKey", 1)], name="scoped", unique=True)
    assert problems("pieces", [fine]) == []
    chunks = IndexModel([("files_id", 1), ("n", 1)], name="files_id_1_n_1", unique=True)
    assert problems("media.chunks", [chunks]) == []


async def test_each_rewritten_unique_value_names_its_shard_key_value_in_real_documents(
    api: Api,
) -> None:
    """What makes a rewrite refuse the same duplicates: the unique value starts with the
    value of the field it names, and that field fixes the shard key (a cook is of one
    collection, a cast of one piece)."""
    collection = await api.create_collection(
        **with_test_tool(latencyMs=300), rules={"uniqueCombinations": True}
    )
    cook = await start_cook(api, collection["id"], count=3, maxConcurrent=3)
    db = api.app.state.runtime.services.cooks._cooks.database
    seen = {r.field: 0 for r in REWRITES}
    for _ in range(400):  # sample while the cook runs: slots and seats exist only then
        for rewrite in REWRITES:
            async for doc in db[rewrite.collection].find({rewrite.field: {"$exists": True}}):
                if not isinstance(doc[rewrite.field], str):
                    continue
                seen[rewrite.field] += 1
                assert doc[rewrite.field].startswith(f"{doc[rewrite.names]}:") or (
                    doc[rewrite.field] == doc[rewrite.names]  # activeKey = collectionId
                ), (rewrite, doc)
        if (await db.cooks.find_one({"_id": cook["id"]}))["status"] != "running":
            break
    await wait_for_cook(api, cook["id"])
    for claim in ("indexKey", "seat", "combo", "activeKey"):
        assert seen[claim], seen
    by_cook: dict[str, set[str]] = {}
    async for doc in db.pieces.find({}, {"cookId": 1, "collectionId": 1}):
        by_cook.setdefault(doc["cookId"], set()).add(doc["collectionId"])
    assert all(len(c) == 1 for c in by_cook.values())  # cookId fixes collectionId


async def test_the_sharded_layout_migration_is_idempotent_resumable_and_keeps_the_guards(
    api: Api,
) -> None:
    services: Services = api.app.state.runtime.services
    db = services.cooks._cooks.database
    collection = await api.create_collection(**with_test_tool(latencyMs=1))
    first = await start_cook(api, collection["id"], count=2)
    await wait_for_cook(api, first["id"])
    declared = {
        name: getattr(__import__("orchestration.services").services, store).indexes()
        for name, store in DECLARED_BY_STORES.items()
    }

    async def layout() -> dict[str, set[str]]:
        return {name: set(await db[name].index_information()) for name in declared}

    await services.ensure_indexes(db)  # what a start on a sharded cluster runs
    migrated = await layout()
    for rewrite in REWRITES:
        assert rewrite.sharded_name in migrated[rewrite.collection]
        assert rewrite.index not in migrated[rewrite.collection]
        info = (await db[rewrite.collection].index_information())[rewrite.sharded_name]
        assert info["unique"] is True
        assert [f for f, _ in info["key"]][-1] == rewrite.field
    await ensure_sharded_layout(db, declared)  # again: nothing changes
    assert await layout() == migrated
    # Cut off half way (an original re-created beside its rewrite, another rewrite missing):
    # the next start finishes the job.
    await db.pieces.create_indexes([IndexModel("indexKey", name=REWRITES[0].index, unique=True)])
    await db.pieces.drop_index(REWRITES[1].sharded_name)
    await ensure_sharded_layout(db, declared)
    assert await layout() == migrated
    # The rewritten indexes still refuse a second piece at the same index of a collection.
    piece = await db.pieces.find_one({"cookId": first["id"]})
    twin = {**piece, "_id": "pc_" + "0" * 32}
    for claim in ("seat", "slot", "combo"):
        twin.pop(claim, None)
    with pytest.raises(DuplicateKeyError):
        await db.pieces.insert_one(twin)
    # And cooks run on the migrated layout: a second cook of the collection completes.
    second = await start_cook(api, collection["id"], count=2)
    done = await wait_for_cook(api, second["id"])
    assert done["status"] == "COMPLETED"
