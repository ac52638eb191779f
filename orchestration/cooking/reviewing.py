"""Review: accept or reject completed pieces, and leave accepted ones out of exports.

All decisions are checked before any is written. A rejection is one conditional update that
gives the seat back and records ``PIECE_REJECTED`` in the same update; a running cook then
makes a replacement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from domain.errors import BadUserInput, Conflict, NotFound, Problem
from domain.principal import Principal
from orchestration.cooking.events import EventLog
from orchestration.cooking.piece_model import Piece, PieceStatus, Review
from orchestration.cooking.pieces import PieceStore

MAX_REVIEW_DECISIONS = 100


@dataclass(frozen=True)
class Decision:
    piece_id: str
    outcome: Review


class Reviewer:
    def __init__(self, pieces: PieceStore, events: EventLog, kick: Callable[[str], None]) -> None:
        self.pieces = pieces
        self.events = events
        self.kick = kick

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
            if outcome is Review.REJECTED and before.review is Review.REJECTED:
                reviewed.append(before)  # rejected once: it stays rejected, one event
                continue
            piece = await self.pieces.review(principal, before.cook_id, piece_id, outcome)
            if piece is None and outcome is Review.REJECTED:
                piece = await self.pieces.get(principal, piece_id)
                if piece is not None and piece.review is not Review.REJECTED:
                    piece = None
            if piece is None:
                raise Conflict(f"piece {piece_id} changed while it was being reviewed")
            reviewed.append(piece)
            if outcome is Review.REJECTED:
                await self.events.relay(piece.cook_id)
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
