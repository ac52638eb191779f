"""GraphQL-over-HTTP GET with ETag revalidation, and trusted documents by id."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import httpx

from auth.dev_keys import ensure_dev_keys, mint_token
from service.app import create_app
from service.settings import Settings
from service.trusted_documents import STUDIO_MANIFEST, document_id
from tests.api import ADMIN, OWNER, Api
from tests.conftest import MakeApi

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx (which the suite has) still works.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

VIEWER = "query Viewer { viewer { id isAdmin } }"
ARBITRARY = "query Mine { viewer { id } }"


def bearer(api: Api, who: str = OWNER) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token_for(who)}"}


async def get(api: Api, params: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return await api.client.get("/graphql", params=params, headers=headers)


async def test_a_query_by_get_is_private_tagged_and_revalidated_with_304(api: Api) -> None:
    first = await get(api, {"query": VIEWER}, bearer(api))
    assert first.status_code == 200, first.text
    assert first.json()["data"]["viewer"]["id"] == OWNER
    assert "private" in first.headers["cache-control"]
    tag = first.headers["etag"]
    again = await get(api, {"query": VIEWER}, {**bearer(api), "If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == tag
    other = await get(api, {"query": VIEWER}, {**bearer(api, ADMIN), "If-None-Match": tag})
    assert other.status_code == 200  # another caller's answer differs, and so does its tag
    assert other.headers["etag"] != tag


async def test_a_query_by_get_takes_json_variables(api: Api) -> None:
    collection = await api.create_collection()
    response = await get(
        api,
        {
            "query": "query($id: ID!) { node(id: $id) { id } }",
            "variables": json.dumps({"id": collection["id"]}),
        },
        bearer(api),
    )
    assert response.json()["data"]["node"]["id"] == collection["id"]


async def test_a_mutation_by_get_is_refused_with_405_and_nothing_is_written(api: Api) -> None:
    mutation = (
        'mutation { createCollection(input: {name: "x", totalSupply: 1, '
        'generator: {toolId: "prompt"}, traitTree: [], template: {}}) { id } }'
    )
    response = await get(api, {"query": mutation}, bearer(api))
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await api.count_collections() == 0


def write_manifest(tmp_path: Path, *documents: str) -> Path:
    path = tmp_path / "persisted-documents.json"
    path.write_text(json.dumps({document_id(d).removeprefix("sha256:"): d for d in documents}))
    return path


async def test_with_trusted_documents_required_only_the_manifests_documents_run(
    make_api: MakeApi, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path, VIEWER)
    api = await make_api(trusted_documents="required", trusted_documents_manifest=manifest)
    refused = await api.client.post("/graphql", json={"query": ARBITRARY}, headers=bearer(api))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_REQUIRED"
    by_id = await api.client.post(
        "/graphql", json={"documentId": document_id(VIEWER)}, headers=bearer(api)
    )
    assert by_id.json() == {"data": {"viewer": {"id": OWNER, "isAdmin": False}}} | {
        k: v for k, v in by_id.json().items() if k == "extensions"
    }
    apq = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": document_id(VIEWER)[7:]}}}
    assert (await api.client.post("/graphql", json=apq, headers=bearer(api))).json()["data"]
    as_get = await get(api, {"documentId": document_id(VIEWER)}, bearer(api))
    assert as_get.json()["data"]["viewer"]["id"] == OWNER
    same_text = await api.client.post("/graphql", json={"query": VIEWER}, headers=bearer(api))
    assert same_text.json()["data"]["viewer"]["id"] == OWNER  # its text is the manifest's
    admin = await api.client.post("/graphql", json={"query": ARBITRARY}, headers=bearer(api, ADMIN))
    assert admin.json()["data"] == {"viewer": {"id": ADMIN}}


async def test_an_unknown_document_id_gets_a_typed_error(api: Api) -> None:
    response = await api.client.post(
        "/graphql", json={"documentId": "sha256:" + "0" * 64}, headers=bearer(api)
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


async def test_record_mode_writes_each_document_sent_into_a_manifest(
    make_api: MakeApi, tmp_path: Path
) -> None:
    record = tmp_path / "recorded.json"
    api = await make_api(trusted_documents="record", trusted_documents_record_file=record)
    for _ in range(2):
        await api.data(VIEWER)
    await api.data(ARBITRARY)
    assert json.loads(record.read_text()) == {
        document_id(VIEWER): VIEWER,
        document_id(ARBITRARY): ARBITRARY,
    }
    required = await make_api(trusted_documents="required", trusted_documents_manifest=record)
    assert (await required.data(ARBITRARY)) == {"viewer": {"id": OWNER}}


def test_the_studio_manifest_is_a_map_of_ids_to_documents() -> None:
    manifest = json.loads(STUDIO_MANIFEST.read_text())
    assert all(document_id(text) == ident for ident, text in manifest.items())


WATCHED = "subscription Follow($c: ID!) { cookProgress(cookId: $c) { seq } }"
UNTRUSTED = "subscription Other($c: ID!) { cookProgress(cookId: $c) { seq status } }"


def test_over_the_websocket_required_documents_hold_too(settings: Settings, tmp_path: Path) -> None:
    """A subscription runs only from the manifests when they are required: by id, or by the
    manifest's text; any other document gets an ``error`` for its id and never runs."""
    manifest = write_manifest(tmp_path, WATCHED)
    required = settings.model_copy(
        update={"trusted_documents": "required", "trusted_documents_manifest": manifest}
    )
    missing = "ck_" + "0" * 32  # a subscription that runs answers NOT_FOUND for it
    with TestClient(create_app(required)) as client:
        token = mint_token(
            ensure_dev_keys(required.keys_dir),
            subject=OWNER,
            issuer=required.jwt_issuer,
            audience=required.jwt_audience,
            roles=[],
        )
        with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
            ws.send_json(
                {"type": "connection_init", "payload": {"authorization": f"Bearer {token}"}}
            )
            assert ws.receive_json()["type"] == "connection_ack"
            sent = {
                "1": {"query": UNTRUSTED, "variables": {"c": missing}},
                "2": {"documentId": document_id(WATCHED), "variables": {"c": missing}},
                "3": {"query": WATCHED, "variables": {"c": missing}},
                "4": {"documentId": "sha256:" + "f" * 64, "variables": {"c": missing}},
            }
            for ident, payload in sent.items():
                ws.send_json({"id": ident, "type": "subscribe", "payload": payload})
                answer = ws.receive_json()
                assert answer["id"] == ident
                errors = (
                    answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
                )
                codes = [e["extensions"]["code"] for e in errors]
                expected = {
                    "1": "PERSISTED_QUERY_REQUIRED",
                    "2": "NOT_FOUND",
                    "3": "NOT_FOUND",
                    "4": "PERSISTED_QUERY_NOT_FOUND",
                }[ident]
                assert codes == [expected], answer
                if answer["type"] == "next":
                    assert ws.receive_json() == {"id": ident, "type": "complete"}
