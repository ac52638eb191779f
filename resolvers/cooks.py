"""Cook queries, mutations and progress: start, pause, resume, cancel, preview, review."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from domain.errors import BadUserInput
from domain.ids import parse_entity_id
from orchestration.base.pagination import MAX_PAGE
from orchestration.base.policy import MAX_COOK_COUNT, SEED_BOUND
from orchestration.catalog import collections as collection_domain
from orchestration.cooking import cooks as cook_domain
from orchestration.cooking import pieces as piece_domain
from orchestration.cooking.cooks import CookRequest
from orchestration.cooking.orchestrator import MAX_PREVIEW, MAX_REVIEW_DECISIONS, Decision
from schema.context import Info
from schema.cook_types import (
    Cook,
    CookConnection,
    CookProgress,
    Piece,
    PiecePreview,
    Preview,
    ReviewOutcome,
)
from schema.shared_events import shared_payload

COLLECTION_ID = "A collection id (`col_` and 32 hex digits)."
COOK_ID = "A cook id (`ck_` and 32 hex digits)."


def parse_cook_id(value: strawberry.ID, path: str = "id") -> str:
    return parse_entity_id(str(value), cook_domain.ID_PREFIX, path)


def _collection_id(value: strawberry.ID) -> str:
    return parse_entity_id(str(value), collection_domain.ID_PREFIX, "collectionId")


@strawberry.input(description="One review decision.")
class ReviewDecisionInput:
    piece_id: strawberry.ID = strawberry.field(description="A piece id (`pc_` and 32 hex).")
    outcome: ReviewOutcome = strawberry.field(  # type: ignore[valid-type]
        description="ACCEPTED or REJECTED (PENDING is refused)."
    )


async def cook(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=COOK_ID)]
) -> Cook:
    """One cook. Another user's cook is reported as NOT_FOUND, like a missing one."""
    ctx = info.context
    return Cook.from_domain(
        await ctx.services.cooks.get(ctx.require_principal(), parse_cook_id(id))
    )


async def cooks(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=COLLECTION_ID)],
    first: Annotated[int, strawberry.argument(description=f"Page size, 1 to {MAX_PAGE}.")] = 20,
    after: Annotated[
        str | None, strawberry.argument(description="The `endCursor` of the previous page.")
    ] = None,
) -> CookConnection:
    """A collection's cooks, newest first."""
    ctx = info.context
    principal = ctx.require_principal()
    collection = await ctx.services.collections.get(principal, _collection_id(collection_id))
    page = await ctx.services.cooks.list_for_collection(principal, collection.id, first, after)
    return CookConnection.from_page(page)


async def preview_pieces(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=COLLECTION_ID)],
    count: Annotated[int, strawberry.argument(description=f"1 to {MAX_PREVIEW}.")] = 10,
    seed: Annotated[
        int | None,
        strawberry.argument(description=f"0 to {SEED_BOUND}; drawn at random when omitted."),
    ] = None,
) -> Preview:
    """Draw the pieces the next cook would make with this seed, without generating or
    storing anything (a dry run)."""
    ctx = info.context
    used, draws = await ctx.services.orchestrator.preview(
        ctx.require_principal(), _collection_id(collection_id), count, seed
    )
    return Preview(seed=used, pieces=[PiecePreview.from_domain(d) for d in draws])


async def start_cook(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=COLLECTION_ID)],
    count: Annotated[
        int,
        strawberry.argument(
            description=f"Pieces to make, 1 to {MAX_COOK_COUNT}, at most the remaining supply "
            "(total supply minus pieces accepted, awaiting review or in flight)."
        ),
    ],
    max_concurrent: Annotated[
        int | None,
        strawberry.argument(
            description="Pieces in flight at once, 1 to the server's cap (COOK_MAX_CONCURRENT_CAP, "
            "32 by default); 3 when omitted."
        ),
    ] = None,
    seed: Annotated[
        int | None,
        strawberry.argument(
            description=f"0 to {SEED_BOUND}; with the configuration it fixes every draw. "
            "Drawn and recorded when omitted."
        ),
    ] = None,
    max_failures: Annotated[
        int | None,
        strawberry.argument(
            description=f"The cook fails once this many pieces have failed (1 to {MAX_COOK_COUNT});"
            " max(3, count / 10) when omitted."
        ),
    ] = None,
) -> Cook:
    """Start cooking a collection. At most one active cook per collection (CONFLICT)."""
    ctx = info.context
    request = CookRequest(count, max_concurrent, seed, max_failures)
    started = await ctx.services.orchestrator.start(
        ctx.require_principal(), _collection_id(collection_id), request
    )
    return Cook.from_domain(started)


async def pause_cook(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=COOK_ID)]
) -> Cook:
    """Pause a running cook: in-flight pieces finish, nothing new starts. Idempotent."""
    ctx = info.context
    return Cook.from_domain(
        await ctx.services.orchestrator.pause(ctx.require_principal(), parse_cook_id(id))
    )


async def resume_cook(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=COOK_ID)]
) -> Cook:
    """Resume a paused cook; the same cook continues. Idempotent."""
    ctx = info.context
    return Cook.from_domain(
        await ctx.services.orchestrator.resume(ctx.require_principal(), parse_cook_id(id))
    )


async def cancel_cook(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=COOK_ID)]
) -> Cook:
    """Cancel a running or paused cook: nothing new starts, and it ends CANCELLED once its
    in-flight pieces settle. Idempotent."""
    ctx = info.context
    return Cook.from_domain(
        await ctx.services.orchestrator.cancel(ctx.require_principal(), parse_cook_id(id))
    )


async def review_pieces(
    info: Info,
    decisions: Annotated[
        list[ReviewDecisionInput],
        strawberry.argument(
            description=f"1 to {MAX_REVIEW_DECISIONS} decisions; for a piece named twice the "
            "last one counts. All are checked before any is applied."
        ),
    ],
) -> list[Piece]:
    """Accept or reject completed pieces. Rejecting frees the piece's place: a running cook
    makes a replacement; after a cook ends, the supply returns for the next cook."""
    ctx = info.context
    if not 1 <= len(decisions) <= MAX_REVIEW_DECISIONS:
        raise BadUserInput.at("decisions", f"must hold 1 to {MAX_REVIEW_DECISIONS} decisions")
    parsed = []
    for i, d in enumerate(decisions):
        outcome = piece_domain.Review(d.outcome)
        if outcome is piece_domain.Review.PENDING:
            raise BadUserInput.at(f"decisions[{i}].outcome", "must be ACCEPTED or REJECTED")
        pid = parse_entity_id(str(d.piece_id), piece_domain.ID_PREFIX, f"decisions[{i}].pieceId")
        parsed.append(Decision(pid, outcome))
    reviewed = await ctx.services.orchestrator.review(ctx.require_principal(), parsed)
    return [Piece.from_domain(p) for p in reviewed]


async def cook_progress(
    info: Info,
    cook_id: Annotated[strawberry.ID, strawberry.argument(description=COOK_ID)],
    after_seq: Annotated[
        int | None,
        strawberry.argument(
            description="The last `seq` you received (0 to the cook's latest `seq`): events "
            "after it are sent, from the log, with none missing or repeated. Omit it to get "
            "only what happens from now on."
        ),
    ] = None,
) -> AsyncGenerator[CookProgress]:
    """Follow a cook live: a snapshot, then each event in order; completes when the cook ends."""
    ctx = info.context
    feed = ctx.services.feed.follow(
        ctx.require_principal(), parse_cook_id(cook_id, "cookId"), after_seq
    )
    async for progress in feed:
        yield shared_payload(progress, CookProgress.from_domain)
