"""Load on a set of API processes: one cook, gallery readers paging its collection, and
cookProgress subscribers, spread over the processes; optionally one process SIGKILLed and
started again mid-cook. Used by ``tests/test_replicas_under_load.py`` (which checks every
invariant afterwards) and by ``bench/replicas.py`` (which reports the totals)."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from pymongo import MongoClient

from orchestration.base.tls import verifying
from orchestration.cooking.events import entries
from tests.api import OWNER, collection_input
from tests.event_log import log_mismatches
from tests.processes import gql
from tests.replica_set import ReplicaSet, replica_set
from tests.test_cook_processes import watch

DB = "procs"  # the name tests/test_cook_processes.py's invariant checks read
ENV = {
    "COOK_DB_NAME": DB,
    "COOK_TICK_SECONDS": "0.05",
    "COOK_BACKOFF_BASE_SECONDS": "0.01",
    "COOK_BACKOFF_CAP_SECONDS": "0.05",
    "COOK_LEASE_SECONDS": "1.5",  # a killed process's pieces are taken over quickly
    "COOK_PROGRESS_POLL_SECONDS": "0.1",
    "COOK_HTTP_RATE_LIMIT": "1000000/minute",  # the readers are the load, not the abuse
    "COOK_DB_TIMEOUT_MS": "30000",
}
FOLLOW = """
subscription($c: ID!, $a: Int) { cookProgress(cookId: $c, afterSeq: $a) {
  seq status event { seq type pieceId attempt } } }"""
GALLERY = """query($c: ID!, $after: String) { pieces(collectionId: $c, first: 50, after: $after) {
  edges { node { id index status } } pageInfo { endCursor hasNextPage } } }"""
TERMINAL_EVENTS = ("cook_completed", "cook_failed", "cook_cancelled")


@dataclass
class Subscriber:
    """Follows the cook on one process, and after a dropped connection on another, with
    ``afterSeq`` set to the last event it received."""

    first: int  # the process it starts on
    received: list[int] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)  # where it connected, in order
    ended: str | None = None


@dataclass
class Load:
    replicas: ReplicaSet
    cook_id: str
    collection_id: str
    token: str
    until: float
    subscribers: list[Subscriber]
    readers: int
    pages: int = 0
    read_failures: int = 0  # a reader's request to a process being killed
    bad_pages: list[str] = field(default_factory=list)
    done: bool = False

    def url(self, i: int) -> str:
        return self.replicas.bases[i].replace("http://", "ws://") + "/graphql"

    async def follow(self, sub: Subscriber) -> None:
        target = sub.first
        while sub.ended is None and time.monotonic() < self.until:
            sub.processes.append(target)
            after = sub.received[-1] if sub.received else 0
            try:
                await self._follow_on(target, sub, after)
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(0.1)
            target = (target + 1) % len(self.replicas.bases)

    async def _follow_on(self, target: int, sub: Subscriber, after: int) -> None:
        async with websockets.connect(
            self.url(target),
            subprotocols=["graphql-transport-ws"],
            open_timeout=10,  # type: ignore[list-item]
        ) as ws:
            init = {"authorization": f"Bearer {self.token}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": init}))
            await asyncio.wait_for(ws.recv(), 10)
            payload = {"query": FOLLOW, "variables": {"c": self.cook_id, "a": after}}
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "complete":
                    return
                if message["type"] != "next":
                    raise RuntimeError(message)
                progress = message["payload"]["data"]["cookProgress"]
                event = progress["event"]
                if event is not None:
                    sub.received.append(event["seq"])
                    if event["type"].lower() in TERMINAL_EVENTS:
                        sub.ended = event["type"].lower()

    async def read(self, n: int) -> None:
        """Page through the whole collection again and again, on process ``n`` and on."""
        target = n % len(self.replicas.bases)
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(timeout=30, headers=headers, verify=verifying()) as client:
            while not self.done and time.monotonic() < self.until:
                after: str | None = None
                seen: list[int] = []
                try:
                    while True:
                        response = await client.post(
                            f"{self.replicas.bases[target]}/graphql",
                            json={
                                "query": GALLERY,
                                "variables": {"c": self.collection_id, "after": after},
                            },
                        )
                        page = response.json()["data"]["pieces"]
                        self.pages += 1
                        seen += [edge["node"]["index"] for edge in page["edges"]]
                        if not page["pageInfo"]["hasNextPage"]:
                            break
                        after = page["pageInfo"]["endCursor"]
                    if seen != sorted(seen, reverse=True) or len(seen) != len(set(seen)):
                        self.bad_pages.append(f"reader {n}: {seen}")
                except (httpx.HTTPError, KeyError, TypeError, ValueError):
                    self.read_failures += 1
                    target = (target + 1) % len(self.replicas.bases)
                    await asyncio.sleep(0.05)

    async def run(self) -> tuple[int, dict[str, Any], list[str]]:
        """Readers and subscribers until the cook ends; the invariant watcher's result."""
        uri = self.replicas.db_uri
        watcher = asyncio.create_task(watch(uri, self.cook_id, self.until))
        followers = [asyncio.create_task(self.follow(s)) for s in self.subscribers]
        readers = [asyncio.create_task(self.read(n)) for n in range(self.readers)]
        watched = await watcher
        await asyncio.gather(*followers)
        self.done = True
        await asyncio.gather(*readers)
        return watched


@dataclass
class Outcome:
    processes: int
    pieces: int
    seconds: float  # from the cook's start to its end
    pages: int
    read_failures: int
    delivered: int  # events received, over all subscribers
    subscribers: list[Subscriber]
    problems: list[str]
    victim: int | None


def start_cook(base: str, token: str, count: int, concurrent: int) -> tuple[str, str]:
    template = {
        "prompt": "[[Animal]] #[[miladyid]]",
        "latencyMs": 100,
        "failureRate": 0.2,
        "costMicros": 1000,
    }
    made = gql(
        base,
        token,
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {"i": collection_input(totalSupply=count, generator={"toolId": "test"}, template=template)},
    )
    collection_id = made["createCollection"]["id"]
    cook = gql(
        base,
        token,
        "mutation($c: ID!, $n: Int!, $m: Int!) { startCook(collectionId: $c, count: $n, "
        "maxConcurrent: $m, maxFailures: 1000) { id } }",
        {"c": collection_id, "n": count, "m": concurrent},
    )
    return cook["startCook"]["id"], collection_id


def run_load(
    root: Path,
    *,
    processes: int,
    count: int,
    readers: int,
    subscribers: int,
    kill: bool,
    concurrent: int = 6,
    within: float = 240,
) -> Outcome:
    """One cook of ``count`` pieces under load on ``processes`` API processes; with ``kill``,
    the process most subscribers follow is SIGKILLed once a third of the pieces are made, and
    started again. Returns what the invariant checks found (``problems``) and the totals."""
    with replica_set(root, processes, ENV) as replicas:
        token = replicas.token(OWNER)
        cook_id, collection_id = start_cook(replicas.bases[0], token, count, concurrent)
        began = time.monotonic()
        subs = [Subscriber(first=i % processes) for i in range(subscribers)]
        load = Load(replicas, cook_id, collection_id, token, began + within, subs, readers)
        result: dict[str, Any] = {}

        def drive() -> None:
            try:
                result["watched"] = asyncio.run(load.run())
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                result["error"] = exc

        thread = threading.Thread(target=drive)
        thread.start()
        client: MongoClient[dict[str, Any]] = MongoClient(replicas.db_uri)
        victim = None
        if kill:
            victim = 0 if processes == 1 else 1
            while (
                client[DB].pieces.count_documents({"cookId": cook_id, "status": "completed"})
                < count // 3
                and thread.is_alive()
            ):
                time.sleep(0.05)
            replicas.kill(victim)
            time.sleep(random.uniform(0.1, 0.5))
            replicas.start(victim)
        thread.join(within + 60)
        assert not thread.is_alive(), "the load did not end"
        if "error" in result:
            raise result["error"]
        _, _, problems = result["watched"]
        seconds = time.monotonic() - began
        problems = list(problems) + relayed_log_problems(client, cook_id)
        client.close()
    delivered = sum(len(s.received) for s in subs)
    problems += load.bad_pages
    return Outcome(
        processes,
        count,
        seconds,
        load.pages,
        load.read_failures,
        delivered,
        subs,
        problems,
        victim,
    )


def relayed_log_problems(client: MongoClient[dict[str, Any]], cook_id: str) -> list[str]:
    """Once every event is relayed: how the log differs from what the pieces imply."""
    deadline = time.monotonic() + 30
    while True:
        cook = client[DB].cooks.find_one({"_id": cook_id})
        assert cook is not None
        pieces = list(client[DB].pieces.find({"cookId": cook_id}))
        events = [e for d in client[DB].cook_events.find({"cookId": cook_id}) for e in entries(d)]
        relayed = not cook.get("outbox") and not any(p.get("outbox") for p in pieces)
        if relayed and len(events) == cook["lastSeq"]:
            break
        if time.monotonic() > deadline:
            return ["events stayed unrelayed"]
        time.sleep(0.2)
    problems = log_mismatches(cook, pieces, events)
    seqs = sorted(e["seq"] for e in events)
    if seqs != list(range(1, cook["lastSeq"] + 1)):
        problems.append(f"the log's seqs are not 1..{cook['lastSeq']}")
    if cook["status"] != "completed":
        problems.append(f"the cook ended {cook['status']}")
    return problems
