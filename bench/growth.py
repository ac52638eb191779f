"""Growth: the same operations with 1,000, 10,000, 30,000 and 100,000 pieces already stored
(``--quick`` keeps small sizes).

For each size, a collection gets that many completed pieces (inserted directly: cooking them
would take far longer), then each operation is timed several times, next to the database's own
raw operations on the same collection: an insert, a read by ``_id``, a count of one cook's
pieces and a sorted page of 50. Reported as median milliseconds and as a ratio to the smallest
size; on the embedded default, the engine's read fixes (``service/embedded_engine.py``) keep
the index-served ones flat.

    .venv/bin/python -m bench.growth [--sizes 1000,10000,30000,100000]
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import bench_settings, clone_pieces, embedded, table
from domain.ids import AccountId
from domain.principal import Principal
from orchestration.base.tools import Submitted, ToolCall, ToolSpec
from orchestration.cooking.cooks import CookRequest
from orchestration.cooking.events import EventType
from orchestration.cooking.pieces import PieceQuery, Success
from orchestration.generators import providers
from tests.api import OWNER, Api, collection_input, running_app

OWNER_P = Principal(AccountId(OWNER))
SAMPLES = 9
Timings = dict[str, float]


async def timed(op: Callable[[int], Awaitable[Any]], samples: int = SAMPLES) -> float:
    times = []
    for i in range(samples):
        began = time.perf_counter()
        await op(i)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


async def fill(api: Api, collection_id: str, size: int) -> None:
    """``size`` completed pieces in the collection, by bulk insert."""
    db = api.app.state.runtime.client[api.settings.db_name]
    services = api.app.state.runtime.services
    cook = await services.orchestrator.start(OWNER_P, collection_id, CookRequest(count=1))
    await services.orchestrator.idle()
    template = await db.pieces.find_one({"cookId": cook.id})
    assert template is not None
    await services.orchestrator.complete(cook.id, template["_id"], 1, Success("seed", 0))
    await services.orchestrator.idle()  # the fill pass that finishes the seed cook
    await clone_pieces(
        db.pieces, template, 1, size - 1, status="completed", review="pending", outputText="x"
    )
    await db.collections.update_one({"_id": collection_id}, {"$set": {"nextPieceIndex": size}})


async def at_size(size: int) -> Timings:
    with embedded() as (db, root):
        settings = bench_settings(db.uri, root, scheduler=False)
        async with running_app(settings) as api:
            services = api.app.state.runtime.services
            orchestrator = services.orchestrator
            spec = collection_input(
                totalSupply=100_000,
                generator={"toolId": "external"},
                template={"p": "[[Animal]]"},
                traitTree=[{"manual": {"name": "Animal", "traits": [{"name": "Cat"}]}}],
            )
            made = await api.data(
                "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
                {"i": spec},
            )
            collection_id = made["createCollection"]["id"]
            await fill(api, collection_id, size)
            raw = api.app.state.runtime.client[settings.db_name].pieces
            timings: Timings = {}
            started: list[tuple[str, str]] = []

            async def start(_: int) -> None:
                cook = await orchestrator.start(OWNER_P, collection_id, CookRequest(count=1))
                started.append((cook.id, ""))

            async def complete(_: int) -> None:
                cook_id, piece_id = started[-1]
                assert await orchestrator.complete(cook_id, piece_id, 1, Success("done", 1))

            # Start and complete alternate (one active cook per collection); the first piece's
            # submission, between the two, is not timed.
            start_times, complete_times = [], []
            for _ in range(SAMPLES):
                start_times.append(await timed(start, 1))
                await orchestrator.idle()
                cook_id = started[-1][0]
                piece = await raw.find_one({"cookId": cook_id}, {"_id": 1})
                assert piece is not None
                started[-1] = (cook_id, piece["_id"])
                complete_times.append(await timed(complete, 1))
                await orchestrator.idle()  # the fill pass that finishes the cook, before the next
            timings["start a cook"] = statistics.median(start_times)
            timings["complete a piece"] = statistics.median(complete_times)

            everything = PieceQuery(collection_id=collection_id)

            async def page(_: int) -> None:
                await services.pieces.find_page(OWNER_P, everything, 50, None)

            timings["list 50 pieces"] = await timed(page)

            feed = services.feed
            await start(0)  # a cook left running, to follow
            cook_id = started[-1][0]
            follower = feed.follow(OWNER_P, cook_id, None)
            await anext(follower)

            async def event(_: int) -> None:
                await services.events.append(cook_id, EventType.PIECE_REJECTED)
                await feed.poll_once()
                await anext(follower)

            timings["one subscription event"] = await timed(event)
            await follower.aclose()

            async def insert(i: int) -> None:
                key = f"raw_{size}_{i}"
                doc = {"_id": key, "indexKey": key, "collectionId": "raw", "index": i}
                await raw.insert_one(doc)

            async def by_id(i: int) -> None:
                await raw.find_one({"_id": f"pc_{(i * 7919) % size or 1:032x}"})

            async def sorted_page(_: int) -> None:
                cursor = raw.find({"collectionId": collection_id}).sort("index", -1).limit(50)
                await cursor.to_list()

            async def count_one_cook(_: int) -> None:
                # a count that an index on cookId serves on MongoDB; the cook holds a few pieces
                await raw.count_documents({"cookId": cook_id, "status": "running"})

            timings["raw: count a cook's running pieces"] = await timed(count_one_cook)
            timings["raw: insert one"] = await timed(insert)
            timings["raw: find one by _id"] = await timed(by_id)
            timings["raw: sorted page of 50"] = await timed(sorted_page)
    return timings


async def _external(call: ToolCall) -> Submitted:
    return Submitted(run_id=f"run-{call.job_key}-{call.attempt}")


def with_external_tool() -> None:
    """A tool that leaves pieces in flight until the benchmark completes them."""
    spec = ToolSpec("external", "bench: outcome from outside", _external)
    if all(t.id != "external" for t in providers.BUILTIN_TOOLS):
        providers.BUILTIN_TOOLS = (*providers.BUILTIN_TOOLS, spec)


async def measure(sizes: list[int]) -> dict[int, Timings]:
    with_external_tool()
    return {size: await at_size(size) for size in sizes}


def report(results: dict[int, Timings]) -> list[str]:
    sizes = sorted(results)
    names = list(results[sizes[0]])
    rows = []
    for name in names:
        base = results[sizes[0]][name]
        cells = [f"{results[s][name]:.2f} (x{results[s][name] / base:.2f})" for s in sizes]
        rows.append([name, *cells])
    return [
        f"Median ms of {SAMPLES} samples with that many pieces stored, and the ratio to "
        f"{sizes[0]:,} pieces.",
        "",
        *table(["operation", *[f"{s:,} pieces" for s in sizes]], rows),
    ]


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="200,1000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    print("\n".join(report(asyncio.run(measure(sizes)))))
