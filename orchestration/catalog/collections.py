"""Collections: an artist's configuration for a set of pieces. Owner-scoped in every filter."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from domain.errors import BadUserInput, Conflict, NotFound, Problem
from domain.ids import AccountId, new_id, parse_entity_id
from domain.principal import Principal
from orchestration.art.template import Json, validate_template
from orchestration.art.traits import (
    DrawRules,
    TraitTree,
    rules_from_doc,
    rules_to_doc,
    tree_from_doc,
    tree_to_doc,
    validate_rules,
    validate_tree,
)
from orchestration.base import clock
from orchestration.base.indexes import ensure_indexes
from orchestration.base.pagination import Page, newest_first
from orchestration.base.scope import owned
from orchestration.base.tools import Toolbox
from orchestration.generators.spells import ID_PREFIX as SPELL_PREFIX
from orchestration.generators.spells import SpellStore

MAX_COLLECTION_NAME = 100
MAX_DESCRIPTION = 2000
MAX_TOTAL_SUPPLY = 100_000
UPDATE_RETRIES = 5
ID_PREFIX = "col"

type Document = dict[str, Any]


class GeneratorKind(StrEnum):
    TOOL = "tool"
    SPELL = "spell"


@dataclass(frozen=True)
class Generator:
    kind: GeneratorKind
    id: str


@dataclass(frozen=True)
class CollectionSpec:
    """What an artist defines; every field is validated together by ``validate_spec``."""

    name: str
    description: str
    total_supply: int
    generator: Generator
    trait_tree: TraitTree
    template: Json
    rules: DrawRules = field(default_factory=DrawRules)


@dataclass(frozen=True)
class CollectionPatch:
    """A partial update: ``None`` leaves a field as it is."""

    name: str | None = None
    description: str | None = None
    total_supply: int | None = None
    generator: Generator | None = None
    trait_tree: TraitTree | None = None
    template: Json | None = None
    rules: DrawRules | None = None


@dataclass(frozen=True)
class Collection:
    id: str
    owner_id: AccountId
    spec: CollectionSpec
    archived: bool
    created_at: datetime
    updated_at: datetime
    version: int


def validate_spec(spec: CollectionSpec, toolbox: Toolbox, path: str = "input") -> list[Problem]:
    problems: list[Problem] = []
    if not spec.name.strip():
        problems.append(Problem(f"{path}.name", "must not be blank"))
    elif len(spec.name) > MAX_COLLECTION_NAME:
        problems.append(Problem(f"{path}.name", f"is longer than {MAX_COLLECTION_NAME} characters"))
    if len(spec.description) > MAX_DESCRIPTION:
        problems.append(
            Problem(f"{path}.description", f"is longer than {MAX_DESCRIPTION} characters")
        )
    if not 1 <= spec.total_supply <= MAX_TOTAL_SUPPLY:
        problems.append(Problem(f"{path}.totalSupply", f"must be between 1 and {MAX_TOTAL_SUPPLY}"))
    problems += _check_generator(spec.generator, toolbox, f"{path}.generator")
    problems += validate_tree(spec.trait_tree, f"{path}.traitTree")
    names = [c.name for c in spec.trait_tree]
    template_problems = validate_template(spec.template, names, f"{path}.template")
    tool = toolbox.get(spec.generator.id) if spec.generator.kind is GeneratorKind.TOOL else None
    if tool is not None and not template_problems:
        template_problems = tool.check_params(spec.template, f"{path}.template")
    problems += template_problems
    problems += validate_rules(spec.rules, spec.trait_tree, f"{path}.rules")
    return problems


def _check_generator(generator: Generator, toolbox: Toolbox, path: str) -> list[Problem]:
    if generator.kind is GeneratorKind.TOOL and generator.id not in toolbox:
        known = ", ".join(sorted(t.id for t in toolbox.all()))
        return [Problem(f"{path}.toolId", f"names no tool (known tools: {known})")]
    if generator.kind is GeneratorKind.SPELL:
        try:
            parse_entity_id(generator.id, SPELL_PREFIX, f"{path}.spellId")
        except BadUserInput as exc:
            return exc.problems
    return []


def apply_patch(spec: CollectionSpec, patch: CollectionPatch) -> CollectionSpec:
    changes = {k: v for k, v in vars(patch).items() if v is not None}
    return replace(spec, **changes)


class CollectionStore:
    """Data access for collections. Every method takes the caller and scopes its filter."""

    def __init__(self, db: AsyncDatabase[Document], toolbox: Toolbox, spells: SpellStore) -> None:
        self._coll: AsyncCollection[Document] = db["collections"]
        self._toolbox = toolbox
        self._spells = spells

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [
            IndexModel(
                [
                    ("ownerId", ASCENDING),
                    ("archived", ASCENDING),
                    ("createdAt", DESCENDING),
                    ("_id", DESCENDING),
                ],
                name="owner_listing",
            )
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._coll, self.indexes())

    async def _validate(self, principal: Principal, spec: CollectionSpec) -> None:
        """Every rule at once, then the spell: the caller's, and its categories exist."""
        _raise_if(validate_spec(spec, self._toolbox))
        if spec.generator.kind is not GeneratorKind.SPELL:
            return
        where = "input.generator.spellId"
        try:
            spell = await self._spells.get(principal, spec.generator.id)
        except NotFound:
            raise BadUserInput.at(where, "names no spell of yours") from None
        missing = sorted(spell.categories() - {c.name for c in spec.trait_tree})
        if missing:
            names = ", ".join(f"[[{m}]]" for m in missing)
            raise BadUserInput.at(where, f"the spell uses categories the tree lacks: {names}")

    async def check_patch(
        self, principal: Principal, collection: Collection, patch: CollectionPatch
    ) -> None:
        """Raise ``BadUserInput`` if ``patch`` would be refused on ``collection`` as it is now
        (``update`` checks again when it writes), so a caller can refuse before other work."""
        await self._validate(principal, apply_patch(collection.spec, patch))

    async def create(self, principal: Principal, spec: CollectionSpec) -> Collection:
        await self._validate(principal, spec)
        at = clock.now()
        collection = Collection(
            id=new_id(ID_PREFIX),
            owner_id=principal.subject,
            spec=spec,
            archived=False,
            created_at=at,
            updated_at=at,
            version=1,
        )
        await self._coll.insert_one(_to_doc(collection))
        return collection

    async def get(self, principal: Principal, collection_id: str) -> Collection:
        doc = await self._coll.find_one(owned(principal, {"_id": collection_id}))
        if doc is None:
            raise NotFound("collection", collection_id)
        return _from_doc(doc)

    async def update(
        self,
        principal: Principal,
        collection_id: str,
        patch: CollectionPatch,
        expected_version: int | None = None,
    ) -> Collection:
        """Validate the merged result, then write it only if nobody changed it meanwhile."""
        for _ in range(UPDATE_RETRIES):
            current = await self.get(principal, collection_id)
            if expected_version is not None and current.version != expected_version:
                raise Conflict(
                    f"the collection is at version {current.version}, not {expected_version}",
                    currentVersion=current.version,
                )
            spec = apply_patch(current.spec, patch)
            await self._validate(principal, spec)
            doc = await self._coll.find_one_and_update(
                {**owned(principal, {"_id": collection_id}), "version": current.version},
                {
                    "$set": {**_spec_doc(spec), "updatedAt": clock.now()},
                    "$inc": {"version": 1},
                },
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return _from_doc(doc)
            if expected_version is not None:
                raise Conflict("the collection changed while it was being updated")
        raise Conflict("the collection kept changing; try again")

    async def set_archived(
        self, principal: Principal, collection_id: str, archived: bool
    ) -> Collection:
        """Archive (soft delete) or restore. Idempotent: a second call changes nothing."""
        doc = await self._coll.find_one_and_update(
            {**owned(principal, {"_id": collection_id}), "archived": not archived},
            {"$set": {"archived": archived, "updatedAt": clock.now()}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            return await self.get(principal, collection_id)
        return _from_doc(doc)

    async def allocate_piece_index(self, collection_id: str, n: int = 1) -> int:
        """The first of the collection's next ``n`` piece indexes: unique and increasing, never
        reused (one round trip for all ``n``)."""
        doc = await self._coll.find_one_and_update(
            {"_id": collection_id},
            {"$inc": {"nextPieceIndex": n}},
            projection={"nextPieceIndex": 1},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None:
            raise NotFound("collection", collection_id)
        index: int = doc["nextPieceIndex"] - n
        return index

    async def next_piece_index(self, collection_id: str) -> int:
        doc = await self._coll.find_one({"_id": collection_id}, {"nextPieceIndex": 1})
        return 0 if doc is None else int(doc.get("nextPieceIndex", 0))

    async def list_mine(
        self,
        principal: Principal,
        first: int,
        after: str | None,
        include_archived: bool,
    ) -> Page[Collection]:
        query: Document = {"ownerId": principal.subject}
        if not include_archived:
            query["archived"] = False
        return await newest_first(self._coll, query, first, after, _from_doc)


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise BadUserInput(problems)


def _spec_doc(spec: CollectionSpec) -> Document:
    return {
        "name": spec.name,
        "description": spec.description,
        "totalSupply": spec.total_supply,
        "generator": {"kind": spec.generator.kind.value, "id": spec.generator.id},
        "traitTree": tree_to_doc(spec.trait_tree),
        # Stored as text: template keys may hold '.' or '$', which field names may not.
        "templateJson": json.dumps(spec.template, separators=(",", ":"), ensure_ascii=False),
        "rules": rules_to_doc(spec.rules),
    }


def _to_doc(c: Collection) -> Document:
    return {
        "_id": c.id,
        "ownerId": c.owner_id,
        **_spec_doc(c.spec),
        "archived": c.archived,
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
        "version": c.version,
    }


def _from_doc(doc: Document) -> Collection:
    gen = doc["generator"]
    spec = CollectionSpec(
        name=doc["name"],
        description=doc["description"],
        total_supply=doc["totalSupply"],
        generator=Generator(GeneratorKind(gen["kind"]), gen["id"]),
        trait_tree=tree_from_doc(doc["traitTree"]),
        template=json.loads(doc["templateJson"]),
        rules=rules_from_doc(doc.get("rules")),
    )
    return Collection(
        id=doc["_id"],
        owner_id=AccountId(doc["ownerId"]),
        spec=spec,
        archived=doc["archived"],
        created_at=doc["createdAt"],
        updated_at=doc["updatedAt"],
        version=doc["version"],
    )
