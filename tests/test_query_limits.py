"""Query limits: depth, aliases, tokens and cost are checked before anything executes; the
cost is reported in every response; batching is off; suggestions are off in production."""

from __future__ import annotations

from typing import Any

from tests.api import Api, collection_input
from tests.conftest import MakeApi

CREATE_DEEP = """mutation($input: CreateCollectionInput!) {
  createCollection(input: $input) { traitTree { ... on ManualCategory { traits { name } } } }
}"""
CREATE_SHALLOW = (
    "mutation($input: CreateCollectionInput!) { createCollection(input: $input) { id } }"
)


def aliased_creates(n: int) -> str:
    fields = " ".join(f"c{i}: createCollection(input: $input) {{ id }}" for i in range(n))
    return f"mutation($input: CreateCollectionInput!) {{ {fields} }}"


async def refused(api: Api, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """The request's single error; it must have run nothing (no data at all)."""
    body = await api.post(query, variables, token=api.token_for("alice"))
    assert body.get("data") is None, body
    [error] = body["errors"]
    return {**error, "response_extensions": body.get("extensions", {})}


async def test_a_too_deep_query_is_refused_before_anything_runs(make_api: MakeApi) -> None:
    api = await make_api(max_query_depth=2)
    error = await refused(api, CREATE_DEEP, {"input": collection_input()})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "exceeds maximum operation depth of 2" in error["message"]
    assert await api.count_collections() == 0
    await api.data(CREATE_SHALLOW, {"input": collection_input()})  # within the depth: it runs
    assert await api.count_collections() == 1


async def test_an_alias_heavy_query_is_refused_before_anything_runs(make_api: MakeApi) -> None:
    api = await make_api(max_query_aliases=3)
    error = await refused(api, aliased_creates(4), {"input": collection_input()})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "4 aliases found. Allowed: 3" in error["message"]
    assert await api.count_collections() == 0
    await api.data(aliased_creates(3), {"input": collection_input()})
    assert await api.count_collections() == 3


async def test_an_over_cost_query_is_refused_before_anything_runs_with_its_cost(
    make_api: MakeApi,
) -> None:
    api = await make_api(max_query_cost=1000)
    error = await refused(api, CREATE_DEEP, {"input": collection_input()})
    # createCollection 1 + traitTree 50 + traits 50 * 500
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "cost": 25_051, "maximumCost": 1000}
    assert error["message"].startswith("the query costs 25051; at most 1000 is allowed")
    assert error["response_extensions"]["cost"] == {
        "requestedQueryCost": 25_051,
        "maximumAvailable": 1000,
    }
    assert await api.count_collections() == 0
    await api.data(CREATE_SHALLOW, {"input": collection_input()})
    assert await api.count_collections() == 1


async def test_a_document_with_too_many_tokens_is_refused(make_api: MakeApi) -> None:
    api = await make_api(max_query_tokens=50)
    error = await refused(api, "query { " + "viewer { id } " * 20 + "}")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "more than 50 tokens" in error["message"]


async def test_every_response_reports_its_cost_from_first_and_list_sizes(api: Api) -> None:
    query = """query($n: Int!) {
      collections(first: $n) { edges { node { id traitTree { name } } } pageInfo { hasNextPage } }
      tools { id }
    }"""
    body = await api.post(query, {"n": 7}, token=api.token_for("alice"))
    assert not body.get("errors"), body
    # collections 7, edges 7, node 7, traitTree 7 * 50, pageInfo 7; tools 20
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 7 + 7 + 7 + 350 + 7 + 20,
        "maximumAvailable": api.settings.max_query_cost,
    }


async def test_an_omitted_first_costs_its_default_and_a_list_argument_its_length(
    api: Api,
) -> None:
    body = await api.post(
        "query { collections { edges { cursor } } }", token=api.token_for("alice")
    )
    assert body["extensions"]["cost"]["requestedQueryCost"] == 20 + 20  # default first: 20
    review = """mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }"""
    decisions = [{"pieceId": "pc_" + "0" * 32, "outcome": "ACCEPTED"}] * 3
    body = await api.post(review, {"d": decisions}, token=api.token_for("alice"))
    assert body["extensions"]["cost"]["requestedQueryCost"] == 3
    preview = 'query { previewPieces(collectionId: "x", count: 4) { pieces { traits { name } } } }'
    body = await api.post(preview, token=api.token_for("alice"))
    assert body["extensions"]["cost"]["requestedQueryCost"] == 4 + 4 + 4 * 50


async def test_a_page_far_above_the_limit_is_refused_for_its_cost(api: Api) -> None:
    error = await refused(api, "query { collections(first: 1000000) { edges { cursor } } }")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["cost"] == 2_000_000


async def test_batched_requests_are_refused(api: Api) -> None:
    one = {"query": "query { viewer { id } }"}
    response = await api.client.post(
        "/graphql",
        json=[one, one],
        headers={"Authorization": f"Bearer {api.token('alice')}"},
    )
    assert response.status_code == 400
    assert "batching" in response.text.lower()
