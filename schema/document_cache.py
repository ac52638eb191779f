"""Per-schema caches of what a request's document text determines: its parse, its validation
(for one kind of caller), its cost formula and its root fields.

A document is parsed, validated and walked for its cost once per distinct text (and kind of
caller), not once per request; only the cost's evaluation with the request's variables runs
each time. Every cache is a bounded LRU, so distinct texts cannot grow memory without limit.
Nothing here is state: a miss recomputes exactly what a hit returns.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from graphql import DocumentNode, GraphQLError, GraphQLSchema, OperationDefinitionNode

from schema.query_cost import CostFormula, cost_formula

DOCUMENTS = 256  # distinct texts kept per cache


@dataclass
class Lru[K, V]:
    """A bounded least-recently-used map."""

    size: int = DOCUMENTS
    _items: OrderedDict[K, V] = field(default_factory=OrderedDict)

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        found = self.get(key)
        if found is None:
            found = make()
            self.put(key, found)
        return found

    def __len__(self) -> int:
        return len(self._items)


type ValidationKey = tuple[str, str]  # the document's text, and the kind of caller


@dataclass
class DocumentCache:
    """One schema's caches; the guard extension reads and fills them."""

    parsed: Lru[str, DocumentNode] = field(default_factory=Lru)
    validated: Lru[ValidationKey, tuple[GraphQLError, ...]] = field(default_factory=Lru)
    formulas: Lru[int, tuple[DocumentNode, CostFormula]] = field(default_factory=Lru)
    roots: Lru[tuple[str, str | None], Counter[str]] = field(default_factory=Lru)

    def formula(
        self, schema: GraphQLSchema, document: DocumentNode, operation: OperationDefinitionNode
    ) -> CostFormula:
        """The operation's cost formula, walked once per document object (a cached parse gives
        every request with the same text the same object)."""
        key = id(operation)
        found = self.formulas.get(key)
        if found is not None and found[0] is document:
            return found[1]
        made = cost_formula(schema, document, operation)
        self.formulas.put(key, (document, made))  # the document keeps the id from reuse
        return made
