"""Writes into Cook's embedded engine pay only for their own collection (``embedded_writes``):
indexes partial by namespace (also after a rebuild of an older file, killed halfway), the
statements that need them still served by them, answers equal to the unpatched engine's across
several namespaces, and GridFS files round-tripping through the wire."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import gridfs
import pytest
from bson import SON, Binary, Int64, ObjectId
from mongoeco import MongoClient as DirectClient
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.errors import DuplicateKeyError
from pymongo import MongoClient, ReturnDocument

from service.embedded_db import EmbeddedDatabase
from service.embedded_index_scope import (
    SCALAR_KEY,
    SHARED_SCALAR_INDEX,
    namespace_where,
    private_scalar_indexes,
    whole_table_indexes,
)
from service.embedded_writes import NamespacedIndexesEngine
from tests import engine_diff

NAMESPACES = (("cook", "pieces"), ("cook", "media.chunks"), ("other", "pieces"))


class PreviousEngine(NamespacedIndexesEngine):
    """Cook's engine before this change: whole-table indexes, one probe index per path."""

    cook_namespaced = False
    cook_unique_seeks = False
    cook_encode_once = False
    cook_shared_scalar_index = False


@contextmanager
def opened(engine: Any) -> Iterator[Any]:
    client = DirectClient(engine=engine)
    try:
        yield client
    finally:
        client.close()


def fill(client: Any, docs: int = 40, namespaces: tuple[tuple[str, str], ...] = NAMESPACES) -> None:
    """Each namespace gets indexes (one unique, one compound) and documents."""
    for db, coll in namespaces:
        c = client[db][coll]
        c.create_index([("k", 1)], name="k", unique=True)
        c.create_index([("g", 1), ("n", -1)], name="g_n")
        c.insert_many(
            [{"_id": f"{coll}{i}", "k": f"k{i}", "g": i % 3, "n": i} for i in range(docs)]
        )


def documents_indexes(path: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master "
            "WHERE type = 'index' AND tbl_name = 'documents' AND sql IS NOT NULL"
        ).fetchall()
    return [(str(n), str(s)) for n, s in rows]


def owners(path: Path) -> dict[str, tuple[str, str]]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT physical_name, db_name, coll_name FROM indexes").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows if r[0]}


def assert_all_partial(path: Path) -> None:
    found = documents_indexes(path)
    assert found
    own = owners(path)
    namespaces = [namespace_where(db, coll) for db, coll in NAMESPACES]
    for name, sql in found:
        if name in own:
            assert sql.endswith(" WHERE " + namespace_where(*own[name])), sql
        else:
            assert name.startswith("cook_probe_"), sql
            assert any(sql.endswith(" WHERE " + w) for w in namespaces), sql


def test_every_index_of_documents_is_partial_by_its_namespace(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    with opened(NamespacedIndexesEngine(str(path))) as client:
        fill(client)
        client.cook.pieces.update_one({"k": "k1"}, {"$set": {"n": 100}})
    names = [name for name, _ in documents_indexes(path)]
    assert sum(name.startswith("cook_probe_") for name in names) >= len(NAMESPACES)
    assert sum(name in owners(path) for name in names) == 2 * len(NAMESPACES)
    assert_all_partial(path)


def test_an_older_data_directory_is_rebuilt_partial_at_start_and_answers_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    with opened(PreviousEngine(str(path))) as client:
        fill(client)
    assert not any(" WHERE " in sql for _, sql in documents_indexes(path))
    with opened(NamespacedIndexesEngine(str(path))) as client:
        pieces = client.cook.pieces
        assert pieces.find_one({"k": "k1"}, {"n": 1}) == {"_id": "pieces1", "n": 1}  # starts
        assert_all_partial(path)
        assert pieces.count_documents({"g": 1}) == 13
        assert [d["n"] for d in pieces.find({"g": 2}).sort("n", -1).hint("g_n").limit(3)] == [
            38,
            35,
            32,
        ]
        with pytest.raises(DuplicateKeyError):
            pieces.insert_one({"k": "k5"})
    with opened(NamespacedIndexesEngine(str(path))) as client:  # again: nothing to do
        assert client.cook.pieces.count_documents({}) == 40
    assert_all_partial(path)


REBUILD_SLOWLY = """
import sys, time
from mongoeco import MongoClient
import service.embedded_writes as w
original = w.in_transaction
def slow(conn, *statements):
    original(conn, *statements)
    print("rebuilt", flush=True)
    time.sleep(0.5)
w.in_transaction = slow
MongoClient(engine=w.NamespacedIndexesEngine(sys.argv[1])).cook.pieces.find_one()
"""


def test_a_rebuild_killed_halfway_leaves_a_file_that_opens_and_is_rebuilt_next_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    with opened(PreviousEngine(str(path))) as client:
        fill(client)
    script = textwrap.dedent(REBUILD_SLOWLY)
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "rebuilt"
        assert proc.stdout.readline().strip() == "rebuilt"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    halfway = [" WHERE " in sql for _, sql in documents_indexes(path)]
    assert any(halfway), "the kill came before any rebuild"
    assert not all(halfway), "the kill came after the last rebuild"
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with opened(NamespacedIndexesEngine(str(path))) as client:
        assert client.other.pieces.count_documents({"g": 0}) == 14  # starts
        assert_all_partial(path)
        assert client.cook["media.chunks"].find_one({"k": "k7"}, {"n": 1}) == {
            "_id": "media.chunks7",
            "n": 7,
        }


def test_another_mongoeco_version_gets_whole_table_indexes_back(tmp_path: Path) -> None:
    """The unpatched engine names a hinted index with bound parameters: SQLite refuses a
    partial one ("no query solution"), so ``make_engine`` rebuilds them whole first."""
    path = tmp_path / "db.sqlite3"
    with opened(NamespacedIndexesEngine(str(path))) as client:
        fill(client)
    with opened(SQLiteEngine(str(path))) as client, pytest.raises(Exception, match="solution"):
        list(client.cook.pieces.find({"g": 1}).hint("g_n"))
    assert whole_table_indexes(str(path)) == 2 * len(NAMESPACES)
    with opened(SQLiteEngine(str(path))) as client:
        assert len(list(client.cook.pieces.find({"g": 1}).hint("g_n"))) == 13


class Recorder:
    """Records the JSON paths ``json_extract`` is evaluated on, per document written."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.on = False
        self.connections: list[sqlite3.Connection] = []

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


def recording(base: type[Any], recorder: Recorder) -> type[Any]:
    class Recording(base):  # type: ignore[misc, valid-type]
        def _create_sqlite_connection(self) -> sqlite3.Connection:
            conn: sqlite3.Connection = super()._create_sqlite_connection()
            real = sqlite3.connect(":memory:", check_same_thread=False)
            recorder.connections.append(real)

            def json_extract(document: Any, *paths: Any) -> Any:
                if recorder.on and isinstance(document, str) and '"marker"' in document:
                    recorder.paths.extend(paths)
                marks = ", ".join("?" for _ in paths)
                return real.execute(
                    f"SELECT json_extract(?, {marks})", (document, *paths)
                ).fetchone()[0]

            conn.create_function("json_extract", -1, json_extract, deterministic=True)
            return conn

    return Recording


@pytest.mark.parametrize("engine", [NamespacedIndexesEngine, PreviousEngine])
def test_a_write_evaluates_no_index_expression_of_another_collection(
    tmp_path: Path, engine: type[Any]
) -> None:
    """SQLite's own ``json_extract`` is replaced on the engine's connection by a recording one:
    writing to ``a`` must evaluate ``a``'s index expressions and none of ``b``'s (the engine
    as it was evaluated them all, which shows the measure can fail)."""
    recorder = Recorder()
    with opened(recording(engine, recorder)(str(tmp_path / "db.sqlite3"))) as client:
        client.cook.a.create_index("onlyA")
        client.cook.b.create_index("onlyB")
        client.cook.b.create_index([("onlyB", 1), ("alsoB", 1)], unique=True)
        client.cook.b.insert_one({"onlyB": 1, "alsoB": 2})
        recorder.on = True
        client.cook.a.insert_one({"_id": "x", "onlyA": 1, "marker": True})
        client.cook.a.update_one({"_id": "x"}, {"$set": {"onlyA": 2, "other": 3}})
    recorder.close()
    assert any("onlyA" in p for p in recorder.paths), recorder.paths
    evaluated_b = any("onlyB" in p or "alsoB" in p for p in recorder.paths)
    assert evaluated_b == (engine is PreviousEngine), recorder.paths


def traced(engine: Any) -> list[str]:
    statements: list[str] = []
    engine._require_connection().set_trace_callback(statements.append)
    return statements


def plan(path: Path, sql: str) -> str:
    """EXPLAIN QUERY PLAN of a statement as traced (its parameters inlined by SQLite)."""
    with closing(sqlite3.connect(path)) as conn:
        return " | ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql))


def test_the_statements_that_need_an_index_are_served_by_a_partial_one(tmp_path: Path) -> None:
    """The real statements, as SQLite traced them: the unique-key seek of a chunk, the probes,
    a find, a count and the selection of an update, each searches an index beyond the
    namespace."""
    path = tmp_path / "db.sqlite3"
    engine = NamespacedIndexesEngine(str(path))
    with opened(engine) as client:
        fill(client)
        chunks = client.cook["media.chunks"]
        chunks.create_index([("files_id", 1), ("n", 1)], name="files_id_1_n_1", unique=True)
        files_id = ObjectId()
        chunks.insert_one({"files_id": files_id, "n": 0, "k": "c0", "data": b"x" * 10})
        statements = traced(engine)
        chunks.insert_one({"files_id": files_id, "n": 1, "k": "c1", "data": b"y" * 10})
        client.cook.pieces.update_one({"g": 1, "n": 4}, {"$set": {"x": 1}})
        assert client.cook.pieces.count_documents({"g": 2, "n": {"$gt": 3}}) == 12
        engine._require_connection().set_trace_callback(None)
    seek = [s for s in statements if s.startswith("SELECT storage_key FROM documents WHERE")]
    assert seek, statements
    assert "USING INDEX" in plan(path, seek[0])
    assert "<expr>=?" in plan(path, seek[0])
    probes = [s for s in statements if "EXISTS(SELECT 1 FROM documents" in s]
    assert probes
    assert "cook_probe_" in plan(path, probes[0]), probes
    by_g = [s for s in statements if "documents" in s and "$.g" in s and "SELECT" in s]
    assert by_g, statements
    for s in by_g:
        assert "<expr>" in plan(path, s), (s, plan(path, s))


def compare_reads(reference: Any, candidate: Any, seed: int, ids: list[Any]) -> list[str]:
    rng = random.Random(seed)
    found = []
    for _ in range(60):
        q = engine_diff.query(rng, "mixed", ids)
        a, b = (sorted(map(repr, c.find(q))) for c in (reference, candidate))
        if a != b:
            found.append(f"find {q}")
        hint = rng.choice([o["name"] for _, o in engine_diff.INDEXES])
        a, b = (sorted(map(repr, c.find(q).hint(hint))) for c in (reference, candidate))
        if a != b:
            found.append(f"find {q} hint {hint}")
    return found


def test_writes_across_namespaces_and_a_rebuild_return_what_the_unpatched_engine_returns(
    tmp_path: Path,
) -> None:
    """The random differential workload, run on three namespaces of the same two files one
    after the other (each namespace's indexes present while the others are written), first on
    a file in the previous layout, then after the rebuild; earlier namespaces re-read after."""
    ref_path, cand_path = tmp_path / "reference.sqlite3", tmp_path / "candidate.sqlite3"
    reference = DirectClient(engine=SQLiteEngine(str(ref_path)))
    try:
        with opened(PreviousEngine(str(cand_path))) as before:
            report = engine_diff.run(
                reference.d1.k1, before.d1.k1, ops=150, seed=21, kind="mixed", docs=30
            )
            assert not report.mismatches, report.mismatches[:3]
        with opened(NamespacedIndexesEngine(str(cand_path))) as after:
            mismatches = []
            for seed, (db, coll, kind) in enumerate(
                (("d1", "k2", "clean"), ("d2", "k1", "messy"), ("d1", "k3", "mixed")), 30
            ):
                report = engine_diff.run(
                    reference[db][coll], after[db][coll], ops=200, seed=seed, kind=kind, docs=30
                )
                mismatches += report.mismatches
            ids = [d["_id"] for d in reference.d1.k1.find({}, {"_id": 1})]
            mismatches += compare_reads(reference.d1.k1, after.d1.k1, 5, ids)
            assert not mismatches, "\n".join(mismatches[:5])
            assert_all_partial_somewhere(cand_path)
    finally:
        reference.close()


def test_a_statement_cached_before_any_partial_index_still_reads_its_own_namespace(
    tmp_path: Path,
) -> None:
    """On a new file, mongoeco's scan of a collection (``WHERE db_name = ? AND coll_name = ?``,
    kept in the connection's statement cache) is first prepared before any partial index
    exists. Re-prepared after ``b``'s index changes, while bound to ``b``, it must not keep
    ``b``'s partial index for ``a``: the scan that decides ``a``'s compound unique key would
    read no row, and the twin would be admitted."""
    with opened(NamespacedIndexesEngine(str(tmp_path / "db.sqlite3"))) as client:
        a, b = client.d.a, client.d.b
        a.create_index([("g", 1), ("k", 1)], name="gk", unique=True)  # prepares the scan
        a.insert_one({"_id": "a1", "g": "x", "k": "1"})
        b.create_index([("g", 1), ("k", 1)], name="gk", unique=True)
        b.insert_one({"_id": "b1", "g": "x", "k": "1"})
        with pytest.raises(DuplicateKeyError):
            b.insert_one({"_id": "b2", "g": "x", "k": "1"})  # the scan, re-prepared on b
        with pytest.raises(DuplicateKeyError):
            a.insert_one({"_id": "a2", "g": "x", "k": "1"})
        assert [d["_id"] for d in a.find({"g": "x"})] == ["a1"]
        assert [d["_id"] for d in b.find({"g": "x"})] == ["b1"]


def twins(reference: Any, candidate: Any, label: str) -> list[str]:
    """Insert, into both collections, a copy of each of a few stored documents under a new
    ``_id`` (a duplicate of the compound unique ``a_u``) and under its own ``_id``: both
    engines must refuse, or admit, alike, and end with the same documents."""
    found = []
    stored = sorted(reference.find({}), key=repr)[:4]
    for n, doc in enumerate(stored):
        for twin in ({**doc, "_id": f"twin{n}"}, dict(doc)):
            a, b = (
                engine_diff.attempt(lambda c=c, t=twin: c.insert_one(dict(t)))
                for c in (reference, candidate)
            )
            if repr(a) != repr(b):
                found.append(f"{label} insert {twin}: {a!r} against {b!r}")
    if sorted(map(repr, reference.find({}))) != sorted(map(repr, candidate.find({}))):
        found.append(f"{label}: final contents differ")
    return found


def test_namespaces_written_in_turn_on_a_new_file_refuse_what_the_unpatched_engine_refuses(
    tmp_path: Path,
) -> None:
    """The random workload on three namespaces of a new file, one after the other (so the
    connection's cached statements were first prepared before any partial index existed),
    then a compound unique index on each (its single-field one dropped), then duplicates tried
    in each namespace in turn with no index change between them: the same answers as the
    unpatched engine's."""
    spaces = (("d1", "k1", "mixed"), ("d1", "k2", "clean"), ("d2", "k1", "messy"))
    reference = DirectClient(engine=SQLiteEngine(str(tmp_path / "reference.sqlite3")))
    try:
        with opened(NamespacedIndexesEngine(str(tmp_path / "candidate.sqlite3"))) as candidate:
            mismatches = []
            for seed, (db, coll, kind) in enumerate(spaces, 50):
                report = engine_diff.run(
                    reference[db][coll], candidate[db][coll], ops=60, seed=seed, kind=kind, docs=20
                )
                mismatches += report.mismatches
            for db, coll, _ in spaces:
                for c in (reference, candidate):
                    c[db][coll].create_index([("a", 1), ("u", 1)], name="a_u", unique=True)
                    c[db][coll].drop_index("u")  # now only a_u refuses a twin
            for db, coll, _ in spaces:
                mismatches += twins(reference[db][coll], candidate[db][coll], f"{db}.{coll}")
            assert not mismatches, "\n".join(mismatches[:5])
    finally:
        reference.close()


def assert_all_partial_somewhere(path: Path) -> None:
    for _, sql in documents_indexes(path):
        assert " WHERE db_name = " in sql, sql


def test_the_differential_run_notices_statements_that_name_the_wrong_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken on purpose: the literal namespace (of the indexes and of the statements) names
    another collection; the run must notice."""

    def elsewhere(db: str, coll: str) -> str:
        return f"db_name = '{db}' AND coll_name = 'elsewhere'"

    monkeypatch.setattr("service.embedded_writes.namespace_where", elsewhere)
    reference = DirectClient(engine=SQLiteEngine(str(tmp_path / "r.sqlite3")))
    candidate = DirectClient(engine=NamespacedIndexesEngine(str(tmp_path / "c.sqlite3")))
    try:
        report = engine_diff.run(
            reference.d.k, candidate.d.k, ops=80, seed=3, kind="clean", docs=20
        )
    finally:
        reference.close()
        candidate.close()
    assert report.mismatches


SIXTEEN_MIB = 16 * 2**20


def test_a_sixteen_mib_gridfs_file_round_trips_through_the_wire(tmp_path: Path) -> None:
    """Through the embedded server ``bin/serve`` starts, with Cook's default client timeout
    (the whole upload is one operation under it), byte for byte."""
    data = os.urandom(SIXTEEN_MIB)
    with EmbeddedDatabase(tmp_path / "db") as db, MongoClient(db.uri, timeoutMS=5000) as client:
        bucket = gridfs.GridFSBucket(client.cook, bucket_name="media")
        began = time.monotonic()
        file_id = bucket.upload_from_stream("big", data)
        wrote = time.monotonic() - began
        back = bucket.open_download_stream(file_id).read()
        assert hashlib.sha256(back).digest() == hashlib.sha256(data).digest()
        assert client.cook["media.chunks"].count_documents({"files_id": file_id}) == 65
    print(f"16 MiB written in {wrote:.2f} s")
    found = documents_indexes(tmp_path / "db" / "cook.sqlite3")  # the server's own file
    assert found
    for _, sql in found:
        assert re.search(r" WHERE db_name = '[^']+' AND coll_name = '[^']+'$", sql), sql


@pytest.mark.parametrize("engine", [NamespacedIndexesEngine, SQLiteEngine])
def test_a_compound_unique_key_checked_by_a_seek_still_refuses_every_equal_key(
    tmp_path: Path, engine: type[Any]
) -> None:
    """GridFS's ``files_id, n``: 1, 1.0 and Int64(1) are one key, as on the unpatched engine;
    another file's chunk 1, or chunk 2, is not a duplicate."""
    with opened(engine(str(tmp_path / "db.sqlite3"))) as client:
        chunks = client.cook["media.chunks"]
        chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
        files_id = ObjectId()
        chunks.insert_one({"files_id": files_id, "n": 1, "data": b"a"})
        for same in (1, 1.0, Int64(1)):
            with pytest.raises(DuplicateKeyError):
                chunks.insert_one({"files_id": files_id, "n": same, "data": b"b"})
        chunks.insert_one({"files_id": files_id, "n": 2, "data": b"c"})
        chunks.insert_one({"files_id": ObjectId(), "n": 1, "data": b"d"})
        chunks.insert_one({"files_id": files_id, "n": Int64(3), "data": b"e"})
        with pytest.raises(DuplicateKeyError):
            chunks.insert_one({"files_id": files_id, "n": 3, "data": b"f"})
        with pytest.raises(DuplicateKeyError):
            chunks.update_one({"files_id": files_id, "n": 2}, {"$set": {"n": 1.0}})
        assert chunks.count_documents({"files_id": files_id}) == 3


def test_a_renamed_collection_takes_its_partial_indexes_along(tmp_path: Path) -> None:
    """After a rename every row has the new name: its indexes are rebuilt on it (a hint on an
    index still partial on the old name would fail with "no query solution")."""
    path = tmp_path / "db.sqlite3"
    with opened(NamespacedIndexesEngine(str(path))) as client:
        fill(client)
        client.cook.pieces.rename("renamed")
        renamed = client.cook.renamed
        assert len(list(renamed.find({"g": 1}).hint("g_n"))) == 13
        with pytest.raises(DuplicateKeyError):
            renamed.insert_one({"k": "k3"})
        assert client.cook.pieces.count_documents({}) == 0
    own = owners(path)
    for name, sql in documents_indexes(path):
        if own.get(name) == ("cook", "renamed"):
            assert sql.endswith(" WHERE " + namespace_where("cook", "renamed")), sql


def test_a_dropped_collection_or_database_leaves_none_of_its_indexes_behind(
    tmp_path: Path,
) -> None:
    """mongoeco drops its own indexes with a collection; Cook's probe indexes go too, at the
    drop or (left by an older engine) at the next start: every one names a live namespace.
    Kept, they piled up in the schema of a long-lived server (a test suite's: every test's
    database), which SQLite parses again after each DDL."""
    path = tmp_path / "db.sqlite3"
    with opened(NamespacedIndexesEngine(str(path))) as client:
        fill(client)
        client.drop_database("other")
        client.cook.drop_collection("media.chunks")
        assert client.cook.pieces.count_documents({"g": 1}) == 13
    kept = namespace_where("cook", "pieces")
    probes = [sql for name, sql in documents_indexes(path) if name.startswith("cook_probe_")]
    assert probes
    assert all(sql.endswith(" WHERE " + kept) for _, sql in documents_indexes(path))
    with closing(sqlite3.connect(path)) as conn:  # as an engine before the drop hooks left it
        conn.execute(
            "CREATE INDEX cook_probe_0123456789abcdef ON documents (db_name, coll_name) WHERE "
            + namespace_where("gone", "pieces")
        )
    with opened(NamespacedIndexesEngine(str(path))) as client:
        fill(client, namespaces=NAMESPACES[1:])  # the dropped namespaces again, as before
        assert client.other.pieces.count_documents({"g": 1}) == 13
    assert "cook_probe_0123456789abcdef" not in dict(documents_indexes(path))
    assert_all_partial(path)


def stored_texts(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT document FROM documents ORDER BY storage_key").fetchall()
    return [str(r[0]) for r in rows]


def effect_hashes(path: Path) -> list[tuple[str, str]]:
    """Each change event's kind and the SHA-256 of its text, in order."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT event_kind, effect_hash FROM change_outbox_identities ORDER BY sequence"
        ).fetchall()
    return [(str(k), str(h)) for k, h in rows]


def test_a_document_is_stored_as_the_same_text_the_unpatched_engine_writes(
    tmp_path: Path,
) -> None:
    """Part 7 splices large binaries and reuses the row's text for the change event (each of a
    batch's rows for its own event, Int64 values included): the rows are the unpatched
    engine's, byte for byte, and so is each event's text (the hash mongoeco keeps of it)."""
    big = os.urandom(300_000)
    docs: list[dict[str, Any]] = [
        {"_id": "a", "files_id": ObjectId(), "n": 0, "data": Binary(big)},
        {"_id": "b", "raw": big[:5000], "tagged": Binary(big[:6000], 5), "small": b"x", "s": "t"},
        {"_id": "c", "nested": {"data": Binary(big[:7000])}, "n": -0.0, "f": 2.5},
        {"_id": "d", "son": SON([("x", Binary(big[:8000])), ("y", 1)])},
        {"_id": "e", "seed": Int64(2**40), "small": Int64(3), "i": 2**35, "list": []},
    ]
    rows, hashes = [], []
    for engine in (SQLiteEngine, NamespacedIndexesEngine):
        path = tmp_path / f"{engine.__name__}.sqlite3"
        with opened(engine(str(path))) as client:
            client.cook.files.insert_many([dict(d) for d in docs])
            client.cook.files.update_one({"_id": "b"}, {"$set": {"s": "u"}})
            client.cook.files.find_one_and_update(
                {"_id": "e"}, {"$push": {"list": {"at": Int64(5)}}, "$set": {"seed": Int64(7)}}
            )
        rows.append(stored_texts(path))
        hashes.append(effect_hashes(path))
    assert rows[0] == rows[1]
    assert len(hashes[0]) == len(docs) + 2
    assert hashes[0] == hashes[1]
    patched, plain = NamespacedIndexesEngine(":memory:"), SQLiteEngine(":memory:")
    for d in docs:
        assert patched._serialize_document(d) == plain._serialize_document(d)
        event = {
            "operation_type": "insert",
            "db_name": "cook",
            "coll_name": "files",
            "document_key": {"_id": d["_id"]},
            "full_document": copy.deepcopy(d),
            "update_description": None,
        }
        assert patched._serialize_document(event) == plain._serialize_document(event)


def test_each_row_of_a_batch_is_encoded_once_for_its_row_and_its_change_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of four chunk-like documents (as Cook's media store writes them) and a piece
    carrying an Int64: one encoding per document, not two."""
    encoded: list[Any] = []
    original = NamespacedIndexesEngine._cook_encode

    def counting(self: Any, document: Any) -> str:
        encoded.append(document)
        return original(self, document)

    monkeypatch.setattr(NamespacedIndexesEngine, "_cook_encode", counting)
    with opened(NamespacedIndexesEngine(str(tmp_path / "db.sqlite3"))) as client:
        chunks = client.cook["media.chunks"]
        chunks.create_index([("files_id", 1), ("n", 1)], unique=True)
        files_id = ObjectId()
        encoded.clear()
        chunks.insert_many(
            [{"files_id": files_id, "n": n, "data": Binary(os.urandom(9000))} for n in range(4)]
        )
        at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        client.cook.pieces.insert_one(
            {"_id": "p", "seed": Int64(2**40), "attempts": [], "slot": "s", "at": at}
        )
        client.cook.pieces.find_one_and_update(
            {"_id": "p", "slot": "s"},
            {"$push": {"attempts": {"at": at}}, "$set": {"at": at}, "$unset": {"slot": ""}},
            return_document=ReturnDocument.AFTER,
        )
    rows = [d for d in encoded if isinstance(d, dict) and "_id" in d]
    events = [d for d in encoded if isinstance(d, dict) and "full_document" in d]
    assert len(rows) == 6, [sorted(d) for d in rows]
    assert not events, [e["document_key"] for e in events]  # each reused its row's text


# --- part 8: one physical index for every scalar index ---------------------------------


def scalar_indexes(path: Path) -> list[str]:
    """The physical indexes of ``scalar_index_entries`` in mongoeco's form."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_schema "
            "WHERE type = 'index' AND tbl_name = 'scalar_index_entries' AND sql IS NOT NULL"
        ).fetchall()
    return sorted(str(n) for n, sql in rows if str(sql).endswith(SCALAR_KEY))


def named_scalar_indexes(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT scalar_physical_name FROM indexes WHERE scalar_physical_name IS NOT NULL"
        ).fetchall()
    return {str(r[0]) for r in rows}


def wal_pages(engine: Any, path: Path, write: Any) -> int:
    """The pages one write puts into the write-ahead log (a deterministic count)."""
    conn = engine._require_connection()
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    write()
    return (path.with_name(path.name + "-wal").stat().st_size - 32) // (4096 + 24)


def test_every_scalar_index_names_one_shared_physical_index_so_a_write_updates_one(
    tmp_path: Path,
) -> None:
    """mongoeco gives each single-field index its own, identical, whole-table index of
    ``scalar_index_entries``, so each write updated every one of them. Here they are one: the
    same update writes at least one page fewer per index saved than on the previous engine."""
    pages = {}
    for engine in (PreviousEngine, NamespacedIndexesEngine):
        path = tmp_path / f"{engine.__name__}.sqlite3"
        made = engine(str(path))
        with opened(made) as client:
            fill(client)
            for db, coll in NAMESPACES:
                client[db][coll].create_index("n", name="by_n")
            pieces = client.cook.pieces
            update = lambda p=pieces: p.update_one({"k": "k1"}, {"$set": {"n": 7}})  # noqa: E731
            pages[engine] = wal_pages(made, path, update)
            assert pieces.find_one({"n": 7}, {"k": 1}) == {"_id": "pieces1", "k": "k1"}
            with pytest.raises(DuplicateKeyError):
                pieces.insert_one({"k": "k2"})
        scalar = 2 * len(NAMESPACES)  # ``k`` and ``by_n`` in each namespace
        if engine is NamespacedIndexesEngine:
            assert scalar_indexes(path) == [SHARED_SCALAR_INDEX]
            assert named_scalar_indexes(path) == {SHARED_SCALAR_INDEX}
        else:
            assert len(scalar_indexes(path)) == scalar
    assert pages[NamespacedIndexesEngine] <= pages[PreviousEngine] - (scalar - 1), pages


def test_an_older_file_shares_its_scalar_indexes_at_start_and_answers_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db.sqlite3"
    with opened(PreviousEngine(str(path))) as client:
        fill(client)
    assert len(scalar_indexes(path)) == len(NAMESPACES)
    with opened(NamespacedIndexesEngine(str(path))) as client:
        pieces = client.cook.pieces
        assert pieces.find_one({"k": "k3"}, {"n": 1}) == {"_id": "pieces3", "n": 3}
        assert [d["k"] for d in pieces.find({"k": {"$gte": "k37", "$lt": "k4"}}).sort("k", 1)] == [
            "k37",
            "k38",
            "k39",
        ]
        with pytest.raises(DuplicateKeyError):
            client.other.pieces.insert_one({"k": "k5"})
        assert scalar_indexes(path) == [SHARED_SCALAR_INDEX]
        assert named_scalar_indexes(path) == {SHARED_SCALAR_INDEX}


def test_dropping_indexes_collections_and_databases_keeps_the_shared_index_for_the_rest(
    tmp_path: Path,
) -> None:
    """mongoeco drops a dropped index's physical scalar index, here the shared one: it is
    created again in the same transaction, so a reader on another connection never sees it
    missing, and the other indexes (``INDEXED BY`` it) keep answering."""
    path = tmp_path / "db.sqlite3"
    engine = NamespacedIndexesEngine(str(path))
    with (
        opened(engine) as client,
        closing(sqlite3.connect(path, check_same_thread=False)) as reader,
    ):
        fill(client)
        client.cook.extra.create_index("x", unique=True)
        client.cook.extra.insert_one({"x": 1})
        seen: list[bool] = []

        def look(statement: str) -> None:
            """From the shared index's drop on, whether a reader can see it at each step."""
            if "DROP INDEX" in statement and SHARED_SCALAR_INDEX in statement:
                seen.append(True)
            if seen:
                row = reader.execute(
                    "SELECT 1 FROM sqlite_schema WHERE name = ?", (SHARED_SCALAR_INDEX,)
                ).fetchone()
                seen.append(row is not None)

        engine._require_connection().set_trace_callback(look)
        client.cook.pieces.drop_index("k")
        client.cook["media.chunks"].drop_indexes()
        client.cook.drop_collection("extra")
        engine._require_connection().set_trace_callback(None)
        assert seen
        assert all(seen), seen
        assert scalar_indexes(path) == [SHARED_SCALAR_INDEX]
        pieces = client.other.pieces
        assert pieces.find_one({"k": "k4"}, {"n": 1}) == {"_id": "pieces4", "n": 4}
        with pytest.raises(DuplicateKeyError):
            pieces.insert_one({"k": "k4"})
        client.cook.pieces.insert_one({"k": "k4"})  # its unique index is gone
        client.drop_database("other")
        assert scalar_indexes(path) == [SHARED_SCALAR_INDEX]
        assert client.cook.extra.find_one({"x": 1}) is None


def test_another_mongoeco_version_gets_a_scalar_index_of_its_own_for_each_index_back(
    tmp_path: Path,
) -> None:
    """The unpatched engine drops an index's physical scalar index with it; after
    ``private_scalar_indexes`` (which ``make_engine`` runs for another version), dropping one
    index leaves the others answering."""
    path = tmp_path / "db.sqlite3"
    with opened(NamespacedIndexesEngine(str(path))) as client:
        fill(client)
    assert private_scalar_indexes(str(path)) == len(NAMESPACES)
    assert len(scalar_indexes(path)) == len(NAMESPACES)
    assert SHARED_SCALAR_INDEX not in named_scalar_indexes(path)
    with opened(SQLiteEngine(str(path))) as client:
        client.cook.pieces.drop_index("k")
        assert client.other.pieces.find_one({"k": "k2"}, {"n": 1}) == {"_id": "pieces2", "n": 2}
        with pytest.raises(DuplicateKeyError):
            client.other.pieces.insert_one({"k": "k2"})
