"""The boundary against a real ``cook serve`` (uvicorn, h11): what only a real HTTP server and a
real socket show. A 1 MB Authorization header reaches the app and gets the documented shape;
a kept-alive connection survives a token with wrong-typed claims; ``connection_init`` with such
a token closes the WebSocket with 4403 (a close frame, not a dropped socket); frames the server
writes together still arrive one message each, in order."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from auth.dev_keys import ensure_dev_keys
from service.boundary import MAX_HEADER_BYTES
from tests.api import OWNER, collection_input
from tests.hostile import hostile_token
from tests.processes import api_process, gql

pytestmark = pytest.mark.slow
VIEWER = {"query": "{ viewer { id } }"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("hostile")
    with api_process({"COOK_DB_NAME": "hostile"}, root / "data", root / "api.log") as base:
        yield base, root / "data"


def token(data: Path, claim: str = "sub", value: Any = OWNER) -> str:
    return hostile_token(ensure_dev_keys(data / "keys"), "cook-dev", "cook", claim, value)


def test_a_one_megabyte_authorization_header_gets_the_documented_shape_from_the_server(
    server: tuple[str, Path],
) -> None:
    base, _ = server
    response = httpx.post(
        f"{base}/graphql", json=VIEWER, headers={"Authorization": "Bearer " + "a" * 2**20}
    )
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "too long" in error["message"]
    assert response.headers["X-Request-ID"]
    # Past what the server reads of headers, h11 itself answers 400 and closes (documented),
    # often while the client is still sending: never a 500.
    try:
        beyond = httpx.post(
            f"{base}/graphql", json=VIEWER, headers={"X-Big": "a" * (2 * MAX_HEADER_BYTES)}
        )
    except httpx.TransportError:
        return
    assert beyond.status_code == 400


def test_a_kept_alive_connection_survives_a_token_with_wrong_typed_claims(
    server: tuple[str, Path],
) -> None:
    base, data = server
    future = str(int(time.time()) + 600)
    with httpx.Client(base_url=base) as client:
        for claim, value in (("exp", future), ("iat", [1]), ("aud", {"a": 1}), ("exp", 1e300)):
            refused = client.post(
                "/graphql",
                json=VIEWER,
                headers={"Authorization": f"Bearer {token(data, claim, value)}"},
            )
            assert refused.status_code == 200, refused.text
            codes = {e["extensions"]["code"] for e in refused.json()["errors"]}
            assert codes == {"UNAUTHENTICATED"}
            served = client.post(
                "/graphql", json=VIEWER, headers={"Authorization": f"Bearer {token(data)}"}
            )
            assert served.json()["data"] == {"viewer": {"id": OWNER}}


async def test_connection_init_with_a_wrong_typed_claim_is_closed_4403_over_a_real_socket(
    server: tuple[str, Path],
) -> None:
    base, data = server
    url = base.replace("http://", "ws://") + "/graphql"
    future = str(int(time.time()) + 600)
    for claim, value in (("exp", future), ("iat", [1]), ("sub", 7)):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            payload = {"authorization": f"Bearer {token(data, claim, value)}"}
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4403


async def test_a_malformed_websocket_message_is_closed_4400_over_a_real_socket(
    server: tuple[str, Path],
) -> None:
    base, _ = server
    url = base.replace("http://", "ws://") + "/graphql"
    for text in ("[1]", "[" * 100_000, '{"type": "connection_init", "payload": {"a": NaN}}'):
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(text)
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 4400, text


SUBSCRIPTION = "subscription($id: ID!) { cookProgress(cookId: $id) { seq event { seq } } }"


async def test_frames_written_together_still_arrive_one_message_each_in_order(
    server: tuple[str, Path],
) -> None:
    """``cook serve`` writes a connection's frames of one pass together
    (``service/websocket_writes.py``): a subscriber still gets every event, one message each,
    in order, and then ``complete``."""
    base, data = server
    owner = token(data)
    made = await asyncio.to_thread(
        gql,
        base,
        owner,
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {"i": collection_input(generator={"toolId": "prompt"})},
    )
    url = base.replace("http://", "ws://") + "/graphql"
    async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {owner}"}}
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        cook = await asyncio.to_thread(
            gql,
            base,
            owner,
            "mutation($c: ID!) { startCook(collectionId: $c, count: 12, maxConcurrent: 6) { id } }",
            {"c": made["createCollection"]["id"]},
        )
        payload = {"query": SUBSCRIPTION, "variables": {"id": cook["startCook"]["id"]}}
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        seqs: list[int] = []
        async with asyncio.timeout(60):
            while (message := json.loads(await ws.recv()))["type"] != "complete":
                assert message["type"] == "next", message
                event = message["payload"]["data"]["cookProgress"]["event"]
                if event is not None:
                    seqs.append(event["seq"])
    assert len(seqs) >= 24  # a start and a completion per piece at least
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
