"""One database connection per process: MongoDB when configured, else the embedded server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo import AsyncMongoClient

from service.embedded_db import EmbeddedDatabase
from service.observability import CommandDurations
from service.settings import Settings

log = logging.getLogger("cook.database")

CLOSE_GRACE = 2.0  # seconds for ending the client's sessions at shutdown


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    embedded: EmbeddedDatabase | None = None
    uri = settings.mongodb_uri
    if uri is None:
        embedded = EmbeddedDatabase(settings.embedded_dir)
        uri = await asyncio.to_thread(embedded.start)
        log.info("started the embedded database at %s (data in %s)", uri, settings.embedded_dir)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri,
        tz_aware=True,
        timeoutMS=settings.db_timeout_ms,
        appname="cook",
        event_listeners=[CommandDurations()] if settings.metrics else [],
    )
    try:
        await _describe(client)
        yield client
    finally:
        await close(client)
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def close(client: AsyncMongoClient[dict[str, Any]], grace: float = CLOSE_GRACE) -> None:
    """Close within ``grace`` seconds even when the database is down.

    ``close()`` first ends the client's server sessions, which waits for a server to select
    for up to ``serverSelectionTimeoutMS`` (30 s) when none answers: shutdown hung there for
    30 s. Ending sessions is a courtesy (the server expires them anyway), so it gets
    ``grace`` seconds; the sessions are already taken off the client by then, so a second
    ``close()`` skips them and just closes the pools and monitors.
    """
    try:
        await asyncio.wait_for(client.close(), grace)
    except TimeoutError:
        log.warning("the database did not answer within %.1f s of shutdown; closing anyway", grace)
        await client.close()


async def _describe(client: AsyncMongoClient[dict[str, Any]]) -> None:
    """Log what we connected to; production wants a replica set (for its write guarantees)."""
    hello = await client.admin.command("hello")
    if hello.get("setName"):
        log.info("connected to replica set %s", hello["setName"])
    elif hello.get("msg") == "isdbgrid":
        log.info("connected to a sharded cluster (mongos)")
    else:
        log.info(
            "connected to a standalone server (max wire version %s)", hello.get("maxWireVersion")
        )
