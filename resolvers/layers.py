"""Layer assets: import a HashLips project, upload one layer, read a collection's layers.

Files arrive as GraphQL multipart requests (the `Upload` scalar): one HTTP request whose
``operations`` part holds the query and its variables with the file's place set to null, a
``map`` part naming where each file goes, and the files themselves. A bearer token is
required as for any operation, so no browser form can send one across sites.
"""

from __future__ import annotations

import base64
import math
from typing import Annotated, Any

import strawberry
from strawberry.file_uploads import Upload

from domain.errors import BadUserInput, Problem
from orchestration.art.layer_import import MAX_ZIP_BYTES
from orchestration.art.layer_preview import (
    MAX_PREVIEW_IMAGES,
    MAX_THUMBNAIL,
    MIN_THUMBNAIL,
    thumbnail_size,
)
from orchestration.art.layers import MAX_LAYER_BYTES, MAX_LAYER_PIXELS
from orchestration.art.traits import MAX_CATEGORIES, MAX_NAME_LENGTH, MAX_TRAITS_PER_CATEGORY
from orchestration.base.policy import SEED_BOUND
from resolvers.collections import ID_RULE, VERSION_RULE, _id
from schema.context import Info
from schema.cook_types import ChosenTrait
from schema.layer_types import LayerOrderInput, LayerSet
from schema.preview_types import LayerPreview, LayerPreviewPiece
from schema.types import Collection

LAYER_RULES = (
    f"PNG or WebP, at most {MAX_LAYER_BYTES // (1024 * 1024)} MiB and {MAX_LAYER_PIXELS} pixels "
    "(read from the header before decoding), complete, and the same size as the collection's "
    "other layers (they are never scaled: resize them first)."
)


async def _read(file: Any, limit: int, what: str) -> bytes:
    """An upload's bytes, refused above ``limit`` without reading further."""
    read = getattr(file, "read", None)
    if read is None:
        raise BadUserInput.at("file", "must be a file sent as a GraphQL multipart request")
    data = await read(limit + 1)  # the router closes the request's files afterwards
    if not isinstance(data, bytes):
        raise BadUserInput.at("file", "must be a file sent as a GraphQL multipart request")
    if len(data) > limit:
        raise BadUserInput.at("file", f"{what} is larger than {limit} bytes")
    return data


def _order(entries: list[LayerOrderInput] | None) -> list[Any] | None:
    if entries is None:
        return None
    if not 1 <= len(entries) <= MAX_CATEGORIES:
        raise BadUserInput.at("layersOrder", f"names 1 to {MAX_CATEGORIES} folders")
    problems = []
    for i, entry in enumerate(entries):
        if not 1 <= len(entry.name) <= MAX_NAME_LENGTH:
            problems.append(
                Problem(f"layersOrder[{i}].name", f"is 1 to {MAX_NAME_LENGTH} characters")
            )
        if not (math.isfinite(entry.opacity) and 0 <= entry.opacity <= 1):
            problems.append(Problem(f"layersOrder[{i}].opacity", "must be between 0 and 1"))
    if problems:
        raise BadUserInput(problems)
    return [e.to_domain() for e in entries]


async def import_layers(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=ID_RULE)],
    file: Annotated[
        Upload,
        strawberry.argument(
            description=f"A ZIP (at most {MAX_ZIP_BYTES // (1024 * 1024)} MiB) in HashLips' "
            "layout: `layers/<Category>/<Trait>#<weight>.png` (no `#weight`: weight 1; "
            "hidden files and anything outside `layers/` are skipped). At most "
            f"{MAX_CATEGORIES} categories of at most {MAX_TRAITS_PER_CATEGORY} traits, names "
            f"of 1-{MAX_NAME_LENGTH} characters without `[` or `]`. Each layer: {LAYER_RULES}"
        ),
    ],
    layers_order: Annotated[
        list[LayerOrderInput] | None,
        strawberry.argument(
            description=f"The draw order, 1 to {MAX_CATEGORIES} folders, each with its "
            "opacity and blend mode (HashLips' `layersOrder`); folders left out are not "
            "imported. Default: every folder, in name order."
        ),
    ] = None,
    expected_version: Annotated[int | None, strawberry.argument(description=VERSION_RULE)] = None,
) -> Collection:
    """Make the collection's trait tree and layer images from a HashLips project in one call:
    each folder becomes a manual category (traits valued by their names), replacing the
    tree's manual categories (generated ones stay, after them), and its images become the
    collection's layers. Every file is checked first; a refusal names the file and writes
    nothing."""
    ctx = info.context
    order = _order(layers_order)
    data = await _read(file, MAX_ZIP_BYTES, "the ZIP")
    updated = await ctx.services.layers.import_zip(
        ctx.require_principal(), _id(collection_id), data, order, expected_version
    )
    return Collection.from_domain(updated)


async def upload_layer(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=ID_RULE)],
    category: Annotated[
        str,
        strawberry.argument(
            description=f"A manual category of the tree (1-{MAX_NAME_LENGTH} characters)."
        ),
    ],
    trait: Annotated[
        str,
        strawberry.argument(description=f"One of its traits (1-{MAX_NAME_LENGTH} characters)."),
    ],
    file: Annotated[Upload, strawberry.argument(description=f"The layer image: {LAYER_RULES}")],
) -> LayerSet:
    """Add or replace one trait's layer image."""
    ctx = info.context
    data = await _read(file, MAX_LAYER_BYTES, "the layer")
    found = await ctx.services.layers.upload(
        ctx.require_principal(), _id(collection_id), category, trait, data
    )
    return LayerSet.from_domain(found)


async def preview_layers(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=ID_RULE)],
    count: Annotated[
        int, strawberry.argument(description=f"1 to {MAX_PREVIEW_IMAGES} pieces.")
    ] = 4,
    seed: Annotated[
        int | None,
        strawberry.argument(description=f"0 to {SEED_BOUND}; drawn at random when omitted."),
    ] = None,
    size: Annotated[
        int,
        strawberry.argument(
            description=f"The thumbnails' longer side, {MIN_THUMBNAIL} to {MAX_THUMBNAIL} pixels "
            "(never larger than the layers)."
        ),
    ] = 128,
) -> LayerPreview:
    """Pictures before a cook: the pieces `previewPieces` draws with this seed, each composed
    from the collection's layers as a thumbnail, in memory. Nothing is generated or stored.
    Owner (or admin) only; at most 64 Mi layer pixels are decoded per request."""
    problems = []
    if not 1 <= count <= MAX_PREVIEW_IMAGES:
        problems.append(Problem("count", f"must be between 1 and {MAX_PREVIEW_IMAGES}"))
    if not MIN_THUMBNAIL <= size <= MAX_THUMBNAIL:
        problems.append(Problem("size", f"must be between {MIN_THUMBNAIL} and {MAX_THUMBNAIL}"))
    if problems:
        raise BadUserInput(problems)
    ctx = info.context
    principal = ctx.require_principal()
    cid = _id(collection_id)
    used, draws = await ctx.services.orchestrator.preview(principal, cid, count, seed)
    drawn = [[(t.category, t.name) for t in d.traits] for d in draws]
    layer_set, images = await ctx.services.layers.thumbnails(principal, cid, drawn, size)
    width, height = thumbnail_size(layer_set.width, layer_set.height, size)
    return LayerPreview(
        seed=used,
        width=width,
        height=height,
        pieces=[
            LayerPreviewPiece(
                index=d.index,
                traits=[ChosenTrait.from_domain(t) for t in d.traits],
                image=None if image is None else base64.b64encode(image).decode(),
            )
            for d, image in zip(draws, images, strict=True)
        ],
    )
