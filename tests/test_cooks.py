"""Cooks through the GraphQL API: lifecycle, limits, retries, failures, review, provenance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.api import (
    STRANGER,
    Api,
    read_cook,
    start_cook,
    wait_for_cook,
    with_test_tool,
)

PIECES = """pieces(first: 100) { id index jobKey status review attempt seed configHash
  traits { category name value } params output costUsd }"""
EVENTS = "events(first: 500) { seq type index attempt detail }"
PREVIEW = """query($c: ID!, $n: Int!, $s: Int) {
  previewPieces(collectionId: $c, count: $n, seed: $s) {
    seed pieces { index seed traits { category name value } params } } }"""
REVIEW = """mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id review } }"""


async def test_a_cook_makes_exactly_its_count_with_provenance_and_ordered_events(api: Api) -> None:
    collection = await api.create_collection(totalSupply=50)
    cook = await start_cook(api, collection["id"], count=6, seed=42)
    assert cook["status"] == "RUNNING"
    assert cook["maxConcurrent"] == 3
    done = await wait_for_cook(
        api,
        cook["id"],
        # an event is written just after the transition it records
        lambda c: c["status"] == "COMPLETED" and len(c["events"]) == c["lastSeq"],
        extra=f"{PIECES} {EVENTS}",
    )
    assert done["numbers"]["completed"] == 6
    assert done["numbers"]["live"] == 6
    assert done["numbers"]["inFlight"] == 0
    pieces = done["pieces"]
    assert [p["index"] for p in pieces] == list(range(6))
    assert {p["jobKey"] for p in pieces} == {f"{cook['id']}:{i}" for i in range(6)}
    assert all(p["configHash"] == cook["configHash"] for p in pieces)
    assert all(p["review"] == "PENDING" for p in pieces)
    first = pieces[0]
    assert [t["category"] for t in first["traits"]] == ["Animal", "miladyid"]
    assert (
        first["params"]["input_prompt"] == f"{first['traits'][0]['value']} wearing a hat, id 0000"
    )
    seqs = [e["seq"] for e in done["events"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert done["lastSeq"] == seqs[-1]
    types = [e["type"] for e in done["events"]]
    assert types[0] == "COOK_STARTED"
    assert types[-1] == "COOK_COMPLETED"
    assert types.count("PIECE_COMPLETED") == 6


async def test_the_preview_draws_exactly_what_the_cook_then_makes(api: Api) -> None:
    collection = await api.create_collection(totalSupply=50)
    preview = (await api.data(PREVIEW, {"c": collection["id"], "n": 5, "s": 99}))["previewPieces"]
    again = (await api.data(PREVIEW, {"c": collection["id"], "n": 5, "s": 99}))["previewPieces"]
    assert preview == again
    cook = await start_cook(api, collection["id"], count=5, seed=99)
    done = await wait_for_cook(api, cook["id"], extra=PIECES)
    made = [
        {"index": p["index"], "seed": p["seed"], "traits": p["traits"], "params": p["params"]}
        for p in done["pieces"]
    ]
    assert made == preview["pieces"]


async def test_a_preview_writes_nothing(api: Api) -> None:
    collection = await api.create_collection()
    before = await api.count_collections()
    await api.data(PREVIEW, {"c": collection["id"], "n": 100, "s": None})
    db = api.app.state.runtime.client[api.settings.db_name]
    assert await db["pieces"].count_documents({}) == 0
    assert await db["cooks"].count_documents({}) == 0
    assert await api.count_collections() == before


async def test_unique_values_are_never_reused_across_cooks(api: Api) -> None:
    collection = await api.create_collection(totalSupply=20)
    first = await wait_for_cook(
        api, (await start_cook(api, collection["id"], count=4))["id"], extra=PIECES
    )
    second = await wait_for_cook(
        api, (await start_cook(api, collection["id"], count=4))["id"], extra=PIECES
    )
    values = [p["traits"][1]["value"] for c in (first, second) for p in c["pieces"]]
    assert len(values) == len(set(values)) == 8


async def test_a_cook_needing_more_unique_values_than_remain_is_refused_at_start(api: Api) -> None:
    tree = [
        {
            "generated": {
                "name": "miladyid",
                "range": {"start": 1, "end": 3, "uniqueAcrossCook": True},
            }
        }
    ]
    collection = await api.create_collection(traitTree=tree, template={"p": "[[miladyid]]"})
    error = await api.error(
        "mutation($c: ID!) { startCook(collectionId: $c, count: 4) { id } }",
        {"c": collection["id"]},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "unique" in error["message"]
    db = api.app.state.runtime.client[api.settings.db_name]
    assert await db["cooks"].count_documents({}) == 0


async def test_count_may_not_exceed_the_remaining_supply(api: Api) -> None:
    collection = await api.create_collection(totalSupply=5)
    await wait_for_cook(api, (await start_cook(api, collection["id"], count=3))["id"])
    error = await api.error(
        "mutation($c: ID!) { startCook(collectionId: $c, count: 3) { id } }",
        {"c": collection["id"]},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "remaining supply: 2 of 5" in error["message"]


async def test_a_collection_has_at_most_one_active_cook(api: Api) -> None:
    collection = await api.create_collection(**with_test_tool(latencyMs=5000))
    cook = await start_cook(api, collection["id"], count=2)
    error = await api.error(
        "mutation($c: ID!) { startCook(collectionId: $c, count: 1) { id } }",
        {"c": collection["id"]},
    )
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["activeCookId"] == cook["id"]


async def test_pause_stops_new_pieces_and_resume_continues_the_same_cook(api: Api) -> None:
    collection = await api.create_collection(**with_test_tool(latencyMs=100))
    cook = await start_cook(api, collection["id"], count=6, maxConcurrent=2)
    await api.data("mutation($id: ID!) { pauseCook(id: $id) { status } }", {"id": cook["id"]})
    paused = await wait_for_cook(api, cook["id"], lambda c: c["numbers"]["inFlight"] == 0)
    assert paused["status"] == "PAUSED"
    made = paused["numbers"]["completed"]
    assert made <= 2
    again = await read_cook(api, cook["id"])
    assert again["numbers"]["completed"] == made  # nothing new while paused
    resumed = await api.data(
        "mutation($id: ID!) { resumeCook(id: $id) { id status } }", {"id": cook["id"]}
    )
    assert resumed["resumeCook"] == {"id": cook["id"], "status": "RUNNING"}
    done = await wait_for_cook(api, cook["id"])
    assert done["status"] == "COMPLETED"
    assert done["numbers"]["completed"] == 6
    db = api.app.state.runtime.client[api.settings.db_name]
    assert await db["cooks"].count_documents({}) == 1


async def test_cancel_lets_in_flight_pieces_settle_then_ends_cancelled(api: Api) -> None:
    # Slow enough that the in-flight pieces are still running when the cancel answers.
    collection = await api.create_collection(**with_test_tool(latencyMs=1500))
    cook = await start_cook(api, collection["id"], count=10, maxConcurrent=2)
    await wait_for_cook(api, cook["id"], lambda c: c["numbers"]["inFlight"] == 2)
    cancelling = await api.data(
        "mutation($id: ID!) { cancelCook(id: $id) { status reason } }", {"id": cook["id"]}
    )
    assert cancelling["cancelCook"]["status"] == "CANCELLING"
    done = await wait_for_cook(api, cook["id"])
    assert done["status"] == "CANCELLED"
    assert done["reason"] == "cancelled by alice"
    assert done["numbers"]["inFlight"] == 0
    assert done["numbers"]["completed"] == 2
    # the collection is free for a new cook
    await start_cook(api, collection["id"], count=1)


async def test_pausing_a_finished_cook_is_a_conflict(api: Api) -> None:
    collection = await api.create_collection()
    cook = await wait_for_cook(api, (await start_cook(api, collection["id"], count=1))["id"])
    error = await api.error("mutation($id: ID!) { pauseCook(id: $id) { id } }", {"id": cook["id"]})
    assert error["extensions"] == {"code": "CONFLICT", "status": "completed"}


async def test_transient_failures_are_retried_and_cost_is_counted_once(api: Api) -> None:
    collection = await api.create_collection(
        **with_test_tool(failureRate=0.5, costMicros=1250, duplicates=3)
    )
    cook = await start_cook(api, collection["id"], count=8, maxFailures=100)
    done = await wait_for_cook(api, cook["id"], extra=PIECES)
    completed = [p for p in done["pieces"] if p["status"] == "COMPLETED"]
    assert done["status"] == "COMPLETED"
    assert len(completed) == 8
    assert any(p["attempt"] > 1 for p in completed), "the 50% failure rate should force retries"
    assert Decimal(done["numbers"]["costUsd"]) == Decimal("0.001250") * 8
    assert all(Decimal(p["costUsd"]) == Decimal("0.00125") for p in completed)


async def test_failed_pieces_are_replaced_until_the_failure_limit_fails_the_cook(
    api: Api,
) -> None:
    collection = await api.create_collection(**with_test_tool(permanentFailureRate=1))
    cook = await start_cook(api, collection["id"], count=5, maxFailures=4)
    failed = await wait_for_cook(api, cook["id"])
    assert failed["status"] == "FAILED"
    assert failed["reason"].startswith("4 pieces failed")
    # Pieces still in flight when it failed settle afterwards, and give their seats back. Fill
    # passes that read the cook just before it failed may each have started pieces in the
    # slots the last failures freed, so more than 4 may fail: piece creation is not
    # conditional on the cook's state (a known gap, said in the README).
    done = await wait_for_cook(api, cook["id"], lambda c: c["numbers"]["inFlight"] == 0)
    assert done["status"] == "FAILED"
    assert done["numbers"]["live"] == 0
    assert done["numbers"]["failed"] >= 4


async def test_a_rejection_during_a_running_cook_brings_a_replacement(api: Api) -> None:
    collection = await api.create_collection(**with_test_tool(latencyMs=150))
    cook = await start_cook(api, collection["id"], count=3, maxConcurrent=1)
    first = await wait_for_cook(  # the list, not the numbers: they are read one after the other
        api,
        cook["id"],
        lambda c: any(p["status"] == "COMPLETED" for p in c["pieces"]),
        extra=PIECES,
    )
    rejected = next(p for p in first["pieces"] if p["status"] == "COMPLETED")
    await api.data(REVIEW, {"d": [{"pieceId": rejected["id"], "outcome": "REJECTED"}]})
    done = await wait_for_cook(api, cook["id"], extra=PIECES)
    assert done["status"] == "COMPLETED"
    assert done["numbers"]["completed"] == 4
    assert done["numbers"]["rejected"] == 1
    assert done["numbers"]["live"] == 3


async def test_a_rejection_after_completion_returns_supply_without_reopening(api: Api) -> None:
    collection = await api.create_collection(totalSupply=3)
    done = await wait_for_cook(
        api, (await start_cook(api, collection["id"], count=3))["id"], extra=PIECES
    )
    decisions = [{"pieceId": done["pieces"][0]["id"], "outcome": "REJECTED"}] * 2
    await api.data(REVIEW, {"d": decisions})
    after = await read_cook(api, done["id"])
    assert after["status"] == "COMPLETED"
    assert after["numbers"]["rejected"] == 1
    nxt = await wait_for_cook(api, (await start_cook(api, collection["id"], count=1))["id"])
    assert nxt["status"] == "COMPLETED"


async def test_review_is_all_or_nothing(api: Api) -> None:
    collection = await api.create_collection()
    done = await wait_for_cook(
        api, (await start_cook(api, collection["id"], count=2))["id"], extra=PIECES
    )
    missing = "pc_" + "0" * 32
    decisions: list[dict[str, Any]] = [
        {"pieceId": done["pieces"][0]["id"], "outcome": "ACCEPTED"},
        {"pieceId": missing, "outcome": "ACCEPTED"},
    ]
    error = await api.error(REVIEW, {"d": decisions})
    assert error["extensions"]["code"] == "NOT_FOUND"
    after = await read_cook(api, done["id"])
    assert after["numbers"]["accepted"] == 0


async def test_a_stranger_cannot_review_someone_elses_piece(api: Api) -> None:
    collection = await api.create_collection()
    done = await wait_for_cook(
        api, (await start_cook(api, collection["id"], count=1))["id"], extra=PIECES
    )
    error = await api.error(
        REVIEW, {"d": [{"pieceId": done["pieces"][0]["id"], "outcome": "REJECTED"}]}, as_=STRANGER
    )
    assert error["extensions"]["code"] == "NOT_FOUND"
    assert (await read_cook(api, done["id"]))["numbers"]["rejected"] == 0


async def test_start_cook_bounds_are_checked(api: Api) -> None:
    collection = await api.create_collection()
    for args, field in (
        ({"count": 0}, "count"),
        ({"count": 1, "maxConcurrent": 33}, "maxConcurrent"),
        ({"count": 1, "seed": -1}, "seed"),
        ({"count": 1, "maxFailures": 0}, "maxFailures"),
    ):
        names = ", ".join(f"${k}: Int{'!' if k == 'count' else ''}" for k in args)
        passed = ", ".join(f"{k}: ${k}" for k in args)
        error = await api.error(
            f"mutation($c: ID!, {names}) {{ startCook(collectionId: $c, {passed}) {{ id }} }}",
            {"c": collection["id"], **args},
        )
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["extensions"]["field"] == field
    db = api.app.state.runtime.client[api.settings.db_name]
    assert await db["cooks"].count_documents({}) == 0
