"""The ``layers`` tool: its composite time per piece against bare Pillow, and a cook's rate.

1. Composite: six 1024x1024 layers (two traits per category, made here). For each piece of a
   small cook, the tool's own call (it reads the piece and the layer set from the database and
   the layers from the media store, composes in a worker thread and stores the PNG) is timed
   against a bare Pillow composite of the same layers from bytes in memory (decode, alpha
   composite over a clear canvas, encode the PNG at the same level), alternately, in the same
   run. The figure is tool / bare, per piece.
2. Cook: a cook of N pieces with ``layers`` (six 256x256 layers) against the same cook with
   the instant ``prompt`` tool, in the same run: pieces per second of each, and the ratio.
"""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from bench.common import Spread, bench_settings, embedded, table
from domain.ids import AccountId
from domain.principal import Principal
from orchestration.art.layers import PNG_COMPRESS_LEVEL
from orchestration.base.tools import ToolCall
from orchestration.cooking.cooks import CookRequest
from tests.api import OWNER, Api, running_app

CATEGORIES = ("Background", "Back", "Body", "Face", "Eyes", "Hat")
OWNER_PRINCIPAL = Principal(AccountId(OWNER))


def layer(size: int, category: int, trait: int) -> bytes:
    """A transparent layer with a few translucent shapes (the first category is opaque)."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if category == 0:
        for y in range(size):  # a vertical gradient
            draw.line([(0, y), (size, y)], fill=(30 + trait * 90, y * 255 // size, 160, 255))
    for k in range(6):
        x, y = (size * (k + category) // 9) % size, (size * (2 * k + trait) // 11) % size
        colour = ((60 * k + 40 * category) % 256, (90 * trait + 30 * k) % 256, 200, 140 + 15 * k)
        draw.ellipse([x, y, x + size // 4, y + size // 5], fill=colour)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def project(size: int) -> tuple[bytes, dict[tuple[str, str], bytes]]:
    files = {
        (category, f"T{trait}"): layer(size, c, trait)
        for c, category in enumerate(CATEGORIES)
        for trait in range(2)
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for (category, trait), data in files.items():
            archive.writestr(f"layers/{category}/{trait}.png", data)
    return out.getvalue(), files


def bare_pillow(layers: list[bytes], size: int) -> bytes:
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    for data in layers:
        canvas = Image.alpha_composite(canvas, Image.open(io.BytesIO(data)).convert("RGBA"))
    out = io.BytesIO()
    canvas.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


async def layered_collection(api: Api, size: int, supply: int, tool: str = "layers") -> str:
    made = await api.data(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {
            "i": {
                "name": "bench",
                "totalSupply": supply,
                "generator": {"toolId": tool},
                "traitTree": [{"generated": {"name": "id", "range": {"start": 1, "end": 99999}}}],
                "template": {"name": "#[[id]]"},
            }
        },
    )
    collection_id: str = made["createCollection"]["id"]
    data, _ = project(size)
    await api.app.state.runtime.services.layers.import_zip(
        OWNER_PRINCIPAL, collection_id, data, None, None
    )
    return collection_id


async def cook_to_end(api: Api, collection_id: str, count: int) -> tuple[str, float]:
    services = api.app.state.runtime.services
    began = time.perf_counter()
    cook = await services.orchestrator.start(
        OWNER_PRINCIPAL, collection_id, CookRequest(count=count, max_concurrent=4)
    )
    while True:
        await services.orchestrator.idle()
        current = await services.cooks.load(cook.id)
        if current is not None and current.ended_at is not None:
            return cook.id, time.perf_counter() - began
        await asyncio.sleep(0.01)


@dataclass(frozen=True)
class Composite:
    tool: Spread
    bare: Spread

    @property
    def ratio(self) -> Spread:
        return Spread(tuple(t / b for t, b in zip(self.tool.values, self.bare.values, strict=True)))


async def measure_composite(pieces: int, size: int = 1024) -> Composite:
    with embedded() as (db, root):
        # The default sweeper tick: a faster one only adds work beside the composites.
        async with running_app(bench_settings(db.uri, root)) as api:
            services = api.app.state.runtime.services
            collection_id = await layered_collection(api, size, pieces)
            cook_id, _ = await cook_to_end(api, collection_id, pieces)
            _, files = project(size)
            spec = services.toolbox.get("layers")
            assert spec is not None
            database = api.app.state.runtime.client[api.settings.db_name]
            docs: list[dict[str, Any]] = [
                d async for d in database.pieces.find({"cookId": cook_id}).sort("index")
            ]
            tool, bare = [], []
            for doc in docs:
                drawn = [
                    files[(t["category"], t["name"])]
                    for t in doc["traits"]
                    if (t["category"], t["name"]) in files
                ]
                began = time.perf_counter()
                await spec.run(ToolCall(doc["jobKey"], 1, {"name": "x"}))
                tool.append(time.perf_counter() - began)
                began = time.perf_counter()
                bare_pillow(drawn, size)
                bare.append(time.perf_counter() - began)
    return Composite(Spread(tuple(tool)), Spread(tuple(bare)))


@dataclass(frozen=True)
class CookRate:
    pieces: int
    layers_seconds: float
    prompt_seconds: float


async def measure_cook(pieces: int, size: int = 256) -> CookRate:
    with embedded() as (db, root):
        settings = bench_settings(db.uri, root, tick_seconds=0.05)
        async with running_app(settings) as api:
            layered = await layered_collection(api, size, pieces)
            _, layers_seconds = await cook_to_end(api, layered, pieces)
            plain = await layered_collection(api, size, pieces, tool="prompt")
            _, prompt_seconds = await cook_to_end(api, plain, pieces)
    return CookRate(pieces, layers_seconds, prompt_seconds)


def report(composite: Composite, rate: CookRate) -> list[str]:
    n = len(composite.tool.values)
    layers_rate = rate.pieces / rate.layers_seconds
    prompt_rate = rate.pieces / rate.prompt_seconds
    return [
        f"Composite of 6 layers at 1024x1024, {n} pieces, each timed through the tool and as a "
        "bare Pillow composite from bytes (median, and range):",
        "",
        *table(
            ["tool ms", "bare Pillow ms", "tool / bare"],
            [
                [
                    Spread(tuple(1000 * v for v in composite.tool.values)).show(1),
                    Spread(tuple(1000 * v for v in composite.bare.values)).show(1),
                    composite.ratio.show(),
                ]
            ],
        ),
        "",
        f"A cook of {rate.pieces} pieces (6 layers at 256x256, `maxConcurrent` 4) against the "
        "same cook with the instant `prompt` tool:",
        "",
        *table(
            ["layers pieces/s", "prompt pieces/s", "layers / prompt time"],
            [
                [
                    f"{layers_rate:.1f}",
                    f"{prompt_rate:.1f}",
                    f"{rate.layers_seconds / rate.prompt_seconds:.2f}",
                ]
            ],
        ),
    ]
