"""Admin-only operations: every owner's cooks, expired leases, any cook's events and cancel.

The root fields carry the ``IsAdmin`` permission; the stores also scope by the caller in their
database filters (``owned``), so even without the permission nobody would see another's data.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.errors import BadUserInput
from orchestration.base.pagination import MAX_PAGE, check_first
from orchestration.cooking.events import MAX_EVENTS_PAGE
from resolvers.cooks import COOK_ID, parse_cook_id
from schema.context import Info
from schema.cook_types import Cook, CookConnection, CookEvent, CookStatus, Piece

MAX_REASON = 500


async def admin_cooks(
    info: Info,
    status: Annotated[
        CookStatus,  # type: ignore[valid-type]
        strawberry.argument(description="Only cooks in this status."),
    ],
    first: Annotated[int, strawberry.argument(description=f"Page size, 1 to {MAX_PAGE}.")] = 20,
    after: Annotated[
        str | None, strawberry.argument(description="The `endCursor` of the previous page.")
    ] = None,
) -> CookConnection:
    """Admins only: every owner's cooks in a status, newest first."""
    ctx = info.context
    page = await ctx.services.cooks.list_by_status(ctx.require_principal(), status, first, after)
    return CookConnection.from_page(page)


async def admin_expired_leases(
    info: Info,
    first: Annotated[int, strawberry.argument(description=f"1 to {MAX_PAGE}.")] = 50,
) -> list[Piece]:
    """Admins only: in-flight pieces whose lease has run out (the sweeper has not taken them
    over yet), longest expired first."""
    ctx = info.context
    check_first(first)
    found = await ctx.services.pieces.list_expired(ctx.require_principal(), first)
    return [Piece.from_domain(p) for p in found]


async def admin_cook_events(
    info: Info,
    cook_id: Annotated[strawberry.ID, strawberry.argument(description=COOK_ID)],
    after_seq: Annotated[int, strawberry.argument(description="0 for all; 0 to 2147483647.")] = 0,
    first: Annotated[int, strawberry.argument(description=f"1 to {MAX_EVENTS_PAGE}.")] = 100,
) -> list[CookEvent]:
    """Admins only: any cook's events after `afterSeq`, in order."""
    ctx = info.context
    cook_id_ = parse_cook_id(cook_id, "cookId")
    if not 1 <= first <= MAX_EVENTS_PAGE:
        raise BadUserInput.at("first", f"must be between 1 and {MAX_EVENTS_PAGE}")
    if after_seq < 0:
        raise BadUserInput.at("afterSeq", "must not be negative")
    cook = await ctx.services.cooks.get(ctx.require_principal(), cook_id_)  # NOT_FOUND if none
    found = await ctx.services.events.after(cook.id, after_seq, first)
    return [CookEvent.from_domain(e) for e in found]


async def admin_cancel_cook(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description=COOK_ID)],
    reason: Annotated[
        str | None,
        strawberry.argument(
            description=f"Why, at most {MAX_REASON} characters; added to the cook's reason."
        ),
    ] = None,
) -> Cook:
    """Admins only: cancel any owner's running or paused cook (it ends CANCELLED once its
    in-flight pieces settle). Idempotent."""
    ctx = info.context
    if reason is not None and len(reason) > MAX_REASON:
        raise BadUserInput.at("reason", f"is {len(reason)} characters; at most {MAX_REASON}")
    cancelled = await ctx.services.orchestrator.cancel(
        ctx.require_principal(), parse_cook_id(id), reason.strip() if reason else None
    )
    return Cook.from_domain(cancelled)
