"""As users meet it: a cook, a gallery page and a thousand watchers through ``bin/serve``'s
default (an API process that starts the embedded server, ``python -m service db``), over HTTP
and WebSocket, each beside a floor measured in the same run.

    .venv/bin/python -m bench.user_path            # the sizes of the issue (about 10 minutes)
    .venv/bin/python -m bench.user_path --quick    # small sizes (about a minute)
    .venv/bin/python -m bench.user_path --gallery  # only the gallery page (add --quick: 3 s)

- The cook: N pieces with the instant ``prompt`` tool and a generated range with
  ``uniqueAcrossCook``, ``maxConcurrent`` 8; pieces/s from its first event to its last
  completion, and per window of 100 completions (first and last); the CPU each process spent
  per piece. Its floor: the database's ``find_one`` by ``_id``, timed on the same server.
- The gallery page: 32 clients sending the studio review view's query (``pieces(first: 50)``
  with traits and outputs); req/s and p50/p99. Its floors: ``GET /healthz`` through the same
  HTTP stack with the same 32 clients, and the raw ``find`` of the same 50 documents on the
  same server at the same concurrency.
- Slot utilisation: the ``test`` tool at 300 ms latency, ``maxConcurrent`` 6: the sum of the
  pieces' tool time over slots x wall time (the floor, 1.0, is a slot never idle).
- Subscribers: ``cookProgress`` delivery latency at 1,000 subscribers against 1, over the poll
  interval (``bench.progress_latency``'s measure, on this process).
- ``startCook`` with 100,000 pieces stored in the collection against 1,000 (each size on its
  own ``cook serve``; the stored pieces inserted directly into its embedded server).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from bench import progress_latency
from bench.common import PROCESS_ENV, clone_pieces, owner_token, quantile
from orchestration.catalog.collections import MAX_TOTAL_SUPPLY
from tests.api import collection_input
from tests.processes import api_process_handle, gql

POLL_SECONDS = 0.1
CLIENTS = 32
WINDOW = 100
GALLERY = """query Pieces($collectionId: ID!, $cookId: ID, $filter: PieceFilterInput, $first: Int!,
 $after: String) {
  pieces(collectionId: $collectionId, cookId: $cookId, filter: $filter, order: INDEX,
   first: $first, after: $after) {
    edges { node { id index status review excluded output lastError traits { category name }
      outputs { contentType text url } } }
    pageInfo { hasNextPage endCursor } } }"""
TIMES = """query($c: ID!, $k: ID!, $after: String) {
  pieces(collectionId: $c, cookId: $k, order: INDEX, first: 100, after: $after) {
    edges { node { completedAt durationMs } } pageInfo { hasNextPage endCursor } } }"""
CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }"
START = """mutation($c: ID!, $n: Int!, $m: Int!) {
  startCook(collectionId: $c, count: $n, maxConcurrent: $m) { id createdAt } }"""
STATUS = "query($id: ID!) { cook(id: $id) { status createdAt endedAt } }"


@dataclass(frozen=True)
class Sizes:
    cook_pieces: int
    gallery_seconds: float
    utilisation_pieces: int
    subscribers: int
    event_pieces: int
    stored: tuple[int, int]
    start_samples: int


FULL = Sizes(2000, 10.0, 300, 1000, 20, (1000, 100_000), 7)
QUICK = Sizes(300, 3.0, 60, 50, 5, (200, 2000), 3)
SMOKE = Sizes(100, 0.1, 12, 5, 2, (50, 100), 2)  # the least that runs every part


@dataclass
class Results:
    cook_rate: float = 0.0
    first_window: float = 0.0
    last_window: float = 0.0
    api_cpu_ms: float = 0.0
    db_cpu_ms: float = 0.0
    find_one_ms: float = 0.0
    gallery_rps: float = 0.0
    gallery_p50: float = 0.0
    gallery_p99: float = 0.0
    livez_rps: float = 0.0
    raw_find_rps: float = 0.0
    utilisation: float = 0.0
    one_p99_poll: float = 0.0
    many_p99_poll: float = 0.0
    many_p50_poll: float = 0.0
    subscribers: int = 0
    lost: int = 0
    start_small_ms: float = 0.0
    start_large_ms: float = 0.0
    stored: tuple[int, int] = (0, 0)
    cook_pieces: int = 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Child processes of any of ``pid``'s threads."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def embedded_uri(pid: int) -> str:
    """The address the embedded server (process ``pid``) listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed since the listing (the server opens and closes files)
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # listening
            port = int(fields[1].split(":")[1], 16)
            return f"mongodb://127.0.0.1:{port}/?directConnection=true"
    raise RuntimeError(f"the embedded server {pid} listens on no TCP port")


@contextmanager
def serve(root: Path) -> Iterator[tuple[str, str, int, int, str]]:
    """``cook serve`` on its default database: base URL, token, API pid, server pid, db URI."""
    env = {**PROCESS_ENV, "COOK_PROGRESS_POLL_SECONDS": str(POLL_SECONDS)}
    env["COOK_WS_MAX_SUBSCRIPTIONS"] = "1"
    env.pop("MONGODB_URI", None)
    os.environ.pop("MONGODB_URI", None)
    with api_process_handle(env, root / "data", root / "api.log") as (base, proc):
        token = owner_token(root / "data")
        db_pid = children(proc.pid)[0]
        yield base, token, proc.pid, db_pid, embedded_uri(db_pid)


def collection(base: str, token: str, supply: int, **overrides: Any) -> str:
    spec = collection_input(totalSupply=supply, **overrides)
    spec["traitTree"][1]["generated"]["range"]["end"] = supply * 2
    made: str = gql(base, token, CREATE, {"i": spec})["createCollection"]["id"]
    return made


def run_cook(base: str, token: str, collection_id: str, pieces: int, slots: int) -> dict[str, Any]:
    started = gql(base, token, START, {"c": collection_id, "n": pieces, "m": slots})["startCook"]
    while True:
        cook = gql(base, token, STATUS, {"id": started["id"]})["cook"]
        if cook["status"] != "RUNNING":
            return {"id": started["id"], **cook}
        time.sleep(0.2)


def piece_times(base: str, token: str, collection_id: str, cook_id: str) -> list[tuple[float, int]]:
    found: list[tuple[float, int]] = []
    after = None
    while True:
        page = gql(base, token, TIMES, {"c": collection_id, "k": cook_id, "after": after})
        for edge in page["pieces"]["edges"]:
            node = edge["node"]
            if node["completedAt"]:
                at = datetime.fromisoformat(node["completedAt"]).timestamp()
                found.append((at, node["durationMs"] or 0))
        if not page["pieces"]["pageInfo"]["hasNextPage"]:
            return sorted(found)
        after = page["pieces"]["pageInfo"]["endCursor"]


def window_rate(done: list[float], first: int, began: float) -> float:
    """Pieces/s of the ``WINDOW`` completions from ``first``: from the completion before them
    (for the first window, the cook's start) to their last. The first window once began at
    its own first completion, leaving out the time before it, in which the first slots' pieces
    were nearly made: 4-6% faster than from the start in two 2,000-piece cooks (2026-12-04)."""
    start = done[first - 1] if first > 0 else began
    return WINDOW / max(done[first + WINDOW - 1] - start, 1e-9)


async def load(
    clients: int, seconds: float, call: Callable[[], Awaitable[None]]
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        while True:  # one call at least, however late the client starts on a loaded machine
            began = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - began) * 1000)
            if time.perf_counter() >= stop:
                break

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies) / (time.perf_counter() - began), latencies


async def gallery(base: str, token: str, collection_id: str, seconds: float) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CLIENTS)
    body = {"query": GALLERY, "variables": {"collectionId": collection_id, "first": 50}}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:

        async def page() -> None:
            response = await c.post("/graphql", json=body)
            assert len(response.json()["data"]["pieces"]["edges"]) == 50, response.text

        async def livez() -> None:
            (await c.get("/healthz")).raise_for_status()

        await load(CLIENTS, min(1.0, seconds), page)  # warm up
        rps, latencies = await load(CLIENTS, seconds, page)
        livez_rps, _ = await load(CLIENTS, seconds, livez)
    return rps, latencies, livez_rps


async def raw_find(uri: str, collection_id: str, seconds: float) -> tuple[float, float]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        pieces = client["cook"].pieces

        async def page() -> None:
            found = pieces.find({"collectionId": collection_id}).sort("index", 1).limit(50)
            assert len(await found.to_list()) == 50

        one = await pieces.find_one({"collectionId": collection_id})
        assert one is not None
        times = []
        for _ in range(50):
            began = time.perf_counter()
            await pieces.find_one({"_id": one["_id"]})
            times.append((time.perf_counter() - began) * 1000)
        rps, _ = await load(CLIENTS, seconds, page)
        return rps, sorted(times)[len(times) // 2]
    finally:
        await client.close()


def measure_user_paths(sizes: Sizes, results: Results) -> None:
    with tempfile.TemporaryDirectory(prefix="cook-userpath-") as tmp, serve(Path(tmp)) as running:
        base, token, api_pid, db_pid, uri = running
        # The cook.
        col = collection(base, token, sizes.cook_pieces)
        cpu_before = cpu_seconds(api_pid), cpu_seconds(db_pid)
        cook = run_cook(base, token, col, sizes.cook_pieces, 8)
        cpu_after = cpu_seconds(api_pid), cpu_seconds(db_pid)
        assert cook["status"] == "COMPLETED", cook
        done = [t for t, _ in piece_times(base, token, col, cook["id"])]
        began = datetime.fromisoformat(cook["createdAt"]).timestamp()
        results.cook_pieces = len(done)
        results.cook_rate = len(done) / (done[-1] - began)
        results.first_window = window_rate(done, 0, began)
        results.last_window = window_rate(done, len(done) - WINDOW, began)
        results.api_cpu_ms = (cpu_after[0] - cpu_before[0]) * 1000 / len(done)
        results.db_cpu_ms = (cpu_after[1] - cpu_before[1]) * 1000 / len(done)
        # The gallery page, on the cook's collection.
        rps, latencies, livez = asyncio.run(gallery(base, token, col, sizes.gallery_seconds))
        results.gallery_rps, results.livez_rps = rps, livez
        results.gallery_p50 = quantile(latencies, 0.5)
        results.gallery_p99 = quantile(latencies, 0.99)
        results.raw_find_rps, results.find_one_ms = asyncio.run(
            raw_find(uri, col, sizes.gallery_seconds)
        )
        # Slot utilisation.
        slots = 6
        tested = collection(
            base,
            token,
            sizes.utilisation_pieces,
            generator={"toolId": "test"},
            template={"prompt": "[[Animal]] #[[miladyid]]", "latencyMs": 300},
        )
        cook = run_cook(base, token, tested, sizes.utilisation_pieces, slots)
        times = piece_times(base, token, tested, cook["id"])
        began = datetime.fromisoformat(cook["createdAt"]).timestamp()
        wall = times[-1][0] - began
        results.utilisation = sum(d for _, d in times) / 1000 / (slots * wall)
        # Subscribers.
        one = asyncio.run(progress_latency.measure(base, token, 1, sizes.event_pieces, 150))
        many = asyncio.run(
            progress_latency.measure(base, token, sizes.subscribers, sizes.event_pieces, 150)
        )
        poll_ms = POLL_SECONDS * 1000
        results.one_p99_poll = one.quantile(0.99) / poll_ms
        results.many_p99_poll = many.quantile(0.99) / poll_ms
        results.many_p50_poll = many.quantile(0.5) / poll_ms
        results.subscribers, results.lost = sizes.subscribers, one.lost + many.lost


async def seed(uri: str, collection_id: str, stored: int) -> None:
    """Copies of the collection's first piece, after its last index, until it holds
    ``stored`` pieces."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        db = client["cook"]
        template = await db.pieces.find_one({"collectionId": collection_id})
        held = await db.collections.find_one({"_id": collection_id})
        assert template is not None
        assert held is not None
        first = held.get("nextPieceIndex", 0)
        count = stored - await db.pieces.count_documents({"collectionId": collection_id})
        await clone_pieces(db.pieces, template, first, count, status="completed", review="pending")
        await db.collections.update_one(
            {"_id": collection_id}, {"$set": {"nextPieceIndex": first + count}}
        )
    finally:
        await client.close()


def start_cook_at(stored: tuple[int, int], samples: int) -> tuple[float, float]:
    """Median ms of ``startCook`` (each cook then cancelled) with each number of pieces
    ``stored`` in its collection: the smaller first, then more seeded into the same one."""
    with tempfile.TemporaryDirectory(prefix="cook-userpath-") as tmp, serve(Path(tmp)) as running:
        base, token, _, _, uri = running
        col = collection(base, token, min(max(stored) * 4, MAX_TOTAL_SUPPLY))
        first = run_cook(base, token, col, 1, 1)
        assert first["status"] == "COMPLETED", first
        small, large = (median_start(base, token, uri, col, n, samples) for n in stored)
        return small, large


def median_start(base: str, token: str, uri: str, col: str, stored: int, samples: int) -> float:
    asyncio.run(seed(uri, col, stored))
    times = []
    cancel = "mutation($id: ID!) { cancelCook(id: $id) { id } }"
    for _ in range(samples):
        began = time.perf_counter()
        made = gql(base, token, START, {"c": col, "n": 1, "m": 1})["startCook"]
        times.append((time.perf_counter() - began) * 1000)
        httpx.post(  # it may have completed already: then it refuses, and that is fine
            f"{base}/graphql",
            json={"query": cancel, "variables": {"id": made["id"]}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        while gql(base, token, STATUS, {"id": made["id"]})["cook"]["status"] in (
            "RUNNING",
            "CANCELLING",
        ):
            time.sleep(0.05)
    return sorted(times)[len(times) // 2]


def measure(sizes: Sizes) -> Results:
    results = Results(stored=sizes.stored)
    measure_user_paths(sizes, results)
    print(results, file=sys.stderr, flush=True)
    results.start_small_ms, results.start_large_ms = start_cook_at(
        sizes.stored, sizes.start_samples
    )
    return results


def headline(r: Results) -> list[str]:
    return [
        f"user-path cook pieces/s ({r.cook_pieces:,} pieces, uniqueAcrossCook range, "
        f"maxConcurrent 8): {r.cook_rate:.1f}",
        f"gallery page req/s at {CLIENTS} clients: {r.gallery_rps:.1f} "
        f"(p50 {r.gallery_p50:.0f} ms)",
        f"slot utilisation at 300 ms tool latency: {r.utilisation:.2f}",
        f"{r.subscribers:,} subscribers p99 / poll: {r.many_p99_poll:.2f}",
    ]


def report(r: Results) -> list[str]:
    small, large = r.stored
    return [
        *headline(r),
        "",
        "Through `cook serve` on its default database (the API process and the embedded server "
        "it starts), over HTTP and WebSocket, each figure beside its floor from the same run.",
        "",
        f"- The cook: {r.cook_rate:.1f} pieces/s; first {WINDOW}-piece window "
        f"{r.first_window:.1f}/s, last {r.last_window:.1f}/s (last / first "
        f"{r.last_window / r.first_window:.2f}); CPU per piece: API {r.api_cpu_ms:.1f} ms, "
        f"embedded server {r.db_cpu_ms:.1f} ms. Floor: `find_one` by `_id` "
        f"{r.find_one_ms:.2f} ms (a piece costs {1000 / r.cook_rate / r.find_one_ms:.0f} of "
        "them at this rate).",
        f"- The gallery page: {r.gallery_rps:.1f} req/s, p50 {r.gallery_p50:.0f} ms, p99 "
        f"{r.gallery_p99:.0f} ms. Floors at {CLIENTS} clients: `GET /healthz` {r.livez_rps:.0f} "
        f"req/s (page / healthz {r.gallery_rps / r.livez_rps:.2f}); the raw `find` of the same 50 "
        f"documents {r.raw_find_rps:.0f} req/s (page / raw {r.gallery_rps / r.raw_find_rps:.2f}).",
        f"- Slot utilisation (`test` tool at 300 ms, `maxConcurrent` 6): {r.utilisation:.2f} "
        "(floor: 1.00, no slot ever idle).",
        f"- `cookProgress` p99 / poll ({POLL_SECONDS * 1000:.0f} ms): 1 subscriber "
        f"{r.one_p99_poll:.2f}, {r.subscribers:,} subscribers {r.many_p99_poll:.2f} (p50 "
        f"{r.many_p50_poll:.2f}); lost {r.lost}.",
        f"- `startCook` with {large:,} pieces stored: {r.start_large_ms:.1f} ms, with {small:,}: "
        f"{r.start_small_ms:.1f} ms ({r.start_large_ms / r.start_small_ms:.2f}x).",
    ]


async def gallery_cpu(
    base: str, token: str, collection_id: str, seconds: float, pids: tuple[int, int]
) -> tuple[float, list[float], tuple[float, float]]:
    """req/s and latencies of the page at ``CLIENTS`` clients, and the CPU seconds each of
    ``pids`` spent per page during that load (not the warm-up)."""
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CLIENTS)
    body = {"query": GALLERY, "variables": {"collectionId": collection_id, "first": 50}}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:

        async def page() -> None:
            response = await c.post("/graphql", json=body)
            assert len(response.json()["data"]["pieces"]["edges"]) == 50, response.text

        await load(CLIENTS, min(1.0, seconds), page)  # warm up
        before = [cpu_seconds(p) for p in pids]
        rps, latencies = await load(CLIENTS, seconds, page)
        after = [cpu_seconds(p) for p in pids]
    pages = len(latencies)
    api, db = ((a - b) / pages for a, b in zip(after, before, strict=True))
    return rps, latencies, (api, db)


def measure_gallery(sizes: Sizes) -> list[str]:
    """The gallery page alone (``--gallery``), on a cook of 60 pieces."""
    with tempfile.TemporaryDirectory(prefix="cook-userpath-") as tmp, serve(Path(tmp)) as running:
        base, token, api_pid, db_pid, _ = running
        col = collection(base, token, 60)
        assert run_cook(base, token, col, 60, 8)["status"] == "COMPLETED"
        rps, latencies, (api, db) = asyncio.run(
            gallery_cpu(base, token, col, sizes.gallery_seconds, (api_pid, db_pid))
        )
    return [
        f"gallery page req/s at {CLIENTS} clients: {rps:.1f} (p50 {quantile(latencies, 0.5):.0f} "
        f"ms, p99 {quantile(latencies, 0.99):.0f} ms)",
        f"CPU per page: API {api * 1000:.1f} ms, embedded server {db * 1000:.1f} ms",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--gallery", action="store_true", help="only the gallery page")
    args = parser.parse_args(argv)
    if args.gallery:
        print("\n".join(measure_gallery(QUICK if args.quick else FULL)), flush=True)
        return 0
    results = measure(QUICK if args.quick else FULL)
    print("\n".join(report(results)), flush=True)
    return 0 if results.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
