"""The per-operation guards: query limits, admin-only introspection, per-operation rate limits.

Everything here runs inside the schema (extensions and validation rules), reading the caller
from the context, so it applies the same to an operation over HTTP and over the WebSocket.
Extensions are given to the schema as classes or factories: each operation gets its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionSetNode,
)
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.utilities import get_operation_ast
from graphql.validation import NoSchemaIntrospectionCustomRule, ValidationRule
from strawberry.extensions import MaxTokensLimiter, SchemaExtension
from strawberry.types.graphql import OperationType

from domain.errors import CookError, Forbidden, RateLimited, Unauthenticated
from schema.query_cost import CostReport, QueryLimits, cost_rule, shape_rule
from schema.rate_limits import OperationLimiter, caller_key

type ExtensionFactory = Callable[[], SchemaExtension]


def guard_extensions(
    limits: QueryLimits, limiter: OperationLimiter | None
) -> list[ExtensionFactory]:
    """The schema's limiter extensions, as factories (a fresh instance per operation)."""
    return [
        partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        partial(OperationGuard, limits=limits, limiter=limiter),
    ]


class OperationGuard(SchemaExtension):
    """Adds the cost and introspection rules to validation, reports the cost in the response's
    ``extensions.cost``, and charges the operation's root fields against their rate limits
    before anything executes."""

    def __init__(self, *, limits: QueryLimits, limiter: OperationLimiter | None) -> None:
        self.limits = limits
        self.report = CostReport(maximum=limits.max_cost)
        self.limiter = limiter

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        rules: list[type[ValidationRule]] = [
            shape_rule(self.limits),
            cost_rule(self.report, ctx.variables),
        ]
        principal = getattr(ctx.context, "principal", None)
        if principal is None or not principal.is_admin:
            rules.append(_introspection_refused(_refusal(ctx.context)))
        ctx.validation_rules = (*ctx.validation_rules, *rules)
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        principal = getattr(ctx.context, "principal", None)
        # Authentication is decided first: every limited field is for signed-in callers only,
        # so an anonymous or invalid-token operation is refused UNAUTHENTICATED by its fields
        # and never spends a budget (its address's, or anyone else's).
        if principal and self.limiter is not None and ctx.graphql_document is not None:
            who = caller_key(principal.subject, getattr(ctx.context, "client_address", None))
            try:
                await self.limiter.charge(
                    who, root_fields(ctx.graphql_document, ctx.operation_name)
                )
            except RateLimited as exc:
                refused = GraphQLError(exc.message, original_error=exc)
                if ctx.operation_type is OperationType.SUBSCRIPTION:
                    raise refused from exc  # a subscription is refused by raising here
                # Setting the result skips execution: no resolver runs.
                ctx.result = GraphQLExecutionResult(data=None, errors=[refused])
        yield

    def get_results(self) -> dict[str, Any]:
        if self.report.requested is None:
            return {}
        return {"cost": self.report.as_extension()}


def root_fields(document: DocumentNode, operation_name: str | None) -> Counter[str]:
    """How many times each root field occurs in the operation (aliases and fragments count)."""
    operation = get_operation_ast(document, operation_name)
    found: Counter[str] = Counter()
    if operation is None:
        return found
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }

    def walk(selection_set: SelectionSetNode, seen: frozenset[str]) -> None:
        for node in selection_set.selections:
            if isinstance(node, FieldNode):
                found[node.name.value] += 1
            elif isinstance(node, InlineFragmentNode):
                walk(node.selection_set, seen)
            elif isinstance(node, FragmentSpreadNode):
                fragment = fragments.get(node.name.value)
                if fragment is not None and node.name.value not in seen:
                    walk(fragment.selection_set, seen | {node.name.value})

    walk(operation.selection_set, frozenset())
    return found


def _refusal(context: Any) -> CookError:
    if getattr(context, "principal", None) is None:
        auth_error = getattr(context, "auth_error", None)
        return auth_error or Unauthenticated("sign in: introspection is for admins only")
    return Forbidden("introspection is for admins only")


def _introspection_refused(refusal: CookError) -> type[ValidationRule]:
    class IntrospectionForAdmins(NoSchemaIntrospectionCustomRule):
        """graphql-core's rule, refusing with our typed error instead of a bare message."""

        reported = False

        def report_error(self, error: GraphQLError) -> None:
            if not self.reported:  # one refusal per document, not one per introspected field
                self.reported = True
                refused = GraphQLError(refusal.message, error.nodes, original_error=refusal)
                super().report_error(refused)

    return IntrospectionForAdmins
