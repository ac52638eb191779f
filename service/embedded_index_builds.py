"""A unique index built on stored documents in one pass over them (mongoeco 4.11.0).

13. **Unique index builds in linear time.** To build a unique index on a collection that holds
    documents, mongoeco compares each document with every one before it (``create_index`` in
    ``mongoeco/engines/_sqlite_index_admin.py``): 4.5 s at 1,000 documents and about 8 minutes
    at 10,000, measured over the wire, with the engine's lock held all along. A new unique
    index in a later version of Cook would have stalled the start of any deployment with data.

    ``IndexBuildsEngine`` first reads the collection once itself, in mongoeco's order, keeping
    each document's unique keys (``_unique_index_keys``, the keys mongoeco's pairwise check
    intersects) in a set, and stops at the first document mongoeco's loop would fail on: one
    whose shape its own check refuses, or one sharing a key with a document before it (the
    documents before it share none among themselves, so each of its keys names at most one of
    them). mongoeco's build then runs unchanged, but its loop is given just those documents
    (none when nothing fails), so it fails on the same document with the same error, or goes
    on, in the same transaction, to write the index exactly as before.

    Only for what that check covers: a unique index without collation, built outside a
    transaction (an implicit session's build is one), on a collection with no TTL index
    (whose check reads the documents first) and no index of that name yet (mongoeco then
    returns or refuses before reading any). Anything else is mongoeco's build as it was.

``tests/test_embedded_index_builds.py`` builds unique indexes on random documents (duplicates,
arrays, missing fields, nulls, partial and sparse indexes, compound keys) with this engine and
the unpatched one, with the same outcomes and errors, and counts the comparisons: one read of
the documents here, every pair there.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from mongoeco._types.documents import EngineIndexRecord
from mongoeco._types.indexes import default_index_name, index_fields, normalize_index_keys
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.engines.virtual_indexes import (
    document_in_virtual_index,
    normalize_partial_filter_expression,
)
from mongoeco.errors import OperationFailure

from service.embedded_writes import NamespacedIndexesEngine

type Stored = tuple[str, dict[str, Any]]  # (storage key, document), as _load_documents yields
CREATE_INDEX = inspect.signature(SQLiteEngine._create_index_sync)


class IndexBuildsEngine(NamespacedIndexesEngine):
    """``NamespacedIndexesEngine`` whose unique index builds read the documents once."""

    cook_linear_unique_builds = True  # the tests switch it off to compare with mongoeco's build

    def _create_index_sync(self, db_name: str, coll_name: str, *args: Any, **kwargs: Any) -> str:
        with self._lock:  # the engine's (reentrant) write lock, held through mongoeco's build
            record = self._cook_linear_build(db_name, coll_name, *args, **kwargs)
            if record is None:
                return super()._create_index_sync(db_name, coll_name, *args, **kwargs)
            key = (threading.get_ident(), db_name, coll_name)
            self._cook_build_loops[key] = self._cook_first_failure(db_name, coll_name, record)
            try:
                return super()._create_index_sync(db_name, coll_name, *args, **kwargs)
            finally:
                self._cook_build_loops.pop(key, None)

    @property
    def _cook_build_loops(self) -> dict[tuple[int, str, str], list[Stored]]:
        """What the build loop of a unique index reads instead of every document, by thread."""
        loops: dict[tuple[int, str, str], list[Stored]] = self.__dict__.setdefault(
            "_cook_loops", {}
        )
        return loops

    def _load_documents(self, db_name: str, coll_name: str) -> Iterator[Stored]:
        """A unique build's first read of the collection (its pairwise loop) gets just the
        documents it would fail on; every other read, all of them."""
        loop = self._cook_build_loops.pop((threading.get_ident(), db_name, coll_name), None)
        if loop is not None:
            return iter(loop)
        documents: Iterator[Stored] = super()._load_documents(db_name, coll_name)
        return documents

    def _cook_linear_build(
        self, db_name: str, coll_name: str, *args: Any, **kwargs: Any
    ) -> EngineIndexRecord | None:
        """The record the build's loop checks documents against, when this engine's one pass
        covers the build (module docstring); None for mongoeco's own build."""
        given = CREATE_INDEX.bind(self, db_name, coll_name, *args, **kwargs).arguments
        if (
            not self.cook_linear_unique_builds
            or not given["unique"]
            or given["collation"] is not None
            or given["expire_after_seconds"] is not None
            or self._session_runtime.session_owns_transaction(given["context"])
        ):
            return None
        try:
            keys = normalize_index_keys(given["keys"])
            partial = normalize_partial_filter_expression(given["partial_filter_expression"])
        except (TypeError, ValueError):
            return None  # mongoeco refuses it with its own error
        if keys == [("_id", 1)] or any(direction not in (1, -1) for _, direction in keys):
            return None
        name = given["name"] or default_index_name(keys)
        if any(
            index["name"] == name or index.get("expire_after_seconds") is not None
            for index in self._load_indexes(db_name, coll_name)
        ):
            return None
        key: list[tuple[str, int | str]] = list(keys)  # the record's own (wider) type
        return EngineIndexRecord(
            name=name,
            fields=index_fields(keys),
            key=key,
            unique=True,
            sparse=given["sparse"],
            partial_filter_expression=partial,
        )

    def _cook_first_failure(
        self, db_name: str, coll_name: str, record: EngineIndexRecord
    ) -> list[Stored]:
        """The documents on which mongoeco's pairwise loop fails first, in its order: the one
        it refuses (with the earlier ones sharing a key with it), or none."""
        fields: list[str] = record.fields
        owners: dict[tuple[object, ...], str] = {}  # unique key -> storage key of its document
        for storage_key, document in super()._load_documents(db_name, coll_name):
            if not document_in_virtual_index(document, record):
                continue
            try:
                self._validate_compound_multikey_shape(document, record)
            except OperationFailure:  # mongoeco's loop refuses it, on this document
                return [(storage_key, document)]
            mine = self._unique_index_keys(document, fields)
            shared = {owners[k] for k in mine if k in owners}
            if shared:
                return [*self._cook_stored(db_name, coll_name, shared), (storage_key, document)]
            owners.update(dict.fromkeys(mine, storage_key))
        return []

    def _cook_stored(self, db_name: str, coll_name: str, wanted: Iterable[str]) -> list[Stored]:
        """The documents of those storage keys, in the collection's order."""
        keys = set(wanted)
        stored: Iterator[Stored] = super()._load_documents(db_name, coll_name)
        return [(key, document) for key, document in stored if key in keys]
