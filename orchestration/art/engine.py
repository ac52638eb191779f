"""The trait engine: what a piece draws. Pure and deterministic.

A piece's draw depends only on the cook's seed, the piece's index in its collection and the
collection's configuration (trait tree and template): ``draw(config, seed, index)`` is a
function. Manual categories take a weighted choice (weight 0 is never chosen); generated ranges
take a uniformly drawn value, or, with ``uniqueAcrossCook``, the value at position ``index``
(piece indexes are never reused within a collection, so neither are the values). ``shuffleSeed``
permutes the range with the old system's affine bijection, kept exact so legacy seeds reproduce.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from orchestration.art.template import Json, fill
from orchestration.art.traits import (
    DrawRules,
    GeneratedCategory,
    ManualCategory,
    TraitTree,
    rules_to_doc,
    tree_to_doc,
)


@dataclass(frozen=True)
class ChosenTrait:
    category: str
    name: str
    value: str


@dataclass(frozen=True)
class Draw:
    index: int
    seed: int
    traits: tuple[ChosenTrait, ...]
    params: Json


@dataclass(frozen=True)
class Config:
    """What a cook draws from: a snapshot of the collection's tree, template and rules."""

    trait_tree: TraitTree
    template: Json
    rules: DrawRules = field(default_factory=DrawRules)

    @property
    def hash(self) -> str:
        canonical = json.dumps(
            {
                "traitTree": tree_to_doc(self.trait_tree),
                "template": self.template,
                "rules": rules_to_doc(self.rules),
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


class NoValidDraw(Exception):
    """The exclusion rules left some category without a trait for this draw."""


class UniqueValuesExhausted(Exception):
    """A ``uniqueAcrossCook`` range has no value left for this piece index."""

    def __init__(self, category: str, size: int) -> None:
        super().__init__(f"category {category!r} has no unique value left (it holds {size})")
        self.category = category


def piece_seed(cook_seed: int, index: int, salt: int = 0) -> int:
    text = f"cook-piece:{cook_seed}:{index}" + (f":{salt}" if salt else "")
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # fits a signed 64-bit integer


def draw(config: Config, cook_seed: int, index: int, salt: int = 0) -> Draw:
    """The piece at ``index``. ``salt`` > 0 draws again (when a combination was taken or
    the exclusion rules left no trait); each salt gives one fixed draw."""
    seed = piece_seed(cook_seed, index, salt)
    rng = random.Random(seed)  # noqa: S311 - reproducible art, not security
    forbidden = _forbidden_pairs(config.rules)
    chosen: list[ChosenTrait] = []
    for category in config.trait_tree:
        if isinstance(category, ManualCategory):
            blocked = {
                name
                for prior in chosen
                for cat, name in forbidden.get((prior.category, prior.name), ())
                if cat == category.name
            }
            trait = weighted_choice(category, rng, blocked)
            chosen.append(ChosenTrait(category.name, trait.name, trait.value))
        else:
            value = range_value(category, index, rng)
            chosen.append(ChosenTrait(category.name, value, value))
    params = fill(config.template, {t.category: t.value for t in chosen})
    return Draw(index=index, seed=seed, traits=tuple(chosen), params=params)


def combination_key(traits: tuple[ChosenTrait, ...]) -> str:
    """Identifies a piece's full set of traits (for "no two pieces with the same traits")."""
    canonical = json.dumps([[t.category, t.name] for t in traits], ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _forbidden_pairs(rules: DrawRules) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """Both directions of every exclusion, so tree order does not matter."""
    pairs: dict[tuple[str, str], set[tuple[str, str]]] = {}
    for rule in rules.exclusions:
        for excluded in rule.excludes:
            a, b = (rule.category, rule.trait), (rule.excluded_category, excluded)
            pairs.setdefault(a, set()).add(b)
            pairs.setdefault(b, set()).add(a)
    return pairs


def weighted_choice(
    category: ManualCategory, rng: random.Random, blocked: set[str] | frozenset[str] = frozenset()
) -> Any:
    positive = [t for t in category.traits if t.weight > 0 and t.name not in blocked]
    if not positive:
        raise NoValidDraw(f"the exclusion rules leave {category.name!r} without a trait")
    total = math.fsum(t.weight for t in positive)
    point = rng.random() * total
    running = 0.0
    for trait in positive:
        running += trait.weight
        if point < running:
            return trait
    return positive[-1]  # float rounding at the very top end


def range_value(category: GeneratedCategory, index: int, rng: random.Random) -> str:
    r = category.range
    if r.unique_across_cook:
        if index >= r.size:
            raise UniqueValuesExhausted(category.name, r.size)
        position = index
    else:
        position = rng.randrange(r.size)
    if r.shuffle_seed is not None:
        position = permute(position, r.size, r.shuffle_seed)
    return str(r.start + position * r.step).zfill(r.zero_pad)


def permute(i: int, size: int, seed: int) -> int:
    """The old system's bijection of ``[0, size)``: ``(i*a + b) mod size``, ``a`` coprime."""
    if size <= 1:
        return 0
    a = (9301 + seed % 1000) % size
    while math.gcd(a, size) != 1:
        a += 1
    b = (49297 + seed) % size
    return (i * a + b) % size


ENUMERATION_LIMIT = 200_000


def combination_capacity(config: Config) -> int | None:
    """How many distinct trait combinations the configuration allows (None: too many to
    count, which is more than any cook can ask for)."""
    manual = [c for c in config.trait_tree if isinstance(c, ManualCategory)]
    ranges = 1
    for c in config.trait_tree:
        if isinstance(c, GeneratedCategory):
            ranges *= c.range.size
    options = [[t.name for t in c.traits if t.weight > 0] for c in manual]
    product = math.prod(len(o) for o in options)
    if product * ranges > 10**12 or product > ENUMERATION_LIMIT:
        return None
    forbidden = _forbidden_pairs(config.rules)
    names = [c.name for c in manual]
    valid = 0
    for combo in itertools.product(*options):
        picked = list(zip(names, combo, strict=True))
        if not any(b in forbidden.get(a, ()) for a in picked for b in picked):
            valid += 1
    return valid * ranges


def unique_capacity(tree: TraitTree) -> int | None:
    """How many pieces the collection can ever make, if a unique range bounds it."""
    sizes = [
        c.range.size
        for c in tree
        if isinstance(c, GeneratedCategory) and c.range.unique_across_cook
    ]
    return min(sizes) if sizes else None
