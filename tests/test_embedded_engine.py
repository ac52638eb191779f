"""Cook's engine (``PooledReadersEngine``, on the indexed-reads engine) returns what the
unpatched mongoeco engine returns, and breaking any part of the read fixes is caught
(``tests/engine_diff.py`` runs both on the same random workload; ``test_embedded_writes.py``
covers the write-side parts)."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import mongoeco
import pytest
from mongoeco import MongoClient as DirectClient
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire import AsyncMongoEcoProxyServer
from pymongo import MongoClient

from service import embedded_engine
from service.embedded_db import make_engine
from service.embedded_engine import IndexedReadsEngine
from service.embedded_readers import PooledReadersEngine as CookEngine
from tests import engine_diff

SOAK = os.environ.get("COOK_SOAK") == "1"
# (kind of collection, operations, documents at the start): a few thousand cases by default.
RUNS = (("clean", 900, 60), ("mixed", 600, 40), ("messy", 500, 30))
SOAK_SEEDS = range(100, 110)


def differential(tmp_path: Path, kind: str, ops: int, docs: int, seed: int) -> engine_diff.Report:
    clients = [
        DirectClient(engine=SQLiteEngine(str(tmp_path / f"{kind}-{seed}-reference.sqlite3"))),
        DirectClient(engine=CookEngine(str(tmp_path / f"{kind}-{seed}-patched.sqlite3"))),
    ]
    try:
        reference, candidate = (c.db[kind] for c in clients)
        return engine_diff.run(reference, candidate, ops=ops, seed=seed, kind=kind, docs=docs)
    finally:
        for c in clients:
            c.close()


class Engaged:
    """Counts how often each part of the fix changed the SQL (so the comparison is not vacuous)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.terms = 0
        self.ordered = 0
        implied = IndexedReadsEngine._cook_implied_term
        ordered = IndexedReadsEngine._cook_index_ordered

        def count_terms(engine: IndexedReadsEngine, *args: Any) -> Any:
            found = implied(engine, *args)
            self.terms += found is not None
            return found

        def count_ordered(engine: IndexedReadsEngine, *args: Any) -> bool:
            found = ordered(engine, *args)
            self.ordered += found
            return found

        monkeypatch.setattr(IndexedReadsEngine, "_cook_implied_term", count_terms)
        monkeypatch.setattr(IndexedReadsEngine, "_cook_index_ordered", count_ordered)


@pytest.mark.parametrize(("kind", "ops", "docs"), RUNS)
def test_random_reads_and_writes_return_what_the_unpatched_engine_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, ops: int, docs: int
) -> None:
    engaged = Engaged(monkeypatch)
    report = differential(tmp_path, kind, ops, docs, seed=1)
    assert not report.mismatches, "\n".join(report.mismatches[:5])
    assert report.reads > ops / 2
    assert report.writes > ops / 4
    assert engaged.terms > ops / (4 if kind == "clean" else 20), "implied terms hardly applied"
    if kind == "clean":  # elsewhere booleans, dates, arrays at sort fields keep mongoeco's order
        assert engaged.ordered > ops / 20, "sorts were hardly ever read in index order"


@pytest.mark.soak
@pytest.mark.parametrize("seed", SOAK_SEEDS)
@pytest.mark.parametrize(("kind", "ops", "docs"), RUNS)
def test_soak_random_reads_and_writes_return_what_the_unpatched_engine_returns(
    tmp_path: Path, kind: str, ops: int, docs: int, seed: int
) -> None:
    report = differential(tmp_path, kind, ops * 3, docs * 3, seed)
    assert not report.mismatches, "\n".join(report.mismatches[:5])


def trust_any_sql(engine: IndexedReadsEngine, db: str, coll: str, leaf: Any) -> Any:
    """Broken part 1: implied terms even where mongoeco's SQL is array-aware or bracketed."""
    return engine._translate_query_plan_with_multikey(db, coll, leaf)


def hide_arrays(original: Callable[..., frozenset[str | None]]) -> Callable[..., Any]:
    """Broken part 3: the probe index "forgets" arrays."""

    def probe(engine: IndexedReadsEngine, db: str, coll: str, field: str) -> Any:
        return original(engine, db, coll, field) - {"array"}

    return probe


BREAKS: dict[str, tuple[str, Callable[[pytest.MonkeyPatch], None]]] = {
    "implied terms for any SQL": (
        "messy",
        lambda mp: mp.setattr(IndexedReadsEngine, "_cook_scalar_form", trust_any_sql),
    ),
    "index order for any types": (
        "mixed",
        lambda mp: mp.setattr(
            embedded_engine,
            "INDEX_ORDERED_TYPES",
            (frozenset({None, *embedded_engine.JSON_TYPES}),),
        ),
    ),
    "probes that miss arrays": (
        "messy",
        lambda mp: mp.setattr(
            IndexedReadsEngine, "cook_types", hide_arrays(IndexedReadsEngine.cook_types)
        ),
    ),
}


@pytest.mark.parametrize("broken", BREAKS)
def test_the_differential_run_catches_each_part_of_the_fix_broken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    kind, breaking = BREAKS[broken]
    breaking(monkeypatch)
    report = differential(tmp_path, kind, ops=200, docs=30, seed=7)
    assert report.mismatches, f"breaking '{broken}' went unnoticed"


@contextmanager
def serving(server: Any) -> Iterator[str]:
    """``server`` (a wire server not yet started) in a thread of this process; yields its URI."""
    started = threading.Event()
    address: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        async with server as srv:
            address.append(f"mongodb://127.0.0.1:{srv.address.port}/?directConnection=true")
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(30), "the wire server did not start"
    try:
        yield address[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def wire_server(engine: Any) -> AbstractContextManager[str]:
    """mongoeco's wire server on ``engine`` in a thread of this process; yields its URI."""
    return serving(AsyncMongoEcoProxyServer(engine=engine, host="127.0.0.1", port=0))


@pytest.mark.parametrize("kind", ["clean", "messy"])
def test_over_the_wire_the_patched_engine_answers_as_the_unpatched_one(
    tmp_path: Path, kind: str
) -> None:
    reference = SQLiteEngine(str(tmp_path / "reference.sqlite3"))
    candidate = CookEngine(str(tmp_path / "patched.sqlite3"))
    with wire_server(reference) as ref_uri, wire_server(candidate) as cand_uri:
        clients: list[MongoClient[dict[str, Any]]] = [MongoClient(ref_uri), MongoClient(cand_uri)]
        try:
            a, b = (c.db[kind] for c in clients)
            report = engine_diff.run(a, b, ops=120, seed=3, kind=kind, docs=30)
        finally:
            for c in clients:
                c.close()
    assert not report.mismatches, "\n".join(report.mismatches[:5])


def test_the_launcher_runs_the_indexed_reads_engine_on_the_pinned_mongoeco_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(make_engine(tmp_path), CookEngine)
    monkeypatch.setattr(mongoeco, "__version__", "4.12.0")
    assert type(make_engine(tmp_path)) is SQLiteEngine, "other versions get the plain engine"


EXPLAINS = 1000 if SOAK else 100


@pytest.mark.usefixtures("explain_as_served")
def test_explain_answers_while_other_clients_write_and_read(tmp_path: Path) -> None:
    """Explain under concurrent writes: mongoeco planned it outside its lock, and now and then it
    failed on another statement's row (``IndexedReadsEngine``, part 4). With the catalog read
    once, as the embedded server reads it (``service/embedded_explain.py``), an explain takes
    milliseconds instead of 140, and the race (in planning, which that leaves as it was) is
    still caught in 100 of them: 1-3 failures each time when part 4 was taken out."""
    engine = CookEngine(str(tmp_path / "explain.sqlite3"))
    failures: list[str] = []
    stop = threading.Event()
    with wire_server(engine) as uri:
        setup: MongoClient[dict[str, Any]] = MongoClient(uri)
        setup.db.items.create_index([("group", 1), ("n", 1)], name="group_n")
        setup.db.items.insert_many([{"group": i % 5, "n": i} for i in range(200)])

        def write(worker: int) -> None:
            with MongoClient(uri) as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    client.db.items.insert_one({"group": worker, "n": 1000 * worker + n})
                    client.db.items.find_one({"group": worker, "n": {"$gte": n}})
                    client.db.items.update_one({"group": worker}, {"$inc": {"seen": 1}})

        writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for t in writers:
            t.start()
        try:
            command = {"find": "items", "filter": {"group": 2}, "sort": {"n": 1}}
            for _ in range(EXPLAINS):
                try:
                    setup.db.command("explain", {**command, "hint": "group_n", "limit": 5})
                except Exception as exc:  # noqa: BLE001  (any failure is the finding)
                    failures.append(repr(exc))
        finally:
            stop.set()
            for t in writers:
                t.join(30)
            setup.close()
    assert not failures, f"{len(failures)} of {EXPLAINS} explains failed, e.g. {failures[0]}"
