"""A unique index built on stored documents: the same outcome as mongoeco's own build, from
one read of the documents instead of a comparison of every pair
(``service/embedded_index_builds.py``)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mongoeco import MongoClient as DirectClient
from mongoeco.engines.sqlite import SQLiteEngine

from service.embedded_db import make_engine
from service.embedded_index_builds import IndexBuildsEngine
from service.embedded_readers import PooledReadersEngine as CookEngine
from tests import engine_diff

CASES = 60
# Unique indexes to build: (keys, options). Values come from small pools, so about half the
# builds meet a duplicate; "a" and "s" hold arrays in messy collections (two arrays in one
# compound key is a shape mongoeco refuses).
SPECS: tuple[tuple[list[tuple[str, int]], dict[str, Any]], ...] = (
    ([("u", 1)], {}),
    ([("u", 1)], {"name": "u_sparse", "sparse": True}),
    ([("u", 1)], {"name": "u_strings", "partialFilterExpression": {"u": {"$type": "string"}}}),
    ([("u", -1), ("b", 1)], {}),
    ([("a", 1)], {"name": "a_unique"}),
    ([("a", 1), ("u", 1)], {}),
    ([("s", 1), ("a", 1)], {"name": "s_a"}),
    ([("nested.a", 1)], {"sparse": True}),
)
U_VALUES: tuple[Any, ...] = (None, engine_diff.MISSING, 7, 7.0, "7", ["u1", "u2"], [], {"k": 1})


class PairwiseEngine(CookEngine):
    """Cook's engine with mongoeco's own unique builds: the reference. (Not mongoeco's plain
    engine: Cook's indexes may read a collection in another order, and a build reports the
    first duplicate it meets.)"""

    cook_linear_unique_builds = False


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    reference = DirectClient(engine=PairwiseEngine(str(tmp_path / "reference.sqlite3")))
    candidate = DirectClient(engine=CookEngine(str(tmp_path / "cook.sqlite3")))
    try:
        yield reference, candidate
    finally:
        reference.close()
        candidate.close()


def documents(rng: random.Random, kind: str, count: int) -> list[dict[str, Any]]:
    docs = []
    for n in range(count):
        doc = engine_diff.document(rng, kind, n)
        roll = rng.random()
        if roll < 0.1:  # another document's key, or a value of another type
            u = rng.choice(U_VALUES)
            doc.pop("u")
            if u is not engine_diff.MISSING:
                doc["u"] = u
        elif roll < 0.12:
            doc["u"] = f"u{rng.randrange(count)}"
        docs.append(doc)
    return docs


def outcome(collection: Any, keys: list[tuple[str, int]], options: dict[str, Any]) -> Any:
    try:
        return ("ok", collection.create_index(keys, unique=True, **options))
    except Exception as exc:  # noqa: BLE001 - both engines must fail alike, with one message
        return ("error", type(exc).__name__, str(exc))


def state(collection: Any) -> Any:
    indexes = sorted(map(repr, collection.list_indexes()))
    return indexes, [repr(d) for d in collection.find({}).sort("_id", 1)]


def test_unique_builds_on_random_documents_end_as_mongoecos_own_do(
    clients: tuple[Any, Any],
) -> None:
    failed = 0
    for case in range(CASES):
        rng = random.Random(case)
        kind = ("clean", "mixed", "messy")[case % 3]
        keys, options = SPECS[case % len(SPECS)]
        docs = documents(rng, kind, rng.randint(1, 40))
        twice = case % 7 == 0  # the same index asked for again: mongoeco's path, unchanged
        probe = dict(rng.choice(docs), _id=f"probe{case}")  # another one's key, once built
        results = []
        for side in (client.db[f"c{case}"] for client in clients):
            side.insert_many([dict(d) for d in docs])
            first = outcome(side, keys, options)
            again = outcome(side, keys, options) if twice else None
            added = engine_diff.attempt(lambda s=side, p=probe: s.insert_one(dict(p)))
            results.append((first, again, added[0], state(side)))
        assert results[0] == results[1], f"case {case} ({kind}, {keys}, {options})"
        failed += results[0][0][0] == "error"
    assert 5 < failed < CASES - 5, f"{failed} of {CASES} builds failed: the cases are too alike"


class Comparisons:
    """Counts the pairs of documents mongoeco's unique-index check compares."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        compare = SQLiteEngine._unique_index_conflict

        def counted(engine: SQLiteEngine, *args: Any) -> Any:
            self.count += 1
            return compare(engine, *args)

        monkeypatch.setattr(SQLiteEngine, "_unique_index_conflict", counted)


def pieces(client: Any, stored: int) -> Any:
    """A collection of ``stored`` pieces, each with a seat of its own."""
    collection = client.db.pieces
    collection.insert_many([{"_id": f"pc_{n}", "seat": f"ck:{n}"} for n in range(stored)])
    return collection


@pytest.mark.parametrize("session", [False, True], ids=["no session", "a session (the wire's)"])
def test_a_unique_build_compares_no_pair_where_mongoeco_compares_every_one(
    clients: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch, session: bool
) -> None:
    stored = 300
    counted = []
    for client in clients:
        collection = pieces(client, stored)
        comparisons = Comparisons(monkeypatch)
        if session:
            with client.start_session() as s:
                collection.create_index("seat", unique=True, session=s)
        else:
            collection.create_index("seat", unique=True)
        counted.append(comparisons.count)
        monkeypatch.undo()
    assert counted == [stored * (stored - 1) // 2, 0]


def test_a_duplicate_is_found_with_the_comparisons_of_its_own_documents(
    clients: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = 300
    results = []
    for client in clients:
        collection = pieces(client, stored)
        collection.insert_one({"_id": "pc_late", "seat": "ck:150"})
        comparisons = Comparisons(monkeypatch)
        results.append((outcome(collection, [("seat", 1)], {}), comparisons.count))
        monkeypatch.undo()
        assert [i["name"] for i in collection.list_indexes()] == ["_id_"]
    (theirs, their_count), (ours, our_count) = results
    assert ours == theirs
    assert ours[0] == "error"
    assert "ck:150" in ours[2]
    assert our_count == 1  # the late one against the one it repeats
    assert their_count > stored * (stored - 1) // 4  # (in storage order, by _id: about half)


def test_the_embedded_server_builds_with_this_engine(tmp_path: Path) -> None:
    engine = make_engine(tmp_path)
    try:
        assert isinstance(engine, IndexBuildsEngine)
    finally:
        DirectClient(engine=engine).close()
