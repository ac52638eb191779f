"""Placeholder filling is literal, recursive over values, and blind to keys."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from orchestration.art.template import fill, placeholders, validate_template

names = st.text(min_size=1, max_size=20).filter(lambda s: "[" not in s and "]" not in s)
values = st.text(max_size=50)


def test_placeholders_are_found_in_nested_values_but_not_keys() -> None:
    template = {"[[Key]]": ["a [[A]]", {"b": "[[B]] and [[A]]"}], "n": 3, "none": None}
    assert placeholders(template) == {"A", "B"}


def test_filling_treats_regex_and_replacement_syntax_as_text() -> None:
    template = {"p": "[[Hat (rare)]] / [[a.b]] / [[x]]"}
    filled = fill(template, {"Hat (rare)": r"$1 \g<0> \1", "a.b": "$&", "x": "$$"})
    assert filled == {"p": r"$1 \g<0> \1 / $& / $$"}


def test_an_unknown_placeholder_is_left_as_it_is() -> None:
    assert fill({"p": "[[Known]] [[Unknown]]"}, {"Known": "k"}) == {"p": "k [[Unknown]]"}


def test_non_string_leaves_are_untouched() -> None:
    template = {"cfg": 7.5, "steps": 30, "on": True, "list": [1, None]}
    assert fill(template, {"A": "x"}) == template


@given(name=names, value=values, prefix=st.text(max_size=10), suffix=st.text(max_size=10))
def test_any_name_and_value_fill_literally(name: str, value: str, prefix: str, suffix: str) -> None:
    template = {"p": [f"{prefix}[[{name}]]{suffix}"]}
    before = placeholders({"p": prefix}) | placeholders({"p": suffix})
    if before:  # the random affixes made placeholders of their own; not this property
        return
    assert fill(template, {name: value}) == {"p": [f"{prefix}{value}{suffix}"]}


def test_validation_lists_unknown_placeholders_in_order() -> None:
    [problem] = validate_template({"p": "[[Zed]] [[A]] [[B]]"}, ["A"])
    assert problem.message == "names categories that do not exist: [[B]], [[Zed]]"


def test_a_hostile_nesting_is_refused_without_recursion() -> None:
    deep: object = "x"
    for _ in range(100_000):
        deep = [deep]
    [problem] = validate_template({"p": deep}, [])
    assert "deeper" in problem.message
