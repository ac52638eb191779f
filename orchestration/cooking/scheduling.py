"""The scheduler: start pieces in a cook's free slots, and finish the cook when it is done.

Nothing here is authoritative in memory, and ``fill`` may run in every process at once: a
piece is started by an insert under the unique ``slot``, ``seat``, ``indexKey`` and ``combo``
indexes, or by a conditional update of a waiting piece, so a racing process's start is refused
and this one looks again. One fill pass costs few round trips whatever it starts: it reads the
cook, its pieces in flight or waiting (one indexed read, which gives the free slots and the due
retries), counts the live seats, allocates all the new pieces' indexes at once and inserts
them in one bulk write, each new piece recording its ``PIECE_SUBMITTED`` in its own document.

A pass's three reads (the cook's status, its pieces in flight or waiting, its live seats) go
to the database at once, so a freed slot waits about three round trips for its next piece,
not five. A cook's configuration never changes, so each process keeps the cooks it fills (a
cache of immutable parts, dropped when the cook ends); their status is read on every pass.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from pymongo.errors import DuplicateKeyError

from orchestration.art.engine import (
    Config,
    Draw,
    NoValidDraw,
    UniqueValuesExhausted,
    combination_key,
    draw,
)
from orchestration.base import clock
from orchestration.base.background import Background
from orchestration.catalog.collections import CollectionStore
from orchestration.cooking.cooks import ACTIVE, Cook, CookStatus, CookStore
from orchestration.cooking.events import EventLog, EventType
from orchestration.cooking.piece_model import Piece, PieceStatus, from_doc
from orchestration.cooking.pieces import PieceStore, number_of

log = logging.getLogger("cook.orchestrator")

FILL_STEPS = 64  # bound on one fill pass; the next kick or tick continues
MAX_REDRAWS = 50  # draws tried for an unused trait combination before the cook fails
MAX_KNOWN_COOKS = 1024  # cooks whose immutable parts one process keeps

type Document = dict[str, Any]
type StartAttempt = Callable[[Cook, Piece], Coroutine[Any, Any, None]]


class Scheduler:
    def __init__(
        self,
        collections: CollectionStore,
        cooks: CookStore,
        pieces: PieceStore,
        events: EventLog,
        fail_cook: Callable[[str, str], Coroutine[Any, Any, None]],
        start_attempt: StartAttempt,
        background: Background,
    ) -> None:
        self.collections = collections
        self.cooks = cooks
        self.pieces = pieces
        self.events = events
        self._fail_cook = fail_cook
        self._start_attempt = start_attempt
        self._background = background
        self._filling: dict[str, bool] = {}  # cook id -> another pass wanted (a hint only)
        self._known: dict[str, Cook] = {}  # cook id -> the cook as first read (immutable parts)
        self._relaying: dict[str, bool] = {}  # cook id -> another relay wanted (a hint only)

    def kick(self, cook_id: str) -> None:
        """Fill the cook's free slots (or finish it) soon, in this process."""
        if cook_id in self._filling:
            self._filling[cook_id] = True
            return
        self._filling[cook_id] = False
        self._background.spawn(self._fill_repeatedly(cook_id))

    async def _fill_repeatedly(self, cook_id: str) -> None:
        try:
            while True:
                await self.fill(cook_id)
                if not self._filling.get(cook_id):
                    return
                self._filling[cook_id] = False
        finally:
            self._filling.pop(cook_id, None)

    def relay_soon(self, cook_id: str) -> None:
        """Relay the cook's recorded events soon, in this process, without waiting: one task
        per cook, going round again for requests made while it relays (each request's events
        are taken by a relay that starts after it). Completions use it, so that an attempt
        ends with its settle instead of staying alive for the relay."""
        if cook_id in self._relaying:
            self._relaying[cook_id] = True
            return
        self._relaying[cook_id] = False
        self._background.spawn(self._relay_repeatedly(cook_id))

    async def _relay_repeatedly(self, cook_id: str) -> None:
        try:
            while True:
                await self.events.relay(cook_id)
                if not self._relaying.get(cook_id):
                    return
                self._relaying[cook_id] = False
        finally:
            self._relaying.pop(cook_id, None)

    async def fill(self, cook_id: str) -> None:
        """Start pieces (due retries first) while the cook runs and has free slots; finish
        the cook once nothing is left to do."""
        for _ in range(FILL_STEPS):
            known = self._known.get(cook_id) or await self._remember(cook_id)
            if known is None:
                return
            status, flying, live = await asyncio.gather(
                self.cooks.status(cook_id),
                self.pieces.flying(cook_id),
                self.pieces.count_live(known.collection_id, cook_id),
            )
            if status not in ACTIVE:
                self._known.pop(cook_id, None)
            if status is CookStatus.CANCELLING:
                await self.finish_cancelling(await self.cooks.load(cook_id) or known)
                return
            if status is not CookStatus.RUNNING:
                return
            if not await self._fill_once(replace(known, status=status), flying, live):
                return

    async def _remember(self, cook_id: str) -> Cook | None:
        """Read the whole cook once; an active one is kept (its status is read every pass)."""
        cook = await self.cooks.load(cook_id)
        if cook is not None and cook.status in ACTIVE:
            if len(self._known) >= MAX_KNOWN_COOKS:
                self._known.clear()
            self._known[cook_id] = cook
        return cook

    async def _fill_once(self, cook: Cook, flying: list[Document], live: int) -> bool:
        """One pass over what was read; whether another should follow (a racing process took
        a place first)."""
        taken = {number_of(d["slot"]) for d in flying if "slot" in d}
        free = [k for k in range(cook.max_concurrent) if k not in taken]
        now = clock.now()
        due = [
            d
            for d in flying
            if d["status"] == PieceStatus.RETRYING.value and d["nextAttemptAt"] <= now
        ]
        started: list[Piece] = []
        raced = False
        for d in due:
            if not free:
                break
            try:
                piece = await self.pieces.claim_retry(cook.id, d["_id"], d["attempt"], free[0])
            except DuplicateKeyError:
                raced = True  # another process took that slot
                free.pop(0)
                continue
            if piece is not None:
                started.append(piece)
                free.pop(0)
        wanted = 0
        if free or not flying:
            if not flying and live >= cook.count:
                # Read after ``flying`` found nothing, the count cannot include a piece that
                # was in flight then and has failed since (read at once, it could).
                live = await self.pieces.count_live(cook.collection_id, cook.id)
            if not flying and live >= cook.count:
                # Nothing in flight or waiting, every seat held by a completed piece: done.
                await self.cooks.transition(
                    cook.id, (CookStatus.RUNNING,), CookStatus.COMPLETED, EventType.COOK_COMPLETED
                )
                return False
            wanted = min(len(free), cook.count - live)
            if wanted > 0:
                made, more = await self._new_pieces(cook, free[:wanted], live)
                started.extend(made)
                raced = raced or more
        for piece in started:
            self._background.spawn(self._start_attempt(cook, piece))
        if started:
            self.relay_soon(cook.id)
        return raced

    async def finish_cancelling(self, cook: Cook) -> None:
        """A cancelling cook ends cancelled once nothing of it is in flight."""
        if await self.pieces.count(cook.id, (PieceStatus.RUNNING,)):
            return
        done = await self.cooks.transition(
            cook.id,
            (CookStatus.CANCELLING,),
            CookStatus.CANCELLED,
            EventType.COOK_CANCELLED,
            reason=cook.reason,
        )
        if done is not None:
            await self.pieces.cancel_waiting(cook.id)

    async def _new_pieces(
        self, cook: Cook, slots: list[int], live: int
    ) -> tuple[list[Piece], bool]:
        """Insert ``len(slots)`` new pieces in one bulk write; the pieces made, and whether a
        racing process took some place first. A piece refused for its seat or slot tries
        another with the same index; only when none is left is the index skipped (a gap,
        never a reuse). A taken combination draws again, reproducibly (the next salt)."""
        first = await self.collections.allocate_piece_index(cook.collection_id, len(slots))
        unique = cook.config.rules.unique_combinations
        # (index, salt, draw, seat, slot) of each piece still to insert
        todo: list[tuple[int, int, Draw, int, int]] = []
        for n, slot in enumerate(slots):
            try:
                drawn = first_valid_draw(cook.config, cook.seed, first + n)
            except (UniqueValuesExhausted, NoValidDraw) as exc:
                await self._fail_cook(cook.id, str(exc))
                return [], False
            todo.append((first + n, 0, drawn, live + n, slot))
        made: list[Piece] = []
        raced = False
        for _ in range(MAX_REDRAWS + 2):
            docs = [
                self.pieces.new_doc(
                    cook_id=cook.id,
                    collection_id=cook.collection_id,
                    owner_id=cook.owner_id,
                    config_hash=cook.config_hash,
                    drawn=drawn,
                    seat=seat,
                    slot=slot,
                    combo=combination_key(drawn.traits) if unique else None,
                )
                for _, _, drawn, seat, slot in todo
            ]
            refused = await self.pieces.insert(docs)
            made.extend(from_doc(d) for d, r in zip(docs, refused, strict=True) if r is None)
            again = [(t, r) for t, r in zip(todo, refused, strict=True) if r is not None]
            if not again:
                return made, raced
            raced = True
            todo = []
            seats: list[int] | None = None
            slots_free: list[int] | None = None
            for (index, salt, drawn, seat, slot), taken in again:
                if "combo" in taken:
                    if salt + 1 > MAX_REDRAWS:
                        await self._fail_cook(
                            cook.id, f"no unused trait combination after {MAX_REDRAWS} draws"
                        )
                        return made, False
                    try:
                        drawn = first_valid_draw(cook.config, cook.seed, index, salt + 1)
                    except NoValidDraw as no_draw:
                        await self._fail_cook(cook.id, str(no_draw))
                        return made, False
                    todo.append((index, salt + 1, drawn, seat, slot))
                    continue
                if "seat" in taken:
                    if seats is None:
                        held = await self.pieces.taken_seats(cook.collection_id, cook.id)
                        held |= {t[3] for t in todo}
                        seats = [s for s in range(cook.count) if s not in held]
                    if not seats:
                        log.info("index %d of %s skipped: no free seat", index, cook.collection_id)
                        continue
                    todo.append((index, salt, drawn, seats.pop(0), slot))
                elif "slot" in taken:
                    if slots_free is None:
                        held = await self.pieces.taken_slots(cook.id)
                        held |= {t[4] for t in todo}
                        slots_free = [k for k in range(cook.max_concurrent) if k not in held]
                    if not slots_free:
                        log.info("index %d of %s skipped: no free slot", index, cook.collection_id)
                        continue
                    todo.append((index, salt, drawn, seat, slots_free.pop(0)))
                else:
                    raise DuplicateKeyError(f"piece {index} of {cook.collection_id}: {taken}")
            if not todo:
                return made, raced
        return made, raced


def first_valid_draw(config: Config, seed: int, index: int, salt: int = 0) -> Draw:
    """The draw at ``salt``, or the next salt's when the exclusion rules leave a category
    without a trait; ``NoValidDraw`` after ``MAX_REDRAWS`` tries."""
    for attempt in range(salt, salt + MAX_REDRAWS):
        try:
            return draw(config, seed, index, attempt)
        except NoValidDraw:
            continue
    raise NoValidDraw(f"the exclusion rules left no valid draw in {MAX_REDRAWS} tries")
