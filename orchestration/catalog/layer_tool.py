"""The built-in ``layers`` tool: a piece's image, composed from its drawn traits' layers.

It reads the piece's traits (by its job key: the cook, then the piece by its unique
``indexKey``) and the collection's layer set, composes the layers in the traits' (the tree's)
order in a worker process (``orchestration/art/compositing.py``: a pool sized to the cores),
stores the PNG through the ``MediaStore`` and completes at once.
Categories without a layer for the drawn trait (generated ranges, text-only traits) are not
drawn. The image depends only on the drawn traits and the layers, so the same traits give the
same bytes (and the same hash) in any cook.

A store that is full, unreachable or too slow, and a compositing process that died, fail the
attempt as retryable with a reason saying so (the piece is tried again after its backoff);
nothing is half-written (the stores remove an unfinished file's bytes).
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from orchestration.art.compositing import Compositor, CompositorBroken
from orchestration.art.layers import BadLayer
from orchestration.base.tools import ToolCall, ToolFailure, ToolOutput, ToolSpec, render_text
from orchestration.catalog.layer_assets import layer_set_for_drawing
from orchestration.storage.media import MediaStore, store_trouble

TOOL_ID = "layers"


def layers_tool(
    db: AsyncDatabase[dict[str, Any]], media: MediaStore, compositor: Compositor
) -> ToolSpec:
    cooks = db["cooks"]
    pieces = db["pieces"]

    async def traits_of(job_key: str) -> tuple[str, list[dict[str, Any]]]:
        cook_id, _, rest = job_key.partition(":")
        index = rest.split(":", 1)[0]
        cook = await cooks.find_one({"_id": cook_id}, {"collectionId": 1})
        if cook is None or not index.isdigit():
            raise ToolFailure(f"layers: no piece {job_key!r}", retryable=False)
        collection_id: str = cook["collectionId"]
        piece = await pieces.find_one({"indexKey": f"{collection_id}:{index}"}, {"traits": 1})
        if piece is None:
            raise ToolFailure(f"layers: no piece {job_key!r}", retryable=False)
        return collection_id, list(piece["traits"])

    async def run(call: ToolCall) -> ToolOutput:
        collection_id, traits = await traits_of(call.job_key)
        layer_set = await layer_set_for_drawing(db, collection_id)
        if layer_set is None:
            raise ToolFailure("layers: the collection has no layers", retryable=False)
        found = [
            (trait, layer)
            for trait in traits
            if (layer := layer_set.find(trait["category"], trait["name"])) is not None
        ]
        drawn = [(layer.sha256, layer_set.style(trait["category"])) for trait, layer in found]
        if not drawn:
            raise ToolFailure("layers: no drawn trait has a layer", retryable=False)
        size = (layer_set.width, layer_set.height)

        async def read(sha256: str) -> bytes:  # only the layers a worker has not decoded yet
            try:
                return await media.read(sha256)
            except Exception as exc:
                reason = store_trouble(exc) or "a stored layer is unreadable"
                raise ToolFailure(f"layers: {reason}", retryable=True) from exc

        try:
            image = await compositor.compose(drawn, size, read)
        except BadLayer as exc:
            raise ToolFailure(f"layers: a stored layer {exc}", retryable=False) from exc
        except CompositorBroken as exc:
            raise ToolFailure(f"layers: {exc}", retryable=True) from exc
        try:
            ref = await media.put(image, "image/png")
        except Exception as exc:
            trouble = store_trouble(exc)
            if trouble is None:
                raise
            raise ToolFailure(f"layers: {trouble}", retryable=True) from exc
        return ToolOutput(render_text(call.params), 0, (ref,))

    return ToolSpec(
        TOOL_ID,
        "Composes the drawn traits' layer images (see `importLayers`, `uploadLayer`) in the "
        "tree's order into one PNG; completes at once. The template renders the text.",
        run,
    )
