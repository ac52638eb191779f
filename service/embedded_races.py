"""Two races of mongoeco 4.11.0's SQLite engine that lose writes or fail them, fixed at the base
of Cook's engine (``RaceSafeEngine``; ``FlatInsertSQLiteEngine`` and the rest build on it).

1. **A write's rollback refused once its session ended.** A write runs inside ``BEGIN
   IMMEDIATE`` on the one connection every write shares, and ends by a commit or, on any
   error, a rollback. Both first check the write's session, and that check raises once the
   session has ended. A client that stops (an API process shutting down, a request cancelled
   mid-write) sends ``endSessions`` for the sessions it pooled, and one of them may be in a
   write the server is still running: its commit was refused, then its rollback too, and the
   ``BEGIN`` stayed open. Every later write became a savepoint inside it, seen by that
   connection and never committed: readers on their own connections (every multi-document
   find) saw the database stop at that moment, and the change outbox, on a connection of its
   own, found the file locked ("database is locked" when the server stopped, and everything
   since lost). Such a write is now rolled back as a session-less write is: the rollback of the
   savepoint or of the whole ``BEGIN``, whichever it opened, with no session check. The client,
   already gone, gets the error it would have got anyway.

2. **A write's cache invalidation iterating a dict that readers fill.** Every write drops the
   cached "collection features" of its collection (which types occur at a field) by iterating
   the cache's keys in Python. A find with a connection of its own plans, and fills that cache,
   without the engine's lock, so a key added between two steps of that loop failed the write
   with "dictionary changed size during iteration" (a ``startCook`` answered ``INTERNAL`` while
   the feed polled). The keys are now copied first, in one C call that holds the GIL.

``tests/test_embedded_races.py`` ends a session inside a held write, and fills the cache from
another thread while writes invalidate it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from mongoeco.engines.sqlite import SQLiteEngine


class RaceSafeEngine(SQLiteEngine):
    """SQLiteEngine whose writes are rolled back even when their session ended mid-write (1),
    and whose cache invalidation does not fail beside a reader filling the cache (2)."""

    def _rollback_write(self, conn: sqlite3.Connection, context: Any) -> None:
        if context is not None and not context.active:
            context = None  # only the refused check differs; the write's own frame is undone
        super()._rollback_write(conn, context)

    def _invalidate_collection_features_cache(
        self, db_name: str | None = None, coll_name: str | None = None
    ) -> None:
        cache: dict[tuple[Any, ...], Any] = self._collection_features_cache
        if db_name is None or coll_name is None:
            cache.clear()
            return
        prefix = (db_name, coll_name)
        for key in [key for key in list(cache) if key[:2] == prefix]:
            cache.pop(key, None)
