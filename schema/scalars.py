"""The ``JSON`` scalar, held to the one JSON rule (``domain/json_values.py``) as a variable and
as a literal alike: given to the schema as an override of Strawberry's own, so every field typed
``strawberry.scalars.JSON`` gets it."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import (
    BooleanValueNode,
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)
from strawberry.types.scalar import ScalarDefinition

from domain.errors import BadUserInput
from domain.json_values import FIELD_LIMITS, Json, check

ECMA_404 = (
    "https://ecma-international.org/wp-content/uploads/ECMA-404_2nd_edition_december_2017.pdf"
)
DESCRIPTION = (
    f"A JSON value ([ECMA-404]({ECMA_404})): at most {FIELD_LIMITS.max_depth} levels, "
    f"{FIELD_LIMITS.max_bytes} bytes, {FIELD_LIMITS.max_keys} keys per object and "
    f"{FIELD_LIMITS.max_key_length} characters per key; finite numbers and valid Unicode only. "
    "Fields may bound it further."
)


def _refused(message: str) -> BadUserInput:
    return BadUserInput.at("JSON", message)


def parse_value(value: Any) -> Json:
    problem = check(value, FIELD_LIMITS)
    if problem is not None:
        raise _refused(problem)
    return value


def serialize(value: Any) -> Json:
    return value


def parse_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Json:
    """A GraphQL literal as JSON, built without recursion; enum-like names (``NaN``,
    ``Infinity``) are not JSON and are refused."""
    result: list[Json] = []
    # (node, the container its value goes into, its key there or None to append, depth);
    # children are pushed in reverse, so they are popped, and filled in, in order.
    stack: list[tuple[ValueNode, list[Json] | dict[str, Json], str | None, int]] = [
        (node, result, None, 0)
    ]
    while stack:
        item, into, key, depth = stack.pop()
        value: Json
        if isinstance(item, ObjectValueNode | ListValueNode):
            if depth >= FIELD_LIMITS.max_depth:
                raise _refused(f"nests deeper than {FIELD_LIMITS.max_depth} levels")
            if isinstance(item, ObjectValueNode):
                value = {}
                for field in reversed(item.fields):
                    stack.append((field.value, value, field.name.value, depth + 1))
            else:
                value = []
                stack.extend((e, value, None, depth + 1) for e in reversed(item.values))
        elif isinstance(item, VariableNode):
            value = (variables or {}).get(item.name.value)
        elif isinstance(item, StringValueNode | BooleanValueNode):
            value = item.value
        elif isinstance(item, IntValueNode):
            value = int(item.value)
        elif isinstance(item, FloatValueNode):
            value = float(item.value)
        elif isinstance(item, NullValueNode):
            value = None
        else:
            raise _refused(f"{getattr(item, 'value', item.kind)} is not a JSON value")
        if isinstance(into, dict):
            into[key or ""] = value
        else:
            into.append(value)
    return parse_value(result[0])


JSON_SCALAR: ScalarDefinition = strawberry.scalar(
    name="JSON",
    description=DESCRIPTION,
    specified_by_url=ECMA_404,
    serialize=serialize,
    parse_value=parse_value,
    parse_literal=parse_literal,
)
