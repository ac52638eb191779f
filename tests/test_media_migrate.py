"""``cook media migrate``: every stored file copied to the other store, both ways, with the
migrating process killed (SIGKILL) in the middle and the command run again; everything reads
back identical from the new store, and a repeated run copies nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import sys
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from orchestration.storage.gridfs_media import GridFSMediaStore
from orchestration.storage.media import FileMediaStore, MediaStore
from orchestration.storage.media_migrate import sniff
from service.embedded_db import EmbeddedDatabase
from tests.layer_files import layer_png

ROOT = Path(__file__).resolve().parent.parent
COUNT = 16


def files() -> list[bytes]:
    """Images and archives alike (a store holds bytes, not kinds), of a few sizes."""
    made = [layer_png((i, 2 * i, 3 * i, 255)) for i in range(3)]
    made += [b"PK\x03\x04" + random.Random(i).randbytes(40_000 + 9_000 * i) for i in range(3)]
    made += [random.Random(100 + i).randbytes(70_000 + 5_000 * i) for i in range(COUNT - 6)]
    return made


async def migrate(env: dict[str, str], to: str, *, kill_after: int | None = None) -> list[str]:
    """Run ``cook media migrate --to <to>``; with ``kill_after``, SIGKILL it once it reported
    that many copied files. Returns its output lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service",
        "media",
        "migrate",
        "--to",
        to,
        cwd=ROOT,
        env={**os.environ, "COOK_LOG_LEVEL": "WARNING", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    while line := (await asyncio.wait_for(proc.stdout.readline(), 120)).decode():
        lines.append(line.rstrip("\n"))
        if kill_after is not None and sum(x.startswith("copied") for x in lines) == kill_after:
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
            return lines
    assert await proc.wait() == 0, "\n".join(lines)
    assert kill_after is None, "the run finished before it could be killed"
    return lines


async def contents(store: MediaStore) -> dict[str, bytes]:
    return {digest: await store.read(digest) async for digest in store.digests()}


async def test_cook_media_migrate_copies_every_file_both_ways_and_a_killed_run_is_resumed(
    embedded: EmbeddedDatabase, tmp_path: Path
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(embedded.uri, tz_aware=True)
    try:
        first = GridFSMediaStore(client["migrate_from"])
        await first.ensure_indexes()
        expected = {}
        for data in files():
            ref = await first.put(data, sniff(data))
            expected[ref.sha256] = data
        assert len(expected) == COUNT
        data_dir = tmp_path / "data"
        env = {"MONGODB_URI": embedded.uri, "COOK_DATA_DIR": str(data_dir)}

        # GridFS -> files: killed after two files, then run again to the end.
        to_files = {**env, "COOK_DB_NAME": "migrate_from"}
        await migrate(to_files, "filesystem", kill_after=2)
        files_store = FileMediaStore(data_dir / "media")
        partial = await contents(files_store)
        assert 2 <= len(partial) < COUNT, "killed in the middle"
        assert all(expected[d] == b for d, b in partial.items()), "only whole files, by name"
        lines = await migrate(to_files, "filesystem")
        assert await contents(files_store) == expected
        assert lines[-2].startswith("gridfs -> filesystem: ")
        assert f"{len(partial)} already there and verified, 0 failed" in lines[-2]
        again = await migrate(to_files, "filesystem")
        assert f"0 files copied (0 bytes), {COUNT} already there" in again[-2], "idempotent"

        # Files -> GridFS (another database): killed after two files, then run again.
        to_gridfs = {**env, "COOK_DB_NAME": "migrate_to"}
        await migrate(to_gridfs, "gridfs", kill_after=2)
        second = GridFSMediaStore(client["migrate_to"])
        partial = await contents(second)
        assert 2 <= len(partial) < COUNT, "killed in the middle"
        await migrate(to_gridfs, "gridfs")
        moved = await contents(second)
        assert moved == expected
        assert all(hashlib.sha256(b).hexdigest() == d for d, b in moved.items())
        kinds = {
            d["filename"]: d["metadata"]["contentType"]
            async for d in client["migrate_to"]["media.files"].find()
        }
        assert kinds[hashlib.sha256(files()[0]).hexdigest()] == "image/png"
        assert kinds[hashlib.sha256(files()[3]).hexdigest()] == "application/zip"
    finally:
        await client.close()
