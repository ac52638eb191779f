"""Outbound webhooks: deliveries per second from one process, and a cook's end to its delivery.

    .venv/bin/python -m bench.webhooks [--deliveries 2000] [--cooks 50]
    .venv/bin/python -m bench.webhooks --quick        # small sizes, for CI

One app in process on a fresh embedded database, and a receiver on loopback (a threaded
``http.server`` answering 200). Throughput: ``deliveries`` recorded at once, then sent by the
notifier (claim, sign, POST, record the attempt: two database writes per delivery) against the
baseline of the same signed POSTs sent straight from httpx at the same concurrency, in the same
run; the ratio is what the database's bookkeeping costs. Latency: cooks of one piece run one
after another; each delivery's arrival at the receiver minus the cook's ``endedAt``, as p50
and p99, in milliseconds and as a fraction of the sweeper's tick (the bound without the kick
that a cook's end gives its process's notifier).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from bench.common import Spread, bench_settings, embedded, quantile, table
from orchestration.notifications.endpoints import Endpoint
from orchestration.notifications.fanout import body_of
from orchestration.notifications.signing import signed_headers
from tests.api import Api, running_app, start_cook, wait_for_cook
from tests.webhook_receiver import Receiver, webhook_receiver

UNLIMITED = "1000000000/minute"
FULL = (2000, 50)  # deliveries, cooks
QUICK = (200, 10)
SMOKE = (20, 2)  # python -m bench --smoke
CREATE = """mutation($u: String!, $e: [String!]!) {
  createWebhookEndpoint(url: $u, events: $e) { id } }"""


async def _endpoint(api: Api, url: str, events: list[str]) -> Endpoint:
    made = await api.data(CREATE, {"u": url, "e": events})
    notifier = api.app.state.runtime.services.notifier
    found = await notifier.endpoints.load(made["createWebhookEndpoint"]["id"])
    assert found is not None
    return found


async def throughput(api: Api, url: str, n: int) -> tuple[float, float]:
    """(deliveries/s through the notifier, signed POSTs/s straight from httpx)."""
    notifier = api.app.state.runtime.services.notifier
    endpoint = await _endpoint(api, url, ["cook.completed"])
    at = datetime.now(UTC)
    bodies = [body_of("webhook.test", at, {"n": i}) for i in range(n)]
    for i, body in enumerate(bodies):
        await notifier.deliveries.record(endpoint, f"msg_bench_{i}", "webhook.test", body, None)
    started = time.perf_counter()
    await notifier.tick()
    while await notifier.deliveries.count_due():  # an attempt that failed retries at once
        await asyncio.sleep(0.01)
        await notifier.tick()
    sent = time.perf_counter() - started
    slots = asyncio.Semaphore(notifier.config.max_in_flight)
    async with httpx.AsyncClient(trust_env=False) as client:

        async def post(i: int, body: str) -> None:
            async with slots:
                data = body.encode()
                headers = signed_headers([endpoint.secret], f"raw_{i}", datetime.now(UTC), data)
                for tries in range(3):  # as the notifier would try again
                    try:
                        response = await client.post(url, content=data, headers=headers)
                    except httpx.TransportError:
                        if tries == 2:
                            raise
                        continue
                    response.raise_for_status()
                    return

        started = time.perf_counter()
        await asyncio.gather(*(post(i, b) for i, b in enumerate(bodies)))
        raw = time.perf_counter() - started
    return n / sent, n / raw


async def latency(api: Api, receiver: Receiver, cooks: int) -> list[float]:
    """Milliseconds from each cook's end (its ``endedAt``) to its delivery's arrival."""
    await _endpoint(api, receiver.url, ["cook.completed"])
    db = api.app.state.runtime.client[api.settings.db_name]
    collection = await api.create_collection(totalSupply=cooks + 10)
    found: list[float] = []
    for _ in range(cooks):
        cook = await start_cook(api, collection["id"], count=1)
        await wait_for_cook(api, cook["id"])
        deadline = time.monotonic() + 30
        while not (arrived := _arrival(receiver, cook["id"])):
            assert time.monotonic() < deadline, "no delivery"
            await asyncio.sleep(0.002)
        ended = await db.cooks.find_one({"_id": cook["id"]}, {"endedAt": 1})
        assert ended is not None
        found.append((arrived - ended["endedAt"].timestamp()) * 1000)
    return found


def _arrival(receiver: Receiver, cook_id: str) -> float | None:
    with receiver.lock:
        for r in receiver.received:
            if r.payload["data"].get("cookId") == cook_id:
                return r.at
    return None


async def measure(deliveries: int, cooks: int) -> dict[str, Any]:
    with embedded() as (db, root), webhook_receiver() as receiver:
        settings = bench_settings(
            db.uri,
            root,
            webhook_allowed_networks=["127.0.0.1/32"],
            webhook_send_rate_limit=UNLIMITED,
            webhook_retry_base_seconds=0.001,  # a failed attempt is due again at once
            webhook_retry_cap_seconds=0.001,
            scheduler=False,  # the notifier passes only when kicked (or called), alone
        )
        async with running_app(settings) as api:
            rate, raw = await throughput(api, receiver.url, deliveries)
            waits = await latency(api, receiver, cooks)
            arrived = len(receiver.received)
    return {
        "deliveries": deliveries,
        "rate": rate,
        "raw": raw,
        "cooks": cooks,
        "latency_ms": waits,
        "tick": settings.tick_seconds,
        "arrived": arrived,
    }


def report(m: dict[str, Any]) -> list[str]:
    waits = m["latency_ms"]
    p50, p99 = quantile(waits, 0.5), quantile(waits, 0.99)
    tick_ms = m["tick"] * 1000
    rows = [
        [
            f"{m['deliveries']:,} deliveries",
            f"{m['rate']:.0f}/s",
            f"{m['raw']:.0f}/s",
            f"{m['rate'] / m['raw']:.2f}x",
        ]
    ]
    return [
        f"deliveries/s from one process: {m['rate']:.0f} ({m['rate'] / m['raw']:.2f}x the same "
        f"signed POSTs straight from httpx, {m['raw']:.0f}/s)",
        f"a cook's end to its delivery: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
        f"({p50 / tick_ms:.2f} / {p99 / tick_ms:.2f} of a {tick_ms:.0f} ms tick), "
        f"over {m['cooks']} cooks",
        "",
        *table(["load", "notifier", "raw httpx", "ratio"], rows),
        "",
        f"Latency samples (ms): {Spread(tuple(waits)).show(0)} (median, range).",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--cooks", type=int, default=50)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    deliveries, cooks = QUICK if args.quick else (args.deliveries, args.cooks)
    print("\n".join(report(asyncio.run(measure(deliveries, cooks)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
