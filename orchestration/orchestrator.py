"""The cook orchestrator: user operations, the scheduler and the one completion function.

Nothing here is authoritative in memory. The scheduler (``fill``) and the sweeper (``tick``)
may run in every process at once: each step is a conditional single-document update or an
insert under unique indexes (see ``pieces.py``), so a racing process's step becomes a no-op.
In-process tasks only make things happen sooner; a restart loses nothing, since the periodic
tick finds every running cook, due retry and expired lease in the database.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from domain.errors import BadUserInput, Conflict, NotFound, Problem
from domain.principal import Principal
from orchestration import clock
from orchestration.background import Background
from orchestration.casts import CastStatus, CastStore
from orchestration.collections import CollectionSpec, CollectionStore, GeneratorKind
from orchestration.cooks import ACTIVE, Cook, CookRequest, CookStatus, CookStore
from orchestration.engine import (
    Config,
    Draw,
    NoValidDraw,
    UniqueValuesExhausted,
    combination_capacity,
    combination_key,
    draw,
    unique_capacity,
)
from orchestration.events import EventLog, EventType
from orchestration.pieces import (
    Failure,
    Outcome,
    Piece,
    PieceStatus,
    PieceStore,
    Review,
    Success,
)
from orchestration.policy import SEED_BOUND, CookPolicy
from orchestration.runs import Run, RunStore, run_key
from orchestration.spells import SpellStore, Step, step_ref, validate_spell
from orchestration.template import fill
from orchestration.tools import (
    OutputUnavailable,
    Submitted,
    Toolbox,
    ToolCall,
    ToolFailure,
    ToolOutput,
    ToolSpec,
)
from orchestration.webhooks import DeliveryLog, Refused

log = logging.getLogger("cook.orchestrator")

MAX_PREVIEW = 100
MAX_REVIEW_DECISIONS = 100
FILL_STEPS = 64  # bound on one fill pass; the next kick or tick continues
MAX_REDRAWS = 50  # draws tried for an unused trait combination before the cook fails
POLL_BATCH = 20  # provider runs one process polls per tick


@dataclass(frozen=True)
class Generators:
    """What pieces are generated with: tools, spells, and the records of their work."""

    toolbox: Toolbox
    spells: SpellStore
    runs: RunStore
    casts: CastStore
    deliveries: DeliveryLog


@dataclass(frozen=True)
class Decision:
    piece_id: str
    outcome: Review


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
        self._filling: dict[str, bool] = {}  # cook id -> another pass wanted (a hint only)

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
        await self._maybe_finish(cook.id)
        self.kick(cook.id)
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
        await self._maybe_finish(cook.id)
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

    async def review(self, principal: Principal, decisions: Sequence[Decision]) -> list[Piece]:
        """Apply review decisions. All are checked before any is written."""
        if not 1 <= len(decisions) <= MAX_REVIEW_DECISIONS:
            raise BadUserInput.at(
                "decisions", f"must hold between 1 and {MAX_REVIEW_DECISIONS} decisions"
            )
        final: dict[str, Review] = {}
        for d in decisions:
            final[d.piece_id] = d.outcome  # the last decision for a piece wins
        problems: list[Problem] = []
        checked: dict[str, Piece] = {}
        for i, (piece_id, outcome) in enumerate(final.items()):
            piece = await self.pieces.get(principal, piece_id)
            where = f"decisions[{i}].pieceId"
            if piece is None:
                raise NotFound("piece", piece_id)
            checked[piece_id] = piece
            if piece.status is not PieceStatus.COMPLETED:
                problems.append(Problem(where, f"the piece is {piece.status.value}, not completed"))
            elif piece.review is Review.REJECTED and outcome is Review.ACCEPTED:
                problems.append(
                    Problem(where, "a rejected piece stays rejected: its place may be taken")
                )
        if problems:
            raise Conflict(problems[0].message, field=problems[0].path)
        reviewed: list[Piece] = []
        for piece_id, outcome in final.items():
            before = checked[piece_id]
            if outcome is Review.ACCEPTED and before.excluded:
                reviewed.append(before)  # already accepted; it stays excluded
                continue
            piece = await self.pieces.review(principal, piece_id, outcome)
            if piece is None:
                raise Conflict(f"piece {piece_id} changed while it was being reviewed")
            reviewed.append(piece)
            if outcome is Review.REJECTED and before.review is not Review.REJECTED:
                await self.events.append(
                    piece.cook_id, EventType.PIECE_REJECTED, piece_id=piece.id, index=piece.index
                )
                self.kick(piece.cook_id)  # a running cook makes a replacement
        return reviewed

    async def set_excluded(
        self, principal: Principal, piece_ids: Sequence[str], excluded: bool
    ) -> list[Piece]:
        """Leave accepted pieces out of exports (or include them again). All are checked
        before any is written; a piece named twice counts once."""
        if not 1 <= len(piece_ids) <= MAX_REVIEW_DECISIONS:
            raise BadUserInput.at(
                "pieceIds", f"must hold between 1 and {MAX_REVIEW_DECISIONS} piece ids"
            )
        unique = list(dict.fromkeys(piece_ids))
        for piece_id in unique:
            piece = await self.pieces.get(principal, piece_id)
            if piece is None:
                raise NotFound("piece", piece_id)
            if piece.review is not Review.ACCEPTED:
                state = piece.review.value if piece.review else piece.status.value
                raise Conflict(
                    f"only accepted pieces can be excluded or included; {piece_id} is {state}",
                    field=f"pieceIds[{list(piece_ids).index(piece_id)}]",
                )
        changed: list[Piece] = []
        for piece_id in unique:
            piece = await self.pieces.set_excluded(principal, piece_id, excluded)
            if piece is None:
                raise Conflict(f"piece {piece_id} changed while it was being updated")
            changed.append(piece)
        return changed

    # --- scheduling ---------------------------------------------------------------------

    def kick(self, cook_id: str) -> None:
        """Fill the cook's free slots soon, in this process."""
        if cook_id in self._filling:
            self._filling[cook_id] = True
            return
        self._filling[cook_id] = False
        self._background.spawn(self._fill_repeatedly(cook_id))

    async def _fill_repeatedly(self, cook_id: str) -> None:
        try:
            while True:
                await self.fill(cook_id)
                if not self._filling.get(cook_id):
                    return
                self._filling[cook_id] = False
        finally:
            self._filling.pop(cook_id, None)

    async def fill(self, cook_id: str) -> None:
        """Start pieces (due retries first) while the cook runs and has free slots."""
        for _ in range(FILL_STEPS):
            cook = await self.cooks.load(cook_id)
            if cook is None or cook.status is not CookStatus.RUNNING:
                return
            taken = await self.pieces.taken_slots(cook.id)
            free = [k for k in range(cook.max_concurrent) if k not in taken]
            if not free:
                return
            try:
                piece = await self.pieces.claim_retry(cook.id, free[0])
                if piece is None:
                    piece = await self._new_piece(cook, free[0])
            except DuplicateKeyError:
                continue  # another process took that slot or seat first: look again
            if piece is None:
                return
            self._background.spawn(self._attempt(cook, piece))

    async def _new_piece(self, cook: Cook, slot: int) -> Piece | None:
        live = await self.pieces.count_live(cook.id)
        if live >= cook.count:
            return None
        index = await self.collections.allocate_piece_index(cook.collection_id)
        unique = cook.config.rules.unique_combinations
        salt = 0
        try:
            drawn = first_valid_draw(cook.config, cook.seed, index)
        except (UniqueValuesExhausted, NoValidDraw) as exc:
            await self.fail_cook(cook.id, str(exc))
            return None
        seat = live
        while True:
            try:
                return await self.pieces.create(
                    cook_id=cook.id,
                    collection_id=cook.collection_id,
                    owner_id=cook.owner_id,
                    config_hash=cook.config_hash,
                    drawn=drawn,
                    seat=seat,
                    slot=slot,
                    combo=combination_key(drawn.traits) if unique else None,
                )
            except DuplicateKeyError as exc:
                # Another process took the seat or slot first: try another with the same
                # index; only when none is left is the index skipped (a gap, never a reuse).
                # A taken combination draws again, reproducibly (the next salt).
                taken = (exc.details or {}).get("keyPattern", {})
                if "combo" in taken:
                    salt += 1
                    if salt > MAX_REDRAWS:
                        await self.fail_cook(
                            cook.id, f"no unused trait combination after {MAX_REDRAWS} draws"
                        )
                        return None
                    try:
                        drawn = first_valid_draw(cook.config, cook.seed, index, salt)
                    except NoValidDraw as no_draw:
                        await self.fail_cook(cook.id, str(no_draw))
                        return None
                    continue
                if "seat" in taken:
                    seats = await self.pieces.taken_seats(cook.id)
                    free = [s for s in range(cook.count) if s not in seats]
                elif "slot" in taken:
                    slots = await self.pieces.taken_slots(cook.id)
                    free = [k for k in range(cook.max_concurrent) if k not in slots]
                else:
                    raise
                if not free:
                    log.info("index %d of %s skipped: no free place", index, cook.collection_id)
                    return None
                if "seat" in taken:
                    seat = free[0]
                else:
                    slot = free[0]

    async def _attempt(self, cook: Cook, piece: Piece) -> None:
        """Run one attempt of a piece with its tool or spell, and report the outcome."""
        await self.events.append(
            cook.id,
            EventType.PIECE_SUBMITTED,
            piece_id=piece.id,
            index=piece.index,
            attempt=piece.attempt,
        )
        if cook.steps:
            await self.complete(cook.id, piece.id, piece.attempt, await self._cast(cook, piece))
            return
        call = ToolCall(piece.job_key, piece.attempt, piece.params)
        spec = self.toolbox.get(cook.generator.id)
        deliveries = 1 if spec is None else spec.deliveries(call)
        try:
            output = await self._run_tool(spec, cook.generator.id, call)
            if isinstance(output, Submitted):
                # The outcome arrives later (``report_run``); until then the piece holds its
                # slot, and the deadline (or the lease) fails the attempt if nothing comes.
                await self._submitted(spec, piece, output, step=None)
                return
            outcome: Outcome = Success(output.text, output.cost_micros, output.media)
        except ToolFailure as exc:
            outcome = Failure(exc.reason, exc.retryable)
        await asyncio.gather(
            *(self.complete(cook.id, piece.id, piece.attempt, outcome) for _ in range(deliveries))
        )

    async def _run_tool(
        self, spec: ToolSpec | None, tool_id: str, call: ToolCall
    ) -> ToolOutput | Submitted:
        """Every way a tool can go wrong becomes a ``ToolFailure``."""
        if spec is None:
            raise ToolFailure(f"the tool {tool_id!r} is not available", retryable=False)
        try:
            return await asyncio.wait_for(spec.run(call), self.policy.tool_timeout_seconds)
        except TimeoutError as exc:
            raise ToolFailure("the tool timed out", retryable=True) from exc
        except ToolFailure:
            raise
        except Exception as exc:
            log.exception("tool %s failed on %s", tool_id, call.job_key)
            raise ToolFailure("the tool failed unexpectedly", retryable=True) from exc

    async def _submitted(
        self, spec: ToolSpec | None, piece: Piece, submitted: Submitted, step: int | None
    ) -> None:
        assert spec is not None
        try:
            await self.runs.register(
                spec.id,
                submitted.run_id,
                piece_id=piece.id,
                cook_id=piece.cook_id,
                attempt=piece.attempt,
                step=step,
                poll=submitted.poll and spec.poll is not None,
                deadline_seconds=submitted.deadline_seconds or self.policy.lease_seconds,
            )
        except DuplicateKeyError as exc:
            raise ToolFailure(
                "the provider gave a run id it had given before", retryable=True
            ) from exc
        hold = None  # without a deadline of its own, the run lives by the piece's lease
        if submitted.deadline_seconds is not None:
            hold = submitted.deadline_seconds + self.policy.tick_seconds * 4
        await self.pieces.hold(piece.id, piece.attempt, hold, run_id=submitted.run_id)

    async def _cast(self, cook: Cook, piece: Piece) -> Outcome:
        """Run the spell's steps in order, recording each in the attempt's cast. A step may
        finish at once, or by webhook or polling; a failed step fails the attempt."""
        cast_id = await self.casts.create(piece, cook.steps)
        values = {t.category: t.value for t in piece.traits}
        outputs: list[ToolOutput] = []
        for n, step in enumerate(cook.steps, start=1):
            spec = self.toolbox.get(step.tool_id)
            call = ToolCall(f"{piece.job_key}:{n}", piece.attempt, fill(step.params, values))
            began = time.monotonic()
            if not await self.pieces.hold(piece.id, piece.attempt, self.policy.lease_seconds):
                # The attempt ended meanwhile (its lease ran out, or its cook was cancelled).
                await self.casts.finish(cast_id, CastStatus.FAILED)
                return Failure(f"step {n} ({step.tool_id}): the attempt was over", retryable=True)
            await self.casts.step_running(cast_id, n)
            try:
                result = await self._run_tool(spec, step.tool_id, call)
                if isinstance(result, Submitted):
                    await self._submitted(spec, piece, result, step=n)
                    await self.casts.step_submitted(cast_id, n, result.run_id)
                    result = await self._outcome_of(spec, result)
            except ToolFailure as exc:
                ms = _ms_since(began)
                await self.casts.step_failed(cast_id, n, exc.reason, ms)
                await self.casts.finish(cast_id, CastStatus.FAILED)
                return Failure(f"step {n} ({step.tool_id}): {exc.reason}", exc.retryable)
            await self.casts.step_completed(cast_id, n, result, _ms_since(began))
            values[step_ref(n)] = result.text
            outputs.append(result)
        await self.casts.finish(cast_id, CastStatus.COMPLETED)
        last = outputs[-1]
        return Success(last.text, sum(o.cost_micros for o in outputs), last.media)

    async def _outcome_of(self, spec: ToolSpec | None, submitted: Submitted) -> ToolOutput:
        """Wait for a spell step's run to be resolved (by webhook, poll or deadline)."""
        assert spec is not None
        key = run_key(spec.id, submitted.run_id)
        while True:
            run = await self.runs.get(key)
            if run is None:
                raise ToolFailure("the step's run record is gone", retryable=True)
            if run.outcome is not None:
                if isinstance(run.outcome, Failure):
                    raise ToolFailure(run.outcome.reason, retryable=run.outcome.retryable)
                return ToolOutput(run.outcome.text, run.outcome.cost_micros, run.outcome.media)
            if clock.now() > run.deadline + timedelta(seconds=self.policy.tick_seconds * 8):
                # The sweeper resolves overdue runs; none runs in any process, it seems.
                raise ToolFailure("the provider gave no outcome by the deadline", retryable=True)
            await asyncio.sleep(self.policy.tick_seconds)

    async def report_run(self, provider: str, run_id: str, outcome: Outcome) -> bool:
        """A provider run's outcome, from its webhook, the poller or its deadline. Applied
        once: the first report resolves the run, any later one changes nothing."""
        run = await self.runs.resolve(run_key(provider, run_id), outcome)
        if run is None:
            log.info("ignored a repeated or late report for run %s of %s", run_id, provider)
            return False
        if run.step is None:  # a spell step's outcome is picked up by its cast
            await self.complete(run.cook_id, run.piece_id, run.attempt, outcome)
            await self.runs.mark_applied(run.key)  # else the sweeper applies it again
        return True

    async def receive(self, spec: ToolSpec, payload: Any) -> bool:
        """Apply one verified webhook delivery; whether it changed anything. Raises
        ``Refused``: 400 for a body the provider's reader refuses, 404 for a run not (yet)
        known, 503 when its output cannot be fetched for now (the provider delivers again)."""
        assert spec.webhooks is not None
        try:
            report = spec.webhooks.read(payload)
        except (ValueError, TypeError, KeyError) as exc:
            raise Refused(400, f"malformed update: {exc}") from exc
        run = await self.runs.get(run_key(spec.id, report.run_id))
        if run is None:
            raise Refused(404, "unknown run")
        if not report.final:
            return await self.report_progress(spec.id, report.run_id, report.status)
        if run.done:
            return False
        if report.failure is not None:
            outcome: Outcome = Failure(report.failure, retryable=True)
        else:
            try:
                output = await spec.webhooks.finish(payload)
                outcome = Success(output.text, output.cost_micros, output.media)
            except OutputUnavailable as exc:
                raise Refused(503, exc.reason) from exc
            except ToolFailure as exc:
                outcome = Failure(exc.reason, exc.retryable)
        return await self.report_run(spec.id, report.run_id, outcome)

    async def report_progress(self, provider: str, run_id: str, status: str) -> bool:
        """A provider's progress update: an event, once per change, completing nothing."""
        run = await self.runs.note_status(run_key(provider, run_id), status)
        if run is None:
            return False
        await self.events.append(
            run.cook_id,
            EventType.PIECE_PROGRESS,
            piece_id=run.piece_id,
            attempt=run.attempt,
            detail=status[:100],
        )
        return True

    async def poll_runs(self, limit: int = POLL_BATCH) -> None:
        """Ask providers about due runs (each claimed by one process), and fail the runs
        whose deadline passed, which frees their slots."""
        claimed = []
        for _ in range(limit):
            run = await self.runs.claim_poll()
            if run is None:
                break
            if isinstance(run, Run):  # False: another process took that one; look again
                claimed.append(run)
        await asyncio.gather(*(self._poll(run) for run in claimed))
        for run in await self.runs.overdue():
            reason = "the provider gave no outcome by the deadline"
            await self.report_run(run.provider, run.run_id, Failure(reason, retryable=True))
        for run in await self.runs.unapplied(older_than_seconds=self.policy.tick_seconds * 4):
            assert run.outcome is not None
            await self.complete(run.cook_id, run.piece_id, run.attempt, run.outcome)
            await self.runs.mark_applied(run.key)

    async def _poll(self, run: Run) -> None:
        spec = self.toolbox.get(run.provider)
        if spec is None or spec.poll is None:
            return
        try:
            output = await asyncio.wait_for(spec.poll(run.run_id), self.policy.tool_timeout_seconds)
        except OutputUnavailable:
            return  # the output is there but not fetchable now: asked again at the next poll
        except ToolFailure as exc:
            await self.report_run(run.provider, run.run_id, Failure(exc.reason, exc.retryable))
            return
        except TimeoutError:
            return  # asked again at its next poll
        except Exception:
            log.exception("polling run %s of %s failed; asking again later", run.run_id, spec.id)
            return
        if output is not None:
            outcome = Success(output.text, output.cost_micros, output.media)
            await self.report_run(run.provider, run.run_id, outcome)

    async def complete(self, cook_id: str, piece_id: str, attempt: int, outcome: Outcome) -> bool:
        """The one completion function, for every path (sync, webhook, polling, lease expiry).

        Only the first report of an attempt changes anything; a duplicate, late or
        out-of-order one is a logged no-op. Returns whether this report was applied.
        """
        cook = await self.cooks.load(cook_id)
        may_retry = cook is not None and cook.status in (CookStatus.RUNNING, CookStatus.PAUSED)
        piece = await self.pieces.settle(piece_id, attempt, outcome, may_retry=may_retry)
        if piece is None:
            log.info("ignored a repeated or late outcome for %s attempt %d", piece_id, attempt)
            return False
        event = {
            PieceStatus.COMPLETED: EventType.PIECE_COMPLETED,
            PieceStatus.RETRYING: EventType.PIECE_RETRYING,
        }.get(piece.status, EventType.PIECE_FAILED)
        detail = outcome.reason if isinstance(outcome, Failure) else None
        await self.events.append(
            cook_id, event, piece_id=piece.id, index=piece.index, attempt=attempt, detail=detail
        )
        if piece.status is PieceStatus.FAILED and cook is not None:
            failed = await self.pieces.count(cook_id, (PieceStatus.FAILED,))
            if failed >= cook.max_failures:
                await self.fail_cook(
                    cook_id, f"{failed} pieces failed (the limit is {cook.max_failures})"
                )
        await self._maybe_finish(cook_id)
        self.kick(cook_id)
        return True

    async def fail_cook(self, cook_id: str, reason: str) -> None:
        failed = await self.cooks.transition(
            cook_id,
            (CookStatus.RUNNING, CookStatus.PAUSED),
            CookStatus.FAILED,
            EventType.COOK_FAILED,
            reason=reason,
        )
        if failed is not None:
            await self.pieces.cancel_waiting(cook_id)

    async def _maybe_finish(self, cook_id: str) -> None:
        cook = await self.cooks.load(cook_id)
        if cook is None:
            return
        if cook.status is CookStatus.RUNNING:
            if await self.pieces.completed_live(cook_id) < cook.count:
                return
            if await self.pieces.count(cook_id, (PieceStatus.RUNNING, PieceStatus.RETRYING)):
                return
            await self.cooks.transition(
                cook_id, (CookStatus.RUNNING,), CookStatus.COMPLETED, EventType.COOK_COMPLETED
            )
        elif cook.status is CookStatus.CANCELLING:
            if await self.pieces.count(cook_id, (PieceStatus.RUNNING,)):
                return
            done = await self.cooks.transition(
                cook_id,
                (CookStatus.CANCELLING,),
                CookStatus.CANCELLED,
                EventType.COOK_CANCELLED,
                reason=cook.reason,
            )
            if done is not None:
                await self.pieces.cancel_waiting(cook_id)

    # --- the sweeper ----------------------------------------------------------------------

    async def tick(self) -> None:
        """One pass of the background work. Safe in every process at once."""
        for chore in (self.poll_runs, self.deliveries.forget_old):
            try:
                await chore()
            except Exception:  # a provider's or a chore's failure must not stop the sweeper
                log.exception("%s failed; trying again next tick", chore.__name__)
        for piece_id, cook_id, attempt in await self.pieces.expired_leases():
            await self.complete(
                cook_id, piece_id, attempt, Failure("the attempt's lease expired", retryable=True)
            )
        for cook_id in await self.cooks.running_ids(ACTIVE):
            await self._maybe_finish(cook_id)
            self.kick(cook_id)
        for cook_id in await self.pieces.waiting_cook_ids():
            cook = await self.cooks.load(cook_id)
            if cook is None or cook.status not in (CookStatus.RUNNING, CookStatus.PAUSED):
                await self.pieces.cancel_waiting(cook_id)

    async def run(self) -> None:
        """Tick forever (started by the app's lifespan)."""
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("scheduler tick failed; trying again")
            await asyncio.sleep(self.policy.tick_seconds)

    async def stop(self) -> None:
        """Stop in-process work. In-flight pieces keep their leases and are taken over later."""
        await self._background.stop()

    async def idle(self) -> None:
        """Wait until this process has no work in hand (for tests)."""
        await self._background.idle()


def _ms_since(began: float) -> int:
    return int((time.monotonic() - began) * 1000)


def first_valid_draw(config: Config, seed: int, index: int, salt: int = 0) -> Draw:
    """The draw at ``salt``, or the next salt's when the exclusion rules leave a category
    without a trait; ``NoValidDraw`` after ``MAX_REDRAWS`` tries."""
    for attempt in range(salt, salt + MAX_REDRAWS):
        try:
            return draw(config, seed, index, attempt)
        except NoValidDraw:
            continue
    raise NoValidDraw(f"the exclusion rules left no valid draw in {MAX_REDRAWS} tries")


def _random_seed() -> int:
    return secrets.randbelow(SEED_BOUND + 1)
