"""Plain scalar fields read without a resolve-info (``schema/plain_fields.py``) give the same
data and the same errors as graphql-core's own field execution, and are read that way."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from strawberry.extensions import SchemaExtension
from strawberry.permission import BasePermission
from strawberry.scalars import JSON
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from schema.plain_fields import PlainFieldExecutor, RootFieldsOnly
from schema.shared_events import SharedEventExecutor


@strawberry.enum
class Mood(enum.Enum):
    CALM = "calm"
    LOUD = "loud"


class Never(BasePermission):
    message = "no"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Inner:
    label: str
    mood: Mood | None


@strawberry.type
class Item:
    id: strawberry.ID
    name: str
    count: int
    ratio: float | None
    flag: bool
    mood: Mood
    maybe: str | None
    at: datetime
    blob: JSON
    tags: list[str]
    inner: Inner | None
    guarded: str | None = strawberry.field(permission_classes=[Never], default="secret")

    @strawberry.field
    def shout(self, times: int = 1) -> str:
        return self.name.upper() * times

    @strawberry.field
    async def later(self) -> int:
        return self.count + 1


def item(n: int, **broken: Any) -> Item:
    values: dict[str, Any] = {
        "id": strawberry.ID(f"i{n}"),
        "name": f"item {n}",
        "count": n,
        "ratio": n / 3 if n % 2 else None,
        "flag": n % 2 == 0,
        "mood": Mood.CALM if n % 2 else Mood.LOUD,
        "maybe": None if n % 3 else "m",
        "at": datetime(2026, 1, 1 + n, tzinfo=UTC),
        "blob": {"n": n, "list": [1, "two"]},
        "tags": [f"t{n}", "x"],
        "inner": Inner(label=f"in {n}", mood=None) if n % 2 else None,
    }
    return Item(**{**values, **broken})


ITEMS = [item(n) for n in range(6)]
BROKEN = [
    item(1, name=None),  # null for a non-null string
    item(2, count="many"),  # not an int
    item(3, mood="calm"),  # not the enum
    item(4, count=2**40),  # beyond GraphQL's Int
    item(5, mood=None, inner=Inner(label=None, mood="loud")),  # type: ignore[arg-type]
]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return ITEMS

    @strawberry.field
    def broken(self) -> list[Item | None]:
        return list(BROKEN)


ALL_FIELDS = """{ __typename items { __typename id name count ratio flag mood maybe at blob tags
  inner { label mood } shout(times: 2) later alias: name } }"""
QUERIES = {
    "every field": ALL_FIELDS,
    "the guarded field": "{ items { id guarded } }",
    "broken values": "{ broken { id name count mood inner { label mood } } }",
    "introspection beside": "{ __schema { queryType { name } } items { name } }",
}


class Doubling(SchemaExtension):
    """A schema extension that resolves fields (graphql-core's middleware)."""

    def resolve(self, _next: Callable[..., Any], root: Any, info: Any, *a: Any, **k: Any) -> Any:
        value = _next(root, info, *a, **k)
        return value * 2 if isinstance(value, int) and not isinstance(value, bool) else value


class RootDoubling(RootFieldsOnly, SchemaExtension):
    """Resolves fields, and passes those below the root through untouched."""

    def resolve(self, _next: Callable[..., Any], root: Any, info: Any, *a: Any, **k: Any) -> Any:
        value = _next(root, info, *a, **k)
        if info.path.prev is not None or not isinstance(value, list):
            return value
        return [*value, *ITEMS[:1]]


def run(executor: type, query: str, extensions: list[Any]) -> tuple[Any, list[Any]]:
    schema = strawberry.Schema(query=Query, execution_context_class=executor, extensions=extensions)
    result = asyncio.run(schema.execute(query))
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
    return result.data, errors


@pytest.mark.parametrize(
    "extensions",
    [[], [Doubling], [RootDoubling]],
    ids=["plain", "with a resolving extension", "with one for root fields only"],
)
@pytest.mark.parametrize("query", QUERIES)
def test_results_and_errors_are_graphql_cores_own(query: str, extensions: list[Any]) -> None:
    text = QUERIES[query]
    fast = run(PlainFieldExecutor, text, extensions)
    assert fast == run(StrawberryGraphQLCoreExecutionContext, text, extensions)
    assert fast[0] is not None


def test_plain_scalar_fields_are_read_without_a_resolve_info(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    infos: list[str] = []
    build = StrawberryGraphQLCoreExecutionContext.build_resolve_info

    def counting(self: Any, field_def: Any, nodes: Any, *args: Any) -> Any:
        infos.append(nodes[0].name.value)
        return build(self, field_def, nodes, *args)

    monkeypatch.setattr(StrawberryGraphQLCoreExecutionContext, "build_resolve_info", counting)
    query = "{ items { id name count mood at inner { label } shout } }"
    for extensions in ([], [RootDoubling]):
        run(PlainFieldExecutor, query, extensions)
        # The root field, each item's object and resolver fields; no plain scalar.
        assert sorted(set(infos)) == ["inner", "items", "shout"]
        assert infos.count("inner") >= len(ITEMS)
        infos.clear()
    run(PlainFieldExecutor, query, [Doubling])
    assert infos.count("name") == len(ITEMS), "a resolving extension sees every field"
    infos.clear()
    run(StrawberryGraphQLCoreExecutionContext, "{ items { id name } }", [])
    assert infos.count("name") == len(ITEMS), "the counter sees graphql-core's own path"


def test_the_service_executes_with_it() -> None:
    assert issubclass(SharedEventExecutor, PlainFieldExecutor)
