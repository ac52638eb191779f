"""The gallery page as the studio's review view sends it: parsed, validated and costed once per
document text, read with a fixed number of database commands whatever the page's size, and
without the pieces' bookkeeping."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import strawberry.schema.schema as strawberry_schema
from pymongo import monitoring

from service.settings import Settings
from tests.api import Api, start_cook, wait_for_cook
from tests.conftest import running

GALLERY = """query Pieces($collectionId: ID!, $cookId: ID, $filter: PieceFilterInput, $first: Int!,
 $after: String) {
  pieces(collectionId: $collectionId, cookId: $cookId, filter: $filter, order: INDEX,
   first: $first, after: $after) {
    edges { node { id index status review excluded output lastError traits { category name }
      outputs { contentType text url } } }
    pageInfo { hasNextPage endCursor } } }"""
INTROSPECT = "{ __schema { queryType { name } } }"


@dataclass
class Commands(monitoring.CommandListener):
    """The commands every client in this process sends, while recording."""

    on: bool = False
    seen: list[dict[str, Any]] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.on and event.command_name in {"find", "aggregate", "count", "getMore"}:
            self.seen.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


COMMANDS = Commands()
monitoring.register(COMMANDS)


@pytest.fixture
def commands() -> Iterator[Commands]:
    COMMANDS.seen, COMMANDS.on = [], False
    yield COMMANDS
    COMMANDS.on = False


async def cooked(api: Api, pieces: int) -> str:
    collection = await api.create_collection(totalSupply=200)
    cook = await start_cook(api, collection["id"], count=pieces, maxConcurrent=8)
    await wait_for_cook(api, cook["id"])
    collection_id: str = collection["id"]
    return collection_id


async def test_a_gallery_page_costs_the_same_two_reads_at_any_size(
    settings: Settings, commands: Commands
) -> None:
    async with running(settings) as cooking:
        collection_id = await cooked(cooking, 30)
    # Read through an app with no sweepers, so that every read of the collection is the
    # page's (a sweeper's count or aggregate of the collection once fell inside the window).
    async with running(settings.model_copy(update={"scheduler": False})) as api:
        await api.data(GALLERY, {"collectionId": collection_id, "first": 5})  # warm: the cache
        reads = []
        for first in (5, 30):
            commands.seen, commands.on = [], True
            page = await api.data(GALLERY, {"collectionId": collection_id, "first": first})
            commands.on = False
            assert len(page["pieces"]["edges"]) == first
            mine = [c for c in commands.seen if collection_id in str(c)]
            reads.append([(c.get("find"), c.get("projection")) for c in mine])
    # The collection (its owner's, or NOT_FOUND), then the page: one find each.
    assert [name for name, _ in reads[0]] == ["collections", "pieces"], reads
    assert reads[0] == reads[1]
    projection = reads[0][1][1]
    assert projection["outbox"] == 0
    assert projection["paramsJson"] == 0
    node = page["pieces"]["edges"][0]["node"]
    assert node["traits"]
    assert node["outputs"][0]["text"] == node["output"]


async def test_a_piece_asked_for_its_params_and_attempts_gets_them(api: Api) -> None:
    collection_id = await cooked(api, 2)
    query = """query($c: ID!) { pieces(collectionId: $c, first: 2) {
      edges { node { ...Heavy } } } }
      fragment Heavy on Piece { params attempts { outcome } }"""
    page = await api.data(query, {"c": collection_id})
    node = page["pieces"]["edges"][0]["node"]
    assert node["params"]["input_prompt"].endswith(tuple("0123456789"))
    assert node["attempts"] == [{"outcome": "completed"}]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many times Strawberry parses and validates a document."""
    calls = {"parse": 0, "validate": 0}
    parse, validate = strawberry_schema.parse, strawberry_schema.validate_document

    def counting_parse(*args: Any, **kwargs: Any) -> Any:
        calls["parse"] += 1
        return parse(*args, **kwargs)

    def counting_validate(*args: Any, **kwargs: Any) -> Any:
        calls["validate"] += 1
        return validate(*args, **kwargs)

    monkeypatch.setattr(strawberry_schema, "parse", counting_parse)
    monkeypatch.setattr(strawberry_schema, "validate_document", counting_validate)
    return calls


async def test_a_document_is_parsed_and_validated_once_and_costed_with_each_requests_variables(
    api: Api, counted: dict[str, int]
) -> None:
    collection_id = await cooked(api, 3)
    # A text no earlier test sent: the cache is the process's (one schema serves every app).
    document = f"{GALLERY}\n# {uuid.uuid4().hex}"
    before = dict(counted)
    costs = []
    for first in (1, 2, 3, 2):
        body = await api.post(
            document, {"collectionId": collection_id, "first": first}, token=api.token_for("alice")
        )
        assert len(body["data"]["pieces"]["edges"]) == first
        costs.append(body["extensions"]["cost"]["requestedQueryCost"])
    assert counted["parse"] - before["parse"] == 1
    assert counted["validate"] - before["validate"] == 1
    # A piece costs its outputs and traits: the page's cost follows `first` from the cache.
    assert costs[1] - costs[0] == costs[2] - costs[1] > 0
    assert costs[3] == costs[1]


async def test_a_cached_document_is_still_refused_above_the_cost_limit(api: Api) -> None:
    collection_id = await cooked(api, 1)
    await api.data(GALLERY, {"collectionId": collection_id, "first": 1})
    body = await api.post(
        GALLERY, {"collectionId": collection_id, "first": 10**7}, token=api.token_for("alice")
    )
    assert body["data"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "costs" in error["message"]


async def test_introspection_validated_for_an_admin_is_still_refused_to_others(api: Api) -> None:
    assert (await api.data(INTROSPECT, as_="root"))["__schema"]["queryType"]["name"] == "Query"
    error = await api.error(INTROSPECT, as_="alice")
    assert error["extensions"]["code"] == "FORBIDDEN"
    error = await api.error(INTROSPECT, as_=None)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert (await api.data(INTROSPECT, as_="root"))["__schema"]["queryType"]["name"] == "Query"
