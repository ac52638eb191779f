"""A find's projection applied in place (``IndexedReadsEngine``, part 5) returns what the
unpatched engine returns: random documents (missing fields, arrays, nested documents, tagged
values), random filters, sorts and limits, and random projections of every kind (exclusions of
top-level and nested paths, ``_id`` alone, inclusions, ``$slice``, paths under ``_id``, invalid
mixes), each document read many times under different projections (a document decoded once and
shared would show the deletions of an earlier read)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from mongoeco import MongoClient as DirectClient
from mongoeco.engines.sqlite import SQLiteEngine

from service import embedded_engine
from service.embedded_engine import IndexedReadsEngine
from service.embedded_writes import NamespacedIndexesEngine as CookEngine
from tests import engine_diff

PATHS = ("a", "b", "n", "s", "u", "nested", "nested.a", "items", "items.k", "missing")


def with_extras(rng: random.Random, doc: dict[str, Any]) -> dict[str, Any]:
    """A document as Cook's pieces hold them: lists of small documents, nested documents."""
    if rng.random() < 0.6:
        doc["items"] = [
            {"k": rng.choice(["x", 1, None]), "t": "y"} for _ in range(rng.randint(0, 3))
        ]
    if rng.random() < 0.1:
        doc["_id"] = {"x": doc["_id"], "y": 1}
    return doc


def projection(rng: random.Random) -> dict[str, Any] | None:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.55:  # exclusions, as Cook's reads send
        spec: dict[str, Any] = dict.fromkeys(rng.sample(PATHS, rng.randint(1, 3)), 0)
        if rng.random() < 0.3:
            spec["_id"] = rng.choice((0, 1, False, True))
        return spec
    return rng.choice(
        [
            {},
            {"_id": 0},
            {"_id": 1},
            {"a": 1},
            {"a": 1, "_id": 0},
            {"nested.a": 1, "n": True},
            {"_id.x": 0},
            {"_id.x": 0, "a": 0},
            {"items": {"$slice": 1}},
            {"items": {"$slice": 1}, "a": 0},
            {"a": 0, "b": 1},  # invalid: both must fail alike
            {"a": 0, "nested": {"a": 0}},
        ]
    )


@contextmanager
def clients(tmp_path: Path, name: str) -> Iterator[tuple[Any, Any]]:
    made = [
        DirectClient(engine=SQLiteEngine(str(tmp_path / f"{name}-reference.sqlite3"))),
        DirectClient(engine=CookEngine(str(tmp_path / f"{name}-patched.sqlite3"))),
    ]
    try:
        yield made[0].db.items, made[1].db.items
    finally:
        for c in made:
            c.close()


def find(side: Any, filt: Any, spec: Any, sort: Any, limit: int) -> list[Any]:
    return list(side.find(filt, spec).sort(sort).limit(limit))


def set_b(side: Any, target: Any, value: Any) -> int:
    matched: int = side.update_one({"_id": target}, {"$set": {"b": value}}).matched_count
    return matched


def run(reference: Any, candidate: Any, *, kind: str, seed: int, reads: int) -> list[str]:
    """Every disagreement (results compared by ``repr``, in order: sorts end in ``_id``)."""
    rng = random.Random(seed)
    docs = [with_extras(rng, engine_diff.document(rng, kind, n)) for n in range(40)]
    for side in (reference, candidate):
        side.create_index([("a", 1), ("n", 1)], name="a_n")
        side.insert_many([dict(d) for d in docs])
    ids = [d["_id"] for d in docs]
    mismatches = []
    sides = (reference, candidate)
    for i in range(reads):
        spec = projection(rng)
        filt = engine_diff.query(rng, kind, ids)
        sort = engine_diff.sort_spec(rng, tiebreak=True)
        limit = rng.choice((0, 0, 1, 5, 50))

        a, b = (engine_diff.attempt(partial(find, s, filt, spec, sort, limit)) for s in sides)
        if repr(a) != repr(b):
            mismatches.append(f"#{i} find({filt}, {spec}) sort {sort} limit {limit}: {a} != {b}")
        if i % 10 == 0:  # a write now and then: the decoded documents come from new rows
            target, new = rng.choice(ids), rng.choice(["p", "q", 3])
            a, b = (engine_diff.attempt(partial(set_b, s, target, new)) for s in sides)
            if a != b:
                mismatches.append(f"#{i} update of {target!r}: {a} != {b}")
    return mismatches


class InPlace:
    """Counts the projected reads that took the in-place path, i.e. did not reach mongoeco's
    own ``_project_sql_scan_rows`` (so the comparison is not vacuous)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.projected = self.fell_back = 0
        ours, theirs = (
            IndexedReadsEngine._project_sql_scan_rows,
            SQLiteEngine._project_sql_scan_rows,
        )

        def counted(engine: Any, rows: Any, semantics: Any, reader: Any) -> Any:
            self.projected += semantics.projection is not None
            return ours(engine, rows, semantics, reader)

        def fallback(engine: Any, rows: Any, semantics: Any, reader: Any) -> Any:
            candidate = isinstance(engine, IndexedReadsEngine)
            self.fell_back += candidate and semantics.projection is not None
            return theirs(engine, rows, semantics, reader)

        monkeypatch.setattr(IndexedReadsEngine, "_project_sql_scan_rows", counted)
        monkeypatch.setattr(SQLiteEngine, "_project_sql_scan_rows", fallback)

    @property
    def used(self) -> int:
        return self.projected - self.fell_back


@pytest.mark.parametrize("kind", ["clean", "messy"])
def test_a_projection_applied_in_place_returns_what_the_unpatched_engine_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    in_place = InPlace(monkeypatch)
    with clients(tmp_path, kind) as (reference, candidate):
        mismatches = run(reference, candidate, kind=kind, seed=5, reads=400)
    assert not mismatches, "\n".join(mismatches[:5])
    least = 60 if kind == "clean" else 2  # messy: most reads sort or filter in Python
    assert in_place.used > least, f"the in-place projection served only {in_place.used} reads"


def top_level_only(target: Any, path: str) -> None:
    """Broken on purpose: nested paths are not excluded."""
    if "." not in path and isinstance(target, dict):
        target.pop(path, None)


def test_the_comparison_notices_an_in_place_projection_that_skips_nested_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_engine, "_delete_projection_value", top_level_only)
    with clients(tmp_path, "broken") as (reference, candidate):
        assert run(reference, candidate, kind="clean", seed=5, reads=150)


def test_the_comparison_notices_documents_shared_between_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Broken on purpose: each payload decoded once and the same document handed out again."""
    decoded: dict[str, Any] = {}
    original = IndexedReadsEngine._deserialize_document

    def shared(engine: IndexedReadsEngine, payload: str, **kwargs: Any) -> Any:
        if payload not in decoded:
            decoded[payload] = original(engine, payload, **kwargs)
        return decoded[payload]

    monkeypatch.setattr(IndexedReadsEngine, "_deserialize_document", shared)
    with clients(tmp_path, "shared") as (reference, candidate):
        assert run(reference, candidate, kind="clean", seed=5, reads=150)
