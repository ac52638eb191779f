"""Everything the API needs from the domain, built from one database handle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from orchestration.collections import CollectionStore
from orchestration.cooks import CookStore
from orchestration.events import EventLog
from orchestration.exports import Exporter
from orchestration.orchestrator import Orchestrator
from orchestration.pieces import PieceStore
from orchestration.policy import CookPolicy


@dataclass(frozen=True)
class Services:
    collections: CollectionStore
    cooks: CookStore
    pieces: PieceStore
    events: EventLog
    orchestrator: Orchestrator
    exports: Exporter

    @classmethod
    def from_database(
        cls, db: AsyncDatabase[dict[str, Any]], policy: CookPolicy, exports_dir: Path
    ) -> Services:
        collections = CollectionStore(db)
        events = EventLog(db)
        cooks = CookStore(db, events, policy)
        pieces = PieceStore(db, policy)
        orchestrator = Orchestrator(collections, cooks, pieces, events, policy)
        exports = Exporter(
            db, collections, cooks, pieces, exports_dir, policy.lease_seconds, policy.tick_seconds
        )
        return cls(collections, cooks, pieces, events, orchestrator, exports)

    async def ensure_indexes(self) -> None:
        """Idempotent; run at every start, while collections are still empty where possible."""
        await self.collections.ensure_indexes()
        await self.cooks.ensure_indexes()
        await self.pieces.ensure_indexes()
        await self.events.ensure_indexes()
        await self.exports.ensure_indexes()
