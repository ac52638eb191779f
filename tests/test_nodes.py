"""Relay global object identification: ``node(id:)`` and ``nodes(ids:)`` over every kind."""

from __future__ import annotations

from typing import Any

from tests.api import (
    ADMIN,
    OWNER,
    STRANGER,
    Api,
    start_export,
)
from tests.test_exports import reviewed_collection
from tests.test_spells import create_spell

MISSING = "col_" + "0" * 32

REFETCH = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Collection { name }
    ... on Cook { collectionId cookStatus: status }
    ... on Piece { cookId pieceStatus: status }
    ... on Spell { name }
    ... on Export { collectionId exportStatus: status }
  }
}
"""


async def one_of_each(api: Api, as_: str = OWNER) -> dict[str, str]:
    """A collection, a finished cook with a piece, a spell and an export, all owned by ``as_``."""
    collection, kept = await reviewed_collection(api, count=3)
    piece = kept[0]["id"]
    cook = await api.data("query($id: ID!) { piece(id: $id) { cookId } }", {"id": piece})
    export = await start_export(api, collection["id"], as_=as_)
    spell = await create_spell(api, ("prompt", {"text": "[[Animal]]"}), as_=as_)
    return {
        "Collection": collection["id"],
        "Cook": cook["piece"]["cookId"],
        "Piece": piece,
        "Spell": spell["id"],
        "Export": export["id"],
    }


async def test_every_kind_of_object_is_refetched_by_its_id_through_node(api: Api) -> None:
    ids = await one_of_each(api)
    for typename, id_ in ids.items():
        found = (await api.data(REFETCH, {"id": id_}))["node"]
        assert (found["__typename"], found["id"]) == (typename, id_)
    typed = await api.data(
        "query($id: ID!) { cook(id: $id) { status collectionId } }", {"id": ids["Cook"]}
    )
    refetched = (await api.data(REFETCH, {"id": ids["Cook"]}))["node"]
    assert refetched["cookStatus"] == typed["cook"]["status"]
    assert refetched["collectionId"] == typed["cook"]["collectionId"]


async def test_another_users_object_is_null_exactly_like_a_missing_one(api: Api) -> None:
    ids = await one_of_each(api)
    missing = await api.post(REFETCH, {"id": MISSING}, token=api.token_for(STRANGER))
    assert missing["data"] == {"node": None}
    assert "errors" not in missing
    for id_ in [*ids.values(), "pc_" + "f" * 32, "not-an-id", "cs_" + "a" * 32]:
        body = await api.post(REFETCH, {"id": id_}, token=api.token_for(STRANGER))
        assert body == missing, (id_, body)  # the same answer, byte for byte


async def test_nodes_mixes_owned_foreign_and_missing_ids_in_order(api: Api) -> None:
    mine = await one_of_each(api)
    theirs = await api.create_collection(as_=STRANGER)
    ids = [mine["Spell"], theirs["id"], MISSING, mine["Collection"], mine["Piece"]]
    body = await api.post(
        "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }",
        {"ids": ids},
        token=api.token_for(OWNER),
    )
    assert "errors" not in body, body
    got: list[Any] = body["data"]["nodes"]
    assert got == [
        {"__typename": "Spell", "id": mine["Spell"]},
        None,
        None,
        {"__typename": "Collection", "id": mine["Collection"]},
        {"__typename": "Piece", "id": mine["Piece"]},
    ]
    admin = await api.data(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": ids[:2]}, as_=ADMIN
    )
    assert [n and n["id"] for n in admin["nodes"]] == ids[:2]  # admins see all, as typed fields


async def test_nodes_refuses_more_than_a_hundred_ids(api: Api) -> None:
    error = await api.error(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [MISSING] * 101}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


async def test_node_needs_a_signed_in_caller(api: Api) -> None:
    error = await api.error(REFETCH, {"id": MISSING}, as_=None)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
