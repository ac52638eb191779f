"""Read connections kept open between reads by the embedded engine (mongoeco 4.11.0).

12. **A pool of read connections.** mongoeco serves every read of more than one document (a
    find without ``limit: 1``, a count, a distinct, an aggregate) on a dedicated SQLite
    connection of its own, so that the read sees one snapshot however long its client takes
    to fetch it: it opens the connection (``sqlite3.connect``, the WAL and ``synchronous``
    pragmas, Cook's query-planner and checkpoint settings), begins a transaction, reads, and
    closes it. Every read so paid a connect and a close, and started with an empty per-connection
    index catalog and statement cache. On a gallery page that was about a tenth of the
    server's CPU, and more of the suite's (every test app's start reads what it must resume).

    ``PooledReadersEngine`` keeps up to ``IDLE_CONNECTIONS`` of them open: a connection mongoeco
    closes while the engine is connected is rolled back (ending the reader's snapshot, as
    closing did) and kept; the next connection mongoeco asks for is one of those. Nothing a
    read depends on outlives it: the transaction is gone, and mongoeco's own per-connection
    index catalog is checked against ``PRAGMA data_version`` at the start of every read (it
    changes whenever another connection has committed) and cleared when it moved, as on any
    long-lived connection (the writer's is one). An idle connection holds no transaction, so
    it pins no WAL frame and blocks no checkpoint. On disconnect every pooled connection is
    closed, and a connection mongoeco closes while disconnecting is closed, not kept.

``tests/test_embedded_readers.py`` shows reads through reused connections seeing every write
committed between them (documents, indexes dropped and made, collections dropped), the pool
bounded and emptied on disconnect, and connections reused.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any, cast

from mongoeco.engines._sqlite_connection import SQLiteConnection

from service.embedded_checkpoints import CheckpointedEngine

IDLE_CONNECTIONS = 8  # kept open at most; more readers at once open and close their own


class PooledConnection(SQLiteConnection):
    """A connection whose ``close()`` gives it back to its engine's pool while it is wanted."""

    cook_engine: PooledReadersEngine

    def close(self) -> None:
        if not self.cook_engine._cook_keep(self):
            super().close()


class PooledReadersEngine(CheckpointedEngine):
    """``CheckpointedEngine`` whose connections are kept open between reads (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._cook_idle: list[PooledConnection] = []
        self._cook_idle_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def _create_sqlite_connection(self) -> sqlite3.Connection:
        with self._cook_idle_lock:
            if self._cook_idle:
                return self._cook_idle.pop()
        made = super()._create_sqlite_connection()
        made.__class__ = PooledConnection  # the same layout: neither class adds slots
        connection = cast(PooledConnection, made)
        connection.cook_engine = self
        return connection

    def _cook_keep(self, connection: PooledConnection) -> bool:
        """Keep ``connection`` for a later reader, if the engine is connected and has room; on
        True it is rolled back and idle, on False the caller closes it. A connection closed
        again while it is idle stays kept: it was given back already."""
        with self._cook_idle_lock:
            if connection in self._cook_idle:
                return True
        try:
            if connection.in_transaction:
                connection.rollback()
        except sqlite3.Error:
            return False
        with self._cook_idle_lock:  # the disconnect empties the pool under it, once count is 0
            if (
                self._connection_count == 0
                or self._disconnecting
                or len(self._cook_idle) >= IDLE_CONNECTIONS
            ):
                return False
            self._cook_idle.append(connection)
            return True

    def _disconnect_sync(self) -> None:
        try:
            super()._disconnect_sync()
        finally:
            if self._connection_count == 0:
                with self._cook_idle_lock:
                    idle, self._cook_idle = self._cook_idle, []
                for connection in idle:
                    SQLiteConnection.close(connection)
