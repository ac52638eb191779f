"""The benchmarks' quick modes, so they never rot: each must run and lose nothing."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_the_progress_latency_benchmark_runs_in_quick_mode_and_loses_no_message() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.progress_latency", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 50 |" in done.stdout, done.stdout
