"""The per-cook event log: every committed transition has exactly one event, even under SIGKILL.

There are no transactions (the embedded server does not isolate them), so a transition and a
log entry cannot be one write. Instead the event travels in two hops, each idempotent:

1. **Outbox.** The transition's own single-document update records its event on the document
   it changes: a piece's ``$push`` to ``outbox`` (with ``unlogged: cookId``, indexed) in the
   same update that claims, settles or rejects it; a cook's in the update that moves its status
   (with ``unlogged: true`` and ``$inc: {ver: 1}``). Once the transition is committed, so is
   its event; a crash cannot split them.
2. **Relay.** ``EventLog.relay(cook_id)`` moves recorded events into the log. It runs right
   after a transition in the process that made it (for latency), and every process's sweeper
   runs it for every cook with ``unlogged`` events, so a process that dies between the two hops
   loses nothing. One relay round:

   a. finish the cook's last *batch* if one is recorded (insert its events, pull them from
      the pieces' outboxes: both no-ops when already done);
   b. read the pieces' outboxes (``{unlogged: cookId}``, by index);
   c. one conditional update of the cook, on the ``ver`` it read: the events of the pieces
      and of the cook's own outbox get the seqs ``lastSeq + 1 ...``, recorded as the new
      ``batch`` in the same update that raises ``lastSeq`` and empties the cook's outbox;
   d. insert the batch into the log as one document (``_id`` is ``cookId:firstSeq``, so a
      repeat is refused as a duplicate; ``seq`` is its last, ``events`` its events), then pull
      its events from the pieces' outboxes (one write per piece).

   One document per batch, not per event: on the embedded engine every document written costs
   about as much as a round trip of its own, whether or not it comes in a bulk write.

   A seq therefore exists only together with its event (in ``batch``, until the next round
   clears it), so the log has no holes: a seq up to ``lastSeq`` not yet in the log is in the
   cook's ``batch`` and the next relay of any process writes it. Every change to the batch or
   the cook's outbox raises ``ver``, so of two racing relays the second's update matches
   nothing (it reads again); and since a batch is pulled from the pieces before the next one is
   recorded, no event is ever given two seqs.

Order: within a batch, events go by time, each document's in its own order, and a cook's
terminal event last (it is only taken once the pieces' outboxes were read in full), so a
subscriber sees the terminal event after the piece events that led to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from domain.ids import new_id
from orchestration.base import clock, metrics
from orchestration.base.indexes import ensure_indexes

type Document = dict[str, Any]

log = logging.getLogger("cook.events")

MAX_EVENTS_PAGE = 500
LOG_READ_BATCH = 16  # log documents per read: one may hold a whole relay round's events
MAX_BATCH_PIECES = 200  # pieces whose outboxes one relay round takes
MAX_RELAY_ROUNDS = 50  # bound on one relay call; the sweeper continues
RELAY_FIELDS = {"lastSeq": 1, "ver": 1, "outbox": 1, "batch": 1, "unlogged": 1}
CLEARED = {"$unset": {"outbox": "", "unlogged": ""}}


class EventType(StrEnum):
    COOK_STARTED = "cook_started"
    COOK_PAUSED = "cook_paused"
    COOK_RESUMED = "cook_resumed"
    COOK_CANCELLING = "cook_cancelling"
    COOK_CANCELLED = "cook_cancelled"
    COOK_COMPLETED = "cook_completed"
    COOK_FAILED = "cook_failed"
    PIECE_SUBMITTED = "piece_submitted"
    PIECE_PROGRESS = "piece_progress"  # a provider's progress update (queued, running...)
    PIECE_COMPLETED = "piece_completed"
    PIECE_RETRYING = "piece_retrying"
    PIECE_FAILED = "piece_failed"
    PIECE_REJECTED = "piece_rejected"


TERMINAL = {EventType.COOK_COMPLETED.value, EventType.COOK_FAILED.value}
TERMINAL.add(EventType.COOK_CANCELLED.value)


@dataclass(frozen=True)
class Event:
    cook_id: str
    seq: int
    type: EventType
    at: datetime
    piece_id: str | None
    index: int | None
    attempt: int | None
    detail: str | None


def recorded(
    type: EventType,
    *,
    piece_id: str | None = None,
    index: int | None = None,
    attempt: int | None = None,
    detail: str | None = None,
) -> Document:
    """An event as a transition records it in its document's outbox (no seq yet)."""
    return {
        "key": new_id("ev"),
        "type": type.value,
        "at": clock.now(),
        "pieceId": piece_id,
        "index": index,
        "attempt": attempt,
        "detail": detail,
    }


def piece_outbox(cook_id: str, event: Document) -> Document:
    """What a piece transition adds to its update to record ``event`` (``lastEvent``, the key
    of the newest, tells the relay whether its outbox changed since it was read)."""
    return {"$push": {"outbox": event}, "$set": {"unlogged": cook_id, "lastEvent": event["key"]}}


def cook_outbox(event: Document) -> Document:
    """What a cook transition adds to its update to record ``event``."""
    return {"$push": {"outbox": event}, "$set": {"unlogged": True}, "$inc": {"ver": 1}}


def merge_updates(*updates: Document) -> Document:
    """Update documents combined operator by operator (their fields must not overlap)."""
    merged: Document = {}
    for update in updates:
        for op, fields in update.items():
            merged.setdefault(op, {}).update(fields)
    return merged


@dataclass
class _Relaying:
    task: asyncio.Task[None]
    # Callers waiting for the next pass, which starts after they called; each pass takes the
    # callers waiting when it starts and releases just them when it ends.
    waiting: list[asyncio.Future[None]] = field(default_factory=list)


@dataclass
class _State:
    """The cook's relay fields as last read or written by this process (a hint: every write
    made from it is conditional on its ``ver``)."""

    doc: Document
    finished_batch: int | None = None  # first seq of a batch this process finished writing
    fresh: bool = True  # read or written by the current relay call


@dataclass
class EventLog:
    db: AsyncDatabase[Document]
    _relays: dict[str, _Relaying] = field(default_factory=dict)
    _states: dict[str, _State] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._events = self.db["cook_events"]
        self._cooks = self.db["cooks"]
        self._pieces = self.db["pieces"]

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [IndexModel([("cookId", ASCENDING), ("seq", ASCENDING)], name="cook_seq")]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._events, self.indexes())

    # --- the relay ----------------------------------------------------------------------

    async def relay(self, cook_id: str) -> None:
        """Move the cook's recorded events into the log, now. One relay per cook runs in this
        process at a time; a call during one makes it go round again and waits for that pass
        only (events recorded before the call are in the log when it returns). A caller never
        waits for passes asked for after it: under a steady stream of transitions the relay
        may go round for as long as the cook runs, and every caller (a completion with its
        attempt, its piece and its tool's output) would otherwise be held until it stops."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        running = self._relays.get(cook_id)
        if running is None or running.task.done():
            running = _Relaying(asyncio.create_task(self._relay_repeatedly(cook_id)))
            self._relays[cook_id] = running
        running.waiting.append(done)
        await asyncio.shield(done)

    async def _relay_repeatedly(self, cook_id: str) -> None:
        relaying = self._relays[cook_id]
        asked: list[asyncio.Future[None]] = []
        try:
            while relaying.waiting:
                asked, relaying.waiting = relaying.waiting, []
                await self._relay_rounds(cook_id)
                _release(asked)
        except PyMongoError:
            # The transitions are committed with their events; the sweeper relays them later.
            self._states.pop(cook_id, None)
            log.warning("relaying events of %s failed; the sweeper retries", cook_id, exc_info=True)
        except asyncio.CancelledError:
            for future in asked + relaying.waiting:
                future.cancel()
            raise
        except Exception as exc:
            for future in asked + relaying.waiting:
                if not future.done():
                    future.set_exception(exc)
            relaying.waiting = []
            log.exception("relaying events of %s failed", cook_id)
        finally:
            _release(asked + relaying.waiting)
            relaying.waiting = []
            if self._relays.get(cook_id) is relaying:
                del self._relays[cook_id]

    async def _relay_rounds(self, cook_id: str) -> None:
        if (cached := self._states.get(cook_id)) is not None:
            cached.fresh = False  # a transition may have come since: "nothing to do" needs a read
        for _ in range(MAX_RELAY_ROUNDS):
            if not await self._relay_round(cook_id):
                return

    async def _read_state(self, cook_id: str) -> _State | None:
        doc = await self._cooks.find_one({"_id": cook_id}, RELAY_FIELDS)
        if doc is None:
            self._states.pop(cook_id, None)
            return None
        state = _State(doc)
        self._states[cook_id] = state
        return state

    async def _relay_round(self, cook_id: str) -> bool:
        """One round; whether another may find more to do."""
        state = self._states.get(cook_id) or await self._read_state(cook_id)
        if state is None:
            return False
        batch: list[Document] = state.doc.get("batch") or []
        if batch and state.finished_batch != batch[0]["seq"]:
            await self._write_batch(cook_id, batch)
            state.finished_batch = batch[0]["seq"]
        cursor = self._pieces.find({"unlogged": cook_id}, {"outbox": 1, "index": 1})
        found = [d async for d in cursor.limit(MAX_BATCH_PIECES)]
        complete = len(found) < MAX_BATCH_PIECES
        own: list[Document] = state.doc.get("outbox") or []
        keep = [] if complete else [e for e in own if e["type"] in TERMINAL]
        stale: dict[str, list[str]] = {d["_id"]: [] for d in found if not d.get("outbox")}
        if stale:
            # emptied by a relay that died before clearing the flag
            await self._pull(cook_id, stale)
        lists = [
            [{**e, "origin": "piece", "pieceId": d["_id"], "index": d["index"]} for e in ob]
            for d in found
            if (ob := d.get("outbox"))
        ]
        lists.append([e for e in own if e not in keep])
        events = list(heapq.merge(*lists, key=_event_order))
        last: int = state.doc["lastSeq"]
        numbered = [{**e, "seq": last + i} for i, e in enumerate(events, start=1)]
        metrics.events_relayed([e["at"] for e in numbered])
        if numbered:
            update: Document = {
                "$set": {"batch": numbered, "lastSeq": last + len(numbered), "outbox": keep},
                "$inc": {"ver": 1},
            }
        elif batch or own or state.doc.get("unlogged"):
            update = {"$unset": {"batch": "", "unlogged": ""}, "$inc": {"ver": 1}}
        elif not state.fresh:
            await self._read_state(cook_id)
            return True
        else:
            return False
        doc = await self._cooks.find_one_and_update(
            # None matches a missing ``ver`` too (a cook stored before there were outboxes).
            {"_id": cook_id, "ver": state.doc.get("ver")},
            update,
            projection=RELAY_FIELDS,
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:  # another relay or a cook transition came first: read again
            await self._read_state(cook_id)
            return True
        state = _State(doc, finished_batch=state.finished_batch)
        self._states[cook_id] = state
        if not numbered:
            return False
        await self._write_batch(cook_id, numbered)
        state.finished_batch = numbered[0]["seq"]
        return not complete or bool(keep)

    async def _write_batch(self, cook_id: str, batch: list[Document]) -> None:
        """Insert a recorded batch into the log and pull it from the pieces' outboxes; each
        part is a no-op where already done."""
        with contextlib.suppress(DuplicateKeyError):  # written before: by the same batch
            await self._events.insert_one(_log_doc(cook_id, batch))
        keys: dict[str, list[str]] = {}
        for e in batch:
            if e.get("origin") == "piece":
                keys.setdefault(e["pieceId"], []).append(e["key"])
        await self._pull(cook_id, keys)

    async def _pull(self, cook_id: str, keys: dict[str, list[str]]) -> None:
        """Take relayed events out of the pieces' outboxes; an emptied outbox is no longer
        ``unlogged``.

        One write per piece in the usual case: when a piece's newest event is one of those
        relayed, every event in its outbox is (a relay takes a piece's whole outbox, and an
        older event is either among them or already pulled), so the outbox goes with the flag
        in one update. Only when some piece did not match (a newer event came since) does a
        second round pull just the relayed events from the pieces still flagged. A piece with
        no keys is one left flagged with an empty outbox.

        The filters are scalar fields beside ``_id``: on the embedded engine a filter on a path
        into an array reads the whole collection.
        """
        clear: list[UpdateOne] = []
        pull: list[UpdateOne] = []
        for piece_id, ks in keys.items():
            if not ks:
                for empty in ({"$size": 0}, {"$exists": False}):
                    clear.append(UpdateOne({"_id": piece_id, "outbox": empty}, CLEARED))
                continue
            clear.append(UpdateOne({"_id": piece_id, "lastEvent": {"$in": ks}}, CLEARED))
            taken = {"$pull": {"outbox": {"key": {"$in": ks}}}}
            pull.append(UpdateOne({"_id": piece_id, "unlogged": cook_id}, taken))
        if not clear:
            return
        result = await self._pieces.bulk_write(clear, ordered=False)
        if result.matched_count < len(clear) and pull:
            await self._pieces.bulk_write(pull, ordered=False)

    def known_last_seq(self, cook_id: str) -> int:
        """The cook's ``lastSeq`` as this process last saw it (a hint; 0: not seen)."""
        state = self._states.get(cook_id)
        return 0 if state is None else int(state.doc["lastSeq"])

    async def unlogged_cook_ids(self, limit: int = 1000) -> set[str]:
        """Cooks with events recorded but maybe not yet in the log (for the sweeper)."""
        ids = {
            d["_id"] async for d in self._cooks.find({"unlogged": True}, {"_id": 1}).limit(limit)
        }
        async for d in self._pieces.find({"unlogged": {"$gt": ""}}, {"unlogged": 1}).limit(limit):
            ids.add(d["unlogged"])
        return ids

    async def append(self, cook_id: str, type: EventType, **fields: Any) -> bool:
        """Record an event of the cook that has no transition of its own, and relay it."""
        result = await self._cooks.update_one(
            {"_id": cook_id}, cook_outbox(recorded(type, **fields))
        )
        await self.relay(cook_id)
        return result.matched_count == 1

    async def stop(self) -> None:
        """Cancel this process's relays (the sweeper of any process finishes their work)."""
        for relaying in list(self._relays.values()):
            relaying.task.cancel()
        for relaying in list(self._relays.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await relaying.task
            for future in relaying.waiting:  # a task cancelled before it ran released no one
                future.cancel()
        self._relays.clear()
        self._states.clear()

    # --- reading the log ----------------------------------------------------------------

    async def between(self, cook_id: str, after_seq: int, upto_seq: int) -> AsyncIterator[Event]:
        """Events with ``after_seq < seq <= upto_seq``, in order, read a page at a time."""
        while after_seq < upto_seq:
            page = await self.after(cook_id, after_seq, min(MAX_EVENTS_PAGE, upto_seq - after_seq))
            for event in page:
                if event.seq > upto_seq:
                    return
                yield event
            if not page:
                return
            after_seq = page[-1].seq

    async def wait_for_inserts(
        self, on_open: Callable[[], None], on_insert: Callable[[], None]
    ) -> None:
        """Call ``on_insert`` for each event written by any process, through a change stream.

        Runs until cancelled; raises ``PyMongoError`` where the database has no change streams.
        """
        async with await self._events.watch([{"$match": {"operationType": "insert"}}]) as stream:
            on_open()
            async for _ in stream:
                on_insert()

    async def after(self, cook_id: str, after_seq: int, limit: int) -> list[Event]:
        """Up to ``limit`` events with ``seq > after_seq``, in order."""
        # Each log document holds at least one event, and a document's ``seq`` is its last.
        cursor = (
            self._events.find({"cookId": cook_id, "seq": {"$gt": after_seq}})
            .sort("seq", ASCENDING)
            .limit(limit)
            .batch_size(min(limit, LOG_READ_BATCH))
        )
        found: list[Event] = []
        async for doc in cursor:
            found += [_event(cook_id, e) for e in entries(doc) if e["seq"] > after_seq]
            if len(found) >= limit:
                break
        return found[:limit]


def _release(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def entries(doc: Document) -> list[Document]:
    """The events one log document holds, in order: a relay batch's, or (as an earlier
    version wrote) just its own."""
    events: list[Document] | None = doc.get("events")
    return [doc] if events is None else events


def _event(cook_id: str, e: Document) -> Event:
    return Event(
        cook_id=cook_id,
        seq=e["seq"],
        type=EventType(e["type"]),
        at=e["at"],
        piece_id=e.get("pieceId"),
        index=e.get("index"),
        attempt=e.get("attempt"),
        detail=e.get("detail"),
    )


def _event_order(event: Document) -> tuple[bool, datetime]:
    return event["type"] in TERMINAL, event["at"]


def _log_doc(cook_id: str, batch: list[Document]) -> Document:
    """A relay batch as one log document: ``_id`` is the cook and its first seq (so writing
    it again is refused), ``seq`` its last (what readers seek by)."""
    fields = ("seq", "type", "at", "pieceId", "index", "attempt", "detail")
    return {
        "_id": f"{cook_id}:{batch[0]['seq']:010d}",
        "cookId": cook_id,
        "seq": batch[-1]["seq"],
        "events": [{f: e.get(f) for f in fields} for e in batch],
    }
