"""Cooks: runs that generate a collection's pieces. Each transition is one conditional update.

At most one active cook per collection: an active cook holds ``activeKey = collectionId``,
under a unique index, so the database refuses a second one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from domain.errors import Conflict, NotFound, Problem
from domain.ids import AccountId, new_id
from domain.principal import Principal
from orchestration.art.engine import Config
from orchestration.art.traits import rules_from_doc, rules_to_doc, tree_from_doc, tree_to_doc
from orchestration.base import clock
from orchestration.base import notify_marker as marker
from orchestration.base.indexes import ensure_indexes
from orchestration.base.pagination import Page, newest_first
from orchestration.base.policy import MAX_COOK_COUNT, SEED_BOUND, CookPolicy, default_max_failures
from orchestration.base.scope import owned
from orchestration.catalog.collections import Collection, Generator, GeneratorKind
from orchestration.cooking.events import EventLog, EventType, cook_outbox, merge_updates, recorded
from orchestration.generators.spells import Step, steps_from_doc, steps_to_doc

type Document = dict[str, Any]

ID_PREFIX = "ck"


class CookStatus(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLING = "cancelling"  # nothing new starts; ends cancelled once in-flight pieces settle
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (CookStatus.RUNNING, CookStatus.PAUSED, CookStatus.CANCELLING)


@dataclass(frozen=True)
class CookRequest:
    count: int
    max_concurrent: int | None = None
    seed: int | None = None
    max_failures: int | None = None


@dataclass(frozen=True)
class Cook:
    id: str
    collection_id: str
    owner_id: AccountId
    status: CookStatus
    reason: str | None
    count: int
    max_concurrent: int
    max_failures: int
    seed: int
    config: Config
    config_hash: str
    generator: Generator
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    last_seq: int
    steps: tuple[Step, ...] = ()  # the spell's steps, for a spell generator


@dataclass(frozen=True)
class CookHead:
    """What changes while a cook runs: its status, size and latest event."""

    status: CookStatus
    count: int
    max_concurrent: int
    last_seq: int  # the latest numbered event (every one up to it is, or is about to be, logged)
    recorded: int = 0  # events of the cook's own recorded but not yet numbered

    @property
    def ended(self) -> bool:
        """The cook ended and its last event is numbered (``last_seq`` is its final seq)."""
        return self.status not in ACTIVE and not self.recorded


HEAD_FIELDS = {"status": 1, "count": 1, "maxConcurrent": 1, "lastSeq": 1, "outbox": 1}


def _head(doc: Document) -> CookHead:
    return CookHead(
        CookStatus(doc["status"]),
        doc["count"],
        doc["maxConcurrent"],
        doc["lastSeq"],
        len(doc.get("outbox") or ()),
    )


class CookStore:
    def __init__(self, db: AsyncDatabase[Document], events: EventLog, policy: CookPolicy) -> None:
        self._cooks = db["cooks"]
        self._events = events
        self._policy = policy
        self.on_end: Callable[[], None] = lambda: None  # the notifier's kick (Services sets it)

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [
            IndexModel(
                "unlogged",
                name="unlogged_events",
                partialFilterExpression={"unlogged": {"$exists": True}},
            ),
            IndexModel(
                "activeKey",
                name="one_active_cook_per_collection",
                unique=True,
                partialFilterExpression={"activeKey": {"$type": "string"}},
            ),
            IndexModel(
                [("status", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                name="status_listing",
            ),
            IndexModel(
                [("collectionId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                name="collection_listing",
            ),
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._cooks, self.indexes())

    def check_request(self, request: CookRequest) -> list[Problem]:
        problems: list[Problem] = []
        if not 1 <= request.count <= MAX_COOK_COUNT:
            problems.append(Problem("count", f"must be between 1 and {MAX_COOK_COUNT}"))
        cap = self._policy.max_concurrent_cap
        if request.max_concurrent is not None and not 1 <= request.max_concurrent <= cap:
            problems.append(Problem("maxConcurrent", f"must be between 1 and {cap}"))
        if request.seed is not None and not 0 <= request.seed <= SEED_BOUND:
            problems.append(Problem("seed", f"must be between 0 and {SEED_BOUND}"))
        if request.max_failures is not None and not 1 <= request.max_failures <= MAX_COOK_COUNT:
            problems.append(Problem("maxFailures", f"must be between 1 and {MAX_COOK_COUNT}"))
        return problems

    async def create(
        self, collection: Collection, request: CookRequest, steps: tuple[Step, ...] = ()
    ) -> Cook:
        """Insert the cook; the unique ``activeKey`` refuses a second active cook. A spell's
        ``steps`` are copied in, so editing the spell later does not change this cook."""
        spec = collection.spec
        config = Config(spec.trait_tree, spec.template, spec.rules)
        at = clock.now()
        doc: Document = {
            "_id": new_id(ID_PREFIX),
            "collectionId": collection.id,
            "ownerId": collection.owner_id,
            "status": CookStatus.RUNNING.value,
            "reason": None,
            "activeKey": collection.id,
            "count": request.count,
            "maxConcurrent": request.max_concurrent or self._policy.default_max_concurrent,
            "maxFailures": request.max_failures or default_max_failures(request.count),
            "seed": secrets.randbelow(SEED_BOUND + 1) if request.seed is None else request.seed,
            "config": {
                "traitTree": tree_to_doc(config.trait_tree),
                "templateJson": json.dumps(config.template, separators=(",", ":")),
                "rules": rules_to_doc(config.rules),
            },
            "configHash": config.hash,
            "generator": {"kind": spec.generator.kind.value, "id": spec.generator.id},
            "spellSteps": steps_to_doc(steps),
            "createdAt": at,
            "updatedAt": at,
            "endedAt": None,
            # The first event is numbered at once: recorded as the cook's batch, it is written
            # to the log below, or by the next relay if this process dies first.
            "lastSeq": 1,
            "ver": 0,
            "batch": [{**recorded(EventType.COOK_STARTED), "seq": 1}],
            "unlogged": True,
        }
        try:
            await self._cooks.insert_one(doc)
        except DuplicateKeyError as exc:
            active = await self._cooks.find_one({"activeKey": collection.id}, {"_id": 1})
            raise Conflict(
                "the collection already has an active cook",
                activeCookId=active["_id"] if active else None,
            ) from exc
        await self._events.relay(doc["_id"])
        return _from_doc(doc)

    async def get(self, principal: Principal, cook_id: str) -> Cook:
        doc = await self._cooks.find_one(owned(principal, {"_id": cook_id}))
        if doc is None:
            raise NotFound("cook", cook_id)
        return _from_doc(doc)

    async def load(self, cook_id: str) -> Cook | None:
        """Internal read, for the runner (no caller to scope by)."""
        doc = await self._cooks.find_one({"_id": cook_id})
        return None if doc is None else _from_doc(doc)

    async def status(self, cook_id: str) -> CookStatus | None:
        """Internal read of the cook's status alone (the scheduler's every pass)."""
        doc = await self._cooks.find_one({"_id": cook_id}, {"status": 1})
        return None if doc is None else CookStatus(doc["status"])

    async def head(self, principal: Principal, cook_id: str) -> CookHead:
        """The cook's head alone (no configuration to read); NotFound as ``get``."""
        doc = await self._cooks.find_one(owned(principal, {"_id": cook_id}), HEAD_FIELDS)
        if doc is None:
            raise NotFound("cook", cook_id)
        return _head(doc)

    async def heads(self, cook_ids: list[str]) -> dict[str, CookHead]:
        """The moving parts of several cooks, in one query (for the progress feed)."""
        cursor = self._cooks.find({"_id": {"$in": cook_ids}}, HEAD_FIELDS)
        return {d["_id"]: _head(d) async for d in cursor}

    async def running_ids(self, statuses: tuple[CookStatus, ...]) -> list[str]:
        cursor = self._cooks.find({"status": {"$in": [s.value for s in statuses]}}, {"_id": 1})
        return [d["_id"] async for d in cursor]

    async def list_for_collection(
        self, principal: Principal, collection_id: str, first: int, after: str | None
    ) -> Page[Cook]:
        query = owned(principal, {"collectionId": collection_id})
        return await newest_first(self._cooks, query, first, after, _from_doc)

    async def list_by_status(
        self, principal: Principal, status: CookStatus, first: int, after: str | None
    ) -> Page[Cook]:
        """Cooks in ``status``, newest first: every owner's for an admin, else the caller's."""
        query = owned(principal, {"status": status.value})
        return await newest_first(self._cooks, query, first, after, _from_doc)

    async def transition(
        self,
        cook_id: str,
        allowed_from: tuple[CookStatus, ...],
        to: CookStatus,
        event: EventType,
        *,
        principal: Principal | None = None,
        reason: str | None = None,
    ) -> Cook | None:
        """Move the cook from one of ``allowed_from`` to ``to``, recording its event in the same
        update, and relay it to the log; None if it was not in such a state (someone else
        moved it first, or it never was)."""
        query: Document = {"_id": cook_id, "status": {"$in": [s.value for s in allowed_from]}}
        if principal is not None:
            query = owned(principal, query)
        if to not in ACTIVE:
            # Completions relay their events without waiting (``Completion.complete``): the
            # pieces' events go to the log first, so an ended cook's ``lastSeq`` is final as
            # soon as it shows the end.
            await self._events.relay(cook_id)
        at = clock.now()
        fields: Document = {"status": to.value, "updatedAt": at}
        if reason is not None:
            fields["reason"] = reason
        update: Document = {"$set": fields}
        if to not in ACTIVE:
            fields["endedAt"] = at
            update["$unset"] = {"activeKey": ""}
            # The owner's webhooks: recorded by this same update (see base/notify_marker.py).
            fields.update(marker.ended(f"cook.{to.value}")["$set"])
        doc = await self._cooks.find_one_and_update(
            query,
            merge_updates(update, cook_outbox(recorded(event, detail=reason))),
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return None
        if to not in ACTIVE:
            self.on_end()
        await self._events.relay(cook_id)
        cook = _from_doc(doc)
        return replace(cook, last_seq=max(cook.last_seq, self._events.known_last_seq(cook_id)))


def _from_doc(doc: Document) -> Cook:
    config = Config(
        tree_from_doc(doc["config"]["traitTree"]),
        json.loads(doc["config"]["templateJson"]),
        rules_from_doc(doc["config"].get("rules")),
    )
    gen = doc["generator"]
    return Cook(
        id=doc["_id"],
        collection_id=doc["collectionId"],
        owner_id=AccountId(doc["ownerId"]),
        status=CookStatus(doc["status"]),
        reason=doc.get("reason"),
        count=doc["count"],
        max_concurrent=doc["maxConcurrent"],
        max_failures=doc["maxFailures"],
        seed=doc["seed"],
        config=config,
        config_hash=doc["configHash"],
        generator=Generator(GeneratorKind(gen["kind"]), gen["id"]),
        created_at=doc["createdAt"],
        updated_at=doc["updatedAt"],
        ended_at=doc.get("endedAt"),
        # Its own recorded events count as if numbered: once ``last_seq`` events are listed,
        # every transition the cook shows is among them.
        last_seq=doc["lastSeq"] + len(doc.get("outbox") or ()),
        steps=steps_from_doc(doc.get("spellSteps", [])),
    )
