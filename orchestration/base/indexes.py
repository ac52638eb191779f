"""Index creation at start: ask only for the indexes a collection does not have yet.

Every process ensures its indexes at every start. ``createIndexes`` of an index that exists is
a no-op in effect, but not in cost: on MongoDB it takes the collection's lock, and on the
embedded server it cost about 2 ms of the server's CPU per index (45 ms for an app's indexes,
against 7 ms to list them). So the indexes are listed first, and only those without an
identical one (same name, key and options) are asked for. One that differs is asked for too,
so the server still refuses it exactly as before (a different index under the same name, or
the same key with other options); listing costs one command per collection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import IndexModel
from pymongo.asynchronous.collection import AsyncCollection

IGNORED = frozenset({"v", "ns"})  # what a server adds to each index it lists
DEFAULTS = {"unique": False, "sparse": False, "hidden": False}  # listed by some servers only


async def ensure_indexes(collection: AsyncCollection[Any], models: Sequence[IndexModel]) -> None:
    """Create those of ``models`` that ``collection`` lacks (none: no ``createIndexes``)."""
    cursor = await collection.list_indexes()
    existing = {index["name"]: index async for index in cursor}
    missing = [m for m in models if not same(existing.get(m.document["name"]), m.document)]
    if missing:
        await collection.create_indexes(missing)


def same(listed: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Whether the index the server listed is the one ``wanted`` describes, key order included."""
    if listed is None:
        return False
    return _options(listed) == _options(wanted)


def _options(index: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: _plain(v)
        for k, v in index.items()
        if k not in IGNORED and not (k in DEFAULTS and v == DEFAULTS[k])
    }


def _plain(value: Any) -> Any:
    """Mappings within an option (the key, a filter) as lists of pairs, so their order counts
    as it does to the server; numbers compare by value (a key's ``1`` and ``1.0``)."""
    if isinstance(value, Mapping):
        return [(k, _plain(v)) for k, v in value.items()]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
