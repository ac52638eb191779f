"""Layer images: checking an uploaded one, and composing a piece from its traits' layers.

Pure and synchronous (Pillow): callers run these in a worker thread, off the event loop.
Composition is deterministic: the same layers with the same styles give the same PNG bytes
(no timestamps or other metadata are written), so a piece's image hash depends only on its
drawn traits and the layers.

Blend modes follow HashLips' (the canvas ``globalCompositeOperation`` names it passes on):
the layer's colour is mixed with what lies below it, weighted by the backdrop's alpha (the
W3C compositing model), then laid over it with its own alpha times the category's opacity.
The separable mixes are Pillow's ``ImageChops`` functions.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image, ImageChops

MAX_LAYER_PIXELS = 4096 * 4096  # checked from the header, before anything is decoded
MAX_LAYER_BYTES = 20 * 1024 * 1024
LAYER_FORMATS = {"PNG": "image/png", "WEBP": "image/webp"}
PNG_COMPRESS_LEVEL = 6  # zlib's default; fixed so the bytes never depend on Pillow's default


class Blend(StrEnum):
    NORMAL = "source-over"
    MULTIPLY = "multiply"
    SCREEN = "screen"
    OVERLAY = "overlay"
    DARKEN = "darken"
    LIGHTEN = "lighten"
    DIFFERENCE = "difference"
    HARD_LIGHT = "hard-light"
    SOFT_LIGHT = "soft-light"


_MIX: dict[Blend, Callable[[Image.Image, Image.Image], Image.Image]] = {
    Blend.MULTIPLY: ImageChops.multiply,
    Blend.SCREEN: ImageChops.screen,
    Blend.OVERLAY: ImageChops.overlay,
    Blend.DARKEN: ImageChops.darker,
    Blend.LIGHTEN: ImageChops.lighter,
    Blend.DIFFERENCE: ImageChops.difference,
    Blend.HARD_LIGHT: ImageChops.hard_light,
    Blend.SOFT_LIGHT: ImageChops.soft_light,
}


@dataclass(frozen=True)
class Style:
    """How a category's layers are drawn."""

    opacity: float = 1.0  # 0 to 1, times each pixel's alpha
    blend: Blend = Blend.NORMAL


@dataclass(frozen=True)
class Probe:
    width: int
    height: int
    content_type: str


class BadLayer(ValueError):
    """Why an uploaded layer is refused (the message names no file: the caller adds it)."""


def probe(data: bytes) -> Probe:
    """Check one layer: PNG or WebP, at most ``MAX_LAYER_PIXELS`` (read from the header, so a
    decompression bomb is refused before it is decoded), and complete (decoded once in full,
    so a truncated file is refused). Raises ``BadLayer``."""
    if len(data) > MAX_LAYER_BYTES:
        raise BadLayer(f"is larger than {MAX_LAYER_BYTES} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(LAYER_FORMATS))
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadLayer(f"has more than {MAX_LAYER_PIXELS} pixels") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadLayer("is not a PNG or WebP image") from exc
    with image:
        width, height = image.size
        if width * height > MAX_LAYER_PIXELS:
            raise BadLayer(f"has {width}x{height} pixels, more than {MAX_LAYER_PIXELS}")
        kind = LAYER_FORMATS[str(image.format)]
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadLayer("is truncated or corrupt") from exc
    return Probe(width, height, kind)


def decode(data: bytes) -> Image.Image:
    """A stored layer as RGBA (it was checked by ``probe`` when it was uploaded)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(data), formats=list(LAYER_FORMATS))
        image.load()
    return image if image.mode == "RGBA" else image.convert("RGBA")


def _with_opacity(layer: Image.Image, opacity: float) -> Image.Image:
    if opacity >= 1:
        return layer
    table = [round(v * opacity) for v in range(256)]
    red, green, blue, alpha = layer.split()
    return Image.merge("RGBA", (red, green, blue, alpha.point(table)))


def draw(canvas: Image.Image, layer: Image.Image, style: Style) -> Image.Image:
    """``layer`` over ``canvas`` (both RGBA, the same size) in ``style``."""
    layer = _with_opacity(layer, style.opacity)
    mix = _MIX.get(style.blend)
    if mix is not None:
        backdrop = canvas.convert("RGB")
        source = layer.convert("RGB")
        # Where the backdrop is opaque the layer shows the mix; where it is clear, itself.
        colour = Image.composite(mix(backdrop, source), source, canvas.getchannel("A"))
        colour.putalpha(layer.getchannel("A"))
        layer = colour
    return Image.alpha_composite(canvas, layer)


def compose(layers: Sequence[tuple[bytes, Style]], size: tuple[int, int]) -> bytes:
    """The piece's image: each layer in order over a transparent canvas, as a PNG."""
    return compose_decoded([(decode(data), style) for data, style in layers], size)


def compose_decoded(layers: Sequence[tuple[Image.Image, Style]], size: tuple[int, int]) -> bytes:
    """``compose`` of layers decoded already (``decode``); none of them is changed."""
    canvas = Image.new("RGBA", size, (0, 0, 0, 0))
    for layer, style in layers:
        if layer.size != size:
            raise BadLayer(f"is {layer.size[0]}x{layer.size[1]}, not {size[0]}x{size[1]}")
        canvas = draw(canvas, layer, style)
    return encode(canvas)


def encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()
