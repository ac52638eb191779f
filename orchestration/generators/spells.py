"""Spells: an owner's ordered chain of tool steps, usable as a collection's generator.

A step's parameters may use the piece's ``[[Category]]`` values and ``[[step:N]]``, the text
output of an earlier step N (counted from 1). Spells are owner-scoped like collections; a cook
copies its spell's steps when it starts, so editing a spell never changes a running cook.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from domain.errors import BadUserInput, Conflict, NotFound, Problem
from domain.ids import AccountId, new_id
from domain.principal import Principal
from orchestration.art.template import Json, placeholders, validate_template
from orchestration.base import clock
from orchestration.base.indexes import ensure_indexes
from orchestration.base.pagination import Page, newest_first
from orchestration.base.scope import owned
from orchestration.base.tools import Toolbox

ID_PREFIX = "spl"
MAX_STEPS = 10
MAX_SPELL_NAME = 100
MAX_SPELL_DESCRIPTION = 2000
STEP_PREFIX = "step:"

type Document = dict[str, Any]


@dataclass(frozen=True)
class Step:
    tool_id: str
    params: Json


@dataclass(frozen=True)
class SpellSpec:
    name: str
    description: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Spell:
    id: str
    owner_id: AccountId
    spec: SpellSpec
    version: int
    created_at: datetime
    updated_at: datetime

    def categories(self) -> set[str]:
        """The ``[[Category]]`` names its steps use (the collection must have them)."""
        return {
            name
            for step in self.spec.steps
            for name in placeholders(step.params)
            if not name.startswith(STEP_PREFIX)
        }


def step_ref(n: int) -> str:
    return f"{STEP_PREFIX}{n}"


def validate_spell(spec: SpellSpec, toolbox: Toolbox, path: str = "input") -> list[Problem]:
    problems: list[Problem] = []
    if not spec.name.strip():
        problems.append(Problem(f"{path}.name", "must not be blank"))
    elif len(spec.name) > MAX_SPELL_NAME:
        problems.append(Problem(f"{path}.name", f"is longer than {MAX_SPELL_NAME} characters"))
    if len(spec.description) > MAX_SPELL_DESCRIPTION:
        problems.append(
            Problem(f"{path}.description", f"is longer than {MAX_SPELL_DESCRIPTION} characters")
        )
    if not 1 <= len(spec.steps) <= MAX_STEPS:
        problems.append(Problem(f"{path}.steps", f"must hold between 1 and {MAX_STEPS} steps"))
    for n, step in enumerate(spec.steps, start=1):
        where = f"{path}.steps[{n - 1}]"
        tool = toolbox.get(step.tool_id)
        if tool is None:
            problems.append(Problem(f"{where}.toolId", f"names no tool: {step.tool_id!r}"))
            continue
        earlier = {step_ref(k) for k in range(1, n)}
        used = placeholders(step.params)
        bad = sorted(u for u in used if u.startswith(STEP_PREFIX) and u not in earlier)
        if bad:
            names = ", ".join(f"[[{b}]]" for b in bad)
            problems.append(
                Problem(f"{where}.params", f"refers to {names}: only earlier steps can be used")
            )
        categories = {u for u in used if not u.startswith(STEP_PREFIX)}
        problems += validate_template(step.params, categories | earlier, f"{where}.params")
        problems += tool.check_params(step.params, f"{where}.params")
    return problems


class SpellStore:
    def __init__(self, db: AsyncDatabase[Document], toolbox: Toolbox) -> None:
        self._spells = db["spells"]
        self._toolbox = toolbox

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [
            IndexModel(
                [("ownerId", ASCENDING), ("createdAt", DESCENDING), ("_id", DESCENDING)],
                name="owner_listing",
            )
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._spells, self.indexes())

    async def create(self, principal: Principal, spec: SpellSpec) -> Spell:
        self._check(spec)
        at = clock.now()
        spell = Spell(new_id(ID_PREFIX), principal.subject, spec, 1, at, at)
        await self._spells.insert_one(
            {
                "_id": spell.id,
                "ownerId": spell.owner_id,
                **_spec_doc(spec),
                "version": 1,
                "createdAt": at,
                "updatedAt": at,
            }
        )
        return spell

    async def update(
        self, principal: Principal, spell_id: str, spec: SpellSpec, expected_version: int | None
    ) -> Spell:
        """Replace the spell's definition, only if it is still at the version read."""
        self._check(spec)
        current = await self.get(principal, spell_id)
        version = current.version if expected_version is None else expected_version
        doc = await self._spells.find_one_and_update(
            {**owned(principal, {"_id": spell_id}), "version": version},
            {"$set": {**_spec_doc(spec), "updatedAt": clock.now()}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            latest = await self.get(principal, spell_id)
            raise Conflict(
                f"the spell is at version {latest.version}, not {version}",
                currentVersion=latest.version,
            )
        return _from_doc(doc)

    async def get(self, principal: Principal, spell_id: str) -> Spell:
        doc = await self._spells.find_one(owned(principal, {"_id": spell_id}))
        if doc is None:
            raise NotFound("spell", spell_id)
        return _from_doc(doc)

    async def list_mine(self, principal: Principal, first: int, after: str | None) -> Page[Spell]:
        query = {"ownerId": principal.subject}
        return await newest_first(self._spells, query, first, after, _from_doc)

    def _check(self, spec: SpellSpec) -> None:
        problems = validate_spell(spec, self._toolbox)
        if problems:
            raise BadUserInput(problems)


def steps_to_doc(steps: tuple[Step, ...]) -> list[Document]:
    # Parameters are stored as JSON text: their keys may hold '.' or '$'.
    return [
        {"toolId": s.tool_id, "paramsJson": json.dumps(s.params, separators=(",", ":"))}
        for s in steps
    ]


def steps_from_doc(docs: list[Document]) -> tuple[Step, ...]:
    return tuple(Step(d["toolId"], json.loads(d["paramsJson"])) for d in docs)


def _spec_doc(spec: SpellSpec) -> Document:
    return {
        "name": spec.name,
        "description": spec.description,
        "steps": steps_to_doc(spec.steps),
    }


def _from_doc(doc: Document) -> Spell:
    return Spell(
        id=doc["_id"],
        owner_id=AccountId(doc["ownerId"]),
        spec=SpellSpec(doc["name"], doc["description"], steps_from_doc(doc["steps"])),
        version=doc["version"],
        created_at=doc["createdAt"],
        updated_at=doc["updatedAt"],
    )
