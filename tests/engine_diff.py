"""A randomized differential run: the same documents, writes and queries against two engines.

``run(reference, candidate, ops, seed)`` feeds both collections the same random documents
(missing fields, null, numbers against strings, int against float, booleans, arrays, nested
documents, dates, Int64, Decimal128, bytes), then the same random mix of finds (filters of one
to three conditions, ``$in``, ranges, ``$ne``, ``$exists``, ``$or``; sorts of one or two keys,
skip, limit, hints), counts, distincts, find_one, find_one_and_update, update_one/many,
inserts and deletes, and returns every disagreement. Writes set fields to any edge value, so
a collection's features (an array at a field, mixed types at a sort field) flip during a run.

Results are compared exactly (documents by ``repr``, so 3 and 3.0 or 1 and True differ) and
in order when the order is determined: a sort ending in ``_id``. Otherwise sorted results are
compared by their sequence of sort keys (ties may legitimately come back in another order, as
in MongoDB), and unsorted ones as sets.

The two sides are anything with pymongo's collection API: mongoeco's in-process client
(fast) or pymongo over the wire.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bson import Decimal128, Int64

FIELDS = ("a", "b", "n", "s")
INDEXES: tuple[tuple[list[tuple[str, int]], dict[str, Any]], ...] = (
    ([("a", 1), ("n", 1)], {"name": "a_n"}),
    ([("a", 1), ("b", 1), ("n", -1)], {"name": "a_b_n"}),
    ([("s", 1)], {"name": "s"}),
    ([("b", 1), ("s", 1)], {"name": "b_s"}),
    ([("u", 1)], {"name": "u", "unique": True}),
)
MISSING = object()
UTC = dt.UTC
D1, D2 = dt.datetime(2024, 1, 1, tzinfo=UTC), dt.datetime(2024, 6, 1, tzinfo=UTC)

# Per kind of collection, what a field may hold. "clean" is what Cook stores (strings and
# integers, missing): the fast paths engage; "mixed" adds scalars of every kind; "messy" adds
# arrays, objects and tagged values.
CLEAN = {
    "a": ["x", "y", "z", "w"],
    "b": ["p", "q", "r", MISSING],
    "n": [0, 1, 2, 3, 4, 5, 7, 10],
    "s": [1, 2, 3, 5, 8, 13, 21, 34, 55],
}
MIXED_EXTRA = [None, MISSING, 0, 1, 3, 3.0, 2.5, -1, 2**40, "", "3", "x", "ab", True, False]
MESSY_EXTRA = [
    ["x", "y"],
    [3, 4],
    [],
    [None],
    {"k": 1},
    {"k": "x"},
    D1,
    D2,
    Int64(3),
    Decimal128("2.5"),
    b"\x00x",
]


@dataclass
class Report:
    ops: int = 0
    reads: int = 0
    writes: int = 0
    mismatches: list[str] = field(default_factory=list)


def pool(kind: str, name: str) -> list[Any]:
    values = list(CLEAN[name])
    if kind in ("mixed", "messy"):
        values += MIXED_EXTRA
    if kind == "messy":
        # Arrays at a and s only: a compound index allows one array field per document.
        values += [v for v in MESSY_EXTRA if name in ("a", "s") or not isinstance(v, list)]
    return values


def value(rng: random.Random, kind: str, name: str) -> Any:
    # Mostly the field's clean values, so clean collections stay clean for long stretches.
    if kind == "clean" and rng.random() < 0.97:
        return rng.choice(CLEAN[name])
    return rng.choice(pool(kind, name))


def document(rng: random.Random, kind: str, n: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": n if kind != "clean" and n % 17 == 5 else f"d{n:04d}"}
    for name in FIELDS:
        v = value(rng, kind, name)
        if v is not MISSING:
            doc[name] = v
    doc["u"] = f"u{n}"
    nested = value(rng, kind, "a")
    if rng.random() < 0.2 and nested is not MISSING:
        doc["nested"] = {"a": nested}
    return doc


def leaf(rng: random.Random, kind: str, ids: list[Any]) -> dict[str, Any]:
    if rng.random() < 0.15 and ids:
        if rng.random() < 0.6:
            return {"_id": rng.choice([*ids, "nope"])}
        return {"_id": {"$in": rng.sample(ids, min(len(ids), rng.randint(1, 4)))}}
    name = rng.choice(FIELDS)

    def v() -> Any:
        x = value(rng, kind, name)
        return None if x is MISSING else x

    op = rng.choices(
        ["eq", "in", "gt", "gte", "lt", "lte", "ne", "exists", "nin"],
        [6, 3, 2, 2, 2, 2, 1, 1, 1],
    )[0]
    if op == "eq":
        return {name: v()}
    if op in ("in", "nin"):
        values = [v() for _ in range(rng.randint(1, 3))]
        return {name: {f"${op}": values}}
    if op == "exists":
        return {name: {"$exists": rng.random() < 0.5}}
    x = v()
    if isinstance(x, (list, dict)):
        x = rng.choice(CLEAN[name])
    return {name: {f"${op}": x}}


def query(rng: random.Random, kind: str, ids: list[Any]) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.1:
        return {}
    if roll < 0.18:
        return {"$or": [leaf(rng, kind, ids), leaf(rng, kind, ids)], **leaf(rng, kind, ids)}
    merged: dict[str, Any] = {}
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        merged.update(leaf(rng, kind, ids))
    return merged


def sort_spec(rng: random.Random, *, tiebreak: bool) -> list[tuple[str, int]]:
    keys = rng.sample(FIELDS, rng.choice((1, 1, 2)))
    spec = [(k, rng.choice((1, -1))) for k in keys]
    if tiebreak:
        spec.append(("_id", 1))
    return spec


def norm(v: Any) -> Any:
    """A sort key's value as MongoDB compares it (3 == 3.0, null == missing)."""
    if v is MISSING or v is None:
        return ("null",)
    if isinstance(v, (int, float, Int64)) and not isinstance(v, bool):
        return ("number", float(v))
    if isinstance(v, Decimal128):
        return ("number", float(v.to_decimal()))
    return ("other", repr(v))


def sort_keys(docs: list[dict[str, Any]], spec: list[tuple[str, int]]) -> list[Any]:
    return [tuple(norm(d.get(k, MISSING)) for k, _ in spec) for d in docs]


def attempt(fn: Callable[[], Any]) -> Any:
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - the two engines must fail alike
        return ("error", type(exc).__name__)


def run(
    reference: Any, candidate: Any, *, ops: int, seed: int, kind: str, docs: int = 120
) -> Report:
    """``reference`` and ``candidate``: empty collections (pymongo API) to compare."""
    rng = random.Random(seed)
    report = Report()
    sides = (reference, candidate)
    for c in sides:
        for keys, options in INDEXES:
            c.create_index(keys, **options)
    ids: list[Any] = []
    next_id = 0
    initial = []
    for _ in range(docs):
        d = document(rng, kind, next_id)
        next_id += 1
        initial.append(d)
        ids.append(d["_id"])
    for c in sides:
        c.insert_many([dict(d) for d in initial])

    def compare(label: str, fn: Callable[[Any], Any], how: str = "exact", spec: Any = None) -> None:
        a, b = (attempt(lambda c=c: fn(c)) for c in sides)
        same: bool
        if a[0] != "ok" or b[0] != "ok" or how == "exact":
            same = repr(a) == repr(b)
        elif how == "set":
            same = sorted(map(repr, a[1])) == sorted(map(repr, b[1]))
        elif how == "keys":
            same = sort_keys(a[1], spec) == sort_keys(b[1], spec)
        elif how == "keyset":  # the sort order and, with no limit, the same documents
            same = sort_keys(a[1], spec) == sort_keys(b[1], spec) and sorted(
                map(repr, a[1])
            ) == sorted(map(repr, b[1]))
        else:  # "len"
            same = len(a[1]) == len(b[1])
        if not same:
            report.mismatches.append(f"{label}\n  reference: {a!r:.600}\n  candidate: {b!r:.600}")

    for _ in range(ops):
        report.ops += 1
        roll = rng.random()
        q = query(rng, kind, ids)
        if roll < 0.45:
            report.reads += 1
            tiebreak = rng.random() < 0.6
            spec = sort_spec(rng, tiebreak=tiebreak) if rng.random() < 0.75 else None
            limit = rng.choice((0, 0, 1, 3, 10))
            skip = rng.choice((0, 0, 0, 2))
            hint = rng.choice([None, None, None] + [o["name"] for _, o in INDEXES])

            def find(
                c: Any,
                q: Any = q,
                spec: Any = spec,
                limit: int = limit,
                skip: int = skip,
                hint: Any = hint,
            ) -> list[dict[str, Any]]:
                cursor = c.find(q)
                if spec:
                    cursor = cursor.sort(spec)
                if hint:
                    cursor = cursor.hint(hint)
                return list(cursor.skip(skip).limit(limit))

            label = f"find {q} sort={spec} skip={skip} limit={limit} hint={hint}"
            if spec and tiebreak:
                compare(label, find)
            elif spec:
                compare(label, find, "keyset" if not limit and not skip else "keys", spec)
            else:
                compare(label, find, "set" if not limit and not skip else "len")
        elif roll < 0.55:
            report.reads += 1
            compare(f"count {q}", lambda c, q=q: c.count_documents(q))
        elif roll < 0.6:
            report.reads += 1
            name = rng.choice(FIELDS)
            compare(
                f"distinct {name} {q}",
                lambda c, q=q, name=name: sorted({repr(norm(v)) for v in c.distinct(name, q)}),
            )
        elif roll < 0.66:
            report.reads += 1
            spec = sort_spec(rng, tiebreak=True)
            compare(f"find_one {q} {spec}", lambda c, q=q, spec=spec: c.find_one(q, sort=spec))
        else:
            report.writes += 1
            name = rng.choice(FIELDS)
            new = value(rng, kind, name)
            update = {"$unset": {name: ""}} if new is MISSING else {"$set": {name: new}}
            write = rng.random()
            if write < 0.35:
                # The orchestrator's shape: by _id plus the state it expects.
                target = rng.choice(ids) if ids else "nope"
                cond = {**(leaf(rng, kind, []) if rng.random() < 0.8 else {}), "_id": target}
                compare(
                    f"find_one_and_update {cond} {update}",
                    lambda c, cond=cond, update=update: c.find_one_and_update(
                        cond, update, return_document=True
                    ),
                )
            elif write < 0.5:
                spec = sort_spec(rng, tiebreak=True)
                compare(
                    f"find_one_and_update {q} sort={spec} {update}",
                    lambda c, q=q, spec=spec, update=update: c.find_one_and_update(
                        q, update, sort=spec, return_document=True
                    ),
                )
            elif write < 0.58:
                compare(
                    f"update_many {q} {update}",
                    lambda c, q=q, update=update: c.update_many(q, update).modified_count,
                )
            elif write < 0.72:
                target = rng.choice(ids) if ids else "nope"
                cond = {**leaf(rng, kind, []), "_id": target}
                compare(
                    f"update_one {cond} {update}",
                    lambda c, cond=cond, update=update: c.update_one(cond, update).modified_count,
                )
            elif write < 0.9:
                d = document(rng, kind, next_id)
                next_id += 1
                ids.append(d["_id"])
                compare(f"insert {d}", lambda c, d=d: c.insert_one(dict(d)).inserted_id)
            elif ids:
                target = ids.pop(rng.randrange(len(ids)))
                compare(
                    f"delete {target}", lambda c, t=target: c.delete_one({"_id": t}).deleted_count
                )
    everything = [sorted(map(repr, c.find({}))) for c in sides]
    if everything[0] != everything[1]:
        report.mismatches.append("final contents differ")
    return report
