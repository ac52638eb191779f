"""Rate limits: per caller on the HTTP routes (429 + Retry-After), and per operation inside
GraphQL (RATE_LIMITED + retryAfter), with the excess refused while allowed calls keep flowing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from graphql import build_schema as parse_sdl
from pydantic import ValidationError

from schema.rate_limits import OPERATION_LIMITS
from schema.schema import schema
from service.app import shared_schema
from service.settings import Settings
from tests.api import OWNER, STRANGER, Api
from tests.conftest import MakeApi

VIEWER = "query { viewer { id } }"
START = "mutation($c: ID!) { startCook(collectionId: $c, count: 1) { id } }"
LIMIT = 5


async def post_raw(api: Api, query: str, who: str | None, **variables: Any) -> tuple[int, Any]:
    token = api.token_for(who)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await api.client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    return response.status_code, (response.json(), response.headers)


async def test_a_burst_of_ten_times_the_http_limit_is_cut_to_the_limit_per_caller(
    make_api: MakeApi,
) -> None:
    api = await make_api(http_rate_limit=f"{LIMIT}/minute")
    burst = [post_raw(api, VIEWER, OWNER) for _ in range(10 * LIMIT)]
    others = [post_raw(api, VIEWER, STRANGER) for _ in range(LIMIT)]
    answers = await asyncio.gather(*burst, *others)
    mine, theirs = answers[: 10 * LIMIT], answers[10 * LIMIT :]

    served = [body for status, (body, _) in mine if status == 200]
    refused = [(body, headers) for status, (body, headers) in mine if status == 429]
    assert len(served) == LIMIT
    assert len(refused) == 9 * LIMIT
    assert all(body["data"] == {"viewer": {"id": OWNER}} for body in served)
    for body, headers in refused:
        [error] = body["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        retry_after = error["extensions"]["retryAfter"]
        assert 1 <= retry_after <= 60
        assert int(headers["Retry-After"]) == retry_after
        assert headers["X-Request-ID"]
    # Another caller's requests were served all along.
    assert [status for status, _ in theirs] == [200] * LIMIT


async def test_anonymous_callers_are_limited_by_address_and_probes_never(
    make_api: MakeApi,
) -> None:
    api = await make_api(http_rate_limit=f"{LIMIT}/minute")
    statuses = [(await post_raw(api, VIEWER, None))[0] for _ in range(LIMIT + 1)]
    assert statuses == [200] * LIMIT + [429]  # (the 200s carry UNAUTHENTICATED errors)
    assert (await post_raw(api, VIEWER, OWNER))[0] == 200
    for _ in range(2 * LIMIT):
        assert (await api.client.get("/healthz")).status_code == 200


async def test_a_burst_of_ten_times_an_operation_limit_runs_only_the_limit(
    make_api: MakeApi,
) -> None:
    api = await make_api(operation_rate_limits={"startCook": "3/minute"})
    collections = [(await api.create_collection())["id"] for _ in range(30)]
    starts = [api.post(START, {"c": c}, token=api.token_for(OWNER)) for c in collections]
    reads = [api.post(VIEWER, token=api.token_for(OWNER)) for _ in range(30)]
    answers = await asyncio.gather(*starts, *reads)
    started, read = answers[:30], answers[30:]

    ran = [body for body in started if not body.get("errors")]
    limited = [body["errors"][0] for body in started if body.get("errors")]
    assert len(ran) == 3
    assert len(limited) == 27
    for error in limited:
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["operation"] == "startCook"
        assert 1 <= error["extensions"]["retryAfter"] <= 60
    assert all(body["data"] == {"viewer": {"id": OWNER}} for body in read)  # still served
    db = api.app.state.runtime.client[api.settings.db_name]
    assert await db.cooks.count_documents({}) == 3  # the refused ones wrote nothing


async def test_aliases_cannot_multiply_an_operation_budget(make_api: MakeApi) -> None:
    api = await make_api(operation_rate_limits={"startCook": "3/minute"})
    ids = [(await api.create_collection())["id"] for _ in range(4)]
    fields = " ".join(
        f'a{i}: startCook(collectionId: "{c}", count: 1) {{ id }}' for i, c in enumerate(ids)
    )
    body = await api.post(f"mutation {{ {fields} }}", token=api.token_for(OWNER))
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    db = api.app.state.runtime.client[api.settings.db_name]
    assert await db.cooks.count_documents({}) == 0


async def test_operation_limits_count_per_caller(make_api: MakeApi) -> None:
    api = await make_api(operation_rate_limits={"previewPieces": "1/minute"})
    mine = await api.create_collection(as_=OWNER)
    theirs = await api.create_collection(as_=STRANGER)
    preview = "query($c: ID!) { previewPieces(collectionId: $c, count: 1) { seed } }"
    await api.data(preview, {"c": mine["id"]}, as_=OWNER)
    error = await api.error(preview, {"c": mine["id"]}, as_=OWNER)
    assert error["extensions"]["code"] == "RATE_LIMITED"
    await api.data(preview, {"c": theirs["id"]}, as_=STRANGER)


async def test_apps_of_one_process_share_a_schema_and_each_charges_its_own_limits(
    make_api: MakeApi,
) -> None:
    """The schema holds no app's limiter (``service/app.py``, ``shared_schema``): each request
    charges the limits of the app it reached."""
    preview = "query($c: ID!) { previewPieces(collectionId: $c, count: 1) { seed } }"
    built = shared_schema.cache_info().misses
    strict = await make_api(operation_rate_limits={"previewPieces": "1/minute"})
    generous = await make_api(operation_rate_limits={"previewPieces": "100/minute"})
    assert shared_schema.cache_info().misses - built <= 1, "one schema for both apps"
    mine = await strict.create_collection(as_=OWNER)
    await strict.data(preview, {"c": mine["id"]}, as_=OWNER)
    assert (await strict.error(preview, {"c": mine["id"]}, as_=OWNER))["extensions"]["code"] == (
        "RATE_LIMITED"
    )
    for _ in range(3):
        await generous.data(preview, {"c": mine["id"]}, as_=OWNER)


def test_every_per_operation_limit_names_a_root_field_of_the_schema() -> None:
    sdl = parse_sdl(schema.as_str())
    roots = [t for t in (sdl.query_type, sdl.mutation_type, sdl.subscription_type) if t]
    fields = {name for root in roots for name in root.fields}
    assert set(OPERATION_LIMITS) <= fields


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"operation_rate_limits": {"noSuchField": "1/minute"}}, "has no per-operation limit"),
        ({"operation_rate_limits": {"startCook": "lots"}}, "is not a rate limit"),
        ({"http_rate_limit": "fast"}, "is not a rate limit"),
        ({"rate_limit_storage_uri": "async+redis://x"}, r"async\+ is added"),
    ],
)
def test_settings_refuse_malformed_limits(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**overrides)


def test_the_docs_list_every_per_operation_limit_as_the_table_sets_it() -> None:
    readme = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    section = readme[readme.index("**Rate limits, per operation**") :]
    section = " ".join(section[: section.index("Authentication is decided first")].split())
    for name, limit in OPERATION_LIMITS.items():
        amount, per = limit.split("/")
        assert per == "minute", (name, limit)
        assert f"`{name}` {amount}" in section, (name, limit)
