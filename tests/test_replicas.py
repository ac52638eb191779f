"""Replicas that share nothing but the database: API processes with different data
directories serve each other's images and archives, finish each other's exports after a
SIGKILL, and leave no orphan chunks once the grace period is over."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from bson import ObjectId
from pymongo import MongoClient

from auth.dev_keys import ensure_dev_keys, mint_token
from orchestration.base.tls import verifying
from service.embedded_db import EmbeddedDatabase
from tests.api import OWNER, STRANGER, collection_input
from tests.fake_providers import FakeProvider, fake_provider, providers_json
from tests.processes import api_process, api_process_handle, gql

pytestmark = pytest.mark.slow

DB = "replicas"
FAST = {
    "COOK_DB_NAME": DB,
    "COOK_TICK_SECONDS": "0.05",
    "COOK_BACKOFF_BASE_SECONDS": "0.01",
    "COOK_BACKOFF_CAP_SECONDS": "0.05",
    "COOK_DB_TIMEOUT_MS": "30000",  # megabytes of chunks on a loaded machine's embedded engine
}
REVIEW = "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }"
EXPORT = "mutation($c: ID!) { exportCollection(collectionId: $c) { id } }"
EXPORT_STATE = "query($id: ID!) { export(id: $id) { status done total sizeBytes } }"
STATUS = "query($id: ID!) { cook(id: $id) { status } }"
PIECES = (
    "query($id: ID!) { cook(id: $id) { status pieces(first: 100) { id outputs { url sha256 } } } }"
)


@contextmanager
def deployment(tmp_path: Path, fake: FakeProvider, **extra: str) -> Iterator[Any]:
    """An embedded database, one key pair, and the environment every replica gets: the
    database URI, the public key and the provider secrets, and no shared directory."""
    keys = ensure_dev_keys(tmp_path / "issuer")
    public = tmp_path / "issuer" / "public.pem"
    public.write_bytes(keys.public_pem)
    with EmbeddedDatabase(tmp_path / "db") as db:
        env = {
            "MONGODB_URI": db.uri,
            "COOK_JWT_PUBLIC_KEY_FILE": str(public),
            "COOK_PROVIDERS": providers_json(fake),
            **FAST,
            **extra,
        }

        def token(subject: str) -> str:
            return mint_token(
                keys, subject=subject, issuer="cook-dev", audience="cook", ttl_seconds=3600
            )

        yield db, env, token


def cooked(base: str, token: str, count: int, concurrent: int = 4) -> list[dict[str, Any]]:
    """A collection cooked with the polled ComfyUI fake; every piece accepted."""
    made = gql(
        base,
        token,
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { id } }",
        {
            "i": collection_input(
                totalSupply=count, generator={"toolId": "comfy"}, template={"seed": "[[miladyid]]"}
            )
        },
    )
    collection_id = made["createCollection"]["id"]
    cook_id = gql(
        base,
        token,
        "mutation($c: ID!, $n: Int!, $m: Int!) { startCook(collectionId: $c, count: $n, "
        "maxConcurrent: $m) { id } }",
        {"c": collection_id, "n": count, "m": concurrent},
    )["startCook"]["id"]
    deadline = time.monotonic() + 240  # a loaded machine's embedded engine is slow
    while (status := gql(base, token, STATUS, {"id": cook_id})["cook"]["status"]) == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert status == "COMPLETED"
    cook = gql(base, token, PIECES, {"id": cook_id})["cook"]
    decisions = [{"pieceId": p["id"], "outcome": "ACCEPTED"} for p in cook["pieces"]]
    for start in range(0, len(decisions), 100):
        gql(base, token, REVIEW, {"d": decisions[start : start + 100]})
    pieces: list[dict[str, Any]] = cook["pieces"]
    for p in pieces:
        p["collectionId"] = collection_id
        p["media"] = [o for o in p["outputs"] if o["url"] is not None]
    return pieces


def wait_export(base: str, token: str, export_id: str, within: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while (job := gql(base, token, EXPORT_STATE, {"id": export_id})["export"])["status"] not in (
        "COMPLETED",
        "FAILED",
    ):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "COMPLETED", job
    return job


def get(base: str, path: str, token: str, **headers: str) -> httpx.Response:
    return httpx.get(
        f"{base}{path}",
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=60,
        verify=verifying(),
    )


def orphan_chunks(db: Any) -> int:
    """Chunks whose file document does not exist."""
    sealed = {doc["_id"] for doc in db["media.files"].find({}, {"_id": 1})}
    return sum(
        1 for doc in db["media.chunks"].find({}, {"files_id": 1}) if doc["files_id"] not in sealed
    )


def test_replicas_with_separate_data_directories_serve_each_others_images_and_archives(
    tmp_path: Path,
) -> None:
    with (
        fake_provider() as fake,
        deployment(tmp_path, fake) as (_, env, token),
        api_process(env, tmp_path / "a", tmp_path / "a.log") as a,
        api_process({**env, "COOK_SCHEDULER": "false"}, tmp_path / "b", tmp_path / "b.log") as b,
    ):
        fake.auto_finish = True
        fake.image_padding = 100_000
        owner, stranger = token(OWNER), token(STRANGER)
        pieces = cooked(a, owner, count=3)  # only A cooks and exports: B has no scheduler
        for piece in pieces:
            [image] = piece["media"]
            served = get(b, image["url"], owner)
            assert served.status_code == 200
            assert hashlib.sha256(served.content).hexdigest() == image["sha256"]
            assert served.headers["etag"] == f'"{image["sha256"]}"'
            assert get(b, image["url"], stranger).status_code == 404
        export_id = gql(a, owner, EXPORT, {"c": pieces[0]["collectionId"]})["exportCollection"][
            "id"
        ]
        job = wait_export(a, owner, export_id)
        path = f"/exports/{export_id}/archive"
        whole = get(a, path, owner)
        from_b = get(b, path, owner)
        assert from_b.content == whole.content
        assert len(whole.content) == job["sizeBytes"]
        assert from_b.headers["content-length"] == str(job["sizeBytes"])
        assert from_b.headers["etag"] == whole.headers["etag"]
        assert get(b, path, stranger).status_code == 404
        # A download cut off half way on A, resumed on B (as `curl -C -` or a browser does).
        half = job["sizeBytes"] // 2
        first = get(a, path, owner, Range=f"bytes=0-{half - 1}")
        rest = get(b, path, owner, Range=f"bytes={half}-", **{"If-Range": whole.headers["etag"]})
        assert (first.status_code, rest.status_code) == (206, 206)
        assert (
            rest.headers["content-range"]
            == f"bytes {half}-{job['sizeBytes'] - 1}/{job['sizeBytes']}"
        )
        assert first.content + rest.content == whole.content


def test_an_export_whose_worker_is_killed_mid_archive_is_finished_by_another_replica(
    tmp_path: Path,
) -> None:
    """A builds the archive and is SIGKILLed half way; B takes the job over after the lease,
    builds the same bytes an uninterrupted build makes, and collects A's half upload."""
    count, lease = 6, 4.0
    with fake_provider() as fake, deployment(tmp_path, fake) as (db, env, token):
        fake.auto_finish = True
        fake.image_padding = 1_000_000  # an archive of some 6 MB: seconds to build
        owner = token(OWNER)
        mongo: MongoClient[dict[str, Any]]
        with MongoClient(db.uri) as mongo:  # closed on failure too (else a later test warns)
            store = mongo[DB]
            with api_process(env, tmp_path / "cook", tmp_path / "cook.log") as cooker:
                pieces = cooked(cooker, owner, count=count, concurrent=3)
            victim_env = {**env, "COOK_LEASE_SECONDS": str(lease)}
            with api_process_handle(victim_env, tmp_path / "a", tmp_path / "a.log") as (a, victim):
                export_id = gql(a, owner, EXPORT, {"c": pieces[0]["collectionId"]})[
                    "exportCollection"
                ]["id"]
                deadline = time.monotonic() + 120
                while not (job := store.exports.find_one({"_id": export_id}) or {}).get(
                    "uploadId"
                ) or not store["media.chunks"].find_one({"files_id": ObjectId(job["uploadId"])}):
                    assert time.monotonic() < deadline, job
                    assert job.get("status") != "completed", "the export finished before the kill"
                    time.sleep(0.01)
                victim.kill()
                victim.wait()
            assert job["status"] == "running"
            half_upload = ObjectId(job["uploadId"])
            assert store["media.chunks"].count_documents({"files_id": half_upload}) > 0
            heir_env = {
                **env,
                "COOK_LEASE_SECONDS": str(lease),
                "COOK_MEDIA_GC_GRACE_SECONDS": "1",
                "COOK_MEDIA_GC_EVERY_SECONDS": "0.2",
            }
            with api_process(heir_env, tmp_path / "b", tmp_path / "b.log") as b:
                finished = wait_export(b, owner, export_id)
                resumed = get(b, f"/exports/{export_id}/archive", owner).content
                assert len(resumed) == finished["sizeBytes"]
                done = store.exports.find_one({"_id": export_id}) or {}
                assert done["attempt"] >= 2  # taken over (a loaded machine may take it twice)
                # The same job built again, uninterrupted, is the same archive, byte for byte.
                store.exports.update_one(
                    {"_id": export_id},
                    {
                        "$set": {
                            "status": "pending",
                            "done": 0,
                            "attempt": 0,
                            "activeKey": done["collectionId"],
                        },
                        "$unset": {"archiveSha256": "", "sizeBytes": ""},
                    },
                )
                again = wait_export(b, owner, export_id)
                assert (store.exports.find_one({"_id": export_id}) or {})["archiveSha256"] == done[
                    "archiveSha256"
                ]
                assert get(b, f"/exports/{export_id}/archive", owner).content == resumed
                assert again["sizeBytes"] == finished["sizeBytes"]
                deadline = time.monotonic() + 30
                while orphan_chunks(store):
                    assert time.monotonic() < deadline, (
                        f"{orphan_chunks(store)} orphan chunks remain"
                    )
                    time.sleep(0.2)
                assert store["media.chunks"].count_documents({"files_id": half_upload}) == 0
                # Every image is still there: every one is named by its piece.
                assert store["media.files"].count_documents(
                    {"metadata.contentType": "image/png"}
                ) == (count)
