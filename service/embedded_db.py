"""The embedded MongoDB-compatible server: mongoeco's wire server on SQLite, in its own process.

The API never runs the engine in its own event loop (the engine's work blocks the loop); it
spawns ``python -m service db`` and talks to it over a real connection, as to MongoDB.

Narrowly scoped fixes live in ``FlatInsertSQLiteEngine``, pinned to the exact mongoeco
version (4.11.0): inserts that scanned the whole collection now look up by index, and the
change-event dispatch, which no wire client can consume, is off. ``tests/test_embedded_db.py``
proves duplicates are still refused, insert latency stays flat as a collection grows, and reads
never fail beside writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
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
from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.engines.sqlite_query import json_path_for_field
from mongoeco.wire import AsyncMongoEcoProxyServer
from pymongo import MongoClient

log = logging.getLogger(__name__)

PATCHED_MONGOECO_VERSION = "4.11.0"
DATABASE_FILE = "cook.sqlite3"


class FlatInsertSQLiteEngine(SQLiteEngine):
    """SQLiteEngine whose inserts stay O(log n) as a collection grows.

    Two scans made each insert linear in the collection's size:

    1. the ``_id`` scan described in the module docstring, skipped for non-numeric ``_id``s;
    2. for every unique index, a check whether any stored document holds an array at the
       indexed field (``json_type(document, path) = 'array'``). Its result is cached, but every
       write clears the cache, so each insert re-ran a full-table scan per unique index. Here
       SQLite gets an expression index on exactly that expression, so the same query (same
       answer) becomes an index lookup. The index is plain SQLite metadata: it changes no
       result, and a file written with it opens fine without it.
    """

    def _validate_document_against_unique_indexes(
        self,
        db_name: str,
        coll_name: str,
        document: dict[str, Any],
        *,
        exclude_storage_key: str | None = None,
        skip_id_check: bool = False,
        scan_payload_id: bool = False,
    ) -> None:
        if scan_payload_id and not id_contains_numeric_value(document.get("_id")):
            scan_payload_id = False
        self._ensure_array_probe_indexes(db_name, coll_name)
        super()._validate_document_against_unique_indexes(
            db_name,
            coll_name,
            document,
            exclude_storage_key=exclude_storage_key,
            skip_id_check=skip_id_check,
            scan_payload_id=scan_payload_id,
        )

    def _ensure_array_probe_indexes(self, db_name: str, coll_name: str) -> None:
        """Give SQLite an index on ``json_type(document, path)`` for every unique index field.

        Runs only here, on the write path, inside the insert's own write transaction: a read
        path must never write (in WAL mode a read transaction cannot become a write one once
        the file has moved on, and SQLite then answers "database is locked" at once). Not
        remembered in memory either: a write that rolls back also rolls back this DDL, and
        ``IF NOT EXISTS`` costs a schema lookup when the index is already there.
        """
        conn = self._require_connection()
        for index in self._load_indexes(db_name, coll_name):
            if not index.get("unique"):
                continue
            for field in index["fields"]:
                path = json_path_for_field(field)
                name = "cook_array_probe_" + hashlib.sha256(path.encode()).hexdigest()[:16]
                literal = "'" + path.replace("'", "''") + "'"
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {name} "
                    f"ON documents (db_name, coll_name, json_type(document, {literal}))"
                )

    def dispatch_committed_changes(self, consumer_id: str, consumer: object) -> None:
        """Deliver nothing: over the wire nobody can consume change events.

        mongoeco dispatches every committed write to in-process change-stream consumers under
        a lease, acquired in a loop that sleeps on the server's event loop. Over the wire
        ``watch()`` is unsupported, so the dispatch is pure cost, and a lease left behind (a
        release that failed) froze every insert of the whole server for up to its 30 s TTL.
        The outbox itself stays bounded by mongoeco's own compaction (10,000 entries).
        """


def insert_fix_applies() -> bool:
    """The fix overrides a private method, so it is only used on the version it was made for."""
    return mongoeco.__version__ == PATCHED_MONGOECO_VERSION


def make_engine(data_dir: Path) -> Any:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = str(data_dir / DATABASE_FILE)
    if insert_fix_applies():
        return FlatInsertSQLiteEngine(path)
    log.warning(
        "mongoeco %s is not %s: inserts are O(collection size) without the fix",
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
