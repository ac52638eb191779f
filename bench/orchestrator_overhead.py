"""Orchestrator overhead: a cook's wall time against the floor of its database round trips.

A cook of N pieces with the instant test tool at ``maxConcurrent`` 8 runs in process with the
scheduler on. Every command sent to the database meanwhile is recorded (PyMongo command
monitoring): their number per piece is the design's round trips per piece. Then the same
commands are sent again one at a time, alone, and timed: the floor is the sum, over recorded
commands, of the median alone-time of commands of that name. The figure is wall / floor.
Replayed writes meet documents already in their final state (an insert is refused as a
duplicate, a conditional update matches nothing), so the floor is, if anything, low.
"""

from __future__ import annotations

import asyncio
import copy
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from pymongo import monitoring
from pymongo.errors import OperationFailure

from bench.common import Spread, bench_settings, embedded, table
from domain.ids import AccountId
from domain.principal import Principal
from orchestration.cooks import CookRequest
from tests.api import OWNER, collection_input, running_app

SKIP_KEYS = {"lsid", "$clusterTime", "$db", "txnNumber", "$readPreference", "signature"}
REPLAY_PER_NAME = 60


@dataclass
class Recorder(monitoring.CommandListener):
    on: bool = False
    commands: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on and event.command_name not in ("hello", "isMaster", "ping", "endSessions"):
            command = {k: v for k, v in event.command.items() if k not in SKIP_KEYS}
            self.commands.append((event.command_name, event.database_name, copy.deepcopy(command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


RECORDER = Recorder()
monitoring.register(RECORDER)


@dataclass(frozen=True)
class Run:
    pieces: int
    wall: float
    per_piece: Counter[str]
    floor: float

    @property
    def round_trips(self) -> float:
        return sum(self.per_piece.values())

    @property
    def ratio(self) -> float:
        return self.wall / self.floor


async def one_cook(pieces: int) -> Run:
    with embedded() as (db, root):
        settings = bench_settings(db.uri, root, tick_seconds=0.05, max_concurrent_cap=32)
        async with running_app(settings) as api:
            services = api.app.state.runtime.services
            owner = Principal(AccountId(OWNER))
            spec = collection_input(
                totalSupply=pieces, generator={"toolId": "test"}, template={"prompt": "[[Animal]]"}
            )
            made = await api.data(
                "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
                {"i": spec},
            )
            collection_id = made["createCollection"]["id"]
            RECORDER.commands.clear()
            RECORDER.on = True
            began = time.perf_counter()
            cook = await services.orchestrator.start(
                owner, collection_id, CookRequest(count=pieces, max_concurrent=8)
            )
            while True:
                await services.orchestrator.idle()
                current = await services.cooks.load(cook.id)
                if current is not None and current.ended_at is not None:
                    break
                await asyncio.sleep(0.01)
            wall = time.perf_counter() - began
            RECORDER.on = False
            recorded = list(RECORDER.commands)
            client = api.app.state.runtime.client
            alone = await replay(client, recorded)
    counts = Counter(name for name, _, _ in recorded)
    floor = sum(alone[name] * n for name, n in counts.items())
    per_piece = Counter({name: n / pieces for name, n in counts.items()})
    return Run(pieces, wall, per_piece, floor)


async def replay(client: Any, recorded: list[tuple[str, str, dict[str, Any]]]) -> dict[str, float]:
    """Median seconds of each command name, sent again one at a time."""
    by_name: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for name, database, command in recorded:
        by_name[name].append((database, command))
    medians = {}
    for name, items in by_name.items():
        step = max(1, len(items) // REPLAY_PER_NAME)
        times = []
        for database, command in items[::step][:REPLAY_PER_NAME]:
            began = time.perf_counter()
            try:
                result = await client[database].command(command)
                if name in ("find", "aggregate") and result.get("cursor", {}).get("id"):
                    cursor_id = result["cursor"]["id"]
                    collection = command.get(name)
                    await client[database].command(
                        {"killCursors": collection, "cursors": [cursor_id]}
                    )
            except OperationFailure:
                pass  # a replayed insert meets its own document: still one round trip
            times.append(time.perf_counter() - began)
        medians[name] = statistics.median(times)
    return medians


async def measure(pieces: int, repetitions: int) -> list[Run]:
    return [await one_cook(pieces) for _ in range(repetitions)]


def report(runs: list[Run]) -> list[str]:
    ratio = Spread(tuple(r.ratio for r in runs))
    wall = Spread(tuple(r.wall for r in runs))
    floor = Spread(tuple(r.floor for r in runs))
    trips = Spread(tuple(r.round_trips for r in runs))
    names = sorted({n for r in runs for n in r.per_piece}, key=lambda n: -runs[0].per_piece[n])
    lines = [
        f"A cook of {runs[0].pieces} pieces, instant test tool, `maxConcurrent` 8, "
        f"{len(runs)} runs (median, and range):",
        "",
        *table(
            ["wall s", "floor s", "wall / floor", "round trips per piece"],
            [[wall.show(), floor.show(), ratio.show(), trips.show(1)]],
        ),
        "",
        "Round trips per piece, by command: "
        + ", ".join(f"{n} {statistics.median(r.per_piece[n] for r in runs):.2f}" for n in names)
        + ".",
    ]
    return lines
