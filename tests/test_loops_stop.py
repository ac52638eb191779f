"""The app's forever-loops stop when cancelled, even when what they await answers the
cancellation with an error of its own (as PyMongo does for an operation cancelled mid-reply):
each loop catches ``Exception`` to outlive one failed pass, and used to go on resting and
passing, so the app's stop waited for it forever (``orchestration/base/background.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.api import Api


class Converting:
    """A pass that, cancelled, raises a library's error instead (while ``on``)."""

    on = True

    async def __call__(self, *_: Any) -> Any:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if self.on:
                raise ConnectionResetError("connection closed mid-reply") from None
            raise


LOOPS: dict[str, Callable[[Api], tuple[Any, str]]] = {
    "orchestrator": lambda api: (api.app.state.runtime.services.orchestrator, "tick"),
    "exporter": lambda api: (api.app.state.runtime.services.exports, "tick"),
    "progress feed": lambda api: (api.app.state.runtime.services.feed, "poll_once"),
}


@pytest.mark.parametrize("name", LOOPS)
async def test_a_loop_stops_when_cancelled_though_its_pass_turns_the_cancellation_into_an_error(
    api: Api, name: str
) -> None:
    shared, method = LOOPS[name](api)
    owner = copy.copy(shared)  # its own loop: the app's keeps its own pass
    converting = Converting()
    setattr(owner, method, converting)
    if name == "progress feed":
        owner._nudge.set()  # its pass comes at once, not after its poll interval
    loop = asyncio.create_task(owner.run())
    await asyncio.sleep(0.2)  # inside its pass
    loop.cancel()
    try:
        done, _ = await asyncio.wait({loop}, timeout=3)
        assert done, f"the {name}'s loop went on after it was cancelled"
        assert loop.cancelled()
    finally:  # a loop that went on is stopped here, so that the test ends
        converting.on = False
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
