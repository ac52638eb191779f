"""An API process holds no more work in hand for a long cook than for a short one: the tasks it
keeps alive are bounded by the cook's slots, not by the pieces it has made.

Each completion waits for the relay of its event (``EventLog.relay``). Under a steady stream of
completions the relay goes round for as long as the cook runs; a completion that waited for
the relay to stop, rather than for the pass that took its event, stayed alive (its attempt,
piece, tool call and output with it) until the cook ended: memory grew with every piece.
"""

from __future__ import annotations

import asyncio
import statistics

from tests.api import Api, read_cook, start_cook, with_test_tool

PIECES = 240
SLOTS = 8
BOUND = 2 * SLOTS + 20  # per slot: its attempt; per cook: its fill and relay; the app's own


async def test_tasks_alive_during_a_long_cook_stay_bounded_by_its_slots(api: Api) -> None:
    collection = await api.create_collection(totalSupply=PIECES, **with_test_tool())
    cook = await start_cook(api, collection["id"], count=PIECES, maxConcurrent=SLOTS)
    samples: list[tuple[int, int]] = []  # (pieces completed, tasks alive)
    while True:
        found = await read_cook(api, cook["id"], "numbers { completed }")
        samples.append((found["numbers"]["completed"], len(asyncio.all_tasks())))
        if found["status"] != "RUNNING":
            break
        await asyncio.sleep(0.2)
    assert found["status"] == "COMPLETED"
    late = [alive for completed, alive in samples if completed >= PIECES // 3]
    assert late, samples
    # Before: about two tasks more per piece made (over 500 alive at the end of this cook).
    assert statistics.median(late) <= BOUND, samples
    assert max(late) < PIECES // 3, samples
