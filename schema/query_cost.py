"""Query limits, and a query's cost computed from list sizes before anything runs.

The cost model follows GitHub's and Shopify's: a field that returns an object costs one per
object it may return, scalars are free, and a list multiplies everything below it by how many
items it may hold. A field's size is its ``first`` argument (or that argument's default), else
its entry in ``LIST_SIZES``, else ``DEFAULT_LIST_SIZE`` for any other list (a connection's
``edges`` count once: its ``first`` is on the connection). So a new field with a ``first``
argument is costed without any change here; a new unbounded list needs a line in ``LIST_SIZES``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLCompositeType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValueNode,
    VariableNode,
    get_named_type,
    get_nullable_type,
    is_composite_type,
)
from graphql.pyutils import Undefined
from graphql.utilities import get_operation_ast
from graphql.validation import ValidationContext, ValidationRule

from domain.errors import CookError, ErrorCode
from orchestration.pagination import MAX_PAGE
from orchestration.policy import MAX_ATTEMPTS
from orchestration.providers import MAX_OUTPUTS
from orchestration.spells import MAX_STEPS
from orchestration.traits import MAX_CATEGORIES, MAX_TRAITS_PER_CATEGORY

DEFAULT_LIST_SIZE = MAX_PAGE

# ``Type.field`` -> the most items it returns: a number, or the argument that says how many (an
# integer, or a list whose length counts). Only for lists without a ``first`` argument.
LIST_SIZES: dict[str, int | str] = {
    "Query.tools": 20,
    "Query.previewPieces": "count",
    "Preview.pieces": 1,  # already counted by previewPieces' count
    "Mutation.reviewPieces": "decisions",
    "Collection.traitTree": MAX_CATEGORIES,
    "ManualCategory.traits": MAX_TRAITS_PER_CATEGORY,
    "Piece.traits": MAX_CATEGORIES,
    "PiecePreview.traits": MAX_CATEGORIES,
    "Mutation.setPiecesExcluded": "pieceIds",
    "Piece.outputs": MAX_OUTPUTS + 1,  # its images, and its text
    "Piece.attempts": MAX_ATTEMPTS,
    "Piece.casts": MAX_ATTEMPTS,
    "Cast.steps": MAX_STEPS,
    "Spell.steps": MAX_STEPS,
    "Tool.inputs": 50,
    "LayerSet.styles": MAX_CATEGORIES,
    "LayerSet.layers": MAX_CATEGORIES * MAX_TRAITS_PER_CATEGORY,
}


@dataclass(frozen=True)
class QueryLimits:
    """Per-document ceilings, checked while validating, so a refused query never runs."""

    max_depth: int = 10
    max_aliases: int = 15
    max_tokens: int = 5000
    max_cost: int = 100_000


class QueryTooCostly(CookError):
    code = ErrorCode.BAD_USER_INPUT


@dataclass
class CostReport:
    """Filled in by the cost rule; reported in the response's ``extensions.cost``."""

    maximum: int
    requested: int | None = None

    def as_extension(self) -> dict[str, Any]:
        return {"requestedQueryCost": self.requested, "maximumAvailable": self.maximum}


def cost_rule(report: CostReport, variables: Mapping[str, Any] | None) -> type[ValidationRule]:
    """A validation rule that computes the operation's cost into ``report`` and refuses it
    above ``report.maximum``."""

    class QueryCostRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            operation = get_operation_ast(context.document)
            if operation is None:  # several operations: cost the one chosen at execution
                return
            report.requested = operation_cost(
                context.schema, context.document, operation, variables
            )
            if report.requested > report.maximum:
                refusal = QueryTooCostly(
                    f"the query costs {report.requested}; at most {report.maximum} is allowed "
                    "(a list costs its `first`, or its largest size, times what it holds): "
                    "ask for fewer items",
                    cost=report.requested,
                    maximumCost=report.maximum,
                )
                context.report_error(
                    GraphQLError(refusal.message, operation, original_error=refusal)
                )

    return QueryCostRule


def operation_cost(
    schema: GraphQLSchema,
    document: Any,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> int:
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 0
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    defaults = {
        d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
    }
    counter = _Counter(schema, fragments, dict(variables or {}), defaults)
    return counter.selection(operation.selection_set, root, 1, frozenset())


@dataclass
class _Counter:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    defaults: Mapping[str, ValueNode | None]

    def selection(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType,
        multiplier: int,
        seen: frozenset[str],
    ) -> int:
        if selection_set is None:
            return 0
        total = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                total += self.field(node, parent, multiplier, seen)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection(node.selection_set, target or parent, multiplier, seen)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # other rules report these
                    continue
                target = self.schema.get_type(fragment.type_condition.name.value)
                total += self.selection(
                    fragment.selection_set, target or parent, multiplier, seen | {name}
                )
        return total

    def field(
        self, node: FieldNode, parent: GraphQLNamedType, multiplier: int, seen: frozenset[str]
    ) -> int:
        name = node.name.value
        if name.startswith("__") or not isinstance(parent, GraphQLObjectType):
            return 0  # introspection (admins only), or a field another rule reports
        definition = parent.fields.get(name)
        if definition is None:
            return 0
        named = get_named_type(definition.type)
        if not is_composite_type(named):
            return 0
        assert isinstance(named, GraphQLCompositeType)
        own = multiplier * self.size(node, parent, definition)
        return own + self.selection(node.selection_set, named, own, seen)

    def size(self, node: FieldNode, parent: GraphQLObjectType, definition: GraphQLField) -> int:
        name = node.name.value
        if "first" in definition.args:
            return self.argument(node, definition, "first", DEFAULT_LIST_SIZE)
        hint = LIST_SIZES.get(f"{parent.name}.{name}")
        if isinstance(hint, int):
            return hint
        if isinstance(hint, str):
            return self.argument(node, definition, hint, DEFAULT_LIST_SIZE)
        if isinstance(get_nullable_type(definition.type), GraphQLList):
            in_connection = name == "edges" and parent.name.endswith("Connection")
            return 1 if in_connection else DEFAULT_LIST_SIZE
        return 1

    def argument(self, node: FieldNode, definition: GraphQLField, arg: str, fallback: int) -> int:
        """The argument's size as sent (a variable, a literal, or the default), at least 0."""
        given = next((a.value for a in node.arguments or () if a.name.value == arg), None)
        value: Any = Undefined
        if isinstance(given, VariableNode):
            variable = given.name.value
            if variable in self.variables:
                value = self.variables[variable]
            else:
                given = self.defaults.get(variable)
        if value is Undefined and given is not None and not isinstance(given, VariableNode):
            value = _literal(given)
        if value is Undefined and given is None and arg in definition.args:
            value = definition.args[arg].default_value
        if isinstance(value, bool):
            return fallback
        if isinstance(value, int):
            return max(value, 0)
        if isinstance(value, list):
            return len(value)
        return fallback


def _literal(node: ValueNode) -> Any:
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, ListValueNode):
        return list(node.values)
    return Undefined
