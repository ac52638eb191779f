"""GraphQL input types, each bound stated in its description, and their domain form."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from domain.errors import BadUserInput
from orchestration.art import traits as t
from orchestration.art.template import MAX_TEMPLATE_BYTES, MAX_TEMPLATE_DEPTH
from orchestration.catalog import collections as domain
from orchestration.catalog.collections import MAX_COLLECTION_NAME, MAX_DESCRIPTION, MAX_TOTAL_SUPPLY

NAME_RULE = (
    f"1-{t.MAX_NAME_LENGTH} characters, unique among its siblings, without '[' or ']' "
    "or surrounding white space."
)


@strawberry.input(one_of=True, description="Exactly one of a tool id or a spell id.")
class GeneratorInput:
    tool_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET,
        description="The id of one of `tools` (1-50 characters).",
    )
    spell_id: strawberry.ID | None = strawberry.field(
        default=strawberry.UNSET, description="A spell id (`spl_` and 32 hex digits)."
    )

    def to_domain(self) -> domain.Generator:
        if self.tool_id:
            return domain.Generator(domain.GeneratorKind.TOOL, str(self.tool_id))
        return domain.Generator(domain.GeneratorKind.SPELL, str(self.spell_id or ""))


@strawberry.input(description="A weighted trait.")
class TraitInput:
    name: str = strawberry.field(description=f"The trait's name: {NAME_RULE}")
    value: str | None = strawberry.field(
        default=None,
        description=f"What `[[Category]]` becomes; at most {t.MAX_VALUE_LENGTH} characters. "
        "Defaults to the name.",
    )
    weight: float = strawberry.field(
        default=1.0,
        description=f"Relative weight from 0 to {t.MAX_WEIGHT:g}; 0 means never chosen. "
        "A category needs at least one positive weight.",
    )

    def to_domain(self) -> t.Trait:
        return t.Trait(self.name, self.name if self.value is None else self.value, self.weight)


@strawberry.input(description="A category whose value is one of its weighted traits.")
class ManualCategoryInput:
    name: str = strawberry.field(description=f"The category's name: {NAME_RULE}")
    traits: list[TraitInput] = strawberry.field(
        description=f"1 to {t.MAX_TRAITS_PER_CATEGORY} traits."
    )


@strawberry.input(description="A range of whole numbers.")
class NumericRangeInput:
    start: int = strawberry.field(description="First value (a 32-bit integer).")
    end: int = strawberry.field(description="Last value, at least `start` (a 32-bit integer).")
    step: int = strawberry.field(default=1, description="At least 1.")
    zero_pad: int = strawberry.field(default=0, description=f"Pad width, 0 to {t.MAX_ZERO_PAD}.")
    unique_across_cook: bool = strawberry.field(
        default=False, description="Never give the same value to two pieces of the collection."
    )
    shuffle_seed: int | None = strawberry.field(
        default=None, description="Take values in a fixed permuted order; 0 to 2147483647."
    )


@strawberry.input(description="A category whose value is drawn from a numeric range.")
class GeneratedCategoryInput:
    name: str = strawberry.field(description=f"The category's name: {NAME_RULE}")
    range: NumericRangeInput


@strawberry.input(one_of=True, description="A trait category: exactly one of manual or generated.")
class TraitCategoryInput:
    manual: ManualCategoryInput | None = strawberry.UNSET
    generated: GeneratedCategoryInput | None = strawberry.UNSET

    def to_domain(self) -> t.Category:
        if self.manual:
            return t.ManualCategory(
                self.manual.name, tuple(trait.to_domain() for trait in self.manual.traits)
            )
        assert self.generated, "oneOf guarantees one member"
        r = self.generated.range
        return t.GeneratedCategory(
            self.generated.name,
            t.NumericRange(
                r.start, r.end, r.step, r.zero_pad, r.unique_across_cook, r.shuffle_seed
            ),
        )


@strawberry.input(
    description="A piece with `trait` in `category` never has any of `excludes` in "
    "`excludedCategory`, whichever category is drawn first. Both categories must be manual."
)
class ExclusionInput:
    category: str = strawberry.field(
        description=f"A manual category of the tree (1-{t.MAX_NAME_LENGTH} characters)."
    )
    trait: str = strawberry.field(
        description=f"One of `category`'s traits (1-{t.MAX_NAME_LENGTH} characters)."
    )
    excluded_category: str = strawberry.field(
        description=f"Another manual category (1-{t.MAX_NAME_LENGTH} characters)."
    )
    excludes: list[str] = strawberry.field(
        description=f"1 to {t.MAX_TRAITS_PER_CATEGORY} of `excludedCategory`'s trait names."
    )

    def to_domain(self) -> t.Exclusion:
        return t.Exclusion(self.category, self.trait, self.excluded_category, tuple(self.excludes))


@strawberry.input(description="Optional rules for drawing pieces.")
class DrawRulesInput:
    exclusions: list[ExclusionInput] = strawberry.field(
        default_factory=list, description=f"At most {t.MAX_EXCLUSIONS} rules."
    )
    unique_combinations: bool = strawberry.field(
        default=False,
        description="No two live pieces of the collection share all their traits; a cook "
        "that would need more combinations than remain is refused at start.",
    )

    def to_domain(self) -> t.DrawRules:
        return t.DrawRules(tuple(e.to_domain() for e in self.exclusions), self.unique_combinations)


TREE_RULE = f"At most {t.MAX_CATEGORIES} categories, in the order pieces draw them."
TEMPLATE_RULE = (
    f"A JSON object of at most {MAX_TEMPLATE_BYTES} bytes and {MAX_TEMPLATE_DEPTH} levels; "
    "its strings may hold `[[Category]]` placeholders, each naming a category of the tree."
)


@strawberry.input(description="A new collection.")
class CreateCollectionInput:
    name: str = strawberry.field(description=f"1-{MAX_COLLECTION_NAME} characters, not blank.")
    total_supply: int = strawberry.field(description=f"1 to {MAX_TOTAL_SUPPLY} pieces.")
    generator: GeneratorInput
    description: str = strawberry.field(
        default="", description=f"At most {MAX_DESCRIPTION} characters."
    )
    trait_tree: list[TraitCategoryInput] = strawberry.field(
        default_factory=list, description=TREE_RULE
    )
    trait_tree_file: JSON | None = strawberry.field(
        default=None,
        description='Instead of `traitTree`: the old system\'s trait tree file `{"categories": '
        "[...]}`, read as `importTraitTree` reads it, within the same bounds: at most "
        f"{t.MAX_CATEGORIES} categories of 1 to {t.MAX_TRAITS_PER_CATEGORY} traits.",
    )
    # Optional rather than defaulting to {}: GraphQL cannot introspect an object default of a
    # custom scalar (graphql-core's ast_from_value refuses it), which broke GraphiQL's schema.
    template: JSON | None = strawberry.field(
        default=None, description=TEMPLATE_RULE + " Empty when omitted."
    )
    rules: DrawRulesInput | None = strawberry.field(
        default=None, description="Exclusions and unique combinations; none by default."
    )

    def to_domain(self) -> domain.CollectionSpec:
        return domain.CollectionSpec(
            name=self.name,
            description=self.description,
            total_supply=self.total_supply,
            generator=self.generator.to_domain(),
            trait_tree=self._tree(),
            template={} if self.template is None else self.template,
            rules=self.rules.to_domain() if self.rules else t.DrawRules(),
        )

    def _tree(self) -> t.TraitTree:
        if self.trait_tree_file is None:
            return tuple(c.to_domain() for c in self.trait_tree)
        if self.trait_tree:
            raise BadUserInput.at(
                "input.traitTreeFile", "give traitTree or traitTreeFile, not both"
            )
        return t.tree_from_legacy_file(self.trait_tree_file, "input.traitTreeFile")


@strawberry.input(description="Changes to a collection; omitted fields stay as they are.")
class UpdateCollectionInput:
    name: str | None = strawberry.field(
        default=None, description=f"1-{MAX_COLLECTION_NAME} characters, not blank."
    )
    description: str | None = strawberry.field(
        default=None, description=f"At most {MAX_DESCRIPTION} characters."
    )
    total_supply: int | None = strawberry.field(
        default=None, description=f"1 to {MAX_TOTAL_SUPPLY} pieces."
    )
    generator: GeneratorInput | None = None
    trait_tree: list[TraitCategoryInput] | None = strawberry.field(
        default=None, description=TREE_RULE + " Replaces the whole tree."
    )
    template: JSON | None = strawberry.field(
        default=None, description=TEMPLATE_RULE + " Replaces the whole template."
    )
    rules: DrawRulesInput | None = strawberry.field(
        default=None, description="Replaces all the drawing rules."
    )

    def to_domain(self) -> domain.CollectionPatch:
        return domain.CollectionPatch(
            name=self.name,
            description=self.description,
            total_supply=self.total_supply,
            generator=self.generator.to_domain() if self.generator else None,
            trait_tree=None
            if self.trait_tree is None
            else tuple(c.to_domain() for c in self.trait_tree),
            template=self.template,
            rules=self.rules.to_domain() if self.rules else None,
        )
