"""Plain scalar fields resolved without a resolve-info object.

graphql-core executes every field the same way: it builds a ``GraphQLResolveInfo`` (sixteen
values; Strawberry's own subclass), looks for arguments, calls the field's resolver, checks for
an awaitable and completes the value. For a field Strawberry marks as *basic* (no resolver, no
permission or field extension: its resolver, tagged ``_is_default``, reads the attribute and
ignores the info) whose type is a scalar or an enum, all of that reduces to reading the
attribute and serializing it. A gallery page of 50 pieces has about a thousand such fields;
reading them directly took the API's CPU per page from about 8.5 to 7.5 ms (interleaved pairs
of ``python -m bench.user_path --gallery --quick``).

``PlainFieldExecutor.execute_field`` does exactly that for those fields, when no schema
extension resolves fields (graphql-core's middleware: with one, every field goes through it as
before) or every one that does is a ``RootFieldsOnly`` (its ``resolve`` hands any field below
the root straight to the next, as the tracing extension's does), the field has no arguments,
and the value is neither an error nor an awaitable (a null is returned as null for a nullable
field); whether a field of a type is such a field is decided once per operation. Anything
else, including a value that does not serialize, goes to graphql-core's own ``execute_field``,
which resolves the field again (reading an attribute twice changes nothing) and reports its
error with the field's path as before. ``tests/test_plain_fields.py`` compares results and
errors with and without it.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLObjectType, is_leaf_type, is_non_null_type
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

PLAIN_VALUES = frozenset({str, int, float, bool})  # never null, an error or an awaitable


class RootFieldsOnly:
    """Marks a schema extension whose ``resolve`` passes every field below the root, as is,
    to the next resolver."""


class PlainFieldExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with basic scalar fields read and serialized directly."""

    _cook_nested_plain: bool | None = None  # whether the middleware leaves nested fields alone
    _cook_fields: dict[tuple[str, str, bool], tuple[Any, Any, bool] | None] | None = None

    def _cook_plain(self, resolve: Any, root: bool) -> bool:
        """Whether graphql-core's middleware would call ``resolve`` alone (for a field of the
        root type, if ``root``)."""
        manager = self.middleware_manager
        if manager is None or manager.get_field_resolver(resolve) is resolve:
            return True
        if self._cook_nested_plain is None:
            self._cook_nested_plain = all(
                isinstance(m, RootFieldsOnly) for m in manager.middlewares
            )
        return self._cook_nested_plain and not root

    def _cook_plain_field(
        self, parent_type: GraphQLObjectType, name: str, root: bool
    ) -> tuple[Any, Any, bool] | None:
        """``(resolver, scalar or enum type, nullable)`` of a basic scalar field read directly,
        or None."""
        field_def = parent_type.fields.get(name)  # introspection fields: not here
        if field_def is None:
            return None
        resolve = field_def.resolve
        if not getattr(resolve, "_is_default", False) or not self._cook_plain(resolve, root):
            return None
        leaf = field_def.type
        nullable = not is_non_null_type(leaf)
        if not nullable:
            leaf = leaf.of_type
        return (resolve, leaf, nullable) if is_leaf_type(leaf) else None

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        node = field_details_list[0].node
        if not node.arguments:
            known = self._cook_fields
            if known is None:
                known = self._cook_fields = {}
            key = (parent_type.name, node.name.value, path.prev is None)
            try:
                plain = known[key]
            except KeyError:
                plain = known[key] = self._cook_plain_field(parent_type, key[1], key[2])
            if plain is not None:
                resolve, leaf, nullable = plain
                try:
                    value = resolve(source, None)
                    if value is None or value is Undefined:
                        if nullable:
                            return None  # as graphql-core completes it; a non-null one errs
                    elif type(value) in PLAIN_VALUES or not (
                        isinstance(value, Exception) or self.is_awaitable(value)
                    ):
                        return self.complete_leaf_value(leaf, value)
                except Exception:  # noqa: BLE001, S110 - graphql-core's path reports it
                    pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )
