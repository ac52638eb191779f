"""The progress feed's delivery rules, in process: lagging subscribers, holes, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from domain.ids import AccountId
from domain.principal import Principal
from orchestration import progress
from orchestration.events import EventType
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
        await asyncio.sleep(0.1)
        assert feed.subscriber_count == 2
        await closed.aclose()
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        assert feed.subscriber_count == 0
        assert not feed._channels


@pytest.mark.usefixtures("external_tool")
async def test_a_seq_whose_event_never_comes_is_skipped_after_a_grace_period(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that died between taking a seq and writing its event leaves a hole."""
    monkeypatch.setattr(progress, "GAP_GRACE_SECONDS", 0.2)
    services = services_of(api)
    collection = await api.create_collection(generator={"toolId": "external"})
    cook_id = (await start_cook(api, collection["id"], count=1))["id"]
    await services.orchestrator.idle()  # its piece is submitted: nothing else writes events
    await services.orchestrator.pause(ALICE, cook_id)
    async with running_feed(services) as feed:
        follower = feed.follow(ALICE, cook_id, None)
        await anext(follower)
        hole = await services.events.next_seq(cook_id)  # taken, never written
        await services.events.append(cook_id, EventType.PIECE_REJECTED, detail="after the hole")
        delivered: list[Progress] = []
        while not delivered or delivered[-1].seq <= hole:
            delivered.append(await asyncio.wait_for(anext(follower), 5))
        await follower.aclose()
    assert hole not in [p.seq for p in delivered]
    assert delivered[-1].seq == hole + 1
    assert delivered[-1].event is not None
    assert delivered[-1].event.detail == "after the hole"
