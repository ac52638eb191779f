"""cookProgress delivery latency with many subscribers on one API process.

    .venv/bin/python -m bench.progress_latency [--subscribers 1000] [--pieces 20] [--poll 0.1]
    .venv/bin/python -m bench.progress_latency --quick      # small sizes, for CI

One API process (``cook serve``) on a fresh embedded database. A cook is started, paused, and
left until the pieces it had started are done; the subscribers connect over
graphql-transport-ws (one WebSocket each); then the cook is resumed and every event's delivery
latency is measured: the time a subscriber receives it minus the time its event was written.
So every event measured comes after all subscribers joined. (Before 2026-12-04 the pieces
started before the pause finished while 1,000 subscribers were joining, which kept the API
process busy for about two seconds: their four events waited 1.4-1.7 s, for half of the
subscribers, and were the whole of the p99.) The baseline, measured in the same run, is one
subscriber on the same kind of cook; both are reported as ratios to the poll interval, the
design's latency bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime

import websockets

from bench.common import PROCESS_ENV, embedded, owner_token
from tests.api import collection_input
from tests.processes import api_process, gql

SUBSCRIPTION = """
subscription($id: ID!) { cookProgress(cookId: $id) { seq event { seq at } } }
"""


@dataclass(frozen=True)
class Run:
    subscribers: int
    events: int
    latencies_ms: list[float]
    lost: int

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Tally:
    """What all subscribers of one run share."""

    expected: int
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    connected: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    # per subscriber: the snapshot's seq, and the seqs received after it
    followed: list[tuple[int, list[int]]] = field(default_factory=list)

    def lost(self) -> int:
        """Events a subscriber should have received (every seq after its snapshot, up to the
        last) but did not, or received out of order or twice, over all subscribers."""
        last = max(self.seen, default=0)
        return sum(
            0 if received == list(range(first + 1, last + 1)) else max(1, last - len(received))
            for first, received in self.followed
        )


async def subscriber(url: str, token: str, cook_id: str, tally: Tally) -> None:
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"], max_queue=None) as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
        await ws.send(json.dumps(init))
        await ws.recv()
        payload = {"query": SUBSCRIPTION, "variables": {"id": cook_id}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        snapshot = json.loads(await ws.recv())
        if snapshot["type"] != "next":
            raise RuntimeError(snapshot)
        first = snapshot["payload"]["data"]["cookProgress"]["seq"]
        received: list[int] = []
        tally.followed.append((first, received))
        tally.connected += 1
        if tally.connected >= tally.expected:
            tally.ready.set()
        async for raw in ws:
            now = time.time()
            message = json.loads(raw)
            if message["type"] == "complete":
                return
            if message["type"] != "next":
                raise RuntimeError(message)
            event = message["payload"]["data"]["cookProgress"]["event"]
            if event is not None:
                written = datetime.fromisoformat(event["at"]).timestamp()
                tally.latencies_ms.append((now - written) * 1000)
                tally.seen.append(event["seq"])
                received.append(event["seq"])


def start_paused_cook(base: str, token: str, pieces: int, latency_ms: int) -> str:
    template = {"prompt": "[[Animal]] #[[miladyid]]", "latencyMs": latency_ms}
    made = gql(
        base,
        token,
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {"i": collection_input(generator={"toolId": "test"}, template=template)},
    )
    cook = gql(
        base,
        token,
        "mutation($c: ID!, $n: Int!) { startCook(collectionId: $c, count: $n, "
        "maxConcurrent: 4) { id } }",
        {"c": made["createCollection"]["id"], "n": pieces},
    )
    cook_id: str = cook["startCook"]["id"]
    gql(base, token, "mutation($id: ID!) { pauseCook(id: $id) { id } }", {"id": cook_id})
    # The pieces started before the pause still finish: let them, so that every event
    # measured comes after the resume and none while the subscribers are joining.
    in_flight = "query($id: ID!) { cook(id: $id) { numbers { inFlight } } }"
    deadline = time.monotonic() + 30
    while gql(base, token, in_flight, {"id": cook_id})["cook"]["numbers"]["inFlight"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the paused cook's pieces did not finish")
        time.sleep(0.05)
    return cook_id


async def measure(base: str, token: str, subscribers: int, pieces: int, latency_ms: int) -> Run:
    cook_id = start_paused_cook(base, token, pieces, latency_ms)
    url = base.replace("http://", "ws://") + "/graphql"
    tally = Tally(expected=subscribers)
    tasks = []
    for i in range(subscribers):
        tasks.append(asyncio.create_task(subscriber(url, token, cook_id, tally)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # do not flood the accept queue
    await asyncio.wait_for(tally.ready.wait(), 300)
    resume = "mutation($id: ID!) { resumeCook(id: $id) { id } }"
    await asyncio.to_thread(gql, base, token, resume, {"id": cook_id})
    await asyncio.wait_for(asyncio.gather(*tasks), 600)
    events = len(set(tally.seen))
    return Run(subscribers, events, tally.latencies_ms, lost=tally.lost())


def report(runs: list[Run], poll: float) -> list[str]:
    poll_ms = poll * 1000
    lines = [
        f"Poll interval: {poll_ms:.0f} ms (the bound: an event waits at most one interval, "
        "plus the read and the send).",
        "",
        "| subscribers | events | messages | p50 ms | p99 ms | p50 / poll | p99 / poll | lost |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        p50, p99 = r.quantile(0.5), r.quantile(0.99)
        lines.append(
            f"| {r.subscribers} | {r.events} | {len(r.latencies_ms)} | {p50:.1f} | {p99:.1f} "
            f"| {p50 / poll_ms:.2f} | {p99 / poll_ms:.2f} | {r.lost} |"
        )
    base, big = runs[0], runs[-1]
    lines.append("")
    p50x, p99x = big.quantile(0.5) / base.quantile(0.5), big.quantile(0.99) / base.quantile(0.99)
    lines.append(
        f"{big.subscribers} subscribers against 1: p50 x{p50x:.2f}, p99 x{p99x:.2f}; "
        f"standard deviation {statistics.pstdev(big.latencies_ms):.1f} ms."
    )
    return lines


def measure_all(subscribers: int, pieces: int, latency_ms: int, poll: float) -> list[Run]:
    """One subscriber (the baseline), then ``subscribers``, on one fresh API process."""
    with embedded() as (db, root):
        env = {
            "MONGODB_URI": db.uri,
            "COOK_PROGRESS_POLL_SECONDS": str(poll),
            "COOK_WS_MAX_SUBSCRIPTIONS": "1",
            **PROCESS_ENV,
        }
        with api_process(env, root / "data", root / "api.log") as base:
            token = owner_token(root / "data")
            return [
                asyncio.run(measure(base, token, n, pieces, latency_ms)) for n in (1, subscribers)
            ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--pieces", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=150, help="the test tool's latency")
    parser.add_argument("--poll", type=float, default=0.1, help="COOK_PROGRESS_POLL_SECONDS")
    parser.add_argument("--quick", action="store_true", help="50 subscribers, 5 pieces")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.pieces = 50, 5
    runs = measure_all(args.subscribers, args.pieces, args.latency_ms, args.poll)
    print("\n".join(report(runs, args.poll)))
    return 0 if all(r.lost == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
