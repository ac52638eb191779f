"""Casts: one per attempt of a piece whose generator is a spell, recording each step.

A cast's steps are the spell's, run in order; each records its status, output, cost and
duration. Step outputs never count as pieces: only the last step's output completes the
piece, through the orchestrator's one completion function. ``castKey`` (piece and attempt) is
unique, so an attempt has one cast; each step update is conditional on the step's status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from domain.ids import new_id
from domain.principal import Principal
from orchestration.base import clock
from orchestration.base.indexes import ensure_indexes
from orchestration.base.scope import owned
from orchestration.base.tools import MediaRef, ToolOutput
from orchestration.cooking.pieces import Piece
from orchestration.generators.spells import Step

type Document = dict[str, Any]

ID_PREFIX = "cs"


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUBMITTED = "submitted"  # a provider accepted it; the outcome comes by webhook or poll
    COMPLETED = "completed"
    FAILED = "failed"


class CastStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class CastStep:
    tool_id: str
    status: StepStatus
    output: str | None
    media: tuple[MediaRef, ...]
    cost_micros: int
    duration_ms: int | None
    run_id: str | None
    error: str | None


@dataclass(frozen=True)
class Cast:
    id: str
    piece_id: str
    cook_id: str
    attempt: int
    status: CastStatus
    steps: tuple[CastStep, ...]
    created_at: datetime
    ended_at: datetime | None


class CastStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._casts = db["casts"]

    @staticmethod
    def indexes() -> list[IndexModel]:
        return [
            IndexModel("castKey", name="one_cast_per_attempt", unique=True),
            IndexModel([("pieceId", ASCENDING), ("attempt", ASCENDING)], name="by_piece"),
        ]

    async def ensure_indexes(self) -> None:
        await ensure_indexes(self._casts, self.indexes())

    async def create(self, piece: Piece, steps: tuple[Step, ...]) -> str:
        """Raises DuplicateKeyError if this attempt already has a cast."""
        cast_id = new_id(ID_PREFIX)
        await self._casts.insert_one(
            {
                "_id": cast_id,
                "castKey": f"{piece.id}:{piece.attempt}",
                "pieceId": piece.id,
                "cookId": piece.cook_id,
                "ownerId": piece.owner_id,
                "attempt": piece.attempt,
                "status": CastStatus.RUNNING.value,
                "steps": [
                    {"toolId": s.tool_id, "status": StepStatus.PENDING.value, "costMicros": 0}
                    for s in steps
                ],
                "createdAt": clock.now(),
            }
        )
        return cast_id

    async def _step(
        self, cast_id: str, n: int, was: tuple[StepStatus, ...], fields: Document
    ) -> None:
        at = f"steps.{n - 1}"
        await self._casts.update_one(
            {"_id": cast_id, f"{at}.status": {"$in": [s.value for s in was]}},
            {"$set": {f"{at}.{k}": v for k, v in fields.items()}},
        )

    async def step_running(self, cast_id: str, n: int) -> None:
        await self._step(cast_id, n, (StepStatus.PENDING,), {"status": StepStatus.RUNNING.value})

    async def step_submitted(self, cast_id: str, n: int, run_id: str) -> None:
        fields = {"status": StepStatus.SUBMITTED.value, "runId": run_id}
        await self._step(cast_id, n, (StepStatus.RUNNING,), fields)

    async def step_completed(self, cast_id: str, n: int, output: ToolOutput, ms: int) -> None:
        fields = {
            "status": StepStatus.COMPLETED.value,
            "output": output.text,
            "media": [vars(m) for m in output.media],
            "costMicros": output.cost_micros,
            "durationMs": ms,
        }
        await self._step(cast_id, n, (StepStatus.RUNNING, StepStatus.SUBMITTED), fields)

    async def step_failed(self, cast_id: str, n: int, reason: str, ms: int) -> None:
        fields = {"status": StepStatus.FAILED.value, "error": reason, "durationMs": ms}
        await self._step(cast_id, n, (StepStatus.RUNNING, StepStatus.SUBMITTED), fields)

    async def finish(self, cast_id: str, status: CastStatus) -> None:
        await self._casts.update_one(
            {"_id": cast_id, "status": CastStatus.RUNNING.value},
            {"$set": {"status": status.value, "endedAt": clock.now()}},
        )

    async def for_piece(self, principal: Principal, piece_id: str) -> list[Cast]:
        cursor = self._casts.find(owned(principal, {"pieceId": piece_id})).sort(
            "attempt", ASCENDING
        )
        return [_from_doc(d) async for d in cursor]


def _from_doc(doc: Document) -> Cast:
    return Cast(
        id=doc["_id"],
        piece_id=doc["pieceId"],
        cook_id=doc["cookId"],
        attempt=doc["attempt"],
        status=CastStatus(doc["status"]),
        steps=tuple(
            CastStep(
                tool_id=s["toolId"],
                status=StepStatus(s["status"]),
                output=s.get("output"),
                media=tuple(MediaRef(**m) for m in s.get("media", [])),
                cost_micros=s.get("costMicros", 0),
                duration_ms=s.get("durationMs"),
                run_id=s.get("runId"),
                error=s.get("error"),
            )
            for s in doc["steps"]
        ),
        created_at=doc["createdAt"],
        ended_at=doc.get("endedAt"),
    )
