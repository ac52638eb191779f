"""A small GraphQL client for tests, with tokens for the usual cast of callers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from auth.dev_keys import DevKeyPair, ensure_dev_keys, mint_token
from service.app import create_app
from service.settings import Settings
from service.stores import MediaFactory, media_store

OWNER = "alice"
STRANGER = "mallory"
ADMIN = "root"

COLLECTION_FIELDS = """
  id ownerId name description totalSupply version archived createdAt updatedAt
  generator { kind id }
  traitTree {
    name
    ... on ManualCategory { traits { name value weight } }
    ... on GeneratedCategory { range { start end step zeroPad uniqueAcrossCook shuffleSeed size } }
  }
  template traitTreeFile
"""


class GraphQLFailed(AssertionError):
    pass


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings
    app: FastAPI
    keys: DevKeyPair = field(init=False)

    def __post_init__(self) -> None:
        self.keys = ensure_dev_keys(self.settings.keys_dir)

    def token(self, subject: str, *, admin: bool = False, **kw: Any) -> str:
        return mint_token(
            self.keys,
            subject=subject,
            issuer=self.settings.jwt_issuer,
            audience=self.settings.jwt_audience,
            roles=["admin"] if admin else [],
            **kw,
        )

    def token_for(self, who: str | None) -> str | None:
        """A token for OWNER, STRANGER or ADMIN by name; None stays anonymous."""
        if who is None:
            return None
        return self.token(who, admin=who == ADMIN)

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = OWNER
    ) -> dict[str, Any]:
        """Run as the named caller and return ``data``; fail the test on any error."""
        body = await self.post(query, variables, token=self.token_for(as_))
        if body.get("errors"):
            raise GraphQLFailed(body["errors"])
        result: dict[str, Any] = body["data"]
        return result

    async def error(
        self, query: str, variables: dict[str, Any] | None = None, *, as_: str | None = OWNER
    ) -> dict[str, Any]:
        """Run as the named caller and return its single error; fail the test if it succeeds."""
        body = await self.post(query, variables, token=self.token_for(as_))
        errors = body.get("errors")
        assert errors, f"expected an error, got {body}"
        assert len(errors) == 1, errors
        error: dict[str, Any] = errors[0]
        return error

    async def create_collection(self, as_: str = OWNER, **overrides: Any) -> dict[str, Any]:
        data = await self.data(
            "mutation($input: CreateCollectionInput!) "
            f"{{ createCollection(input: $input) {{ {COLLECTION_FIELDS} }} }}",
            {"input": collection_input(**overrides)},
            as_=as_,
        )
        created: dict[str, Any] = data["createCollection"]
        return created

    async def count_collections(self) -> int:
        """Documents in the database, counted directly (to prove nothing was written)."""
        runtime = self.app.state.runtime
        db = runtime.client[self.settings.db_name]
        count: int = await db["collections"].count_documents({})
        return count


def collection_input(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "Cult Secretaries",
        "description": "My secretary cult",
        "totalSupply": 100,
        "generator": {"toolId": "prompt"},
        "traitTree": [
            {
                "manual": {
                    "name": "Animal",
                    "traits": [
                        {"name": "Cat", "value": "a cute cat", "weight": 20},
                        {"name": "Owl", "value": "a wise owl", "weight": 1},
                    ],
                }
            },
            {
                "generated": {
                    "name": "miladyid",
                    "range": {"start": 0, "end": 9999, "zeroPad": 4, "uniqueAcrossCook": True},
                }
            },
        ],
        "template": {"input_prompt": "[[Animal]] wearing a hat, id [[miladyid]]", "cfg": 7.5},
    }
    base.update(overrides)
    return base


COOK_FIELDS = """
  id collectionId status reason count maxConcurrent maxFailures seed configHash lastSeq
  numbers {
    inFlight retrying completed accepted rejected pendingReview failed cancelled live costUsd
  }
"""
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED"}


def with_test_tool(**params: Any) -> dict[str, Any]:
    """Overrides for a collection whose generator is the configurable test tool."""
    return {
        "generator": {"toolId": "test"},
        "template": {"prompt": "[[Animal]] #[[miladyid]]", **params},
    }


async def start_cook(api: Api, collection_id: str, as_: str = OWNER, **args: Any) -> dict[str, Any]:
    names = ", ".join(f"${k}: Int{'!' if k == 'count' else ''}" for k in args)
    passed = ", ".join(f"{k}: ${k}" for k in args)
    query = (
        f"mutation($c: ID!{', ' if names else ''}{names}) "
        f"{{ startCook(collectionId: $c{', ' if passed else ''}{passed}) {{ {COOK_FIELDS} }} }}"
    )
    data = await api.data(query, {"c": collection_id, **args}, as_=as_)
    cook: dict[str, Any] = data["startCook"]
    return cook


async def read_cook(api: Api, cook_id: str, extra: str = "") -> dict[str, Any]:
    data = await api.data(
        f"query($id: ID!) {{ cook(id: $id) {{ {COOK_FIELDS} {extra} }} }}", {"id": cook_id}
    )
    cook: dict[str, Any] = data["cook"]
    return cook


async def wait_for_cook(
    api: Api, cook_id: str, done: Any = None, within: float = 30.0, extra: str = ""
) -> dict[str, Any]:
    """Poll until ``done(cook)`` (default: the cook ended and every event it shows is in its
    log: a transition commits with its event, which a relay writes to the log just after);
    fail the test on timeout."""
    import asyncio
    import time

    deadline = time.monotonic() + within
    while True:
        cook = await read_cook(api, cook_id, extra)
        if done(cook) if done else await _ended_and_logged(api, cook):
            return cook
        if time.monotonic() > deadline:
            raise AssertionError(f"cook did not get there in {within}s: {cook}")
        await asyncio.sleep(0.02)


async def _ended_and_logged(api: Api, cook: dict[str, Any]) -> bool:
    if cook["status"] not in TERMINAL:
        return False
    last = await api.data(
        "query($id: ID!, $a: Int!) { cook(id: $id) { events(afterSeq: $a, first: 1) { seq } } }",
        {"id": cook["id"], "a": max(0, cook["lastSeq"] - 1)},
    )
    return bool(last["cook"]["events"])


PIECE_FIELDS = """
  id status attempt output costUsd lastError runId
  outputs { contentType text url size sha256 }
"""


async def pieces_of(api: Api, cook_id: str) -> list[dict[str, Any]]:
    data = await api.data(
        f"query($id: ID!) {{ cook(id: $id) {{ pieces(first: 100) {{ {PIECE_FIELDS} }} }} }}",
        {"id": cook_id},
    )
    pieces: list[dict[str, Any]] = data["cook"]["pieces"]
    for piece in pieces:  # the images among the outputs
        piece["media"] = [o for o in piece["outputs"] if o["url"] is not None]
    return pieces


EXPORT_FIELDS = """
  id collectionId status total done attempt error sizeBytes provenanceHash downloadUrl
  options { nameTemplate description shuffle shuffleSeed includePrompt imageBaseUri }
"""


async def start_export(
    api: Api, collection_id: str, options: dict[str, Any] | None = None, as_: str = OWNER
) -> dict[str, Any]:
    data = await api.data(
        "mutation($c: ID!, $o: ExportOptionsInput) "
        f"{{ exportCollection(collectionId: $c, options: $o) {{ {EXPORT_FIELDS} }} }}",
        {"c": collection_id, "o": options},
        as_=as_,
    )
    started: dict[str, Any] = data["exportCollection"]
    return started


async def wait_for_export(api: Api, export_id: str, within: float = 30.0) -> dict[str, Any]:
    """Poll until the export is COMPLETED or FAILED; fail the test on timeout."""
    import asyncio
    import time

    deadline = time.monotonic() + within
    while True:
        data = await api.data(
            f"query($id: ID!) {{ export(id: $id) {{ {EXPORT_FIELDS} }} }}", {"id": export_id}
        )
        job: dict[str, Any] = data["export"]
        if job["status"] in ("COMPLETED", "FAILED"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"export did not finish in {within}s: {job}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, media: MediaFactory = media_store) -> AsyncIterator[Api]:
    """One API process's lifetime, in process: its lifespan (and background workers) start,
    a client calls it over ASGI, and it all ends. The database is left as it is. ``media``
    builds its media store (a test's own, to inject a fault)."""
    app = create_app(settings, media=media)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cook.test") as client:
            yield Api(client, settings, app)
