"""``explain`` reads mongoeco's packaged catalog once (``service/embedded_explain.py``): the
replies are the ones mongoeco gives without it, and the catalog is loaded once, not per call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mongoeco.cxp.exchange import documents, projection
from pymongo import MongoClient

from service import embedded_explain
from service.embedded_writes import NamespacedIndexesEngine as CookEngine
from tests.test_embedded_engine import wire_server

COMMANDS: list[dict[str, Any]] = [
    {"find": "items", "filter": {"group": 2}, "sort": {"n": 1}, "hint": "group_n", "limit": 5},
    {"find": "items", "filter": {"n": {"$gte": 10}}},
    {"find": "items", "filter": {"$text": {"$search": "x"}}},
    {"aggregate": "items", "pipeline": [{"$match": {"group": 1}}], "cursor": {}},
    {"count": "items", "query": {"group": 3}},
]


def explained(tmp_path: Path, name: str) -> list[Any]:
    """Each command's explain reply (or the error it got), through a wire server on a fresh
    engine holding the same 50 documents."""
    replies: list[Any] = []
    with wire_server(CookEngine(str(tmp_path / f"{name}.sqlite3"))) as uri:
        client: MongoClient[dict[str, Any]] = MongoClient(uri)
        with client:
            client.db.items.create_index([("group", 1), ("n", 1)], name="group_n")
            client.db.items.insert_many([{"group": i % 5, "n": i} for i in range(50)])
            for command in COMMANDS:
                try:
                    replies.append(client.db.command("explain", command))
                except Exception as exc:  # noqa: BLE001  (an error must match too)
                    replies.append(repr(exc))
    return replies


def test_explain_replies_are_the_same_with_the_catalog_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(projection, "load_mongodb_catalog", documents.load_mongodb_catalog)
    plain = explained(tmp_path, "plain")
    embedded_explain.install()
    assert explained(tmp_path, "cached") == plain
    assert any(isinstance(r, dict) and "catalog" in str(r) for r in plain), "a catalog to cache"


@pytest.mark.usefixtures("explain_as_served")
def test_the_catalog_is_not_loaded_again_by_later_explains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads: list[str] = []
    load = documents._read

    def counted(name: str, document_type: str) -> Any:
        loads.append(name)
        return load(name, document_type)

    monkeypatch.setattr(documents, "_read", counted)
    explained(tmp_path, "first")  # loads it (and mongoeco's own once-only verdicts)
    loads.clear()
    explained(tmp_path, "again")
    assert loads.count("catalog") == 0, loads
