"""The benchmarks never rot: every section runs and writes its section, its headlines open the
file, and no event is lost. The default run uses the smoke sizes (``python -m bench --smoke``,
the least that runs each section's code); the quick sizes CI's figures come from run under
``COOK_SOAK=1``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SECTIONS = (
    "Orchestrator overhead",
    "API overhead",
    "Event delivery",
    "Growth",
    "Memory",
    "Layers",
    "Media store",
    "Real images",
    "Replicas",
    "Outbound webhooks",
    "Observability",
    "As users meet it",
)
# The lines each section puts at the top of the file (in section order), as they begin.
HEADLINES: dict[int, tuple[str, ...]] = {
    1: ("pieces/s at the slowest size: ", "round trips per piece: ", "pieces/s at "),
    8: (
        "real images, layers tool / bare Pillow on every core: ",
        "GridFS write MiB/s on the embedded server: ",
    ),
    12: (
        "user-path cook pieces/s (",
        "gallery page req/s at 32 clients: ",
        "slot utilisation at 300 ms tool latency: ",
        "",  # "1,000 subscribers p99 / poll: X", checked below
    ),
}
# The smoke run in three parts of about a third of its time each, so that they run side by
# side on the test workers.
PARTS = ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12))


def run_bench(mode: str, out: Path, only: tuple[int, ...] | None = None) -> str:
    """``python -m bench <mode>`` (its sections ``only``, or all); the results it wrote, once
    it has checked their shape."""
    command = [sys.executable, "-m", "bench", mode, "--out", str(out)]
    if only is not None:
        command += ["--only", ",".join(map(str, only))]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=1200,  # a loaded machine
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = out.read_text()
    lines = results.splitlines()
    assert lines[0] == "# Benchmark results", lines[:3]
    numbers = only or tuple(range(1, len(SECTIONS) + 1))
    expected = [start for n in numbers for start in HEADLINES.get(n, ())]
    opening = lines[2 : 2 + len(expected)]
    assert [line[: len(start)] for line, start in zip(opening, expected, strict=True)] == expected
    if 12 in numbers:
        assert " subscribers p99 / poll: " in opening[-1], opening
    for number in numbers:
        assert f"## {number}. {SECTIONS[number - 1]}" in results
    return results


def lost_by(results: str, subscribers: int) -> str:
    """The event benchmark's ``lost`` cell for its run with that many subscribers."""
    section = results.split("## 3. Event delivery")[1].split("## 4.")[0]
    [row] = [line for line in section.splitlines() if line.startswith(f"| {subscribers} | ")]
    return row.split("|")[-2].strip()


@pytest.mark.parametrize("part", PARTS, ids=lambda part: f"sections {part[0]}-{part[-1]}")
def test_every_benchmark_runs_at_its_smoke_size_and_writes_its_section(
    tmp_path: Path, part: tuple[int, ...]
) -> None:
    results = run_bench("--smoke", tmp_path / "RESULTS.md", part)
    if 3 in part:
        assert lost_by(results, 3) == "0", "the smoke event benchmark's 3 subscribers lost nothing"


def test_the_parts_cover_every_section() -> None:
    assert sorted(n for part in PARTS for n in part) == list(range(1, len(SECTIONS) + 1))


@pytest.mark.soak
def test_every_benchmark_runs_in_quick_mode_and_writes_its_section(tmp_path: Path) -> None:
    results = run_bench("--quick", tmp_path / "RESULTS.md")  # the whole file, every section
    assert results.splitlines()[4].startswith("pieces/s at 1,000 / at 100: ")
    assert lost_by(results, 50) == "0", "the quick event benchmark's 50 subscribers lost nothing"
