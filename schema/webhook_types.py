"""GraphQL types for outbound webhooks: endpoints, their secrets, deliveries and attempts."""

from __future__ import annotations

import json
from datetime import datetime

import strawberry
from strawberry.scalars import JSON

from orchestration.base.pagination import Page, encode_cursor
from orchestration.notifications import deliveries as delivery_domain
from orchestration.notifications import endpoints as endpoint_domain
from schema.node import Node
from schema.types import PageInfo

WebhookDeliveryStatus = strawberry.enum(
    delivery_domain.DeliveryStatus,
    name="WebhookDeliveryStatus",
    description="PENDING until an attempt gets a 2xx answer (DELIVERED) or the retry schedule "
    "runs out (FAILED; also when its endpoint is disabled or deleted).",
)


@strawberry.type(description="Where an owner is told that a cook or an export ended.")
class WebhookEndpoint(Node):
    id: strawberry.ID
    owner_id: strawberry.ID
    url: str
    events: list[str] = strawberry.field(
        description="Any of cook.completed, cook.failed, cook.cancelled, export.completed, "
        "export.failed."
    )
    description: str
    enabled: bool = strawberry.field(
        description="False once disabled (by its owner, or after deliveries failed in a row)."
    )
    disabled_reason: str | None
    failure_streak: int = strawberry.field(
        description="Deliveries failed in a row (after their whole schedule) since the last "
        "success."
    )
    previous_secret_expires_at: datetime | None = strawberry.field(
        description="After a rotation: until when the previous secret also signs."
    )
    created_at: datetime
    updated_at: datetime
    secret: str | None = strawberry.field(
        default=None,
        description="The `whsec_` secret that signs every delivery (Standard Webhooks): set only "
        "in the answer of createWebhookEndpoint and rotateWebhookSecret, null everywhere else. "
        "Keep it: no query shows it again; rotate to get a new one.",
    )

    @classmethod
    def with_secret(cls, e: endpoint_domain.Endpoint) -> WebhookEndpoint:
        shown = cls.from_domain(e)
        shown.secret = e.secret
        return shown

    @classmethod
    def from_domain(cls, e: endpoint_domain.Endpoint) -> WebhookEndpoint:
        return cls(
            id=strawberry.ID(e.id),
            owner_id=strawberry.ID(e.owner_id),
            url=e.url,
            events=list(e.events),
            description=e.description,
            enabled=e.enabled,
            disabled_reason=e.disabled_reason,
            failure_streak=e.failure_streak,
            previous_secret_expires_at=e.previous_secret_expires_at,
            created_at=e.created_at,
            updated_at=e.updated_at,
        )


@strawberry.type
class WebhookEndpointEdge:
    cursor: str
    node: WebhookEndpoint


@strawberry.type(description="A page of webhook endpoints, newest first.")
class WebhookEndpointConnection:
    edges: list[WebhookEndpointEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[endpoint_domain.Endpoint]) -> WebhookEndpointConnection:
        return cls(
            edges=[
                WebhookEndpointEdge(
                    cursor=encode_cursor(e.created_at, e.id), node=WebhookEndpoint.from_domain(e)
                )
                for e in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type(description="One attempt to deliver: its answer and how long it took.")
class WebhookAttempt:
    number: int
    at: datetime
    status_code: int | None = strawberry.field(description="null: no answer (see `error`).")
    duration_ms: int
    error: str | None


@strawberry.type(description="One message to one endpoint, with its attempts.")
class WebhookDelivery:
    id: strawberry.ID
    endpoint_id: strawberry.ID
    message_id: str = strawberry.field(
        description="The `webhook-id` header: the same on every attempt and redelivery."
    )
    event: str
    status: WebhookDeliveryStatus  # type: ignore[valid-type]
    attempts: int = strawberry.field(description="Attempts in the current round.")
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    error: str | None = strawberry.field(description="The last attempt's failure.")
    payload: JSON = strawberry.field(description="The body sent (no secrets).")
    attempt_log: list[WebhookAttempt] = strawberry.field(
        description=f"The newest {delivery_domain.MAX_LOGGED_ATTEMPTS} attempts, oldest first."
    )

    @classmethod
    def from_domain(cls, d: delivery_domain.Delivery) -> WebhookDelivery:
        return cls(
            id=strawberry.ID(d.id),
            endpoint_id=strawberry.ID(d.endpoint_id),
            message_id=d.message_id,
            event=d.event,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=d.next_attempt_at,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
            error=d.error,
            payload=json.loads(d.body),
            attempt_log=[
                WebhookAttempt(
                    number=a.number,
                    at=a.at,
                    status_code=a.status_code,
                    duration_ms=a.duration_ms,
                    error=a.error,
                )
                for a in d.attempt_log
            ],
        )


@strawberry.type
class WebhookDeliveryEdge:
    cursor: str
    node: WebhookDelivery


@strawberry.type(description="A page of an endpoint's deliveries, newest first.")
class WebhookDeliveryConnection:
    edges: list[WebhookDeliveryEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[delivery_domain.Delivery]) -> WebhookDeliveryConnection:
        return cls(
            edges=[
                WebhookDeliveryEdge(
                    cursor=encode_cursor(d.created_at, d.id), node=WebhookDelivery.from_domain(d)
                )
                for d in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )
