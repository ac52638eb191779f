"""Three API processes against one, under the same load: a cook, gallery readers paging its
collection, and cookProgress subscribers, spread over the processes (``tests/replica_load.py``,
the load ``tests/test_replicas_under_load.py`` runs, here without the kill).

    .venv/bin/python -m bench.replicas [--quick]

Reported as totals per second of the cook (pieces), the readers (pages) and the subscribers
(events received), with three processes as a ratio to one process in the same run. On a
2-core machine the processes share the cores with the embedded server and the clients, so the
ratio shows what replicas cost or buy on one machine, not on one each.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common import table
from tests.replica_load import Outcome, run_load


@dataclass(frozen=True)
class Load:
    pieces: int
    readers: int
    subscribers: int


QUICK = Load(pieces=12, readers=8, subscribers=20)
FULL = Load(pieces=60, readers=32, subscribers=100)
SMOKE = Load(pieces=4, readers=2, subscribers=2)  # python -m bench --smoke


def measure(load: Load) -> list[Outcome]:
    """One process, then three, each on a fresh database; fails on any invariant broken."""
    outcomes = []
    for processes in (1, 3):
        root = Path(tempfile.mkdtemp(prefix="cook-bench-replicas-"))
        try:
            outcome = run_load(
                root,
                processes=processes,
                count=load.pieces,
                readers=load.readers,
                subscribers=load.subscribers,
                kill=False,
            )
        finally:
            shutil.rmtree(root, ignore_errors=True)
        if outcome.problems:
            raise AssertionError(outcome.problems)
        outcomes.append(outcome)
    return outcomes


def report(outcomes: list[Outcome], load: Load) -> list[str]:
    one, three = outcomes
    rows = []
    for name, total in (
        ("cook pieces/s", lambda o: o.pieces / o.seconds),
        ("gallery pages/s (50 pieces each)", lambda o: o.pages / o.seconds),
        ("events received/s, all subscribers", lambda o: o.delivered / o.seconds),
    ):
        a, b = total(one), total(three)
        rows.append([name, f"{a:.1f}", f"{b:.1f}", f"{b / a:.2f}"])
    return [
        f"One cook of {load.pieces} pieces (test tool, 100 ms each, 6 at once, 20% failures), "
        f"{load.readers} gallery readers paging its collection and {load.subscribers} "
        "cookProgress subscribers, spread round-robin over the processes, all on one "
        "embedded database; every invariant of the crash tests checked afterwards "
        "(`tests/replica_load.py`). Totals over the cook's run:",
        "",
        *table(["total", "1 process", "3 processes", "3 / 1"], rows),
        "",
        f"Cook time: {one.seconds:.1f} s on one process, {three.seconds:.1f} s on three. "
        "The processes share this machine's 2 cores with the database and the clients.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    load = QUICK if args.quick else FULL
    print("\n".join(report(measure(load), load)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
