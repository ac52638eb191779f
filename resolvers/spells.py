"""Spell queries and mutations: owner-scoped like collections."""

from __future__ import annotations

from typing import Annotated

import strawberry

from domain.ids import parse_entity_id
from orchestration.base.pagination import MAX_PAGE
from orchestration.generators import spells as domain
from schema.context import Info
from schema.spell_types import Spell, SpellConnection, SpellInput

SPELL_ID = "A spell id (`spl_` and 32 hex digits)."
VERSION_RULE = (
    "A version (1 to 2147483647). If given, the change is refused with CONFLICT unless the "
    "spell is at this version."
)


def _id(value: strawberry.ID) -> str:
    return parse_entity_id(str(value), domain.ID_PREFIX)


async def spell(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=SPELL_ID)]
) -> Spell:
    """One spell. Another user's spell is reported as NOT_FOUND, like a missing one."""
    ctx = info.context
    return Spell.from_domain(await ctx.services.spells.get(ctx.require_principal(), _id(id)))


async def spells(
    info: Info,
    first: Annotated[int, strawberry.argument(description=f"Page size, 1 to {MAX_PAGE}.")] = 20,
    after: Annotated[
        str | None, strawberry.argument(description="The `endCursor` of the previous page.")
    ] = None,
) -> SpellConnection:
    """The caller's own spells, newest first."""
    ctx = info.context
    page = await ctx.services.spells.list_mine(ctx.require_principal(), first, after)
    return SpellConnection.from_page(page)


async def create_spell(info: Info, input: SpellInput) -> Spell:
    """Create a spell owned by the caller. Invalid input changes nothing."""
    ctx = info.context
    made = await ctx.services.spells.create(ctx.require_principal(), input.to_domain())
    return Spell.from_domain(made)


async def update_spell(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description=SPELL_ID)],
    input: Annotated[SpellInput, strawberry.argument(description="The whole new definition.")],
    expected_version: Annotated[int | None, strawberry.argument(description=VERSION_RULE)] = None,
) -> Spell:
    """Replace a spell's definition. Running cooks keep the steps they started with."""
    ctx = info.context
    updated = await ctx.services.spells.update(
        ctx.require_principal(), _id(id), input.to_domain(), expected_version
    )
    return Spell.from_domain(updated)
