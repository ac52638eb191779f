"""Everything the API needs from the domain, built from one database handle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from orchestration.art.compositing import Compositor
from orchestration.base.policy import CookPolicy
from orchestration.base.sharding import ensure_sharded_layout
from orchestration.base.tools import Toolbox
from orchestration.catalog.collections import CollectionStore
from orchestration.catalog.layer_assets import LayerStore
from orchestration.catalog.layer_tool import TOOL_ID as LAYERS_TOOL_ID
from orchestration.catalog.layer_tool import layers_tool
from orchestration.cooking.casts import CastStore
from orchestration.cooking.cooks import CookStore
from orchestration.cooking.events import EventLog
from orchestration.cooking.orchestrator import Generators, Orchestrator
from orchestration.cooking.pieces import PieceStore
from orchestration.cooking.progress import ProgressFeed
from orchestration.cooking.runs import RunStore
from orchestration.generators.spells import SpellStore
from orchestration.generators.webhooks import DeliveryLog
from orchestration.notifications.config import NotificationConfig
from orchestration.notifications.notifier import Notifier
from orchestration.results.exports import Exporter
from orchestration.storage.media import MediaStore


@dataclass(frozen=True)
class Services:
    collections: CollectionStore
    cooks: CookStore
    pieces: PieceStore
    events: EventLog
    orchestrator: Orchestrator
    feed: ProgressFeed
    toolbox: Toolbox
    spells: SpellStore
    casts: CastStore
    media: MediaStore
    exports: Exporter
    layers: LayerStore
    notifier: Notifier  # outbound webhooks (orchestration/notifications/)

    @classmethod
    def from_database(
        cls,
        db: AsyncDatabase[dict[str, Any]],
        policy: CookPolicy,
        *,
        toolbox: Toolbox,
        media: MediaStore,
        compositor: Compositor | None = None,
        progress_poll_seconds: float = 0.25,
        notifications: NotificationConfig | None = None,
    ) -> Services:
        if LAYERS_TOOL_ID not in toolbox:  # built in, but it needs the database and media
            toolbox = Toolbox([*toolbox.all(), layers_tool(db, media, compositor or Compositor())])
        spells = SpellStore(db, toolbox)
        collections = CollectionStore(db, toolbox, spells)
        events = EventLog(db)
        cooks = CookStore(db, events, policy)
        pieces = PieceStore(db, policy)
        casts = CastStore(db)
        runs = RunStore(db, policy.tick_seconds)
        generators = Generators(toolbox, spells, runs, casts, DeliveryLog(db))
        orchestrator = Orchestrator(collections, cooks, pieces, events, policy, generators)
        feed = ProgressFeed(cooks, events, pieces, interval=progress_poll_seconds)
        exports = Exporter(
            db,
            collections,
            cooks,
            pieces,
            policy.lease_seconds,
            policy.tick_seconds,
            media,
        )
        notifier = Notifier(db, pieces, notifications or NotificationConfig())
        cooks.on_end = exports.on_end = notifier.kick
        return cls(
            collections,
            cooks,
            pieces,
            events,
            orchestrator,
            feed,
            toolbox,
            spells,
            casts,
            media,
            exports,
            LayerStore(db, collections, media),
            notifier,
        )

    async def ensure_indexes(self, sharded: AsyncDatabase[Any] | None = None) -> None:
        """Idempotent; run at every start, while collections are still empty where possible.
        On a sharded cluster (``sharded``: its database) the collections whose unique indexes
        must start with their shard key get the sharded layout instead (``sharding.py``)."""
        if sharded is not None:
            declared = {
                "pieces": PieceStore.indexes(),
                "cooks": CookStore.indexes(),
                "exports": Exporter.indexes(),
                "casts": CastStore.indexes(),
            }
            await ensure_sharded_layout(sharded, declared)
        else:
            await self.cooks.ensure_indexes()
            await self.pieces.ensure_indexes()
            await self.casts.ensure_indexes()
        await self.collections.ensure_indexes()
        await self.events.ensure_indexes()
        await self.spells.ensure_indexes()
        await self.orchestrator.runs.ensure_indexes()
        await self.orchestrator.deliveries.ensure_indexes()
        if sharded is None:
            await self.exports.ensure_indexes()
        await self.notifier.ensure_indexes()
