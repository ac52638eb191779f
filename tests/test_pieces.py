"""Pieces through the GraphQL API: filters, cursor pages, bulk review, exclusion; and every
list query served by an index (explain)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from domain.ids import AccountId
from domain.principal import Principal
from orchestration.base.policy import CookPolicy
from orchestration.cooking.pieces import (
    Listing,
    PieceOrder,
    PieceQuery,
    PieceStatus,
    PieceStore,
    Review,
    listing,
)
from service.settings import Settings
from tests.api import ADMIN, OWNER, STRANGER, Api, running_app, start_cook, wait_for_cook

PIECE = """id index jobKey status review excluded reviewedAt attempt seed configHash
  traits { category name value } params output outputs { contentType text url }
  costUsd createdAt completedAt durationMs attempts { attempt outcome endedAt }"""
LIST = f"""query($c: ID!, $k: ID, $f: PieceFilterInput, $o: PieceOrder, $n: Int, $a: String) {{
  pieces(collectionId: $c, cookId: $k, filter: $f, order: $o, first: $n, after: $a) {{
    edges {{ cursor node {{ {PIECE} }} }} pageInfo {{ hasNextPage endCursor }} }} }}"""
REVIEW = "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id review } }"
EXCLUDE = """mutation($p: [ID!]!, $e: Boolean!) {
  setPiecesExcluded(pieceIds: $p, excluded: $e) { id review excluded } }"""


async def cooked(api: Api, count: int, total: int = 100) -> tuple[str, str, list[dict[str, Any]]]:
    collection = await api.create_collection(totalSupply=total)
    cook = await wait_for_cook(api, (await start_cook(api, collection["id"], count=count))["id"])
    pieces = await list_all(api, collection["id"], o="INDEX")
    return collection["id"], cook["id"], pieces


async def list_all(api: Api, collection: str, page: int = 100, **args: Any) -> list[dict[str, Any]]:
    """Every page, following cursors; checks each cursor is the last node's."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        data = (await api.data(LIST, {"c": collection, "n": page, "a": after, **args}))["pieces"]
        found += [e["node"] for e in data["edges"]]
        if data["edges"]:
            assert data["pageInfo"]["endCursor"] == data["edges"][-1]["cursor"]
        if not data["pageInfo"]["hasNextPage"]:
            return found
        after = data["pageInfo"]["endCursor"]


async def review(api: Api, decisions: list[tuple[str, str]]) -> list[dict[str, Any]]:
    data = await api.data(REVIEW, {"d": [{"pieceId": p, "outcome": o} for p, o in decisions]})
    result: list[dict[str, Any]] = data["reviewPieces"]
    return result


async def test_a_piece_shows_its_draw_output_cost_attempts_timings_and_review(api: Api) -> None:
    _, cook, pieces = await cooked(api, 2)
    piece = pieces[0]
    assert piece["jobKey"] == f"{cook}:{piece['index']}"
    assert piece["status"] == "COMPLETED"
    assert piece["review"] == "PENDING"
    assert piece["excluded"] is False
    assert piece["reviewedAt"] is None
    assert piece["outputs"] == [{"contentType": "text/plain", "text": piece["output"], "url": None}]
    assert [a["outcome"] for a in piece["attempts"]] == ["completed"]
    assert piece["durationMs"] is not None
    assert piece["durationMs"] >= 0
    assert len(piece["configHash"]) == 64
    assert int(piece["seed"]) > 0
    one = await api.data(f"query($id: ID!) {{ piece(id: $id) {{ {PIECE} }} }}", {"id": piece["id"]})
    assert one["piece"] == piece


async def test_pages_follow_cursors_newest_first_or_by_index_without_gaps_or_repeats(
    api: Api,
) -> None:
    collection, _, pieces = await cooked(api, 7)
    indexes = [p["index"] for p in pieces]
    assert indexes == sorted(indexes)
    assert len(indexes) == 7
    by_index = await list_all(api, collection, page=3, o="INDEX")
    newest = await list_all(api, collection, page=2, o="NEWEST")
    assert [p["index"] for p in by_index] == indexes
    assert [p["index"] for p in newest] == indexes[::-1]
    default = (await api.data(LIST, {"c": collection}))["pieces"]["edges"]
    assert [e["node"]["index"] for e in default] == indexes[::-1], "newest first by default"


async def test_filters_by_status_review_outcome_and_exclusion_combine(api: Api) -> None:
    collection, cook, pieces = await cooked(api, 6)
    ids = [p["id"] for p in pieces]
    await review(api, [(ids[0], "ACCEPTED"), (ids[1], "ACCEPTED"), (ids[2], "REJECTED")])
    await api.data(EXCLUDE, {"p": [ids[1]], "e": True})

    async def ids_for(filter_: dict[str, Any], **args: Any) -> list[str]:
        return [p["id"] for p in await list_all(api, collection, f=filter_, o="INDEX", **args)]

    assert await ids_for({"review": ["ACCEPTED"]}) == ids[:2]
    assert await ids_for({"review": ["ACCEPTED"], "excluded": False}) == ids[:1]
    assert await ids_for({"excluded": True}) == ids[1:2]
    assert await ids_for({"excluded": False}) == [i for i in ids if i != ids[1]]
    assert await ids_for({"review": ["REJECTED", "PENDING"]}) == ids[2:]
    assert await ids_for({"review": ["PENDING"]}) == ids[3:]
    assert await ids_for({"status": ["COMPLETED"]}) == ids
    assert await ids_for({"status": ["FAILED", "RUNNING"]}) == []
    assert await ids_for({"status": ["COMPLETED"], "review": ["REJECTED"]}) == ids[2:3]
    assert await ids_for({}, k=cook) == ids


async def test_a_page_holds_at_most_100_and_a_foreign_cursor_is_refused(api: Api) -> None:
    collection, _, _ = await cooked(api, 1)
    for args, field in (({"n": 101}, "first"), ({"n": 0}, "first"), ({"a": "bm9wZQ=="}, "after")):
        error = await api.error(LIST, {"c": collection, **args})
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert error["extensions"]["field"] == field


async def test_a_cook_of_another_collection_is_not_found_there(api: Api) -> None:
    collection, _, _ = await cooked(api, 1)
    _, other_cook, _ = await cooked(api, 1)
    error = await api.error(LIST, {"c": collection, "k": other_cook})
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_an_admin_lists_anyones_pieces_and_a_stranger_none(api: Api) -> None:
    collection, _, pieces = await cooked(api, 2)
    as_admin = await api.data(LIST, {"c": collection}, as_=ADMIN)
    assert len(as_admin["pieces"]["edges"]) == 2
    error = await api.error(LIST, {"c": collection}, as_=STRANGER)
    assert error["extensions"]["code"] == "NOT_FOUND"
    error = await api.error(
        "query($id: ID!) { piece(id: $id) { id } }", {"id": pieces[0]["id"]}, as_=STRANGER
    )
    assert error["extensions"]["code"] == "NOT_FOUND"


async def test_bulk_review_with_duplicates_applies_the_last_decision_once(api: Api) -> None:
    _, cook, pieces = await cooked(api, 3)
    a, b, c = (p["id"] for p in pieces)
    answer = await review(
        api, [(a, "ACCEPTED"), (b, "ACCEPTED"), (a, "REJECTED"), (b, "ACCEPTED"), (c, "ACCEPTED")]
    )
    assert answer == [
        {"id": a, "review": "REJECTED"},
        {"id": b, "review": "ACCEPTED"},
        {"id": c, "review": "ACCEPTED"},
    ]
    again = await review(api, [(a, "REJECTED"), (b, "ACCEPTED")])  # idempotent
    assert again == answer[:2]
    numbers = (
        await api.data(
            "query($id: ID!) { cook(id: $id) { numbers { accepted rejected } } }", {"id": cook}
        )
    )["cook"]["numbers"]
    assert numbers == {"accepted": 2, "rejected": 1}
    events = await api.data(
        "query($id: ID!) { cook(id: $id) { events(first: 500) { type } } }", {"id": cook}
    )
    assert [e["type"] for e in events["cook"]["events"]].count("PIECE_REJECTED") == 1
    too_many = [{"pieceId": a, "outcome": "ACCEPTED"}] * 101
    error = await api.error(REVIEW, {"d": too_many})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_exclusion_applies_to_accepted_pieces_only_and_is_reversible(api: Api) -> None:
    _, _, pieces = await cooked(api, 2)
    accepted, pending = pieces[0]["id"], pieces[1]["id"]
    await review(api, [(accepted, "ACCEPTED")])
    excluded = await api.data(EXCLUDE, {"p": [accepted, accepted], "e": True})
    assert excluded["setPiecesExcluded"] == [
        {"id": accepted, "review": "ACCEPTED", "excluded": True}
    ]
    # accepting it again leaves it excluded; excluding it again changes nothing
    assert (await review(api, [(accepted, "ACCEPTED")]))[0]["review"] == "ACCEPTED"
    again = await api.data(EXCLUDE, {"p": [accepted], "e": True})
    assert again["setPiecesExcluded"][0]["excluded"] is True
    error = await api.error(EXCLUDE, {"p": [accepted, pending], "e": False})
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["field"] == "pieceIds[1]"
    still = await api.data("query($id: ID!) { piece(id: $id) { excluded } }", {"id": accepted})
    assert still["piece"]["excluded"] is True, "a refused call changes nothing"
    included = await api.data(EXCLUDE, {"p": [accepted], "e": False})
    assert included["setPiecesExcluded"][0]["excluded"] is False


# --- every list query is served by an index ------------------------------------------------

SHAPES = [
    PieceQuery(statuses=statuses, reviews=reviews, excluded=excluded, order=order)
    for statuses in ((), (PieceStatus.RUNNING, PieceStatus.COMPLETED))
    for reviews in ((), (Review.ACCEPTED,), (Review.PENDING, Review.REJECTED))
    for excluded in (None, True, False)
    for order in PieceOrder
]


async def explain(db: Any, plan: Listing) -> dict[str, Any]:
    command = {
        "find": "pieces",
        "filter": plan.filter,
        "sort": dict(plan.sort),
        "hint": plan.hint,
        "limit": plan.limit,
    }
    result: dict[str, Any] = await db.command("explain", command)
    return result


def physical_index(db: str, collection: str, index: str) -> str:
    """mongoeco's SQLite name for a MongoDB index (``SQLiteEngine._physical_index_name``)."""
    return "idx_" + hashlib.sha1(f"{db}:{collection}:{index}".encode()).hexdigest()[:16]  # noqa: S324


def assert_served_by(plan: dict[str, Any], index: str, db: str) -> None:
    if "queryPlanner" in plan:  # MongoDB: an index scan on that index, and no sort stage
        stages: list[dict[str, Any]] = []
        todo = [plan["queryPlanner"]["winningPlan"]]
        while todo:
            stage = todo.pop()
            stages.append(stage)
            todo += [stage[k] for k in ("inputStage", "queryPlan") if k in stage]
            todo += stage.get("inputStages", [])
        assert any(s.get("indexName") == index for s in stages if s["stage"] == "IXSCAN"), plan
        assert not any(s["stage"] == "SORT" for s in stages), plan
        return
    # mongoeco has its own explain shape: the hinted index, the SQL that runs, and SQLite's
    # plan. It shows the query runs in SQL through that index's SQLite index (with Cook's read
    # fixes, seeking it on the query's fields and, without an $in, walking it in order; see
    # tests/test_engine_query_shapes.py).
    assert plan["hinted_index"] == index, plan
    pushdown = plan["details"]["pushdown"]
    assert pushdown["filterOwner"] == "sql", (pushdown.get("fallbackReason"), plan["plan"])
    assert not pushdown["residualRequired"], pushdown
    assert pushdown["sortOwner"] == "sql", pushdown
    assert not pushdown["pythonSort"], pushdown
    used = physical_index(db, "pieces", index)
    assert any(f"USING INDEX {used}" in line for line in plan["details"]["engine_details"]), plan


@pytest.mark.parametrize("scope", ["collection", "cook"])
async def test_every_piece_list_query_is_served_by_an_index(api: Api, scope: str) -> None:
    _, cook, pieces = await cooked(api, 3)
    db = api.app.state.runtime.client[api.settings.db_name]
    owner = Principal(AccountId(OWNER))  # owner scoping adds its filter to every query
    collection = (await db.pieces.find_one({"_id": pieces[0]["id"]}))["collectionId"]
    hints: set[str] = set()
    for shape in SHAPES:
        query = (
            PieceQuery(**{**vars(shape), "collection_id": collection})
            if scope == "collection"
            else PieceQuery(**{**vars(shape), "cook_id": cook})
        )
        for after in (None,) if shape.order is PieceOrder.INDEX else ("aTox",):  # after index 1
            plan = listing(owner, query, 21, after)
            if plan.matches_nothing:
                continue  # e.g. excluded and only pending: answered without a query
            explained = await explain(db, plan)
            assert_served_by(explained, plan.hint, api.settings.db_name)
            hints.add(plan.hint)
    assert hints == {f"{scope}_by_index", f"{scope}_status_by_index", f"{scope}_review_by_index"}


async def test_an_index_an_earlier_version_made_on_pieces_is_dropped_when_the_service_starts(
    settings: Settings,
) -> None:
    """Every index costs every write: the sparse ``unlogged_events`` (a read the embedded engine
    served by scanning) is replaced by ``unlogged_by_cook``, and a database keeps neither twice."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        pieces = client[settings.db_name].pieces
        await pieces.create_index("unlogged", name="unlogged_events", sparse=True)
        async with running_app(settings):
            present = await pieces.index_information()
    finally:
        await client.close()
    assert "unlogged_events" not in present
    assert "unlogged_by_cook" in present


async def test_processes_starting_at_once_each_drop_the_retired_index_without_failing(
    settings: Settings,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_uri)
    try:
        db = client[settings.db_name]
        for _ in range(5):  # several rounds: the two reads and drops interleave differently
            await db.pieces.create_index("unlogged", name="unlogged_events", sparse=True)
            stores = [PieceStore(db, CookPolicy()) for _ in range(4)]
            await asyncio.gather(*(store.ensure_indexes() for store in stores))
            assert "unlogged_events" not in await db.pieces.index_information()
    finally:
        await client.close()


SCALE = int(os.environ.get("COOK_SCALE_PIECES", "400"))


async def test_listing_a_large_collection_pages_correctly_under_every_filter(api: Api) -> None:
    """Inserted straight into the database (cooking them would take minutes);
    ``COOK_SCALE_PIECES=10000`` runs it at the issue's 10,000 pieces."""
    collection = await api.create_collection(totalSupply=100_000)
    db = api.app.state.runtime.client[api.settings.db_name]
    template = await insert_completed(api, collection["id"], 1)
    skip = ("_id", "index", "indexKey", "jobKey", "seat", "combo")
    base = {k: v for k, v in template.items() if k not in skip}
    reviews = ["pending", "accepted", "rejected", "excluded"]
    docs = [
        {
            **base,
            "_id": f"pc_{i:032x}",
            "index": i,
            "indexKey": f"{collection['id']}:{i}",
            "jobKey": f"{base['cookId']}:{i}",
            "review": reviews[i % 4],
        }
        for i in range(1, SCALE)
    ]
    for start in range(0, len(docs), 100):
        await db.pieces.insert_many(docs[start : start + 100])
    expected_excluded = [i for i in range(SCALE - 1, 0, -1) if i % 4 == 3]
    page = (await api.data(LIST, {"c": collection["id"], "f": {"excluded": True}, "n": 100}))[
        "pieces"
    ]
    assert [e["node"]["index"] for e in page["edges"]] == expected_excluded[:100]
    rejected = await list_all(api, collection["id"], f={"review": ["REJECTED"]}, o="INDEX")
    assert [p["index"] for p in rejected] == [i for i in range(1, SCALE) if i % 4 == 2]


async def insert_completed(api: Api, collection_id: str, count: int) -> dict[str, Any]:
    """Cook ``count`` pieces and return one piece document (a template for bulk inserts)."""
    await wait_for_cook(api, (await start_cook(api, collection_id, count=count))["id"])
    db = api.app.state.runtime.client[api.settings.db_name]
    doc: dict[str, Any] = await db.pieces.find_one({"collectionId": collection_id})
    return doc


async def test_a_text_output_answers_its_size_and_sha256_when_asked(api: Api) -> None:
    _, _, pieces = await cooked(api, 1)
    query = "query($id: ID!) { piece(id: $id) { output outputs { contentType size sha256 } } }"
    piece = (await api.data(query, {"id": pieces[0]["id"]}))["piece"]
    data = piece["output"].encode()
    assert piece["outputs"] == [
        {"contentType": "text/plain", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    ]
