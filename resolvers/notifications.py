"""Outbound webhooks: an owner's endpoints, their deliveries, a test event, redelivery."""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.ids import parse_entity_id
from orchestration.base.pagination import MAX_PAGE
from orchestration.notifications import deliveries as delivery_domain
from orchestration.notifications import endpoints as endpoint_domain
from orchestration.notifications.endpoints import MAX_DESCRIPTION, EndpointChanges
from schema.context import Info
from schema.webhook_types import (
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookEndpoint,
    WebhookEndpointConnection,
)

ENDPOINT_ID = "A webhook endpoint id (`whe_` and 32 hex digits)."
DELIVERY_ID = "A webhook delivery id (`whd_` and 32 hex digits)."
URL = (
    "Where to POST: http(s) (https in production), at most 2,048 characters, no credentials; "
    "its host may not be or resolve to a loopback, private, link-local, multicast or metadata "
    "address (unless the operator allows it)."
)
EVENTS = f"1 to 5 distinct events: {', '.join(endpoint_domain.EVENTS)}."
DESCRIPTION = f"At most {MAX_DESCRIPTION} characters."
FIRST = f"Page size, 1 to {MAX_PAGE}."
AFTER = "The `endCursor` of the previous page."


def _endpoint_id(value: strawberry.ID, path: str = "id") -> str:
    return parse_entity_id(str(value), endpoint_domain.ID_PREFIX, path)


def _delivery_id(value: strawberry.ID, path: str = "deliveryId") -> str:
    return parse_entity_id(str(value), delivery_domain.ID_PREFIX, path)


async def create_webhook_endpoint(
    info: Info,
    url: Annotated[str, strawberry.argument(description=URL)],
    events: Annotated[list[str], strawberry.argument(description=EVENTS)],
    description: Annotated[str | None, strawberry.argument(description=DESCRIPTION)] = None,
) -> WebhookEndpoint:
    """Add an endpoint; the answer holds its signing secret (shown only here and on rotation).
    An owner has at most COOK_WEBHOOK_MAX_ENDPOINTS (CONFLICT beyond)."""
    ctx = info.context
    created = await ctx.services.notifier.endpoints.create(
        ctx.require_principal(), url, events, description
    )
    return WebhookEndpoint.with_secret(created)


async def update_webhook_endpoint(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description=ENDPOINT_ID)],
    url: Annotated[str | None, strawberry.argument(description=URL)] = None,
    events: Annotated[list[str] | None, strawberry.argument(description=EVENTS)] = None,
    description: Annotated[str | None, strawberry.argument(description=DESCRIPTION)] = None,
    enabled: Annotated[
        bool | None,
        strawberry.argument(description="Enable (with a fresh run of failures) or disable."),
    ] = None,
) -> WebhookEndpoint:
    """Change an endpoint's URL, events, description or whether it is enabled."""
    ctx = info.context
    changes = EndpointChanges(url, events, description, enabled)
    updated = await ctx.services.notifier.endpoints.update(
        ctx.require_principal(), _endpoint_id(id), changes
    )
    return WebhookEndpoint.from_domain(updated)


async def delete_webhook_endpoint(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=ENDPOINT_ID)]
) -> WebhookEndpoint:
    """Delete an endpoint; its pending deliveries fail unsent."""
    ctx = info.context
    deleted = await ctx.services.notifier.endpoints.delete(
        ctx.require_principal(), _endpoint_id(id)
    )
    return WebhookEndpoint.from_domain(deleted)


async def rotate_webhook_secret(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=ENDPOINT_ID)]
) -> WebhookEndpoint:
    """A new signing secret. The previous one keeps signing beside it (two signatures in
    `webhook-signature`) for COOK_WEBHOOK_ROTATION_OVERLAP_SECONDS."""
    ctx = info.context
    rotated = await ctx.services.notifier.endpoints.rotate(
        ctx.require_principal(), _endpoint_id(id)
    )
    return WebhookEndpoint.with_secret(rotated)


async def send_test_webhook(
    info: Info,
    endpoint_id: Annotated[strawberry.ID, strawberry.argument(description=ENDPOINT_ID)],
) -> WebhookDelivery:
    """Send a `webhook.test` event to the endpoint now (a new delivery, on the same schedule
    as any other)."""
    ctx = info.context
    delivery = await ctx.services.notifier.send_test(
        ctx.require_principal(), _endpoint_id(endpoint_id, "endpointId")
    )
    return WebhookDelivery.from_domain(delivery)


async def redeliver(
    info: Info,
    delivery_id: Annotated[strawberry.ID, strawberry.argument(description=DELIVERY_ID)],
) -> WebhookDelivery:
    """Send a DELIVERED or FAILED delivery again now, with a fresh schedule and the same
    `webhook-id` (CONFLICT while it is still PENDING, or its endpoint is disabled)."""
    ctx = info.context
    delivery = await ctx.services.notifier.redeliver(
        ctx.require_principal(), _delivery_id(delivery_id)
    )
    return WebhookDelivery.from_domain(delivery)


async def webhook_endpoint(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=ENDPOINT_ID)]
) -> WebhookEndpoint:
    """One endpoint (no secret). Another user's is NOT_FOUND, like a missing one."""
    ctx = info.context
    found = await ctx.services.notifier.endpoints.get(ctx.require_principal(), _endpoint_id(id))
    return WebhookEndpoint.from_domain(found)


async def webhook_endpoints(
    info: Info,
    first: Annotated[int, strawberry.argument(description=FIRST)] = 20,
    after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
) -> WebhookEndpointConnection:
    """The caller's endpoints (an admin's: everyone's), newest first."""
    ctx = info.context
    page = await ctx.services.notifier.endpoints.page(ctx.require_principal(), first, after)
    return WebhookEndpointConnection.from_page(page)


async def webhook_deliveries(
    info: Info,
    endpoint_id: Annotated[strawberry.ID, strawberry.argument(description=ENDPOINT_ID)],
    first: Annotated[int, strawberry.argument(description=FIRST)] = 20,
    after: Annotated[str | None, strawberry.argument(description=AFTER)] = None,
) -> WebhookDeliveryConnection:
    """An endpoint's deliveries, newest first, each with its attempts (status codes, times)."""
    ctx = info.context
    principal = ctx.require_principal()
    notifier = ctx.services.notifier
    endpoint = await notifier.endpoints.get(principal, _endpoint_id(endpoint_id, "endpointId"))
    page = await notifier.deliveries.list_for_endpoint(principal, endpoint.id, first, after)
    return WebhookDeliveryConnection.from_page(page)
