"""Removing stored files nobody names any more, after a grace period.

A file in the media store is live while any document names its SHA-256 in one of ``REFERENCES``
(a piece's images, a cast step's, a provider run's outcome, an export's archive, a collection's
layers). The collector, run by every process every ``every_seconds``, removes files stored (or
re-stored) more than ``grace`` ago that none of them names, and the chunks of uploads begun more
than ``grace`` ago that never finished (a process died mid-upload, or an export worker lost its
job), except those a running export still writes.

Safe under races, with no lock: a file is stored before any document names it, and re-storing
it (a duplicate output, a resumed export) restarts its grace period; the store deletes a file
only by a conditional delete on that time. So the file a document is about to name was stored
(or re-stored) within the grace period, and is kept; the grace period must exceed the time
between storing a file and writing the document that names it (seconds; the default is an
hour). Any number of processes may collect at once: each deletion is conditional and
idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from orchestration.base import clock
from orchestration.base.background import stop_if_cancelled
from orchestration.base.indexes import ensure_indexes
from orchestration.storage.media import MediaStore

type Document = dict[str, Any]

log = logging.getLogger("cook.media_gc")

# (collection, field path): every place a document names a stored file by its SHA-256. A new
# kind of stored file (an uploaded asset, say) adds its place here, or it would be collected.
REFERENCES: tuple[tuple[str, str], ...] = (
    ("pieces", "media.sha256"),
    ("casts", "steps.media.sha256"),
    ("runs", "outcome.media.sha256"),
    ("exports", "archiveSha256"),
    ("layer_sets", "layers.sha256"),
)


class LiveReferences:
    """``Referenced`` over the database: what documents name, what running exports write."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def ensure_indexes(self) -> None:
        for collection, path in REFERENCES:
            await ensure_indexes(
                self._db[collection],
                [IndexModel(path, name=f"names_{path.replace('.', '_')}", sparse=True)],
            )

    async def names(self, digests: list[str]) -> set[str]:
        named: set[str] = set()
        for collection, path in REFERENCES:
            cursor = self._db[collection].find({path: {"$in": digests}}, {path: 1})
            async for doc in cursor:
                named.update(_values(doc, path.split(".")))
        return named & set(digests)

    async def uploads(self) -> set[str]:
        cursor = self._db["exports"].find(
            {"status": "running", "uploadId": {"$exists": True}}, {"uploadId": 1}
        )
        return {doc["uploadId"] async for doc in cursor}


def _values(value: Any, path: list[str]) -> list[str]:
    """The strings at ``path`` in a document, through any lists on the way."""
    if isinstance(value, list):
        return [v for item in value for v in _values(item, path)]
    if not path:
        return [value] if isinstance(value, str) else []
    if isinstance(value, dict) and path[0] in value:
        return _values(value[path[0]], path[1:])
    return []


class MediaCollector:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        store: MediaStore,
        *,
        grace_seconds: float,
        every_seconds: float,
    ) -> None:
        self._references = LiveReferences(db)
        self._store = store
        self._grace = timedelta(seconds=grace_seconds)
        self._every = every_seconds

    async def ensure_indexes(self) -> None:
        await self._references.ensure_indexes()

    async def collect(self) -> int:
        """One pass; returns how many files and unfinished uploads it removed."""
        removed = await self._store.collect(clock.now() - self._grace, self._references)
        if removed:
            log.info("removed %d unreferenced stored files or unfinished uploads", removed)
        return removed

    async def run(self) -> None:
        """Collect forever (started by the app's lifespan with the other workers)."""
        while True:
            try:
                await self.collect()
            except Exception:
                stop_if_cancelled()
                log.exception("collecting stored media failed; trying again")
            await asyncio.sleep(self._every)
