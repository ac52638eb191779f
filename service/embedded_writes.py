"""Writes into the embedded engine that pay only for their own collection (mongoeco 4.11.0).

``NamespacedIndexesEngine`` is ``IndexedReadsEngine`` (``service/embedded_engine.py``) plus
four parts on the write path. Like the others, none changes a result.

5. **Every index of ``documents`` covers one namespace.** mongoeco keeps every collection in
   one table ``documents(db_name, coll_name, storage_key, document)`` and builds each ordered
   index as an expression index over the whole table, so every insert (and every update of
   ``document``) evaluated every collection's index expressions, each ``json_extract`` parsing
   the whole JSON text: a GridFS chunk (255 KiB, ~520 KB of JSON) was parsed dozens of times.
   Here each index (mongoeco's, and Cook's ``cook_probe_*``) is a SQLite partial index ``WHERE
   db_name = '<db>' AND coll_name = '<coll>'``: SQLite evaluates that ``WHERE`` on the row's
   own columns first and computes no expression for another collection's rows.

   SQLite uses a partial index only for a query whose ``WHERE`` implies the index's. With the
   namespace as bound parameters (``db_name = ?``) it can, but only by re-preparing the
   statement on every execution (SQLite's "re-prepare when a binding can change the plan"),
   ``INDEXED BY`` (mongoeco's ``hint``) then fails with "no query solution", and a statement
   first prepared before any partial index existed keeps, after a re-prepare, the plan of the
   namespace bound then, and reads no row of any other (it let duplicates past a unique
   index). So every connection plans bound statements without their values (SQLite's query
   planner stability guarantee, ``_create_sqlite_connection``): they never use a partial
   index, and every statement that must use these indexes names its namespace as literals:
   mongoeco's finds, counts, distincts and the selections of updates and deletes (all built
   by ``_build_select_sql``: the leading ``db_name = ? AND coll_name = ?`` becomes literals
   and its two parameters go), Cook's probes, and the unique-key seek below.

   Indexes are made partial when mongoeco creates them (rebuilt at once: at creation a
   collection is usually empty), after a collection is renamed (its indexes follow it), and at
   every start for files written before (each index rebuilt in its own transaction: a kill
   leaves every index either whole-table or partial, both correct, and the next start goes on).
   Cook's old whole-table probe indexes are dropped at start; writes create the new ones.

6. **Unique keys checked by a seek.** For a unique index on several fields (GridFS's
   ``files_id_1_n_1``) or on a number, mongoeco checked a new key by decoding every document of
   the collection: each chunk of a file decoded all the chunks stored before it. Here, when the
   new key's values are strings, ObjectIds or plain numbers, one seek of the index's own
   expressions finds every stored document that could hold the same key (equal ``T(f)``/``V(f)``
   for the value, and any tagged number); none means no duplicate, otherwise mongoeco's own
   check decides, as before.

7. **A document is encoded once per write.** Every insert and update also appends a change
   event to mongoeco's outbox, serializing the whole document a second time (for a chunk:
   hexadecimal text of the bytes again, then JSON again) only to hash it (no wire client can
   consume change events; the event itself is kept only when someone watches in process).
   Here the event's ``full_document`` reuses the text just made for the row, when it is a copy
   of that document: same types, same keys in the same order, equal values of kinds whose
   equal values have one text (strings, integers, Int32/Int64, booleans, bytes, ObjectIds,
   datetimes, non-zero floats); anything else is serialized as before. The last rows' texts are
   kept (at most 16, 32 MiB) and found by identity or ``_id``, because a batch (``insert_many``
   of four GridFS chunks, eight pieces) serializes all its rows before its events; each text
   is used once.

8. **One physical index for every scalar index.** For each single-field index mongoeco keeps
   rows in ``scalar_index_entries`` and gives the index its own physical index of that table,
   ``scidx_<hash>``, always the same whole-table ``(collection_id, index_name, type_score,
   element_key, storage_key)``, which its queries name with ``INDEXED BY``. So every write of
   a document updated every one of them (17 identical b-trees after a normal journey), though
   each row belongs to one index: about half of the pages a piece update wrote. Here every
   index names one shared index, ``scidx_cook_shared``, and the others are dropped: at start
   and after each ``create_index`` (one transaction: a kill leaves the old layout or the new).
   mongoeco drops a dropped index's physical scalar index with it, here the shared one, so
   the drops of an index, of all of a collection's, of a collection and of a database run
   inside one transaction that creates it again: no connection ever sees it missing. For a
   file opened by another mongoeco version, ``make_engine`` gives each index its own again
   (``embedded_index_scope.private_scalar_indexes``).

``tests/test_embedded_writes.py`` proves each part: the differential run against the unpatched
engine over several namespaces and across the rebuild (and that it notices statements naming
the wrong namespace), the plans of the real statements, a recording ``json_extract`` on the
engine's connection that sees no other collection's index evaluated by a write (the previous
engine fails that test), equal numeric keys still refused, a rebuild killed halfway, a
16 MiB GridFS file through the wire, rows and change events byte-identical to the unpatched
engine's with each batch row encoded once, and the shared scalar index: the pages an update
writes, an older file converted at start, drops never leaving it missing for a reader, and
the way back for another version. ``bench/embedded_writes.py`` measures before and after.
"""

from __future__ import annotations

import binascii
import datetime as dt
import hashlib
import math
import re
import sqlite3
import threading
import uuid
from itertools import product
from typing import Any

from bson import Binary, ObjectId
from mongoeco._types._bson_objectid import ObjectId as MongoecoId
from mongoeco._types._bson_objectid import is_object_id_like, normalize_object_id
from mongoeco._types._bson_values import Binary as MongoecoBinary
from mongoeco.core.bson_scalars import BsonInt32, BsonInt64
from mongoeco.core.codec import DocumentCodec
from mongoeco.core.filtering import QueryEngine
from mongoeco.core.json_compat import json_dumps_compact
from mongoeco.engines.sqlite_query import index_expressions_sql, json_path_for_field

from service.embedded_engine import Fragment, IndexedReadsEngine
from service.embedded_index_scope import (
    CREATE_SHARED_SCALAR_INDEX,
    in_transaction,
    namespace_where,
    orphaned_probes,
    share_scalar_indexes,
)

# mongoeco's namespace terms as every statement from ``_build_select_sql`` opens its WHERE.
BOUND_NAMESPACE = re.compile(r"WHERE\s+db_name = \? AND coll_name = \? AND \(")
EXACT_FLOATS = 2**53  # below it, numbers equal as MongoDB compares them are equal in SQLite
ANY_TAG = object()  # a seek alternative: any tagged value (Int64, Decimal128, ...) at the field
MAX_SEEKS = 8
# The keys of the change event mongoeco serializes after each write, in its order.
EVENT_KEYS = (
    "operation_type",
    "db_name",
    "coll_name",
    "document_key",
    "full_document",
    "update_description",
)
BINARIES = frozenset({bytes, Binary, MongoecoBinary})
LARGE = 4096  # bytes: a binary this large is spliced into the text rather than dumped
RECENT_DOCUMENTS = 16  # rows kept for their change events (a batch of writes)
RECENT_CHARS = 32 * 2**20
MARK = f"cook-binary-{uuid.uuid4().hex}"
# Exact types whose equal values have one JSON text under mongoeco's codec.
ONE_TEXT = frozenset(
    {
        *(str, int, bool, bytes, type(None), dt.datetime, Binary, ObjectId, MongoecoBinary),
        *(MongoecoId, BsonInt32, BsonInt64),
    }
)


class NamespacedIndexesEngine(IndexedReadsEngine):
    """``IndexedReadsEngine`` whose writes pay for their own namespace only (module docstring).

    The ``cook_*`` switches exist for the tests, which turn each part off to show it matters.
    """

    cook_namespaced = True
    cook_unique_seeks = True
    cook_encode_once = True
    cook_shared_scalar_index = True

    # --- 5. partial indexes, and statements that name their namespace -------------------

    def _cook_probe_name(self, db_name: str, coll_name: str, field: str) -> str:
        if not self.cook_namespaced:
            return super()._cook_probe_name(db_name, coll_name, field)
        key = f"{db_name}\0{coll_name}\0{json_path_for_field(field)}"
        return "cook_probe_" + hashlib.sha256(key.encode()).hexdigest()[:16]

    def _cook_index_where(self, db_name: str, coll_name: str) -> str:
        if not self.cook_namespaced:
            return super()._cook_index_where(db_name, coll_name)
        return " WHERE " + namespace_where(db_name, coll_name)

    def _cook_namespace(self, db_name: str, coll_name: str) -> Fragment:
        if not self.cook_namespaced:
            return super()._cook_namespace(db_name, coll_name)
        return namespace_where(db_name, coll_name), []

    def _build_select_sql(
        self, db_name: str, coll_name: str, plan: Any, **kwargs: Any
    ) -> tuple[str, list[object]]:
        sql, params = super()._build_select_sql(db_name, coll_name, plan, **kwargs)
        if not self.cook_namespaced:
            return sql, params
        return literal_namespace(sql, params, db_name, coll_name)

    def _create_sqlite_connection(self) -> sqlite3.Connection:
        """Every connection mongoeco opens (writer, readers, change delivery), planning with
        SQLite's query planner stability guarantee: a statement with bound parameters is
        planned without their values, so it never uses a namespace-partial index.

        Without it, a statement whose namespace is bound (``_load_documents``' ``WHERE db_name
        = ? AND coll_name = ?``, kept in Python's statement cache) that was first prepared while
        ``documents`` had no partial index, and re-prepared after an index change, is planned
        on that re-prepare's bound values, may pick that namespace's partial index, and keeps
        it for every later binding (SQLite 3.40.1 does not re-prepare it when the binding
        changes): it then reads no row of any other namespace, and a unique key checked by
        that scan admitted duplicates. Statements that need these indexes name their namespace
        as literals, which the guarantee does not affect."""
        conn: sqlite3.Connection = super()._create_sqlite_connection()
        if self.cook_namespaced:
            conn.setconfig(sqlite3.SQLITE_DBCONFIG_ENABLE_QPSG, True)
        return conn

    def _connect_sync(self) -> None:
        super()._connect_sync()
        with self._lock:
            self._cook_scope_indexes()
            self._cook_share_scalar_indexes()

    def _create_index_sync(self, db_name: str, coll_name: str, *args: Any, **kwargs: Any) -> str:
        with self._lock:
            name: str = super()._create_index_sync(db_name, coll_name, *args, **kwargs)
            self._cook_scope_indexes()
            self._cook_share_scalar_indexes()
        return name

    def _rename_collection_sync(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super()._rename_collection_sync(*args, **kwargs)
            self._cook_scope_indexes()

    def _cook_scope_indexes(self) -> None:
        """Make every index of ``documents`` partial by its namespace; drop Cook's old
        whole-table probe indexes, and the probe indexes of namespaces no collection has any
        more (mongoeco drops its own indexes with a collection, not Cook's: left behind, every
        dropped or renamed collection's probes stayed in the schema, which SQLite parses again
        after each DDL and weighs for every statement it prepares). Each change is its own
        transaction, the orphans' drops one together; nothing to do costs three catalog reads.
        Skipped inside a session's transaction (the next start does it)."""
        if not self.cook_namespaced:
            return
        conn = self._require_connection()
        if conn.in_transaction:
            return
        orphans = orphaned_probes(conn)
        if orphans:
            in_transaction(conn, *(f"DROP INDEX {self._quote_identifier(n)}" for n in orphans))
        owners = {
            row[0]: (row[1], row[2])
            for row in conn.execute(
                "SELECT physical_name, db_name, coll_name FROM indexes "
                "WHERE physical_name IS NOT NULL"
            )
        }
        partial = {row[1]: bool(row[4]) for row in conn.execute("PRAGMA index_list(documents)")}
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_schema "
            "WHERE type = 'index' AND tbl_name = 'documents' AND sql IS NOT NULL"
        ).fetchall():
            if name in owners:
                where = " WHERE " + namespace_where(*owners[name])
                if sql.endswith(where):
                    continue
                whole = sql.rpartition(" WHERE db_name = ")[0] if partial.get(name) else sql
                in_transaction(conn, f"DROP INDEX {self._quote_identifier(name)}", whole + where)
            elif name.startswith("cook_") and not partial.get(name):
                in_transaction(conn, f"DROP INDEX {self._quote_identifier(name)}")

    # --- 8. one physical index for every scalar index ----------------------------------

    def _cook_share_scalar_indexes(self) -> None:
        """Make every scalar index name the shared physical index, and drop the identical ones
        mongoeco made per index; one transaction (a kill leaves the old layout or the new).
        Skipped inside a session's transaction (the next start does it)."""
        if not self.cook_shared_scalar_index:
            return
        conn = self._require_connection()
        if conn.in_transaction:
            return
        statements = share_scalar_indexes(conn)
        if statements:
            in_transaction(conn, *statements)
            self._invalidate_index_cache()

    def _cook_keeping_shared_scalar_index(self, drop: Any, *args: Any, **kwargs: Any) -> Any:
        """Run mongoeco's ``drop`` (which drops a dropped scalar index's physical index, here
        the shared one) and create the shared index again in the same transaction, so no
        statement ever sees it missing."""
        if not self.cook_shared_scalar_index:
            return drop(*args, **kwargs)
        with self._lock:
            conn = self._require_connection()
            if conn.in_transaction:  # a session's transaction: it commits both
                result = drop(*args, **kwargs)
                conn.execute(CREATE_SHARED_SCALAR_INDEX)
                return result
            conn.execute("BEGIN IMMEDIATE")  # mongoeco's own write scope nests as a savepoint
            try:
                result = drop(*args, **kwargs)
                conn.execute(CREATE_SHARED_SCALAR_INDEX)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def _drop_index_sync(self, *args: Any, **kwargs: Any) -> None:
        self._cook_keeping_shared_scalar_index(super()._drop_index_sync, *args, **kwargs)

    def _drop_indexes_sync(self, *args: Any, **kwargs: Any) -> None:
        self._cook_keeping_shared_scalar_index(super()._drop_indexes_sync, *args, **kwargs)

    def _drop_collection_sync(self, *args: Any, **kwargs: Any) -> None:
        """Keeps the shared scalar index (part 8), then drops the namespace's probe indexes
        (part 5: mongoeco drops only its own)."""
        with self._lock:
            drop = super()._drop_collection_sync
            self._cook_keeping_shared_scalar_index(drop, *args, **kwargs)
            self._cook_scope_indexes()

    def _drop_database_sync(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            drop = super()._drop_database_sync
            self._cook_keeping_shared_scalar_index(drop, *args, **kwargs)
            self._cook_scope_indexes()

    # --- 7. one encoding per write -------------------------------------------------------

    def _serialize_document(self, document: Any) -> str:
        recent = self.__dict__.get("_cook_recent")
        if recent is None:
            recent = self.__dict__.setdefault("_cook_recent", _Recent())
        if self.cook_encode_once and type(document) is dict and tuple(document) == EVENT_KEYS:
            text = recent.take(document["full_document"])
            if text is not None:
                serialize = super()._serialize_document
                parts = [
                    json_dumps_compact(key)
                    + ":"
                    + (text if key == "full_document" else serialize(v))
                    for key, v in document.items()
                ]
                return "{" + ",".join(parts) + "}"
            return self._cook_encode(document)  # an event: nothing will reuse its text
        text = self._cook_encode(document)
        recent.keep(document, text)
        return text

    def _cook_encode(self, document: Any) -> str:
        """mongoeco's text for ``document``; a large binary at the top level is spliced in as
        the codec writes it (its hexadecimal digits), not passed through ``json.dumps``."""
        large = []
        plain = type(document) is dict or DocumentCodec.is_internal(document)  # not a SON
        if self.cook_encode_once and plain and isinstance(document, dict):
            large = [k for k, v in document.items() if type(v) in BINARIES and len(v) >= LARGE]
        if not large:
            text: str = super()._serialize_document(document)
            return text
        fragments = [self._cook_binary_fragment(document[k]) for k in large]
        smaller = dict(document) | dict.fromkeys(large, MARK)
        pieces = super()._serialize_document(smaller).split(f'"{MARK}"')
        texts = [f for f in fragments if f is not None]
        if len(pieces) != len(large) + 1 or len(texts) != len(large):
            whole: str = super()._serialize_document(document)
            return whole
        spliced = zip(texts, pieces[1:], strict=True)
        return pieces[0] + "".join(f + piece for f, piece in spliced)

    def _cook_binary_fragment(self, value: bytes) -> str | None:
        """The codec's JSON for ``value``, built from its template for this kind of binary (the
        text of an empty one, checked once against the codec on a sample)."""
        subtype = getattr(value, "subtype", None)
        templates: dict[Any, tuple[str, str] | None] = self.__dict__.setdefault("_cook_bins", {})
        key = (type(value), subtype)
        if key not in templates:
            templates[key] = _binary_template(super()._serialize_document, type(value), subtype)
        template = templates[key]
        if template is None:
            return None
        return template[0] + binascii.hexlify(value).decode("ascii") + template[1]

    # --- 6. unique keys by a seek --------------------------------------------------------

    def _unique_index_conflict_via_scalar_entries(
        self,
        conn: sqlite3.Connection,
        collection_id: int | None,
        index: Any,
        document: Any,
        *,
        exclude_storage_key: str | None,
    ) -> bool | None:
        """mongoeco's answer (True: duplicate, False: none, None: decide by a scan); where it
        would scan, False when one seek finds no document that could hold the same key."""
        found: bool | None = super()._unique_index_conflict_via_scalar_entries(
            conn, collection_id, index, document, exclude_storage_key=exclude_storage_key
        )
        if found is not None or not self.cook_unique_seeks or collection_id is None:
            return found
        if not index.get("physical_name") or index.get("collation") is not None:
            return None
        alternatives = [_seek_alternatives(document, field) for field in index["fields"]]
        if any(a is None for a in alternatives):
            return None
        seeks = list(product(*[a for a in alternatives if a is not None]))
        if len(seeks) > MAX_SEEKS:
            return None
        row = conn.execute(
            "SELECT db_name, coll_name FROM collections WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        if row is None:
            return None
        namespace = namespace_where(row[0], row[1]) if self.cook_namespaced else None
        for seek in seeks:
            terms, params = [namespace or "db_name = ? AND coll_name = ?"], []
            if namespace is None:
                params += [row[0], row[1]]
            for field, (tag, value) in zip(index["fields"], seek, strict=True):
                t, v = index_expressions_sql(field)
                if tag is ANY_TAG:
                    terms.append(f"{t} > ''")
                else:
                    terms.append(f"{t} = ? AND {v} = ?")
                    params += [tag, value]
            sql = f"SELECT storage_key FROM documents WHERE {' AND '.join(terms)} LIMIT 2"  # noqa: S608
            if any(key != exclude_storage_key for (key,) in conn.execute(sql, params)):
                return None  # a candidate: mongoeco's own check decides
        return False


def literal_namespace(
    sql: str, params: list[object], db_name: str, coll_name: str
) -> tuple[str, list[object]]:
    """``sql`` with its leading bound namespace terms as literals (unchanged if it has none, or
    if any parameter precedes them)."""
    match = BOUND_NAMESPACE.search(sql)
    if match is None or "?" in sql[: match.start()] or list(params[:2]) != [db_name, coll_name]:
        return sql, params
    head, tail = sql[: match.start()], sql[match.end() :]
    return f"{head}WHERE {namespace_where(db_name, coll_name)} AND ({tail}", list(params[2:])


def _seek_alternatives(document: Any, field: str) -> list[tuple[object, object]] | None:
    """The ``(T(f), V(f))`` pairs a stored document whose key at ``field`` equals this
    document's (as mongoeco compares keys) may have, or None when that is not known.

    A string is stored plain (a Code is tagged); an ObjectId tagged ``objectid`` with its hex;
    a number plain (equal as SQLite compares when below 2**53) or tagged (Int64, Decimal128,
    ...: any tag, the seek cannot know its value's form)."""
    values = QueryEngine.extract_values(document, field)
    if len(values) != 1:
        return None
    value = values[0]
    if type(value) is str:
        return [("", value)]
    if is_object_id_like(value):
        return [("objectid", str(normalize_object_id(value)))]
    if type(value) in (int, float) and math.isfinite(value) and abs(value) < EXACT_FLOATS:
        return [("", value), (ANY_TAG, None)]
    return None


class _Recent:
    """The documents serialized last (a batch's rows come before their events) and their
    texts, bounded in number and size; each text is taken at most once."""

    def __init__(self) -> None:
        self.kept: list[tuple[Any, str]] = []
        self.chars = 0
        self.lock = threading.Lock()

    def keep(self, document: Any, text: str) -> None:
        with self.lock:
            if len(self.kept) >= RECENT_DOCUMENTS or self.chars + len(text) > RECENT_CHARS:
                self.kept, self.chars = [], 0
            self.kept.append((document, text))
            self.chars += len(text)

    def take(self, document: Any) -> str | None:
        """The kept text of a document that certainly serializes to it (the same object, or
        one with the same ``_id`` and the same text), or None."""
        with self.lock:
            return self._take(document)

    def _take(self, document: Any) -> str | None:
        found = next((i for i, (d, _) in enumerate(self.kept) if d is document), None)
        if found is None and isinstance(document, dict) and "_id" in document:
            key = document["_id"]
            found = next(
                (
                    i
                    for i, (d, _) in enumerate(self.kept)
                    if isinstance(d, dict) and "_id" in d and _same_text(d["_id"], key)
                ),
                None,
            )
        if found is None or not _same_text(document, self.kept[found][0]):
            return None
        _, text = self.kept.pop(found)
        self.chars -= len(text)
        return text


def _same_text(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` certainly serialize to the same text (False: not known)."""
    if a is b and DocumentCodec.is_internal(a):
        return True  # mongoeco's immutable internal document (its deepcopy is itself)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_text(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_same_text, a, b))
    if type(a) is float:
        return a == b and a != 0  # not NaN, nor a zero of either sign
    return type(a) in ONE_TEXT and bool(a == b)


def _binary_template(
    serialize: Any, kind: type[bytes], subtype: int | None
) -> tuple[str, str] | None:
    """The codec's text for an empty binary of this kind, split where its digits go; None
    unless a sample comes out of the codec exactly as the template predicts."""

    def make(data: bytes) -> Any:
        return kind(data) if subtype is None else kind(data, subtype)  # type: ignore[call-overload]

    empty: str = serialize(make(b""))
    if empty.count('""') != 1:
        return None
    head, tail = empty.split('""')
    sample = b"\x00\x7f\xff"
    if serialize(make(sample)) != f'{head}"{sample.hex()}"{tail}':
        return None
    return head + '"', '"' + tail
