"""Health routes, request ids, masking of unexpected errors, and the dev-only GraphiQL."""

from __future__ import annotations

import pytest
from starlette.middleware.base import BaseHTTPMiddleware

from orchestration.catalog.collections import CollectionStore
from tests.api import Api


async def test_healthz_answers_and_readyz_reports_the_database(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    ready = await api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.headers["X-Request-ID"]


async def test_readyz_is_503_when_the_database_is_gone(api: Api) -> None:
    await api.app.state.runtime.client.close()
    ready = await api.client.get("/readyz")
    assert ready.status_code == 503


async def test_an_unexpected_failure_is_masked_as_internal_with_the_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals: mongodb://user:pw@host")

    monkeypatch.setattr(CollectionStore, "list_mine", explode)
    response = await api.client.post(
        "/graphql",
        json={"query": "{ collections { edges { cursor } } }"},
        headers={"Authorization": f"Bearer {api.token('alice')}"},
    )
    [error] = response.json()["errors"]
    assert error["extensions"] == {
        "code": "INTERNAL",
        "requestId": response.headers["X-Request-ID"],
    }
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert any("secret internals" in r.exc_text for r in caplog.records if r.exc_text)


async def test_graphiql_is_served_in_development(api: Api) -> None:
    page = await api.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


async def test_mutations_over_get_are_refused_with_405(api: Api) -> None:
    response = await api.client.get(
        "/graphql", params={"query": 'mutation { cancelCook(id: "x") { id } }'}
    )
    assert response.status_code == 405


async def test_a_syntax_error_is_bad_user_input(api: Api) -> None:
    error = await api.error("query { collections(")
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


def test_every_request_passes_pure_asgi_middleware_only(api: Api) -> None:
    """Starlette's ``BaseHTTPMiddleware`` runs the rest of each request in a task of its own
    and streams its body through a queue (``service/request_gate.py``)."""
    assert [m for m in api.app.user_middleware if m.cls is BaseHTTPMiddleware] == []
