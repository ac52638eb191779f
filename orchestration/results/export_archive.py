"""The export ZIP: ``images/NNNN.ext``, ``metadata/NNNN.json`` (ERC-721 / OpenSea shape), a
combined ``metadata.json`` and a ``manifest.json`` with each piece's content hash and the
provenance hash.

The archive is a function of the export job and its pieces: entries carry a fixed timestamp and
the manifest the job's creation time, so an export resumed after a crash rebuilds the same
bytes. It is written as a stream (no seeking back: each entry's sizes follow it in a data
descriptor), so the worker hands each entry's bytes to the media store as soon as it is added
and never holds more than one piece's entry.

Images already compressed (PNG, JPEG, WebP, GIF) go in stored (``ZIP_STORED``): deflating
them again costs a core and saves next to nothing, so the archive is built at the speed of
reading and writing its bytes. Everything else (text pieces, the JSON) is deflated.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.errors import Problem
from orchestration.base.policy import SEED_BOUND
from orchestration.base.tools import render_text
from orchestration.cooking.pieces import Piece
from orchestration.results.assets import Asset

type Document = dict[str, Any]

DEFAULT_NAME_TEMPLATE = "{collection} #{number}"
MAX_NAME_TEMPLATE = 200
MAX_DESCRIPTION = 2000
MAX_BASE_URI = 500
PROMPT_KEYS = ("prompt", "input_prompt", "positive_prompt", "text")
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # ZIP entry times: the archive depends on its content only
# Extensions whose bytes are already compressed: stored in the ZIP as they are.
STORED_EXTENSIONS = frozenset({"png", "jpg", "webp", "gif"})
PROVENANCE_RULE = (
    "SHA-256 of the concatenated lowercase hex SHA-256 of every image, in number order"
)


@dataclass(frozen=True)
class ExportOptions:
    name_template: str = DEFAULT_NAME_TEMPLATE
    description: str | None = None  # None: the collection's description
    shuffle: bool = False
    shuffle_seed: int | None = None  # with shuffle: drawn and recorded when omitted
    include_prompt: bool = False
    image_base_uri: str = ""  # prefix of each piece's `image`; empty: the archive path

    def problems(self, path: str = "options") -> list[Problem]:
        found: list[Problem] = []
        if not 1 <= len(self.name_template) <= MAX_NAME_TEMPLATE:
            found.append(
                Problem(f"{path}.nameTemplate", f"must hold 1 to {MAX_NAME_TEMPLATE} characters")
            )
        elif "{number}" not in self.name_template:
            found.append(Problem(f"{path}.nameTemplate", "must contain {number}"))
        if self.description is not None and len(self.description) > MAX_DESCRIPTION:
            found.append(
                Problem(f"{path}.description", f"is longer than {MAX_DESCRIPTION} characters")
            )
        if self.shuffle_seed is not None and not 0 <= self.shuffle_seed <= SEED_BOUND:
            found.append(Problem(f"{path}.shuffleSeed", f"must be between 0 and {SEED_BOUND}"))
        if self.shuffle_seed is not None and not self.shuffle:
            found.append(Problem(f"{path}.shuffleSeed", "needs shuffle: true"))
        if len(self.image_base_uri) > MAX_BASE_URI:
            found.append(
                Problem(f"{path}.imageBaseUri", f"is longer than {MAX_BASE_URI} characters")
            )
        return found


@dataclass(frozen=True)
class CollectionInfo:
    """The collection as it was when the export was requested."""

    id: str
    name: str
    description: str
    total_supply: int
    config_hash: str


def numbered(piece_ids: list[str], shuffle_seed: int | None) -> list[str]:
    """Piece ids in number order (number = position + 1): by piece index, or shuffled by a
    Fisher-Yates shuffle seeded with ``shuffle_seed``."""
    order = list(piece_ids)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)  # noqa: S311 - reproducible order
    return order


def number_width(count: int) -> int:
    return max(4, len(str(count)))


def prompt_of(params: Any) -> str:
    if isinstance(params, dict):
        for key in PROMPT_KEYS:
            if isinstance(params.get(key), str):
                return str(params[key])
    return render_text(params)


def piece_name(template: str, collection: str, number: int) -> str:
    """Literal replacement of ``{number}`` and ``{collection}``; nothing else is interpreted."""
    return template.replace("{collection}", collection).replace("{number}", str(number))


def provenance_hash(content_hashes: list[str]) -> str:
    return hashlib.sha256("".join(content_hashes).encode()).hexdigest()


class Spool(io.RawIOBase):
    """Where ``zipfile`` writes: bytes wait here until ``take`` hands them on. Not seekable,
    so ``zipfile`` streams. The bytes ``zipfile`` passes are kept as they are (an image's
    bytes, stored, are not copied on the way to the store)."""

    def __init__(self) -> None:
        self._held: list[bytes] = []
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        held = data if type(data) is bytes else bytes(data)
        self._held.append(held)
        self._position += len(held)
        return len(held)

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("the archive is written as a stream")

    def take(self) -> list[bytes]:
        """What was written since the last ``take``, in order."""
        held, self._held = self._held, []
        return held


@dataclass
class ArchiveWriter:
    """Writes one export archive into ``sink``; ``add`` each piece in number order, then
    ``finish``; take what is written from the sink after each call."""

    sink: Spool
    export_id: str
    created_at: datetime
    collection: CollectionInfo
    options: ExportOptions
    count: int
    _zip: zipfile.ZipFile = field(init=False)
    _items: list[Document] = field(default_factory=list, init=False)
    _metadata: list[Document] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._zip = zipfile.ZipFile(self.sink, "w", compression=zipfile.ZIP_DEFLATED)

    def _write(self, name: str, data: bytes, *, stored: bool = False) -> None:
        info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        self._zip.writestr(info, data)

    def add(self, piece: Piece, asset: Asset) -> None:
        number = len(self._items) + 1
        stem = str(number).zfill(number_width(self.count))
        image = f"images/{stem}.{asset.extension}"
        attributes: list[Document] = [
            {"trait_type": t.category, "value": t.name} for t in piece.traits
        ]
        if self.options.include_prompt:
            attributes.append({"trait_type": "prompt", "value": prompt_of(piece.params)})
        metadata: Document = {
            "name": piece_name(self.options.name_template, self.collection.name, number),
            "description": self.collection.description
            if self.options.description is None
            else self.options.description,
            "image": f"{self.options.image_base_uri}{stem}.{asset.extension}"
            if self.options.image_base_uri
            else image,
            "attributes": attributes,
        }
        self._write(image, asset.data, stored=asset.extension in STORED_EXTENSIONS)
        self._write(f"metadata/{stem}.json", _json(metadata))
        self._metadata.append(metadata)
        self._items.append(
            {
                "number": number,
                "pieceId": piece.id,
                "index": piece.index,
                "cookId": piece.cook_id,
                "image": image,
                "metadata": f"metadata/{stem}.json",
                "contentHash": asset.sha256,
                "seed": str(piece.seed),
                "configHash": piece.config_hash,
            }
        )

    def finish(self, cook_seeds: dict[str, int], shuffle_seed: int | None) -> str:
        """Write the combined files and close; returns the provenance hash."""
        provenance = provenance_hash([item["contentHash"] for item in self._items])
        manifest: Document = {
            "exportId": self.export_id,
            "generatedAt": self.created_at.isoformat(),
            "collection": {
                "id": self.collection.id,
                "name": self.collection.name,
                "description": self.collection.description,
                "totalSupply": self.collection.total_supply,
            },
            "count": len(self._items),
            "configHash": self.collection.config_hash,
            "pieceConfigHashes": sorted({i["configHash"] for i in self._items}),
            "numbering": {"shuffled": shuffle_seed is not None, "shuffleSeed": shuffle_seed},
            "cookSeeds": {k: str(v) for k, v in sorted(cook_seeds.items())},
            "provenance": {"algorithm": PROVENANCE_RULE, "hash": provenance},
            "items": self._items,
        }
        self._write("metadata.json", _json(self._metadata))
        self._write("manifest.json", _json(manifest))
        self._zip.close()
        return provenance

    def abandon(self) -> None:
        self._zip.close()
        self.sink.take()


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()
