"""Three API processes on one database under load together: a cook, 32 gallery readers and
100 cookProgress subscribers spread over them, and one process SIGKILLed mid-cook and started
again. Every invariant the crash tests check holds, and the subscribers of the killed process
resume on another with afterSeq, missing no event and repeating none."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.replica_load import run_load

pytestmark = pytest.mark.slow

SOAK = os.environ.get("COOK_SOAK") == "1"


@pytest.mark.parametrize(
    ("count", "readers", "subscribers"),
    [
        pytest.param(24, 32, 100, id="short"),
        pytest.param(300, 32, 300, id="long", marks=pytest.mark.soak),
    ],
)
def test_three_replicas_under_readers_and_subscribers_survive_a_sigkill_with_every_invariant(
    tmp_path: Path, count: int, readers: int, subscribers: int
) -> None:
    outcome = run_load(
        tmp_path, processes=3, count=count, readers=readers, subscribers=subscribers, kill=True
    )
    print(
        f"{outcome.pieces} pieces in {outcome.seconds:.1f} s, {outcome.pages} gallery pages "
        f"({outcome.read_failures} failed at the kill), {outcome.delivered} events delivered"
    )
    assert outcome.problems == []
    lengths = {len(s.received) for s in outcome.subscribers}
    assert len(lengths) == 1, lengths
    [last] = lengths
    for sub in outcome.subscribers:
        assert sub.received == list(range(1, last + 1))  # every event once, in order
        assert sub.ended == "cook_completed"
    on_victim = [s for s in outcome.subscribers if s.first == outcome.victim]
    assert on_victim, "nobody followed the killed process"
    # Those that were on the killed process when it died went on elsewhere.
    moved = [s for s in on_victim if len(s.processes) > 1]
    assert moved, "no subscriber was cut off by the kill"
    for sub in moved:
        assert sub.processes[1] != outcome.victim
    assert outcome.pages > 0
