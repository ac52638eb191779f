"""GraphQL types of layer assets: a collection's layer set, and HashLips' ``layersOrder``."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from orchestration.art.layer_import import OrderEntry
from orchestration.art.layers import Blend, Style
from orchestration.art.traits import MAX_NAME_LENGTH
from orchestration.catalog import layer_assets as domain


@strawberry.enum(
    description="How a category's layers mix with what lies below them (HashLips' canvas "
    "modes; the separable ones use Pillow's formulas)."
)
class BlendMode(Enum):
    NORMAL = Blend.NORMAL.value
    MULTIPLY = Blend.MULTIPLY.value
    SCREEN = Blend.SCREEN.value
    OVERLAY = Blend.OVERLAY.value
    DARKEN = Blend.DARKEN.value
    LIGHTEN = Blend.LIGHTEN.value
    DIFFERENCE = Blend.DIFFERENCE.value
    HARD_LIGHT = Blend.HARD_LIGHT.value
    SOFT_LIGHT = Blend.SOFT_LIGHT.value


@strawberry.type(description="How one category's layers are drawn.")
class LayerStyle:
    category: str
    opacity: float = strawberry.field(description="0 to 1, times each pixel's alpha.")
    blend: BlendMode


@strawberry.type(description="One trait's layer image, stored content-addressed.")
class LayerAsset:
    category: str
    trait: str
    sha256: str
    content_type: str
    size: int = strawberry.field(description="In bytes.")


@strawberry.type(description="A collection's layer images, which the `layers` tool draws.")
class LayerSet:
    width: int
    height: int
    styles: list[LayerStyle]
    layers: list[LayerAsset]
    version: int
    updated_at: datetime | None

    @classmethod
    def from_domain(cls, s: domain.LayerSet) -> LayerSet:
        return cls(
            width=s.width,
            height=s.height,
            styles=[
                LayerStyle(category=c, opacity=st.opacity, blend=BlendMode(st.blend.value))
                for c, st in s.styles.items()
            ],
            layers=[
                LayerAsset(
                    category=x.category,
                    trait=x.trait,
                    sha256=x.sha256,
                    content_type=x.content_type,
                    size=x.size,
                )
                for x in s.layers
            ],
            version=s.version,
            updated_at=s.updated_at,
        )


@strawberry.input(description="One entry of HashLips' `layersOrder`: a folder, in draw order.")
class LayerOrderInput:
    name: str = strawberry.field(
        description=f"A folder under `layers/` (1-{MAX_NAME_LENGTH} characters)."
    )
    opacity: float = strawberry.field(
        default=1.0, description="0 to 1 (default 1), times each pixel's alpha."
    )
    blend: BlendMode = strawberry.field(default=BlendMode.NORMAL)

    def to_domain(self) -> OrderEntry:
        return OrderEntry(self.name, Style(self.opacity, Blend(self.blend.value)))
