"""What a piece's output becomes in an export: bytes, their content hash and an extension.

A piece with images exports its first image, read from the media store; a text-only piece
exports its text (``.txt``). Exports only see ``Asset``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from orchestration.cooking.pieces import Piece
from orchestration.storage.media import IMAGE_TYPES, MediaStore


@dataclass(frozen=True)
class Asset:
    data: bytes
    extension: str  # without the dot
    content_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class MissingAsset(Exception):
    """A piece has no output to export."""


async def asset_of(piece: Piece, media: MediaStore) -> Asset:
    if piece.media:
        image = piece.media[0]
        data = await media.read(image.sha256)
        return Asset(data, IMAGE_TYPES.get(image.content_type, "bin"), image.content_type)
    if piece.output_text is None:
        raise MissingAsset(f"piece {piece.id} has no output")
    return Asset(piece.output_text.encode(), "txt", "text/plain; charset=utf-8")
