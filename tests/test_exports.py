"""Exports through the API: the ZIP opened and checked file by file, numbering, shuffling,
the download's authorization, and an export resumed after a restart."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from datetime import timedelta
from typing import Any

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient

from orchestration.base import clock
from orchestration.storage.gridfs_media import GridFSMediaStore
from orchestration.storage.media_gc import MediaCollector
from service.settings import Settings
from tests.api import (
    ADMIN,
    OWNER,
    STRANGER,
    Api,
    running_app,
    start_cook,
    start_export,
    wait_for_cook,
    wait_for_export,
)

PIECES = """pieces(first: 100) { id index seed configHash output
  traits { category name value } params }"""
REVIEW = "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }"
EXCLUDE = "mutation($p: [ID!]!) { setPiecesExcluded(pieceIds: $p, excluded: true) { id } }"


async def reviewed_collection(api: Api, count: int = 6) -> tuple[dict[str, Any], list[Any]]:
    """A cooked collection: all pieces accepted except the second (rejected) and the third
    (excluded). Returns the collection and the pieces that should be exported, by index."""
    collection = await api.create_collection(totalSupply=50)
    cook = await wait_for_cook(
        api, (await start_cook(api, collection["id"], count=count, seed=7))["id"], extra=PIECES
    )
    pieces = sorted(cook["pieces"], key=lambda p: p["index"])
    decisions = [
        {"pieceId": p["id"], "outcome": "REJECTED" if i == 1 else "ACCEPTED"}
        for i, p in enumerate(pieces)
    ]
    await api.data(REVIEW, {"d": decisions})
    await api.data(EXCLUDE, {"p": [pieces[2]["id"]]})
    kept = [p for i, p in enumerate(pieces) if i not in (1, 2)]
    for p in kept:
        p["cookSeed"] = cook["seed"]
    return collection, kept


async def download(api: Api, job: dict[str, Any], as_: str | None = OWNER) -> httpx.Response:
    token = api.token_for(as_)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await api.client.get(f"/exports/{job['id']}/archive", headers=headers)


def open_zip(response: httpx.Response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content))


async def test_an_export_zip_holds_exactly_the_accepted_included_pieces_file_by_file(
    api: Api,
) -> None:
    collection, kept = await reviewed_collection(api)
    job = await start_export(
        api, collection["id"], {"nameTemplate": "Secretary #{number}", "includePrompt": True}
    )
    assert job["status"] in ("PENDING", "RUNNING", "COMPLETED")
    assert job["total"] == len(kept) == 4
    done = await wait_for_export(api, job["id"])
    assert done["status"] == "COMPLETED", done
    assert done["done"] == 4
    assert done["downloadUrl"] == f"/exports/{job['id']}/archive"
    archive = open_zip(await download(api, done))
    names = sorted(archive.namelist())
    stems = [f"{n:04d}" for n in range(1, 5)]
    assert names == sorted(
        [f"images/{s}.txt" for s in stems]
        + [f"metadata/{s}.json" for s in stems]
        + ["metadata.json", "manifest.json"]
    )
    manifest = json.loads(archive.read("manifest.json"))
    combined = json.loads(archive.read("metadata.json"))
    assert manifest["count"] == 4
    assert manifest["collection"]["id"] == collection["id"]
    assert manifest["numbering"] == {"shuffled": False, "shuffleSeed": None}
    hashes = []
    for number, (stem, piece) in enumerate(zip(stems, kept, strict=True), start=1):
        image = archive.read(f"images/{stem}.txt")
        assert image.decode() == piece["output"], "a text piece exports its text as the asset"
        digest = hashlib.sha256(image).hexdigest()
        hashes.append(digest)
        meta = json.loads(archive.read(f"metadata/{stem}.json"))
        assert set(meta) == {"name", "description", "image", "attributes"}
        assert meta["name"] == f"Secretary #{number}"
        assert meta["description"] == collection["description"]
        assert meta["image"] == f"images/{stem}.txt"
        categories = [t["category"] for t in piece["traits"]]
        assert meta["attributes"][:-1] == [
            {"trait_type": t["category"], "value": t["name"]} for t in piece["traits"]
        ], "one attribute per category"
        assert len({a["trait_type"] for a in meta["attributes"]}) == len(categories) + 1
        assert meta["attributes"][-1] == {
            "trait_type": "prompt",
            "value": piece["params"]["input_prompt"],
        }
        assert combined[number - 1] == meta
        item = manifest["items"][number - 1]
        assert item == {
            "number": number,
            "pieceId": piece["id"],
            "index": piece["index"],
            "cookId": item["cookId"],
            "image": f"images/{stem}.txt",
            "metadata": f"metadata/{stem}.json",
            "contentHash": digest,
            "seed": piece["seed"],
            "configHash": piece["configHash"],
        }
        assert manifest["cookSeeds"] == {item["cookId"]: str(piece["cookSeed"])}
    assert manifest["configHash"] == kept[0]["configHash"]
    provenance = hashlib.sha256("".join(hashes).encode()).hexdigest()
    assert manifest["provenance"]["hash"] == provenance == done["provenanceHash"]


async def test_a_shuffled_export_numbers_contiguously_in_a_recorded_reproducible_order(
    api: Api,
) -> None:
    collection, kept = await reviewed_collection(api)
    first = await wait_for_export(
        api, (await start_export(api, collection["id"], {"shuffle": True}))["id"]
    )
    seed = first["options"]["shuffleSeed"]
    assert seed is not None, "the drawn seed is recorded"
    again = await wait_for_export(
        api,
        (await start_export(api, collection["id"], {"shuffle": True, "shuffleSeed": seed}))["id"],
    )
    orders = []
    for job in (first, again):
        manifest = json.loads(open_zip(await download(api, job)).read("manifest.json"))
        assert manifest["numbering"] == {"shuffled": True, "shuffleSeed": seed}
        assert [i["number"] for i in manifest["items"]] == [1, 2, 3, 4]
        orders.append([i["pieceId"] for i in manifest["items"]])
    assert orders[0] == orders[1]
    assert sorted(orders[0]) == sorted(p["id"] for p in kept)
    assert first["provenanceHash"] == again["provenanceHash"]


async def test_an_export_needs_accepted_pieces_and_valid_options(api: Api) -> None:
    collection = await api.create_collection()
    error = await api.error(
        "mutation($c: ID!) { exportCollection(collectionId: $c) { id } }", {"c": collection["id"]}
    )
    assert error["extensions"]["code"] == "CONFLICT"
    done, _ = await reviewed_collection(api)
    for options, field in (
        ({"nameTemplate": "no number"}, "options.nameTemplate"),
        ({"shuffleSeed": 3}, "options.shuffleSeed"),
        ({"shuffle": True, "shuffleSeed": -1}, "options.shuffleSeed"),
    ):
        error = await api.error(
            "mutation($c: ID!, $o: ExportOptionsInput) "
            "{ exportCollection(collectionId: $c, options: $o) { id } }",
            {"c": done["id"], "o": options},
        )
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["extensions"]["field"] == field
    db = api.app.state.runtime.client[api.settings.db_name]
    assert await db["exports"].count_documents({}) == 0


async def test_only_the_owner_and_admins_download_and_others_see_a_missing_export(
    api: Api,
) -> None:
    collection, _ = await reviewed_collection(api, count=3)
    job = await wait_for_export(api, (await start_export(api, collection["id"]))["id"])
    owner = await download(api, job)
    assert (await download(api, job, as_=ADMIN)).content == owner.content
    anonymous = await download(api, job, as_=None)
    assert anonymous.status_code == 401
    stranger = await download(api, job, as_=STRANGER)
    missing = await download(api, {"id": "exp_" + "0" * 32}, as_=STRANGER)
    assert stranger.status_code == missing.status_code == 404
    assert stranger.json()["code"] == missing.json()["code"] == "NOT_FOUND"
    bad = await api.client.get(
        f"/exports/{job['id']}/archive", headers={"Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401


async def test_an_export_left_behind_by_a_crashed_process_is_finished_after_a_restart(
    settings: Settings,
) -> None:
    """A worker that died mid-export leaves the job running under an expired lease (and the
    chunks of half an archive); a job whose process died before any worker saw it stays
    pending. A new process finishes both, with the same archive the first run made, and the
    half archive is collected once its grace period is over."""
    async with running_app(settings) as api:
        collection, _ = await reviewed_collection(api)
        job = await wait_for_export(api, (await start_export(api, collection["id"]))["id"])
        original = (await download(api, job)).content
    async with AsyncMongoClient[dict[str, Any]](settings.mongodb_uri, tz_aware=True) as client:
        db = client[settings.db_name]
        store = GridFSMediaStore(db)
        for state in ("running", "pending"):
            archives = db["media.files"].find({"metadata.contentType": "application/zip"})
            async for doc in archives:  # the archive is gone: only its rebuild can bring it back
                await db["media.chunks"].delete_many({"files_id": doc["_id"]})
                await db["media.files"].delete_one({"_id": doc["_id"]})
            half = await store.upload("application/zip")
            await half.write(original[: len(original) // 2])
            await half._flush(final=True)
            left: dict[str, Any] = {"status": state, "done": 2, "activeKey": collection["id"]}
            if state == "running":
                left |= {
                    "leaseOwner": "dead",
                    "leaseExpiresAt": clock.now() - timedelta(seconds=1),
                    "uploadId": half.id,
                }
            await db["exports"].update_one(
                {"_id": job["id"]},
                {
                    "$set": left,
                    "$unset": {
                        "finishedAt": "",
                        "sizeBytes": "",
                        "provenanceHash": "",
                        "archiveSha256": "",
                    },
                },
            )
            async with running_app(settings) as restarted:
                resumed = await wait_for_export(restarted, job["id"])
                assert resumed["status"] == "COMPLETED", resumed
                assert resumed["provenanceHash"] == job["provenanceHash"]
                assert (await download(restarted, resumed)).content == original
            assert await db["media.chunks"].count_documents({"files_id": ObjectId(half.id)}) > 0
            await asyncio.sleep(1.1)  # an upload's age is known to the second (its ObjectId)
            removed = await MediaCollector(db, store, grace_seconds=0.1, every_seconds=1).collect()
            assert removed == 1  # the half archive; the finished one is named by the job
            assert await db["media.chunks"].count_documents({"files_id": ObjectId(half.id)}) == 0
        await client.drop_database(settings.db_name)


async def test_the_archive_download_answers_byte_ranges_and_validators(api: Api) -> None:
    collection, _ = await reviewed_collection(api, count=3)
    job = await wait_for_export(api, (await start_export(api, collection["id"]))["id"])
    whole = await download(api, job)
    size, etag = len(whole.content), whole.headers["etag"]
    assert (whole.headers["content-length"], whole.headers["accept-ranges"]) == (str(size), "bytes")
    token = {"Authorization": f"Bearer {api.token_for(OWNER)}"}

    async def get(**headers: str) -> httpx.Response:
        return await api.client.get(f"/exports/{job['id']}/archive", headers={**token, **headers})

    tail = await get(Range="bytes=-10")
    assert (tail.status_code, tail.content) == (206, whole.content[-10:])
    assert tail.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    middle = await get(Range="bytes=5-9")
    assert (middle.status_code, middle.content) == (206, whole.content[5:10])
    beyond = await get(Range=f"bytes={size}-")
    assert (beyond.status_code, beyond.headers["content-range"]) == (416, f"bytes */{size}")
    changed = await get(Range="bytes=5-9", **{"If-Range": '"another"'})
    assert (changed.status_code, changed.content) == (200, whole.content)
    assert (await get(**{"If-None-Match": etag})).status_code == 304


async def test_an_archive_past_two_gibibytes_reports_its_exact_size(api: Api) -> None:
    """A thousand 1024 px images make a 3.4 GB archive: beyond GraphQL's 32-bit Int, which
    made the export's query fail once it completed (found by the real-images benchmark)."""
    collection, _ = await reviewed_collection(api, count=3)
    job = await wait_for_export(api, (await start_export(api, collection["id"]))["id"])
    db = api.app.state.runtime.client[api.settings.db_name]
    await db.exports.update_one({"_id": job["id"]}, {"$set": {"sizeBytes": 3_617_290_957}})
    query = "query($id: ID!) { export(id: $id) { status sizeBytes } }"
    assert await api.data(query, {"id": job["id"]}) == {
        "export": {"status": "COMPLETED", "sizeBytes": 3_617_290_957}
    }
