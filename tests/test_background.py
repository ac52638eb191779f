"""A process's background work stops whole: nothing it spawned outlives ``Background.stop``
(a task left running would use the database client the app closes next)."""

from __future__ import annotations

import asyncio
import logging

from orchestration.base.background import Background


async def test_a_task_spawned_while_stopping_is_stopped_too() -> None:
    background = Background(logging.getLogger("test"))
    late: list[asyncio.Task[None]] = []

    async def forever() -> None:
        await asyncio.Event().wait()

    async def asks_for_more_when_cancelled() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            background.spawn(forever())  # as a cancelled fill pass may ask for a relay
            late.extend(t for t in asyncio.all_tasks() if t.get_coro().__name__ == "forever")

    background.spawn(asks_for_more_when_cancelled())
    await asyncio.sleep(0)
    await background.stop()
    assert late, "the cancelled task spawned another"
    assert all(t.done() for t in late), "a task spawned while stopping outlived the stop"
