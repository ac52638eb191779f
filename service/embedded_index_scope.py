"""The embedded database's index layout that Cook's engine changes, in plain SQL.

``service/embedded_writes.py`` makes every index of ``documents`` partial by its namespace
(part 5) and lets every scalar index share one physical index of ``scalar_index_entries``
(part 8); this module holds what does not need mongoeco's private API: the ``WHERE`` itself,
the shared index's statements, and the way back for a file opened by another mongoeco version
(whose unpatched engine names a hinted index with its namespace as bound parameters, which
SQLite refuses for a partial index: "no query solution"; and which drops a scalar index's
physical index with the index, which must then be its own).
"""

from __future__ import annotations

import hashlib
import sqlite3

# Part 8: the one physical index every scalar index of the file names.
SHARED_SCALAR_INDEX = "scidx_cook_shared"
SCALAR_KEY = (
    "ON scalar_index_entries (collection_id, index_name, type_score, element_key, storage_key)"
)
CREATE_SHARED_SCALAR_INDEX = f"CREATE INDEX IF NOT EXISTS {SHARED_SCALAR_INDEX} {SCALAR_KEY}"


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


def share_scalar_indexes(conn: sqlite3.Connection) -> list[str]:
    """The statements that make every scalar index name the shared physical index and drop the
    identical ones mongoeco made per index (none when that is already so)."""
    private = [
        str(name)
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'index' "
            "AND tbl_name = 'scalar_index_entries' AND name LIKE 'scidx%' AND name != ?",
            (SHARED_SCALAR_INDEX,),
        )
        if sql is not None and str(sql).endswith(SCALAR_KEY)
    ]
    pointing = conn.execute(
        "SELECT 1 FROM indexes WHERE scalar_physical_name IS NOT NULL "
        "AND scalar_physical_name != ? LIMIT 1",
        (SHARED_SCALAR_INDEX,),
    ).fetchone()
    if not private and pointing is None:
        return []
    return [
        CREATE_SHARED_SCALAR_INDEX,
        f"UPDATE indexes SET scalar_physical_name = '{SHARED_SCALAR_INDEX}' "  # noqa: S608 - a constant
        "WHERE scalar_physical_name IS NOT NULL",
        *(f'DROP INDEX "{name}"' for name in private),
    ]


def private_scalar_indexes(path: str) -> int:
    """Give each scalar index its own physical index again, named as mongoeco 4.11.0 names it,
    for a file opened by another mongoeco version (which drops a scalar index's physical index
    with the index). Returns how many; all in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if not conn.execute("SELECT 1 FROM sqlite_schema WHERE name = 'indexes'").fetchone():
            return 0
        rows = conn.execute(
            "SELECT db_name, coll_name, name FROM indexes WHERE scalar_physical_name = ?",
            (SHARED_SCALAR_INDEX,),
        ).fetchall()
        if not rows:
            return 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for db_name, coll_name, name in rows:
                key = f"{db_name}:{coll_name}:{name}:scalar".encode()
                own = "scidx_" + hashlib.sha1(key, usedforsecurity=False).hexdigest()[:16]
                conn.execute(f'CREATE INDEX IF NOT EXISTS "{own}" {SCALAR_KEY}')
                conn.execute(
                    "UPDATE indexes SET scalar_physical_name = ? "
                    "WHERE db_name = ? AND coll_name = ? AND name = ?",
                    (own, db_name, coll_name, name),
                )
            conn.execute(f"DROP INDEX IF EXISTS {SHARED_SCALAR_INDEX}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return len(rows)
    finally:
        conn.close()
