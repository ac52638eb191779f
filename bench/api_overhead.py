"""API overhead: GraphQL against a plain FastAPI JSON route reading the same documents.

One API process (``bench.api_server``) serves both. 32 clients send requests back to back for
a fixed time, first to one route and then to the other, several rounds; latency p50 and p99 of
each, and their ratio. Two shapes: one cook with its numbers and 50 pieces, and a page of 100
pieces with their traits (which exposes per-field resolver cost). Then, with more pieces stored
in the collection (another cook's, inserted directly), each shape's GraphQL requests per second
at each size, and the largest size's rate over the smallest's (the aim: at least 0.8): each size
on its own API process and server, the sizes visited in turn in each round.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from pymongo import AsyncMongoClient

from bench.common import (
    PROCESS_ENV,
    Row,
    Spread,
    clone_pieces,
    cook_to_end,
    embedded,
    owner_token,
    quantile,
    table,
)
from tests.api import collection_input
from tests.processes import api_process, gql

CLIENTS = 32
COOK = """query($id: ID!) { cook(id: $id) { id status numbers { completed inFlight costUsd }
  pieces(first: 50) { id index status output costUsd traits { category name value } } } }"""
PIECES = """query($c: ID!) { pieces(collectionId: $c, first: 100, order: INDEX) { edges { node {
  id index status output costUsd traits { category name value } } } } }"""


@dataclass(frozen=True)
class Shape:
    name: str
    graphql: tuple[str, dict[str, str]]
    plain: str


@dataclass(frozen=True)
class Result:
    shape: str
    p50: Spread
    p99: Spread
    plain_p50: Spread
    plain_p99: Spread
    requests: int
    per_second: dict[int, Spread]  # GraphQL requests per second, by pieces stored

    def ratios(self) -> tuple[Spread, Spread]:
        rounds = range(len(self.p50.values))
        p50 = tuple(self.p50.values[i] / self.plain_p50.values[i] for i in rounds)
        p99 = tuple(self.p99.values[i] / self.plain_p99.values[i] for i in rounds)
        return Spread(p50), Spread(p99)


async def load(base: str, token: str, send: str, shape: Shape, seconds: float) -> list[float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

        async def one_client() -> None:
            while True:  # one request at least: on a loaded machine a smoke run's short
                # deadline may pass before a client starts, and a rate of 0 divides by zero
                began = time.perf_counter()
                if send == "graphql":
                    query, variables = shape.graphql
                    answer = await client.post(
                        "/graphql", json={"query": query, "variables": variables}
                    )
                else:
                    answer = await client.get(shape.plain)
                latencies.append(time.perf_counter() - began)
                if answer.status_code != 200 or "errors" in answer.json():
                    raise RuntimeError(answer.text[:300])
                if time.monotonic() >= deadline:
                    break

        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return latencies


DB_NAME = "bench_api"


def prepare(base: str, token: str, pieces: int) -> tuple[str, str]:
    template = {"prompt": "[[Animal]] #[[miladyid]]"}
    made = gql(
        base,
        token,
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {
            "i": collection_input(
                generator={"toolId": "test"}, template=template, totalSupply=100_000
            )
        },
    )
    collection = made["createCollection"]["id"]
    return collection, cook_to_end(base, token, collection, pieces)


async def store_until(uri: str, cook_id: str, stored: int) -> None:
    """Copies of the cook's one piece until the database holds ``stored`` pieces."""
    client: AsyncMongoClient[Row] = AsyncMongoClient(uri, tz_aware=True)
    try:
        pieces = client[DB_NAME].pieces
        template = await pieces.find_one({"cookId": cook_id})
        assert template is not None
        collections = client[DB_NAME].collections
        collection = await collections.find_one({"_id": template["collectionId"]})
        assert collection is not None
        first = int(collection["nextPieceIndex"])
        more = stored - await pieces.count_documents({})
        await clone_pieces(pieces, template, first, more)
        await collections.update_one(
            {"_id": collection["_id"]}, {"$set": {"nextPieceIndex": first + max(more, 0)}}
        )
    finally:
        await client.close()


@dataclass(frozen=True)
class Site:
    """An API process (``bench.api_server``) on its own embedded server, with a cook of its own
    in a collection."""

    uri: str
    base: str
    token: str
    collection: str
    cook_id: str

    @property
    def shapes(self) -> list[Shape]:
        return [
            Shape(
                "one cook, its numbers and 50 pieces",
                (COOK, {"id": self.cook_id}),
                f"/plain/cook/{self.cook_id}",
            ),
            Shape(
                "100 pieces with their traits",
                (PIECES, {"c": self.collection}),
                f"/plain/pieces/{self.collection}",
            ),
        ]

    def store(self, size: int) -> None:
        """Another cook's pieces in the same collection, until the database holds ``size``."""
        other_cook = cook_to_end(self.base, self.token, self.collection, 1)
        asyncio.run(store_until(self.uri, other_cook, size))


@contextlib.contextmanager
def site(pieces: int) -> Iterator[Site]:
    with embedded() as (db, root):
        env = {"MONGODB_URI": db.uri, "COOK_DB_NAME": DB_NAME, **PROCESS_ENV}
        data = root / "data"
        with api_process(env, data, root / "api.log", ("bench.api_server",)) as base:
            token = owner_token(data)
            collection, cook_id = prepare(base, token, pieces)
            yield Site(db.uri, base, token, collection, cook_id)


def measure(
    rounds: int, seconds: float, pieces: int = 100, stored: tuple[int, ...] = (1000, 30_000)
) -> list[Result]:
    """The latencies on one site; then each site is given its size, and the rates are taken in
    rounds that visit every size in turn, so that the machine's drift falls on all alike."""
    with contextlib.ExitStack() as stack:
        sites = [stack.enter_context(site(pieces)) for _ in stored]
        first = sites[0]
        runs: dict[str, dict[str, list[list[float]]]] = {}
        for shape in first.shapes:
            warm_up = min(1.0, seconds)  # both routes, before either is timed
            asyncio.run(load(first.base, first.token, "plain", shape, warm_up))
            asyncio.run(load(first.base, first.token, "graphql", shape, warm_up))
            runs[shape.name] = {"graphql": [], "plain": []}
            for _ in range(rounds):
                for send in ("graphql", "plain"):
                    found = asyncio.run(load(first.base, first.token, send, shape, seconds))
                    runs[shape.name][send].append(found)
        for at, size in zip(sites, stored, strict=True):
            at.store(size)
        rates: dict[str, dict[int, list[float]]] = {name: {} for name in runs}
        for _ in range(rounds):
            for at, size in zip(sites, stored, strict=True):
                for shape in at.shapes:
                    found = asyncio.run(load(at.base, at.token, "graphql", shape, seconds))
                    rates[shape.name].setdefault(size, []).append(len(found) / seconds)
    ms = 1000.0
    return [
        Result(
            name,
            Spread(tuple(quantile(r, 0.5) * ms for r in by["graphql"])),
            Spread(tuple(quantile(r, 0.99) * ms for r in by["graphql"])),
            Spread(tuple(quantile(r, 0.5) * ms for r in by["plain"])),
            Spread(tuple(quantile(r, 0.99) * ms for r in by["plain"])),
            sum(len(r) for rs in by.values() for r in rs),
            {size: Spread(tuple(r)) for size, r in rates[name].items()},
        )
        for name, by in runs.items()
    ]


def report(results: list[Result], rounds: int, seconds: float) -> list[str]:
    rows = []
    for r in results:
        p50x, p99x = r.ratios()
        rows.append(
            [
                r.shape,
                r.p50.show(1),
                r.plain_p50.show(1),
                p50x.show(),
                r.p99.show(1),
                r.plain_p99.show(1),
                p99x.show(),
            ]
        )
    sizes = sorted(results[0].per_second)
    rate_rows = [
        [
            r.shape,
            *(r.per_second[size].show(1) for size in sizes),
            f"{r.per_second[sizes[-1]].median / r.per_second[sizes[0]].median:.2f}",
        ]
        for r in results
    ]
    return [
        f"{CLIENTS} concurrent clients, {rounds} rounds of {seconds:g} s per route, alternating "
        "(median, and range over rounds); milliseconds. Aim: p50 at most 1.3x, p99 at most 2x.",
        "",
        *table(
            [
                "shape",
                "GraphQL p50",
                "plain p50",
                "p50 ratio",
                "GraphQL p99",
                "plain p99",
                "p99 ratio",
            ],
            rows,
        ),
        "",
        f"GraphQL requests per second at {CLIENTS} clients with more pieces stored in the "
        "collection (another cook's), each size on its own API process and server, visited in "
        "turn in each round, and the largest size's rate over the smallest's (aim: at least "
        "0.8):",
        "",
        *table(
            [
                "shape",
                *(f"req/s at {size:,} stored" for size in sizes),
                f"{sizes[-1]:,} / {sizes[0]:,}",
            ],
            rate_rows,
        ),
    ]


if __name__ == "__main__":
    print("\n".join(report(measure(2, 3.0), 2, 3.0)))
