"""Orchestrator overhead: pieces per second, round trips per piece, and their cost over floor.

A cook of N pieces with the instant test tool at ``maxConcurrent`` 8 runs in process with the
scheduler on (its default tick), in a database that already holds S pieces of another cook
(pre-inserted directly), for several S. Every command sent to the database meanwhile is
recorded (PyMongo command monitoring): their number per piece is the design's round trips per
piece, by command.

The floor is the engine's own: in the same run and at the same size, the median time of a bare
``find_one`` by ``_id``, ``update_one`` by ``_id`` and ``insert_one`` on the pieces, and of the
same writes in bulk (``insert_many`` of ``BULK`` copies, ``bulk_write`` of ``BULK`` updates by
``_id``), which gives what each further document of a bulk write costs. Each recorded round trip
is charged the floor of its kind at its size (reads: ``find_one``; inserts: ``insert_one`` plus
the bulk cost of each further document; every other write: ``update_one`` plus that of each
further statement), and the figure is the cook's wall time over the sum of its round trips'
floors: how much more each round trip costs than the cheapest one of its kind and size (the aim
is at most 1.5). The table also shows the figure with every round trip charged as if it carried
one document: on the embedded engine a bulk write of n documents costs about n writes (it
saves the round trips, not the work), so that figure mostly counts documents per round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import astuple, dataclass, field
from typing import Any

from pymongo import UpdateOne, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure
from pymongo.uri_parser import parse_uri

from bench.common import Spread, bench_settings, clone_pieces, embedded, table
from domain.ids import AccountId
from domain.principal import Principal
from orchestration.cooking.cooks import CookRequest
from tests.api import OWNER, Api, collection_input, running_app

SKIP_KEYS = {"lsid", "$clusterTime", "$db", "txnNumber", "$readPreference", "signature"}
QUIET = ("hello", "isMaster", "ping", "endSessions", "killCursors")
FLOOR_SAMPLES = 200
BULK = 16  # documents per bulk write when measuring what each further one costs
BULK_SAMPLES = 40
READS = {"find", "aggregate", "count", "distinct", "getMore"}
MAX_CONCURRENT = 8
OWNER_P = Principal(AccountId(OWNER))


@dataclass
class Recorder(monitoring.CommandListener):
    """The commands sent to one server while on (other stages' sweepers talk to theirs)."""

    server: tuple[str, int] | None = None
    commands: list[tuple[str, int]] = field(default_factory=list)  # (name, documents)

    def start(self, server: tuple[str, int]) -> None:
        self.commands = []
        self.server = server

    def stop(self) -> list[tuple[str, int]]:
        self.server = None
        return self.commands

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.connection_id == self.server and event.command_name not in QUIET:
            c = event.command
            size = len(c.get("documents") or c.get("updates") or c.get("deletes") or [None])
            self.commands.append((event.command_name, size))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


RECORDER = Recorder()
monitoring.register(RECORDER)


@dataclass(frozen=True)
class Floors:
    """Median seconds of the engine's cheapest command of each kind, and what each further
    document of a bulk write adds."""

    read: float
    update: float
    insert: float
    update_each: float
    insert_each: float

    def mean(self, other: Floors) -> Floors:
        return Floors(*((a + b) / 2 for a, b in zip(astuple(self), astuple(other), strict=True)))

    def of(self, command: str, size: int = 1) -> float:
        if command in READS:
            return self.read
        if command == "insert":
            return self.insert + (size - 1) * self.insert_each
        return self.update + (size - 1) * self.update_each


@dataclass(frozen=True)
class Run:
    stored: int
    pieces: int
    wall: float
    commands: list[tuple[str, int]]
    floors: Floors

    @property
    def per_piece(self) -> Counter[str]:
        counts = Counter(name for name, _ in self.commands)
        return Counter({name: n / self.pieces for name, n in counts.items()})

    @property
    def round_trips(self) -> float:
        return sum(self.per_piece.values())

    @property
    def rate(self) -> float:
        return self.pieces / self.wall

    @property
    def ratio(self) -> float:
        """Wall time over the floors of the round trips, each at its size."""
        return self.wall / sum(self.floors.of(name, size) for name, size in self.commands)

    @property
    def ratio_as_single(self) -> float:
        """Wall time over the floors of the round trips, each as if it carried one document."""
        return self.wall / sum(self.floors.of(name) for name, _ in self.commands)


async def create_collection(api: Api, supply: int) -> str:
    spec = collection_input(
        totalSupply=supply, generator={"toolId": "test"}, template={"prompt": "[[Animal]]"}
    )
    made = await api.data(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {"i": spec},
    )
    collection_id: str = made["createCollection"]["id"]
    return collection_id


async def store_pieces(api: Api, size: int) -> None:
    """``size`` completed pieces of another cook, by bulk insert."""
    if size <= 0:
        return
    services = api.app.state.runtime.services
    db = api.app.state.runtime.client[api.settings.db_name]
    collection_id = await create_collection(api, 100_000)
    cook = await services.orchestrator.start(OWNER_P, collection_id, CookRequest(count=1))
    while (await services.cooks.load(cook.id)).ended_at is None:  # type: ignore[union-attr]
        await services.orchestrator.idle()
        await asyncio.sleep(0.01)
    template = await db.pieces.find_one({"cookId": cook.id})
    assert template is not None
    await clone_pieces(db.pieces, template, 1, size)


async def floors(pieces: AsyncCollection[dict[str, Any]], samples: int = FLOOR_SAMPLES) -> Floors:
    """The floors from ``samples`` of each single command (and a fifth as many bulk ones)."""
    sample = await pieces.find_one({}) or {"_id": "none"}
    some_id = sample["_id"]

    async def median(op: Any, n: int = samples) -> float:  # op(i): the i-th sample
        times = []
        for i in range(n):
            began = time.perf_counter()
            try:
                await op(i)
            except OperationFailure:
                continue  # the engine refused it while the sweeper wrote (a known race)
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    read = await median(lambda _: pieces.find_one({"_id": some_id}))
    update = await median(lambda i: pieces.update_one({"_id": some_id}, {"$set": {"floor": i}}))
    unique = ("seat", "slot", "combo", "outbox", "unlogged", "lastEvent")
    doc = {k: v for k, v in copy.deepcopy(sample).items() if k not in unique}

    def copies(i: int, n: int) -> list[dict[str, Any]]:
        keys = [f"floor_{i}_{j}" for j in range(n)]
        return [{**doc, "_id": k, "indexKey": k} for k in keys]

    insert = await median(lambda i: pieces.insert_one(copies(i, 1)[0]))
    bulks = max(1, samples * BULK_SAMPLES // FLOOR_SAMPLES)
    inserts = await median(lambda i: pieces.insert_many(copies(samples + i, BULK)), bulks)
    ids = [d["_id"] for d in copies(samples, BULK)]
    updates = await median(
        lambda i: pieces.bulk_write([UpdateOne({"_id": k}, {"$set": {"floor": i}}) for k in ids]),
        bulks,
    )
    await pieces.delete_many({"_id": {"$regex": "^floor_"}})
    each = (BULK - 1) * 1.0
    return Floors(
        read,
        update,
        insert,
        update_each=max(0.0, (updates - update) / each),
        insert_each=max(0.0, (inserts - insert) / each),
    )


@dataclass(frozen=True)
class Stage:
    """A running app on its own embedded server, its database seeded with ``stored`` pieces."""

    stored: int
    api: Api
    server: tuple[str, int]  # the address its commands go to


@contextlib.asynccontextmanager
async def stage(stored: int) -> AsyncIterator[Stage]:
    with embedded() as (db, root):
        # Bulk seeding on a loaded machine may outlast the default per-command timeout.
        settings = bench_settings(db.uri, root, max_concurrent_cap=32, db_timeout_ms=60_000)
        async with running_app(settings) as api:
            await store_pieces(api, stored)
            host, port = parse_uri(db.uri)["nodelist"][0]
            yield Stage(stored, api, (host, port))


async def one_cook(at: Stage, pieces: int, floor_samples: int = FLOOR_SAMPLES) -> Run:
    """A cook of ``pieces`` on the stage, its round trips recorded, the floors measured just
    before and just after it (their mean: the machine's speed drifts)."""
    services = at.api.app.state.runtime.services
    collection = at.api.app.state.runtime.client[at.api.settings.db_name]["pieces"]
    collection_id = await create_collection(at.api, pieces)
    before = await floors(collection, floor_samples)
    RECORDER.start(at.server)
    began = time.perf_counter()
    cook = await services.orchestrator.start(
        OWNER_P, collection_id, CookRequest(count=pieces, max_concurrent=MAX_CONCURRENT)
    )
    while True:
        await services.orchestrator.idle()
        current = await services.cooks.load(cook.id)
        if current is not None and current.ended_at is not None:
            break
        await asyncio.sleep(0.01)
    wall = time.perf_counter() - began
    recorded = RECORDER.stop()
    after = await floors(collection, floor_samples)
    return Run(at.stored, pieces, wall, recorded, before.mean(after))


def stored_sizes(pieces: int) -> list[int]:
    """Pieces already stored: the issue's sizes for a full run, small ones for quick mode."""
    return [1000, 10_000, 30_000, 100_000] if pieces >= 1000 else [100, 1000]


async def measure(
    pieces: int, rounds: int, sizes: list[int] | None = None, floor_samples: int = FLOOR_SAMPLES
) -> list[Run]:
    """Every size seeded first, each on its own server; then ``rounds`` rounds, each running
    one cook at every size in turn, so that the machine's drift falls on all sizes alike."""
    async with contextlib.AsyncExitStack() as stack:
        stages = [
            await stack.enter_async_context(stage(stored))
            for stored in sizes or stored_sizes(pieces)
        ]
        return [await one_cook(at, pieces, floor_samples) for _ in range(rounds) for at in stages]


def headline(runs: list[Run]) -> list[str]:
    """The figures RESULTS.md opens with, one per line."""
    sizes = sorted({r.stored for r in runs})
    rates = {s: statistics.median(r.rate for r in runs if r.stored == s) for s in sizes}
    trips = statistics.median(r.round_trips for r in runs)
    return [
        f"pieces/s at the slowest size: {min(rates.values()):.1f}",
        f"round trips per piece: {trips:.1f}",
        f"pieces/s at {sizes[-1]:,} / at {sizes[0]:,}: {rates[sizes[-1]] / rates[sizes[0]]:.2f}",
    ]


def report(runs: list[Run]) -> list[str]:
    sizes = sorted({r.stored for r in runs})
    by_size = {s: [r for r in runs if r.stored == s] for s in sizes}
    rows = []
    for size, group in by_size.items():
        rows.append(
            [
                f"{size:,}",
                Spread(tuple(r.rate for r in group)).show(1),
                Spread(tuple(r.round_trips for r in group)).show(1),
                Spread(tuple(r.ratio for r in group)).show(),
                Spread(tuple(r.ratio_as_single for r in group)).show(),
                " / ".join(
                    f"{statistics.median(getattr(r.floors, f) for r in group) * 1000:.2f}"
                    for f in ("read", "update", "insert", "update_each", "insert_each")
                ),
            ]
        )
    names = sorted({n for r in runs for n in r.per_piece}, key=lambda n: -runs[0].per_piece[n])
    return [
        f"A cook of {runs[0].pieces} pieces, instant test tool, `maxConcurrent` "
        f"{MAX_CONCURRENT}, default tick, in a database already holding that many pieces of "
        f"another cook (each size on its own server, all seeded first); {len(runs) // len(sizes)} "
        "rounds, each running one cook at every size in turn, so that the machine's drift falls "
        "on all sizes alike (median, and range; a later round's database also holds the earlier "
        "rounds' cooks). The floors are measured just before and just after each cook:",
        "",
        *table(
            [
                "pieces stored",
                "pieces/s",
                "round trips per piece",
                "wall / sum of round trips' floors, each at its size",
                "the same, each as one document",
                "floor ms: find_one / update_one / insert_one by _id / each further update"
                " / insert in bulk",
            ],
            rows,
        ),
        "",
        "Round trips per piece, by command: "
        + ", ".join(f"{n} {statistics.median(r.per_piece[n] for r in runs):.2f}" for n in names)
        + ".",
    ]


if __name__ == "__main__":
    import sys

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    sizes = [int(s) for s in sys.argv[2].split(",")] if len(sys.argv) > 2 else stored_sizes(n)
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    runs = asyncio.run(measure(n, rounds, sizes))
    print("\n".join([*headline(runs), "", *report(runs)]))
