"""The trait tree: ordered categories of weighted traits or generated numeric ranges.

Pure data and validation; drawing pieces from a tree is the trait engine's job. Limits are
constants here so the GraphQL descriptions, the validation and the tests agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import BadUserInput, Problem

MAX_CATEGORIES = 50
MAX_TRAITS_PER_CATEGORY = 500
MAX_NAME_LENGTH = 50
MAX_VALUE_LENGTH = 1000
MAX_WEIGHT = 1_000_000.0
MAX_ZERO_PAD = 32
RANGE_BOUND = 2**31 - 1  # GraphQL Int
FORBIDDEN_NAME_CHARS = "[]"
LEGACY_DEFAULT_WEIGHT = 0.5  # the old system's weight for a trait without one


@dataclass(frozen=True)
class Trait:
    name: str
    value: str
    weight: float


@dataclass(frozen=True)
class ManualCategory:
    name: str
    traits: tuple[Trait, ...]


@dataclass(frozen=True)
class NumericRange:
    start: int
    end: int
    step: int = 1
    zero_pad: int = 0
    unique_across_cook: bool = False
    shuffle_seed: int | None = None

    @property
    def size(self) -> int:
        """How many values the range holds (0 when it is empty or invalid)."""
        if self.step <= 0 or self.end < self.start:
            return 0
        return (self.end - self.start) // self.step + 1


@dataclass(frozen=True)
class GeneratedCategory:
    name: str
    range: NumericRange


type Category = ManualCategory | GeneratedCategory
type TraitTree = tuple[Category, ...]

MAX_EXCLUSIONS = 200


@dataclass(frozen=True)
class Exclusion:
    """A piece with ``trait`` in ``category`` never has any of ``excludes`` in
    ``excluded_category`` (whichever of the two categories is drawn first)."""

    category: str
    trait: str
    excluded_category: str
    excludes: tuple[str, ...]


@dataclass(frozen=True)
class DrawRules:
    exclusions: tuple[Exclusion, ...] = ()
    unique_combinations: bool = False  # no two live pieces of the collection share all traits


def validate_rules(rules: DrawRules, tree: Sequence[Category], path: str) -> list[Problem]:
    manual = {c.name: {t.name for t in c.traits} for c in tree if isinstance(c, ManualCategory)}
    problems: list[Problem] = []
    if len(rules.exclusions) > MAX_EXCLUSIONS:
        problems.append(Problem(f"{path}.exclusions", f"at most {MAX_EXCLUSIONS} rules"))
    for i, rule in enumerate(rules.exclusions):
        at = f"{path}.exclusions[{i}]"
        for name, field in (
            (rule.category, "category"),
            (rule.excluded_category, "excludedCategory"),
        ):
            if name not in manual:
                problems.append(Problem(f"{at}.{field}", f"names no manual category ({name!r})"))
        if rule.category == rule.excluded_category:
            problems.append(Problem(f"{at}.excludedCategory", "must differ from category"))
        if rule.category in manual and rule.trait not in manual[rule.category]:
            problems.append(
                Problem(f"{at}.trait", f"{rule.category!r} has no trait {rule.trait!r}")
            )
        if not rule.excludes:
            problems.append(Problem(f"{at}.excludes", "names at least one trait"))
        if len(rule.excludes) > MAX_TRAITS_PER_CATEGORY:
            problems.append(
                Problem(f"{at}.excludes", f"names at most {MAX_TRAITS_PER_CATEGORY} traits")
            )
        known = manual.get(rule.excluded_category, set())
        unknown = sorted(set(rule.excludes) - known) if rule.excluded_category in manual else []
        if unknown:
            problems.append(
                Problem(f"{at}.excludes", f"{rule.excluded_category!r} has no trait {unknown[0]!r}")
            )
    return problems


def rules_to_doc(rules: DrawRules) -> dict[str, Any]:
    return {
        "exclusions": [
            {
                "category": r.category,
                "trait": r.trait,
                "excludedCategory": r.excluded_category,
                "excludes": list(r.excludes),
            }
            for r in rules.exclusions
        ],
        "uniqueCombinations": rules.unique_combinations,
    }


def rules_from_doc(doc: Mapping[str, Any] | None) -> DrawRules:
    if not doc:
        return DrawRules()
    return DrawRules(
        tuple(
            Exclusion(r["category"], r["trait"], r["excludedCategory"], tuple(r["excludes"]))
            for r in doc.get("exclusions", [])
        ),
        bool(doc.get("uniqueCombinations", False)),
    )


def validate_tree(tree: Sequence[Category], path: str = "traitTree") -> list[Problem]:
    """Every rule the tree breaks, each with the field path that breaks it."""
    problems: list[Problem] = []
    if len(tree) > MAX_CATEGORIES:
        problems.append(Problem(path, f"has {len(tree)} categories; at most {MAX_CATEGORIES}"))
    seen: set[str] = set()
    for i, category in enumerate(tree):
        where = f"{path}[{i}]"
        problems += _check_name(category.name, f"{where}.name")
        if category.name in seen:
            problems.append(Problem(f"{where}.name", f"duplicates category {category.name!r}"))
        seen.add(category.name)
        if isinstance(category, ManualCategory):
            problems += _check_manual(category, where)
        else:
            problems += _check_range(category.range, f"{where}.range")
    return problems


def _check_name(name: str, path: str) -> list[Problem]:
    if not name.strip():
        return [Problem(path, "must not be blank")]
    if len(name) > MAX_NAME_LENGTH:
        return [Problem(path, f"is {len(name)} characters; at most {MAX_NAME_LENGTH}")]
    if name != name.strip():
        return [Problem(path, "must not start or end with white space")]
    if any(ch in name for ch in FORBIDDEN_NAME_CHARS):
        return [Problem(path, "must not contain '[' or ']' (they delimit placeholders)")]
    return []


def _check_manual(category: ManualCategory, where: str) -> list[Problem]:
    problems: list[Problem] = []
    traits = category.traits
    if not traits:
        problems.append(Problem(f"{where}.traits", "needs at least one trait"))
    if len(traits) > MAX_TRAITS_PER_CATEGORY:
        problems.append(
            Problem(f"{where}.traits", f"has {len(traits)}; at most {MAX_TRAITS_PER_CATEGORY}")
        )
    names: set[str] = set()
    for j, trait in enumerate(traits):
        at = f"{where}.traits[{j}]"
        problems += _check_name(trait.name, f"{at}.name")
        if trait.name in names:
            problems.append(Problem(f"{at}.name", f"duplicates trait {trait.name!r}"))
        names.add(trait.name)
        if len(trait.value) > MAX_VALUE_LENGTH:
            problems.append(
                Problem(
                    f"{at}.value", f"is {len(trait.value)} characters; at most {MAX_VALUE_LENGTH}"
                )
            )
        if not math.isfinite(trait.weight) or not 0 <= trait.weight <= MAX_WEIGHT:
            problems.append(Problem(f"{at}.weight", f"must be between 0 and {MAX_WEIGHT:g}"))
    if traits and not any(t.weight > 0 for t in traits if math.isfinite(t.weight)):
        problems.append(
            Problem(f"{where}.traits", "needs at least one trait with a positive weight")
        )
    return problems


def _check_range(r: NumericRange, where: str) -> list[Problem]:
    problems: list[Problem] = []
    for name, value in (("start", r.start), ("end", r.end)):
        if not -RANGE_BOUND <= value <= RANGE_BOUND:
            problems.append(Problem(f"{where}.{name}", f"must be within ±{RANGE_BOUND}"))
    if r.step < 1:
        problems.append(Problem(f"{where}.step", "must be at least 1"))
    if r.end < r.start:
        problems.append(Problem(f"{where}.end", "must not be less than start"))
    if not 0 <= r.zero_pad <= MAX_ZERO_PAD:
        problems.append(Problem(f"{where}.zeroPad", f"must be between 0 and {MAX_ZERO_PAD}"))
    if r.shuffle_seed is not None and not 0 <= r.shuffle_seed <= RANGE_BOUND:
        problems.append(Problem(f"{where}.shuffleSeed", f"must be between 0 and {RANGE_BOUND}"))
    return problems


# --- storage form (the database document) -------------------------------------------------


def tree_to_doc(tree: Iterable[Category]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in tree:
        if isinstance(c, ManualCategory):
            traits = [{"name": t.name, "value": t.value, "weight": t.weight} for t in c.traits]
            out.append({"name": c.name, "mode": "manual", "traits": traits})
        else:
            r = c.range
            out.append(
                {
                    "name": c.name,
                    "mode": "generated",
                    "range": {
                        "start": r.start,
                        "end": r.end,
                        "step": r.step,
                        "zeroPad": r.zero_pad,
                        "uniqueAcrossCook": r.unique_across_cook,
                        "shuffleSeed": r.shuffle_seed,
                    },
                }
            )
    return out


def tree_from_doc(doc: Iterable[Mapping[str, Any]]) -> TraitTree:
    tree: list[Category] = []
    for c in doc:
        if c["mode"] == "manual":
            traits = tuple(Trait(t["name"], t["value"], float(t["weight"])) for t in c["traits"])
            tree.append(ManualCategory(c["name"], traits))
        else:
            r = c["range"]
            tree.append(
                GeneratedCategory(
                    c["name"],
                    NumericRange(
                        r["start"],
                        r["end"],
                        r["step"],
                        r["zeroPad"],
                        r["uniqueAcrossCook"],
                        r["shuffleSeed"],
                    ),
                )
            )
    return tuple(tree)


# --- the old system's file: {"categories": [...]} -------------------------------------------


def tree_to_legacy_file(tree: Iterable[Category]) -> dict[str, Any]:
    """The old system's download format (``rarity`` for weight, ``generator`` for range)."""
    categories: list[dict[str, Any]] = []
    for c in tree:
        if isinstance(c, ManualCategory):
            traits = [{"name": t.name, "value": t.value, "rarity": t.weight} for t in c.traits]
            categories.append({"name": c.name, "mode": "manual", "traits": traits})
        else:
            r = c.range
            generator = {
                "type": "range",
                "start": r.start,
                "end": r.end,
                "step": r.step,
                "zeroPad": r.zero_pad,
                "uniqueAcrossCook": r.unique_across_cook,
                "shuffleSeed": r.shuffle_seed,
            }
            categories.append({"name": c.name, "mode": "generated", "generator": generator})
    return {"categories": categories}


def tree_from_legacy_file(file: object, path: str = "file") -> TraitTree:
    """Parse the old system's file, accepting its aliases (``prompt``, ``rarity``).

    A trait without a weight gets the old default of 0.5; an explicit weight of 0 stays 0
    (never chosen), unlike the old system, which silently turned 0 into 0.5.
    """
    if not isinstance(file, Mapping) or not isinstance(file.get("categories"), list):
        raise BadUserInput.at(path, 'must be an object of the form {"categories": [...]}')
    if len(file["categories"]) > MAX_CATEGORIES:  # refused before parsing any of them
        raise BadUserInput.at(f"{path}.categories", f"at most {MAX_CATEGORIES} categories")
    problems: list[Problem] = []
    tree: list[Category] = []
    for i, raw in enumerate(file["categories"]):
        where = f"{path}.categories[{i}]"
        try:
            tree.append(_legacy_category(raw, where))
        except _Invalid as exc:
            problems.append(exc.problem)
    if problems:
        raise BadUserInput(problems)
    return tuple(tree)


class _Invalid(Exception):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(path, message)


def _legacy_category(raw: object, where: str) -> Category:
    if not isinstance(raw, Mapping):
        raise _Invalid(where, "must be an object")
    name = _string(raw.get("name"), f"{where}.name")
    mode = raw.get("mode") or ("generated" if "generator" in raw else "manual")
    if mode == "manual":
        traits = raw.get("traits")
        if not isinstance(traits, list):
            raise _Invalid(f"{where}.traits", "must be a list")
        if len(traits) > MAX_TRAITS_PER_CATEGORY:
            raise _Invalid(f"{where}.traits", f"at most {MAX_TRAITS_PER_CATEGORY} traits")
        return ManualCategory(
            name, tuple(_legacy_trait(t, f"{where}.traits[{j}]") for j, t in enumerate(traits))
        )
    if mode == "generated":
        gen = raw.get("generator", raw.get("range"))
        if not isinstance(gen, Mapping):
            raise _Invalid(f"{where}.generator", "must be an object")
        if gen.get("type", "range") != "range":
            raise _Invalid(f"{where}.generator.type", "only 'range' generators exist")
        start = _integer(gen.get("start", 0), f"{where}.generator.start")
        seed = gen.get("shuffleSeed")
        return GeneratedCategory(
            name,
            NumericRange(
                start=start,
                end=_integer(gen.get("end", start), f"{where}.generator.end"),
                step=_integer(gen.get("step", 1), f"{where}.generator.step"),
                zero_pad=_integer(gen.get("zeroPad", 0), f"{where}.generator.zeroPad"),
                unique_across_cook=bool(gen.get("uniqueAcrossCook", False)),
                shuffle_seed=None
                if seed is None
                else _integer(seed, f"{where}.generator.shuffleSeed"),
            ),
        )
    raise _Invalid(f"{where}.mode", "must be 'manual' or 'generated'")


def _legacy_trait(raw: object, at: str) -> Trait:
    if not isinstance(raw, Mapping):
        raise _Invalid(at, "must be an object")
    name = _string(raw.get("name"), f"{at}.name")
    value = raw.get("value", raw.get("prompt"))
    value = name if value is None else _string(value, f"{at}.value")
    weight = raw.get("weight", raw.get("rarity"))
    if weight is None or weight == "":
        weight = LEGACY_DEFAULT_WEIGHT
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise _Invalid(f"{at}.weight", "must be a number")
    return Trait(name, value, float(weight))


def _string(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, "must be a string")
    return value


def _integer(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise _Invalid(path, "must be a whole number")
    return int(value)
