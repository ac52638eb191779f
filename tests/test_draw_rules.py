"""Exclusion rules and unique trait combinations, through the API."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api import Api, collection_input, start_cook, wait_for_cook

PREVIEW = """query($c: ID!, $n: Int!, $s: Int) {
  previewPieces(collectionId: $c, count: $n, seed: $s) { pieces { traits { category name } } } }"""
CREATE = "mutation($input: CreateCollectionInput!) { createCollection(input: $input) { id } }"


def tree(*categories: tuple[str, list[str]]) -> list[dict[str, Any]]:
    return [
        {"manual": {"name": name, "traits": [{"name": t} for t in traits]}}
        for name, traits in categories
    ]


def exclusion(category: str, trait: str, other: str, *excludes: str) -> dict[str, Any]:
    return {
        "category": category,
        "trait": trait,
        "excludedCategory": other,
        "excludes": list(excludes),
    }


async def test_exclusions_hold_whichever_category_is_drawn_first(api: Api) -> None:
    rules = {"exclusions": [exclusion("Hat", "Crown", "Hair", "Mohawk", "Afro")]}
    created = await api.create_collection(
        traitTree=tree(("Hair", ["Mohawk", "Afro", "Bald"]), ("Hat", ["Crown", "Cap"])),
        template={"p": "[[Hat]] [[Hair]]"},
        rules=rules,
    )
    data = await api.data(PREVIEW, {"c": created["id"], "n": 100, "s": 5})
    pairs = [
        {t["category"]: t["name"] for t in p["traits"]} for p in data["previewPieces"]["pieces"]
    ]
    assert not [p for p in pairs if p["Hat"] == "Crown" and p["Hair"] in {"Mohawk", "Afro"}]
    assert {p["Hat"] for p in pairs} == {"Crown", "Cap"}, "both hats still appear"
    assert {(p["Hat"], p["Hair"]) for p in pairs} >= {("Crown", "Bald"), ("Cap", "Mohawk")}


async def test_unique_combinations_are_never_repeated_among_live_pieces(api: Api) -> None:
    created = await api.create_collection(
        totalSupply=10,
        traitTree=tree(("A", ["a1", "a2"]), ("B", ["b1", "b2"])),
        template={"p": "[[A]] [[B]]"},
        rules={"uniqueCombinations": True},
    )
    done = await wait_for_cook(
        api,
        (await start_cook(api, created["id"], count=4))["id"],
        extra="pieces(first: 10) { id traits { name } }",
    )
    combos = [tuple(t["name"] for t in p["traits"]) for p in done["pieces"]]
    assert len(set(combos)) == 4
    error = await api.error(
        "mutation($c: ID!) { startCook(collectionId: $c, count: 1) { id } }", {"c": created["id"]}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "combinations" in error["message"]
    # A rejection gives its combination back.
    rejected = done["pieces"][0]
    await api.data(
        "mutation($p: ID!) { reviewPieces(decisions: [{pieceId: $p, outcome: REJECTED}]) { id } }",
        {"p": rejected["id"]},
    )
    again = await wait_for_cook(
        api,
        (await start_cook(api, created["id"], count=1))["id"],
        extra="pieces(first: 10) { traits { name } }",
    )
    assert tuple(t["name"] for t in again["pieces"][0]["traits"]) == combos[0]


async def test_rules_that_allow_no_combination_are_refused_at_start(api: Api) -> None:
    rules = {"exclusions": [exclusion("A", "a1", "B", "b1")]}
    created = await api.create_collection(
        traitTree=[
            {"manual": {"name": "A", "traits": [{"name": "a1"}]}},
            {"manual": {"name": "B", "traits": [{"name": "b1"}]}},
        ],
        template={},
        rules=rules,
    )
    error = await api.error(
        "mutation($c: ID!) { startCook(collectionId: $c, count: 1) { id } }", {"c": created["id"]}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "no combination" in error["message"]


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        (exclusion("Nope", "a1", "B", "b1"), "input.rules.exclusions[0].category"),
        (exclusion("A", "a1", "Nope", "b1"), "input.rules.exclusions[0].excludedCategory"),
        (exclusion("A", "zz", "B", "b1"), "input.rules.exclusions[0].trait"),
        (exclusion("A", "a1", "B", "zz"), "input.rules.exclusions[0].excludes"),
        (exclusion("A", "a1", "A", "a2"), "input.rules.exclusions[0].excludedCategory"),
        (exclusion("A", "a1", "B"), "input.rules.exclusions[0].excludes"),
        (exclusion("A", "a1", "N", "1"), "input.rules.exclusions[0].excludedCategory"),
    ],
    ids=[
        "unknown-category",
        "unknown-excluded-category",
        "unknown-trait",
        "unknown-excluded-trait",
        "same-category",
        "nothing-excluded",
        "generated-category",
    ],
)
async def test_an_invalid_exclusion_is_refused_with_its_path(
    api: Api, rule: dict[str, Any], path: str
) -> None:
    generated = {"generated": {"name": "N", "range": {"start": 1, "end": 3}}}
    body = collection_input(
        traitTree=[*tree(("A", ["a1", "a2"]), ("B", ["b1"])), generated],
        template={},
        rules={"exclusions": [rule]},
    )
    error = await api.error(CREATE, {"input": body})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert path in [p["path"] for p in error["extensions"]["problems"]]
    assert await api.count_collections() == 0
