"""The progress feed's delivery rules, in process: lagging subscribers, holes, cleanup."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from domain.ids import AccountId
from domain.principal import Principal
from orchestration.cooking.events import EventType, entries, piece_outbox, recorded
from orchestration.cooking.progress import Progress, ProgressFeed
from orchestration.services import Services
from tests.api import OWNER, Api, start_cook, wait_for_cook, with_test_tool

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


async def one_piece_in_flight(api: Api) -> tuple[str, dict[str, Any]]:
    """A cook of one piece waiting on the external tool, and that piece's document."""
    collection = await api.create_collection(generator={"toolId": "external"})
    cook_id: str = (await start_cook(api, collection["id"], count=1))["id"]
    services = services_of(api)
    await services.orchestrator.idle()
    piece = await services.events.db["pieces"].find_one({"cookId": cook_id})
    assert piece is not None
    return cook_id, piece


async def assert_relayed_once(
    services: Services, cook_id: str, piece_id: str, details: list[str]
) -> None:
    """The log is 1..n and holds each detailed event once; the piece has nothing unrelayed."""
    logged = [e async for e in services.events.between(cook_id, 0, 10**6)]
    assert [e.seq for e in logged] == list(range(1, len(logged) + 1))
    for detail in details:
        assert [e.detail for e in logged].count(detail) == 1, detail
    after = await services.events.db["pieces"].find_one({"_id": piece_id})
    assert after is not None
    assert after.get("outbox", []) == []
    assert "unlogged" not in after


@pytest.mark.usefixtures("external_tool")
async def test_an_event_recorded_by_a_process_that_died_before_relaying_it_is_relayed(
    api: Api,
) -> None:
    """A transition committed with its event in the piece's outbox, its process gone: any
    process's sweeper moves the event into the log, once."""
    services = services_of(api)
    cook_id, piece = await one_piece_in_flight(api)
    pieces = services.events.db["pieces"]
    event = recorded(EventType.PIECE_PROGRESS, attempt=1, detail="recorded, not relayed")
    await pieces.update_one({"_id": piece["_id"]}, piece_outbox(cook_id, event))
    await services.events.stop()
    for _ in range(2):
        await services.orchestrator.relay_all()
    await assert_relayed_once(services, cook_id, piece["_id"], ["recorded, not relayed"])


@pytest.mark.usefixtures("external_tool")
async def test_an_event_recorded_while_the_relay_takes_the_outbox_is_logged_once_not_lost(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A piece's transition that lands between the relay's read of its outbox and the relay's
    clearing of it: the relayed events leave the outbox, the newer one stays for the next
    round, and the log gets each once."""
    services = services_of(api)
    cook_id, piece = await one_piece_in_flight(api)
    pieces = services.events.db["pieces"]
    first = recorded(EventType.PIECE_PROGRESS, attempt=1, detail="read by the relay")
    await pieces.update_one({"_id": piece["_id"]}, piece_outbox(cook_id, first))
    newer = recorded(EventType.PIECE_PROGRESS, attempt=1, detail="recorded meanwhile")
    pull = services.events._pull

    async def a_transition_comes_first(cook: str, keys: dict[str, list[str]]) -> None:
        if first["key"] in keys.get(piece["_id"], []):
            await pieces.update_one({"_id": piece["_id"]}, piece_outbox(cook_id, newer))
        await pull(cook, keys)

    monkeypatch.setattr(services.events, "_pull", a_transition_comes_first)
    await services.events.stop()
    for _ in range(2):
        await services.orchestrator.relay_all()
    details = ["read by the relay", "recorded meanwhile"]
    await assert_relayed_once(services, cook_id, piece["_id"], details)


EVENT_PAGE = """query($id: ID!, $a: Int!, $n: Int!) {
  cook(id: $id) { events(afterSeq: $a, first: $n) { seq type } } }"""


async def events_page(api: Api, cook_id: str, after: int, first: int) -> list[dict[str, Any]]:
    data = await api.data(EVENT_PAGE, {"id": cook_id, "a": after, "n": first})
    page: list[dict[str, Any]] = data["cook"]["events"]
    return page


async def test_events_page_from_any_seq_though_the_log_stores_them_a_relay_batch_at_a_time(
    api: Api,
) -> None:
    """A relay writes each batch of events as one log document; a page may start and end
    inside a batch, and pages read one after another give every event once, in order."""
    collection = await api.create_collection(**with_test_tool())
    cook = await start_cook(api, collection["id"], count=6, maxConcurrent=4)
    cook = await wait_for_cook(api, cook["id"])
    everything = await events_page(api, cook["id"], 0, 500)
    assert [e["seq"] for e in everything] == list(range(1, cook["lastSeq"] + 1))
    log = services_of(api).events.db["cook_events"]
    documents = await log.count_documents({"cookId": cook["id"]})
    assert documents < len(everything)  # some batch held several events
    for after in range(len(everything)):
        page = await events_page(api, cook["id"], after, 2)
        assert page == everything[after : after + 2], after


async def test_a_log_written_one_event_per_document_by_an_earlier_version_reads_the_same(
    api: Api,
) -> None:
    collection = await api.create_collection(**with_test_tool())
    cook = await start_cook(api, collection["id"], count=3)
    cook = await wait_for_cook(api, cook["id"])
    batched = await events_page(api, cook["id"], 0, 500)
    log = services_of(api).events.db["cook_events"]
    one_each = [
        {"_id": f"{cook['id']}:{e['seq']:010d}", "cookId": cook["id"], **e}
        async for d in log.find({"cookId": cook["id"]})
        for e in entries(d)
    ]
    await log.delete_many({"cookId": cook["id"]})
    await log.insert_many(one_each)
    assert await events_page(api, cook["id"], 0, 500) == batched
    assert await events_page(api, cook["id"], 1, 1) == batched[1:2]
