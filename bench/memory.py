"""Memory: the resident set of an API process while a long cook runs.

No cook state lives in memory, so the resident set should stay flat however many pieces the
cook has made. One ``cook serve`` process on a fresh embedded database runs a cook of N pieces
with the instant test tool; its VmRSS (from /proc) is sampled every second until the cook ends
(a full run waits for the whole 10,000-piece cook; a cook still running after ``seconds`` is
cancelled, which quick mode uses).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import PROCESS_ENV, embedded, owner_token, table
from tests.api import collection_input
from tests.processes import api_process_handle, gql

COOK = "query($id: ID!) { cook(id: $id) { status numbers { completed } } }"
CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }"
START = (
    "mutation($c: ID!, $n: Int!) "
    "{ startCook(collectionId: $c, count: $n, maxConcurrent: 8) { id } }"
)
CANCEL = "mutation($id: ID!) { cancelCook(id: $id) { id } }"


@dataclass(frozen=True)
class Sample:
    completed: int
    rss_mib: float
    seconds: float


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def measure(pieces: int, seconds: float) -> list[Sample]:
    with embedded() as (db, root):
        env = {"MONGODB_URI": db.uri, "COOK_TICK_SECONDS": "0.05", **PROCESS_ENV}
        data = root / "data"
        with api_process_handle(env, data, root / "api.log") as (base, proc):
            token = owner_token(data)
            spec = collection_input(
                totalSupply=pieces, generator={"toolId": "test"}, template={"p": "[[Animal]]"}
            )
            collection = gql(base, token, CREATE, {"i": spec})["createCollection"]["id"]
            began = time.monotonic()
            cook = gql(base, token, START, {"c": collection, "n": pieces})["startCook"]["id"]
            samples = [Sample(0, rss_mib(proc.pid), 0.0)]
            while True:
                time.sleep(1.0)
                found = gql(base, token, COOK, {"id": cook})["cook"]
                done = found["numbers"]["completed"]
                samples.append(Sample(done, rss_mib(proc.pid), time.monotonic() - began))
                if found["status"] != "RUNNING":
                    return samples
                if time.monotonic() - began > seconds:
                    gql(base, token, CANCEL, {"id": cook})
                    return samples


def report(samples: list[Sample], pieces: int) -> list[str]:
    made = samples[-1].completed

    def at(fraction: float) -> Sample:
        return next(s for s in samples if s.completed >= fraction * made)

    quarter, half, last = at(0.25), at(0.5), samples[-1]
    growth = (last.rss_mib - quarter.rss_mib) / max(1, last.completed - quarter.completed) * 1000
    rows = [
        [f"{s.completed:,}", f"{s.rss_mib:.1f}", f"{s.seconds:.0f}"]
        for s in (samples[0], quarter, half, last)
    ]
    return [
        f"One API process running a cook of {pieces:,} pieces (instant test tool, "
        f"`maxConcurrent` 8), sampled every second for {last.seconds:.0f} s, in which "
        f"{made:,} pieces completed (peak {max(s.rss_mib for s in samples):.1f} MiB).",
        "",
        *table(["pieces completed", "RSS MiB", "seconds"], rows),
        "",
        f"From a quarter of those pieces to the last: {growth:+.2f} MiB per 1,000 pieces.",
    ]


if __name__ == "__main__":
    print("\n".join(report(measure(10_000, 60), 10_000)))
