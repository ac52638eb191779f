"""Which media store a deployment uses, built from its settings.

With the embedded database (no ``MONGODB_URI``: one machine) images and archives are files
under ``COOK_DATA_DIR/media`` (``FileMediaStore``): the embedded server stores documents,
not bulk bytes, well. With ``MONGODB_URI`` (a cluster, replicas that share nothing else) they
are in the database, in GridFS's layout (``GridFSMediaStore``). ``COOK_MEDIA_STORE`` chooses
either way (``Settings.media_store_kind``). ``cook media migrate`` moves a deployment's files
from one to the other (``orchestration/storage/media_migrate.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from orchestration.storage.gridfs_media import GridFSMediaStore
from orchestration.storage.media import FileMediaStore, MediaStore
from service.settings import MediaStoreKind, Settings

type MediaFactory = Callable[[Settings, AsyncDatabase[dict[str, Any]]], Awaitable[MediaStore]]


async def open_store(
    kind: MediaStoreKind, settings: Settings, db: AsyncDatabase[dict[str, Any]]
) -> MediaStore:
    """The store of that kind for this deployment, its indexes in place."""
    if kind is MediaStoreKind.FILESYSTEM:
        return FileMediaStore(settings.media_dir)
    gridfs = GridFSMediaStore(db)
    await gridfs.ensure_indexes()
    return gridfs


async def media_store(settings: Settings, db: AsyncDatabase[dict[str, Any]]) -> MediaStore:
    """The store the deployment's settings choose."""
    return await open_store(settings.media_store_kind, settings, db)


def describe(settings: Settings) -> str:
    """The store in use, as the banner says it."""
    if settings.media_store_kind is MediaStoreKind.FILESYSTEM:
        return f"files under {settings.media_dir}"
    return "GridFS in the database"
