"""GraphQL output types. Built from domain objects; no data access here."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import cast

import strawberry
from strawberry.scalars import JSON

from domain.principal import Principal
from orchestration.art import traits
from orchestration.base import tools as tool_domain
from orchestration.base.pagination import Page, encode_cursor
from orchestration.base.tools import ToolSpec
from orchestration.catalog import collections as domain
from schema.context import Info
from schema.layer_types import LayerSet
from schema.node import Node


@strawberry.enum(description="What kind of generator makes a collection's pieces.")
class GeneratorKind(Enum):
    TOOL = "tool"
    SPELL = "spell"


@strawberry.type(description="The tool or spell that generates a collection's pieces.")
class Generator:
    kind: GeneratorKind
    id: strawberry.ID


@strawberry.interface(description="One category of the trait tree; each piece draws one value.")
class TraitCategory:
    name: str


@strawberry.type(description="A trait of a manual category.")
class Trait:
    name: str
    value: str = strawberry.field(description="The text a `[[Category]]` placeholder becomes.")
    weight: float = strawberry.field(description="Relative weight; 0 means never chosen.")


@strawberry.type(description="A category whose value is one of its weighted traits.")
class ManualCategory(TraitCategory):
    traits: list[Trait]


@strawberry.type(description="A range of whole numbers `start, start+step, ..., <= end`.")
class NumericRange:
    start: int
    end: int
    step: int
    zero_pad: int = strawberry.field(description="Left-pad values with zeros to this width.")
    unique_across_cook: bool = strawberry.field(
        description="Never give the same value to two pieces of the collection."
    )
    shuffle_seed: int | None = strawberry.field(
        description="When set, values are taken in a fixed pseudo-random order (a permutation)."
    )
    size: int = strawberry.field(description="How many values the range holds.")


@strawberry.type(description="A category whose value is drawn from a numeric range.")
class GeneratedCategory(TraitCategory):
    range: NumericRange


def category_from_domain(c: traits.Category) -> TraitCategory:
    if isinstance(c, traits.ManualCategory):
        return ManualCategory(
            name=c.name,
            traits=[Trait(name=t.name, value=t.value, weight=t.weight) for t in c.traits],
        )
    r = c.range
    return GeneratedCategory(
        name=c.name,
        range=NumericRange(
            start=r.start,
            end=r.end,
            step=r.step,
            zero_pad=r.zero_pad,
            unique_across_cook=r.unique_across_cook,
            shuffle_seed=r.shuffle_seed,
            size=r.size,
        ),
    )


@strawberry.type(description="A trait that forbids others in another category.")
class Exclusion:
    category: str
    trait: str
    excluded_category: str
    excludes: list[str]


@strawberry.type(description="Optional rules for drawing pieces.")
class DrawRules:
    exclusions: list[Exclusion]
    unique_combinations: bool

    @classmethod
    def from_domain(cls, r: traits.DrawRules) -> DrawRules:
        return cls(
            exclusions=[
                Exclusion(
                    category=e.category,
                    trait=e.trait,
                    excluded_category=e.excluded_category,
                    excludes=list(e.excludes),
                )
                for e in r.exclusions
            ],
            unique_combinations=r.unique_combinations,
        )


async def _collection_layers(root: strawberry.Parent[Collection], info: Info) -> LayerSet | None:
    found = await info.context.services.layers.get(info.context.require_principal(), str(root.id))
    return None if found is None else LayerSet.from_domain(found)


@strawberry.type(description="An artist's generative collection. Visible to its owner and admins.")
class Collection(Node):
    id: strawberry.ID
    owner_id: strawberry.ID
    name: str
    description: str
    total_supply: int
    generator: Generator
    trait_tree: list[TraitCategory]
    template: JSON = strawberry.field(
        description="The parameter template: a JSON object whose strings may hold `[[Category]]`."
    )
    trait_tree_file: JSON = strawberry.field(
        description='The trait tree in the old system\'s file format `{"categories": [...]}`.'
    )
    rules: DrawRules
    archived: bool
    created_at: datetime
    updated_at: datetime
    version: int = strawberry.field(
        description="Increases with every change; pass it as `expectedVersion` to update safely."
    )
    layers: LayerSet | None = strawberry.field(
        resolver=_collection_layers,
        description="Its layer images, drawn by the `layers` tool; null if it has none.",
    )

    @classmethod
    def from_domain(cls, c: domain.Collection) -> Collection:
        s = c.spec
        return cls(
            id=strawberry.ID(c.id),
            owner_id=strawberry.ID(c.owner_id),
            name=s.name,
            description=s.description,
            total_supply=s.total_supply,
            generator=Generator(
                kind=GeneratorKind(s.generator.kind.value), id=strawberry.ID(s.generator.id)
            ),
            trait_tree=[category_from_domain(cat) for cat in s.trait_tree],
            template=cast(JSON, s.template),
            trait_tree_file=cast(JSON, traits.tree_to_legacy_file(s.trait_tree)),
            rules=DrawRules.from_domain(s.rules),
            archived=c.archived,
            created_at=c.created_at,
            updated_at=c.updated_at,
            version=c.version,
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class CollectionEdge:
    cursor: str
    node: Collection


@strawberry.type(description="A page of collections, newest first.")
class CollectionConnection:
    edges: list[CollectionEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[domain.Collection]) -> CollectionConnection:
        return cls(
            edges=[
                CollectionEdge(
                    cursor=encode_cursor(c.created_at, c.id), node=Collection.from_domain(c)
                )
                for c in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type(description="The caller, as the verified token says.")
class Viewer:
    id: strawberry.ID
    roles: list[str]
    is_admin: bool

    @classmethod
    def from_principal(cls, p: Principal) -> Viewer:
        return cls(id=strawberry.ID(p.subject), roles=sorted(p.roles), is_admin=p.is_admin)


InputType = strawberry.enum(tool_domain.InputType, name="ToolInputType")


@strawberry.type(description="An input a tool declares.")
class ToolInput:
    name: str
    type: InputType  # type: ignore[valid-type]
    required: bool
    description: str

    @classmethod
    def from_domain(cls, i: tool_domain.ToolInput) -> ToolInput:
        return cls(name=i.name, type=i.type, required=i.required, description=i.description)


@strawberry.type(description="A generator tool a collection can name.")
class Tool:
    id: strawberry.ID
    description: str
    kind: str = strawberry.field(
        description="`builtin`, or the provider protocol: `openai` (answers at once), "
        "`comfydeploy` (webhook, optionally polled) or `comfyui` (polled)."
    )
    inputs: list[ToolInput] = strawberry.field(
        description="Declared parameters; a template is checked against them when saved."
    )
    open_inputs: bool = strawberry.field(description="Whether other parameters are accepted.")

    @classmethod
    def from_domain(cls, t: ToolSpec) -> Tool:
        return cls(
            id=strawberry.ID(t.id),
            description=t.description,
            kind=t.kind,
            inputs=[ToolInput.from_domain(i) for i in t.inputs],
            open_inputs=t.open_inputs,
        )
