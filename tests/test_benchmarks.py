"""The benchmarks' quick mode, so they never rot: every section runs, and no event is lost."""

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
)


def test_every_benchmark_runs_in_quick_mode_and_writes_its_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,  # GridFS on the embedded server: minutes until its writes are fast
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = out.read_text()
    opening = results.splitlines()[:7]
    assert opening[0] == "# Benchmark results", opening
    assert opening[2].startswith("pieces/s at the slowest size: "), opening
    assert opening[3].startswith("round trips per piece: "), opening
    assert opening[4].startswith("pieces/s at 1,000 / at 100: "), opening
    headlines = results.splitlines()[5:7]
    assert headlines[0].startswith("real images, layers tool / bare Pillow on every core: ")
    assert headlines[1].startswith("GridFS write MiB/s on the embedded server: ")
    for number, title in enumerate(SECTIONS, start=1):
        assert f"## {number}. {title}" in results
    assert "| 50 |" in results, "the quick event benchmark's 50 subscribers lost nothing"
