"""The one completion function, for every path (sync, webhook, polling, lease expiry).

An attempt's outcome is applied by one conditional update on the piece (``status: running``
and its ``attempt`` in the filter), which records its event in the same update: a duplicate,
late or out-of-order report matches nothing and changes nothing. The freed slot is filled, and
a cook whose pieces are all done is finished, by the scheduler (``kick``); the event is relayed
to the log soon after (``relay_soon``), not waited for: under a steady stream of completions
the relay may go round for as long as the cook runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from orchestration.base import metrics
from orchestration.cooking.cooks import CookStatus, CookStore
from orchestration.cooking.events import EventLog, EventType
from orchestration.cooking.piece_model import Failure, Outcome, PieceStatus
from orchestration.cooking.pieces import PieceStore

log = logging.getLogger("cook.orchestrator")


class Completion:
    def __init__(
        self,
        cooks: CookStore,
        pieces: PieceStore,
        events: EventLog,
        kick: Callable[[str], None],
        relay_soon: Callable[[str], None],
    ) -> None:
        self.cooks = cooks
        self.pieces = pieces
        self.events = events
        self.kick = kick
        self.relay_soon = relay_soon

    async def complete(self, cook_id: str, piece_id: str, attempt: int, outcome: Outcome) -> bool:
        """Apply an attempt's outcome once. Returns whether this report was applied."""
        cook = None
        may_retry = True  # a success never retries: its cook needs no reading
        if isinstance(outcome, Failure):
            cook = await self.cooks.load(cook_id)
            may_retry = cook is not None and cook.status in (CookStatus.RUNNING, CookStatus.PAUSED)
        piece = await self.pieces.settle(cook_id, piece_id, attempt, outcome, may_retry=may_retry)
        if piece is None:
            log.info("ignored a repeated or late outcome for %s attempt %d", piece_id, attempt)
            return False
        metrics.attempt_settled(piece.status.value, piece.attempt_started_at)
        if piece.status is PieceStatus.FAILED and cook is not None:
            failed = await self.pieces.count(cook_id, (PieceStatus.FAILED,))
            if failed >= cook.max_failures:
                # Pieces settling at once may all see the limit passed: name the limit.
                limit = cook.max_failures
                await self.fail_cook(cook_id, f"{limit} pieces failed (the limit is {limit})")
        self.kick(cook_id)  # the freed slot is filled while the event is relayed
        self.relay_soon(cook_id)
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
