"""Namespace-partial indexes of the embedded database's ``documents`` table, in plain SQL.

``service/embedded_writes.py`` (part 5) makes every index of ``documents`` partial by its
namespace; this module holds what does not need mongoeco's private API: the ``WHERE`` itself,
and the way back to whole-table indexes for a file opened by another mongoeco version (whose
unpatched engine names a hinted index with its namespace as bound parameters, which SQLite
refuses for a partial index: "no query solution").
"""

from __future__ import annotations

import sqlite3


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def namespace_where(db_name: str, coll_name: str) -> str:
    """The terms every index of one namespace is partial on (and its statements name)."""
    return f"db_name = {literal(db_name)} AND coll_name = {literal(coll_name)}"


def orphaned_probes(conn: sqlite3.Connection) -> list[str]:
    """Cook's namespace-partial indexes (``cook_*``) whose namespace no collection has: left
    by a dropped collection or database, or by a rename."""
    live = {
        namespace_where(db, coll)
        for db, coll in conn.execute("SELECT db_name, coll_name FROM collections")
    }
    return [
        name
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'documents' "
            "AND name LIKE 'cook\\_%' ESCAPE '\\' AND sql LIKE '% WHERE db_name = %'"
        ).fetchall()
        if sql.partition(" WHERE ")[2] not in live
    ]


def whole_table_indexes(path: str) -> int:
    """Rebuild the indexes part 5 made partial as whole-table ones, as unpatched mongoeco
    expects (its ``hint`` names an index with its namespace as bound parameters, which a
    partial index cannot serve); for a file opened by another mongoeco version. Returns how
    many it rebuilt; each in its own transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'indexes'").fetchone():
            return 0
        rebuilt = 0
        for name, sql in conn.execute(
            "SELECT s.name, s.sql FROM sqlite_schema s JOIN indexes i ON i.physical_name = s.name "
            "WHERE s.type = 'index' AND s.tbl_name = 'documents' AND s.sql LIKE '% WHERE %'"
        ).fetchall():
            whole = sql.rpartition(" WHERE db_name = ")[0]
            if whole:
                in_transaction(conn, f'DROP INDEX "{name}"', whole)
                rebuilt += 1
        return rebuilt
    finally:
        conn.close()


def in_transaction(conn: sqlite3.Connection, *statements: str) -> None:
    """Run ``statements`` in one write transaction (DDL included: a kill leaves all or none)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in statements:
            conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
