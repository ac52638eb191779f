"""API overhead: GraphQL against a plain FastAPI JSON route reading the same documents.

One API process (``bench.api_server``) serves both. 32 clients send requests back to back for
a fixed time, first to one route and then to the other, several rounds; latency p50 and p99 of
each, and their ratio. Two shapes: one cook with its numbers and 50 pieces, and a page of 100
pieces with their traits (which exposes per-field resolver cost).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from bench.common import PROCESS_ENV, Spread, embedded, owner_token, quantile, table
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
            while time.monotonic() < deadline:
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

        await asyncio.gather(*(one_client() for _ in range(CLIENTS)))
    return latencies


def prepare(base: str, token: str, pieces: int) -> tuple[str, str]:
    template = {"prompt": "[[Animal]] #[[miladyid]]"}
    made = gql(
        base,
        token,
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {"i": collection_input(generator={"toolId": "test"}, template=template)},
    )
    collection = made["createCollection"]["id"]
    cook = gql(
        base,
        token,
        "mutation($c: ID!, $n: Int!) { startCook(collectionId: $c, count: $n, "
        "maxConcurrent: 8) { id } }",
        {"c": collection, "n": pieces},
    )["startCook"]["id"]
    while (
        gql(base, token, "query($id: ID!) { cook(id: $id) { status } }", {"id": cook})["cook"][
            "status"
        ]
        != "COMPLETED"
    ):
        time.sleep(0.2)
    return collection, cook


def measure(rounds: int, seconds: float, pieces: int = 100) -> list[Result]:
    with embedded() as (db, root):
        env = {"MONGODB_URI": db.uri, **PROCESS_ENV}
        data = root / "data"
        with api_process(env, data, root / "api.log", ("bench.api_server",)) as base:
            token = owner_token(data)
            collection, cook = prepare(base, token, pieces)
            shapes = [
                Shape(
                    "one cook, its numbers and 50 pieces",
                    (COOK, {"id": cook}),
                    f"/plain/cook/{cook}",
                ),
                Shape(
                    "100 pieces with their traits",
                    (PIECES, {"c": collection}),
                    f"/plain/pieces/{collection}",
                ),
            ]
            results = []
            for shape in shapes:
                asyncio.run(load(base, token, "plain", shape, 1.0))  # warm up both
                asyncio.run(load(base, token, "graphql", shape, 1.0))
                runs: dict[str, list[list[float]]] = {"graphql": [], "plain": []}
                for _ in range(rounds):
                    for send in ("graphql", "plain"):
                        runs[send].append(asyncio.run(load(base, token, send, shape, seconds)))
                ms = 1000.0
                results.append(
                    Result(
                        shape.name,
                        Spread(tuple(quantile(r, 0.5) * ms for r in runs["graphql"])),
                        Spread(tuple(quantile(r, 0.99) * ms for r in runs["graphql"])),
                        Spread(tuple(quantile(r, 0.5) * ms for r in runs["plain"])),
                        Spread(tuple(quantile(r, 0.99) * ms for r in runs["plain"])),
                        sum(len(r) for rs in runs.values() for r in rs),
                    )
                )
    return results


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
    ]


if __name__ == "__main__":
    print("\n".join(report(measure(2, 3.0), 2, 3.0)))
