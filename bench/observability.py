"""The cost of metrics and of tracing on the gallery-page workload (a page of 100 pieces with
their traits, the studio's gallery query), as ratios to the same app with both off.

Three apps in one process share one embedded server and one cooked collection: ``off``
(``COOK_METRICS=false``, no tracer), ``metrics`` (the default) and ``tracing`` (metrics and an
SDK tracer provider whose batch processor hands spans to an exporter that drops them, so the
SDK's cost is measured without a collector's). Each round sends the same sequential requests
to each app in turn (the order rotating); a round's ratio is an app's mean CPU time per request
(this process's: the database is another process) over ``off``'s in that round, which a loaded
machine disturbs far less than wall time (shown too). The aim: metrics at most 1.03, tracing
at most 1.15.

    .venv/bin/python -m bench.observability --quick     # prints the section
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench.common import Spread, bench_settings, embedded, table
from service.app import create_app
from service.settings import Settings
from tests.api import Api, running_app, start_cook, wait_for_cook, with_test_tool

GALLERY = """query($c: ID!) { pieces(collectionId: $c, first: 100, order: INDEX) { edges { node {
  id index status output costUsd traits { category name value } } } } }"""
CONFIGS = ("off", "metrics", "tracing")


class Discard(SpanExporter):
    """Takes every span and sends it nowhere."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


@dataclass(frozen=True)
class Result:
    pieces: int
    requests: int
    mean_ms: dict[str, Spread]  # wall time per request, by configuration
    cpu_ms: dict[str, Spread]  # this process's CPU time per request
    ratio: dict[str, Spread]  # CPU time over ``off``'s, by configuration
    wall_ratio: dict[str, Spread]


@contextlib.asynccontextmanager
async def _app(settings: Settings, provider: Any = None) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, tracer_provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cook.test") as client:
            yield client


async def _cooked(settings: Settings, pieces: int) -> tuple[str, str]:
    """A collection with a finished cook of ``pieces``; its id and the owner's token."""
    async with running_app(settings) as api:
        collection = await api.create_collection(totalSupply=max(1000, pieces), **with_test_tool())
        cook = await start_cook(api, collection["id"], count=pieces, maxConcurrent=16)
        await wait_for_cook(api, cook["id"], within=600)
        return collection["id"], Api.token(api, "alice")


async def _measure(pieces: int, rounds: int, requests: int) -> Result:
    with embedded() as (db, root):
        base = bench_settings(db.uri, root, scheduler=True)
        collection, token = await _cooked(base, pieces)
        quiet = base.model_copy(update={"scheduler": False})
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Discard()))
        body = {"query": GALLERY, "variables": {"c": collection}}
        headers = {"Authorization": f"Bearer {token}"}
        means: dict[str, list[float]] = {c: [] for c in CONFIGS}
        cpus: dict[str, list[float]] = {c: [] for c in CONFIGS}
        ratios: dict[str, list[float]] = {c: [] for c in CONFIGS}
        wall_ratios: dict[str, list[float]] = {c: [] for c in CONFIGS}
        async with contextlib.AsyncExitStack() as stack:
            clients = {
                "off": await stack.enter_async_context(
                    _app(quiet.model_copy(update={"metrics": False}))
                ),
                "metrics": await stack.enter_async_context(_app(quiet)),
                # Last: PyMongo's instrumentation reaches only the clients made after it.
                "tracing": await stack.enter_async_context(_app(quiet, provider)),
            }

            async def timed(client: httpx.AsyncClient) -> tuple[float, float]:
                began, cpu = time.perf_counter(), time.process_time()
                for _ in range(requests):
                    response = await client.post("/graphql", json=body, headers=headers)
                    assert response.status_code == 200
                    assert not response.json().get("errors"), response.text
                wall = (time.perf_counter() - began) / requests
                return wall, (time.process_time() - cpu) / requests

            for client in clients.values():  # warm up each
                await timed(client)
            for r in range(rounds):
                order = CONFIGS[r % 3 :] + CONFIGS[: r % 3]
                took = {c: await timed(clients[c]) for c in order}
                for c in CONFIGS:
                    means[c].append(took[c][0] * 1000)
                    cpus[c].append(took[c][1] * 1000)
                    wall_ratios[c].append(took[c][0] / took["off"][0])
                    ratios[c].append(took[c][1] / took["off"][1])
        provider.shutdown()
    return Result(
        pieces,
        requests,
        {c: Spread(tuple(v)) for c, v in means.items()},
        {c: Spread(tuple(v)) for c, v in cpus.items()},
        {c: Spread(tuple(v)) for c, v in ratios.items()},
        {c: Spread(tuple(v)) for c, v in wall_ratios.items()},
    )


def measure(pieces: int, rounds: int, requests: int) -> Result:
    return asyncio.run(_measure(pieces, rounds, requests))


def report(result: Result) -> list[str]:
    rows = [
        [
            c,
            result.cpu_ms[c].show(1),
            result.ratio[c].show(3),
            result.mean_ms[c].show(1),
            result.wall_ratio[c].show(3),
        ]
        for c in CONFIGS
    ]
    return [
        f"The gallery page (100 pieces of {result.pieces} with their traits), {result.requests}"
        " sequential requests per app per round, in process over ASGI; median (range) of the"
        " rounds. Aim: metrics <= 1.03, tracing on <= 1.15.",
        "",
        *table(
            ["configuration", "CPU ms/request", "CPU ratio", "wall ms/request", "wall ratio"], rows
        ),
        "",
        f"CPU cost of metrics {100 * (result.ratio['metrics'].median - 1):+.1f} %, tracing on "
        f"{100 * (result.ratio['tracing'].median - 1):+.1f} % (spans dropped by the exporter).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args(argv)
    result = measure(*((40, 3, 15) if args.quick else (100, 9, 100)))
    print("\n".join(["## Observability", "", *report(result), ""]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
