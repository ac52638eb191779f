"""Cook's subclasses of mongoeco's SQLite engine, pinned to one mongoeco release (4.11.0).

They override private methods, so ``service/embedded_db.py`` uses them only on that exact
version. None of them changes a result; each one only lets SQLite find the same rows faster.

``FlatInsertSQLiteEngine`` (inserts):

1. mongoeco scanned every stored document to check a new ``_id``; skipped for non-numeric ids;
2. the change-event dispatch, which no wire client can consume, is off, and no change consumer
   is registered (one whose checkpoint never moved made commands fail 10,000 writes later).

``IndexedReadsEngine`` (reads), on top of it:

1. **Implied index terms.** mongoeco builds, per ordered index, ``CREATE INDEX ON documents
   (db_name, coll_name, T(f1), V(f1), ...)`` with ``T(f)``/``V(f)`` (``type_expression_sql`` /
   ``value_expression_sql``), but translates ``{f: "x"}`` to ``json_type(document, '$.f') =
   'text' AND json_extract(document, '$.f') = ?``. SQLite matches an expression index only on
   the identical expression, so it used the index's ``(db_name, coll_name)`` prefix and read the
   whole collection. For every top-level conjunct whose SQL is exactly mongoeco's scalar form
   (equality, ``$in``, same-type range; checked by regenerating that form and comparing the
   text), the WHERE clause gets a conjunct on ``T(f)``/``V(f)`` (or ``storage_key`` for a string
   ``_id``) that the conjunct's own SQL implies: ``W AND I`` selects exactly what ``W`` selects
   when ``W`` implies ``I``. mongoeco's SQL stays as the residual filter.
2. **Sorts in index order.** When every stored value at each sort field is missing, null, a
   number or a string (or missing, null or a boolean), mongoeco's ``ORDER BY <type bracket>,
   V(f)`` orders exactly as ``ORDER BY V(f)`` (the bracket is a function of V's SQLite type
   class, in the same order), and ``T(f) = ''`` holds for every document (no object at f), so
   that term is added too and SQLite reads the order off the index instead of sorting.
3. **Feature probes from indexes.** Before a read mongoeco asks "does any document hold an
   array / a real / a mismatched type / a tagged type at f", each a scan of the collection; the
   answers are cached, but every write clears the cache, so under a cook nearly every read paid
   several scans. Here one question, "which ``json_type`` values occur at f", answers all of
   them, and is asked of an expression index ``cook_probe_*`` on ``(db_name, coll_name,
   json_type(document, P), json_extract(document, P."$mongoeco".type))`` by one seek per JSON
   type. The probe indexes are created on the write path, inside a write's own transaction:
   in WAL mode a read transaction cannot take the write lock once the file has moved on (SQLite
   then answers "database is locked" at once), so a read never runs DDL. Before its index
   exists, the same question is answered by one scan (``SELECT DISTINCT``).

4. **Explain under the engine's lock.** mongoeco's ``explain`` resolves the hint and plans the
   query in a worker thread without the engine's lock, on the connection every other thread
   uses under it; now and then it read another statement's row ("tuple index out of range",
   "'NoneType' object is not subscriptable"). Both steps now take the lock (re-entrant, so the
   find paths that already hold it are unchanged).

5. **Projections in place.** For a find served by SQL, mongoeco decodes each row and then
   projects it, deep-copying the whole document before deleting an excluded field (Cook's reads
   of pieces leave out their bookkeeping). The document was decoded from its row a moment
   before, and nothing else holds it, so exclusions of plain fields and ``_id``-only
   projections are applied to it directly (same deletions, same key order); inclusions,
   operators (``$slice``, ``$elemMatch``, ...) and paths under ``_id`` go to mongoeco's code
   as before. The projection is parsed (and refused) by mongoeco's own parser. Also, the
   codec's ``inspect.signature`` is asked once per codec, not once per decoded document.
   ``tests/test_embedded_projection.py`` compares random projections with the unpatched engine.

Where Cook's probe indexes live (one per path across all namespaces here) and how their
queries name the namespace are three small hooks (``_cook_probe_name``, ``_cook_index_where``,
``_cook_namespace``) that ``service/embedded_writes.py`` overrides to make them per namespace.

Same race as mongoeco's own choice between its scalar-only and array-aware SQL: a probe's
answer holds for the collection as the engine last saw it (writes clear the cache).
``tests/test_embedded_engine.py`` compares this engine with the unpatched one on thousands of
random filters, sorts and writes, shows that breaking any of the three parts is caught, and
checks by ``explain`` that Cook's query shapes are served by their indexes and stay flat.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from collections.abc import Iterator
from typing import Any

from mongoeco.compat import MONGODB_DIALECT_70
from mongoeco.core.codec import DocumentCodec
from mongoeco.core.identity import id_contains_numeric_value
from mongoeco.core.projections import _delete_projection_value, _ProjectionExecutor
from mongoeco.core.query_plan import (
    AndCondition,
    EqualsCondition,
    GreaterThanCondition,
    GreaterThanOrEqualCondition,
    InCondition,
    LessThanCondition,
    LessThanOrEqualCondition,
)
from mongoeco.core.sql_translation import SQLSelectStatement
from mongoeco.engines._sqlite_fast_paths import (
    build_scalar_sort_select_sql,
    build_select_sql,
    build_select_statement_with_custom_order,
)
from mongoeco.engines._sqlite_outbox import outbox_info
from mongoeco.engines.sqlite_query import (
    _translate_equals_scalar_only,
    _translate_same_type_comparison,
    json_path_for_field,
    translate_query_plan,
    type_expression_sql,
    value_expression_sql,
)

from service.embedded_races import RaceSafeEngine

Fragment = tuple[str, list[object]]
Types = frozenset[str | None]  # json_type values present at a field; None: missing

JSON_TYPES = ("null", "true", "false", "integer", "real", "text", "array", "object")
RANGE_OPERATORS: dict[type, str] = {
    GreaterThanCondition: ">",
    GreaterThanOrEqualCondition: ">=",
    LessThanCondition: "<",
    LessThanOrEqualCondition: "<=",
}
# Type sets at a sort field whose mongoeco bracket order is the SQLite order of V(f).
INDEX_ORDERED_TYPES: tuple[Types, ...] = (
    frozenset({None, "null", "integer", "real", "text"}),
    frozenset({None, "null", "true", "false"}),
)
COMPARISON_TYPES = {"number": {"integer", "real"}, "string": {"text"}, "bool": {"true", "false"}}
MAX_WANTED_FIELDS = 64
NOT_PLAIN = object()
_DECODE_ACCEPTS_WRAPPERS: dict[Any, bool] = {}  # per codec decode function (part 5)


class FlatInsertSQLiteEngine(RaceSafeEngine):
    """SQLiteEngine whose inserts stay O(log n) as a collection grows.

    Two scans made each insert linear in the collection's size:

    1. a scan of every document comparing ``_id``s, skipped for non-numeric ``_id``s (numeric
       ids compare by value across types, so only they need it);
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
        self._ensure_probe_indexes(db_name, coll_name)
        super()._validate_document_against_unique_indexes(
            db_name,
            coll_name,
            document,
            exclude_storage_key=exclude_storage_key,
            skip_id_check=skip_id_check,
            scan_payload_id=scan_payload_id,
        )

    def _ensure_probe_indexes(self, db_name: str, coll_name: str) -> None:
        """Give SQLite an index on ``json_type(document, path)`` for every unique index field.

        Runs only here, on the write path, inside the write's own transaction: a read path must
        never write (see the module docstring). Not remembered in memory either: a write that
        rolls back also rolls back this DDL, and ``IF NOT EXISTS`` costs a schema lookup when
        the index is already there.
        """
        conn = self._require_connection()
        for index in self._load_indexes(db_name, coll_name):
            if not index.get("unique"):
                continue
            for field in index["fields"]:
                path = json_path_for_field(field)
                name = "cook_array_probe_" + hashlib.sha256(path.encode()).hexdigest()[:16]
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {name} "
                    f"ON documents (db_name, coll_name, json_type(document, {_literal(path)}))"
                )

    def dispatch_committed_changes(self, consumer_id: str, consumer: object) -> None:
        """Deliver nothing: over the wire nobody can consume change events.

        mongoeco dispatches every committed write to in-process change-stream consumers under
        a lease, acquired in a loop that sleeps on the server's event loop. Over the wire
        ``watch()`` is unsupported, so the dispatch is pure cost, and a lease left behind (a
        release that failed) froze every insert of the whole server for up to its 30 s TTL.
        The outbox itself stays bounded by mongoeco's own compaction (10,000 entries).
        """

    def register_change_consumer(
        self, consumer_id: str, *, initial_checkpoint: int | None = None, durable: bool = False
    ) -> int:
        """Record no consumer: the outbox's newest sequence, as a fresh registration gets.

        mongoeco registers a consumer for each change hub that prepares to write, and the
        wire server makes a hub of its own for every ``$changeStream`` it is asked for (and
        refuses): Cook's API asks once at each start. With the dispatch off, such a consumer's
        checkpoint never moved, so 10,000 writes later mongoeco's compaction had pruned the
        history after it, and when a new hub got the same ``id()`` (its consumer id) and
        registered again, mongoeco refused it ("change history after sequence ... is no longer
        available"): whatever command had made that hub failed. Nothing can consume the
        events, so nothing is registered, and each write's event is pruned in its own
        transaction, as on a server nobody ever asked for a change stream.
        """
        with self._change_delivery_storage(allow_transactional_registration=True) as conn:
            return int(outbox_info(conn)["newestSequence"])


class IndexedReadsEngine(FlatInsertSQLiteEngine):
    """Reads served by mongoeco's own expression indexes (module docstring, parts 1-3).

    The ``cook_*`` switches exist for ``tests/test_embedded_engine.py``, which turns each part
    off or breaks it to show that the differential test notices.
    """

    cook_implied_terms = True
    cook_index_order = True
    cook_indexed_probes = True
    cook_projection_in_place = True

    # --- 5. projections applied to documents of their own, without a copy --------------

    def _project_sql_scan_rows(self, rows: Any, semantics: Any, reader: Any) -> Any:
        """mongoeco's projection of a find's rows, in place on each freshly decoded document.

        mongoeco deep-copies each document before deleting an excluded field from it; the
        document was just decoded from its row (its own tree, referenced nowhere else), so
        the copy only costs. Exclusions of plain fields and ``_id``-only projections are
        applied to the document itself; anything else (inclusions, operators, paths under
        ``_id``) goes to mongoeco's projection as before.
        """
        if not self.cook_projection_in_place or semantics.projection is None:
            return super()._project_sql_scan_rows(rows, semantics, reader)
        executor: Any = _ProjectionExecutor  # untyped
        # Parsed (and refused when invalid) exactly as mongoeco does.
        parsed = executor(
            semantics.projection, selector_filter=semantics.filter_spec, dialect=semantics.dialect
        )._parsed
        if (
            parsed is None
            or parsed.is_inclusion
            or parsed.operator_fields
            or any(p == "_id" or p.startswith("_id.") for p in parsed.regular_fields)
        ):
            return super()._project_sql_scan_rows(rows, semantics, reader)
        excluded = [path for path, keep in parsed.regular_fields.items() if not keep]
        only_id = not parsed.regular_fields
        everything = only_id and not parsed.projection
        include_id = parsed.include_id

        def project(document: dict[str, Any]) -> dict[str, Any]:
            if everything:
                return document
            if only_id and include_id:
                return {"_id": document["_id"]} if "_id" in document else {}
            for path in excluded:
                _delete_projection_value(document, path)
            if not include_id:
                document.pop("_id", None)
            return document

        return (project(self._deserialize_document(payload)) for (payload,) in rows)

    def _decode_codec_payload(self, payload: object, *, preserve_bson_wrappers: bool) -> Any:
        """mongoeco's decode, without asking ``inspect.signature`` of the codec on every
        document whether it takes ``preserve_bson_wrappers`` (asked once per codec)."""
        decode = self._codec.decode
        accepts = _DECODE_ACCEPTS_WRAPPERS.get(decode)
        if accepts is None:
            try:
                accepts = "preserve_bson_wrappers" in inspect.signature(decode).parameters
            except (TypeError, ValueError):
                accepts = False
            _DECODE_ACCEPTS_WRAPPERS[decode] = accepts
        if not accepts:
            return decode(payload)
        return decode(payload, preserve_bson_wrappers=preserve_bson_wrappers)

    # --- 4. explain's unlocked steps, locked ----------------------------------------------

    def _resolve_hint_index(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return super()._resolve_hint_index(*args, **kwargs)

    def _plan_find_semantics_sync(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return super()._plan_find_semantics_sync(*args, **kwargs)

    # --- 3. probe indexes, created on the write path ------------------------------------

    def _ensure_probe_indexes(self, db_name: str, coll_name: str) -> None:
        """One ``cook_probe_*`` index per field of an ordered index, ``_id``, and each field a
        read asked a feature probe about (remembered in memory only as a hint: losing it costs
        one scan, never a wrong answer)."""
        if not self.cook_indexed_probes:
            super()._ensure_probe_indexes(db_name, coll_name)
            return
        fields = {"_id", *self._cook_wanted_fields(db_name, coll_name)}
        for index in self._load_indexes(db_name, coll_name):
            if index.get("physical_name") or index.get("unique"):
                fields.update(index["fields"])
        conn = self._require_connection()
        existing = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'cook_probe_%'"
            )
        }
        for field in sorted(fields):
            name = self._cook_probe_name(db_name, coll_name, field)
            if name not in existing:
                path, tagged_type = _paths(field)
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS {name} ON documents (db_name, coll_name, "
                    f"json_type(document, {path}), json_extract(document, {tagged_type}))"
                    + self._cook_index_where(db_name, coll_name)
                )

    def _cook_probe_name(self, db_name: str, coll_name: str, field: str) -> str:
        """The probe index of ``field``: here one for every namespace (``embedded_writes``
        gives each namespace its own)."""
        return probe_index_name(field)

    def _cook_index_where(self, db_name: str, coll_name: str) -> str:
        """The ``WHERE`` of Cook's indexes: none here (one index spans every namespace)."""
        return ""

    def _cook_namespace(self, db_name: str, coll_name: str) -> Fragment:
        """The namespace terms of Cook's own probe queries, and their parameters."""
        return "db_name = ? AND coll_name = ?", [db_name, coll_name]

    def _cook_wanted_fields(self, db_name: str, coll_name: str) -> set[str]:
        wanted: dict[tuple[str, str], set[str]] = self.__dict__.setdefault("_cook_wanted", {})
        return wanted.setdefault((db_name, coll_name), set())

    def _cook_probe_index_exists(self, db_name: str, coll_name: str, field: str) -> bool:
        row = (
            self._require_connection()
            .execute(
                "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?",
                (self._cook_probe_name(db_name, coll_name, field),),
            )
            .fetchone()
        )
        return row is not None

    # --- 3. every feature probe from one question: which json types occur at f -----------

    def cook_types(self, db_name: str, coll_name: str, field: str) -> Types:
        """The ``json_type(document, path)`` values stored at ``field`` (None: missing)."""
        key = (db_name, coll_name, f"cook_types:{field}")
        cache: dict[Any, Any] = self._collection_features_cache  # invalidated by every write
        cached: Types | None = cache.get(key)
        if cached is not None:
            return cached
        wanted = self._cook_wanted_fields(db_name, coll_name)
        if len(wanted) < MAX_WANTED_FIELDS:
            wanted.add(field)
        path, _ = _paths(field)
        conn = self._require_connection()
        namespace, params = self._cook_namespace(db_name, coll_name)
        if self._cook_probe_index_exists(db_name, coll_name, field):
            where = f"FROM documents WHERE {namespace} AND json_type(document, "
            probes = [f"EXISTS(SELECT 1 {where}{path}) IS NULL)"] + [
                f"EXISTS(SELECT 1 {where}{path}) = '{t}')" for t in JSON_TYPES
            ]
            row = conn.execute("SELECT " + ", ".join(probes), params * len(probes)).fetchone()
            present: Types = frozenset(
                t for t, hit in zip((None, *JSON_TYPES), row, strict=True) if hit
            )
        else:
            rows = conn.execute(
                f"SELECT DISTINCT json_type(document, {path}) FROM documents WHERE {namespace}",  # noqa: S608
                params,
            ).fetchall()
            present = frozenset(r[0] for r in rows)
        cache[key] = present
        return present

    def _field_is_top_level_array_in_collection(
        self, db_name: str, coll_name: str, field: str
    ) -> bool:
        if not self.cook_indexed_probes:
            return bool(super()._field_is_top_level_array_in_collection(db_name, coll_name, field))
        return "array" in self.cook_types(db_name, coll_name, field)

    def _field_contains_real_numeric_in_collection(
        self, db_name: str, coll_name: str, field: str
    ) -> bool:
        if not self.cook_indexed_probes:
            return bool(
                super()._field_contains_real_numeric_in_collection(db_name, coll_name, field)
            )
        return "real" in self.cook_types(db_name, coll_name, field)

    def _field_has_uniform_scalar_sort_type_in_collection(
        self, db_name: str, coll_name: str, field: str
    ) -> str | None:
        if not self.cook_indexed_probes:
            found: str | None = super()._field_has_uniform_scalar_sort_type_in_collection(
                db_name, coll_name, field
            )
            return found
        present = self.cook_types(db_name, coll_name, field)
        if not present:
            return None
        for kind, allowed in COMPARISON_TYPES.items():
            if present <= allowed:
                return kind
        return None

    def _field_has_comparison_type_mismatch_in_collection(
        self, db_name: str, coll_name: str, field: str, expected_type: str
    ) -> bool:
        allowed = COMPARISON_TYPES.get(expected_type)
        if not self.cook_indexed_probes or allowed is None:
            return bool(
                super()._field_has_comparison_type_mismatch_in_collection(
                    db_name, coll_name, field, expected_type
                )
            )
        return bool(self.cook_types(db_name, coll_name, field) - {None} - allowed)

    def _field_has_scalar_or_array_element_type_mismatch_in_collection(
        self, db_name: str, coll_name: str, field: str, expected_type: str
    ) -> bool:
        if (
            self.cook_indexed_probes
            and expected_type in COMPARISON_TYPES
            and "array" not in self.cook_types(db_name, coll_name, field)
        ):
            return self._field_has_comparison_type_mismatch_in_collection(
                db_name, coll_name, field, expected_type
            )
        return bool(
            super()._field_has_scalar_or_array_element_type_mismatch_in_collection(
                db_name, coll_name, field, expected_type
            )
        )

    def _field_contains_tagged_value_type_in_collection(
        self, db_name: str, coll_name: str, field: str, value_type: str
    ) -> bool:
        if not self.cook_indexed_probes:
            return bool(
                super()._field_contains_tagged_value_type_in_collection(
                    db_name, coll_name, field, value_type
                )
            )
        # A tagged value is stored as an object {"$mongoeco": {"type": ...}}.
        if "object" not in self.cook_types(db_name, coll_name, field):
            return False
        key = (db_name, coll_name, f"tagged_type:{field}:{value_type}")
        cache = self._collection_features_cache
        if key in cache:
            return bool(cache[key])
        path, tagged_type = _paths(field)
        namespace, params = self._cook_namespace(db_name, coll_name)
        row = (
            self._require_connection()
            .execute(
                f"SELECT 1 FROM documents WHERE {namespace} "  # noqa: S608
                f"AND json_type(document, {path}) = 'object' "
                f"AND json_extract(document, {tagged_type}) = ? LIMIT 1",
                [*params, value_type],
            )
            .fetchone()
        )
        cache[key] = row is not None
        return row is not None

    def _sort_requires_python(self, db_name: str, coll_name: str, plan: Any, sort: Any) -> bool:
        """mongoeco's answer; its last check, a scan of the matches for an array or an object
        at a sort field, runs only when some document of the collection holds one there."""
        if (
            not self.cook_indexed_probes
            or not sort
            or any(
                self.cook_types(db_name, coll_name, field) & {"array", "object"}
                for field, _ in sort
            )
        ):
            return bool(super()._sort_requires_python(db_name, coll_name, plan, sort))
        if self._plan_has_array_traversing_paths(db_name, coll_name, plan):
            return True
        translate_query_plan(plan)  # raises as mongoeco's check does for untranslatable plans
        return any(
            self._field_traverses_array_in_collection(db_name, coll_name, field)
            or self._field_contains_tagged_bytes_in_collection(db_name, coll_name, field)
            or self._field_contains_tagged_undefined_in_collection(db_name, coll_name, field)
            for field, _ in sort
        )

    # --- 1 and 2: the WHERE terms and ORDER BY the indexes can serve -----------------------

    def _build_select_sql(
        self,
        db_name: str,
        coll_name: str,
        plan: Any,
        *,
        select_clause: str,
        sort: Any = None,
        skip: int = 0,
        limit: int | None = None,
        hint: Any = None,
        dialect: Any = MONGODB_DIALECT_70,
    ) -> tuple[str, list[object]]:
        ordered = self._cook_index_ordered(db_name, coll_name, sort)

        def translate(d: str, c: str, p: Any) -> Fragment:
            return self._cook_translate(d, c, p, sort if ordered else None)

        def scalar_sort(d: str, c: str, p: Any, **kw: Any) -> Fragment | None:
            return build_scalar_sort_select_sql(
                db_name=d,
                coll_name=c,
                plan=p,
                **kw,
                field_traverses_array_in_collection=self._field_traverses_array_in_collection,
                field_contains_tagged_bytes_in_collection=self._field_contains_tagged_bytes_in_collection,
                field_contains_tagged_undefined_in_collection=self._field_contains_tagged_undefined_in_collection,
                field_has_uniform_scalar_sort_type_in_collection=self._field_has_uniform_scalar_sort_type_in_collection,
                translate_query_plan_with_multikey=translate,
                find_scalar_sort_index=self._find_scalar_sort_index,
                lookup_collection_id=lambda dd, cc: self._lookup_collection_id(
                    self._require_connection(), dd, cc
                ),
                quote_identifier=self._quote_identifier,
                value_expression_sql=value_expression_sql,
            )

        def statement(**kw: Any) -> SQLSelectStatement:
            if not ordered:
                return self._sql_translator.build_select_statement(**kw)
            order = ", ".join(
                f"{value_expression_sql(f)} {'ASC' if d == 1 else 'DESC'}" for f, d in kw["sort"]
            )
            sql, params = build_select_statement_with_custom_order(
                select_clause=kw["select_clause"],
                from_clause=kw["from_clause"],
                namespace_sql=kw["namespace_sql"],
                namespace_params=kw["namespace_params"],
                where_fragment=kw["where_fragment"],
                order_sql=f" ORDER BY {order}",
                skip=kw.get("skip", 0),
                limit=kw.get("limit"),
            )
            return SQLSelectStatement(sql=sql, params=tuple(params))

        return build_select_sql(
            db_name=db_name,
            coll_name=coll_name,
            plan=plan,
            select_clause=select_clause,
            sort=sort,
            skip=skip,
            limit=limit,
            hint=hint,
            build_scalar_sort_select_sql_fn=scalar_sort,
            resolve_hint_index=lambda d, c, h: self._resolve_hint_index(
                d, c, h, plan=plan, dialect=dialect
            ),
            translate_query_plan_with_multikey=translate,
            build_select_statement=statement,
            quote_identifier=self._quote_identifier,
        )

    def _cook_index_ordered(self, db_name: str, coll_name: str, sort: Any) -> bool:
        """Whether ``ORDER BY V(f)...`` orders as mongoeco's bracketed ORDER BY does."""
        if not self.cook_index_order or not sort:
            return False
        return all(
            "." not in field
            and direction in (1, -1)
            and any(self.cook_types(db_name, coll_name, field) <= ok for ok in INDEX_ORDERED_TYPES)
            for field, direction in sort
        )

    def _cook_translate(self, db_name: str, coll_name: str, plan: Any, sort: Any) -> Fragment:
        """mongoeco's WHERE for ``plan``, and the index terms it implies (module docstring)."""
        sql, params = self._translate_query_plan_with_multikey(db_name, coll_name, plan)
        terms: list[str] = []
        extra: list[object] = []
        if self.cook_implied_terms:
            # Only fields an expression index holds: elsewhere a term only costs (and can make
            # SQLite's planner prefer sorting to walking the index in order).
            indexed = {"_id"}
            for index in self._load_indexes(db_name, coll_name):
                if index.get("physical_name"):
                    indexed.update(index["fields"])
            for leaf in _conjuncts(plan):
                if getattr(leaf, "field", None) not in indexed:
                    continue
                implied = self._cook_implied_term(db_name, coll_name, leaf, sql)
                if implied is not None:
                    terms.append(implied[0])
                    extra.extend(implied[1])
        for field, _ in sort or ():
            terms.append(f"{type_expression_sql(field)} = ''")  # no object at f: true of all
        if not terms:
            return sql, params
        return f"({sql}) AND " + " AND ".join(terms), [*params, *extra]

    def _cook_implied_term(
        self, db_name: str, coll_name: str, leaf: Any, where_sql: str
    ) -> Fragment | None:
        """A term on the index expressions that ``leaf``'s SQL implies, or None.

        The leaf's SQL is regenerated and must be exactly mongoeco's scalar form for it (and a
        conjunct of the WHERE clause); anything else (array-aware, multikey, bracketed
        comparisons, tagged values) gets no term.
        """
        field = getattr(leaf, "field", None)
        if not isinstance(field, str) or "." in field:
            return None
        leaf_sql, leaf_params = self._translate_query_plan_with_multikey(db_name, coll_name, leaf)
        if leaf_sql != where_sql and f"({leaf_sql})" not in where_sql:
            return None
        try:
            expected = self._cook_scalar_form(db_name, coll_name, leaf)
        except NotImplementedError:
            return None
        if expected is None or (leaf_sql, list(leaf_params)) != (expected[0], list(expected[1])):
            return None
        values = leaf.values if isinstance(leaf, InCondition) else (leaf.value,)
        if field == "_id":
            if not isinstance(leaf, (EqualsCondition, InCondition)) or not values:
                return None
            if any(type(v) is not str for v in values):
                return None
            keys = [self._storage_key(v) for v in values]
            return f"documents.storage_key IN ({', '.join('?' for _ in keys)})", list(keys)
        bound = [_plain(v) for v in values]
        if not bound or any(v is NOT_PLAIN for v in bound):
            return None
        T, V = type_expression_sql(field), value_expression_sql(field)
        if isinstance(leaf, EqualsCondition):
            if bound[0] is None:
                if leaf.null_matches_undefined:  # its SQL also admits T(f) = 'undefined'
                    return None
                return f"{T} = '' AND {V} IS NULL", []
            return f"{T} = '' AND {V} = ?", bound
        if isinstance(leaf, InCondition):
            if None in bound:
                return None
            return f"{T} = '' AND {V} IN ({', '.join('?' for _ in bound)})", bound
        operator = RANGE_OPERATORS[type(leaf)]
        value = bound[0]
        if isinstance(leaf.value, bool) or value is None:
            return None
        # Numbers sort below text in SQLite, text above: the bound keeps the scan in one kind.
        kind_bound = f"{V} < ''" if isinstance(value, (int, float)) else f"{V} >= ''"
        return f"{T} = '' AND {V} {operator} ? AND {kind_bound}", [value]

    def _cook_scalar_form(self, db_name: str, coll_name: str, leaf: Any) -> Fragment | None:
        """The SQL mongoeco emits for ``leaf`` on its scalar-only path, whose meaning is known."""
        if isinstance(leaf, EqualsCondition):
            return _translate_equals_scalar_only(
                leaf.field, leaf.value, null_matches_undefined=leaf.null_matches_undefined
            )
        if isinstance(leaf, InCondition):
            # Its array branches are each guarded by json_type(...) = 'array'.
            if "array" in self.cook_types(db_name, coll_name, leaf.field):
                return None
            return translate_query_plan(leaf)
        operator = RANGE_OPERATORS.get(type(leaf))
        if operator is None:
            return None
        return _translate_same_type_comparison(operator, leaf.field, leaf.value)


def probe_index_name(field: str) -> str:
    return "cook_probe_" + hashlib.sha256(json_path_for_field(field).encode()).hexdigest()[:16]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _paths(field: str) -> tuple[str, str]:
    """SQL literals of the field's JSON path and of its tagged-type path."""
    path = json_path_for_field(field)
    return _literal(path), _literal(f'{path}."{DocumentCodec._MARKER}".{DocumentCodec._TYPE}')


def _plain(value: Any) -> Any:
    """What V(f) holds for a document whose scalar SQL matched ``value``, or NOT_PLAIN."""
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if type(value) is str:
        return value
    if type(value) is float and math.isfinite(value):
        return value
    if type(value) is int and -(2**63) <= value < 2**63:
        return value
    return NOT_PLAIN  # tagged values (mongoeco's SQL already uses T/V), NaN, huge ints, ...


def _conjuncts(plan: Any) -> Iterator[Any]:
    if isinstance(plan, AndCondition):
        for clause in plan.clauses:
            yield from _conjuncts(clause)
    else:
        yield plan
