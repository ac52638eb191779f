"""Export jobs and collection analytics."""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.ids import parse_entity_id
from orchestration.base.pagination import MAX_PAGE
from orchestration.results import exports as export_domain
from orchestration.results.analytics import collection_analytics as compute_analytics
from resolvers.cooks import COLLECTION_ID, _collection_id
from schema.context import Info
from schema.export_types import CollectionAnalytics, Export, ExportConnection, ExportOptionsInput

EXPORT_ID = "An export id (`exp_` and 32 hex digits)."


async def export_collection(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=COLLECTION_ID)],
    options: ExportOptionsInput | None = None,
) -> Export:
    """Start exporting the collection's accepted, not excluded pieces (as they are now) to a
    ZIP. At most one export per collection runs at a time (CONFLICT)."""
    ctx = info.context
    started = await ctx.services.exports.start(
        ctx.require_principal(),
        _collection_id(collection_id),
        (options or ExportOptionsInput()).to_domain(),
    )
    return Export.from_domain(started)


async def export(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=EXPORT_ID)]
) -> Export:
    """One export job. Another user's export is reported as NOT_FOUND, like a missing one."""
    ctx = info.context
    export_id = parse_entity_id(str(id), export_domain.ID_PREFIX)
    return Export.from_domain(await ctx.services.exports.get(ctx.require_principal(), export_id))


async def exports(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=COLLECTION_ID)],
    first: Annotated[int, strawberry.argument(description=f"Page size, 1 to {MAX_PAGE}.")] = 20,
    after: Annotated[
        str | None, strawberry.argument(description="The `endCursor` of the previous page.")
    ] = None,
) -> ExportConnection:
    """A collection's exports, newest first."""
    ctx = info.context
    principal = ctx.require_principal()
    collection = await ctx.services.collections.get(principal, _collection_id(collection_id))
    page = await ctx.services.exports.list_for_collection(principal, collection.id, first, after)
    return ExportConnection.from_page(page)


async def collection_analytics(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=COLLECTION_ID)],
) -> CollectionAnalytics:
    """Counts by status and review, approval rate, cost and duration, and per trait how often
    it was drawn against its weight and how often it was approved."""
    ctx = info.context
    s = ctx.services
    found = await compute_analytics(
        s.collections, s.pieces, ctx.require_principal(), _collection_id(collection_id)
    )
    return CollectionAnalytics.from_domain(found)
