"""The progress feed's delivery rules, in process: lagging subscribers, holes, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from domain.ids import AccountId
from domain.principal import Principal
from orchestration.events import EventType, piece_outbox, recorded
from orchestration.progress import Progress, ProgressFeed
from orchestration.services import Services
from tests.api import OWNER, Api, start_cook, with_test_tool

ALICE = Principal(AccountId(OWNER))


@contextlib.asynccontextmanager
async def running_feed(services: Services, **kwargs: Any) -> AsyncIterator[ProgressFeed]:
    feed = ProgressFeed(services.cooks, services.events, services.pieces, interval=0.02, **kwargs)
    task = asyncio.create_task(feed.run())
    try:
        yield feed
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def new_cook(api: Api, count: int, latency_ms: int) -> str:
    collection = await api.create_collection(**with_test_tool(latencyMs=latency_ms))
    cook = await start_cook(api, collection["id"], count=count, maxConcurrent=4)
    cook_id: str = cook["id"]
    return cook_id


def services_of(api: Api) -> Services:
    services: Services = api.app.state.runtime.services
    return services


async def test_a_subscriber_that_falls_far_behind_still_gets_every_event_once_in_order(
    api: Api,
) -> None:
    services = services_of(api)
    cook_id = await new_cook(api, count=12, latency_ms=5)
    received: list[Progress] = []
    async with running_feed(services, buffer_size=1) as feed:
        async for item in feed.follow(ALICE, cook_id, after_seq=0):
            received.append(item)
            await asyncio.sleep(0.05)  # far slower than the cook: the buffer overflows
    seqs = [p.seq for p in received if p.event is not None]
    assert seqs == list(range(1, seqs[-1] + 1))
    assert received[-1].head.ended
    logged = [e.seq async for e in services.events.between(cook_id, 0, 10**6)]
    assert seqs == logged


async def test_closing_or_cancelling_a_subscription_leaves_nothing_behind(api: Api) -> None:
    services = services_of(api)
    cook_id = await new_cook(api, count=20, latency_ms=200)
    async with running_feed(services) as feed:
        closed = feed.follow(ALICE, cook_id, None)
        await anext(closed)

        async def consume() -> None:
            async for _ in feed.follow(ALICE, cook_id, None):
                pass

        cancelled = asyncio.create_task(consume())
        for _ in range(500):  # until the task has subscribed, however loaded the machine
            if feed.subscriber_count == 2:
                break
            await asyncio.sleep(0.01)
        assert feed.subscriber_count == 2
        await closed.aclose()
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        assert feed.subscriber_count == 0
        assert not feed._channels


@pytest.mark.usefixtures("external_tool")
async def test_a_seq_numbered_by_a_process_that_died_before_logging_it_comes_in_order(
    api: Api,
) -> None:
    """A relay that numbered a batch and died before writing it leaves the batch on the cook:
    the next relay writes it, and the subscriber gets it at its seq (nothing is skipped)."""
    services = services_of(api)
    collection = await api.create_collection(generator={"toolId": "external"})
    cook_id = (await start_cook(api, collection["id"], count=1))["id"]
    await services.orchestrator.idle()  # its piece is submitted: nothing else writes events
    await services.orchestrator.pause(ALICE, cook_id)
    cooks = services.events.db["cooks"]
    async with running_feed(services) as feed:
        follower = feed.follow(ALICE, cook_id, None)
        snapshot = await anext(follower)
        seq = snapshot.seq + 1
        event = {**recorded(EventType.PIECE_PROGRESS, detail="numbered, not written"), "seq": seq}
        # What the dead relay left: the seq taken together with its event, nothing logged.
        await cooks.update_one(
            {"_id": cook_id},
            {"$set": {"lastSeq": seq, "batch": [event], "unlogged": True}, "$inc": {"ver": 1}},
        )
        await services.events.stop()  # forget this process's view, as a restart would
        waiting = asyncio.create_task(anext(follower))
        await services.orchestrator.relay_all()  # the sweeper of any process (or this one's)
        delivered = await asyncio.wait_for(waiting, 5)
        await follower.aclose()
    assert delivered.seq == seq
    assert delivered.event is not None
    assert delivered.event.detail == "numbered, not written"
    logged = [e.seq async for e in services.events.between(cook_id, 0, 10**6)]
    assert logged == list(range(1, seq + 1))


@pytest.mark.usefixtures("external_tool")
async def test_an_event_recorded_by_a_process_that_died_before_relaying_it_is_relayed(
    api: Api,
) -> None:
    """A transition committed with its event in the piece's outbox, its process gone: any
    process's sweeper moves the event into the log, once."""
    services = services_of(api)
    collection = await api.create_collection(generator={"toolId": "external"})
    cook_id = (await start_cook(api, collection["id"], count=1))["id"]
    await services.orchestrator.idle()
    pieces = services.events.db["pieces"]
    piece = await pieces.find_one({"cookId": cook_id})
    assert piece is not None
    event = recorded(EventType.PIECE_PROGRESS, attempt=1, detail="recorded, not relayed")
    await pieces.update_one({"_id": piece["_id"]}, piece_outbox(cook_id, event))
    await services.events.stop()
    for _ in range(2):
        await services.orchestrator.relay_all()
    logged = [e async for e in services.events.between(cook_id, 0, 10**6)]
    assert [e.seq for e in logged] == list(range(1, len(logged) + 1))
    assert [e.detail for e in logged].count("recorded, not relayed") == 1
    after = await pieces.find_one({"_id": piece["_id"]})
    assert after is not None
    assert after["outbox"] == []
    assert "unlogged" not in after
