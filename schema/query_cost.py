"""Query limits, and a query's cost computed from list sizes before anything runs.

The cost model follows GitHub's and Shopify's: a field that returns an object costs one per
object it may return, scalars are free, and a list multiplies everything below it by how many
items it may hold. A field's size is its ``first`` argument (or that argument's default), else
its entry in ``LIST_SIZES``, else ``DEFAULT_LIST_SIZE`` for any other list (a connection's
``edges`` count once: its ``first`` is on the connection). So a new field with a ``first``
argument is costed without any change here; a new unbounded list needs a line in ``LIST_SIZES``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLCompositeType,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    ValueNode,
    VariableNode,
    get_introspection_query,
    get_named_type,
    get_nullable_type,
    is_abstract_type,
    is_composite_type,
    parse,
)
from graphql.pyutils import Undefined
from graphql.utilities import get_operation_ast
from graphql.validation import ValidationContext, ValidationRule

from domain.errors import CookError, ErrorCode
from orchestration.art.traits import MAX_CATEGORIES, MAX_TRAITS_PER_CATEGORY
from orchestration.base.pagination import MAX_PAGE
from orchestration.base.policy import MAX_ATTEMPTS
from orchestration.generators.providers import MAX_OUTPUTS
from orchestration.generators.spells import MAX_STEPS

DEFAULT_LIST_SIZE = MAX_PAGE

# ``Type.field`` -> the most items it returns: a number, or the argument that says how many (an
# integer, or a list whose length counts). Only for lists without a ``first`` argument.
LIST_SIZES: dict[str, int | str] = {
    "Query.tools": 20,
    "Query.nodes": "ids",
    "Query.previewPieces": "count",
    "Preview.pieces": 1,  # already counted by previewPieces' count
    "Mutation.reviewPieces": "decisions",
    "Collection.traitTree": MAX_CATEGORIES,
    "ManualCategory.traits": MAX_TRAITS_PER_CATEGORY,
    "Piece.traits": MAX_CATEGORIES,
    "PiecePreview.traits": MAX_CATEGORIES,
    "Query.previewLayers": "count",
    "LayerPreview.pieces": 1,  # already counted by previewLayers' count
    "LayerPreviewPiece.traits": MAX_CATEGORIES,
    "Mutation.setPiecesExcluded": "pieceIds",
    "Piece.outputs": MAX_OUTPUTS + 1,  # its images, and its text
    "Piece.attempts": MAX_ATTEMPTS,
    "Piece.casts": MAX_ATTEMPTS,
    "Cast.steps": MAX_STEPS,
    "Spell.steps": MAX_STEPS,
    "Tool.inputs": 50,
    "LayerSet.styles": MAX_CATEGORIES,
    "LayerSet.layers": MAX_CATEGORIES * MAX_TRAITS_PER_CATEGORY,
    "WebhookEndpoint.events": 5,
    "WebhookDelivery.attemptLog": 50,
}


INTROSPECTION_ROOTS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}


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


type FormulaOf = Callable[[GraphQLSchema, DocumentNode, OperationDefinitionNode], CostFormula]


def cost_rule(
    report: CostReport,
    variables: Mapping[str, Any] | None,
    formula_of: FormulaOf | None = None,
) -> type[ValidationRule]:
    """A validation rule that computes the operation's cost into ``report`` and refuses it
    above ``report.maximum``; ``formula_of`` may serve the document's formula from a cache."""
    find = formula_of or cost_formula

    class QueryCostRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            refusal = charge_cost(report, context.schema, context.document, variables, find)
            if refusal is not None:
                context.report_error(refusal)

    return QueryCostRule


def charge_cost(
    report: CostReport,
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    formula_of: FormulaOf,
) -> GraphQLError | None:
    """Fill in ``report``; the refusal when the operation costs more than allowed."""
    operation = get_operation_ast(document)
    if operation is None:  # several operations: cost the one chosen at execution
        return None
    report.requested = formula_of(schema, document, operation).evaluate(variables)
    if report.requested <= report.maximum:
        return None
    refusal = QueryTooCostly(
        f"the query costs {report.requested}; at most {report.maximum} is allowed "
        "(a list costs its `first`, or its largest size, times what it holds): "
        "ask for fewer items",
        cost=report.requested,
        maximumCost=report.maximum,
    )
    return GraphQLError(refusal.message, operation, original_error=refusal)


def shape_rule(limits: QueryLimits) -> type[ValidationRule]:
    """Depth and aliases, counting every field, introspection included. An introspection root
    field (``__schema``, ``__type``) may nest as deep as the standard introspection query that
    IDEs send (``INTROSPECTION_DEPTH``), if that is deeper than the limit; no deeper. Fragments
    are followed once each (memoised), an unknown or cyclic one counts nothing: graphql's own
    rules report those."""

    class QueryShapeRule(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            document = context.document
            aliases = count_aliases(document)
            if aliases > limits.max_aliases:
                context.report_error(
                    GraphQLError(f"{aliases} aliases found. Allowed: {limits.max_aliases}")
                )
            depth = _Depth(_fragments(document))
            for definition in document.definitions:
                if not isinstance(definition, OperationDefinitionNode):
                    continue
                name = definition.name.value if definition.name else "anonymous"
                for root in depth.root_fields(definition.selection_set):
                    allowed = limits.max_depth
                    if root.name.value in INTROSPECTION_ROOTS:
                        allowed = max(allowed, INTROSPECTION_DEPTH)
                    if depth.field(root) > allowed:
                        context.report_error(
                            GraphQLError(
                                f"'{name}' exceeds maximum operation depth of {allowed}", [root]
                            )
                        )
                        return

    return QueryShapeRule


def count_aliases(document: DocumentNode) -> int:
    """Aliases written in the document (each fragment's once)."""
    count = 0
    stack: list[SelectionSetNode] = [
        d.selection_set
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while stack:
        for node in stack.pop().selections:
            if isinstance(node, FieldNode) and node.alias is not None:
                count += 1
            selection_set = getattr(node, "selection_set", None)
            if selection_set is not None:
                stack.append(selection_set)
    return count


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


@dataclass
class _Depth:
    """How many field levels lie below a field (0 for a leaf)."""

    fragments: dict[str, FragmentDefinitionNode]

    def __post_init__(self) -> None:
        self._memo: dict[str, int] = {}
        self._open: set[str] = set()

    def root_fields(self, selection_set: SelectionSetNode) -> list[FieldNode]:
        found: list[FieldNode] = []
        stack, seen = [selection_set], set[str]()
        while stack:
            for node in stack.pop().selections:
                if isinstance(node, FieldNode):
                    found.append(node)
                elif isinstance(node, InlineFragmentNode):
                    stack.append(node.selection_set)
                elif isinstance(node, FragmentSpreadNode):
                    fragment = self.fragments.get(node.name.value)
                    if fragment is not None and node.name.value not in seen:
                        seen.add(node.name.value)
                        stack.append(fragment.selection_set)
        return found

    def field(self, node: FieldNode) -> int:
        if node.selection_set is None:
            return 0
        return 1 + self.selections(node.selection_set)

    def selections(self, selection_set: SelectionSetNode) -> int:
        deepest = 0
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                deepest = max(deepest, self.field(node))
            elif isinstance(node, InlineFragmentNode):
                deepest = max(deepest, self.selections(node.selection_set))
            elif isinstance(node, FragmentSpreadNode):
                deepest = max(deepest, self.fragment(node.name.value))
        return deepest

    def fragment(self, name: str) -> int:
        if name in self._memo:
            return self._memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self._open:
            return 0
        self._open.add(name)
        self._memo[name] = self.selections(fragment.selection_set)
        self._open.discard(name)
        return self._memo[name]


def _introspection_depth() -> int:
    document = parse(get_introspection_query())
    depth = _Depth(_fragments(document))
    operation = get_operation_ast(document)
    assert operation is not None
    return max(depth.field(root) for root in depth.root_fields(operation.selection_set))


INTROSPECTION_DEPTH = _introspection_depth()


def operation_cost(
    schema: GraphQLSchema,
    document: Any,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any] | None,
) -> int:
    return cost_formula(schema, document, operation).evaluate(variables)


@dataclass(frozen=True)
class _Variable:
    """A list size given by a variable: its value's size when sent, else ``absent``."""

    name: str
    absent: int
    fallback: int

    def size(self, variables: Mapping[str, Any]) -> int:
        if self.name in variables:
            return _size(variables[self.name], self.fallback)
        return self.absent


@dataclass(frozen=True)
class CostFormula:
    """A document's cost as a function of its variables, from one walk of the document: the
    sum, over its terms, of a constant times the sizes its variables give."""

    terms: Mapping[tuple[_Variable, ...], int]

    def evaluate(self, variables: Mapping[str, Any] | None) -> int:
        given = variables or {}
        total = 0
        for factors, constant in self.terms.items():
            for factor in factors:
                constant *= factor.size(given)
            total += constant
        return total


type _Multiplier = tuple[int, tuple[_Variable, ...]]


def cost_formula(
    schema: GraphQLSchema, document: Any, operation: OperationDefinitionNode
) -> CostFormula:
    """The operation's cost for any variables (walk the document once, evaluate per request)."""
    terms: dict[tuple[_Variable, ...], int] = {}
    root = schema.get_root_type(operation.operation)
    if root is not None:
        defaults = {
            d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
        }
        counter = _Counter(schema, _fragments(document), defaults, terms)
        counter.selection(operation.selection_set, root, (1, ()), frozenset())
    return CostFormula(terms)


@dataclass
class _Counter:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    defaults: Mapping[str, ValueNode | None]
    terms: dict[tuple[_Variable, ...], int]

    def selection(
        self,
        selection_set: SelectionSetNode | None,
        parent: GraphQLNamedType,
        multiplier: _Multiplier,
        seen: frozenset[str],
        chain: int = 0,
    ) -> None:
        if selection_set is None:
            return
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                self.field(node, parent, multiplier, seen, chain)
            elif isinstance(node, InlineFragmentNode):
                condition = node.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                self.selection(node.selection_set, target or parent, multiplier, seen, chain)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:  # other rules report these
                    continue
                target = self.schema.get_type(fragment.type_condition.name.value)
                self.selection(
                    fragment.selection_set, target or parent, multiplier, seen | {name}, chain
                )

    def field(
        self,
        node: FieldNode,
        parent: GraphQLNamedType,
        multiplier: _Multiplier,
        seen: frozenset[str],
        chain: int = 0,
    ) -> None:
        name = node.name.value
        # A type reference wraps at most ``__Type.ofType`` levels: deeper, ofType is null.
        chain = chain + 1 if (parent.name, name) == ("__Type", "ofType") else 0
        if chain > introspection_sizes(self.schema)["wrapping"]:
            return
        if not isinstance(parent, GraphQLObjectType):
            return  # a field another rule reports
        definition = INTROSPECTION_ROOTS.get(name) or parent.fields.get(name)
        if definition is None:
            return  # __typename, or a field another rule reports
        named = get_named_type(definition.type)
        if not is_composite_type(named):
            return
        assert isinstance(named, GraphQLCompositeType)
        constant, factors = multiplier
        size = self.size(node, parent, definition)
        own = (constant * size, factors) if isinstance(size, int) else (constant, (*factors, size))
        if own[0] == 0:
            return  # nothing below is ever asked for
        self.terms[own[1]] = self.terms.get(own[1], 0) + own[0]
        self.selection(node.selection_set, named, own, seen, chain)

    def size(
        self, node: FieldNode, parent: GraphQLObjectType, definition: GraphQLField
    ) -> int | _Variable:
        name = node.name.value
        if "first" in definition.args:
            return self.argument(node, definition, "first", DEFAULT_LIST_SIZE)
        key = f"{parent.name}.{name}"
        hint = introspection_sizes(self.schema).get(key) or LIST_SIZES.get(key)
        if isinstance(hint, int):
            return hint
        if isinstance(hint, str):
            return self.argument(node, definition, hint, DEFAULT_LIST_SIZE)
        if isinstance(get_nullable_type(definition.type), GraphQLList):
            in_connection = name == "edges" and parent.name.endswith("Connection")
            return 1 if in_connection else DEFAULT_LIST_SIZE
        return 1

    def argument(
        self, node: FieldNode, definition: GraphQLField, arg: str, fallback: int
    ) -> int | _Variable:
        """The argument's size as sent (a variable, a literal, or the default), at least 0: a
        number, or the variable whose value gives it."""
        given = next((a.value for a in node.arguments or () if a.name.value == arg), None)
        if isinstance(given, VariableNode):
            variable = given.name.value
            absent = self._constant(self.defaults.get(variable), definition, arg, fallback)
            return _Variable(variable, absent, fallback)
        return self._constant(given, definition, arg, fallback)

    @staticmethod
    def _constant(
        given: ValueNode | None, definition: GraphQLField, arg: str, fallback: int
    ) -> int:
        value: Any = Undefined
        if given is not None and not isinstance(given, VariableNode):
            value = _literal(given)
        if value is Undefined and given is None and arg in definition.args:
            value = definition.args[arg].default_value
        return _size(value, fallback)


def _size(value: Any, fallback: int) -> int:
    if isinstance(value, bool):
        return fallback
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, list):
        return len(value)
    return fallback


_SIZES: WeakKeyDictionary[GraphQLSchema, dict[str, int]] = WeakKeyDictionary()


def introspection_sizes(schema: GraphQLSchema) -> dict[str, int]:
    """The longest each introspection list can be in this schema (computed once per schema)."""
    known = _SIZES.get(schema)
    if known is not None:
        return known
    types = list(schema.type_map.values())

    def longest(attribute: str) -> int:
        return max((len(getattr(t, attribute, None) or ()) for t in types), default=0)

    field_args = max(
        (
            len(f.args)
            for t in types
            for f in (getattr(t, "fields", None) or {}).values()
            if hasattr(f, "args")
        ),
        default=0,
    )
    sizes = {
        "__Schema.types": len(types),
        "__Schema.directives": len(schema.directives),
        "__Type.fields": longest("fields"),
        "__Type.inputFields": longest("fields"),
        "__Type.enumValues": longest("values"),
        "__Type.interfaces": longest("interfaces"),
        "__Type.possibleTypes": max(
            (len(schema.get_possible_types(t)) for t in types if is_abstract_type(t)), default=0
        ),
        "__Field.args": field_args,
        "__Directive.args": max((len(d.args) for d in schema.directives), default=0),
        "wrapping": max(map(_wrapping, _references(schema)), default=0),
    }
    _SIZES[schema] = sizes = {k: max(v, 1) for k, v in sizes.items()}
    return sizes


def _references(schema: GraphQLSchema) -> Iterator[GraphQLType]:
    for named in schema.type_map.values():
        for f in (getattr(named, "fields", None) or {}).values():
            yield f.type
            yield from (a.type for a in getattr(f, "args", {}).values())


def _wrapping(kind: GraphQLType) -> int:
    depth = 0
    while isinstance(kind, GraphQLList | GraphQLNonNull):
        kind, depth = kind.of_type, depth + 1
    return depth


def _literal(node: ValueNode) -> Any:
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, ListValueNode):
        return list(node.values)
    return Undefined
