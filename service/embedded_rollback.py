"""A write's rollback that mongoeco 4.11.0 could refuse, leaving its transaction open for good.

A write runs inside ``BEGIN IMMEDIATE`` on the one connection every write shares, and ends by
a commit or, on any error, a rollback. Both first check the write's session, and that check
raises once the session has ended. A client that stops (an API process shutting down, a request
cancelled mid-write) sends ``endSessions`` for the sessions it pooled, and one of them may be
in a write the server is still running: its commit was refused, then its rollback too, and the
``BEGIN`` stayed open. Every later write became a savepoint inside it, seen by that connection
and never committed: readers on their own connections (every multi-document find) saw the
database stop at that moment, and the change outbox, on a connection of its own, found the file
locked ("database is locked" when the server stopped, and everything since lost).

``EndedSessionsEngine`` rolls such a write back as a session-less write is rolled back: the
rollback of a savepoint or of the whole ``BEGIN``, whichever the write opened, with no session
check. The client, already gone, gets the error it would have got anyway; no later write is
affected. ``tests/test_embedded_sessions.py`` ends a session inside a held write.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from mongoeco.engines.sqlite import SQLiteEngine


class EndedSessionsEngine(SQLiteEngine):
    """SQLiteEngine whose writes are rolled back even when their session ended mid-write."""

    def _rollback_write(self, conn: sqlite3.Connection, context: Any) -> None:
        if context is not None and not context.active:
            context = None  # only the refused check differs; the write's own frame is undone
        super()._rollback_write(conn, context)
