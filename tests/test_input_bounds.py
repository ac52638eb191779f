"""Every mutation input states its bounds: a test walks the schema, so a new input field of a
type that can grow (text, numbers, lists, JSON, ids) fails it until its description says how
far it may go."""

from __future__ import annotations

import re

from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    build_schema,
)

from schema.schema import schema

# A bound is a number in the description: a length, a range, a size, a count, an id's shape.
BOUND = re.compile(r"\d")
FREE = {"Boolean"}  # cannot grow


def unbounded(sdl: GraphQLSchema) -> list[str]:
    assert sdl.mutation_type is not None
    missing: list[str] = []
    seen: set[str] = set()

    def check(where: str, item: GraphQLArgument | GraphQLInputField) -> None:
        kind = item.type.of_type if isinstance(item.type, GraphQLNonNull) else item.type
        grows = isinstance(kind, GraphQLList) or (
            isinstance(kind, GraphQLScalarType) and kind.name not in FREE
        )
        if grows and not BOUND.search(item.description or ""):
            missing.append(where)
        while isinstance(kind, GraphQLList | GraphQLNonNull):
            kind = kind.of_type
        if isinstance(kind, GraphQLInputObjectType) and kind.name not in seen:
            seen.add(kind.name)
            for name, field in kind.fields.items():
                check(f"{kind.name}.{name}", field)
        assert isinstance(kind, GraphQLScalarType | GraphQLEnumType | GraphQLInputObjectType)

    for field_name, field in sdl.mutation_type.fields.items():
        for arg_name, arg in field.args.items():
            check(f"Mutation.{field_name}({arg_name})", arg)
    return missing


def test_every_mutation_input_states_its_bounds_in_its_description() -> None:
    assert unbounded(build_schema(schema.as_str())) == []


def test_the_bounds_check_notices_an_unbounded_input() -> None:
    sdl = build_schema(
        """type Query { a: Int }
        input I { "1 to 5." ok: Int!, "Anything." text: String, flag: Boolean }
        type Mutation { m(i: I!, "Names." names: [String!]!): Int }"""
    )
    assert sorted(unbounded(sdl)) == ["I.text", "Mutation.m(names)"]
