"""Piece queries and curation: list, read, exclude from exports."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from domain.errors import BadUserInput, NotFound, Problem
from domain.ids import parse_entity_id
from orchestration.art.traits import MAX_CATEGORIES, MAX_NAME_LENGTH
from orchestration.base.pagination import MAX_PAGE
from orchestration.cooking import cooks as cook_domain
from orchestration.cooking import pieces as piece_domain
from orchestration.cooking.orchestrator import MAX_REVIEW_DECISIONS
from resolvers.cooks import COLLECTION_ID, _collection_id
from schema.context import Info
from schema.cook_types import Piece, PieceConnection, PieceStatus, ReviewOutcome

PieceOrder = strawberry.enum(
    piece_domain.PieceOrder,
    name="PieceOrder",
    description="NEWEST: highest index first (indexes are given in creation order); "
    "INDEX: lowest first.",
)


def _piece_id(value: strawberry.ID, path: str = "id") -> str:
    return parse_entity_id(str(value), piece_domain.ID_PREFIX, path)


@strawberry.input(description="A drawn trait, by its category's name and its name.")
class TraitFilterInput:
    category: str = strawberry.field(description=f"1-{MAX_NAME_LENGTH} characters.")
    name: str = strawberry.field(description=f"1-{MAX_NAME_LENGTH} characters.")


@strawberry.input(description="Which pieces to list; omitted fields do not filter.")
class PieceFilterInput:
    status: list[PieceStatus] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these statuses."
    )
    review: list[ReviewOutcome] | None = strawberry.field(  # type: ignore[valid-type]
        default=None, description="Any of these review outcomes (ACCEPTED includes excluded)."
    )
    excluded: bool | None = strawberry.field(
        default=None, description="true: only excluded pieces; false: none of them."
    )
    traits: list[TraitFilterInput] | None = strawberry.field(
        default=None,
        description=f"Only pieces that drew every one of these traits (at most {MAX_CATEGORIES}).",
    )


def _trait_filter(traits: list[TraitFilterInput] | None) -> tuple[tuple[str, str], ...]:
    if not traits:
        return ()
    if len(traits) > MAX_CATEGORIES:
        raise BadUserInput.at("filter.traits", f"names at most {MAX_CATEGORIES} traits")
    problems = [
        Problem(f"filter.traits[{i}].{key}", f"is 1 to {MAX_NAME_LENGTH} characters")
        for i, t in enumerate(traits)
        for key, value in (("category", t.category), ("name", t.name))
        if not 1 <= len(value) <= MAX_NAME_LENGTH
    ]
    if problems:
        raise BadUserInput(problems)
    return tuple((t.category, t.name) for t in traits)


async def piece(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="A piece id (`pc_` and 32 hex).")],
) -> Piece:
    """One piece. Another user's piece is reported as NOT_FOUND, like a missing one."""
    ctx = info.context
    pid = _piece_id(id)
    found = await ctx.services.pieces.get(ctx.require_principal(), pid)
    if found is None:
        raise NotFound("piece", pid)
    return Piece.from_domain(found)


async def pieces(
    info: Info,
    collection_id: Annotated[strawberry.ID, strawberry.argument(description=COLLECTION_ID)],
    cook_id: Annotated[
        strawberry.ID | None,
        strawberry.argument(description="Only this cook's pieces (`ck_` and 32 hex)."),
    ] = None,
    filter: PieceFilterInput | None = None,
    order: PieceOrder = piece_domain.PieceOrder.NEWEST,  # type: ignore[valid-type]
    first: Annotated[int, strawberry.argument(description=f"Page size, 1 to {MAX_PAGE}.")] = 20,
    after: Annotated[
        str | None, strawberry.argument(description="The `endCursor` of the previous page.")
    ] = None,
) -> PieceConnection:
    """A collection's (or one of its cooks') pieces. Every combination of filters is served
    by an index."""
    ctx = info.context
    principal = ctx.require_principal()
    collection = await ctx.services.collections.get(principal, _collection_id(collection_id))
    cook = None
    if cook_id is not None:
        cook = parse_entity_id(str(cook_id), cook_domain.ID_PREFIX, "cookId")
        found = await ctx.services.cooks.get(principal, cook)
        if found.collection_id != collection.id:
            raise NotFound("cook", cook)
    f = filter or PieceFilterInput()
    query = piece_domain.PieceQuery(
        collection_id=collection.id,
        cook_id=cook,
        statuses=tuple(piece_domain.PieceStatus(s) for s in f.status or ()),
        reviews=tuple(piece_domain.Review(r) for r in f.review or ()),
        excluded=f.excluded,
        traits=_trait_filter(f.traits),
        order=piece_domain.PieceOrder(order),
    )
    page = await ctx.services.pieces.find_page(principal, query, first, after, asked(info))
    return PieceConnection.from_page(page)


def asked(info: Info) -> frozenset[str]:
    """Every field name in the selection below this field, fragments' included (a superset of
    what will be resolved: enough to know which stored fields may be left unread)."""
    names: set[str] = set()
    stack: list[Any] = list(info.selected_fields)
    while stack:
        node = stack.pop()
        names.add(getattr(node, "name", ""))
        stack.extend(getattr(node, "selections", None) or ())
    return frozenset(names)


async def set_pieces_excluded(
    info: Info,
    piece_ids: Annotated[
        list[strawberry.ID],
        strawberry.argument(
            description=f"1 to {MAX_REVIEW_DECISIONS} accepted pieces; all are checked before "
            "any is changed."
        ),
    ],
    excluded: Annotated[
        bool, strawberry.argument(description="true: leave out of exports; false: include.")
    ],
) -> list[Piece]:
    """Leave accepted pieces out of exports, or include them again (the old "cull"). They stay
    accepted and keep their place in the supply. Idempotent."""
    ctx = info.context
    ids = [_piece_id(p, f"pieceIds[{i}]") for i, p in enumerate(piece_ids)]
    changed = await ctx.services.orchestrator.set_excluded(ctx.require_principal(), ids, excluded)
    return [Piece.from_domain(p) for p in changed]
