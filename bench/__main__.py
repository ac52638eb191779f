"""Every benchmark in one run, written to ``bench/RESULTS.md``.

    .venv/bin/python -m bench                 # full sizes (about 50 minutes on 2 cores)
    .venv/bin/python -m bench --quick --out /tmp/RESULTS.md    # small sizes (CI runs this)
    .venv/bin/python -m bench --smoke --out /tmp/RESULTS.md    # the least that runs every
                                                                # section (the default tests)
    .venv/bin/python -m bench --only 8,12 --out /tmp/part.md   # some sections, full sizes

Each figure is a ratio to a baseline measured in the same run, with the median and range of
its repetitions: times on a shared machine are noise, ratios much less so.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import (
    api_overhead,
    growth,
    layers,
    media_store,
    memory,
    observability,
    orchestrator_overhead,
    progress_latency,
    real_images,
    replicas,
    user_path,
    webhooks,
)


@dataclass(frozen=True)
class Sizes:
    cook_pieces: int
    cook_runs: int
    api_rounds: int
    api_seconds: float
    api_pieces: int
    api_stored: tuple[int, ...]
    subscribers: int
    event_pieces: int
    growth: list[int]
    memory_pieces: int
    memory_seconds: float
    composite_pieces: int
    layers_cook_pieces: int
    media_files: int
    media_bytes: int
    media_rounds: int
    export_images: int
    export_image_bytes: int
    real_pieces: int  # a layers cook at 1024x1024 on files
    real_gridfs_pieces: int  # the same on GridFS over the embedded server
    real_gridfs_files: int  # 4 MiB files written and read through GridFS alone
    real_traits: int  # per noisy category (three categories)
    real_badges: int  # small marks, a fourth category (more distinct images)
    cook_stored: tuple[int, ...] | None = None  # pieces stored beside a cook (None: by its size)
    floor_samples: int = orchestrator_overhead.FLOOR_SAMPLES  # of each engine command's floor
    real_size: int = real_images.SIZE  # the real images' layers, pixels a side


# fmt: off
FULL = Sizes(
    1000, 3, 3, 5.0, 100, (1000, 30_000), 1000, 20, [1000, 10_000, 30_000, 100_000], 10_000, 3600,
    20, 1000, 40, 2**20, 3, 1000, 2**17, 1000, 100, 16, 3, 40,
)
QUICK = Sizes(
    60, 1, 1, 1.0, 50, (100, 300), 50, 4, [100, 500], 10_000, 10, 3, 30, 8, 2**18, 1, 60, 2**14,
    8, 1, 1, 2, 4,
)
# Every section at its least, with the same code paths: that each still runs and writes its
# section (tests/test_benchmarks.py). Its figures mean nothing.
SMOKE = Sizes(
    8, 1, 1, 0.1, 10, (20,), 3, 2, [20, 40], 20, 2, 1, 4, 2, 2**12, 1, 4, 2**10,
    2, 1, 1, 1, 4, (20, 40), 5, 256,
)
# fmt: on
POLL_SECONDS = 0.1
PACKAGES = (
    "strawberry-graphql",
    "fastapi",
    "uvicorn",
    "pymongo",
    "mongoeco",
    "websockets",
    "pillow",
)


def machine() -> list[str]:
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in PACKAGES)
    return [
        f"- Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {platform.platform()}, {os.cpu_count()} CPUs, {memory_kib / 2**20:.0f} GiB",
        f"- Python {platform.python_version()}; {versions}",
        "- Database: the embedded mongoeco server over the wire (SQLite), one per benchmark.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for CI")
    parser.add_argument("--smoke", action="store_true", help="the least that runs every section")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument(
        "--only",
        type=lambda text: {int(n) for n in text.split(",")},
        default=None,
        help="comma-separated section numbers (default: every section)",
    )
    args = parser.parse_args(argv)

    def wanted(number: int) -> bool:
        return args.only is None or number in args.only

    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    began = time.monotonic()
    head = ["# Benchmark results", ""]
    top: list[str] = []  # the headline lines: the file opens with them
    lines = ["", *machine(), ""]
    if args.quick or args.smoke:
        lines += [
            f"{'Smoke' if args.smoke else 'Quick'} mode: small sizes, to keep the benchmarks "
            "running; not for conclusions.",
            "",
        ]
    if args.only is not None:
        lines += [f"Sections run: {', '.join(map(str, sorted(args.only)))} of 12.", ""]

    def write() -> None:
        args.out.write_text("\n".join([*head, *top, *lines]) + "\n")

    def section(title: str, body: list[str]) -> None:
        lines.extend([f"## {title}", "", *body, ""])
        write()  # a run cut short keeps what it measured
        print(f"{title}: done at {time.monotonic() - began:.0f} s", file=sys.stderr)

    lost = 0
    if wanted(1):
        stored = list(sizes.cook_stored) if sizes.cook_stored else None
        cooks = asyncio.run(
            orchestrator_overhead.measure(
                sizes.cook_pieces, sizes.cook_runs, stored, sizes.floor_samples
            )
        )
        top.extend(orchestrator_overhead.headline(cooks))
        section("1. Orchestrator overhead", orchestrator_overhead.report(cooks))
    if wanted(2):
        api = api_overhead.measure(
            sizes.api_rounds, sizes.api_seconds, sizes.api_pieces, sizes.api_stored
        )
        section("2. API overhead", api_overhead.report(api, sizes.api_rounds, sizes.api_seconds))
    if wanted(3):
        events = progress_latency.measure_all(
            sizes.subscribers, sizes.event_pieces, 150, POLL_SECONDS
        )
        lost += sum(r.lost for r in events)
        section("3. Event delivery", progress_latency.report(events, POLL_SECONDS))
    if wanted(4):
        grown = asyncio.run(growth.measure(sizes.growth))
        section("4. Growth", growth.report(grown))
    if wanted(5):
        samples = memory.measure(sizes.memory_pieces, sizes.memory_seconds)
        section("5. Memory", memory.report(samples, sizes.memory_pieces))
    if wanted(6):
        composite = asyncio.run(layers.measure_composite(sizes.composite_pieces))
        rate = asyncio.run(layers.measure_cook(sizes.layers_cook_pieces))
        section("6. Layers", layers.report(composite, rate))
    if wanted(7):
        throughput = media_store.measure_throughput(
            sizes.media_files, sizes.media_bytes, sizes.media_rounds
        )
        exporting = media_store.measure_export(sizes.export_images, sizes.export_image_bytes)
        section("7. Media store", media_store.report(throughput, exporting))
    if wanted(8):
        real = real_images.measure(
            sizes.real_pieces,
            sizes.real_gridfs_pieces,
            sizes.real_gridfs_files,
            sizes.real_traits,
            sizes.real_badges,
            sizes.real_size,
        )
        top.extend(real_images.headline(real))
        section("8. Real images", real_images.report(real))
    if wanted(9):
        replica_load = (
            replicas.SMOKE if args.smoke else replicas.QUICK if args.quick else replicas.FULL
        )
        section("9. Replicas", replicas.report(replicas.measure(replica_load), replica_load))
    if wanted(10):
        hooks = webhooks.SMOKE if args.smoke else webhooks.QUICK if args.quick else webhooks.FULL
        section("10. Outbound webhooks", webhooks.report(asyncio.run(webhooks.measure(*hooks))))
    if wanted(11):
        observed = observability.measure(
            *((10, 1, 3) if args.smoke else (40, 3, 15) if args.quick else (100, 9, 100))
        )
        section("11. Observability", observability.report(observed))
    if wanted(12):
        users = user_path.measure(
            user_path.SMOKE if args.smoke else user_path.QUICK if args.quick else user_path.FULL
        )
        lost += users.lost
        top.extend(user_path.headline(users))
        section("12. As users meet it", user_path.report(users))
    lines.append(f"Total time: {time.monotonic() - began:.0f} s.")
    write()
    print(f"wrote {args.out}", file=sys.stderr)
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
