"""Real images at real sizes: a ``layers`` cook of multi-megabyte PNGs on the default store of
a deployment with nothing configured (files under ``COOK_DATA_DIR``, in a ``cook serve``
process that starts its own embedded database) and on GridFS over the embedded server; which
store a deployment uses, and that the banner and ``/readyz`` say so."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pymongo

from auth.dev_keys import ensure_dev_keys, mint_token
from service.settings import MediaStoreKind, Settings
from tests.api import OWNER, Api, collection_input, start_cook, wait_for_cook
from tests.layer_files import IMPORT, import_layers, layers_collection, noisy_project
from tests.processes import api_process, gql

MULTI_MEGABYTE = 2 * 1024 * 1024
PIECES = "pieces(first: 100) { status lastError outputs { url size sha256 } }"
CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }"
START = "mutation($c: ID!) { startCook(collectionId: $c, count: 2, seed: 3) { id } }"
COOK = f"query($id: ID!) {{ cook(id: $id) {{ status {PIECES} }} }}"


def test_the_store_follows_the_deployment_unless_cook_media_store_says_otherwise() -> None:
    embedded = Settings(mongodb_uri=None, media_store=None)
    cluster = Settings(mongodb_uri="mongodb://db.example:27017", media_store=None)
    assert embedded.media_store_kind is MediaStoreKind.FILESYSTEM
    assert cluster.media_store_kind is MediaStoreKind.GRIDFS
    forced = {"media_store": "gridfs", "mongodb_uri": None}
    assert Settings(**forced).media_store_kind is MediaStoreKind.GRIDFS
    forced = {"media_store": "filesystem", "mongodb_uri": "mongodb://db.example:27017"}
    assert Settings(**forced).media_store_kind is MediaStoreKind.FILESYSTEM


async def test_readyz_names_the_media_store_in_use(api: Api) -> None:
    ready = await api.client.get("/readyz")
    assert ready.json() == {"status": "ok", "mediaStore": "gridfs"}  # the tests set a URI


def _multipart(base: str, token: str, collection: str, data: bytes) -> dict[str, Any]:
    operations = {"query": IMPORT, "variables": {"c": collection, "order": None, "file": None}}
    response = httpx.post(
        f"{base}/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("project.zip", data, "application/zip")},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    body: dict[str, Any] = response.json()
    assert not body.get("errors"), body
    return body


def _check_pieces(pieces: list[dict[str, Any]]) -> list[str]:
    assert [p["status"] for p in pieces] == ["COMPLETED", "COMPLETED"], pieces
    images = [o for p in pieces for o in p["outputs"] if o["url"]]
    assert len(images) == 2
    assert all(o["size"] > MULTI_MEGABYTE for o in images), images
    return [o["sha256"] for o in images]


def test_a_layers_cook_of_multi_megabyte_images_completes_on_the_default_store(
    tmp_path: Path,
) -> None:
    """Nothing configured: ``cook serve`` starts its embedded database and keeps files under
    ``COOK_DATA_DIR/media``; two ~3 MiB PNGs are cooked, stored there and served whole."""
    data = tmp_path / "data"
    env = {"MONGODB_URI": "", "COOK_MEDIA_STORE": "", "COOK_TICK_SECONDS": "0.05"}
    with api_process(env, data, tmp_path / "api.log") as base:
        ready = httpx.get(f"{base}/readyz").json()
        assert ready == {"status": "ok", "mediaStore": "filesystem"}
        token = mint_token(
            ensure_dev_keys(data / "keys"),
            subject=OWNER,
            issuer="cook-dev",
            audience="cook",
            ttl_seconds=600,
        )
        collection = gql(base, token, CREATE, {"i": collection_input(**layers_collection())})[
            "createCollection"
        ]
        _multipart(base, token, collection["id"], noisy_project())
        cook_id = gql(base, token, START, {"c": collection["id"]})["startCook"]["id"]
        deadline = time.monotonic() + 120
        while (cook := gql(base, token, COOK, {"id": cook_id})["cook"])["status"] == "RUNNING":
            assert time.monotonic() < deadline, cook
            time.sleep(0.2)
        digests = _check_pieces(cook["pieces"])
        for digest in digests:
            stored = data / "media" / digest[:2] / digest
            assert stored.stat().st_size > MULTI_MEGABYTE, "the image is a file in the data dir"
        url = next(o["url"] for o in cook["pieces"][0]["outputs"] if o["url"])
        served = httpx.get(f"{base}{url}", headers={"Authorization": f"Bearer {token}"})
        assert served.status_code == 200
        assert len(served.content) > MULTI_MEGABYTE
    assert "Media:     files under" in (tmp_path / "api.log").read_text()


async def test_a_layers_cook_of_multi_megabyte_images_completes_on_gridfs_over_the_embedded_server(
    api: Api,
) -> None:
    assert api.settings.media_store_kind is MediaStoreKind.GRIDFS
    collection = await api.create_collection(**layers_collection())
    body = await import_layers(api, collection["id"], noisy_project())
    assert "errors" not in body, body
    cook = await start_cook(api, collection["id"], count=2, seed=3)
    done = await wait_for_cook(api, cook["id"], within=240, extra=PIECES)
    assert done["status"] == "COMPLETED", done
    digests = _check_pieces(done["pieces"])
    db = api.app.state.runtime.client[api.settings.db_name]
    stored = {d["filename"] async for d in db["media.files"].find({}, {"filename": 1})}
    assert set(digests) <= stored, "the images are in GridFS"
    with pymongo.timeout(120):  # the fixture's drop_database has the client's 5 s
        await db.drop_collection("media.chunks")
