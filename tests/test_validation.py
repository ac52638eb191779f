"""Every validation rule, through the API: a typed error naming the field, and no write."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api import Api, collection_input

CREATE = "mutation($input: CreateCollectionInput!) { createCollection(input: $input) { id } }"


def manual(name: str = "Animal", traits: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"manual": {"name": name, "traits": traits or [{"name": "Cat", "weight": 1}]}}


def generated(name: str = "num", **range_: Any) -> dict[str, Any]:
    return {"generated": {"name": name, "range": {"start": 0, "end": 9, **range_}}}


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"n": value}
    return value


# (what is wrong, the input overrides, the field path the error must name)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("blank name", {"name": "   "}, "input.name"),
    ("long name", {"name": "x" * 101}, "input.name"),
    ("long description", {"description": "x" * 2001}, "input.description"),
    ("zero supply", {"totalSupply": 0}, "input.totalSupply"),
    ("huge supply", {"totalSupply": 100_001}, "input.totalSupply"),
    ("unknown tool", {"generator": {"toolId": "nope"}}, "input.generator.toolId"),
    ("malformed spell id", {"generator": {"spellId": "spl_1"}}, "input.generator.spellId"),
    (
        "too many categories",
        {"traitTree": [manual(f"c{i}") for i in range(51)], "template": {}},
        "input.traitTree",
    ),
    (
        "duplicate category",
        {"traitTree": [manual("A"), manual("A")], "template": {}},
        "input.traitTree[1].name",
    ),
    (
        "blank category name",
        {"traitTree": [manual(" ")], "template": {}},
        "input.traitTree[0].name",
    ),
    (
        "long category name",
        {"traitTree": [manual("c" * 51)], "template": {}},
        "input.traitTree[0].name",
    ),
    (
        "bracket in category name",
        {"traitTree": [manual("a]b")], "template": {}},
        "input.traitTree[0].name",
    ),
    (
        "padded category name",
        {"traitTree": [manual(" A")], "template": {}},
        "input.traitTree[0].name",
    ),
    (
        "category without traits",
        {"traitTree": [{"manual": {"name": "A", "traits": []}}], "template": {}},
        "input.traitTree[0].traits",
    ),
    (
        "too many traits",
        {"traitTree": [manual("A", [{"name": f"t{i}"} for i in range(501)])], "template": {}},
        "input.traitTree[0].traits",
    ),
    (
        "duplicate trait",
        {"traitTree": [manual("A", [{"name": "t"}, {"name": "t"}])], "template": {}},
        "input.traitTree[0].traits[1].name",
    ),
    (
        "blank trait name",
        {"traitTree": [manual("A", [{"name": ""}])], "template": {}},
        "input.traitTree[0].traits[0].name",
    ),
    (
        "long trait value",
        {"traitTree": [manual("A", [{"name": "t", "value": "v" * 1001}])], "template": {}},
        "input.traitTree[0].traits[0].value",
    ),
    (
        "negative weight",
        {"traitTree": [manual("A", [{"name": "t", "weight": -1}])], "template": {}},
        "input.traitTree[0].traits[0].weight",
    ),
    (
        "huge weight",
        {"traitTree": [manual("A", [{"name": "t", "weight": 1e7}])], "template": {}},
        "input.traitTree[0].traits[0].weight",
    ),
    (
        "all weights zero",
        {"traitTree": [manual("A", [{"name": "t", "weight": 0}])], "template": {}},
        "input.traitTree[0].traits",
    ),
    (
        "zero step",
        {"traitTree": [generated(step=0)], "template": {}},
        "input.traitTree[0].range.step",
    ),
    (
        "end before start",
        {"traitTree": [generated(start=5, end=1)], "template": {}},
        "input.traitTree[0].range.end",
    ),
    (
        "wide zero pad",
        {"traitTree": [generated(zeroPad=33)], "template": {}},
        "input.traitTree[0].range.zeroPad",
    ),
    (
        "negative shuffle seed",
        {"traitTree": [generated(shuffleSeed=-1)], "template": {}},
        "input.traitTree[0].range.shuffleSeed",
    ),
    ("template not an object", {"template": ["[[Animal]]"]}, "input.template"),
    ("template too large", {"template": {"p": "x" * 70_000}}, "input.template"),
    ("template too deep", {"template": deep(17)}, "input.template"),
    ("unknown placeholder", {"template": {"p": "[[Animal]] [[Hat]] [[Shoes]]"}}, "input.template"),
]


@pytest.mark.parametrize(("overrides", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_an_invalid_collection_is_refused_with_the_field_path_and_nothing_is_written(
    api: Api, overrides: dict[str, Any], path: str
) -> None:
    error = await api.error(CREATE, {"input": collection_input(**overrides)})
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert path in [p["path"] for p in error["extensions"]["problems"]], error
    assert error["message"].startswith(path)
    assert await api.count_collections() == 0


async def test_unknown_placeholders_are_all_listed_by_name(api: Api) -> None:
    error = await api.error(
        CREATE, {"input": collection_input(template={"p": "[[Hat]] [[Animal]] {x: [[Shoes]]}"})}
    )
    assert "[[Hat]]" in error["message"]
    assert "[[Shoes]]" in error["message"]
    assert "[[Animal]]" not in error["message"]


async def test_every_problem_in_one_input_is_reported_together(api: Api) -> None:
    error = await api.error(
        CREATE, {"input": collection_input(name="", totalSupply=0, generator={"toolId": "x"})}
    )
    paths = {p["path"] for p in error["extensions"]["problems"]}
    assert paths == {"input.name", "input.totalSupply", "input.generator.toolId"}


@pytest.mark.parametrize(
    "generator", [{"toolId": "prompt", "spellId": "spl_" + "a" * 32}, {}], ids=["both", "neither"]
)
async def test_a_generator_must_name_exactly_one_of_tool_or_spell(
    api: Api, generator: dict[str, Any]
) -> None:
    error = await api.error(CREATE, {"input": collection_input(generator=generator)})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert await api.count_collections() == 0


async def test_a_number_outside_graphql_int_is_refused_before_anything_runs(api: Api) -> None:
    error = await api.error(CREATE, {"input": collection_input(totalSupply=2**40)})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert await api.count_collections() == 0


@pytest.mark.parametrize(
    ("file", "path"),
    [
        ([], "file"),
        ({"categories": "no"}, "file"),
        ({"categories": [{"name": 3, "traits": []}]}, "file.categories[0].name"),
        ({"categories": [{"name": "A", "mode": "other"}]}, "file.categories[0].mode"),
        (
            {"categories": [{"name": "A", "traits": [{"name": "t", "rarity": "high"}]}]},
            "file.categories[0].traits[0].weight",
        ),
        (
            {"categories": [{"name": "A", "generator": {"type": "list"}}]},
            "file.categories[0].generator.type",
        ),
        (
            {"categories": [{"name": "A", "generator": {"start": 1.5}}]},
            "file.categories[0].generator.start",
        ),
    ],
    ids=[
        "not-object",
        "categories-not-list",
        "name-not-string",
        "bad-mode",
        "rarity-not-number",
        "unknown-generator",
        "fractional-start",
    ],
)
async def test_a_malformed_trait_tree_file_is_refused_and_the_tree_is_unchanged(
    api: Api, file: Any, path: str
) -> None:
    created = await api.create_collection()
    error = await api.error(
        "mutation($id: ID!, $f: JSON!) { importTraitTree(id: $id, file: $f) { id } }",
        {"id": created["id"], "f": file},
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert path in [p["path"] for p in error["extensions"]["problems"]]
    read = await api.data(
        "query($id: ID!) { collection(id: $id) { version } }", {"id": created["id"]}
    )
    assert read["collection"]["version"] == 1


@pytest.mark.parametrize("bad_id", ["", "col_123", "abc", "col_" + "G" * 32, "spl_" + "a" * 32])
async def test_a_malformed_id_is_bad_input(api: Api, bad_id: str) -> None:
    error = await api.error("query($id: ID!) { collection(id: $id) { id } }", {"id": bad_id})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == "id"


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"after": "%%%"}, "after"),
        ({"after": "bm90IGEgY3Vyc29y"}, "after"),
    ],
)
async def test_page_size_and_cursor_are_checked(api: Api, args: dict[str, Any], field: str) -> None:
    error = await api.error(
        "query($first: Int! = 20, $after: String) { collections(first: $first, after: $after) "
        "{ edges { cursor } } }",
        args,
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field
