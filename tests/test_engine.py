"""The trait engine, pure: weighted choice, permutation, determinism, exclusions."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestration.art.engine import (
    Config,
    NoValidDraw,
    UniqueValuesExhausted,
    combination_capacity,
    draw,
    permute,
    weighted_choice,
)
from orchestration.art.traits import (
    DrawRules,
    Exclusion,
    GeneratedCategory,
    ManualCategory,
    NumericRange,
    Trait,
)


@given(size=st.integers(1, 3000), seed=st.integers(0, 2**31 - 1))
def test_the_shuffle_is_a_bijection_of_the_range(size: int, seed: int) -> None:
    assert sorted(permute(i, size, seed) for i in range(size)) == list(range(size))


def test_the_shuffle_keeps_the_old_systems_formula() -> None:
    # size 10, seed 42: a = first coprime >= (9301 + 42) % 10 = 3 -> 3; b = (49297 + 42) % 10 = 9
    assert [permute(i, 10, 42) for i in range(4)] == [9, 2, 5, 8]


@given(
    weights=st.lists(st.sampled_from([0.0, 0.5, 1.0, 7.0]), min_size=1, max_size=6),
    seed=st.integers(),
)
def test_a_zero_weight_trait_is_never_chosen(weights: list[float], seed: int) -> None:
    if not any(weights):
        return
    category = ManualCategory("C", tuple(Trait(f"t{i}", "v", w) for i, w in enumerate(weights)))
    rng = random.Random(seed)
    for _ in range(50):
        assert weighted_choice(category, rng).weight > 0


def test_weights_set_the_odds() -> None:
    category = ManualCategory("C", (Trait("rare", "r", 1), Trait("common", "c", 9)))
    rng = random.Random(1)
    picks = [weighted_choice(category, rng).name for _ in range(10_000)]
    assert 0.08 < picks.count("rare") / len(picks) < 0.12


TREE = (
    ManualCategory("Animal", (Trait("Cat", "a cat", 1), Trait("Owl", "an owl", 3))),
    GeneratedCategory("id", NumericRange(0, 99, 1, 3, True, 7)),
    GeneratedCategory("mood", NumericRange(1, 5)),
)


@given(seed=st.integers(0, 2**31 - 1), index=st.integers(0, 99))
def test_a_draw_depends_only_on_seed_index_and_configuration(seed: int, index: int) -> None:
    config = Config(TREE, {"p": "[[Animal]] #[[id]] ([[mood]])"})
    first, second = draw(config, seed, index), draw(config, seed, index)
    assert first == second
    assert first.params["p"].startswith(first.traits[0].value)


def test_unique_values_follow_the_index_and_run_out_instead_of_wrapping() -> None:
    config = Config(TREE, {})
    values = {draw(config, 1, i).traits[1].value for i in range(100)}
    assert len(values) == 100
    assert all(len(v) == 3 for v in values)
    with pytest.raises(UniqueValuesExhausted):
        draw(config, 1, 100)


def test_exclusions_apply_in_both_directions_and_can_leave_no_draw() -> None:
    tree = (
        ManualCategory("Hair", (Trait("Mohawk", "m", 1),)),
        ManualCategory("Hat", (Trait("Crown", "c", 1), Trait("Cap", "p", 1))),
    )
    rules = DrawRules((Exclusion("Hat", "Crown", "Hair", ("Mohawk",)),))
    config = Config(tree, {}, rules)
    assert {draw(config, s, 0).traits[1].name for s in range(50)} == {"Cap"}
    assert combination_capacity(config) == 1
    impossible = Config((*tree[:1], ManualCategory("Hat", (Trait("Crown", "c", 1),))), {}, rules)
    assert combination_capacity(impossible) == 0
    with pytest.raises(NoValidDraw):
        draw(impossible, 1, 0)


def test_the_configuration_hash_covers_tree_template_and_rules() -> None:
    base = Config(TREE, {"p": 1})
    assert base.hash == Config(TREE, {"p": 1}).hash
    assert base.hash != Config(TREE, {"p": 2}).hash
    assert base.hash != Config(TREE[:2], {"p": 1}).hash
    assert base.hash != Config(TREE, {"p": 1}, DrawRules(unique_combinations=True)).hash
