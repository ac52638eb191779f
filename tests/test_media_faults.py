"""A media store that fills up: the fault is a real ``OSError(ENOSPC)`` from a filesystem store
of the test's own wiring (``create_app(media=...)``), raised after the bytes that still fit
were written, as a full disk does. Attempts fail as retryable with the reason, a cook
completes once there is room again, an export fails with a typed error, and nothing
half-written is left behind."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from orchestration.base.policy import MAX_ATTEMPTS
from orchestration.storage.media import FileMediaStore, FileUpload, MediaStore
from service.settings import Settings
from tests.api import (
    OWNER,
    Api,
    running_app,
    start_cook,
    start_export,
    wait_for_cook,
    wait_for_export,
)
from tests.layer_files import ORDER, import_layers, layers_collection, project_zip

PIECES = "pieces(first: 100) { id status attempt lastError }"
REVIEW = "mutation($d: [ReviewDecisionInput!]!) { reviewPieces(decisions: $d) { id } }"
FULL = "the media store is full (no space left)"


class FillingStore(FileMediaStore):
    """Files on disk, until ``room`` (bytes it still takes; None: no limit) runs out."""

    room: int | None = None

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.aborted: set[str] = set()  # uploads aborted, by id (their temporary file's name)

    async def upload(self, content_type: str) -> FileUpload:
        return await asyncio.to_thread(FillingUpload, self, content_type)


class FillingUpload(FileUpload):
    def __init__(self, store: FillingStore, content_type: str) -> None:
        super().__init__(store, content_type)
        self._filling = store

    async def write(self, data: bytes) -> None:
        room = self._filling.room
        if room is not None and len(data) > room:
            # full from now on, set before the write's await: set after it, it would undo a
            # test's freeing of space while the write was under way
            self._filling.room = 0
            await super().write(data[:room])  # what fits is written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        if room is not None:
            self._filling.room = room - len(data)
        await super().write(data)

    async def abort(self) -> None:
        await super().abort()
        self._filling.aborted.add(self.id)


@pytest.fixture
async def full(settings: Settings) -> AsyncIterator[tuple[Api, FillingStore]]:
    store = FillingStore(settings.media_dir)

    async def wiring(_: Settings, __: AsyncDatabase[dict[str, Any]]) -> MediaStore:
        return store

    # Attempts enough that no piece runs out of them while a test keeps the store full: 10,
    # 0.1-0.3 s apart, were used up before the room came back on a loaded machine.
    changed = settings.model_copy(
        update={
            "max_attempts": MAX_ATTEMPTS,
            "backoff_base_seconds": 0.2,
            "backoff_cap_seconds": 0.5,
        }
    )
    async with running_app(changed, media=wiring) as api:
        yield api, store
        await api.app.state.runtime.services.orchestrator.stop()


def leftovers(root: Path) -> list[str]:
    """Unfinished uploads (temporary files) in the store's directory."""
    return sorted(p.name for p in root.glob("upload-*"))


def stored(root: Path) -> set[str]:
    return {p.name for p in root.glob("??/*")}


async def layered(api: Api) -> str:
    collection = await api.create_collection(**layers_collection())
    body = await import_layers(api, collection["id"], project_zip(), [{"name": n} for n in ORDER])
    assert "errors" not in body, body
    collection_id: str = collection["id"]
    return collection_id


async def test_a_full_store_fails_attempts_as_retryable_and_the_cook_completes_once_there_is_room(
    full: tuple[Api, FillingStore],
) -> None:
    api, store = full
    collection_id = await layered(api)
    before = stored(store.root)
    store.room = 0
    cook = await start_cook(api, collection_id, count=2, seed=1)
    retrying = await wait_for_cook(
        api,
        cook["id"],
        done=lambda c: any(p["attempt"] >= 2 for p in c["pieces"]),
        extra=PIECES,
    )
    assert retrying["status"] == "RUNNING"
    assert {p["lastError"] for p in retrying["pieces"] if p["attempt"] >= 2} == {f"layers: {FULL}"}
    assert stored(store.root) == before, "no image was stored while the disk was full"
    aborted = set(store.aborted)  # before the listing: a retry may be writing its file meanwhile
    assert aborted, "a failed attempt aborted its upload"
    assert aborted.isdisjoint(leftovers(store.root)), "nothing half-written"
    store.room = None  # space was freed
    done = await wait_for_cook(api, cook["id"], within=60, extra=PIECES)
    assert done["status"] == "COMPLETED", done
    assert [p["status"] for p in done["pieces"]] == ["COMPLETED", "COMPLETED"]
    assert len(stored(store.root) - before) >= 1


async def test_an_archive_larger_than_the_disk_fails_its_export_with_a_typed_error_leaving_nothing(
    full: tuple[Api, FillingStore],
) -> None:
    api, store = full
    collection_id = await layered(api)
    cook = await wait_for_cook(
        api, (await start_cook(api, collection_id, count=3, seed=2))["id"], extra=PIECES
    )
    decisions = [{"pieceId": p["id"], "outcome": "ACCEPTED"} for p in cook["pieces"]]
    await api.data(REVIEW, {"d": decisions})
    before = stored(store.root)
    store.room = 3000  # a few entries fit, the archive does not
    failed = await wait_for_export(api, (await start_export(api, collection_id))["id"])
    assert failed["status"] == "FAILED"
    assert failed["error"] == f"the archive could not be stored: {FULL}"
    assert failed["sizeBytes"] is None
    assert failed["downloadUrl"] is None
    assert stored(store.root) == before, "no archive, whole or partial, was stored"
    assert leftovers(store.root) == [], "the unfinished upload was removed"
    store.room = None
    again = await wait_for_export(api, (await start_export(api, collection_id))["id"])
    assert again["status"] == "COMPLETED", again
    response = await api.client.get(
        again["downloadUrl"], headers={"Authorization": f"Bearer {api.token(OWNER)}"}
    )
    assert response.status_code == 200
    assert len(response.content) == again["sizeBytes"]
