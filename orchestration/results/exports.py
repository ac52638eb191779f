"""Export jobs: pending -> running (with progress) -> completed | failed, kept in the database.

A job is a document; the pieces it exports (accepted, not excluded, when it was requested) are
frozen at creation in a second document, so the archive does not depend on when it is built.
Any process may build it: a worker claims a pending job, or a running one whose lease has run
out (its worker died), by one conditional update that sets a fresh ``leaseOwner`` token; every
later write (progress, lease renewal, the result) is conditional on that token, so a worker that
lost its lease changes nothing. At most one active export per collection, by a unique index on
the active job's ``activeKey``. The archive is streamed into the media store as it is built
(named by its SHA-256, recorded as ``archiveSha256``); the worker records its upload's id
(``uploadId``) first, so the collector spares those chunks while the job runs, and removes them
once a crashed worker's job was taken over (the new worker rebuilds the same bytes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from domain.errors import BadUserInput, Conflict, NotFound
from domain.ids import AccountId, new_id
from domain.principal import Principal
from orchestration.art.engine import Config
from orchestration.base import clock
from orchestration.base import notify_marker as marker
from orchestration.base.background import Background, stop_if_cancelled
from orchestration.base.indexes import ensure_indexes
from orchestration.base.pace import Pace
from orchestration.base.pagination import Page, newest_first
from orchestration.base.policy import SEED_BOUND
from orchestration.base.scope import owned
from orchestration.base.tools import MediaRef
from orchestration.catalog.collections import CollectionStore
from orchestration.cooking.cooks import CookStore
from orchestration.cooking.pieces import PieceStore
from orchestration.results.assets import MissingAsset, asset_of
from orchestration.results.export_archive import (
    ArchiveWriter,
    CollectionInfo,
    ExportOptions,
    Spool,
    numbered,
)
from orchestration.storage.media import MediaStore, Upload, store_trouble

type Document = dict[str, Any]

log = logging.getLogger("cook.exports")

ID_PREFIX = "exp"
MAX_EXPORT_ATTEMPTS = 3
PROGRESS_EVERY = 50  # pieces between progress writes (which also renew the lease)
LOAD_CHUNK = 200
ARCHIVE_TYPE = "application/zip"


def archive_url(export_id: str) -> str:
    """Where the archive is served (``service/downloads.py``)."""
    return f"/exports/{export_id}/archive"


class ExportStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class Export:
    id: str
    collection_id: str
    owner_id: AccountId
    status: ExportStatus
    options: ExportOptions
    collection: CollectionInfo
    total: int
    done: int
    attempt: int
    error: str | None
    size_bytes: int | None
    provenance_hash: str | None
    archive_sha256: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Exporter:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        collections: CollectionStore,
        cooks: CookStore,
        pieces: PieceStore,
        lease_seconds: float,
        tick_seconds: float,
        media: MediaStore,
    ) -> None:
        self._media = media
        self._jobs = db["exports"]
        self._selections = db["export_selections"]
        self._collections = collections
        self._cooks = cooks
        self._pieces = pieces
        self._lease = timedelta(seconds=lease_seconds)
        self._pace = Pace(tick_seconds)
        self._background = Background(log)
        self.on_end: Callable[[], None] = lambda: None  # the notifier's kick (Services sets it)

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [
            IndexModel(
                "activeKey",
                name="one_active_export_per_collection",
                unique=True,
                partialFilterExpression={"activeKey": {"$type": "string"}},
            ),
            IndexModel([("status", ASCENDING), ("leaseExpiresAt", ASCENDING)], name="claims"),
            IndexModel(
                [("collectionId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                name="collection_listing",
            ),
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._jobs, self.indexes())

    # --- user operations ----------------------------------------------------------------

    async def start(
        self, principal: Principal, collection_id: str, options: ExportOptions
    ) -> Export:
        problems = options.problems()
        if problems:
            raise BadUserInput(problems)
        collection = await self._collections.get(principal, collection_id)
        piece_ids = await self._pieces.eligible_for_export(principal, collection.id)
        if not piece_ids:
            raise Conflict("the collection has no accepted, included pieces to export")
        if options.shuffle and options.shuffle_seed is None:
            options = replace(options, shuffle_seed=secrets.randbelow(SEED_BOUND + 1))
        spec = collection.spec
        info = CollectionInfo(
            collection.id,
            spec.name,
            spec.description,
            spec.total_supply,
            Config(spec.trait_tree, spec.template, spec.rules).hash,
        )
        at = clock.now()
        export_id = new_id(ID_PREFIX)
        # The selection first: a job never exists without it (a lone selection is harmless).
        await self._selections.insert_one({"_id": export_id, "pieceIds": piece_ids})
        doc: Document = {
            "_id": export_id,
            "collectionId": collection.id,
            "ownerId": collection.owner_id,
            "status": ExportStatus.PENDING.value,
            "activeKey": collection.id,
            "options": vars(options),
            "collection": vars(info),
            "total": len(piece_ids),
            "done": 0,
            "attempt": 0,
            "createdAt": at,
            "updatedAt": at,
        }
        try:
            await self._jobs.insert_one(doc)
        except DuplicateKeyError as exc:
            await self._selections.delete_one({"_id": export_id})
            active = await self._jobs.find_one({"activeKey": collection.id}, {"_id": 1})
            raise Conflict(
                "the collection already has an export in progress",
                activeExportId=active["_id"] if active else None,
            ) from exc
        self.kick()
        return _from_doc(doc)

    async def get(self, principal: Principal, export_id: str) -> Export:
        doc = await self._jobs.find_one(owned(principal, {"_id": export_id}))
        if doc is None:
            raise NotFound("export", export_id)
        return _from_doc(doc)

    async def list_for_collection(
        self, principal: Principal, collection_id: str, first: int, after: str | None
    ) -> Page[Export]:
        query = owned(principal, {"collectionId": collection_id})
        return await newest_first(self._jobs, query, first, after, _from_doc)

    # --- the worker ---------------------------------------------------------------------

    def kick(self) -> None:
        """Work on pending exports soon, in this process."""
        self._pace.wake()
        self._background.spawn(self.tick())

    async def run(self) -> None:
        """Claim and build exports forever, at the pace of what there is to do (started by
        the app's lifespan; see ``base/pace.py``)."""
        while True:
            busy = True
            try:
                busy = await self.tick()
            except Exception:
                stop_if_cancelled()
                log.exception("export tick failed; trying again")
            await self._pace.rest(busy)

    async def tick(self) -> bool:
        """Give up on jobs that crashed too often, then build every job there is to claim;
        whether there was any."""
        busy = await self._give_up_on_crashed()
        while (claimed := await self._claim()) is not None:
            busy = True
            await self._build(*claimed)
        return busy

    async def _give_up_on_crashed(self) -> bool:
        at = clock.now()
        gave_up = await self._jobs.update_many(
            {
                "status": ExportStatus.RUNNING.value,
                "leaseExpiresAt": {"$lt": at},
                "attempt": {"$gte": MAX_EXPORT_ATTEMPTS},
            },
            {
                "$set": {
                    "status": ExportStatus.FAILED.value,
                    "error": f"the export stopped {MAX_EXPORT_ATTEMPTS} times without finishing",
                    "finishedAt": at,
                    "updatedAt": at,
                    **marker.ended("export.failed")["$set"],
                },
                "$unset": {"activeKey": "", "leaseOwner": "", "leaseExpiresAt": ""},
            },
        )
        if gave_up.modified_count:
            self.on_end()
        return bool(gave_up.modified_count)

    async def _claim(self) -> tuple[Export, str] | None:
        at = clock.now()
        token = secrets.token_hex(8)
        doc = await self._jobs.find_one_and_update(
            {
                "$or": [
                    {"status": ExportStatus.PENDING.value},
                    {
                        "status": ExportStatus.RUNNING.value,
                        "leaseExpiresAt": {"$lt": at},
                        "attempt": {"$lt": MAX_EXPORT_ATTEMPTS},
                    },
                ]
            },
            {
                "$set": {
                    "status": ExportStatus.RUNNING.value,
                    "leaseOwner": token,
                    "leaseExpiresAt": at + self._lease,
                    "done": 0,
                    "startedAt": at,
                    "updatedAt": at,
                },
                "$inc": {"attempt": 1},
            },
            sort=[("createdAt", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return None if doc is None else (_from_doc(doc), token)

    async def _held(self, export_id: str, token: str, update: Document) -> bool:
        """Apply ``update`` only while this worker holds the job's lease."""
        result = await self._jobs.update_one(
            {"_id": export_id, "status": ExportStatus.RUNNING.value, "leaseOwner": token}, update
        )
        return result.matched_count == 1

    async def _build(self, job: Export, token: str) -> None:
        upload = await self._media.upload(ARCHIVE_TYPE)
        if not await self._held(job.id, token, {"$set": {"uploadId": upload.id}}):
            await upload.abort()
            return
        try:
            provenance, ref = await self._write_archive(job, token, upload)
        except _LostLease:
            await upload.abort()
            return
        except Exception as exc:
            if store_trouble(exc) is None:
                log.exception("export %s failed", job.id)
            else:
                log.warning("export %s failed: %s", job.id, store_trouble(exc))
            with contextlib.suppress(Exception):  # a store that is gone keeps its chunks
                await upload.abort()  # (the collector removes them after its grace period)
            await self._finish(job.id, token, ExportStatus.FAILED, {"error": _describe(exc)})
            return
        await self._finish(
            job.id,
            token,
            ExportStatus.COMPLETED,
            {
                "done": job.total,
                "sizeBytes": ref.size,
                "provenanceHash": provenance,
                "archiveSha256": ref.sha256,
            },
        )

    async def _write_archive(self, job: Export, token: str, upload: Upload) -> tuple[str, MediaRef]:
        """Build the ZIP entry by entry, each entry's bytes written on to ``upload`` at once."""
        selection = await self._selections.find_one({"_id": job.id})
        if selection is None:
            raise RuntimeError("the export's selection is missing")
        order = numbered(selection["pieceIds"], job.options.shuffle_seed)
        sink = Spool()
        writer = ArchiveWriter(
            sink, job.id, job.created_at, job.collection, job.options, len(order)
        )
        cook_seeds: dict[str, int] = {}
        renewed = time.monotonic()
        try:
            for start in range(0, len(order), LOAD_CHUNK):
                chunk = order[start : start + LOAD_CHUNK]
                found = await self._pieces.load_many(chunk)
                for offset, piece_id in enumerate(chunk):
                    piece = found[piece_id]
                    asset = await asset_of(piece, self._media)
                    await asyncio.to_thread(writer.add, piece, asset)
                    for data in sink.take():
                        await upload.write(data)
                    if piece.cook_id not in cook_seeds:
                        cook = await self._cooks.load(piece.cook_id)
                        cook_seeds[piece.cook_id] = cook.seed if cook else 0
                    done = start + offset + 1
                    # Every PROGRESS_EVERY pieces, and often enough to keep the lease.
                    due = time.monotonic() - renewed > self._lease.total_seconds() / 3
                    if done % PROGRESS_EVERY == 0 or due:
                        if not await self._progress(job, token, done):
                            raise _LostLease
                        renewed = time.monotonic()
            seed = job.options.shuffle_seed
            provenance = await asyncio.to_thread(writer.finish, cook_seeds, seed)
            for data in sink.take():
                await upload.write(data)
        except BaseException:
            await asyncio.to_thread(writer.abandon)
            raise
        return provenance, await upload.finish()

    async def _progress(self, job: Export, token: str, done: int) -> bool:
        at = clock.now()
        return await self._held(
            job.id,
            token,
            {"$set": {"done": done, "leaseExpiresAt": at + self._lease, "updatedAt": at}},
        )

    async def _finish(
        self, export_id: str, token: str, status: ExportStatus, fields: Document
    ) -> None:
        at = clock.now()
        notify = marker.ended(f"export.{status.value}")["$set"]  # in the same update
        if await self._held(
            export_id,
            token,
            {
                "$set": {
                    "status": status.value,
                    "finishedAt": at,
                    "updatedAt": at,
                    **fields,
                    **notify,
                },
                "$unset": {
                    "activeKey": "",
                    "leaseOwner": "",
                    "leaseExpiresAt": "",
                    "uploadId": "",
                },
            },
        ):
            self.on_end()

    async def running_uploads(self) -> set[str]:
        """Uploads that running exports are writing (the collector spares their chunks)."""
        cursor = self._jobs.find(
            {"status": ExportStatus.RUNNING.value, "uploadId": {"$exists": True}},
            {"uploadId": 1},
        )
        return {doc["uploadId"] async for doc in cursor}

    async def stop(self) -> None:
        await self._background.stop()

    async def idle(self) -> None:
        """Wait until this process has no export work in hand (for tests)."""
        await self._background.idle()


class _LostLease(Exception):
    """Another worker took the job over: stop without writing anything."""


def _describe(exc: Exception) -> str:
    if isinstance(exc, MissingAsset | KeyError):
        return f"a piece could not be exported: {exc}"
    trouble = store_trouble(exc)
    if trouble is not None:
        return f"the archive could not be stored: {trouble}"
    return "the export failed unexpectedly"


def _from_doc(doc: Document) -> Export:
    return Export(
        id=doc["_id"],
        collection_id=doc["collectionId"],
        owner_id=AccountId(doc["ownerId"]),
        status=ExportStatus(doc["status"]),
        options=ExportOptions(**doc["options"]),
        collection=CollectionInfo(**doc["collection"]),
        total=doc["total"],
        done=doc.get("done", 0),
        attempt=doc.get("attempt", 0),
        error=doc.get("error"),
        size_bytes=doc.get("sizeBytes"),
        provenance_hash=doc.get("provenanceHash"),
        archive_sha256=doc.get("archiveSha256"),
        created_at=doc["createdAt"],
        started_at=doc.get("startedAt"),
        finished_at=doc.get("finishedAt"),
    )
