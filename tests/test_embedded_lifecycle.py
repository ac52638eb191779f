"""The embedded server's lifecycle: it dies with the process that started it, one data
directory never has two servers, and shutdown with the database down is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.embedded_db import IN_USE_EXIT, DataDirInUse, EmbeddedDatabase
from tests.processes import api_process_handle

SHUTDOWN_BOUND = 10.0  # seconds; it took 30.6 s (pymongo waiting to end its sessions)


def servers_on(data_dir: Path) -> list[int]:
    """Pids of embedded servers (``python -m service db``) running on ``data_dir``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"service" in argv and b"db" in argv and str(data_dir).encode() in argv:
            found.append(int(entry))
    return found


def wait_for(condition: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def without_uri() -> dict[str, str]:
    return {"MONGODB_URI": ""} if "MONGODB_URI" in os.environ else {}


def test_a_sigkilled_cook_serve_leaves_no_embedded_server_on_its_data_directory(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with api_process_handle(without_uri(), data, tmp_path / "first.log") as (_, proc):
        assert len(servers_on(data / "db")) == 1
        proc.kill()
        proc.wait()
        assert wait_for(lambda: not servers_on(data / "db"), 10), servers_on(data / "db")
    # and the next cook serve starts on the directory, with exactly one server again
    with api_process_handle(without_uri(), data, tmp_path / "second.log"):
        assert len(servers_on(data / "db")) == 1


def test_a_second_server_on_a_data_directory_in_use_is_refused(tmp_path: Path) -> None:
    with EmbeddedDatabase(tmp_path / "data" / "db") as running:
        assert running.process is not None
        with pytest.raises(DataDirInUse, match="in use"):
            EmbeddedDatabase(tmp_path / "data" / "db").start()
        env = {**os.environ, "COOK_DATA_DIR": str(tmp_path / "data"), **without_uri()}
        for command in (["db"], ["serve", "--port", "0"]):
            refused = subprocess.run(
                [sys.executable, "-m", "service", *command],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert refused.returncode == IN_USE_EXIT, refused
            assert "in use by another embedded database server" in refused.stderr
            assert f"pid {running.process.pid}" in refused.stderr
        assert servers_on(tmp_path / "data" / "db") == [running.process.pid]


def test_with_the_database_down_sigterm_stops_cook_serve_within_seconds(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with api_process_handle(without_uri(), data, tmp_path / "api.log") as (_, proc):
        (server,) = servers_on(data / "db")
        os.kill(server, signal.SIGKILL)
        assert wait_for(lambda: not servers_on(data / "db"), 10)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        took = time.monotonic() - began
    assert took < SHUTDOWN_BOUND, f"cook serve took {took:.1f} s to stop"
