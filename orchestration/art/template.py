"""The parameter template: a JSON object whose string values may hold ``[[Category]]``.

Filling is literal: a category name is matched as text (no regex built from it) and the value
is inserted as text (no replacement-pattern expansion of ``$1`` or ``\\g<0>``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from domain.errors import Problem

MAX_TEMPLATE_BYTES = 64 * 1024
MAX_TEMPLATE_DEPTH = 16
PLACEHOLDER = re.compile(r"\[\[([^\[\]]+)\]\]")

type Json = Any


def placeholders(template: Json) -> set[str]:
    """Every category name the template refers to, in values at any depth (not in keys)."""
    found: set[str] = set()
    _walk_strings(template, lambda s: found.update(PLACEHOLDER.findall(s)))
    return found


def fill(template: Json, values: Mapping[str, str]) -> Json:
    """A copy of ``template`` with each known ``[[name]]`` replaced by ``values[name]``."""

    def replace(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return _map_strings(template, lambda s: PLACEHOLDER.sub(replace, s))


def validate_template(
    template: Json, categories: Iterable[str], path: str = "template"
) -> list[Problem]:
    if not isinstance(template, dict):
        return [Problem(path, "must be a JSON object")]
    if _deeper_than(template, MAX_TEMPLATE_DEPTH):
        return [Problem(path, f"nests deeper than {MAX_TEMPLATE_DEPTH} levels")]
    size = len(json.dumps(template, separators=(",", ":"), ensure_ascii=False).encode())
    if size > MAX_TEMPLATE_BYTES:
        return [Problem(path, f"is {size} bytes as JSON; at most {MAX_TEMPLATE_BYTES}")]
    unknown = sorted(placeholders(template) - set(categories))
    if unknown:
        names = ", ".join(f"[[{n}]]" for n in unknown)
        return [Problem(path, f"names categories that do not exist: {names}")]
    return []


def _walk_strings(value: Json, visit: Callable[[str], None]) -> None:
    if isinstance(value, str):
        visit(value)
    elif isinstance(value, dict):
        for item in value.values():
            _walk_strings(item, visit)
    elif isinstance(value, list):
        for item in value:
            _walk_strings(item, visit)


def _map_strings(value: Json, change: Callable[[str], str]) -> Json:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {key: _map_strings(item, change) for key, item in value.items()}
    if isinstance(value, list):
        return [_map_strings(item, change) for item in value]
    return value


def _deeper_than(value: Json, limit: int) -> bool:
    """Iterative, so a hostile nesting cannot exhaust the stack before it is refused."""
    stack: list[tuple[Json, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        if children and depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
