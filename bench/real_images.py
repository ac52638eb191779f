"""Real images: 1024x1024 layers with photographic detail, end to end, on each media store.

A HashLips project of 1024x1024 layers, three categories of three layers of random colours
(noise compresses as badly as photographs: about 3 MiB per opaque layer) and one of 40 small
marks (so that most of 1,000 pieces are distinct images), goes through a ``cook serve``
process over real HTTP, as a user's would, once on files (``COOK_MEDIA_STORE=filesystem``,
the default with the embedded database) and once on GridFS over the embedded server, in the
same run:

- import: the ZIP uploaded to ``importLayers`` (GraphQL multipart), MiB of ZIP per second;
- cook: a ``layers`` cook (``maxConcurrent`` 8, after a 2-piece warm-up cook that starts the
  compositing pool), pieces per second; against it, a bare Pillow composite-and-encode of the
  same pieces' layers (decode, alpha-composite, PNG at the same level) on every core (a
  process pool of one worker per core, warmed up first), in the same run; the figure is the
  tool's rate over the bare rate (aim: at least 0.7);
- export: every piece accepted, then ``exportCollection`` until completed, MiB of archive per
  second (aim on files: at least 100);
- download: ``GET /exports/<id>/archive`` streamed to nothing, MiB/s;
- and GridFS alone: ``GridFSMediaStore.put`` and ``read`` of 4 MiB random files through the
  embedded server, MiB/s.

The smoke run (``python -m bench --smoke``) uses 256x256 layers: the same code, a sixteenth of
the pixels.

    .venv/bin/python -m bench.real_images [--pieces 12] [--gridfs-pieces 4]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import random
import sys
import time
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image, ImageDraw
from pymongo import AsyncMongoClient

from bench.common import PROCESS_ENV, embedded, owner_token, table
from orchestration.art.layers import PNG_COMPRESS_LEVEL
from orchestration.storage.gridfs_media import GridFSMediaStore
from service.allocator import keep_large_buffers
from tests.api import collection_input
from tests.layer_files import IMPORT
from tests.processes import api_process_handle, gql

SIZE = 1024
CATEGORIES = ("Background", "Body", "Hat")
TRAITS = 3
BADGES = 40  # 3 x 3 x 3 x 40 = 1,080 combinations
DB_NAME = "bench_real"
MIB = 2**20
CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }"
START = """mutation($c: ID!, $n: Int!) {
  startCook(collectionId: $c, count: $n, maxConcurrent: 8) { id } }"""
COOK = "query($id: ID!) { cook(id: $id) { status numbers { completed failed } } }"
REVIEW = "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }"
EXPORT = "mutation($c: ID!) { exportCollection(collectionId: $c) { id } }"
EXPORT_STATE = "query($id: ID!) { export(id: $id) { status error sizeBytes downloadUrl } }"


def noisy_layer(category: int, trait: int, size: int = SIZE) -> bytes:
    """Random colours: opaque for the background, inside a shape for the others."""
    rng = random.Random(category * 100 + trait)
    image = Image.frombytes("RGB", (size, size), rng.randbytes(size * size * 3))
    mask = Image.new("L", (size, size), 255 if category == 0 else 0)
    if category:
        top = size // 8 * (category + trait) % (size // 2)
        box = (size // 6, top, size - size // 6, top + size // 2)
        ImageDraw.Draw(mask).ellipse(box, fill=min(255, 200 + 20 * trait))
    image.putalpha(mask)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def badge(n: int, size: int = SIZE) -> bytes:
    """A small mark on a clear layer (a few KiB): many of them make most pieces distinct."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    x, y = 16 + (n % 8) * 24, 16 + (n // 8) * 24
    ImageDraw.Draw(image).rectangle((x, y, x + 16, y + 16), fill=(255, 255 - 5 * n % 256, 0, 255))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def project(
    traits: int = TRAITS, badges: int = BADGES, size: int = SIZE
) -> tuple[bytes, dict[tuple[str, str], bytes]]:
    """Three noisy categories of ``traits`` layers each, and ``badges`` small marks, all
    ``size`` pixels square."""
    layers = {
        (name, f"T{t}"): noisy_layer(c, t, size)
        for c, name in enumerate(CATEGORIES)
        for t in range(traits)
    }
    layers |= {("Badge", f"B{n}"): badge(n, size) for n in range(badges)}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
        for (category, trait), data in layers.items():
            archive.writestr(f"layers/{category}/{trait}.png", data)
    return out.getvalue(), layers


def _say(line: str) -> None:
    print(f"  real images: {line}", file=sys.stderr, flush=True)


def bare_composite(layers: list[bytes]) -> int:
    """What the tool does for a piece, with nothing around it; returns the PNG's size."""
    images = [Image.open(io.BytesIO(data)).convert("RGBA") for data in layers]
    canvas = Image.new("RGBA", images[0].size, (0, 0, 0, 0))
    for image in images:
        canvas = Image.alpha_composite(canvas, image)
    out = io.BytesIO()
    canvas.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return len(out.getvalue())


def bare_on_every_core(pieces: list[list[bytes]]) -> float:
    """Seconds for the bare composites of ``pieces`` on a pool of one process per core."""
    workers = os.process_cpu_count() or 1
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(bare_composite, pieces[:workers]))  # start every worker first
        began = time.perf_counter()
        list(pool.map(bare_composite, pieces))
        return time.perf_counter() - began


@dataclass(frozen=True)
class StoreRun:
    store: str
    zip_bytes: int
    import_seconds: float
    pieces: int
    distinct: int  # images with different bytes (equal traits give equal images)
    layers: int
    image_bytes: int
    cook_seconds: float
    bare_seconds: float
    archive_bytes: int
    export_seconds: float
    download_seconds: float

    def ratio(self) -> float:
        """The tool's pieces/s over bare Pillow's on every core."""
        return self.bare_seconds / self.cook_seconds


@dataclass(frozen=True)
class GridFSRate:
    files: int
    file_bytes: int
    write_seconds: float
    read_seconds: float

    def write(self) -> float:
        return self.files * self.file_bytes / MIB / self.write_seconds

    def read(self) -> float:
        return self.files * self.file_bytes / MIB / self.read_seconds


def _upload_zip(base: str, token: str, collection: str, data: bytes) -> None:
    operations = {"query": IMPORT, "variables": {"c": collection, "order": None, "file": None}}
    response = httpx.post(
        f"{base}/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("project.zip", data, "application/zip")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )
    body = response.json()
    assert not body.get("errors"), body


def _cook(base: str, token: str, collection: str, pieces: int) -> tuple[str, float]:
    began = time.perf_counter()
    cook_id: str = gql(base, token, START, {"c": collection, "n": pieces})["startCook"]["id"]
    while (cook := gql(base, token, COOK, {"id": cook_id})["cook"])["status"] == "RUNNING":
        time.sleep(0.05)
    assert cook["numbers"]["failed"] == 0, cook
    return cook_id, time.perf_counter() - began


async def _pieces(uri: str, cook_id: str) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        query = client[DB_NAME].pieces.find({"cookId": cook_id}, {"traits": 1, "media": 1})
        return [doc async for doc in query]
    finally:
        await client.close()


def _export(base: str, token: str, collection: str) -> tuple[dict[str, Any], float]:
    began = time.perf_counter()
    export_id = gql(base, token, EXPORT, {"c": collection})["exportCollection"]["id"]
    while (job := gql(base, token, EXPORT_STATE, {"id": export_id})["export"])["status"] not in (
        "COMPLETED",
        "FAILED",
    ):
        time.sleep(0.05)
    assert job["status"] == "COMPLETED", job
    return job, time.perf_counter() - began


def _download(base: str, token: str, url: str, size: int) -> float:
    began = time.perf_counter()
    got = 0
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("GET", f"{base}{url}", headers=headers, timeout=600) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw(MIB):
            got += len(chunk)
    assert got == size
    return time.perf_counter() - began


def measure_store(store: str, pieces: int, zipped: bytes, layers: dict[Any, bytes]) -> StoreRun:
    with embedded() as (db, root):
        env = {
            "MONGODB_URI": db.uri,
            "COOK_DB_NAME": DB_NAME,
            "COOK_MEDIA_STORE": store,
            "COOK_TICK_SECONDS": "0.05",
            # GridFS on the embedded server answers other requests slowly while it stores
            # large files (the engine's cost per write): a generous budget for both runs.
            "COOK_DB_TIMEOUT_MS": "60000",
            **PROCESS_ENV,
        }
        data = root / "data"
        with api_process_handle(env, data, root / "api.log") as (base, _):
            token = owner_token(data)
            spec = collection_input(
                totalSupply=pieces + 10,
                generator={"toolId": "layers"},
                traitTree=[{"generated": {"name": "id", "range": {"start": 1, "end": 99999}}}],
                template={"name": "#[[id]]"},
            )
            collection = gql(base, token, CREATE, {"i": spec})["createCollection"]["id"]
            began = time.perf_counter()
            _upload_zip(base, token, collection, zipped)
            import_seconds = time.perf_counter() - began
            _say(f"{store}: imported in {import_seconds:.1f} s")
            _cook(base, token, collection, 2)  # the warm-up: starts the compositing pool
            cook_id, cook_seconds = _cook(base, token, collection, pieces)
            _say(f"{store}: cooked {pieces} pieces in {cook_seconds:.1f} s")
            docs = asyncio.run(_pieces(db.uri, cook_id))
            drawn = [
                [layers[key] for t in d["traits"] if (key := (t["category"], t["name"])) in layers]
                for d in docs
            ]
            bare_seconds = bare_on_every_core(drawn)
            _say(f"{store}: bare Pillow in {bare_seconds:.1f} s")
            image_bytes = sum(m["size"] for d in docs for m in d["media"])
            distinct = len({m["sha256"] for d in docs for m in d["media"]})
            everyone = asyncio.run(_all_piece_ids(db.uri))
            for start in range(0, len(everyone), 100):
                decisions = [
                    {"pieceId": p, "outcome": "ACCEPTED"} for p in everyone[start : start + 100]
                ]
                gql(base, token, REVIEW, {"d": decisions})
            job, export_seconds = _export(base, token, collection)
            download_seconds = _download(base, token, job["downloadUrl"], job["sizeBytes"])
            _say(f"{store}: export {export_seconds:.1f} s, download {download_seconds:.1f} s")
    return StoreRun(
        store,
        len(zipped),
        import_seconds,
        pieces,
        distinct,
        len(layers),
        image_bytes,
        cook_seconds,
        bare_seconds,
        job["sizeBytes"],
        export_seconds,
        download_seconds,
    )


async def _all_piece_ids(uri: str) -> list[str]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    try:
        return [doc["_id"] async for doc in client[DB_NAME].pieces.find({}, {"_id": 1})]
    finally:
        await client.close()


async def _gridfs(uri: str, files: int, size: int) -> GridFSRate:
    keep_large_buffers()  # the store's process set up as ``cook serve`` sets up its own
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, tz_aware=True, timeoutMS=600_000
    )
    try:
        store = GridFSMediaStore(client["bench_gridfs"])
        await store.ensure_indexes()
        blobs = [os.urandom(size) for _ in range(files)]
        began = time.perf_counter()
        digests = [(await store.put(b, "image/png")).sha256 for b in blobs]
        write = time.perf_counter() - began
        began = time.perf_counter()
        for digest, blob in zip(digests, blobs, strict=True):
            assert await store.read(digest) == blob
        read = time.perf_counter() - began
    finally:
        await client.close()
    return GridFSRate(files, size, write, read)


def measure_gridfs(files: int, size: int = 4 * MIB) -> GridFSRate:
    with embedded() as (db, _):
        return asyncio.run(_gridfs(db.uri, files, size))


@dataclass(frozen=True)
class RealImages:
    runs: list[StoreRun]
    gridfs: GridFSRate
    size: int  # of the layers, in pixels a side


def measure(
    pieces: int,
    gridfs_pieces: int,
    gridfs_files: int,
    traits: int = TRAITS,
    badges: int = BADGES,
    size: int = SIZE,
) -> RealImages:
    zipped, layers = project(traits, badges, size)
    runs = [
        measure_store("filesystem", pieces, zipped, layers),
        measure_store("gridfs", gridfs_pieces, zipped, layers),
    ]
    return RealImages(runs, measure_gridfs(gridfs_files), size)


def headline(r: RealImages) -> list[str]:
    return [
        f"real images, layers tool / bare Pillow on every core: {r.runs[0].ratio():.2f}",
        f"GridFS write MiB/s on the embedded server: {r.gridfs.write():.1f}",
    ]


def report(r: RealImages) -> list[str]:
    first = r.runs[0]
    rows = []
    for run in r.runs:
        rows.append(
            [
                "files" if run.store == "filesystem" else "GridFS (embedded server)",
                f"{run.zip_bytes / MIB / run.import_seconds:.1f}",
                f"{run.pieces} ({run.distinct})",
                f"{run.image_bytes / run.pieces / MIB:.2f}",
                f"{run.pieces / run.cook_seconds:.2f}",
                f"{run.pieces / run.bare_seconds:.2f}",
                f"{run.ratio():.2f}",
                f"{run.archive_bytes / MIB / run.export_seconds:.1f}",
                f"{run.archive_bytes / MIB / run.download_seconds:.1f}",
            ]
        )
    return [
        f"A HashLips ZIP of {first.layers} {r.size}x{r.size} layers, three categories of random "
        f"colours and one of small marks ({first.zip_bytes / MIB:.1f} MiB), imported, cooked "
        "with `layers`, every piece accepted, exported and downloaded, through a `cook serve` "
        "process over HTTP, on each store in turn; bare Pillow is the same pieces' "
        f"composite-and-encode on {os.process_cpu_count()} processes (one per core). "
        "Aims: tool / bare at least 0.7, export at least 100 MiB/s on files.",
        "",
        *table(
            [
                "store",
                "import MiB/s",
                "pieces (distinct images)",
                "MiB per image",
                "cook pieces/s",
                "bare Pillow pieces/s",
                "tool / bare",
                "export MiB/s",
                "download MiB/s",
            ],
            rows,
        ),
        "",
        f"GridFS through the embedded server alone (`GridFSMediaStore`, {r.gridfs.files} files "
        f"of {r.gridfs.file_bytes // MIB} MiB): write {r.gridfs.write():.1f} MiB/s, read "
        f"{r.gridfs.read():.1f} MiB/s.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=12)
    parser.add_argument("--gridfs-pieces", type=int, default=4)
    parser.add_argument("--gridfs-files", type=int, default=2)
    parser.add_argument("--traits", type=int, default=TRAITS, help="per noisy category")
    parser.add_argument("--badges", type=int, default=BADGES, help="small marks")
    args = parser.parse_args()
    result = measure(args.pieces, args.gridfs_pieces, args.gridfs_files, args.traits, args.badges)
    print("\n".join([*headline(result), "", *report(result)]))


if __name__ == "__main__":
    main()
