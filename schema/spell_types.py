"""GraphQL types for spells, their casts, tools' inputs and stored media."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import cast

import strawberry
from strawberry.scalars import JSON

from orchestration.art.template import MAX_TEMPLATE_BYTES
from orchestration.base.pagination import Page, encode_cursor
from orchestration.cooking import casts as cast_domain
from orchestration.generators import spells as domain
from orchestration.generators.spells import MAX_SPELL_DESCRIPTION, MAX_SPELL_NAME, MAX_STEPS
from schema.node import Node
from schema.types import PageInfo

StepStatus = strawberry.enum(cast_domain.StepStatus, name="CastStepStatus")
CastStatus = strawberry.enum(cast_domain.CastStatus, name="CastStatus")

STEP_PARAMS_RULE = (
    "A JSON object (at most "
    f"{MAX_TEMPLATE_BYTES // 1024} KiB) whose strings may hold `[[Category]]` (the piece's "
    "trait values) and `[[step:N]]` (the text output of an earlier step N, counted from 1). "
    "Checked against the tool's declared inputs."
)


def usd(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-6)


@strawberry.type(description="One step of a spell.")
class SpellStep:
    tool_id: strawberry.ID
    params: JSON


@strawberry.type(description="An ordered chain of tool steps, usable as a generator.")
class Spell(Node):
    id: strawberry.ID
    owner_id: strawberry.ID
    name: str
    description: str
    steps: list[SpellStep]
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_domain(cls, s: domain.Spell) -> Spell:
        return cls(
            id=strawberry.ID(s.id),
            owner_id=strawberry.ID(s.owner_id),
            name=s.spec.name,
            description=s.spec.description,
            steps=[
                SpellStep(tool_id=strawberry.ID(step.tool_id), params=cast(JSON, step.params))
                for step in s.spec.steps
            ],
            version=s.version,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


@strawberry.type
class SpellEdge:
    cursor: str
    node: Spell


@strawberry.type(description="A page of spells, newest first.")
class SpellConnection:
    edges: list[SpellEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[domain.Spell]) -> SpellConnection:
        return cls(
            edges=[
                SpellEdge(cursor=encode_cursor(s.created_at, s.id), node=Spell.from_domain(s))
                for s in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.input(description="One step: a tool and its parameters.")
class SpellStepInput:
    tool_id: strawberry.ID = strawberry.field(
        description="A tool id from `tools` (at most 40 characters)."
    )
    params: JSON = strawberry.field(description=STEP_PARAMS_RULE)


@strawberry.input(description="A spell's whole definition.")
class SpellInput:
    name: str = strawberry.field(description=f"1-{MAX_SPELL_NAME} characters, not blank.")
    steps: list[SpellStepInput] = strawberry.field(description=f"1 to {MAX_STEPS} steps.")
    description: str = strawberry.field(
        default="", description=f"At most {MAX_SPELL_DESCRIPTION} characters."
    )

    def to_domain(self) -> domain.SpellSpec:
        return domain.SpellSpec(
            name=self.name,
            description=self.description,
            steps=tuple(domain.Step(str(s.tool_id), s.params) for s in self.steps),
        )


@strawberry.type(description="One step of a cast, as it ran.")
class CastStep:
    tool_id: strawberry.ID
    status: StepStatus  # type: ignore[valid-type]
    output: str | None
    media_count: int = strawberry.field(description="Images this step produced.")
    cost_usd: Decimal
    duration_ms: int | None
    run_id: str | None = strawberry.field(description="The provider's run id, if it had one.")
    error: str | None


@strawberry.type(description="One attempt of a piece made with a spell: its steps as they ran.")
class Cast:
    id: strawberry.ID
    attempt: int
    status: CastStatus  # type: ignore[valid-type]
    steps: list[CastStep]
    created_at: datetime
    ended_at: datetime | None

    @classmethod
    def from_domain(cls, c: cast_domain.Cast) -> Cast:
        return cls(
            id=strawberry.ID(c.id),
            attempt=c.attempt,
            status=c.status,
            steps=[
                CastStep(
                    tool_id=strawberry.ID(s.tool_id),
                    status=s.status,
                    output=s.output,
                    media_count=len(s.media),
                    cost_usd=usd(s.cost_micros),
                    duration_ms=s.duration_ms,
                    run_id=s.run_id,
                    error=s.error,
                )
                for s in c.steps
            ],
            created_at=c.created_at,
            ended_at=c.ended_at,
        )
