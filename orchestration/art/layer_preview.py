"""Pictures before a cook: thumbnails of drawn pieces composed from a collection's layers,
in memory only (nothing is stored, no piece or media is written).

Each distinct layer a request needs is decoded once and scaled to the thumbnail first, then
the pieces are composed at that size with the same styles as the ``layers`` tool (so a
thumbnail is the cooked image scaled, up to resampling). The work is bounded before any layer
is decoded: at most ``MAX_PREVIEW_IMAGES`` pieces, a thumbnail side of at most
``MAX_THUMBNAIL``, and at most ``MAX_DECODED_PIXELS`` layer pixels decoded per request.
Pure and synchronous (Pillow): callers run it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image

from orchestration.art.layers import Style, decode, draw, encode

MAX_PREVIEW_IMAGES = 12
MIN_THUMBNAIL = 16
MAX_THUMBNAIL = 256
MAX_DECODED_PIXELS = 64 * 1024 * 1024


@dataclass(frozen=True)
class PieceLayers:
    """One drawn piece: the hashes of its traits' layers in draw order, with their styles."""

    layers: tuple[tuple[str, Style], ...]


def thumbnail_size(width: int, height: int, side: int) -> tuple[int, int]:
    """The layers' size scaled to fit ``side`` x ``side`` (never enlarged)."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def decoded_pixels(pieces: Sequence[PieceLayers], width: int, height: int) -> int:
    """How many layer pixels composing ``pieces`` decodes (each distinct layer once)."""
    distinct = {sha for piece in pieces for sha, _ in piece.layers}
    return len(distinct) * width * height


def compose_thumbnails(
    pieces: Sequence[PieceLayers],
    files: Mapping[str, bytes],
    layer_size: tuple[int, int],
    side: int,
) -> list[bytes | None]:
    """Each piece's PNG thumbnail (None: none of its traits has a layer)."""
    size = thumbnail_size(*layer_size, side)
    scaled: dict[str, Image.Image] = {}
    for sha in {sha for piece in pieces for sha, _ in piece.layers}:
        with decode(files[sha]) as full:
            same = full.size == size
            scaled[sha] = full.copy() if same else full.resize(size, Image.Resampling.LANCZOS)
    out: list[bytes | None] = []
    for piece in pieces:
        if not piece.layers:
            out.append(None)
            continue
        canvas = Image.new("RGBA", size, (0, 0, 0, 0))
        for sha, style in piece.layers:
            canvas = draw(canvas, scaled[sha], style)
        out.append(encode(canvas))
    return out
