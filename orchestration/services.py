"""Everything the API needs from the domain, built from one database handle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from orchestration.collections import CollectionStore


@dataclass(frozen=True)
class Services:
    collections: CollectionStore

    @classmethod
    def from_database(cls, db: AsyncDatabase[dict[str, Any]]) -> Services:
        return cls(collections=CollectionStore(db))

    async def ensure_indexes(self) -> None:
        """Idempotent; run at every start, while collections are still empty where possible."""
        await self.collections.ensure_indexes()
