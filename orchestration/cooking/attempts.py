"""Running attempts: a piece's tool call or spell, and the provider runs that finish later.

Every outcome, whichever way it arrives (at once, by webhook, by polling, by a run's deadline),
goes to the one completion function (``completion.py``); a provider's run is resolved once
(``runs.py``), so a repeated report changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from orchestration.art.template import fill
from orchestration.base import clock, observed
from orchestration.base.policy import CookPolicy
from orchestration.base.tools import (
    OutputUnavailable,
    Submitted,
    Toolbox,
    ToolCall,
    ToolFailure,
    ToolOutput,
    ToolSpec,
)
from orchestration.cooking.casts import CastStatus, CastStore
from orchestration.cooking.cooks import Cook
from orchestration.cooking.events import EventLog
from orchestration.cooking.piece_model import Failure, Outcome, Piece, Success
from orchestration.cooking.pieces import PieceStore
from orchestration.cooking.runs import Run, RunStore, run_key
from orchestration.generators.spells import step_ref
from orchestration.generators.webhooks import Refused

log = logging.getLogger("cook.orchestrator")

POLL_BATCH = 20  # provider runs one process polls per tick

type Complete = Callable[[str, str, int, Outcome], Coroutine[Any, Any, bool]]


class Attempts:
    def __init__(
        self,
        toolbox: Toolbox,
        runs: RunStore,
        casts: CastStore,
        pieces: PieceStore,
        events: EventLog,
        policy: CookPolicy,
        complete: Complete,
    ) -> None:
        self.toolbox = toolbox
        self.runs = runs
        self.casts = casts
        self.pieces = pieces
        self.events = events
        self.policy = policy
        self._complete = complete

    @observed.attempt
    async def run(self, cook: Cook, piece: Piece) -> None:
        """Run one attempt of a piece with its tool or spell, and report the outcome (its
        ``PIECE_SUBMITTED`` was recorded when the attempt was claimed)."""
        if cook.steps:
            await self._complete(cook.id, piece.id, piece.attempt, await self._cast(cook, piece))
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
            *(self._complete(cook.id, piece.id, piece.attempt, outcome) for _ in range(deliveries))
        )

    @observed.tool_call
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
            await self._complete(run.cook_id, run.piece_id, run.attempt, outcome)
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
        """A provider's progress update: an event, once per change, completing nothing. The
        piece records it (with its event) first, so a crash before the run notes it only
        makes a repeated update a no-op."""
        key = run_key(provider, run_id)
        run = await self.runs.get(key)
        if run is None or run.done:
            return False
        noted = await self.pieces.note_progress(run.cook_id, run.piece_id, run.attempt, status)
        await self.runs.note_status(key, status)
        if noted:
            await self.events.relay(run.cook_id)
        return noted

    async def poll_runs(self, limit: int = POLL_BATCH) -> bool:
        """Ask providers about due runs (each claimed by one process), and fail the runs
        whose deadline passed, which frees their slots; whether there was any such run."""
        claimed = []
        for _ in range(limit):
            run = await self.runs.claim_poll()
            if run is None:
                break
            if isinstance(run, Run):  # False: another process took that one; look again
                claimed.append(run)
        await asyncio.gather(*(self._poll(run) for run in claimed))
        for run in (overdue := await self.runs.overdue()):
            reason = "the provider gave no outcome by the deadline"
            await self.report_run(run.provider, run.run_id, Failure(reason, retryable=True))
        for run in (unapplied := await self.runs.unapplied(self.policy.tick_seconds * 4)):
            assert run.outcome is not None
            await self._complete(run.cook_id, run.piece_id, run.attempt, run.outcome)
            await self.runs.mark_applied(run.key)
        return bool(claimed or overdue or unapplied)

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


def _ms_since(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
