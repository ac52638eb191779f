"""Introspection is for admins only; GraphiQL (development) works with an admin token."""

from __future__ import annotations

import pytest
from graphql import get_introspection_query

from tests.api import ADMIN, OWNER, Api

SCHEMA = "query { __schema { queryType { name } } }"
TYPE = 'query { __type(name: "Cook") { fields { name } } }'


async def test_an_admin_may_introspect_the_whole_schema(api: Api) -> None:
    data = await api.data(get_introspection_query(), as_=ADMIN)
    names = {t["name"] for t in data["__schema"]["types"]}
    assert {"Cook", "Collection", "Mutation"} <= names


@pytest.mark.parametrize("query", [SCHEMA, TYPE], ids=["__schema", "__type"])
async def test_a_signed_in_non_admin_is_forbidden_to_introspect(api: Api, query: str) -> None:
    body = await api.post(query, token=api.token_for(OWNER))
    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert error["message"] == "introspection is for admins only"


async def test_an_anonymous_caller_is_unauthenticated_when_introspecting(api: Api) -> None:
    body = await api.post(SCHEMA)
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}


async def test_a_bad_token_says_why_when_introspecting(api: Api) -> None:
    body = await api.post(SCHEMA, token="not.a.token")
    [error] = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED"}
    assert error["message"] == "the token is malformed"


async def test_typename_is_not_introspection_and_stays_open(api: Api) -> None:
    assert await api.data("query { __typename viewer { __typename } }", as_=OWNER) == {
        "__typename": "Query",
        "viewer": {"__typename": "Viewer"},
    }


async def test_graphiql_loads_and_its_schema_query_works_with_an_admin_token(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    # What GraphiQL sends to build its docs and autocompletion, with the Headers tab's token.
    response = await api.client.post(
        "/graphql",
        json={"query": get_introspection_query(), "operationName": "IntrospectionQuery"},
        headers={"Authorization": f"Bearer {api.token(ADMIN, admin=True)}"},
    )
    assert response.status_code == 200
    assert response.json()["data"]["__schema"]["queryType"]["name"] == "Query"
