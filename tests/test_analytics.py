"""Collection analytics, checked against counts the test computes from the pieces itself."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.api import Api, start_cook, wait_for_cook, with_test_tool

PIECES = (
    "pieces(first: 100) { id status review excluded costUsd durationMs traits { category name } }"
)
ANALYTICS = """query($c: ID!) { collectionAnalytics(collectionId: $c) {
  pieces byStatus { status count } pendingReview accepted rejected excluded approvalRate
  totalCostUsd averageCostUsd totalDurationMs averageDurationMs
  traits { category name drawn share expectedShare accepted rejected approvalRate } } }"""


async def test_analytics_match_counts_computed_from_the_pieces(api: Api) -> None:
    tree = [
        {
            "manual": {
                "name": "Animal",
                "traits": [
                    {"name": "Cat", "value": "cat", "weight": 3},
                    {"name": "Owl", "value": "owl", "weight": 1},
                    {"name": "Yak", "value": "yak", "weight": 0},
                ],
            }
        },
        {
            "generated": {
                "name": "miladyid",
                "range": {"start": 0, "end": 999, "uniqueAcrossCook": True},
            }
        },
    ]
    collection = await api.create_collection(
        traitTree=tree, **with_test_tool(costMicros=1500, permanentFailureRate=0.2)
    )
    cook = await wait_for_cook(
        api,
        (await start_cook(api, collection["id"], count=10, seed=3, maxFailures=50))["id"],
        extra=PIECES,
    )
    pieces = cook["pieces"]
    completed = [p for p in pieces if p["status"] == "COMPLETED"]
    decisions = [
        {"pieceId": p["id"], "outcome": ("ACCEPTED", "REJECTED", "ACCEPTED")[i % 3]}
        for i, p in enumerate(completed[:-2])
    ]
    await api.data(
        "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }",
        {"d": decisions},
    )
    accepted_ids = [d["pieceId"] for d in decisions if d["outcome"] == "ACCEPTED"]
    await api.data(
        "mutation($p: [ID!]!) { setPiecesExcluded(pieceIds: $p, excluded: true) { id } }",
        {"p": accepted_ids[:1]},
    )
    pieces = (await wait_for_cook(api, cook["id"], extra=PIECES))["pieces"]
    got = (await api.data(ANALYTICS, {"c": collection["id"]}))["collectionAnalytics"]

    statuses: dict[str, int] = {}
    for p in pieces:
        statuses[p["status"]] = statuses.get(p["status"], 0) + 1
    reviews = [p["review"] for p in pieces]
    accepted, rejected = reviews.count("ACCEPTED"), reviews.count("REJECTED")
    done = [p for p in pieces if p["status"] == "COMPLETED"]
    assert got["pieces"] == len(pieces)
    assert {s["status"]: s["count"] for s in got["byStatus"]} == statuses
    assert got["pendingReview"] == reviews.count("PENDING")
    assert (got["accepted"], got["rejected"]) == (accepted, rejected)
    assert got["excluded"] == sum(p["excluded"] for p in pieces) == 1
    assert got["approvalRate"] == pytest.approx(accepted / (accepted + rejected))
    cost = sum(Decimal(p["costUsd"]) for p in pieces)
    assert Decimal(got["totalCostUsd"]) == cost == Decimal("0.0015") * len(done)
    assert Decimal(got["averageCostUsd"]) == Decimal("0.0015")
    assert got["totalDurationMs"] == sum(p["durationMs"] for p in done)
    assert got["averageDurationMs"] == pytest.approx(got["totalDurationMs"] / len(done))

    by_trait = {(t["category"], t["name"]): t for t in got["traits"]}
    assert set(by_trait) == {("Animal", "Cat"), ("Animal", "Owl"), ("Animal", "Yak")}
    for name, weight in (("Cat", 3), ("Owl", 1), ("Yak", 0)):
        having = [p for p in pieces if {"category": "Animal", "name": name} in p["traits"]]
        ok = sum(p["review"] == "ACCEPTED" for p in having)
        no = sum(p["review"] == "REJECTED" for p in having)
        t = by_trait[("Animal", name)]
        assert t["drawn"] == len(having)
        assert t["share"] == pytest.approx(len(having) / len(pieces))
        assert t["expectedShare"] == pytest.approx(weight / 4)
        assert (t["accepted"], t["rejected"]) == (ok, no)
        assert t["approvalRate"] == (pytest.approx(ok / (ok + no)) if ok + no else None)
