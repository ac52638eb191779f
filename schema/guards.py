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
from schema.document_cache import DocumentCache
from schema.query_cost import (
    CostReport,
    QueryLimits,
    QueryTooCostly,
    charge_cost,
    cost_rule,
    shape_rule,
)
from schema.rate_limits import OperationLimiter, caller_key

type ExtensionFactory = Callable[[], SchemaExtension]


def guard_extensions(limits: QueryLimits) -> list[ExtensionFactory]:
    """The schema's limiter extensions, as factories (a fresh instance per operation, sharing
    the schema's ``DocumentCache``). The operation limits are charged to the limiter the
    request's context carries (its app's), so that one schema serves every app."""
    documents = DocumentCache()
    return [
        partial(MaxTokensLimiter, max_token_count=limits.max_tokens),
        partial(OperationGuard, limits=limits, documents=documents),
    ]


class OperationGuard(SchemaExtension):
    """Adds the cost and introspection rules to validation, reports the cost in the response's
    ``extensions.cost``, and charges the operation's root fields against their rate limits
    before anything executes.

    A document's parse and its validation for a kind of caller (admin, or the refusal a
    non-admin's introspection gets) are cached by its text; its cost is walked once into a
    formula and evaluated with each request's variables (``schema/document_cache.py``)."""

    def __init__(
        self,
        *,
        limits: QueryLimits,
        documents: DocumentCache | None = None,
    ) -> None:
        self.limits = limits
        self.report = CostReport(maximum=limits.max_cost)
        self.documents = documents or DocumentCache()
        self._caller = ""

    def on_operation(self) -> Iterator[None]:
        ctx = self.execution_context
        rules: list[type[ValidationRule]] = [
            shape_rule(self.limits),
            cost_rule(self.report, ctx.variables, self.documents.formula),
        ]
        principal = getattr(ctx.context, "principal", None)
        if principal is None or not principal.is_admin:
            refusal = _refusal(ctx.context)
            rules.append(_introspection_refused(refusal))
            self._caller = f"{type(refusal).__name__}:{refusal.message}"
        else:
            self._caller = "admin"
        ctx.validation_rules = (*ctx.validation_rules, *rules)
        yield

    def on_parse(self) -> Iterator[None]:
        ctx = self.execution_context
        text = ctx.query
        if text is not None and ctx.graphql_document is None:
            ctx.graphql_document = self.documents.parsed.get(text)
        yield
        if text is not None and ctx.graphql_document is not None:
            self.documents.parsed.put(text, ctx.graphql_document)

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        text, document = ctx.query, ctx.graphql_document
        if text is None or document is None or ctx.pre_execution_errors is not None:
            yield  # nothing to cache by (or validated already): validate as given
            return
        key = (text, self._caller)
        known = self.documents.validated.get(key)
        if known is not None:
            # Validated before for this kind of caller: only the cost depends on the request.
            refusal = charge_cost(
                self.report, ctx.schema._schema, document, ctx.variables, self.documents.formula
            )
            ctx.pre_execution_errors = [*known, *([refusal] if refusal else [])]
            yield
            return
        yield
        errors: list[GraphQLError] = ctx.pre_execution_errors or []
        costly = [e for e in errors if isinstance(e.original_error, QueryTooCostly)]
        self.documents.validated.put(key, tuple(e for e in errors if e not in costly))

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        principal = getattr(ctx.context, "principal", None)
        limiter: OperationLimiter | None = getattr(ctx.context, "limiter", None)
        # Authentication is decided first: every limited field is for signed-in callers only,
        # so an anonymous or invalid-token operation is refused UNAUTHENTICATED by its fields
        # and never spends a budget (its address's, or anyone else's).
        if principal and limiter is not None and ctx.graphql_document is not None:
            who = caller_key(principal.subject, getattr(ctx.context, "client_address", None))
            try:
                document, name = ctx.graphql_document, ctx.operation_name
                if ctx.query is None:  # no text to cache it by
                    roots = root_fields(document, name)
                else:
                    roots = self.documents.roots.get_or_make(
                        (ctx.query, name), lambda: root_fields(document, name)
                    )
                await limiter.charge(who, roots)
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
