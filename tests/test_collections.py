"""Collections through the GraphQL API: create, read, update, archive, list, import/export."""

from __future__ import annotations

from typing import Any

from tests.api import COLLECTION_FIELDS, OWNER, STRANGER, Api

GET = f"query($id: ID!) {{ collection(id: $id) {{ {COLLECTION_FIELDS} }} }}"
UPDATE = f"""mutation($id: ID!, $input: UpdateCollectionInput!, $v: Int) {{
  updateCollection(id: $id, input: $input, expectedVersion: $v) {{ {COLLECTION_FIELDS} }} }}"""
ARCHIVE = "mutation($id: ID!) { archiveCollection(id: $id) { id archived version } }"
RESTORE = "mutation($id: ID!) { restoreCollection(id: $id) { id archived version } }"
LIST = """query($first: Int!, $after: String, $all: Boolean!) {
  collections(first: $first, after: $after, includeArchived: $all) {
    edges { cursor node { id name archived } } pageInfo { hasNextPage endCursor } } }"""
IMPORT = f"""mutation($id: ID!, $file: JSON!) {{
  importTraitTree(id: $id, file: $file) {{ {COLLECTION_FIELDS} }} }}"""


async def test_a_created_collection_reads_back_exactly_as_it_was_given(api: Api) -> None:
    created = await api.create_collection()
    assert created["id"].startswith("col_")
    assert created["ownerId"] == OWNER
    assert created["version"] == 1
    assert created["archived"] is False
    assert created["generator"] == {"kind": "TOOL", "id": "prompt"}
    assert created["template"] == {
        "input_prompt": "[[Animal]] wearing a hat, id [[miladyid]]",
        "cfg": 7.5,
    }
    animal, ident = created["traitTree"]
    assert animal["traits"][0] == {"name": "Cat", "value": "a cute cat", "weight": 20.0}
    assert ident["range"] == {
        "start": 0,
        "end": 9999,
        "step": 1,
        "zeroPad": 4,
        "uniqueAcrossCook": True,
        "shuffleSeed": None,
        "size": 10000,
    }
    read = await api.data(GET, {"id": created["id"]})
    assert read["collection"] == created


async def test_a_trait_without_a_value_uses_its_name(api: Api) -> None:
    tree = [{"manual": {"name": "Hat", "traits": [{"name": "Fedora"}]}}]
    created = await api.create_collection(traitTree=tree, template={})
    assert created["traitTree"][0]["traits"] == [
        {"name": "Fedora", "value": "Fedora", "weight": 1.0}
    ]


async def test_template_keys_with_dots_and_dollars_survive_storage(api: Api) -> None:
    template = {"a.b": {"$c": ["[[Animal]]", 1, None, True]}, "nested": [{"x.y": "$1 [[Animal]]"}]}
    created = await api.create_collection(template=template)
    assert created["template"] == template


async def test_an_update_changes_only_the_given_fields_and_bumps_the_version(api: Api) -> None:
    created = await api.create_collection()
    data = await api.data(UPDATE, {"id": created["id"], "input": {"name": "Renamed"}})
    updated = data["updateCollection"]
    assert updated["name"] == "Renamed"
    assert updated["version"] == 2
    assert updated["traitTree"] == created["traitTree"]
    assert updated["template"] == created["template"]
    assert updated["updatedAt"] >= created["updatedAt"]


async def test_an_update_with_a_stale_expected_version_is_a_conflict_and_changes_nothing(
    api: Api,
) -> None:
    created = await api.create_collection()
    await api.data(UPDATE, {"id": created["id"], "input": {"name": "First"}, "v": 1})
    error = await api.error(UPDATE, {"id": created["id"], "input": {"name": "Second"}, "v": 1})
    assert error["extensions"]["code"] == "CONFLICT"
    assert error["extensions"]["currentVersion"] == 2
    read = await api.data(GET, {"id": created["id"]})
    assert read["collection"]["name"] == "First"


async def test_switching_the_generator_to_a_spell_replaces_the_tool(api: Api) -> None:
    created = await api.create_collection()
    made = await api.data(
        "mutation($i: SpellInput!) { createSpell(input: $i) { id } }",
        {"i": {"name": "s", "steps": [{"toolId": "prompt", "params": {"p": "[[Animal]]"}}]}},
    )
    spell = made["createSpell"]["id"]
    data = await api.data(UPDATE, {"id": created["id"], "input": {"generator": {"spellId": spell}}})
    assert data["updateCollection"]["generator"] == {"kind": "SPELL", "id": spell}


async def test_removing_a_category_the_template_still_uses_is_refused(api: Api) -> None:
    created = await api.create_collection()
    tree = created["traitTree"][:1]
    tree_input = [{"manual": {"name": tree[0]["name"], "traits": tree[0]["traits"]}}]
    error = await api.error(UPDATE, {"id": created["id"], "input": {"traitTree": tree_input}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "[[miladyid]]" in error["message"]
    read = await api.data(GET, {"id": created["id"]})
    assert read["collection"]["traitTree"] == created["traitTree"]


async def test_archiving_hides_a_collection_from_the_list_and_restoring_brings_it_back(
    api: Api,
) -> None:
    kept = await api.create_collection(name="kept")
    gone = await api.create_collection(name="gone")
    first = await api.data(ARCHIVE, {"id": gone["id"]})
    again = await api.data(ARCHIVE, {"id": gone["id"]})
    assert first["archiveCollection"]["archived"] is True
    assert again["archiveCollection"]["version"] == first["archiveCollection"]["version"]

    visible = await api.data(LIST, {"first": 10, "all": False})
    assert [e["node"]["id"] for e in visible["collections"]["edges"]] == [kept["id"]]
    everything = await api.data(LIST, {"first": 10, "all": True})
    assert {e["node"]["id"] for e in everything["collections"]["edges"]} == {kept["id"], gone["id"]}
    still_readable = await api.data(GET, {"id": gone["id"]})
    assert still_readable["collection"]["archived"] is True

    await api.data(RESTORE, {"id": gone["id"]})
    visible = await api.data(LIST, {"first": 10, "all": False})
    assert len(visible["collections"]["edges"]) == 2


async def test_listing_pages_through_my_collections_newest_first_without_gaps_or_repeats(
    api: Api,
) -> None:
    made = [(await api.create_collection(name=f"c{i}"))["id"] for i in range(7)]
    await api.create_collection(as_=STRANGER, name="not mine")
    seen: list[str] = []
    after: str | None = None
    while True:
        page = (await api.data(LIST, {"first": 3, "after": after, "all": False}))["collections"]
        seen += [e["node"]["id"] for e in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == list(reversed(made))


async def test_the_trait_tree_file_round_trips_through_import(api: Api) -> None:
    created = await api.create_collection()
    exported = created["traitTreeFile"]
    assert exported["categories"][0] == {
        "name": "Animal",
        "mode": "manual",
        "traits": [
            {"name": "Cat", "value": "a cute cat", "rarity": 20.0},
            {"name": "Owl", "value": "a wise owl", "rarity": 1.0},
        ],
    }
    other = await api.create_collection(name="other")
    data = await api.data(IMPORT, {"id": other["id"], "file": exported})
    assert data["importTraitTree"]["traitTree"] == created["traitTree"]


async def test_import_reads_the_old_systems_aliases_and_defaults(api: Api) -> None:
    created = await api.create_collection(template={"p": "[[Animal]]"})
    legacy: dict[str, Any] = {
        "categories": [
            {
                "name": "Animal",
                "mode": "manual",
                "traits": [
                    {"name": "Cat", "prompt": "a cute cat", "rarity": 20},
                    {"name": "Owl"},
                    {"name": "Ghost", "value": "a ghost", "rarity": 0},
                ],
            },
            {"name": "num", "generator": {"type": "range", "start": 1, "end": 5, "zeroPad": 2}},
        ]
    }
    data = await api.data(IMPORT, {"id": created["id"], "file": legacy})
    animal, num = data["importTraitTree"]["traitTree"]
    assert animal["traits"] == [
        {"name": "Cat", "value": "a cute cat", "weight": 20.0},
        {"name": "Owl", "value": "Owl", "weight": 0.5},
        {"name": "Ghost", "value": "a ghost", "weight": 0.0},
    ]
    assert num["range"]["size"] == 5
    assert num["range"]["zeroPad"] == 2


async def test_viewer_and_tools_describe_the_caller_and_the_generators(api: Api) -> None:
    data = await api.data("{ viewer { id isAdmin roles } tools { id } }")
    assert data["viewer"] == {"id": OWNER, "isAdmin": False, "roles": []}
    assert {"id": "prompt"} in data["tools"]
