"""Webhook endpoints: where an owner wants to be told that a cook or an export ended.

Every read and write is scoped to the owner in the filter itself (admins see all). The cap on
endpoints per owner is held by the database, not by a count: an endpoint holds a *slot*
``ownerId#k`` (k < the cap) under a unique index, so two creates racing for the last slot
cannot both succeed. A URL is checked (shape, then every address its host resolves to; see
``addresses.py``) before anything is written; a refused input writes nothing.

Secrets are ``whsec_`` keys kept in the endpoint's document (any process signs) and shown to
the owner only by the create and rotate mutations. Rotation keeps the old secret signing
beside the new one until ``previousSecretExpiresAt``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from domain.errors import BadUserInput, Conflict, NotFound, Problem
from domain.ids import AccountId, new_id
from domain.principal import Principal
from orchestration.base import clock
from orchestration.base.indexes import ensure_indexes
from orchestration.base.pagination import Page, newest_first
from orchestration.base.scope import owned
from orchestration.notifications.addresses import (
    AddressRefused,
    Resolver,
    resolve_target,
    system_resolver,
)
from orchestration.notifications.config import NotificationConfig
from orchestration.notifications.signing import new_secret

type Document = dict[str, Any]

ID_PREFIX = "whe"
EVENTS = (
    "cook.completed",
    "cook.failed",
    "cook.cancelled",
    "export.completed",
    "export.failed",
)
TEST_EVENT = "webhook.test"
MAX_DESCRIPTION = 200


@dataclass(frozen=True)
class Endpoint:
    id: str
    owner_id: AccountId
    url: str
    events: tuple[str, ...]
    description: str
    enabled: bool
    disabled_reason: str | None
    failure_streak: int
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def signing_secrets(self, at: datetime) -> list[str]:
        """The secrets that sign a message sent at ``at``: the current one, and the previous
        one while its overlap lasts."""
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and at < expires:
            return [self.secret, self.previous_secret]
        return [self.secret]


@dataclass(frozen=True)
class EndpointChanges:
    url: str | None = None
    events: list[str] | None = None
    description: str | None = None
    enabled: bool | None = None


class EndpointStore:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        config: NotificationConfig,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._endpoints = db["webhook_endpoints"]
        self._config = config
        self._resolver = resolver

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [
            IndexModel("slot", name="endpoint_slots", unique=True),
            IndexModel(
                [("ownerId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                name="owner_listing",
            ),
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._endpoints, self.indexes())

    # --- checks -------------------------------------------------------------------------

    async def url_problem(self, url: str) -> str | None:
        """Why webhooks may not go to ``url`` now (after DNS), or None."""
        try:
            await resolve_target(
                url,
                require_https=self._config.require_https,
                allowed=self._config.allowed_networks,
                resolver=self._resolver,
            )
        except AddressRefused as exc:
            return str(exc)
        return None

    async def _problems(self, changes: EndpointChanges) -> list[Problem]:
        problems: list[Problem] = []
        if changes.url is not None and (why := await self.url_problem(changes.url)) is not None:
            problems.append(Problem("url", why))
        if changes.events is not None:
            if not changes.events:
                problems.append(Problem("events", "name at least one event"))
            for i, event in enumerate(changes.events):
                if event not in EVENTS:
                    known = ", ".join(EVENTS)
                    problems.append(Problem(f"events.{i}", f"is not an event (known: {known})"))
            if len(set(changes.events)) != len(changes.events):
                problems.append(Problem("events", "names an event twice"))
        if changes.description is not None and len(changes.description) > MAX_DESCRIPTION:
            problems.append(Problem("description", f"must be at most {MAX_DESCRIPTION} characters"))
        return problems

    # --- owner operations ---------------------------------------------------------------

    async def create(
        self, principal: Principal, url: str, events: list[str], description: str | None
    ) -> Endpoint:
        problems = await self._problems(EndpointChanges(url, events, description))
        if problems:
            raise BadUserInput(problems)
        owner = principal.subject
        taken = {d.get("slot") async for d in self._endpoints.find({"ownerId": owner}, {"slot": 1})}
        at = clock.now()
        doc: Document = {
            "_id": new_id(ID_PREFIX),
            "ownerId": owner,
            "url": url,
            "events": [e for e in EVENTS if e in events],
            "description": description or "",
            "enabled": True,
            "disabledReason": None,
            "failureStreak": 0,
            "secret": new_secret(),
            "previousSecret": None,
            "previousSecretExpiresAt": None,
            "createdAt": at,
            "updatedAt": at,
        }
        for k in range(self._config.max_endpoints):
            slot = f"{owner}#{k}"
            if slot in taken:
                continue
            try:
                await self._endpoints.insert_one({**doc, "slot": slot})
            except DuplicateKeyError:
                continue  # taken since we read: try the next
            return _from_doc(doc)
        raise Conflict(
            f"an owner may have at most {self._config.max_endpoints} webhook endpoints; "
            "delete one first",
            limit=self._config.max_endpoints,
        )

    async def update(
        self, principal: Principal, endpoint_id: str, changes: EndpointChanges
    ) -> Endpoint:
        problems = await self._problems(changes)
        if problems:
            raise BadUserInput(problems)
        fields: Document = {"updatedAt": clock.now()}
        if changes.url is not None:
            fields["url"] = changes.url
        if changes.events is not None:
            fields["events"] = [e for e in EVENTS if e in changes.events]
        if changes.description is not None:
            fields["description"] = changes.description
        if changes.enabled is not None:
            fields["enabled"] = changes.enabled
            if changes.enabled:  # enabled again: a fresh run of failures
                fields.update(disabledReason=None, failureStreak=0)
            else:
                fields["disabledReason"] = "disabled by its owner"
        doc = await self._endpoints.find_one_and_update(
            owned(principal, {"_id": endpoint_id}),
            {"$set": fields},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise NotFound("webhook endpoint", endpoint_id)
        return _from_doc(doc)

    async def delete(self, principal: Principal, endpoint_id: str) -> Endpoint:
        doc = await self._endpoints.find_one_and_delete(owned(principal, {"_id": endpoint_id}))
        if doc is None:
            raise NotFound("webhook endpoint", endpoint_id)
        return _from_doc(doc)

    async def rotate(self, principal: Principal, endpoint_id: str) -> Endpoint:
        """A new secret; the current one keeps signing beside it for the overlap."""
        current = await self.get(principal, endpoint_id)
        at = clock.now()
        overlap = timedelta(seconds=self._config.rotation_overlap_seconds)
        doc = await self._endpoints.find_one_and_update(
            owned(principal, {"_id": endpoint_id, "secret": current.secret}),
            {
                "$set": {
                    "secret": new_secret(),
                    "previousSecret": current.secret,
                    "previousSecretExpiresAt": at + overlap,
                    "updatedAt": at,
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise Conflict("the secret was rotated at the same moment; read it and try again")
        return _from_doc(doc)

    async def get(self, principal: Principal, endpoint_id: str) -> Endpoint:
        doc = await self._endpoints.find_one(owned(principal, {"_id": endpoint_id}))
        if doc is None:
            raise NotFound("webhook endpoint", endpoint_id)
        return _from_doc(doc)

    async def page(self, principal: Principal, first: int, after: str | None) -> Page[Endpoint]:
        return await newest_first(self._endpoints, owned(principal, {}), first, after, _from_doc)

    # --- for the sender -----------------------------------------------------------------

    async def load(self, endpoint_id: str) -> Endpoint | None:
        doc = await self._endpoints.find_one({"_id": endpoint_id})
        return None if doc is None else _from_doc(doc)

    async def subscribed(self, owner_id: str, event: str) -> list[Endpoint]:
        """The owner's enabled endpoints that want ``event``."""
        cursor = self._endpoints.find({"ownerId": owner_id, "enabled": True, "events": event})
        return [_from_doc(d) async for d in cursor]

    async def delivered(self, endpoint_id: str) -> None:
        """A delivery succeeded: the run of failures is over."""
        await self._endpoints.update_one(
            {"_id": endpoint_id, "failureStreak": {"$gt": 0}}, {"$set": {"failureStreak": 0}}
        )

    async def delivery_failed(self, endpoint_id: str) -> bool:
        """A delivery failed after its whole schedule; the endpoint is disabled once
        ``disable_after_failed`` have in a row. Returns whether this disabled it."""
        limit = self._config.disable_after_failed
        disabled = await self._endpoints.update_one(
            {"_id": endpoint_id, "enabled": True, "failureStreak": {"$gte": limit - 1}},
            {
                "$inc": {"failureStreak": 1},
                "$set": {
                    "enabled": False,
                    "disabledReason": f"{limit} deliveries in a row failed",
                    "updatedAt": clock.now(),
                },
            },
        )
        if disabled.matched_count:
            return True
        await self._endpoints.update_one({"_id": endpoint_id}, {"$inc": {"failureStreak": 1}})
        return False


def _from_doc(doc: Document) -> Endpoint:
    return Endpoint(
        id=doc["_id"],
        owner_id=AccountId(doc["ownerId"]),
        url=doc["url"],
        events=tuple(doc["events"]),
        description=doc.get("description") or "",
        enabled=doc["enabled"],
        disabled_reason=doc.get("disabledReason"),
        failure_streak=doc.get("failureStreak", 0),
        secret=doc["secret"],
        previous_secret=doc.get("previousSecret"),
        previous_secret_expires_at=doc.get("previousSecretExpiresAt"),
        created_at=doc["createdAt"],
        updated_at=doc["updatedAt"],
    )


def without_secrets(endpoint: Endpoint) -> Endpoint:
    """The endpoint as listed: no secret leaves through a read."""
    return replace(endpoint, secret="", previous_secret=None)
