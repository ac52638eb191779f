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
USER_PATH_HEADLINES = (
    "user-path cook pieces/s (",
    "gallery page req/s at 32 clients: ",
    "slot utilisation at 300 ms tool latency: ",
)


def run_bench(mode: str, out: Path) -> str:
    """``python -m bench <mode>``; the results it wrote, once it has checked their shape."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", mode, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,  # a loaded machine
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = out.read_text()
    opening = results.splitlines()[:7]
    assert opening[0] == "# Benchmark results", opening
    assert opening[2].startswith("pieces/s at the slowest size: "), opening
    assert opening[3].startswith("round trips per piece: "), opening
    assert opening[4].startswith("pieces/s at "), opening
    headlines = results.splitlines()[5:7]
    assert headlines[0].startswith("real images, layers tool / bare Pillow on every core: ")
    assert headlines[1].startswith("GridFS write MiB/s on the embedded server: ")
    users = results.splitlines()[7:11]
    for line, opening_words in zip(users, USER_PATH_HEADLINES, strict=False):
        assert line.startswith(opening_words), users
    assert " subscribers p99 / poll: " in users[3], users
    for number, title in enumerate(SECTIONS, start=1):
        assert f"## {number}. {title}" in results
    return results


def lost_by(results: str, subscribers: int) -> str:
    """The event benchmark's ``lost`` cell for its run with that many subscribers."""
    section = results.split("## 3. Event delivery")[1].split("## 4.")[0]
    [row] = [line for line in section.splitlines() if line.startswith(f"| {subscribers} | ")]
    return row.split("|")[-2].strip()


def test_every_benchmark_runs_at_its_smoke_size_and_writes_its_section(tmp_path: Path) -> None:
    results = run_bench("--smoke", tmp_path / "RESULTS.md")
    assert lost_by(results, 3) == "0", "the smoke event benchmark's 3 subscribers lost nothing"


@pytest.mark.soak
def test_every_benchmark_runs_in_quick_mode_and_writes_its_section(tmp_path: Path) -> None:
    results = run_bench("--quick", tmp_path / "RESULTS.md")
    assert results.splitlines()[4].startswith("pieces/s at 1,000 / at 100: ")
    assert lost_by(results, 50) == "0", "the quick event benchmark's 50 subscribers lost nothing"
