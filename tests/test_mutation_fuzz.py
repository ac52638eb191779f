"""Property: every mutation, fed inputs generated from the schema's own types, answers with
data or a typed error (never INTERNAL, never a 500), and a refused input writes nothing.

The strategies are derived from the schema at test time, so a new mutation is fuzzed without
any change here. Ids are drawn from the caller's real objects, another user's, well-formed
ids of nothing, and garbage. ``COOK_FUZZ_EXAMPLES`` sets the number of examples (each feeds
every mutation once); the default keeps the suite fast.
"""

from __future__ import annotations

import copy as copy_module
import os
from typing import Any

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    build_schema,
)
from graphql.pyutils import Undefined
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schema.schema import schema
from tests.api import ADMIN, OWNER, STRANGER, Api, collection_input, start_cook, wait_for_cook
from tests.conftest import MakeApi

EXAMPLES = int(os.environ.get("COOK_FUZZ_EXAMPLES", "6"))
TYPED = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND", "BAD_USER_INPUT", "CONFLICT", "RATE_LIMITED"}
SDL = build_schema(schema.as_str())
assert SDL.mutation_type is not None
MUTATIONS = SDL.mutation_type.fields
PREFIXES = ("col", "ck", "pc", "spl")

# Stand-ins for real ids, bound once the fixture has made the objects; strategies read them late.
REAL: dict[str, str] = {}


def well_formed(prefix: str) -> st.SearchStrategy[str]:
    return st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda h: f"{prefix}_{h}")


IDS = st.one_of(
    st.sampled_from(["@mine", "@spare", "@theirs", "@cook", "@piece"]),
    st.sampled_from(PREFIXES).flatmap(well_formed),
    st.text(max_size=40),
)
STRINGS = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "Animal", "Cat", "miladyid", "[[Animal]]", "a]b", "x" * 1001]),
)
INTS = st.one_of(st.integers(-3, 120), st.integers(-(2**31), 2**31 - 1), st.just(2**31))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "String": STRINGS,
    "Int": INTS,
    "Float": st.floats(allow_nan=False, allow_infinity=False),
    "Boolean": st.booleans(),
    "ID": IDS,
    "JSON": JSON,
    "Upload": JSON,  # over JSON no value is a file: each must be refused as one
}


def value_of(kind: GraphQLInputType) -> st.SearchStrategy[Any]:
    """Values of a GraphQL input type (null only where the type allows it)."""
    if isinstance(kind, GraphQLNonNull):
        return _non_null(kind.of_type)
    return st.one_of(st.none(), _non_null(kind))


def _non_null(kind: GraphQLInputType) -> st.SearchStrategy[Any]:
    if isinstance(kind, GraphQLList):
        return st.lists(st.deferred(lambda: value_of(kind.of_type)), max_size=4)
    if isinstance(kind, GraphQLScalarType):
        return SCALARS[kind.name]
    if isinstance(kind, GraphQLEnumType):
        return st.sampled_from(sorted(kind.values))
    assert isinstance(kind, GraphQLInputObjectType)
    fields = kind.fields
    if kind.is_one_of:
        return st.one_of(
            *(
                st.fixed_dictionaries({n: st.deferred(lambda f=f: _non_null(f.type))})
                for n, f in fields.items()
            )
        )
    required = {
        n: st.deferred(lambda f=f: value_of(f.type))
        for n, f in fields.items()
        if isinstance(f.type, GraphQLNonNull) and f.default_value is Undefined
    }
    optional = {
        n: st.deferred(lambda f=f: value_of(f.type)) for n, f in fields.items() if n not in required
    }
    return st.fixed_dictionaries(required, optional=optional)


def arguments_of(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments drawn from the schema's types, or (to get past coercion into the domain's
    checks) a valid call with one part replaced by a value drawn from that part's type."""
    args = MUTATIONS[name].args
    required = {n: value_of(a.type) for n, a in args.items() if isinstance(a.type, GraphQLNonNull)}
    optional = {n: value_of(a.type) for n, a in args.items() if n not in required}
    drawn = st.fixed_dictionaries(required, optional=optional)
    if name not in VALID:
        return drawn
    parts = list(_parts(VALID[name], {n: a.type for n, a in args.items()}))
    return st.one_of(drawn, st.sampled_from(parts).flatmap(_replaced(VALID[name])))


type Path = tuple[str | int, ...]


def _parts(value: Any, types: dict[str, GraphQLInputType], at: Path = ()) -> Any:
    """(path, type) of every part of a valid argument dict, walked along the schema's types."""
    for key, item in value.items():
        kind = types[key]
        yield (*at, key), kind
        yield from _inner(item, kind, (*at, key))


def _inner(item: Any, kind: GraphQLInputType, at: Path) -> Any:
    bare = kind.of_type if isinstance(kind, GraphQLNonNull) else kind
    if isinstance(bare, GraphQLList) and isinstance(item, list):
        for i, element in enumerate(item):
            yield (*at, i), bare.of_type
            yield from _inner(element, bare.of_type, (*at, i))
    elif isinstance(bare, GraphQLInputObjectType) and isinstance(item, dict):
        yield from _parts(item, {n: f.type for n, f in bare.fields.items()}, at)


def _replaced(valid: dict[str, Any]) -> Any:
    def replace(part: tuple[Path, GraphQLInputType]) -> st.SearchStrategy[dict[str, Any]]:
        path, kind = part

        def put(new: Any) -> dict[str, Any]:
            copy = copy_module.deepcopy(valid)
            holder = copy
            for step in path[:-1]:
                holder = holder[step]
            holder[path[-1]] = new
            return copy

        return value_of(kind).map(put)

    return replace


def document(name: str, arguments: dict[str, Any]) -> str:
    args = MUTATIONS[name].args
    declared = ", ".join(f"${n}: {args[n].type}" for n in arguments)
    passed = ", ".join(f"{n}: ${n}" for n in arguments)
    head = f"mutation({declared})" if declared else "mutation"
    call = f"{name}({passed})" if passed else name
    return f"{head} {{ {call} {{ __typename }} }}"


TRAIT_FILE = {
    "categories": [
        {"name": "Animal", "traits": [{"name": "Dog", "rarity": 2}]},
        {"name": "miladyid", "generator": {"end": 3}},
    ]
}
# A valid call of each mutation, with ids as stand-ins (see REAL); a new mutation without one
# is still fuzzed from its types alone.
VALID: dict[str, dict[str, Any]] = {
    "createCollection": {"input": collection_input(rules={"exclusions": []})},
    "updateCollection": {
        "id": "@mine",
        "input": {"name": "n", "totalSupply": 60, "traitTree": collection_input()["traitTree"]},
        "expectedVersion": 1,
    },
    "importTraitTree": {"id": "@mine", "file": TRAIT_FILE},
    "archiveCollection": {"id": "@mine"},
    "restoreCollection": {"id": "@mine"},
    "startCook": {"collectionId": "@spare", "count": 1, "maxConcurrent": 2, "seed": 5},
    "pauseCook": {"id": "@cook"},
    "resumeCook": {"id": "@cook"},
    "cancelCook": {"id": "@cook"},
    "reviewPieces": {"decisions": [{"pieceId": "@piece", "outcome": "REJECTED"}]},
    "adminCancelCook": {"id": "@cook", "reason": "abuse"},
}


def bind(value: Any) -> Any:
    """Stand-ins replaced by the real ids."""
    if isinstance(value, str):
        return REAL.get(value, value)
    if isinstance(value, list):
        return [bind(v) for v in value]
    if isinstance(value, dict):
        return {k: bind(v) for k, v in value.items()}
    return value


CALLS = st.fixed_dictionaries(
    {
        name: st.tuples(st.sampled_from([OWNER, OWNER, STRANGER, ADMIN]), arguments_of(name))
        for name in MUTATIONS
    }
)


@pytest.fixture
async def fuzz_api(make_api: MakeApi) -> Api:
    api = await make_api(scheduler=False)
    mine = await api.create_collection(as_=OWNER)
    spare = await api.create_collection(as_=OWNER)
    theirs = await api.create_collection(as_=STRANGER)
    cook = await start_cook(api, mine["id"], count=2)
    done = await wait_for_cook(api, cook["id"], extra="pieces { id }")
    REAL.clear()
    REAL.update(
        {
            "@mine": mine["id"],
            "@spare": spare["id"],
            "@theirs": theirs["id"],
            "@cook": cook["id"],
            "@piece": done["pieces"][0]["id"],
        }
    )
    return api


async def snapshot(api: Api) -> dict[str, list[dict[str, Any]]]:
    await api.app.state.runtime.services.orchestrator.idle()
    db = api.app.state.runtime.client[api.settings.db_name]
    names = ("collections", "cooks", "pieces", "cook_events")
    return {name: [doc async for doc in db[name].find({}).sort("_id")] for name in names}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(calls=CALLS)
async def test_every_mutation_answers_data_or_a_typed_error_and_a_refusal_writes_nothing(
    fuzz_api: Api, calls: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    api = fuzz_api
    for name, (caller, drawn) in calls.items():
        arguments = bind(drawn)
        before = await snapshot(api)
        response = await api.client.post(
            "/graphql",
            json={"query": document(name, arguments), "variables": arguments},
            headers={"Authorization": f"Bearer {api.token_for(caller)}"},
        )
        assert response.status_code == 200, (name, arguments, response.text)
        body = response.json()
        errors = body.get("errors") or []
        codes = {e.get("extensions", {}).get("code") for e in errors}
        assert codes <= TYPED, (name, caller, arguments, errors)
        if errors:
            assert (body.get("data") or {}).get(name) is None, body
            assert await snapshot(api) == before, (name, caller, arguments, errors)
