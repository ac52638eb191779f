"""Collection queries and mutations: parse ids, call the store, shape the answer."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import strawberry
from strawberry.scalars import JSON

from domain.errors import Conflict
from domain.ids import parse_entity_id
from orchestration.art.traits import (
    MAX_CATEGORIES,
    MAX_NAME_LENGTH,
    MAX_TRAITS_PER_CATEGORY,
    MAX_VALUE_LENGTH,
    tree_from_legacy_file,
)
from orchestration.base.pagination import MAX_PAGE
from orchestration.catalog import collections as domain
from schema.context import Info
from schema.inputs import CreateCollectionInput, UpdateCollectionInput
from schema.types import Collection, CollectionConnection

ID_RULE = "A collection id (`col_` and 32 hex digits)."
VERSION_RULE = (
    "A version (1 to 2147483647). If given, the change is refused with CONFLICT unless the "
    "collection is at this version."
)


def _id(value: strawberry.ID) -> str:
    return parse_entity_id(str(value), domain.ID_PREFIX)


async def collection(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=ID_RULE)]
) -> Collection:
    """One collection. Another user's collection is reported as NOT_FOUND, like a missing one."""
    ctx = info.context
    found = await ctx.services.collections.get(ctx.require_principal(), _id(id))
    return Collection.from_domain(found)


async def collections(
    info: Info,
    first: Annotated[int, strawberry.argument(description=f"Page size, 1 to {MAX_PAGE}.")] = 20,
    after: Annotated[
        str | None, strawberry.argument(description="The `endCursor` of the previous page.")
    ] = None,
    include_archived: Annotated[
        bool, strawberry.argument(description="Also list archived collections.")
    ] = False,
) -> CollectionConnection:
    """The caller's own collections, newest first."""
    ctx = info.context
    page = await ctx.services.collections.list_mine(
        ctx.require_principal(), first, after, include_archived
    )
    return CollectionConnection.from_page(page)


async def create_collection(info: Info, input: CreateCollectionInput) -> Collection:
    """Create a collection owned by the caller. Invalid input changes nothing."""
    ctx = info.context
    created = await ctx.services.collections.create(ctx.require_principal(), input.to_domain())
    return Collection.from_domain(created)


async def update_collection(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description=ID_RULE)],
    input: Annotated[
        UpdateCollectionInput, strawberry.argument(description="The fields to change.")
    ],
    expected_version: Annotated[int | None, strawberry.argument(description=VERSION_RULE)] = None,
    dry_run: Annotated[
        bool,
        strawberry.argument(
            description="Only check: answer the collection as the change would make it (its "
            "`version` unchanged), or the same error the change would get, writing nothing. "
            "Editors validate with it as the artist types."
        ),
    ] = False,
) -> Collection:
    """Change a collection. The result is validated as a whole; invalid input changes nothing."""
    ctx = info.context
    principal = ctx.require_principal()
    patch = input.to_domain()
    if dry_run:
        current = await ctx.services.collections.get(principal, _id(id))
        if expected_version is not None and current.version != expected_version:
            raise Conflict(
                f"the collection is at version {current.version}, not {expected_version}",
                currentVersion=current.version,
            )
        await ctx.services.collections.check_patch(principal, current, patch)
        return Collection.from_domain(
            replace(current, spec=domain.apply_patch(current.spec, patch))
        )
    updated = await ctx.services.collections.update(principal, _id(id), patch, expected_version)
    return Collection.from_domain(updated)


async def import_trait_tree(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description=ID_RULE)],
    file: Annotated[
        JSON,
        strawberry.argument(
            description='The old system\'s trait tree file `{"categories": [...]}`; '
            "`prompt` is read as `value` and `rarity` as `weight`. Replaces the whole tree, "
            f"so the tree's bounds hold: at most {MAX_CATEGORIES} categories of 1 to "
            f"{MAX_TRAITS_PER_CATEGORY} traits, names of 1-{MAX_NAME_LENGTH} characters, "
            f"values of at most {MAX_VALUE_LENGTH}."
        ),
    ],
    expected_version: Annotated[int | None, strawberry.argument(description=VERSION_RULE)] = None,
) -> Collection:
    """Replace a collection's trait tree with an imported file."""
    ctx = info.context
    tree = tree_from_legacy_file(file)
    updated = await ctx.services.collections.update(
        ctx.require_principal(), _id(id), domain.CollectionPatch(trait_tree=tree), expected_version
    )
    return Collection.from_domain(updated)


async def archive_collection(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=ID_RULE)]
) -> Collection:
    """Archive (soft delete): hidden from lists by default, kept, and restorable. Idempotent."""
    ctx = info.context
    done = await ctx.services.collections.set_archived(ctx.require_principal(), _id(id), True)
    return Collection.from_domain(done)


async def restore_collection(
    info: Info, id: Annotated[strawberry.ID, strawberry.argument(description=ID_RULE)]
) -> Collection:
    """Bring an archived collection back. Idempotent."""
    ctx = info.context
    done = await ctx.services.collections.set_archived(ctx.require_principal(), _id(id), False)
    return Collection.from_domain(done)
