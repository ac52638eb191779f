"""Checkpoints of the embedded engine's WAL taken by a thread of their own (mongoeco 4.11.0).

9. **Checkpoints off the write path.** mongoeco opens SQLite in WAL mode with SQLite's
   default automatic checkpoint: the commit that takes the log past 1,000 pages (4 MB) copies
   the log into the database file and syncs it, before its write is answered. With GridFS
   chunks (~520 KB of text each) that was every second round trip of a file being stored, and
   about a tenth of the server's CPU on that path, all of it in the writer's latency.

   ``CheckpointedEngine`` runs SQLite's PASSIVE checkpoint on a connection and a thread of
   its own, soon after any connection commits (it polls ``PRAGMA data_version``, which
   changes exactly when another connection has committed, every ``POLL_SECONDS``). A PASSIVE
   checkpoint takes no lock a writer or reader needs: it copies what no reader still needs
   and leaves the rest for the next one. Each connection keeps an automatic checkpoint, at
   ``BACKSTOP_PAGES`` (16 MiB), for a log that grows faster than the thread copies it.

   Durability is SQLite's WAL as before: a commit is in the log when it is answered (with
   ``synchronous=NORMAL``, durable at the next sync), and a crash at any point is recovered
   from the log at the next open. The thread starts with the engine's first connection and is
   stopped and joined with its last.

``tests/test_embedded_checkpoints.py`` shows the database file taking a write's pages without
any writer checkpointing (and not taking them with the thread switched off), and the thread
ending with the engine.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from service.embedded_index_builds import IndexBuildsEngine

log = logging.getLogger("service.embedded_db")

POLL_SECONDS = 0.05
BACKSTOP_PAGES = 4096  # 16 MiB of 4 KiB pages: a writer checkpoints only past this


class CheckpointedEngine(IndexBuildsEngine):
    """``IndexBuildsEngine`` whose WAL is checkpointed by a thread (module docstring)."""

    cook_background_checkpoints = True  # the tests switch it off to show it matters

    def _create_sqlite_connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection = super()._create_sqlite_connection()
        if self.cook_background_checkpoints and self._path != ":memory:":
            connection.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        return connection

    def _connect_sync(self, *args: Any, **kwargs: Any) -> None:
        super()._connect_sync(*args, **kwargs)
        if not self.cook_background_checkpoints or self._path == ":memory:":
            return
        with self._lock:
            if self.__dict__.get("_cook_checkpointer") is None:
                self._cook_checkpointer: Checkpointer | None = Checkpointer(self._path)

    def _disconnect_sync(self, *args: Any, **kwargs: Any) -> None:
        super()._disconnect_sync(*args, **kwargs)
        with self._lock:
            checkpointer = self.__dict__.get("_cook_checkpointer")
            if checkpointer is None or self._connection_count != 0:
                return
            self._cook_checkpointer = None
        checkpointer.stop()


class Checkpointer:
    """A daemon thread checkpointing ``path``'s WAL after other connections commit."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="cook-wal-checkpoints", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path)
        try:
            seen, failing = None, False
            while not self._stopping.wait(POLL_SECONDS):
                try:
                    version = connection.execute("PRAGMA data_version").fetchone()[0]
                    if version != seen:
                        connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        seen, failing = version, False
                except sqlite3.Error:  # tried again at the next poll; the backstop still runs
                    if not failing:  # once per run of failures, not 20 times a second
                        log.warning("a WAL checkpoint failed", exc_info=True)
                    failing = True
        finally:
            connection.close()
