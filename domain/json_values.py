"""The one rule for JSON a caller sends, and a decoder that is bounded before it recurses.

Every JSON value from outside (a request body, a WebSocket message, every JSON-typed GraphQL
input, as a variable or as a literal) holds to the same rule: bounded depth, size and keys,
finite numbers only (no NaN or Infinity, which are not JSON), and valid Unicode only (no lone
UTF-16 surrogates, which cannot be stored or sent back as UTF-8). ``decode`` checks the nesting
of the raw text before ``json.loads`` recurses into it; ``check`` walks a decoded value without
recursion.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

type Json = Any

_ESCAPE = re.compile(r"\\.", re.DOTALL)
_STRING = re.compile(r'"[^"]*"')
# Outside strings, valid JSON is ASCII: dropping every other ASCII character leaves the
# brackets (and any non-ASCII junk, which the decoder refuses afterwards).
_NOT_BRACKET = str.maketrans("", "", "".join(chr(c) for c in range(128) if chr(c) not in "[]{}"))
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_SCALARS = frozenset({int, bool, type(None)})
_CONTAINERS = frozenset({dict, list})
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class JsonLimits:
    max_depth: int
    max_bytes: int
    max_keys: int = 1000  # members of one object
    max_key_length: int = 256
    max_containers: int = 100_000  # arrays and objects in all (a whole trait tree is ~25,000)


# Every JSON-typed GraphQL input (templates, spell step params, trait tree files). Fields may
# state tighter bounds of their own, checked by the domain with the offending field's path (a
# template or a step's params: 16 levels, 64 KiB).
FIELD_LIMITS = JsonLimits(max_depth=32, max_bytes=1024 * 1024)


class JsonRefused(ValueError):
    """The text or value breaks the rule; ``too_large`` tells an oversized one apart."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.too_large = too_large


def decode(raw: bytes | str, limits: JsonLimits) -> Json:
    """The JSON value in ``raw`` (UTF-8), or ``JsonRefused``. Size and nesting are checked on
    the text first, so a hostile document never reaches the recursive decoder."""
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > limits.max_bytes:
        raise JsonRefused(f"is {size} bytes; at most {limits.max_bytes}", too_large=True)
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonRefused(f"is not valid UTF-8 (at byte {exc.start})") from exc
    else:
        text = raw
    brackets = _brackets(text)
    if brackets.count("[") + brackets.count("{") > limits.max_containers:
        raise JsonRefused(f"holds more than {limits.max_containers} arrays and objects")
    if _deeper_than(brackets, limits.max_depth):
        raise JsonRefused(f"nests deeper than {limits.max_depth} levels")
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
    except JsonRefused:
        raise
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise JsonRefused(f"is not JSON: {exc}") from exc
    problem = check(value, limits, measured=True, surrogates=bool(_ESCAPED_SURROGATE.search(text)))
    if problem is not None:
        raise JsonRefused(problem)
    return value


def _brackets(text: str) -> str:
    """The brackets of JSON text outside its strings (escapes, then strings, are removed:
    each pattern is linear)."""
    return _STRING.sub("", _ESCAPE.sub("", text)).translate(_NOT_BRACKET)


def _deeper_than(brackets: str, limit: int) -> bool:
    """Stops at the first bracket past ``limit``: a hostile nesting is refused at once."""
    steps = (_STEP.get(c, 0) for c in brackets)
    return any(depth > limit for depth in accumulate(steps))


def check(
    value: Json, limits: JsonLimits, *, measured: bool = False, surrogates: bool = True
) -> str | None:
    """Why ``value`` breaks the rule, or None. Level by level, without recursion, so any depth
    is refused safely. ``measured``: the size was already checked on the text; ``surrogates``:
    whether strings may hold lone surrogates (text decoded from UTF-8 holds none unless
    escaped)."""
    level: list[Json] = [value]
    depth = containers = 0
    while level:
        below: list[Json] = []
        for item in level:
            kind = type(item)
            if kind is str:
                if surrogates and not _valid_unicode(item):
                    return "holds a lone UTF-16 surrogate: not valid Unicode"
            elif kind is dict:
                if len(item) > limits.max_keys:
                    return f"has an object of {len(item)} keys; at most {limits.max_keys}"
                for key in item:
                    if type(key) is not str:
                        return "has a key that is not a string"
                    if len(key) > limits.max_key_length:
                        return f"has a key longer than {limits.max_key_length} characters"
                    if surrogates and not _valid_unicode(key):
                        return "holds a lone UTF-16 surrogate: not valid Unicode"
                below.extend(item.values())
                containers += 1
            elif kind is list:
                below.extend(item)
                containers += 1
            elif kind is float:
                if not math.isfinite(item):
                    return f"holds {item}: only finite numbers are JSON"
            elif kind not in _SCALARS:
                return f"holds a {kind.__name__}, which is not JSON"
        if containers > limits.max_containers:
            return f"holds more than {limits.max_containers} arrays and objects"
        depth += 1
        if below and depth >= limits.max_depth and any(type(i) in _CONTAINERS for i in below):
            return f"nests deeper than {limits.max_depth} levels"
        level = below
    if not measured:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        if size > limits.max_bytes:
            return f"is {size} bytes as JSON; at most {limits.max_bytes}"
    return None


def _valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _no_constant(name: str) -> Json:
    raise JsonRefused(f"holds {name}: only finite numbers are JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise JsonRefused(f"holds {text}, which is out of range for a number")
    return number
