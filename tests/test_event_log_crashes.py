"""The event log under SIGKILL: API processes (and the embedded database) killed at random
moments while a cook runs; afterwards the log holds exactly the events the pieces imply, and a
subscriber that followed the cook through the kills got every event once, in order."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from pymongo import MongoClient

from orchestration.cooking.events import entries
from service.embedded_db import EmbeddedDatabase
from tests.event_log import log_mismatches
from tests.processes import api_process_handle, free_port
from tests.test_cook_processes import DB, FAST, bearer, start

pytestmark = pytest.mark.slow

SOAK = os.environ.get("COOK_SOAK") == "1"
FOLLOW = """
subscription($c: ID!, $a: Int) { cookProgress(cookId: $c, afterSeq: $a) {
  seq status event { seq type pieceId attempt } } }"""


@dataclass
class Follower:
    """A cookProgress subscriber that reconnects to whichever API process is up, with
    ``afterSeq`` set to the last event it received."""

    cook_id: str
    token: str
    bases: list[str]
    received: list[dict[str, Any]] = field(default_factory=list)
    reconnects: int = 0
    ended: str | None = None
    error: BaseException | None = None

    def run(self, until: float) -> None:
        try:
            asyncio.run(self._follow(until))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    async def _follow(self, until: float) -> None:
        last = 0  # from the very first event
        status = None
        while self.ended is None and time.monotonic() < until:
            base = random.choice(self.bases)
            transport = WebsocketsTransport(
                url=base.replace("http://", "ws://") + "/graphql",
                init_payload={"authorization": f"Bearer {self.token}"},
                subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
            )
            try:
                async with Client(transport=transport) as session:
                    request = GraphQLRequest(FOLLOW, variable_values={"c": self.cook_id, "a": last})
                    async for result in session.subscribe(request):
                        message = result["cookProgress"]
                        if message["event"] is not None:
                            self.received.append(message["event"])
                            last = message["event"]["seq"]
                        status = message["status"]
                    if status in ("COMPLETED", "FAILED", "CANCELLED"):
                        self.ended = status
            except Exception:  # noqa: BLE001 - its process was killed: follow another
                self.reconnects += 1
                await asyncio.sleep(0.2)


def kill_at_random(
    tmp: Path,
    *,
    count: int,
    api_kills: int,
    db_kills: int,
) -> tuple[list[str], Follower, int]:
    """Run one cook across two API processes, killing them (and the database) at random;
    return the log's mismatches with the pieces, the follower, and the kills made."""
    port = free_port()
    db = EmbeddedDatabase(tmp / "db", port=port)
    db.start()
    env = {**FAST, "MONGODB_URI": db.uri, "COOK_LEASE_SECONDS": "1.5"}
    data = tmp / "data"
    token = bearer(data)
    rng = random.Random(int(os.environ.get("COOK_CRASH_SEED", "0")) or None)
    kills = 0
    try:
        with ExitStack() as stack:
            procs = [
                stack.enter_context(api_process_handle(env, data, tmp / f"api{n}.log"))
                for n in range(2)
            ]
            bases = [base for base, _ in procs]
            template = {
                "prompt": "[[Animal]] #[[miladyid]]",
                "latencyMs": 60,
                "failureRate": 0.2,
                "costMicros": 1000,
            }
            cook_id = start(bases[0], token, template, count, concurrent=6)
            follower = Follower(cook_id, token, bases)
            thread = threading.Thread(target=follower.run, args=(time.monotonic() + 600,))
            thread.start()
            plan = ["api"] * api_kills + ["db"] * db_kills
            rng.shuffle(plan)
            client: MongoClient[dict[str, Any]] = MongoClient(
                db.uri, serverSelectionTimeoutMS=20000
            )
            for victim in plan:
                time.sleep(rng.uniform(0.2, 1.2))
                if victim == "db":
                    db.kill()
                    time.sleep(rng.uniform(0.0, 0.5))
                    db.start()
                else:
                    n = rng.randrange(2)
                    base, proc = procs[n]
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    bases.remove(base)
                    procs[n] = stack.enter_context(
                        api_process_handle(env, data, tmp / f"api{n}-{kills}.log")
                    )
                    bases.append(procs[n][0])
                kills += 1
            deadline = time.monotonic() + 180
            while client[DB].cooks.find_one({"_id": cook_id}, {"status": 1})["status"] == "running":
                assert time.monotonic() < deadline, "the cook did not finish"
                time.sleep(0.1)
            thread.join(120)
            assert not thread.is_alive(), "the follower never saw the cook end"
            # every committed event is relayed within a tick or two by the survivors
            deadline = time.monotonic() + 30
            while True:
                cook = client[DB].cooks.find_one({"_id": cook_id})
                assert cook is not None
                pieces = list(client[DB].pieces.find({"cookId": cook_id}))
                found = client[DB].cook_events.find({"cookId": cook_id})
                events = [e for d in found for e in entries(d)]
                relayed = not cook.get("outbox") and not any(p.get("outbox") for p in pieces)
                if relayed and len(events) == cook["lastSeq"]:
                    break
                assert time.monotonic() < deadline, "events stayed unrelayed"
                time.sleep(0.2)
            client.close()
    finally:
        db.stop()
    problems = log_mismatches(cook, pieces, events)
    seqs = sorted(e["seq"] for e in events)
    if seqs != list(range(1, cook["lastSeq"] + 1)):
        problems.append(f"the log's seqs are not 1..{cook['lastSeq']}")
    terminal = [e for e in events if e["type"] in ("cook_completed", "cook_failed")]
    if len(terminal) != 1:
        problems.append(f"{len(terminal)} terminal events")
    received = [e["seq"] for e in follower.received]
    if received != seqs:
        problems.append(
            f"the follower got {len(received)} events, not the log's {len(seqs)} in order once"
        )
    print(
        f"{kills} kills, {len(pieces)} pieces, {len(events)} events, "
        f"{follower.reconnects} reconnects, final {cook['status']}"
    )
    return problems, follower, kills


@pytest.mark.parametrize(
    ("count", "api_kills", "db_kills"),
    [
        pytest.param(24, 3, 1, id="short"),
        pytest.param(150, 20, 4, id="long", marks=pytest.mark.soak),
    ],
)
def test_sigkills_of_api_processes_and_the_database_lose_no_event_and_repeat_none(
    tmp_path: Path, count: int, api_kills: int, db_kills: int
) -> None:
    problems, follower, kills = kill_at_random(
        tmp_path, count=count, api_kills=api_kills, db_kills=db_kills
    )
    assert follower.error is None, follower.error
    assert kills == api_kills + db_kills
    assert follower.ended == "COMPLETED"
    assert problems == []
