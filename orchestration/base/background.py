"""Work a process does in the background: it only makes things happen sooner.

Nothing here is authoritative: a task lost with its process is found again in the database by
the next tick of any process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any


def stop_if_cancelled() -> None:
    """In a loop that catches ``Exception`` to outlive one failed pass: stop if the task was
    cancelled meanwhile. A library may answer a cancellation with an error of its own (PyMongo
    closes the connection of an operation cancelled mid-reply and raises a network error), and
    the loop, catching it, went on resting and passing: the app's stop then waited for it
    forever (seen once in CI: the exporter's loop, "cancelling", resting again)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class Background:
    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[object]] = set()

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run ``coro`` in a task of its own (its result, if any, is dropped)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("background task failed", exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel every task and wait for each to finish its ``finally`` blocks, again for any
        task spawned meanwhile (a cancelled fill pass or completion may ask for a relay): none
        may outlive the stop and use the database client closed after it."""
        while pending := [t for t in self._tasks if not t.done()]:
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def idle(self) -> None:
        """Wait until no task is left (for tests). Waits on unfinished tasks only: a finished
        task leaves the set in a later loop iteration, and a task may spawn more meanwhile."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(pending)
