"""The notifier: fans out ended cooks and exports, and sends due deliveries, in any process.

Nothing here is authoritative: every step is a conditional update in the database (see
``fanout.py`` and ``deliveries.py``), so the notifiers of many processes run at once and a
process that dies loses nothing. A transition that ends a cook or an export *kicks* this
process's notifier, so the delivery usually leaves at once; every process also passes every
``tick_seconds`` (longer while it finds nothing: ``base/pace.py``) and finds whatever another
process left behind, and every retry that has come due.

A failed attempt is tried again on the retry schedule (``schedule.py``); once the schedule
is spent the delivery is failed, and an endpoint whose deliveries fail ``disable_after_failed``
times in a row is disabled. Sends are rate-limited per owner (``limits``, in the same storage
as the operation limits); a send over the limit is put back, not counted as an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from limits import parse
from pymongo.asynchronous.database import AsyncDatabase

from domain.errors import Conflict
from domain.principal import Principal
from orchestration.base import clock, metrics
from orchestration.base.limit_storage import LimitStorage
from orchestration.base.pace import Pace
from orchestration.cooking.pieces import PieceStore
from orchestration.notifications.addresses import IPAddress, Resolver, system_resolver
from orchestration.notifications.config import NotificationConfig
from orchestration.notifications.deliveries import Attempt, Delivery, DeliveryStore
from orchestration.notifications.endpoints import TEST_EVENT, EndpointStore
from orchestration.notifications.fanout import FanOut, body_of
from orchestration.notifications.sender import Outcome, Sender

log = logging.getLogger("cook.notifications")


class Notifier:
    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        pieces: PieceStore,
        config: NotificationConfig,
        resolver: Resolver = system_resolver,
    ) -> None:
        self.config = config
        self.resolver = resolver  # how host names are resolved (tests may swap it)
        self.endpoints = EndpointStore(db, config, self._resolve)
        self.deliveries = DeliveryStore(db)
        self.fanout = FanOut(db, self.endpoints, self.deliveries, pieces, config.public_url)
        self._sender: Sender | None = None  # made on first use, inside the event loop
        self._pass: asyncio.Task[None] | None = None
        self._again = False
        self._busy = False  # whether the passes since ``run`` last rested found work
        self._pace = Pace(config.tick_seconds)
        self._rate = parse(config.send_rate_limit)
        # Bounded and failing open like every other limit (orchestration/base/limit_storage.py).
        self._limits = LimitStorage(config.rate_limit_storage_uri)

    async def ensure_indexes(self) -> None:
        await self.endpoints.ensure_indexes()
        await self.deliveries.ensure_indexes()
        await self.fanout.ensure_indexes()

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        return await self.resolver(host, port)

    # --- owner operations ---------------------------------------------------------------

    async def send_test(self, principal: Principal, endpoint_id: str) -> Delivery:
        """Record a ``webhook.test`` delivery to the endpoint (a fresh message) and send it."""
        endpoint = await self.endpoints.get(principal, endpoint_id)
        if not endpoint.enabled:
            raise Conflict("the endpoint is disabled: enable it first")
        at = clock.now()
        data = {"endpointId": endpoint.id, "message": "a test event from Cook"}
        body = body_of(TEST_EVENT, at, data)
        delivery = await self.deliveries.record(
            endpoint, f"msg_{uuid.uuid4().hex}", TEST_EVENT, body, None
        )
        self.kick()
        return delivery

    async def redeliver(self, principal: Principal, delivery_id: str) -> Delivery:
        current = await self.deliveries.get(principal, delivery_id)
        endpoint = await self.endpoints.load(current.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            raise Conflict("the delivery's endpoint is disabled or deleted")
        delivery = await self.deliveries.redeliver(principal, delivery_id)
        self.kick()
        return delivery

    # --- the work -----------------------------------------------------------------------

    def kick(self) -> None:
        """Fan out and send soon, in this process (one pass at a time; a kick during a pass
        makes it go round again)."""
        self._pace.wake()
        self._start_pass()

    def _start_pass(self) -> None:
        if self._pass is not None and not self._pass.done():
            self._again = True
            return
        self._pass = asyncio.create_task(self._passes())

    async def _passes(self) -> None:
        while True:
            self._again = False
            try:
                self._busy = await self.tick() or self._busy
            except Exception:
                log.exception("notifier pass failed; the next tick tries again")
                self._busy = True
            if not self._again:
                return

    async def run(self) -> None:
        """Pass forever, at the pace of what there is to do (started by the app's lifespan;
        see ``base/pace.py``)."""
        while True:
            self._busy = False
            self._start_pass()
            if self._pass is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._pass)
            await self._pace.rest(self._busy)

    async def tick(self) -> bool:
        """Fan out what ended, then send every due delivery, a few at once; whether there
        was anything to do."""
        busy = bool(await self.fanout.relay_all())
        slots = asyncio.Semaphore(self.config.max_in_flight)
        async with asyncio.TaskGroup() as group:
            while True:
                await slots.acquire()
                claimed = await self.deliveries.claim(self.config.lease_seconds)
                if claimed is None:
                    slots.release()
                    break
                busy = True
                group.create_task(self._attempt(*claimed, slots))
        return busy

    async def _attempt(self, delivery: Delivery, token: str, slots: asyncio.Semaphore) -> None:
        try:
            await self._try(delivery, token)
        except Exception:
            log.exception(
                "delivery %s: the attempt failed to run; retried after its lease", delivery.id
            )
        finally:
            slots.release()

    async def _try(self, delivery: Delivery, token: str) -> None:
        endpoint = await self.endpoints.load(delivery.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            why = "the endpoint was deleted" if endpoint is None else "the endpoint is disabled"
            gone = Outcome(clock.now(), None, 0, f"not sent: {why}")
            await self._finish(delivery, token, gone, retry_in=None, counts=False)
            return
        wait = await self._over_rate(str(endpoint.owner_id))
        if wait is not None:
            await self.deliveries.release(delivery.id, token, wait)
            return
        if self._sender is None:
            self._sender = Sender(self.config, self._resolve)
        outcome = await self._sender.send(endpoint, delivery.message_id, delivery.body)
        metrics.webhook_deliveries.labels(outcome=_outcome_label(outcome)).inc()
        metrics.webhook_delivery_seconds.observe(outcome.duration_ms / 1000)
        if outcome.delivered:
            if await self._finish(delivery, token, outcome, retry_in=None, counts=False):
                await self.endpoints.delivered(endpoint.id)
            return
        retry_in = self.config.schedule.delay(delivery.attempts)
        await self._finish(delivery, token, outcome, retry_in=retry_in, counts=retry_in is None)

    async def _finish(
        self,
        delivery: Delivery,
        token: str,
        outcome: Outcome,
        *,
        retry_in: float | None,
        counts: bool,
    ) -> bool:
        attempt = Attempt(
            delivery.attempts, outcome.at, outcome.status_code, outcome.duration_ms, outcome.error
        )
        held = await self.deliveries.finish(
            delivery.id, token, attempt, delivered=outcome.delivered, retry_in=retry_in
        )
        if held and counts and await self.endpoints.delivery_failed(delivery.endpoint_id):
            log.warning(
                "webhook endpoint %s disabled after failed deliveries", delivery.endpoint_id
            )
        return held

    async def _over_rate(self, owner: str) -> float | None:
        """None if the owner may send now, else how long to wait."""
        if await self._limits.hit(self._rate, "webhook-sends", owner) is not False:
            return None  # allowed, or not counted (the storage is down: limits are open)
        return float(await self._limits.retry_after(self._rate, "webhook-sends", owner))

    async def stop(self) -> None:
        """Cancel this process's pass (a claimed delivery is due again after its lease)."""
        if self._pass is not None:
            self._pass.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._pass
        if self._sender is not None:
            await self._sender.close()
            self._sender = None
        await self._limits.close()

    async def idle(self) -> None:
        """Wait until this process's current pass is over (for tests)."""
        while self._pass is not None and not self._pass.done():
            await asyncio.shield(self._pass)


def _outcome_label(outcome: Outcome) -> str:
    """A bounded label: delivered, a refusal by status class, or no answer."""
    if outcome.delivered:
        return "delivered"
    if outcome.status_code is None:
        return "no_answer"
    return f"http_{outcome.status_code // 100}xx"
