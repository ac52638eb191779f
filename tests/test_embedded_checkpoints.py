"""Checkpoints off the write path (``service/embedded_checkpoints.py``), and the allocator of
processes that move large buffers (``service/allocator.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mongoeco import MongoClient as DirectClient

from service.embedded_checkpoints import BACKSTOP_PAGES, POLL_SECONDS, CheckpointedEngine

WRITE_BYTES = 2 * 2**20  # well under the writers' backstop (BACKSTOP_PAGES of 4 KiB)


def database_file_grows(path: Path, before: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.stat().st_size >= before + WRITE_BYTES:
            return True
        time.sleep(POLL_SECONDS)
    return False


@pytest.mark.parametrize("background", [True, False], ids=["thread", "no-thread"])
def test_a_write_reaches_the_database_file_by_the_thread_and_not_by_the_writer(
    tmp_path: Path, background: bool
) -> None:
    assert WRITE_BYTES < BACKSTOP_PAGES * 4096 // 4
    path = tmp_path / "cook.sqlite3"
    engine = CheckpointedEngine(str(path))
    engine.cook_background_checkpoints = background
    client = DirectClient(engine=engine)
    try:
        collection = client.db.files
        collection.insert_one({"_id": 0})
        time.sleep(5 * POLL_SECONDS)  # the first commits' checkpoint, if any, is taken
        before = path.stat().st_size
        collection.insert_one({"_id": 1, "data": os.urandom(WRITE_BYTES // 2)})  # hex: twice
        # Without the thread the write stays in the log (it is below the size at which a
        # writer checkpoints). With it, the database file takes the pages soon after.
        assert database_file_grows(path, before, within=3.0 if background else 1.0) is background
        assert collection.find_one({"_id": 1}, {"_id": 1}) == {"_id": 1}
    finally:
        client.close()


def test_the_checkpoint_thread_ends_with_the_engines_last_connection(tmp_path: Path) -> None:
    def checkpointers() -> int:
        return sum(t.name == "cook-wal-checkpoints" for t in threading.enumerate())

    already = checkpointers()
    client = DirectClient(engine=CheckpointedEngine(str(tmp_path / "cook.sqlite3")))
    client.db.files.insert_one({"_id": 1})
    assert checkpointers() == already + 1
    client.close()
    assert checkpointers() == already


FAULTS = """
import resource, sys
from service.allocator import keep_large_buffers
if sys.argv[1] == "kept":
    assert keep_large_buffers()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for i in range(200):
    buffer = bytes(520_000) + bytes([i % 256])  # a chunk's JSON text: made, used, freed
    del buffer
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_a_process_that_keeps_large_buffers_does_not_fault_in_fresh_pages_for_each() -> None:
    def faults(mode: str) -> int:
        done = subprocess.run(
            [sys.executable, "-c", FAULTS, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parents[1],
        )
        return int(done.stdout)

    pages_per_buffer = 520_000 // 4096
    assert faults("default") > 50 * pages_per_buffer  # glibc maps each one anew
    assert faults("kept") < 10 * pages_per_buffer  # the first few, then reused
