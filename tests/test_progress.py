"""cookProgress over graphql-transport-ws, against two real API processes sharing one database."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
import websockets
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.websockets import WebsocketsTransport

from auth.dev_keys import ensure_dev_keys, mint_token
from service.embedded_db import EmbeddedDatabase
from service.settings import Settings
from service.watch import close_code
from tests.api import OWNER, STRANGER, Api, collection_input
from tests.processes import api_process
from tests.processes import gql as post
from tests.test_tokens import ATTACKS

pytestmark = pytest.mark.slow

PROGRESS = """
subscription($id: ID!, $after: Int) {
  cookProgress(cookId: $id, afterSeq: $after) {
    seq status count maxConcurrent
    event { seq type pieceId index }
    numbers { inFlight completed accepted rejected failed live costUsd }
  }
}
"""
CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }"
ENV = {
    "COOK_DB_NAME": "progress",
    "COOK_TICK_SECONDS": "0.05",
    "COOK_PROGRESS_POLL_SECONDS": "0.05",
    "COOK_WS_MAX_SUBSCRIPTIONS": "3",
}


@dataclass
class Cluster:
    a: str
    b: str
    data: Path

    def token(self, subject: str = OWNER, ttl: int = 3600) -> str:
        return mint_token(
            ensure_dev_keys(self.data / "keys"),
            subject=subject,
            issuer="cook-dev",
            audience="cook",
            ttl_seconds=ttl,
        )

    def start_cook(self, count: int, latency_ms: int, concurrent: int = 2) -> str:
        """Start a cook through process A (its scheduler makes the events)."""
        template = {"prompt": "[[Animal]] #[[miladyid]]", "latencyMs": latency_ms}
        made = post(
            self.a,
            self.token(),
            "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
            {"i": collection_input(generator={"toolId": "test"}, template=template)},
        )
        cook = post(
            self.a,
            self.token(),
            "mutation($c: ID!, $n: Int!, $m: Int!) "
            "{ startCook(collectionId: $c, count: $n, maxConcurrent: $m) { id } }",
            {"c": made["createCollection"]["id"], "n": count, "m": concurrent},
        )
        cook_id: str = cook["startCook"]["id"]
        return cook_id

    def events(self, cook_id: str) -> list[dict[str, Any]]:
        found = post(
            self.a,
            self.token(),
            "query($id: ID!) { cook(id: $id) { events(first: 500) { seq type pieceId index } } }",
            {"id": cook_id},
        )
        events: list[dict[str, Any]] = found["cook"]["events"]
        return events


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("progress")
    with EmbeddedDatabase(root / "db") as db:
        env = {"MONGODB_URI": db.uri, **ENV}
        data = root / "data"
        # Only A runs the scheduler, so every event is made by A and read back by B.
        with (
            api_process(env, data, root / "a.log") as a,
            api_process({**env, "COOK_SCHEDULER": "false"}, data, root / "b.log") as b,
        ):
            yield Cluster(a, b, data)


def ws(base: str) -> str:
    return base.replace("http://", "ws://") + "/graphql"


def transport(base: str, token: str | None) -> WebsocketsTransport:
    return WebsocketsTransport(
        url=ws(base),
        init_payload={} if token is None else {"authorization": f"Bearer {token}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        # a dropped subscription waited gql's default 10 s here (the server closes at once)
        close_timeout=1,
    )


async def follow(
    base: str,
    token: str | None,
    cook_id: str,
    after: int | None = None,
    stop_after: int = 0,
    query: str = PROGRESS,
) -> list[dict[str, Any]]:
    """Every message until the subscription completes (or ``stop_after`` events, then drop)."""
    messages: list[dict[str, Any]] = []
    async with Client(transport=transport(base, token)) as session:
        request = GraphQLRequest(query, variable_values={"id": cook_id, "after": after})
        subscription = session.subscribe(request)
        async for result in subscription:
            messages.append(result["cookProgress"])
            if stop_after and sum(m["event"] is not None for m in messages) >= stop_after:
                break
    return messages


def init_message(token: str) -> str:
    return json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}})


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["event"]["seq"] for m in messages if m["event"] is not None]


async def test_events_made_through_one_process_reach_a_subscriber_on_another_in_order(
    cluster: Cluster,
) -> None:
    cook_id = cluster.start_cook(count=6, latency_ms=50)
    messages = await asyncio.wait_for(follow(cluster.b, cluster.token(), cook_id, after=0), 60)

    snapshot, *events, last = messages
    assert snapshot["event"] is None, "the first message is the snapshot"
    assert (snapshot["count"], snapshot["maxConcurrent"]) == (6, 2)
    assert seqs(messages) == list(range(1, last["seq"] + 1)), "every event, once, in order"
    logged = cluster.events(cook_id)
    assert [m["event"] for m in [*events, last]] == logged, "exactly the event log"
    assert (last["event"]["type"], last["status"]) == ("COOK_COMPLETED", "COMPLETED")
    assert (last["numbers"]["completed"], last["numbers"]["inFlight"]) == (6, 0)
    completed = [m for m in events if m["event"]["type"] == "PIECE_COMPLETED"]
    assert [m["numbers"]["completed"] for m in completed] == sorted(
        m["numbers"]["completed"] for m in completed
    ), "numbers only move forward"


async def test_a_client_that_reconnects_with_after_seq_gets_exactly_the_full_sequence(
    cluster: Cluster,
) -> None:
    cook_id = cluster.start_cook(count=8, latency_ms=60)
    token = cluster.token()
    first = await asyncio.wait_for(follow(cluster.b, token, cook_id, after=0, stop_after=5), 60)
    resume_from = seqs(first)[-1]
    await asyncio.sleep(0.4)  # events keep coming while the client is away
    rest = await asyncio.wait_for(follow(cluster.a, token, cook_id, after=resume_from), 60)

    everything = seqs(first) + seqs(rest)
    assert rest[0]["event"] is None
    assert rest[0]["seq"] >= resume_from
    assert everything == list(range(1, rest[-1]["seq"] + 1)), "nothing missing, nothing twice"
    assert rest[-1]["status"] == "COMPLETED"


async def test_a_subscriber_that_joins_after_the_cook_ended_gets_the_log_and_completes(
    cluster: Cluster,
) -> None:
    cook_id = cluster.start_cook(count=2, latency_ms=1)
    await asyncio.wait_for(follow(cluster.a, cluster.token(), cook_id), 60)  # until it ends
    replay = await asyncio.wait_for(follow(cluster.b, cluster.token(), cook_id, after=0), 30)
    assert replay[0]["status"] == "COMPLETED"
    assert seqs(replay) == [e["seq"] for e in cluster.events(cook_id)]


@pytest.mark.parametrize("who", ["stranger", "anonymous"])
async def test_a_stranger_and_an_anonymous_client_are_refused_and_see_nothing(
    cluster: Cluster, who: str
) -> None:
    cook_id = cluster.start_cook(count=2, latency_ms=200)
    token = cluster.token(STRANGER) if who == "stranger" else None
    with pytest.raises(TransportQueryError) as refused:
        await asyncio.wait_for(follow(cluster.b, token, cook_id), 30)
    errors = refused.value.errors or []
    expected = "NOT_FOUND" if who == "stranger" else "UNAUTHENTICATED"
    assert [e["extensions"]["code"] for e in errors] == [expected]
    assert refused.value.data is None


async def test_an_unknown_after_seq_is_a_typed_error(cluster: Cluster) -> None:
    cook_id = cluster.start_cook(count=1, latency_ms=1)
    with pytest.raises(TransportQueryError) as refused:
        await asyncio.wait_for(follow(cluster.b, cluster.token(), cook_id, after=10**6), 30)
    assert [e["extensions"]["code"] for e in refused.value.errors or []] == ["BAD_USER_INPUT"]


async def test_an_expired_token_closes_the_socket_with_4403(cluster: Cluster) -> None:
    cook_id = cluster.start_cook(count=50, latency_ms=500, concurrent=1)
    token = cluster.token(ttl=2)
    started = time.monotonic()
    with pytest.raises(Exception) as closed:  # noqa: PT011 (the close code is what matters)
        await asyncio.wait_for(follow(cluster.b, token, cook_id), 30)
    assert close_code(closed.value) == 4403
    assert time.monotonic() - started < 10


async def test_a_token_that_fails_verification_is_refused_at_connection_init(
    cluster: Cluster,
) -> None:
    token = cluster.token()
    tampered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    async with websockets.connect(ws(cluster.b), subprotocols=["graphql-transport-ws"]) as sock:
        await sock.send(init_message(tampered))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(sock.recv(), 10)
    assert close_code(closed.value) == 4403


@pytest.mark.parametrize("make", ATTACKS.values(), ids=ATTACKS.keys())
async def test_each_rfc8725_attack_token_is_refused_at_connection_init_with_4403(
    cluster: Cluster, make: Callable[[Api], str]
) -> None:
    signer = SimpleNamespace(keys=ensure_dev_keys(cluster.data / "keys"), settings=Settings())
    token = make(cast(Api, signer))
    async with websockets.connect(ws(cluster.b), subprotocols=["graphql-transport-ws"]) as sock:
        await sock.send(init_message(token))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(sock.recv(), 10)
    assert close_code(closed.value) == 4403


async def test_the_legacy_graphql_ws_protocol_is_refused(cluster: Cluster) -> None:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with websockets.connect(ws(cluster.b), subprotocols=["graphql-ws"]) as sock:
            await asyncio.wait_for(sock.recv(), 10)
    assert close_code(closed.value) == 4406, "Subprotocol not acceptable"


async def test_a_connection_has_a_cap_on_open_subscriptions(cluster: Cluster) -> None:
    cook_id = cluster.start_cook(count=20, latency_ms=300, concurrent=1)
    async with Client(transport=transport(cluster.b, cluster.token())) as session:
        streams = [
            session.subscribe(GraphQLRequest(PROGRESS, variable_values={"id": cook_id}))
            for _ in range(4)
        ]
        firsts = [asyncio.ensure_future(anext(s)) for s in streams]  # type: ignore[arg-type]
        results = await asyncio.wait_for(asyncio.gather(*firsts, return_exceptions=True), 20)
        for s in streams:
            await s.aclose()  # type: ignore[attr-defined]
    refused = [r for r in results if isinstance(r, TransportQueryError)]
    assert len(refused) == 1, results
    assert "limit" in str(refused[0]).lower()


async def test_a_subscriber_that_never_reads_does_not_hold_up_others(cluster: Cluster) -> None:
    cook_id = cluster.start_cook(count=10, latency_ms=20, concurrent=4)
    token = cluster.token()
    async with websockets.connect(
        ws(cluster.b), subprotocols=["graphql-transport-ws"], max_queue=1, close_timeout=1
    ) as stalled:
        await stalled.send(init_message(token))
        await stalled.recv()  # the ack
        payload = {"query": PROGRESS, "variables": {"id": cook_id, "after": 0}}
        await stalled.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        # ...and never reads again, while another client follows the same cook to its end.
        messages = await asyncio.wait_for(follow(cluster.b, token, cook_id, after=0), 60)
    assert messages[-1]["status"] == "COMPLETED"
    assert seqs(messages) == list(range(1, messages[-1]["seq"] + 1))


async def test_subscribers_of_one_cook_asking_for_different_fields_each_get_their_own(
    cluster: Cluster,
) -> None:
    """One process executes an event once per operation and variables for all subscribers
    (schema/shared_events.py): whoever asks for other fields, or with other variables, still
    gets exactly what they asked for, every event once and in order."""
    cook_id = cluster.start_cook(count=8, latency_ms=20, concurrent=4)
    token = cluster.token()
    small = "subscription($id: ID!, $after: Int) { cookProgress(cookId: $id, afterSeq: $after) "
    small += "{ seq event { seq } } }"
    runs = await asyncio.wait_for(
        asyncio.gather(
            *(follow(cluster.b, token, cook_id, after=0) for _ in range(3)),
            follow(cluster.b, token, cook_id, after=0, query=small),
            follow(cluster.b, token, cook_id),  # no afterSeq: from its snapshot on
        ),
        60,
    )
    full, same, other, narrow, later = runs
    last = full[-1]["seq"]
    assert full[-1]["status"] == "COMPLETED"
    assert seqs(full) == list(range(1, last + 1))
    # The same events (a message's numbers are those of its subscriber's moment: a catching-up
    # subscriber's first events carry its snapshot's).
    events = [(m["seq"], m["event"]) for m in full if m["event"]]
    assert [(m["seq"], m["event"]) for m in same if m["event"]] == events
    assert [(m["seq"], m["event"]) for m in other if m["event"]] == events
    assert all(set(m) == {"seq", "event"} for m in narrow)
    assert all(set(m["event"]) == {"seq"} for m in narrow if m["event"])
    assert seqs(narrow) == list(range(1, last + 1))
    assert seqs(later) == list(range(later[0]["seq"] + 1, last + 1))
    assert all(set(m) == set(full[0]) for m in later)


def run_watch(cluster: Cluster, cook_id: str, token: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "watch", cook_id, "--url", ws(cluster.b)],
        env={**os.environ, "COOK_TOKEN": token, "COOK_DATA_DIR": str(cluster.data)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cook_watch_follows_a_cook_to_its_end_and_exits_with_its_status(cluster: Cluster) -> None:
    cook_id = cluster.start_cook(count=4, latency_ms=100)
    done = run_watch(cluster, cook_id, cluster.token())
    assert done.returncode == 0, done.stderr
    assert f"cook {cook_id}: completed" in done.stderr
    assert "4/4" in done.stderr, "the progress bar reached the count"


def test_cook_watch_on_a_finished_cook_shows_what_was_made_reviewed_and_no_made_up_rate(
    cluster: Cluster,
) -> None:
    cook_id = cluster.start_cook(count=5, latency_ms=1)
    assert run_watch(cluster, cook_id, cluster.token()).returncode == 0
    first = cluster.events(cook_id)
    piece = next(e["pieceId"] for e in first if e["type"] == "PIECE_COMPLETED")
    post(
        cluster.a,
        cluster.token(),
        "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }",
        {"d": [{"pieceId": piece, "outcome": "REJECTED"}]},
    )
    again = run_watch(cluster, cook_id, cluster.token())
    assert again.returncode == 0, again.stderr
    last = again.stderr.rsplit("\r", 1)[-1]
    assert "5/5" in last, last
    assert "?piece/s" in last, "no rate for what was made before watching"
    for shown in ("accepted=0", "rejected=1", "unreviewed=4"):
        assert shown in last, last


def test_cook_watch_exits_2_for_a_cook_it_may_not_see(cluster: Cluster) -> None:
    cook_id = cluster.start_cook(count=1, latency_ms=1)
    refused = run_watch(cluster, cook_id, cluster.token(STRANGER))
    assert refused.returncode == 2
    assert "not found" in refused.stderr.lower()


def test_a_per_operation_rate_limit_applies_to_mutations_sent_over_the_websocket(
    tmp_path: Path,
) -> None:
    limits = json.dumps({"createCollection": "2/minute"})
    with EmbeddedDatabase(tmp_path / "db") as db:
        env = {"MONGODB_URI": db.uri, **ENV, "COOK_OPERATION_RATE_LIMITS": limits}
        with api_process(env, tmp_path / "data", tmp_path / "api.log") as base:
            cluster = Cluster(base, base, tmp_path / "data")

            async def create_three() -> list[Any]:
                answers: list[Any] = []
                async with Client(transport=transport(base, cluster.token())) as session:
                    for _ in range(3):
                        request = GraphQLRequest(CREATE, variable_values={"i": collection_input()})
                        try:
                            answers.append(await session.execute(request))
                        except TransportQueryError as refused:
                            answers.append(refused.errors)
                return answers

            first, second, third = asyncio.run(create_three())
    assert "createCollection" in first
    assert "createCollection" in second
    assert [e["extensions"]["code"] for e in third] == ["RATE_LIMITED"]
