"""Reading a HashLips project: ``layers/<Category>/<Trait>#<weight>.png`` in a ZIP.

HashLips' conventions: one folder per category (a *layer*), one transparent image per trait,
the trait's weight after the last ``#`` of the file name (none: weight 1), hidden files
skipped, and a ``layersOrder`` list naming the folders in draw order with optional ``blend``
and ``opacity``. Without a ``layersOrder`` the folders are drawn in name order.

Everything is checked before anything is written, and every refusal names the file: not a
ZIP or too large, an entry that escapes the archive (an absolute path, ``..``, a backslash) or
is a symlink or encrypted, a layer that is not a PNG or WebP, is truncated, holds too many
pixels or differs in size from the others, a name with ``[`` or ``]`` or too long, a weight
that is not a number, and more categories or traits than a trait tree may hold.
"""

from __future__ import annotations

import io
import math
import stat
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from domain.errors import BadUserInput, Problem
from orchestration.art.layers import MAX_LAYER_BYTES, BadLayer, Style, probe
from orchestration.art.traits import (
    FORBIDDEN_NAME_CHARS,
    MAX_CATEGORIES,
    MAX_NAME_LENGTH,
    MAX_TRAITS_PER_CATEGORY,
    MAX_WEIGHT,
    ManualCategory,
    Trait,
)

MAX_ZIP_BYTES = 64 * 1024 * 1024
MAX_UNPACKED_BYTES = 256 * 1024 * 1024  # every layer together, as the ZIP declares and as read
MAX_ENTRIES = MAX_CATEGORIES * MAX_TRAITS_PER_CATEGORY + 1000
LAYERS_DIR = "layers"
HASHLIPS_DEFAULT_WEIGHT = 1.0
EXTENSIONS = (".png", ".webp")


@dataclass(frozen=True)
class OrderEntry:
    """One entry of HashLips' ``layersOrder``."""

    name: str
    style: Style = field(default_factory=Style)


@dataclass(frozen=True)
class LayerFile:
    category: str
    trait: str
    data: bytes
    content_type: str


@dataclass(frozen=True)
class ImportedLayers:
    categories: tuple[ManualCategory, ...]  # in draw order, each trait's value is its name
    styles: dict[str, Style]
    files: tuple[LayerFile, ...]
    width: int
    height: int


def _refuse(entry: str, message: str, path: str = "file") -> BadUserInput:
    return BadUserInput.at(path, f"{entry}: {message}")


def _check_name(name: str, entry: str, what: str) -> None:
    if not name.strip():
        raise _refuse(entry, f"the {what} name is blank")
    if len(name) > MAX_NAME_LENGTH:
        raise _refuse(entry, f"the {what} name is longer than {MAX_NAME_LENGTH} characters")
    if any(c in name for c in FORBIDDEN_NAME_CHARS):
        raise _refuse(entry, f"the {what} name {name!r} may not hold [ or ]")


def _trait_of(file_name: str, entry: str) -> tuple[str, float]:
    """``Red#20.png`` is the trait ``Red`` with weight 20; ``Red.png`` has weight 1."""
    stem = file_name.rsplit(".", 1)[0]
    name, delimiter, raw = stem.rpartition("#")
    if not delimiter:
        return stem, HASHLIPS_DEFAULT_WEIGHT
    try:
        weight = float(raw)
    except ValueError:
        raise _refuse(entry, f"the weight {raw!r} after '#' is not a number") from None
    if not math.isfinite(weight) or not 0 <= weight <= MAX_WEIGHT:
        raise _refuse(entry, f"the weight must be between 0 and {MAX_WEIGHT:g}")
    return name, weight


def _hidden(parts: Sequence[str]) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _entries(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, str, str]]:
    """The layer entries as ``(info, category, file name)``; every entry is checked."""
    infos = archive.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _refuse("the ZIP", f"holds more than {MAX_ENTRIES} entries")
    found: list[tuple[zipfile.ZipInfo, str, str]] = []
    declared = 0
    for info in infos:
        name = info.filename
        if "\\" in name or name.startswith("/") or ".." in name.split("/") or ":" in name:
            raise _refuse(name, "the path leaves the archive (absolute, '..' or '\\')")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise _refuse(name, "is a symbolic link")
        if info.flag_bits & 0x1:
            raise _refuse(name, "is encrypted")
        parts = PurePosixPath(name).parts
        if info.is_dir() or _hidden(parts) or LAYERS_DIR not in parts:
            continue
        inside = parts[parts.index(LAYERS_DIR) + 1 :]
        if len(inside) != 2:
            raise _refuse(name, "a layer lies at layers/<Category>/<Trait>#<weight>.png")
        if not inside[1].lower().endswith(EXTENSIONS):
            raise _refuse(name, "is not a .png or .webp file")
        declared += info.file_size
        if info.file_size > MAX_LAYER_BYTES or declared > MAX_UNPACKED_BYTES:
            raise _refuse(name, "the layers unpack to more than the limit")
        found.append((info, inside[0], inside[1]))
    if not found:
        raise _refuse("the ZIP", "holds no layers/<Category>/<Trait>.png files")
    return found


def _read(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """At most the layer limit, whatever the entry's header claims."""
    try:
        with archive.open(info) as member:
            data = member.read(MAX_LAYER_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError) as exc:
        raise _refuse(info.filename, "cannot be unpacked") from exc
    if len(data) > MAX_LAYER_BYTES:
        raise _refuse(info.filename, f"is larger than {MAX_LAYER_BYTES} bytes")
    return data


def _draw_order(folders: list[str], order: Sequence[OrderEntry] | None) -> list[OrderEntry]:
    if order is None:
        return [OrderEntry(name) for name in sorted(folders)]
    problems = []
    seen: set[str] = set()
    for i, entry in enumerate(order):
        if entry.name not in folders:
            problems.append(Problem(f"layersOrder[{i}].name", f"no folder layers/{entry.name}/"))
        if entry.name in seen:
            problems.append(Problem(f"layersOrder[{i}].name", "is named twice"))
        seen.add(entry.name)
    if problems:
        raise BadUserInput(problems)
    return list(order)


def read_hashlips_zip(data: bytes, order: Sequence[OrderEntry] | None = None) -> ImportedLayers:
    """Parse and check a whole HashLips project (CPU-bound: run it in a worker thread).
    Folders left out of a given ``layersOrder`` are not imported, as in HashLips."""
    if len(data) > MAX_ZIP_BYTES:
        raise _refuse("the ZIP", f"is larger than {MAX_ZIP_BYTES} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise _refuse("the file", "is not a ZIP archive") from None
    with archive:
        entries = _entries(archive)
        folders = sorted({category for _, category, _ in entries})
        draw = _draw_order(folders, order)
        if len(draw) > MAX_CATEGORIES:
            raise _refuse("layers/", f"holds more than {MAX_CATEGORIES} categories")
        wanted = {e.name for e in draw}
        by_category: dict[str, list[tuple[str, float, LayerFile]]] = {e.name: [] for e in draw}
        size: tuple[int, int, str] | None = None
        for info, category, file_name in sorted(entries, key=lambda e: e[0].filename):
            if category not in wanted:
                continue
            _check_name(category, info.filename, "category")
            trait, weight = _trait_of(file_name, info.filename)
            _check_name(trait, info.filename, "trait")
            if any(t == trait for t, _, _ in by_category[category]):
                raise _refuse(info.filename, f"a second file for the trait {trait!r}")
            if len(by_category[category]) == MAX_TRAITS_PER_CATEGORY:
                raise _refuse(info.filename, f"more than {MAX_TRAITS_PER_CATEGORY} traits")
            raw = _read(archive, info)
            try:
                found = probe(raw)
            except BadLayer as exc:
                raise _refuse(info.filename, str(exc)) from None
            if size is None:
                size = (found.width, found.height, info.filename)
            elif (found.width, found.height) != size[:2]:
                raise _refuse(
                    info.filename,
                    f"is {found.width}x{found.height}, but {size[2]} is {size[0]}x{size[1]}: "
                    "every layer must have the same size (resize them first)",
                )
            layer = LayerFile(category, trait, raw, found.content_type)
            by_category[category].append((trait, weight, layer))
    assert size is not None
    categories = []
    for entry in draw:
        traits = by_category[entry.name]
        if not any(weight > 0 for _, weight, _ in traits):
            raise _refuse(f"layers/{entry.name}/", "needs at least one trait of positive weight")
        categories.append(ManualCategory(entry.name, tuple(Trait(t, t, w) for t, w, _ in traits)))
    return ImportedLayers(
        categories=tuple(categories),
        styles={e.name: e.style for e in draw},
        files=tuple(f for e in draw for _, _, f in by_category[e.name]),
        width=size[0],
        height=size[1],
    )
