"""The embedded MongoDB-compatible server: mongoeco's wire server on SQLite, in its own process.

The API never runs the engine in its own event loop (the engine's work blocks the loop); it
spawns ``python -m service db`` and talks to it over a real connection, as to MongoDB.

Narrowly scoped fixes live in ``service/embedded_engine.py`` (``IndexedReadsEngine``, on
``FlatInsertSQLiteEngine``), pinned to the exact mongoeco version (4.11.0): inserts and reads
that scanned the whole collection now use indexes, and the change-event dispatch, which no
wire client can consume, is off. ``tests/test_embedded_db.py`` proves duplicates are still
refused, insert latency stays flat as a collection grows, and reads never fail beside writes;
``tests/test_embedded_engine.py`` that reads return what the unpatched engine returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mongoeco
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer
from pymongo import MongoClient

log = logging.getLogger(__name__)

PATCHED_MONGOECO_VERSION = "4.11.0"
DATABASE_FILE = "cook.sqlite3"


def insert_fix_applies() -> bool:
    """The fixes override private methods, so they are only used on the version they were made
    for (``tests/test_embedded_db.py`` fails on any other)."""
    return mongoeco.__version__ == PATCHED_MONGOECO_VERSION


def make_engine(data_dir: Path) -> Any:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = str(data_dir / DATABASE_FILE)
    if insert_fix_applies():
        from service.embedded_engine import IndexedReadsEngine  # imports private modules

        return IndexedReadsEngine(path)
    log.warning(
        "mongoeco %s is not %s: inserts and reads are O(collection size) without the fixes",
        mongoeco.__version__,
        PATCHED_MONGOECO_VERSION,
    )
    return SQLiteEngine(path)


async def serve(data_dir: Path, host: str, port: int, address_file: Path | None) -> None:
    """Run the wire server until SIGTERM or SIGINT; announce its address in ``address_file``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncMongoEcoProxyServer(engine=make_engine(data_dir), host=host, port=port) as srv:
        address = srv.address
        uri = f"mongodb://{address.host}:{address.port}/?directConnection=true"
        if address_file is not None:
            tmp = address_file.with_suffix(".tmp")
            tmp.write_text(uri)
            tmp.replace(address_file)
        log.info("embedded database serving %s at %s", data_dir, uri)
        await stop.wait()


@dataclass
class EmbeddedDatabase:
    """A child process running the embedded server; ``uri`` is set once it answers."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    startup_timeout: float = 30.0
    process: subprocess.Popen[bytes] | None = None
    uri: str = ""

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        address_file = self.data_dir / f"address-{os.getpid()}-{time.monotonic_ns()}"
        address_file.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "db",
                "--data-dir",
                str(self.data_dir),
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--address-file",
                str(address_file),
            ],
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        try:
            while not address_file.exists():
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"the embedded database exited with code {self.process.returncode}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError("the embedded database did not start in time")
                time.sleep(0.05)
            self.uri = address_file.read_text()
        finally:
            address_file.unlink(missing_ok=True)
        wait_until_answering(self.uri, deadline - time.monotonic())
        return self.uri

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (used by crash tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> EmbeddedDatabase:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until_answering(uri: str, timeout: float) -> None:
    deadline = time.monotonic() + max(timeout, 0.1)
    last: Exception | None = None
    while time.monotonic() < deadline:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=500)
        try:
            client.admin.command("ping")
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last = exc
            time.sleep(0.1)
        finally:
            with contextlib.suppress(Exception):
                client.close()
    raise TimeoutError(f"the embedded database at {uri} did not answer: {last}")
