"""The sweepers rest longer while they find nothing, and go back to every tick as soon as there
is work: an idle service barely reads its database, a busy one is swept as before
(``orchestration/base/pace.py``)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pymongo import monitoring

from orchestration.base.pace import IDLE_TICKS, Pace
from service.settings import Settings
from tests.api import Api, start_cook

# Twice the other tests' tick (tests/conftest.py): a busy pass on a loaded machine can take a
# tick or more, and the counts below must still tell a pass every tick from an idle pace.
TICK = 0.1
# One command each sweeper sends on every pass, whatever it finds.
PASS_MARKS = {
    "orchestrator": ("find", "cooks", "status"),  # the active cooks
    "exporter": ("findAndModify", "exports", "$or"),  # a job to claim
    "notifier": ("findAndModify", "notification_deliveries", "status"),  # one to send
}


@dataclass
class Passes(monitoring.CommandListener):
    """Each sweeper's passes on one database, counted by the command it sends every pass."""

    database: str = ""
    seen: Counter[tuple[str, str, str]] = field(default_factory=Counter)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database:
            command = event.command
            target, query = (
                command.get(event.command_name),
                command.get("filter", command.get("query")),
            )
            if isinstance(target, str) and query:
                self.seen[(event.command_name, target, next(iter(query)))] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    async def over(self, seconds: float) -> dict[str, int]:
        """Each sweeper's passes during the next ``seconds``."""
        self.seen.clear()
        await asyncio.sleep(seconds)
        return {name: self.seen[mark] for name, mark in PASS_MARKS.items()}


PASSES = Passes()
monitoring.register(PASSES)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"tick_seconds": TICK})


@pytest.fixture
def passes(api: Api) -> Iterator[Passes]:
    PASSES.database = api.settings.db_name
    yield PASSES
    PASSES.database = ""


def test_a_pass_that_found_work_rests_a_tick_and_each_idle_one_twice_as_long_up_to_a_cap() -> None:
    pace = Pace(1.0)
    assert pace.next_rest(busy=True) == 1
    assert [pace.next_rest(busy=False) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert IDLE_TICKS == 8
    assert pace.next_rest(busy=True) == 1
    assert [pace.next_rest(busy=False) for _ in range(3)] == [1, 2, 4]
    pace.wake()
    assert pace.next_rest(busy=False) == 1


def test_a_new_sweeper_that_finds_nothing_rests_the_longest_at_once() -> None:
    pace = Pace(1.0)
    assert [pace.next_rest(busy=False) for _ in range(3)] == [8, 8, 8]
    pace.wake()
    assert pace.next_rest(busy=False) == 1


async def test_a_services_sweepers_pass_once_at_its_start_then_rest_while_nothing_is_under_way(
    passes: Passes,
) -> None:
    # The app has just started (a pass at once). Ramping up from a tick, each sweeper passed
    # four or five times in the next second (0.1, 0.2, 0.4, 0.8 s...); now at most twice.
    counted = await passes.over(1.0)
    assert all(count <= 2 for count in counted.values()), counted


async def test_a_wake_ends_a_long_rest_at_once_but_not_a_rest_of_one_tick() -> None:
    pace = Pace(0.2)
    for _ in range(3):
        pace.next_rest(busy=False)  # the next rest is 1.6 s
    asyncio.get_running_loop().call_later(0.05, pace.wake)
    began = time.monotonic()
    await pace.rest(busy=False)
    assert time.monotonic() - began < 0.4
    asyncio.get_running_loop().call_later(0.05, pace.wake)
    began = time.monotonic()
    await pace.rest(busy=True)  # one tick: a wake from the busy pass itself must not cut it
    assert time.monotonic() - began >= 0.19


async def test_an_idle_services_sweepers_pass_a_few_times_a_second_not_every_tick(
    passes: Passes,
) -> None:
    await asyncio.sleep(IDLE_TICKS * TICK * 3)  # past the first, shorter rests
    seconds = 1.0
    counted = await passes.over(seconds)
    every_tick = seconds / TICK  # 10: a pass every tick, as before the pace
    for name, count in counted.items():
        assert 1 <= count <= seconds / (IDLE_TICKS * TICK) + 1, (name, counted)
        assert count < every_tick / 4, (name, counted)


@pytest.mark.usefixtures("external_tool")
async def test_a_cook_started_on_an_idle_service_is_swept_every_tick_again(
    api: Api, passes: Passes
) -> None:
    await asyncio.sleep(IDLE_TICKS * TICK * 3)
    collection = await api.create_collection(
        generator={"toolId": "external"}, template={"prompt": "[[Animal]] #[[miladyid]]"}
    )
    await start_cook(api, collection["id"], count=3)  # its pieces stay in flight
    counted = await passes.over(2.0)
    # The orchestrator's sweeper finds the running cook on every pass: back to every tick
    # (20 in two seconds, fewer on a loaded machine), not the idle pace's 2 or 3.
    assert counted["orchestrator"] >= 6, counted
    # The others found nothing: still resting.
    assert counted["exporter"] <= 4, counted
