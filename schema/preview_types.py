"""GraphQL types of pictures before a cook: ``previewLayers``' composed thumbnails."""

from __future__ import annotations

import strawberry

from schema.cook_types import ChosenTrait


@strawberry.type(description="A drawn piece's picture, composed in memory and not stored.")
class LayerPreviewPiece:
    index: int
    traits: list[ChosenTrait]
    image: str | None = strawberry.field(
        description="A PNG thumbnail, base64-encoded; null when none of its drawn traits has a "
        "layer."
    )
    content_type: str = strawberry.field(default="image/png")


@strawberry.type(description="What the next cook would draw with this seed, as pictures.")
class LayerPreview:
    seed: int
    width: int = strawberry.field(description="The thumbnails' width in pixels.")
    height: int = strawberry.field(description="The thumbnails' height in pixels.")
    pieces: list[LayerPreviewPiece]
