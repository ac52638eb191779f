"""Outbound webhooks survive the death of the process that should have sent them: the
delivery is recorded with the transition that ended the cook (the outbox mark), and any
process sends it, at least once, with the same ``webhook-id``."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from orchestration.notifications.notifier import Notifier
from service.embedded_db import EmbeddedDatabase
from service.settings import Settings
from tests.api import running_app, start_cook, wait_for_cook
from tests.processes import api_process, api_process_handle, gql
from tests.test_cook_processes import bearer, start
from tests.test_outbound_webhooks import ALL_EVENTS, CREATE, DELIVERIES, QUICK, settled
from tests.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.slow

DB = "procs"
ENV = {
    "COOK_DB_NAME": DB,
    "COOK_TICK_SECONDS": "0.05",
    "COOK_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    "COOK_WEBHOOK_TIMEOUT_SECONDS": "1",
    "COOK_WEBHOOK_LEASE_SECONDS": "2",
    "COOK_WEBHOOK_RETRY_BASE_SECONDS": "0.1",
    "COOK_WEBHOOK_RETRY_CAP_SECONDS": "0.5",
}


def delivered(base: str, token: str, endpoint: str, within: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while True:
        edges = gql(base, token, DELIVERIES, {"e": endpoint})["webhookDeliveries"]["edges"]
        found = [e["node"] for e in edges]
        if found and all(d["status"] == "DELIVERED" for d in found):
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.05)


def test_a_sigkill_of_the_api_process_mid_send_is_followed_by_a_delivery_from_another(
    tmp_path: Path,
) -> None:
    with EmbeddedDatabase(tmp_path / "db") as db, webhook_receiver() as receiver:
        env = {"MONGODB_URI": db.uri, **ENV}
        data = tmp_path / "data"
        token = bearer(data)
        receiver.hold = threading.Event()  # the first request is kept waiting
        with api_process_handle(env, data, tmp_path / "victim.log") as (base, victim):
            made = gql(base, token, CREATE, {"url": receiver.url, "events": ALL_EVENTS})
            endpoint = made["createWebhookEndpoint"]["id"]
            secret = made["createWebhookEndpoint"]["secret"]
            cook_id = start(base, token, {"prompt": "[[Animal]]"}, count=2, concurrent=2)
            assert receiver.arrived.wait(30), "the victim never sent"
            victim.send_signal(signal.SIGKILL)  # while its request is in the receiver's hands
            victim.wait()
        client: MongoClient[dict[str, Any]] = MongoClient(db.uri)
        try:
            [orphan] = list(client[DB].notification_deliveries.find({}))
        finally:
            client.close()
        assert orphan["status"] == "pending"
        assert orphan["leaseOwner"]  # claimed by the victim, never finished
        receiver.hold.set()
        with api_process(env, data, tmp_path / "heir.log") as heir:
            [delivery] = delivered(heir, token, endpoint)
        received = receiver.wait_for(2)
    assert delivery["payload"]["data"]["cookId"] == cook_id
    assert [a["statusCode"] for a in delivery["attemptLog"]] == [200]
    assert delivery["attemptLog"][0]["number"] == 2  # the victim's attempt counted
    assert {r.webhook_id for r in received} == {delivery["messageId"]}
    assert all(r.verifies_with(secret) for r in received)


def test_a_sigkill_right_as_a_cook_ends_loses_no_delivery(tmp_path: Path) -> None:
    """The kill lands as soon as the cook's status is terminal: before, during or after the
    fan-out and the send. Whichever, one delivery id, delivered at least once."""
    with EmbeddedDatabase(tmp_path / "db") as db, webhook_receiver() as receiver:
        env = {"MONGODB_URI": db.uri, **ENV}
        data = tmp_path / "data"
        token = bearer(data)
        client: MongoClient[dict[str, Any]] = MongoClient(db.uri)
        try:
            with api_process_handle(env, data, tmp_path / "victim.log") as (base, victim):
                made = gql(base, token, CREATE, {"url": receiver.url, "events": ALL_EVENTS})
                endpoint = made["createWebhookEndpoint"]["id"]
                secret = made["createWebhookEndpoint"]["secret"]
                cook_id = start(base, token, {"prompt": "x", "latencyMs": 300}, 3, 3)
                cooks = client[DB].cooks
                deadline = time.monotonic() + 60
                while (cooks.find_one({"_id": cook_id}) or {}).get("status") == "running":
                    assert time.monotonic() < deadline
                    time.sleep(0.001)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
            marked = "notify" in (cooks.find_one({"_id": cook_id}) or {})
            sent_before = len(receiver.received)
            print(f"at the kill: marked={marked}, requests received={sent_before}")
        finally:
            client.close()
        with api_process(env, data, tmp_path / "heir.log") as heir:
            [delivery] = delivered(heir, token, endpoint)
            time.sleep(0.3)
        received = receiver.wait_for(1)
    assert delivery["payload"]["data"]["cookId"] == cook_id
    assert {r.webhook_id for r in received} == {delivery["messageId"]}
    assert all(r.verifies_with(secret) for r in received)


async def test_an_end_marked_but_never_fanned_out_is_delivered_by_the_next_process(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The window between the end and the fan-out, held open: a process whose notifier never
    runs ends a cook, and stops; the next process delivers it, once."""
    quick = settings.model_copy(update=QUICK)
    with webhook_receiver() as receiver:
        with monkeypatch.context() as patch:
            patch.setattr(Notifier, "kick", lambda self: None)
            async with running_app(quick.model_copy(update={"scheduler": False})) as first:
                made = await first.data(CREATE, {"url": receiver.url, "events": ALL_EVENTS})
                endpoint = made["createWebhookEndpoint"]["id"]
                secret = made["createWebhookEndpoint"]["secret"]
                collection = await first.create_collection()
                cook = await start_cook(first, collection["id"], count=2)
                await wait_for_cook(first, cook["id"])
                db = first.app.state.runtime.client[quick.db_name]
                ended = await db.cooks.find_one({"_id": cook["id"]})
                assert ended is not None
                assert ended["notify"] == "cook.completed"
                assert await db.notification_deliveries.count_documents({}) == 0
        async with running_app(quick) as second:
            [delivery] = await settled(second, endpoint, 1)
        received = await receiver.wait(1)
    assert delivery["status"] == "DELIVERED"
    assert len(received) == 1
    assert received[0].verifies_with(secret)
    assert received[0].webhook_id == delivery["messageId"]


async def test_fan_outs_repeated_and_racing_record_one_delivery_per_endpoint(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fan-out that died after recording (its mark still set) runs again, while others race
    it: the delivery's id is derived, so there is still one per endpoint."""
    quick = settings.model_copy(update={**QUICK, "scheduler": False})
    with webhook_receiver() as receiver:
        monkeypatch.setattr(Notifier, "kick", lambda self: None)
        async with running_app(quick) as api:
            made = await api.data(CREATE, {"url": receiver.url, "events": ALL_EVENTS})
            endpoint = made["createWebhookEndpoint"]["id"]
            collection = await api.create_collection()
            cook = await start_cook(api, collection["id"], count=1)
            await wait_for_cook(api, cook["id"])
            notifier = api.app.state.runtime.services.notifier
            db = api.app.state.runtime.client[quick.db_name]
            for _ in range(3):
                await db.cooks.update_one(
                    {"_id": cook["id"]}, {"$set": {"notify": "cook.completed"}}
                )
                await asyncio.gather(*(notifier.fanout.relay_all() for _ in range(4)))
            recorded = [d async for d in db.notification_deliveries.find({"endpointId": endpoint})]
            assert len(recorded) == 1
            await notifier.tick()
        received = await receiver.wait(1)
    assert len(received) == 1
    assert received[0].webhook_id == recorded[0]["messageId"]
