"""Outbound webhooks, through the API, to a real receiver on loopback (allow-listed here) that
verifies every signature with the ``standardwebhooks`` library."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.api import (
    ADMIN,
    OWNER,
    STRANGER,
    Api,
    start_cook,
    start_export,
    wait_for_cook,
    wait_for_export,
    with_test_tool,
)
from tests.conftest import MakeApi
from tests.webhook_receiver import Receiver, webhook_receiver

ALL_EVENTS = [
    "cook.completed",
    "cook.failed",
    "cook.cancelled",
    "export.completed",
    "export.failed",
]
LOOPBACK = ["127.0.0.1/32"]
# Retries in tens of milliseconds instead of minutes.
QUICK = {
    "webhook_allowed_networks": LOOPBACK,
    "webhook_retry_base_seconds": 0.05,
    "webhook_retry_cap_seconds": 0.2,
    "webhook_timeout_seconds": 2.0,
}

CREATE = """
mutation($url: String!, $events: [String!]!, $d: String) {
  createWebhookEndpoint(url: $url, events: $events, description: $d) {
    id url events enabled ownerId secret
  }
}"""
DELIVERY_FIELDS = """
  id endpointId messageId event status attempts error payload deliveredAt
  attemptLog { number statusCode durationMs error }
"""
DELIVERIES = f"""
query($e: ID!) {{
  webhookDeliveries(endpointId: $e, first: 100) {{ edges {{ node {{ {DELIVERY_FIELDS} }} }} }}
}}"""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


@pytest.fixture
async def wapi(make_api: MakeApi) -> AsyncIterator[Api]:
    return await make_api(**QUICK)


async def create_endpoint(
    api: Api, url: str, events: list[str] | None = None, as_: str = OWNER
) -> tuple[str, str]:
    data = await api.data(CREATE, {"url": url, "events": events or ALL_EVENTS}, as_=as_)
    made = data["createWebhookEndpoint"]
    return made["id"], made["secret"]


async def deliveries(api: Api, endpoint_id: str, as_: str = OWNER) -> list[dict[str, Any]]:
    data = await api.data(DELIVERIES, {"e": endpoint_id}, as_=as_)
    return [e["node"] for e in data["webhookDeliveries"]["edges"]]


async def settled(api: Api, endpoint_id: str, n: int, within: float = 30) -> list[dict[str, Any]]:
    """Wait until the endpoint has ``n`` deliveries, none pending."""
    deadline = time.monotonic() + within
    while True:
        found = await deliveries(api, endpoint_id)
        if len(found) >= n and all(d["status"] != "PENDING" for d in found):
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


async def test_a_completed_cook_is_delivered_once_signed_with_the_endpoint_secret(
    wapi: Api, receiver: Receiver
) -> None:
    endpoint, secret = await create_endpoint(wapi, receiver.url, ["cook.completed"])
    collection = await wapi.create_collection()
    cook = await start_cook(wapi, collection["id"], count=3)
    await wait_for_cook(wapi, cook["id"])
    [delivery] = await settled(wapi, endpoint, 1)
    [request] = await receiver.wait(1)
    assert request.verifies_with(secret)
    assert request.webhook_id == delivery["messageId"]
    assert request.headers["content-type"] == "application/json"
    body = request.payload
    assert body["type"] == "cook.completed"
    assert body["data"]["cookId"] == cook["id"]
    assert body["data"]["numbers"]["completed"] == 3
    assert body["data"]["url"].endswith(f"/studio#/cooks/{cook['id']}")
    assert secret not in request.body.decode()
    assert delivery["status"] == "DELIVERED"
    assert [a["statusCode"] for a in delivery["attemptLog"]] == [200]
    assert delivery["payload"] == body
    await asyncio.sleep(0.3)  # nothing more arrives
    assert len(receiver.received) == 1


async def test_every_ended_cook_and_export_produces_exactly_one_delivery_id(
    wapi: Api, receiver: Receiver
) -> None:
    endpoint, secret = await create_endpoint(wapi, receiver.url)
    ok = await wapi.create_collection()
    completed = await start_cook(wapi, ok["id"], count=2)
    done = await wait_for_cook(wapi, completed["id"], extra="pieces { id }")
    failing = await wapi.create_collection(**with_test_tool(permanentFailureRate=1.0))
    failed = await start_cook(wapi, failing["id"], count=2, maxFailures=1)
    await wait_for_cook(wapi, failed["id"])
    slow = await wapi.create_collection(**with_test_tool(latencyMs=5000))
    cancelled = await start_cook(wapi, slow["id"], count=1)
    await wapi.data("mutation($id: ID!) { cancelCook(id: $id) { id } }", {"id": cancelled["id"]})
    await wait_for_cook(wapi, cancelled["id"], within=30)
    piece = done["pieces"][0]["id"]
    await wapi.data(
        "mutation($p: ID!) { reviewPieces(decisions: [{pieceId: $p, outcome: ACCEPTED}]) { id } }",
        {"p": piece},
    )
    export = await wait_for_export(wapi, (await start_export(wapi, ok["id"]))["id"])
    assert export["status"] == "COMPLETED"
    found = await settled(wapi, endpoint, 4)
    await asyncio.sleep(0.5)  # let any duplicate show itself
    found = await deliveries(wapi, endpoint)
    by_event = sorted((d["event"], d["payload"]["data"].get("cookId") or "") for d in found)
    assert by_event == sorted(
        [
            ("cook.completed", completed["id"]),
            ("cook.failed", failed["id"]),
            ("cook.cancelled", cancelled["id"]),
            ("export.completed", ""),
        ]
    )
    assert len({d["id"] for d in found}) == len({d["messageId"] for d in found}) == 4
    assert all(d["status"] == "DELIVERED" for d in found)
    received = await receiver.wait(4)
    assert {r.webhook_id for r in received} == {d["messageId"] for d in found}
    assert all(r.verifies_with(secret) for r in received)
    export_body = next(r.payload for r in received if r.payload["type"] == "export.completed")
    assert export_body["data"]["exportId"] == export["id"]
    assert export_body["data"]["url"].endswith(f"/exports/{export['id']}/archive")


async def test_a_receiver_answering_500_for_a_while_gets_the_same_webhook_id_until_it_answers_200(
    wapi: Api,
) -> None:
    def flaky(n: int) -> tuple[int, dict[str, str]]:
        return (500, {}) if n <= 3 else (200, {})

    with webhook_receiver(flaky) as receiver:
        endpoint, secret = await create_endpoint(wapi, receiver.url, ["cook.completed"])
        collection = await wapi.create_collection()
        await wait_for_cook(wapi, (await start_cook(wapi, collection["id"], count=1))["id"])
        [delivery] = await settled(wapi, endpoint, 1)
        received = await receiver.wait(4)
    assert delivery["status"] == "DELIVERED"
    assert [a["statusCode"] for a in delivery["attemptLog"]] == [500, 500, 500, 200]
    assert [a["number"] for a in delivery["attemptLog"]] == [1, 2, 3, 4]
    assert len(received) == 4
    assert {r.webhook_id for r in received} == {delivery["messageId"]}
    assert all(r.verifies_with(secret) for r in received)
    gaps = [b.at - a.at for a, b in itertools.pairwise(received)]
    assert all(g >= 0.02 for g in gaps), gaps  # backed off (at least half of 0.05 s)


async def test_a_delivery_fails_after_its_schedule_and_a_run_of_failures_disables_the_endpoint(
    make_api: MakeApi,
) -> None:
    api = await make_api(**QUICK, webhook_max_attempts=3, webhook_disable_after_failed=2)
    with webhook_receiver(lambda n: (500, {})) as receiver:
        endpoint, _ = await create_endpoint(api, receiver.url)
        test = "mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id status } }"
        await api.data(test, {"e": endpoint})
        [first] = await settled(api, endpoint, 1)
        assert first["status"] == "FAILED"
        assert [a["statusCode"] for a in first["attemptLog"]] == [500, 500, 500]
        state = (
            "query($e: ID!) { webhookEndpoint(id: $e) { enabled failureStreak disabledReason } }"
        )
        assert (await api.data(state, {"e": endpoint}))["webhookEndpoint"]["enabled"] is True
        await api.data(test, {"e": endpoint})
        await settled(api, endpoint, 2)
        # The delivery's outcome is written first, the endpoint's streak just after it.
        for _ in range(100):
            after = (await api.data(state, {"e": endpoint}))["webhookEndpoint"]
            if after["failureStreak"] == 2:
                break
            await asyncio.sleep(0.05)
        assert after == {
            "enabled": False,
            "failureStreak": 2,
            "disabledReason": "2 deliveries in a row failed",
        }
        refused = await api.error(test, {"e": endpoint})
        assert refused["extensions"]["code"] == "CONFLICT"
        assert len(receiver.received) == 6
        # redelivery once enabled again: a fresh schedule, the same webhook-id
        enable = "mutation($e: ID!) { updateWebhookEndpoint(id: $e, enabled: true) { enabled } }"
        await api.data(enable, {"e": endpoint})
        receiver.answer = lambda n: (200, {})
        again = await api.data(
            f"mutation($d: ID!) {{ redeliver(deliveryId: $d) {{ {DELIVERY_FIELDS} }} }}",
            {"d": first["id"]},
        )
        assert again["redeliver"]["status"] == "PENDING"
        await settled(api, endpoint, 2)
        [redelivered] = [d for d in await deliveries(api, endpoint) if d["id"] == first["id"]]
        assert redelivered["status"] == "DELIVERED"
        assert receiver.received[-1].webhook_id == first["messageId"]


async def test_rotation_signs_with_both_secrets_during_the_overlap_and_only_the_new_one_after(
    make_api: MakeApi, receiver: Receiver
) -> None:
    api = await make_api(**QUICK, webhook_rotation_overlap_seconds=1.5)
    endpoint, old = await create_endpoint(api, receiver.url)
    rotated = await api.data(
        "mutation($e: ID!) { rotateWebhookSecret(id: $e) { secret previousSecretExpiresAt } }",
        {"e": endpoint},
    )
    new = rotated["rotateWebhookSecret"]["secret"]
    assert new != old
    assert new.startswith("whsec_")
    test = "mutation($e: ID!) { sendTestWebhook(endpointId: $e) { id } }"
    await api.data(test, {"e": endpoint})
    [during] = await receiver.wait(1)
    assert during.verifies_with(old)
    assert during.verifies_with(new)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    await asyncio.sleep(1.6)
    await api.data(test, {"e": endpoint})
    after = (await receiver.wait(2))[1]
    assert after.verifies_with(new)
    assert not after.verifies_with(old)


async def test_no_query_shows_a_secret_and_strangers_see_nothing_but_admins_see_all(
    wapi: Api, receiver: Receiver
) -> None:
    endpoint, secret = await create_endpoint(wapi, receiver.url)
    listing = "query { webhookEndpoints { edges { node { id ownerId } } } }"
    assert (await wapi.data(listing, as_=STRANGER))["webhookEndpoints"]["edges"] == []
    admin = (await wapi.data(listing, as_=ADMIN))["webhookEndpoints"]["edges"]
    assert [e["node"]["id"] for e in admin] == [endpoint]
    theirs = await wapi.error(DELIVERIES, {"e": endpoint}, as_=STRANGER)
    assert theirs["extensions"]["code"] == "NOT_FOUND"
    mutation = "mutation($e: ID!) { deleteWebhookEndpoint(id: $e) { id } }"
    assert (await wapi.error(mutation, {"e": endpoint}, as_=STRANGER))["extensions"][
        "code"
    ] == "NOT_FOUND"
    assert secret.startswith("whsec_")  # shown by the mutation; by nothing else:
    one = "query($e: ID!) { webhookEndpoint(id: $e) { secret } }"
    assert (await wapi.data(one, {"e": endpoint}))["webhookEndpoint"]["secret"] is None
    many = "query { webhookEndpoints { edges { node { secret } } } }"
    assert (await wapi.data(many, as_=ADMIN))["webhookEndpoints"]["edges"][0]["node"] == {
        "secret": None
    }
    update = 'mutation($e: ID!) { updateWebhookEndpoint(id: $e, description: "x") { secret } }'
    assert (await wapi.data(update, {"e": endpoint}))["updateWebhookEndpoint"]["secret"] is None


async def test_an_owner_holds_at_most_the_cap_of_endpoints_even_when_creating_at_once(
    make_api: MakeApi, receiver: Receiver
) -> None:
    api = await make_api(**QUICK, webhook_max_endpoints=3)
    results = await asyncio.gather(
        *(
            api.post(
                CREATE,
                {"url": receiver.url, "events": ["cook.completed"]},
                token=api.token_for(OWNER),
            )
            for _ in range(6)
        )
    )
    made = [r for r in results if not r.get("errors")]
    refused = [r["errors"][0]["extensions"]["code"] for r in results if r.get("errors")]
    assert len(made) == 3
    assert refused == ["CONFLICT"] * 3
    db = api.app.state.runtime.client[api.settings.db_name]
    assert await db["webhook_endpoints"].count_documents({}) == 3
    await create_endpoint(api, receiver.url, as_=STRANGER)  # another owner's cap is their own
