"""SingleFlight: callers asking at once share one read; nothing is kept afterwards."""

from __future__ import annotations

import asyncio

import pytest

from orchestration.base.single_flight import SingleFlight


async def test_callers_asking_at_once_share_one_read_and_a_later_caller_reads_again() -> None:
    reads = 0

    async def read() -> int:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return reads

    flight: SingleFlight[str, int] = SingleFlight()
    together = await asyncio.gather(*(flight.run("k", read) for _ in range(100)))
    assert together == [1] * 100
    assert await flight.run("k", read) == 2


async def test_a_failed_read_reaches_every_caller_and_is_not_kept() -> None:
    async def broken() -> int:
        await asyncio.sleep(0.01)
        raise LookupError("gone")

    flight: SingleFlight[str, int] = SingleFlight()
    results = await asyncio.gather(
        *(flight.run("k", broken) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, LookupError) for r in results)

    async def fine() -> int:
        return 7

    assert await flight.run("k", fine) == 7


async def test_a_caller_that_gives_up_does_not_cancel_the_read_for_the_others() -> None:
    async def slow() -> int:
        await asyncio.sleep(0.05)
        return 1

    flight: SingleFlight[str, int] = SingleFlight()
    impatient = asyncio.create_task(flight.run("k", slow))
    patient = asyncio.create_task(flight.run("k", slow))
    await asyncio.sleep(0.01)
    impatient.cancel()
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert await patient == 1
