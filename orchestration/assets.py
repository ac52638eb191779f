"""What a piece's output becomes in an export: bytes, their content hash and an extension.

Today every generator returns text, so the asset is the text itself (``.txt``). Image
generators (the providers issue) add an image asset here; exports only see ``Asset``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from orchestration.pieces import Piece


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


def asset_of(piece: Piece) -> Asset:
    if piece.output_text is None:
        raise MissingAsset(f"piece {piece.id} has no output")
    return Asset(piece.output_text.encode(), "txt", "text/plain; charset=utf-8")
