"""Live cook progress: a snapshot, then every event of the cook's log, in order, once.

The event log in the database is the only source. Each process runs one ``ProgressFeed``:
every tick it reads the heads (status and latest ``seq``) of the cooks that have subscribers
in this process, in one query, and only for cooks that moved, reads the new events and
counts the numbers once, for all of that cook's subscribers. Events written by any process
therefore reach subscribers in every process within one tick. Where the database has change
streams (a MongoDB replica set), an insert into the log wakes the feed at once and the tick
stays as a safety net.

The log has no permanent holes (see ``events.py``): a seq up to the cook's ``lastSeq`` is
either in the log or recorded, with its event, in the cook's last relay batch, which the next
relay of any process (at the latest its sweeper, one tick later) writes. So the feed delivers
only contiguous runs of the log and, at a seq not written yet, simply waits for it; it never
skips one and never guesses with a timer.

Delivery never waits for a subscriber: each one has a bounded buffer that drops its oldest
entries when full. Every subscriber checks that the ``seq``s it yields are contiguous and
reads any hole from the log itself, so a slow or late subscriber still gets each event
exactly once, in order, and nothing it does holds up the feed, other subscribers or the cook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from domain.errors import BadUserInput
from domain.principal import Principal
from orchestration.base.background import stop_if_cancelled
from orchestration.base.single_flight import SingleFlight
from orchestration.cooking.cooks import CookHead, CookStore
from orchestration.cooking.events import MAX_EVENTS_PAGE, Event, EventLog
from orchestration.cooking.pieces import CookNumbers, PieceStore

log = logging.getLogger("cook.progress")

# After a change-stream wake-up, the feed waits this long to gather a burst into one read.
WAKE_COALESCE_SECONDS = 0.005


@dataclass(frozen=True)
class Progress:
    """One message: the snapshot (``event`` is None) or one event, with the numbers then."""

    seq: int
    head: CookHead
    numbers: CookNumbers
    event: Event | None


@dataclass(eq=False)
class _Subscriber:
    buffer: deque[Progress]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    end: CookHead | None = None

    def offer(self, items: list[Progress]) -> None:
        self.buffer.extend(items)
        self.wake.set()

    def finish(self, head: CookHead) -> None:
        self.end = head
        self.wake.set()


@dataclass(eq=False)
class _Channel:
    """The subscribers of one cook in this process, and how far the feed has read for them."""

    delivered: int
    subscribers: set[_Subscriber] = field(default_factory=set)


class ProgressFeed:
    def __init__(
        self,
        cooks: CookStore,
        events: EventLog,
        pieces: PieceStore,
        *,
        interval: float,
        buffer_size: int = 256,
    ) -> None:
        self._cooks = cooks
        self._events = events
        self._pieces = pieces
        self.interval = interval
        self._buffer_size = buffer_size
        self._channels: dict[str, _Channel] = {}
        self._nudge = asyncio.Event()
        # A thousand subscribers joining at once cost one read of the cook and one count.
        self._reading: SingleFlight[tuple[str, str | None], CookHead] = SingleFlight()
        self._counting: SingleFlight[str, CookNumbers] = SingleFlight()
        self.mode = "poll"

    @property
    def subscriber_count(self) -> int:
        return sum(len(c.subscribers) for c in self._channels.values())

    async def follow(
        self, principal: Principal, cook_id: str, after_seq: int | None
    ) -> AsyncIterator[Progress]:
        """The snapshot, then events after ``after_seq`` (default: after the snapshot) until
        the cook ends. Raises NotFound for a cook the caller does not own."""
        scope = (cook_id, None if principal.is_admin else principal.subject)
        head = await self._reading.run(scope, lambda: self._cooks.head(principal, cook_id))
        latest = head.last_seq + head.recorded  # as the cook's ``lastSeq`` shows it
        if after_seq is not None and not 0 <= after_seq <= latest:
            raise BadUserInput.at(
                "afterSeq", f"must be between 0 and the cook's latest seq ({latest})"
            )
        subscriber = _Subscriber(deque(maxlen=self._buffer_size))
        channel = self._channels.setdefault(cook_id, _Channel(delivered=head.last_seq))
        channel.subscribers.add(subscriber)
        try:
            snapshot = Progress(head.last_seq, head, await self._numbers(cook_id), None)
            yield snapshot
            last = head.last_seq if after_seq is None else after_seq
            async for item in self._from_log(cook_id, last, snapshot):
                if item.seq != last + 1:
                    break  # not written yet: the feed delivers it with what follows
                yield item
                last = item.seq
            if head.ended and last >= head.last_seq:
                return
            while True:
                await subscriber.wake.wait()
                subscriber.wake.clear()
                while subscriber.buffer:
                    item = subscriber.buffer.popleft()
                    if item.seq <= last:
                        continue
                    async for missed in self._from_log(cook_id, last, item, before=True):
                        yield missed
                    yield item
                    last = item.seq
                if subscriber.end is not None:
                    final = Progress(
                        subscriber.end.last_seq, subscriber.end, snapshot.numbers, None
                    )
                    async for item in self._from_log(cook_id, last, final):
                        yield item
                    return
        finally:
            channel.subscribers.discard(subscriber)
            if not channel.subscribers and self._channels.get(cook_id) is channel:
                del self._channels[cook_id]

    async def _numbers(self, cook_id: str) -> CookNumbers:
        return await self._counting.run(cook_id, lambda: self._pieces.numbers(cook_id))

    async def _from_log(
        self, cook_id: str, after: int, upto: Progress, *, before: bool = False
    ) -> AsyncIterator[Progress]:
        """Events after ``after`` up to ``upto.seq`` (excluded when ``before``), read from the
        log and carrying ``upto``'s head and numbers."""
        last = upto.seq - 1 if before else upto.seq
        async for event in self._events.between(cook_id, after, last):
            yield Progress(event.seq, upto.head, upto.numbers, event)

    async def run(self) -> None:
        """Poll until cancelled, woken early by change streams where the database has them."""
        watcher = asyncio.create_task(self._watch())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudge.wait(), timeout=self.interval)
                    await asyncio.sleep(WAKE_COALESCE_SECONDS)
                self._nudge.clear()
                try:
                    await self.poll_once()
                except Exception:  # the feed must outlive any one bad read
                    stop_if_cancelled()
                    log.warning("progress poll failed; retrying next tick", exc_info=True)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self) -> None:
        try:
            await self._events.wait_for_inserts(self._on_change_stream, self._nudge.set)
        except PyMongoError as exc:
            log.info("no change streams (%s); progress polls every %.3f s", exc, self.interval)
        self.mode = "poll"

    def _on_change_stream(self) -> None:
        log.info("progress wakes on change streams (polls every %.3f s too)", self.interval)
        self.mode = "change-stream"

    async def poll_once(self) -> None:
        if not self._channels:
            return
        heads = await self._cooks.heads(list(self._channels))
        for cook_id, channel in list(self._channels.items()):
            head = heads.get(cook_id)
            if head is None:
                continue
            if head.last_seq > channel.delivered:
                await self._deliver(cook_id, channel, head)
            if head.ended and channel.delivered >= head.last_seq:
                for subscriber in channel.subscribers:
                    subscriber.finish(head)

    async def _deliver(self, cook_id: str, channel: _Channel, head: CookHead) -> None:
        page = [
            e
            for e in await self._events.after(cook_id, channel.delivered, MAX_EVENTS_PAGE)
            if e.seq <= head.last_seq
        ]
        # A seq not written yet is in the cook's relay batch: it comes by the next relay.
        fresh = _contiguous(page, channel.delivered)
        if not fresh:
            return
        numbers = await self._numbers(cook_id)
        items = [Progress(e.seq, head, numbers, e) for e in fresh]
        channel.delivered = fresh[-1].seq
        for subscriber in channel.subscribers:
            subscriber.offer(items)


def _contiguous(events: list[Event], after: int) -> list[Event]:
    run: list[Event] = []
    for event in events:
        if event.seq != after + len(run) + 1:
            break
        run.append(event)
    return run
