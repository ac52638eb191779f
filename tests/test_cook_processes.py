"""Cooks across real OS processes: two API processes racing on one cook, and a SIGKILL."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient, MongoClient

from auth.dev_keys import ensure_dev_keys, mint_token
from orchestration.cooking.events import entries
from service.embedded_db import EmbeddedDatabase
from tests.api import OWNER, collection_input
from tests.processes import api_process, api_process_handle, gql

pytestmark = pytest.mark.slow

DB = "procs"
FAST = {
    "COOK_DB_NAME": DB,
    "COOK_TICK_SECONDS": "0.05",
    "COOK_BACKOFF_BASE_SECONDS": "0.01",
    "COOK_BACKOFF_CAP_SECONDS": "0.05",
}


def bearer(data: Path) -> str:
    return mint_token(
        ensure_dev_keys(data / "keys"),
        subject=OWNER,
        issuer="cook-dev",
        audience="cook",
        ttl_seconds=3600,
    )


def start(base: str, token: str, template: dict[str, Any], count: int, concurrent: int) -> str:
    made = gql(
        base,
        token,
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {"i": collection_input(totalSupply=count, generator={"toolId": "test"}, template=template)},
    )
    cook = gql(
        base,
        token,
        "mutation($c: ID!, $n: Int!, $m: Int!) { startCook(collectionId: $c, count: $n, "
        "maxConcurrent: $m, maxFailures: 1000) { id } }",
        {"c": made["createCollection"]["id"], "n": count, "m": concurrent},
    )
    cook_id: str = cook["startCook"]["id"]
    return cook_id


async def watch(uri: str, cook_id: str, until: float) -> tuple[int, dict[str, Any], list[str]]:
    """Sample the documents every few ms while the cook runs; return samples and violations."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    db = client[DB]
    violations: list[str] = []
    samples = 0
    cook: dict[str, Any] = {}
    try:
        while time.monotonic() < until:
            cook = await db.cooks.find_one({"_id": cook_id}) or {}
            running = await db.pieces.count_documents({"cookId": cook_id, "status": "running"})
            live = await db.pieces.count_documents({"cookId": cook_id, "seat": {"$exists": True}})
            samples += 1
            if running > cook["maxConcurrent"]:
                violations.append(f"{running} in flight > {cook['maxConcurrent']}")
            if live > cook["count"]:
                violations.append(f"{live} live > {cook['count']}")
            if cook["status"] != "running":
                break
            await asyncio.sleep(0.005)
        await final_checks(db, cook_id, violations)
    finally:
        await client.close()
    return samples, cook, violations


async def final_checks(db: Any, cook_id: str, violations: list[str]) -> None:
    pieces = [p async for p in db.pieces.find({"cookId": cook_id})]
    indexes = [p["index"] for p in pieces]
    if len(indexes) != len(set(indexes)):
        violations.append("a piece index was used twice")
    for p in pieces:
        if p["status"] == "completed" and p["costMicros"] != 1000:
            violations.append(f"{p['_id']} cost {p['costMicros']}, not 1000 once")
        if p["status"] != "completed" and p["costMicros"] != 0:
            violations.append(f"{p['_id']} was charged without completing")
        applied = [a for a in p["attempts"] if a["outcome"] == "completed"]
        if len(applied) > 1:
            violations.append(f"{p['_id']} completed {len(applied)} times")
    logged = [e async for d in db.cook_events.find({"cookId": cook_id}) for e in entries(d)]
    seqs = sorted(e["seq"] for e in logged)
    if len(seqs) != len(set(seqs)):
        violations.append("an event sequence number repeats")


def test_two_api_processes_racing_on_one_cook_with_duplicate_completions_violate_nothing(
    tmp_path: Path,
) -> None:
    count = 40
    with EmbeddedDatabase(tmp_path / "db") as db:
        env = {"MONGODB_URI": db.uri, **FAST}
        data = tmp_path / "data"
        token = bearer(data)
        with (
            api_process(env, data, tmp_path / "a.log") as a,
            api_process(env, data, tmp_path / "b.log"),
        ):
            template = {
                "prompt": "[[Animal]] #[[miladyid]]",
                "latencyMs": 20,
                "failureRate": 0.2,
                "duplicates": 3,
                "costMicros": 1000,
            }
            cook_id = start(a, token, template, count, concurrent=6)
            samples, _, violations = asyncio.run(watch(db.uri, cook_id, time.monotonic() + 120))
            final = gql(
                a,
                token,
                "query($id: ID!) { cook(id: $id) { status numbers { completed live costUsd } } }",
                {"id": cook_id},
            )["cook"]
    print(f"{samples} samples, final {final}, violations {violations}")
    assert violations == []
    assert final["status"] == "COMPLETED"
    assert final["numbers"]["completed"] == count
    assert final["numbers"]["costUsd"] == "0.040000"


def test_a_cook_survives_a_sigkill_of_its_api_process_mid_cook(tmp_path: Path) -> None:
    count, lease = 24, 2.0
    with contextlib.ExitStack() as stack, EmbeddedDatabase(tmp_path / "db") as db:
        env = {"MONGODB_URI": db.uri, **FAST, "COOK_LEASE_SECONDS": str(lease)}
        data = tmp_path / "data"
        token = bearer(data)
        with api_process_handle(env, data, tmp_path / "victim.log") as (base, victim):
            # each piece in flight for a second: the kill lands while some are, however loaded
            template = {"prompt": "[[Animal]] #[[miladyid]]", "latencyMs": 1000, "costMicros": 1000}
            cook_id = start(base, token, template, count, concurrent=4)
            client: MongoClient[dict[str, Any]] = MongoClient(db.uri)
            stack.callback(client.close)
            pieces = client[DB].pieces
            deadline = time.monotonic() + 60
            # mid-cook: some pieces done, and one started in the last 0.4 s (its lease is
            # nearly whole), so the kill lands at least 0.6 s before it could finish; a piece
            # seen running at the end of its second could finish before the signal lands
            while (
                pieces.count_documents({"cookId": cook_id, "status": "completed"}) < 6
                or pieces.count_documents(
                    {
                        "cookId": cook_id,
                        "status": "running",
                        "leaseExpiresAt": {
                            "$gt": datetime.now(UTC) + timedelta(seconds=lease - 0.4)
                        },
                    }
                )
                == 0
            ):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            orphans = {
                p["_id"]: p["attempt"]
                for p in pieces.find({"cookId": cook_id, "status": "running"})
            }
            assert orphans, "the kill should leave pieces in flight"
        with api_process(env, data, tmp_path / "heir.log") as heir:
            restarted = time.monotonic()
            # nothing stuck past one lease period: the orphans are taken over
            while pieces.count_documents(
                {"_id": {"$in": list(orphans)}, "status": "running", "attempt": {"$lte": 1}}
            ):
                assert time.monotonic() - restarted < lease + 3, "orphaned pieces stayed stuck"
                time.sleep(0.05)
            deadline = time.monotonic() + 60
            while True:
                final = gql(
                    heir,
                    token,
                    "query($id: ID!) { cook(id: $id) { status numbers { "
                    "completed live inFlight costUsd } } }",
                    {"id": cook_id},
                )["cook"]
                if final["status"] != "RUNNING":
                    break
                assert time.monotonic() < deadline, final
                time.sleep(0.05)
        taken_over = [pieces.find_one({"_id": pid}) for pid in orphans]
    assert final["status"] == "COMPLETED"
    assert final["numbers"] == {
        "completed": count,
        "live": count,
        "inFlight": 0,
        "costUsd": f"{count / 1000:.6f}",
    }
    assert all(p["status"] == "completed" and p["attempt"] >= 2 for p in taken_over)
    assert all(p["attempts"][0]["reason"] == "the attempt's lease expired" for p in taken_over)
