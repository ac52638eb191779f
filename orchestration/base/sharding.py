"""How Cook's collections are sharded (docs/sharding.md says why), and the index layout a
sharded cluster needs.

MongoDB enforces a unique index on a sharded collection only if the index starts with the
shard key. Cook's unique indexes are single-field indexes on composite strings (the embedded
server checks only those quickly), and each of those strings *names* its shard key value:
``indexKey = "collectionId:index"``, ``slot = "cookId:k"`` (a cook is of one collection)...
So on a sharded cluster the same constraint is the index with the shard key put first
(``REWRITES``): it refuses exactly the same duplicates. ``tests/test_shard_keys.py`` reads
every index the code creates and fails on a unique index that neither starts with its
collection's shard key nor has a rewrite, and checks on real documents that each rewritten
value names its shard key value.

``ensure_sharded_layout`` is the migration: on a sharded cluster (``mongos``) it runs at every
start, after the ordinary index creation is skipped for these collections. It creates each
rewritten index, then drops the single-field original, so it is idempotent, and resumable
at any point (both present refuse the same duplicates as either alone).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

type Document = dict[str, Any]
type ShardKey = tuple[tuple[str, int | str], ...]

# The shard key of every collection Cook writes; None: it stays unsharded, on the database's
# primary shard (small, see docs/sharding.md's arithmetic).
SHARD_KEYS: dict[str, ShardKey | None] = {
    "pieces": (("collectionId", ASCENDING),),
    "cook_events": (("cookId", ASCENDING),),
    "cooks": (("collectionId", ASCENDING),),
    "exports": (("collectionId", ASCENDING),),
    "export_selections": (("_id", "hashed"),),
    "casts": (("pieceId", ASCENDING),),
    "runs": (("_id", "hashed"),),
    "webhook_deliveries": (("_id", "hashed"),),  # inbound: the provider replay log
    "notification_deliveries": (("_id", "hashed"),),  # outbound webhooks to owners
    "media.files": (("filename", ASCENDING),),
    "media.chunks": (("files_id", ASCENDING), ("n", ASCENDING)),
    "collections": (("ownerId", ASCENDING), ("_id", ASCENDING)),
    "spells": None,
    "layer_sets": None,
    "webhook_endpoints": None,  # a few per owner (capped)
}


@dataclass(frozen=True)
class Rewrite:
    """A unique single-field index whose value names its document's shard key value."""

    collection: str
    index: str  # the name of the index the store declares
    field: str
    names: str  # the field whose value, then ':', the unique value starts with

    @property
    def sharded_name(self) -> str:
        return f"{self.index}_sharded"


REWRITES: tuple[Rewrite, ...] = (
    Rewrite("pieces", "unique_index_per_collection", "indexKey", "collectionId"),
    Rewrite("pieces", "unique_combination", "combo", "collectionId"),
    Rewrite("pieces", "live_seat", "seat", "collectionId"),
    Rewrite("pieces", "in_flight_slot", "slot", "cookId"),
    Rewrite("cooks", "one_active_cook_per_collection", "activeKey", "collectionId"),
    Rewrite("exports", "one_active_export_per_collection", "activeKey", "collectionId"),
    Rewrite("casts", "one_cast_per_attempt", "castKey", "pieceId"),
)


def shard_key_fields(collection: str) -> tuple[str, ...]:
    key = SHARD_KEYS.get(collection)
    return tuple(name for name, _ in key) if key else ()


def starts_with_shard_key(collection: str, keys: Sequence[tuple[str, Any]]) -> bool:
    """Whether an index on ``keys`` starts with the collection's whole shard key (the rule
    for a unique index on a sharded collection; an unsharded collection has no such rule)."""
    fields = shard_key_fields(collection)
    return tuple(name for name, _ in keys[: len(fields)]) == fields


def rewrite_for(collection: str, index: str) -> Rewrite | None:
    return next((r for r in REWRITES if (r.collection, r.index) == (collection, index)), None)


def sharded_form(collection: str, index: IndexModel) -> IndexModel:
    """The index as a sharded cluster holds it: unchanged, or rewritten to start with the
    shard key. Raises ``ValueError`` for a unique index that needs a rewrite and has none."""
    spec: Mapping[str, Any] = index.document
    keys = list(spec["key"].items())
    if not spec.get("unique") or starts_with_shard_key(collection, keys):
        return index
    rewrite = rewrite_for(collection, spec["name"])
    if rewrite is None or keys != [(rewrite.field, ASCENDING)]:
        raise ValueError(
            f"{collection}.{spec['name']} is unique on {keys} and does not start with the shard "
            f"key {shard_key_fields(collection)}: declare a Rewrite, or change the key"
        )
    options = {k: v for k, v in spec.items() if k not in ("key", "name")}
    prefixed = [(f, ASCENDING) for f in shard_key_fields(collection)] + keys
    return IndexModel(prefixed, name=rewrite.sharded_name, **options)


async def is_sharded_cluster(db: AsyncDatabase[Document]) -> bool:
    """Whether the client talks to a ``mongos`` (a sharded cluster's router)."""
    hello = await db.client.admin.command("hello")
    return hello.get("msg") == "isdbgrid"


async def ensure_sharded_layout(
    db: AsyncDatabase[Document], declared: Mapping[str, Sequence[IndexModel]]
) -> None:
    """The migration to the sharded layout, for the collections ``declared`` (name -> the
    indexes its store declares): create every index in its sharded form, then drop the
    single-field originals that were rewritten. Idempotent and resumable."""
    for collection, indexes in declared.items():
        await db[collection].create_indexes([sharded_form(collection, i) for i in indexes])
        present = await db[collection].index_information()
        for rewrite in REWRITES:
            if rewrite.collection == collection and rewrite.index in present:
                await db[collection].drop_index(rewrite.index)
