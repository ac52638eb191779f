"""How long a sweeper rests between passes: a tick while there is work, longer while there is
none.

Every process runs sweepers (the cook orchestrator's, the exporter's, the notifier's) that
find in the database whatever work any process left: they are the backstop that makes a
restart or a dead replica lose nothing. Passing every tick whatever they find, an idle
service read its database about a dozen times a tick (twenty passes a second in the test
suite: about 0.4 of a core between the API and the embedded server, for nothing).

A sweeper's ``Pace`` rests one tick after a pass that found work; after each pass that found
none, twice as long as after the one before, up to ``IDLE_TICKS`` ticks (4 s at the default
tick of 0.5 s). A new sweeper counts as idle: its first pass runs at once (whatever a dead
process left is found at the start), and if it finds nothing, the rest after it is the longest;
ramping up from one tick at a start with nothing under way was three more passes of every
sweeper in its first half second, for nothing. Work this process starts itself (a cook started
or resumed, an export, a delivery) calls ``wake``, which ends a long rest at once; work
another process left is found at the latest ``IDLE_TICKS`` ticks later. While anything is under
way (a cook running or paused, a run to poll, a lease to reap, an event to relay), every pass
finds it, so the pace stays at one tick. The pace is a hint about timing only: nothing is
decided by it.
"""

from __future__ import annotations

import asyncio
import contextlib

IDLE_TICKS = 8  # the longest rest of an idle sweeper, in ticks


class Pace:
    def __init__(self, tick_seconds: float, idle_ticks: int = IDLE_TICKS) -> None:
        self.tick_seconds = tick_seconds
        self.idle_ticks = idle_ticks
        self._idle_rest = idle_ticks  # ticks to rest after the next pass that finds nothing
        self._woken = asyncio.Event()

    def wake(self) -> None:
        """Work was started in this process: end a long rest now, and go back to ticks."""
        self._idle_rest = 1
        self._woken.set()

    def next_rest(self, busy: bool) -> float:
        """The rest after a pass that found work (``busy``) or found none."""
        if busy:
            self._idle_rest = 1
            return self.tick_seconds
        ticks = self._idle_rest  # 1, 2, 4, ... after work; the longest at the start
        self._idle_rest = min(ticks * 2, self.idle_ticks)
        return self.tick_seconds * ticks

    async def rest(self, busy: bool) -> None:
        """Rest after a pass. A rest of one tick is not cut short (a wake during a busy pass
        must not make the sweeper spin); a longer one ends at ``wake``."""
        seconds = self.next_rest(busy)
        self._woken.clear()
        if seconds <= self.tick_seconds:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), seconds)
