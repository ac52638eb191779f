"""Relay global object identification: ``node(id:)`` and ``nodes(ids:)``.

Each id is dispatched by its prefix to the same resolver its typed field uses, so ownership is
exactly that field's: the store's filter names the owner, and another user's object is found
missing by the same single query a missing one is. Both become ``null`` (never NOT_FOUND), as
does an id that names no kind of node. Nothing about a foreign object leaks, error or timing.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Annotated

import strawberry

from domain.errors import BadUserInput, NotFound
from resolvers import collections as col
from resolvers import cooks as ck
from resolvers import exports as ex
from resolvers import notifications as wh
from resolvers import pieces as pc
from resolvers import spells as sp
from schema.context import Info
from schema.node import Node

MAX_NODES = 100
_NODE_ID = re.compile(r"^([a-z]{2,4})_[0-9a-f]{32}$")

type Fetch = Callable[[Info, strawberry.ID], Awaitable[Node]]

_BY_PREFIX: dict[str, Fetch] = {
    "col": col.collection,
    "ck": ck.cook,
    "pc": pc.piece,
    "spl": sp.spell,
    "exp": ex.export,
    "whe": wh.webhook_endpoint,
}


async def _one(info: Info, id: strawberry.ID) -> Node | None:
    info.context.require_principal()
    match = _NODE_ID.fullmatch(str(id))
    fetch = _BY_PREFIX.get(match.group(1)) if match else None
    if fetch is None:
        return None
    try:
        return await fetch(info, id)
    except NotFound:
        return None


async def node(
    info: Info,
    id: Annotated[strawberry.ID, strawberry.argument(description="Any Cook id, as returned.")],
) -> Node | None:
    """Any object by its id (Relay refetch). Null when it is missing or another user's."""
    return await _one(info, id)


async def nodes(
    info: Info,
    ids: Annotated[
        list[strawberry.ID],
        strawberry.argument(description=f"At most {MAX_NODES} Cook ids, in any mix of kinds."),
    ],
) -> list[Node | None]:
    """Objects by their ids, in order; null for each that is missing or another user's."""
    info.context.require_principal()
    if len(ids) > MAX_NODES:
        raise BadUserInput.at("ids", f"at most {MAX_NODES} ids")
    return list(await asyncio.gather(*(_one(info, i) for i in ids)))
