"""A stateful (model-based) test of the orchestrator's invariants.

Hypothesis drives cooks with random starts, pauses, resumes, cancels, reviews, sweeper ticks,
expired leases and completions delivered zero to three times at once, late and out of order,
and checks invariants 1-8 of the orchestrator after every step, from the documents themselves,
and (9) that the event log holds exactly the events those documents imply, each once.
User operations go through the GraphQL API; completions go through the orchestrator's one
completion function, as a provider's webhook or poller does. The tool here is an "external"
one: it accepts each attempt and leaves the outcome to the test.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from orchestration.cooking.events import entries
from orchestration.cooking.pieces import Failure, Success
from service.app import create_app
from service.embedded_db import EmbeddedDatabase
from service.settings import Settings
from tests.api import Api
from tests.event_log import log_mismatches

SOAK = os.environ.get("COOK_SOAK") == "1"
# Shrinking re-runs whole machines (about a second each); set COOK_SHRINK=1 to minimise a failure.
PHASES = (
    list(Phase)
    if os.environ.get("COOK_SHRINK") == "1"
    else [Phase.explicit, Phase.reuse, Phase.generate]
)
MAX_ATTEMPTS = 3
TOTAL_SUPPLY = 8


class CookMachine(RuleBasedStateMachine):
    uri: str = ""
    data_dir: Path = Path()

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.settings = Settings(
            mongodb_uri=self.uri,
            db_name=f"sm_{uuid.uuid4().hex[:16]}",
            data_dir=self.data_dir,
            scheduler=False,  # the test is the scheduler: it decides when ticks happen
            max_attempts=MAX_ATTEMPTS,
            backoff_base_seconds=0.001,
            backoff_cap_seconds=0.001,
        )
        self.app = create_app(self.settings)
        self.lifespan = self.app.router.lifespan_context(self.app)
        self.run(self.lifespan.__aenter__())
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://cook.test")
        self.api = Api(self.client, self.settings, self.app)
        self.orchestrator = self.app.state.runtime.services.orchestrator
        self.db = self.app.state.runtime.client[self.settings.db_name]
        made = self.run(
            self.api.create_collection(
                totalSupply=TOTAL_SUPPLY,
                generator={"toolId": "external"},
                template={"prompt": "[[Animal]] #[[miladyid]]"},
            )
        )
        self.collection_id: str = made["id"]
        self.cook_id: str | None = None
        self.settled: set[tuple[str, int]] = set()  # attempts whose outcome was applied
        self.seen: list[tuple[str, str, int]] = []  # (cook, piece, attempt) ever in flight
        self.costs: dict[str, int] = {}  # piece -> cost of its applied success

    def run[T](self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.client.aclose())
        self.run(self.orchestrator.stop())
        self.run(self.app.state.runtime.client.drop_database(self.settings.db_name))
        self.run(self.lifespan.__aexit__(None, None, None))
        self.loop.close()

    async def _settle_background(self) -> None:
        await self.orchestrator.idle()

    async def _in_flight(self) -> list[dict[str, Any]]:
        return [d async for d in self.db.pieces.find({"status": "running"}).sort("_id")]

    def _remember_in_flight(self) -> None:
        for d in self.run(self._in_flight()):
            key = (d["cookId"], d["_id"], d["attempt"])
            if key not in self.seen:
                self.seen.append(key)

    # --- rules ------------------------------------------------------------------------------

    @rule(count=st.integers(1, 5), max_concurrent=st.integers(1, 3))
    def start(self, count: int, max_concurrent: int) -> None:
        body = self.run(
            self.api.post(
                "mutation($c: ID!, $n: Int!, $m: Int) { startCook(collectionId: $c, count: $n, "
                "maxConcurrent: $m, maxFailures: 4) { id } }",
                {"c": self.collection_id, "n": count, "m": max_concurrent},
                token=self.api.token("alice"),
            )
        )
        if body.get("errors"):
            assert body["errors"][0]["extensions"]["code"] in {"CONFLICT", "BAD_USER_INPUT"}
        else:
            self.cook_id = body["data"]["startCook"]["id"]
        self.run(self._settle_background())
        self._remember_in_flight()

    @rule()
    def tick(self) -> None:
        self.run(self.orchestrator.tick())
        self.run(self._settle_background())
        self._remember_in_flight()

    @rule(
        pick=st.integers(0, 10_000),
        stale=st.booleans(),
        kind=st.sampled_from(["success", "retryable", "permanent"]),
        times=st.integers(0, 3),
        cost=st.integers(0, 5_000_000),
    )
    def deliver(self, pick: int, stale: bool, kind: str, times: int, cost: int) -> None:
        """Report an attempt's outcome ``times`` times at once, maybe for an old attempt."""
        if stale and self.seen:
            # Prefer the nastiest stale report: an old attempt of a piece now running anew.
            flying = {(d["_id"], d["attempt"]) for d in self.run(self._in_flight())}
            superseded = [s for s in self.seen if any(p == s[1] and a > s[2] for p, a in flying)]
            pool = superseded or self.seen
            cook_id, piece_id, attempt = pool[pick % len(pool)]
        else:
            flying = self.run(self._in_flight())
            if not flying:
                return
            d = flying[pick % len(flying)]
            cook_id, piece_id, attempt = d["cookId"], d["_id"], d["attempt"]
        outcome: Success | Failure
        if kind == "success":
            outcome = Success(f"output of {piece_id}", cost)
        else:
            outcome = Failure(f"{kind} failure", retryable=kind == "retryable")

        async def together() -> list[bool]:
            return list(
                await asyncio.gather(
                    *(
                        self.orchestrator.complete(cook_id, piece_id, attempt, outcome)
                        for _ in range(times)
                    )
                )
            )

        applied = self.run(together())
        already = (piece_id, attempt) in self.settled
        assert sum(applied) <= 1, "an attempt's outcome was applied more than once"
        if already:
            assert not any(applied), "a repeated or late outcome changed something"
        if any(applied):
            self.settled.add((piece_id, attempt))
            if isinstance(outcome, Success):
                self.costs[piece_id] = cost
        self.run(self._settle_background())
        self._remember_in_flight()

    @rule(op=st.sampled_from(["pauseCook", "resumeCook", "cancelCook"]))
    def control(self, op: str) -> None:
        if self.cook_id is None:
            return
        body = self.run(
            self.api.post(
                f"mutation($id: ID!) {{ {op}(id: $id) {{ status }} }}",
                {"id": self.cook_id},
                token=self.api.token("alice"),
            )
        )
        if body.get("errors"):
            assert body["errors"][0]["extensions"]["code"] == "CONFLICT", body
        self.run(self._settle_background())
        self._remember_in_flight()

    @rule(pick=st.integers(0, 10_000), outcome=st.sampled_from(["ACCEPTED", "REJECTED"]))
    def review(self, pick: int, outcome: str) -> None:
        done = self.run(self._completed())
        if not done:
            return
        piece = done[pick % len(done)]
        body = self.run(
            self.api.post(
                "mutation($p: ID!, $o: ReviewOutcome!) "
                "{ reviewPieces(decisions: [{pieceId: $p, outcome: $o}]) { id } }",
                {"p": piece["_id"], "o": outcome},
                token=self.api.token("alice"),
            )
        )
        if body.get("errors"):  # accepting a rejected piece
            assert body["errors"][0]["extensions"]["code"] == "CONFLICT", body
            assert piece.get("review") == "rejected"
        self.run(self._settle_background())
        self._remember_in_flight()

    async def _completed(self) -> list[dict[str, Any]]:
        return [d async for d in self.db.pieces.find({"status": "completed"}).sort("_id")]

    @rule(pick=st.integers(0, 10_000))
    def lease_expires(self, pick: int) -> None:
        """Time passes for one in-flight piece: its lease runs out; the sweeper takes it over."""
        flying = self.run(self._in_flight())
        if not flying:
            return
        d = flying[pick % len(flying)]
        past = datetime.now(UTC) - timedelta(seconds=1)
        self.run(self.db.pieces.update_one({"_id": d["_id"]}, {"$set": {"leaseExpiresAt": past}}))
        self.run(self.orchestrator.tick())
        self.run(self._settle_background())
        self.settled.add((d["_id"], d["attempt"]))
        self._remember_in_flight()

    # --- invariants -------------------------------------------------------------------------

    @invariant()
    def documents_keep_every_limit(self) -> None:
        self.run(self._check())

    async def _check(self) -> None:
        cooks = [c async for c in self.db.cooks.find({})]
        pieces = [p async for p in self.db.pieces.find({})]
        by_cook: dict[str, list[dict[str, Any]]] = {}
        for p in pieces:
            by_cook.setdefault(p["cookId"], []).append(p)
        active = [c for c in cooks if c["status"] in ("running", "paused", "cancelling")]
        assert len(active) <= 1, "two active cooks for one collection"
        for c in cooks:
            mine = by_cook.get(c["_id"], [])
            running = [p for p in mine if p["status"] == "running"]
            live = [p for p in mine if "seat" in p]
            # 1. never more than maxConcurrent in flight
            assert len(running) <= c["maxConcurrent"], (c["_id"], len(running))
            # 2. never more than count live pieces
            assert len(live) <= c["count"], (c["_id"], len(live))
            # 6. nothing stuck: an ended cook has nothing waiting, and a completed or
            #    cancelled one nothing in flight either
            states = {p["status"] for p in mine}
            if c["status"] in ("completed", "cancelled", "failed"):
                assert "retrying" not in states, (c["_id"], c["status"])
            if c["status"] in ("completed", "cancelled"):
                assert "running" not in states, (c["_id"], c["status"])
            # 8. exact cost: the cook's is the sum of its pieces', each counted once
            numbers = await self.orchestrator.pieces.numbers(c["_id"])
            assert numbers.cost_micros == sum(p["costMicros"] for p in mine)
            # 9. the log: 1..lastSeq, no gaps, no repeats, and exactly the events the
            #    documents imply, each once (every relay in this process has finished)
            found = self.db.cook_events.find({"cookId": c["_id"]})
            events = [e async for d in found for e in entries(d)]
            seqs = sorted(e["seq"] for e in events)
            assert seqs == list(range(1, c["lastSeq"] + 1)), "event log has gaps/repeats"
            assert not c.get("outbox"), "a cook event was left unrelayed"
            assert log_mismatches(c, mine, events) == []
        # 2. the collection never exceeds its total supply
        assert sum(1 for p in pieces if "seat" in p) <= TOTAL_SUPPLY
        # 3. indexes unique per collection; the job key is cookId:index
        indexes = [p["index"] for p in pieces]
        assert len(indexes) == len(set(indexes))
        assert all(p["jobKey"] == f"{p['cookId']}:{p['index']}" for p in pieces)
        for p in pieces:
            # 4. a piece's cost is that of the one applied success, counted once
            assert p["costMicros"] == self.costs.get(p["_id"], 0), p["_id"]
            # 5. retries are bounded; places are held only by the states that hold them
            assert 1 <= p["attempt"] <= MAX_ATTEMPTS
            assert ("slot" in p) == (p["status"] == "running"), p
            if p["status"] in ("failed", "cancelled") or p.get("review") == "rejected":
                assert "seat" not in p, p
            if p["status"] in ("running", "retrying"):
                assert "seat" in p, p
            assert "combo" not in p or "seat" in p, "a combination outlived its seat"
            # 7. a rejected piece never counts toward its cook again
            if p.get("review") == "rejected":
                assert p["status"] == "completed"


def test_cook_invariants_hold_under_random_interleavings(
    embedded: EmbeddedDatabase, tmp_path: Path, external_tool: None
) -> None:
    CookMachine.uri = embedded.uri
    CookMachine.data_dir = tmp_path / "data"
    run_state_machine_as_test(
        CookMachine,
        settings=settings(
            max_examples=300 if SOAK else 20,
            stateful_step_count=60 if SOAK else 30,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=PHASES,
        ),
    )
