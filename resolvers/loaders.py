"""Per-request DataLoaders: the only way nested fields of ``schema/`` types reach data."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from strawberry.dataloader import DataLoader

from domain.principal import Principal
from orchestration.cooking.events import Event
from orchestration.cooking.pieces import CookNumbers, Piece
from orchestration.services import Services

type EventsKey = tuple[str, int, int]  # cook id, after seq, limit
type PiecesKey = tuple[str, int]  # cook id, limit


@dataclass(frozen=True)
class Loaders:
    cook_numbers: DataLoader[str, CookNumbers]
    cook_events: DataLoader[EventsKey, list[Event]]
    cook_pieces: DataLoader[PiecesKey, list[Piece]]

    @classmethod
    def build(cls, services: Services, principal: Principal | None) -> Loaders:
        async def numbers(keys: list[str]) -> list[CookNumbers]:
            return list(await asyncio.gather(*(services.pieces.numbers(k) for k in keys)))

        async def events(keys: list[EventsKey]) -> list[list[Event]]:
            return list(await asyncio.gather(*(services.events.after(c, a, n) for c, a, n in keys)))

        async def pieces(keys: list[PiecesKey]) -> list[list[Piece]]:
            if principal is None:
                return [[] for _ in keys]
            return list(
                await asyncio.gather(
                    *(services.pieces.list_for_cook(principal, c, n) for c, n in keys)
                )
            )

        # Batching only, no caching: over a WebSocket one context (and so one set of loaders)
        # serves every operation of the connection, and a cache would serve stale reads.
        return cls(
            DataLoader(numbers, cache=False),
            DataLoader(events, cache=False),
            DataLoader(pieces, cache=False),
        )
