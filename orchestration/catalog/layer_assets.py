"""A collection's layer assets: one image per manual trait, drawn by the ``layers`` tool.

The files live in the ``MediaStore`` (content-addressed); the collection's *layer set* is one
document (``_id`` the collection's id, owner-scoped) holding the layers' size, each
category's style and every layer's hash. Each change is one conditional update on the set's
``version``, so two writers never lose each other's change; an import also records the
collection version its trait tree was written at, and an older import never overwrites a
newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from domain.errors import BadUserInput, Conflict
from domain.principal import Principal
from orchestration.art.layer_import import ImportedLayers, OrderEntry, read_hashlips_zip
from orchestration.art.layer_preview import (
    MAX_DECODED_PIXELS,
    PieceLayers,
    compose_thumbnails,
    decoded_pixels,
)
from orchestration.art.layers import BadLayer, Blend, Style, probe
from orchestration.art.traits import GeneratedCategory, ManualCategory
from orchestration.base import clock
from orchestration.base.scope import owned
from orchestration.catalog.collections import Collection, CollectionPatch, CollectionStore
from orchestration.storage.media import MediaStore

UPDATE_RETRIES = 5

type Document = dict[str, Any]


@dataclass(frozen=True)
class Layer:
    category: str
    trait: str
    sha256: str
    content_type: str
    size: int


@dataclass(frozen=True)
class LayerSet:
    collection_id: str
    width: int
    height: int
    styles: dict[str, Style]
    layers: tuple[Layer, ...]
    version: int = 0
    updated_at: datetime | None = None

    @cached_property
    def _by_trait(self) -> dict[tuple[str, str], Layer]:
        return {(x.category, x.trait): x for x in self.layers}

    def find(self, category: str, trait: str) -> Layer | None:
        return self._by_trait.get((category, trait))

    def style(self, category: str) -> Style:
        return self.styles.get(category, Style())


def _to_doc(s: LayerSet) -> Document:
    return {
        "width": s.width,
        "height": s.height,
        "styles": [
            {"category": c, "opacity": st.opacity, "blend": st.blend.value}
            for c, st in s.styles.items()
        ],
        "layers": [
            {
                "category": x.category,
                "trait": x.trait,
                "sha256": x.sha256,
                "contentType": x.content_type,
                "size": x.size,
            }
            for x in s.layers
        ],
    }


def _from_doc(doc: Document) -> LayerSet:
    return LayerSet(
        collection_id=doc["_id"],
        width=doc["width"],
        height=doc["height"],
        styles={
            s["category"]: Style(float(s["opacity"]), Blend(s["blend"])) for s in doc["styles"]
        },
        layers=tuple(
            Layer(x["category"], x["trait"], x["sha256"], x["contentType"], x["size"])
            for x in doc["layers"]
        ),
        version=doc["version"],
        updated_at=doc.get("updatedAt"),
    )


async def layer_set_for_drawing(db: AsyncDatabase[Document], collection_id: str) -> LayerSet | None:
    """The set the ``layers`` tool draws with (no caller: the piece's cook is the owner's)."""
    doc = await db["layer_sets"].find_one({"_id": collection_id})
    return None if doc is None else _from_doc(doc)


class LayerStore:
    def __init__(
        self, db: AsyncDatabase[Document], collections: CollectionStore, media: MediaStore
    ) -> None:
        self._sets: AsyncCollection[Document] = db["layer_sets"]
        self._collections = collections
        self._media = media

    async def get(self, principal: Principal, collection_id: str) -> LayerSet | None:
        doc = await self._sets.find_one(owned(principal, {"_id": collection_id}))
        return None if doc is None else _from_doc(doc)

    async def thumbnails(
        self,
        principal: Principal,
        collection_id: str,
        drawn: Sequence[Sequence[tuple[str, str]]],
        side: int,
    ) -> tuple[LayerSet, list[bytes | None]]:
        """PNG thumbnails of pieces drawing these (category, trait) pairs, composed in memory
        from the owner's layer set; nothing is written. Refused before decoding anything when
        the layers to decode hold more than ``MAX_DECODED_PIXELS``."""
        layer_set = await self.get(principal, collection_id)
        if layer_set is None:
            await self._collections.get(principal, collection_id)  # NOT_FOUND if not theirs
            raise BadUserInput.at(
                "collectionId", "the collection has no layers: import a HashLips project first"
            )
        pieces = [
            PieceLayers(
                tuple(
                    (layer.sha256, layer_set.style(category))
                    for category, trait in traits
                    if (layer := layer_set.find(category, trait)) is not None
                )
            )
            for traits in drawn
        ]
        pixels = decoded_pixels(pieces, layer_set.width, layer_set.height)
        if pixels > MAX_DECODED_PIXELS:
            raise BadUserInput.at(
                "count",
                f"these pieces need {pixels} layer pixels decoded, more than "
                f"{MAX_DECODED_PIXELS}: preview fewer",
            )
        needed = sorted({sha for piece in pieces for sha, _ in piece.layers})
        data = await asyncio.gather(*(self._media.read(sha) for sha in needed))
        files = dict(zip(needed, data, strict=True))
        size = (layer_set.width, layer_set.height)
        images = await asyncio.to_thread(compose_thumbnails, pieces, files, size, side)
        return layer_set, images

    async def import_zip(
        self,
        principal: Principal,
        collection_id: str,
        data: bytes,
        order: Sequence[OrderEntry] | None,
        expected_version: int | None,
    ) -> Collection:
        """The ZIP's categories replace the tree's manual categories (generated ones stay,
        after them), and its layers replace the collection's. Checked in full first."""
        current = await self._collections.get(principal, collection_id)
        if expected_version is not None and current.version != expected_version:
            raise Conflict(
                f"the collection is at version {current.version}, not {expected_version}",
                currentVersion=current.version,
            )
        imported: ImportedLayers = await asyncio.to_thread(read_hashlips_zip, data, order)
        kept = tuple(c for c in current.spec.trait_tree if isinstance(c, GeneratedCategory))
        clash = {c.name for c in kept} & {c.name for c in imported.categories}
        if clash:
            name = sorted(clash)[0]
            message = f"layers/{name}/: the tree already has a generated category {name!r}"
            raise BadUserInput.at("file", message)
        patch = CollectionPatch(trait_tree=(*imported.categories, *kept))
        # Checked before anything is stored; then the files (content-addressed: storing one
        # twice is harmless), the tree (checked again as it is written), and the layer set.
        await self._collections.check_patch(principal, current, patch)
        layers = []
        for f in imported.files:
            ref = await self._media.put(f.data, f.content_type)
            layers.append(Layer(f.category, f.trait, ref.sha256, ref.content_type, ref.size))
        updated = await self._collections.update(principal, collection_id, patch, expected_version)
        layer_set = LayerSet(
            collection_id, imported.width, imported.height, imported.styles, tuple(layers)
        )
        await self._replace(principal, layer_set, updated.version)
        return updated

    async def _replace(self, principal: Principal, layer_set: LayerSet, at_version: int) -> None:
        """Write an import's set unless a newer import (of a later tree) already did."""
        doc = {
            **_to_doc(layer_set),
            "ownerId": principal.subject,
            "collectionVersion": at_version,
            "updatedAt": clock.now(),
        }
        current = await self._sets.find_one({"_id": layer_set.collection_id}, {"ownerId": 1})
        if current is not None:
            doc["ownerId"] = current["ownerId"]  # an admin importing keeps the owner's
        with contextlib.suppress(DuplicateKeyError):  # a later import's set stands
            await self._sets.update_one(
                {"_id": layer_set.collection_id, "collectionVersion": {"$lt": at_version}},
                {"$set": doc, "$inc": {"version": 1}},
                upsert=True,
            )

    async def upload(
        self,
        principal: Principal,
        collection_id: str,
        category: str,
        trait: str,
        data: bytes,
    ) -> LayerSet:
        """Add or replace one trait's layer. It must be the same size as the set's others."""
        collection = await self._collections.get(principal, collection_id)
        manual = {
            c.name: {t.name for t in c.traits}
            for c in collection.spec.trait_tree
            if isinstance(c, ManualCategory)
        }
        if category not in manual:
            raise BadUserInput.at("category", f"names no manual category ({category!r})")
        if trait not in manual[category]:
            raise BadUserInput.at("trait", f"{category!r} has no trait {trait!r}")
        try:
            found = await asyncio.to_thread(probe, data)
        except BadLayer as exc:
            raise BadUserInput.at("file", f"the layer for {category}/{trait} {exc}") from None
        for _ in range(UPDATE_RETRIES):
            current = await self._sets.find_one({"_id": collection_id})
            now = _from_doc(current) if current is not None else None
            others = (
                [x for x in now.layers if (x.category, x.trait) != (category, trait)] if now else []
            )
            if (
                now is not None
                and others
                and (found.width, found.height) != (now.width, now.height)
            ):
                raise BadUserInput.at(
                    "file",
                    f"the layer for {category}/{trait} is {found.width}x{found.height}, but the "
                    f"collection's layers are {now.width}x{now.height} (resize it first)",
                )
            ref = await self._media.put(data, found.content_type)
            layer = Layer(category, trait, ref.sha256, ref.content_type, ref.size)
            base = now or LayerSet(collection_id, found.width, found.height, {}, ())
            changed = replace(base, width=found.width, height=found.height, layers=(*others, layer))
            doc = {**_to_doc(changed), "updatedAt": clock.now()}
            if now is None:
                try:
                    await self._sets.insert_one(
                        {
                            "_id": collection_id,
                            "ownerId": collection.owner_id,
                            "collectionVersion": 0,
                            "version": 1,
                            **doc,
                        }
                    )
                except DuplicateKeyError:
                    continue
            else:
                done = await self._sets.update_one(
                    {"_id": collection_id, "version": now.version},
                    {"$set": doc, "$inc": {"version": 1}},
                )
                if done.matched_count == 0:
                    continue
            found_set = await self.get(principal, collection_id)
            assert found_set is not None
            return found_set
        raise Conflict("the collection's layers kept changing; try again")
