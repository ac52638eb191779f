"""The cook orchestrator: user operations, and the sweeper, over its parts.

Nothing here is authoritative in memory. Its parts, each in its own module:

- ``scheduling.py``: start pieces in free slots, finish cooks (``kick``, ``fill``);
- ``attempts.py``: run an attempt's tool or spell; provider runs, webhooks and polling;
- ``completion.py``: the one completion function;
- ``reviewing.py``: accept, reject, exclude;
- ``events.py``: the event log, its outboxes and their relay.

The scheduler and the sweeper (``tick``) may run in every process at once: each step is a
conditional single-document update or an insert under unique indexes (see ``pieces.py``), so
a racing process's step becomes a no-op. In-process tasks only make things happen sooner; a
restart loses nothing, since the periodic tick finds every running cook, due retry, expired
lease and unrelayed event in the database.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from domain.errors import BadUserInput, Conflict, NotFound, Problem
from domain.principal import Principal
from orchestration.art.engine import (
    Config,
    Draw,
    NoValidDraw,
    UniqueValuesExhausted,
    combination_capacity,
    unique_capacity,
)
from orchestration.base.background import Background, stop_if_cancelled
from orchestration.base.pace import Pace
from orchestration.base.policy import SEED_BOUND, CookPolicy
from orchestration.base.tools import Toolbox, ToolSpec
from orchestration.catalog.collections import CollectionSpec, CollectionStore, GeneratorKind
from orchestration.cooking.attempts import Attempts
from orchestration.cooking.casts import CastStore
from orchestration.cooking.completion import Completion
from orchestration.cooking.cooks import ACTIVE, Cook, CookRequest, CookStatus, CookStore
from orchestration.cooking.events import EventLog, EventType
from orchestration.cooking.piece_model import Failure, Outcome, Piece
from orchestration.cooking.pieces import PieceStore
from orchestration.cooking.reviewing import MAX_REVIEW_DECISIONS as MAX_REVIEW_DECISIONS
from orchestration.cooking.reviewing import Decision as Decision
from orchestration.cooking.reviewing import Reviewer
from orchestration.cooking.runs import RunStore
from orchestration.cooking.scheduling import Scheduler, first_valid_draw
from orchestration.generators.spells import SpellStore, Step, validate_spell
from orchestration.generators.webhooks import DeliveryLog

log = logging.getLogger("cook.orchestrator")

MAX_PREVIEW = 100


@dataclass(frozen=True)
class Generators:
    """What pieces are generated with: tools, spells, and the records of their work."""

    toolbox: Toolbox
    spells: SpellStore
    runs: RunStore
    casts: CastStore
    deliveries: DeliveryLog


class Orchestrator:
    def __init__(
        self,
        collections: CollectionStore,
        cooks: CookStore,
        pieces: PieceStore,
        events: EventLog,
        policy: CookPolicy,
        generators: Generators,
    ) -> None:
        self.collections = collections
        self.cooks = cooks
        self.pieces = pieces
        self.events = events
        self.policy = policy
        self.toolbox = generators.toolbox
        self.spells = generators.spells
        self.runs = generators.runs
        self.casts = generators.casts
        self.deliveries = generators.deliveries
        self._background = Background(log)
        self.pace = Pace(policy.tick_seconds)
        self.completion = Completion(cooks, pieces, events, self.kick, self.relay_soon)
        self.attempts = Attempts(
            self.toolbox,
            self.runs,
            self.casts,
            pieces,
            events,
            policy,
            self.completion.complete,
        )
        self.scheduler = Scheduler(
            collections,
            cooks,
            pieces,
            events,
            self.completion.fail_cook,
            self.attempts.run,
            self._background,
        )
        self.reviewer = Reviewer(pieces, events, self.kick)

    # --- user operations ----------------------------------------------------------------

    async def preview(
        self, principal: Principal, collection_id: str, count: int, seed: int | None
    ) -> tuple[int, list[Draw]]:
        """Draw what the next cook would, writing nothing."""
        problems = []
        if not 1 <= count <= MAX_PREVIEW:
            problems.append(Problem("count", f"must be between 1 and {MAX_PREVIEW}"))
        if seed is not None and not 0 <= seed <= SEED_BOUND:
            problems.append(Problem("seed", f"must be between 0 and {SEED_BOUND}"))
        if problems:
            raise BadUserInput(problems)
        collection = await self.collections.get(principal, collection_id)
        spec = collection.spec
        config = Config(spec.trait_tree, spec.template, spec.rules)
        start = await self.collections.next_piece_index(collection.id)
        used_seed = seed if seed is not None else _random_seed()
        try:
            return used_seed, [first_valid_draw(config, used_seed, start + i) for i in range(count)]
        except (UniqueValuesExhausted, NoValidDraw) as exc:
            raise BadUserInput.at("count", str(exc)) from exc

    async def start(self, principal: Principal, collection_id: str, request: CookRequest) -> Cook:
        problems = self.cooks.check_request(request)
        if problems:
            raise BadUserInput(problems)
        collection = await self.collections.get(principal, collection_id)
        if collection.archived:
            raise Conflict("the collection is archived: restore it to cook")
        spec = collection.spec
        steps = await self._generator_steps(principal, collection.spec)
        used = await self.pieces.supply_used(collection.id)
        remaining = spec.total_supply - used
        if request.count > remaining:
            raise BadUserInput.at(
                "count",
                f"exceeds the remaining supply: {remaining} of {spec.total_supply} "
                f"({used} accepted, awaiting review or in flight)",
            )
        capacity = unique_capacity(spec.trait_tree)
        if capacity is not None:
            left = capacity - await self.collections.next_piece_index(collection.id)
            if request.count > left:
                raise BadUserInput.at(
                    "count",
                    f"needs {request.count} unique values but the unique ranges have {left} left",
                )
        config = Config(spec.trait_tree, spec.template, spec.rules)
        combinations = combination_capacity(config)
        if combinations == 0:
            raise BadUserInput.at("collectionId", "the exclusion rules allow no combination")
        if spec.rules.unique_combinations and combinations is not None:
            free = combinations - await self.pieces.combinations_held(collection.id)
            if request.count > free:
                raise BadUserInput.at(
                    "count",
                    f"needs {request.count} unique trait combinations but only {free} remain",
                )
        cook = await self.cooks.create(collection, request, steps)
        self.kick(cook.id)
        return cook

    async def _generator_steps(
        self, principal: Principal, spec: CollectionSpec
    ) -> tuple[Step, ...]:
        """Check the generator still works; a spell's steps, to copy into the cook."""
        if spec.generator.kind is GeneratorKind.TOOL:
            if spec.generator.id not in self.toolbox:
                raise BadUserInput.at("collectionId", f"the tool {spec.generator.id!r} is gone")
            return ()
        try:
            spell = await self.spells.get(principal, spec.generator.id)
        except NotFound:
            raise BadUserInput.at("collectionId", "the collection's spell is gone") from None
        problems = validate_spell(spell.spec, self.toolbox)
        if problems:
            raise BadUserInput.at(
                "collectionId", f"the collection's spell no longer works: {problems[0].message}"
            )
        return spell.spec.steps

    async def pause(self, principal: Principal, cook_id: str) -> Cook:
        return await self._user_transition(
            principal, cook_id, (CookStatus.RUNNING,), CookStatus.PAUSED, EventType.COOK_PAUSED
        )

    async def resume(self, principal: Principal, cook_id: str) -> Cook:
        cook = await self._user_transition(
            principal, cook_id, (CookStatus.PAUSED,), CookStatus.RUNNING, EventType.COOK_RESUMED
        )
        await self.scheduler.fill(cook.id)  # finishes it if nothing is left to do
        return await self.cooks.get(principal, cook_id)

    async def cancel(self, principal: Principal, cook_id: str, why: str | None = None) -> Cook:
        """Cancel a running or paused cook; ``why`` is added to its recorded reason."""
        reason = f"cancelled by {principal.subject}" + (f": {why}" if why else "")
        cook = await self._user_transition(
            principal,
            cook_id,
            (CookStatus.RUNNING, CookStatus.PAUSED),
            CookStatus.CANCELLING,
            EventType.COOK_CANCELLING,
            reason=reason,
        )
        await self.pieces.cancel_waiting(cook.id)
        await self.scheduler.finish_cancelling(cook)
        return await self.cooks.get(principal, cook_id)

    async def _user_transition(
        self,
        principal: Principal,
        cook_id: str,
        allowed: tuple[CookStatus, ...],
        to: CookStatus,
        event: EventType,
        reason: str | None = None,
    ) -> Cook:
        moved = await self.cooks.transition(
            cook_id, allowed, to, event, principal=principal, reason=reason
        )
        if moved is not None:
            return moved
        current = await self.cooks.get(principal, cook_id)  # NOT_FOUND if not theirs
        if current.status is to:
            return current  # already there: idempotent
        raise Conflict(
            f"the cook is {current.status.value}; it must be "
            + " or ".join(s.value for s in allowed),
            status=current.status.value,
        )

    # --- the parts' entry points -----------------------------------------------------------

    async def review(self, principal: Principal, decisions: Sequence[Decision]) -> list[Piece]:
        return await self.reviewer.review(principal, decisions)

    async def set_excluded(
        self, principal: Principal, piece_ids: Sequence[str], excluded: bool
    ) -> list[Piece]:
        return await self.reviewer.set_excluded(principal, piece_ids, excluded)

    def kick(self, cook_id: str) -> None:
        """Fill the cook's free slots soon, in this process (and sweep at the tick's pace)."""
        self.pace.wake()
        self.scheduler.kick(cook_id)

    def relay_soon(self, cook_id: str) -> None:
        """Relay the cook's recorded events soon, in this process, without waiting."""
        self.scheduler.relay_soon(cook_id)

    async def fill(self, cook_id: str) -> None:
        await self.scheduler.fill(cook_id)

    async def complete(self, cook_id: str, piece_id: str, attempt: int, outcome: Outcome) -> bool:
        """The one completion function (see ``completion.py``)."""
        return await self.completion.complete(cook_id, piece_id, attempt, outcome)

    async def fail_cook(self, cook_id: str, reason: str) -> None:
        await self.completion.fail_cook(cook_id, reason)

    async def report_run(self, provider: str, run_id: str, outcome: Outcome) -> bool:
        return await self.attempts.report_run(provider, run_id, outcome)

    async def receive(self, spec: ToolSpec, payload: Any) -> bool:
        return await self.attempts.receive(spec, payload)

    async def report_progress(self, provider: str, run_id: str, status: str) -> bool:
        return await self.attempts.report_progress(provider, run_id, status)

    async def poll_runs(self) -> bool:
        return await self.attempts.poll_runs()

    # --- the sweeper ----------------------------------------------------------------------

    async def tick(self) -> bool:
        """One pass of the background work; whether it found any (see ``base/pace.py``).
        Safe in every process at once."""
        busy = False
        for chore in (self.poll_runs, self.deliveries.forget_old, self.relay_all):
            try:
                busy = bool(await chore()) or busy  # forgetting old deliveries is not work
            except Exception:  # a provider's or a chore's failure must not stop the sweeper
                log.exception("%s failed; trying again next tick", chore.__name__)
                busy = True  # keep trying at the tick's pace
        for piece_id, cook_id, attempt in (expired := await self.pieces.expired_leases()):
            await self.complete(
                cook_id, piece_id, attempt, Failure("the attempt's lease expired", retryable=True)
            )
        for cook_id in (active := await self.cooks.running_ids(ACTIVE)):
            self.kick(cook_id)
        for cook_id in (waiting := await self.pieces.waiting_cook_ids()):
            cook = await self.cooks.load(cook_id)
            if cook is None or cook.status not in (CookStatus.RUNNING, CookStatus.PAUSED):
                await self.pieces.cancel_waiting(cook_id)
        return busy or bool(expired or active or waiting)

    async def relay_all(self) -> bool:
        """Relay the recorded events of every cook that has some (of any process); whether
        there were any."""
        cook_ids = await self.events.unlogged_cook_ids()
        for cook_id in cook_ids:
            await self.events.relay(cook_id)
        return bool(cook_ids)

    async def run(self) -> None:
        """Pass forever, at the pace of what there is to do (started by the app's lifespan)."""
        while True:
            busy = True
            try:
                busy = await self.tick()
            except Exception:
                stop_if_cancelled()
                log.exception("scheduler tick failed; trying again")
            await self.pace.rest(busy)

    async def stop(self) -> None:
        """Stop in-process work. In-flight pieces keep their leases and are taken over later."""
        await self._background.stop()
        await self.events.stop()

    async def idle(self) -> None:
        """Wait until this process has no work in hand (for tests)."""
        await self._background.idle()


def _random_seed() -> int:
    return secrets.randbelow(SEED_BOUND + 1)
