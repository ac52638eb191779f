"""GraphQL types for cooks, pieces and events. Nested data comes through DataLoaders."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Annotated, cast

import strawberry
from strawberry.scalars import JSON

from domain.errors import BadUserInput
from orchestration.art import engine
from orchestration.base.pagination import MAX_PAGE, Page, check_first, encode_cursor
from orchestration.cooking import cooks as cook_domain
from orchestration.cooking import events as event_domain
from orchestration.cooking import pieces as piece_domain
from orchestration.cooking import progress as progress_domain
from orchestration.cooking.events import MAX_EVENTS_PAGE
from schema.context import Info
from schema.node import Node
from schema.spell_types import Cast
from schema.types import PageInfo

CookStatus = strawberry.enum(
    cook_domain.CookStatus,
    name="CookStatus",
    description="RUNNING and PAUSED cooks are active (one per collection at most); CANCELLING "
    "starts nothing new and becomes CANCELLED once in-flight pieces settle.",
)
PieceStatus = strawberry.enum(piece_domain.PieceStatus, name="PieceStatus")
ReviewOutcome = strawberry.enum(piece_domain.Review, name="ReviewOutcome")
CookEventType = strawberry.enum(event_domain.EventType, name="CookEventType")


def usd(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-6)


@strawberry.type(description="One trait a piece drew.")
class ChosenTrait:
    category: str
    name: str
    value: str

    @classmethod
    def from_domain(cls, t: engine.ChosenTrait) -> ChosenTrait:
        return cls(category=t.category, name=t.name, value=t.value)


@strawberry.type(description="Counts computed from the cook's pieces, and its exact cost.")
class CookNumbers:
    in_flight: int
    retrying: int = strawberry.field(description="Waiting for their next attempt.")
    completed: int
    accepted: int
    rejected: int
    pending_review: int
    failed: int
    cancelled: int
    live: int = strawberry.field(
        description="In flight, retrying, or completed and not rejected; never above count."
    )
    cost_usd: Decimal = strawberry.field(description="Exact, in US dollars (6 decimals).")

    @classmethod
    def from_domain(cls, n: piece_domain.CookNumbers) -> CookNumbers:
        return cls(
            in_flight=n.in_flight,
            retrying=n.retrying,
            completed=n.completed,
            accepted=n.accepted,
            rejected=n.rejected,
            pending_review=n.pending_review,
            failed=n.failed,
            cancelled=n.cancelled,
            live=n.live,
            cost_usd=usd(n.cost_micros),
        )


async def _piece_casts(root: strawberry.Parent[Piece], info: Info) -> list[Cast]:
    found = await info.context.services.casts.for_piece(info.context.require_principal(), root.id)
    return [Cast.from_domain(c) for c in found]


@strawberry.type(description="One attempt of a piece that has ended.")
class PieceAttempt:
    attempt: int
    outcome: str = strawberry.field(description="completed, retrying or failed.")
    reason: str | None
    ended_at: datetime


def _output_size(root: strawberry.Parent[PieceOutput]) -> int:
    if root.known_size is not None:
        return root.known_size
    return len((root.text or "").encode())


def _output_sha256(root: strawberry.Parent[PieceOutput]) -> str:
    if root.known_sha256 is not None:
        return root.known_sha256
    return hashlib.sha256((root.text or "").encode()).hexdigest()


@strawberry.type(description="What a piece's generator produced: its text, or a stored image.")
class PieceOutput:
    content_type: str
    text: str | None = strawberry.field(description="The output itself, for text outputs.")
    url: str | None = strawberry.field(
        description="Where to fetch an image (with the same Bearer token; owner and admins "
        "only); null for text. It names the image's SHA-256, so it is cached as immutable."
    )
    # Known for stored media; for text computed only when asked (hashing every text output of
    # a gallery page cost a few per cent of the API's CPU even when no client selected them).
    known_size: strawberry.Private[int | None] = None
    known_sha256: strawberry.Private[str | None] = None

    size: int = strawberry.field(resolver=_output_size, description="In bytes.")
    sha256: str = strawberry.field(
        resolver=_output_sha256, description="Of the bytes (UTF-8 for text)."
    )

    @classmethod
    def of(cls, piece: piece_domain.Piece) -> list[PieceOutput]:
        outputs = [
            cls(
                content_type=m.content_type,
                text=None,
                url=f"/media/{piece.id}/{n}?v={m.sha256}",
                known_size=m.size,
                known_sha256=m.sha256,
            )
            for n, m in enumerate(piece.media)
        ]
        if piece.output_text:
            outputs.append(cls(content_type="text/plain", text=piece.output_text, url=None))
        return outputs


@strawberry.type(description="A piece of a cook: its draw, its attempts' result and review.")
class Piece(Node):
    id: strawberry.ID
    cook_id: strawberry.ID
    collection_id: strawberry.ID
    index: int = strawberry.field(description="Unique and increasing within the collection.")
    job_key: str = strawberry.field(description="`cookId:index`.")
    status: PieceStatus  # type: ignore[valid-type]
    review: ReviewOutcome | None = strawberry.field(  # type: ignore[valid-type]
        description="PENDING once completed until reviewed; null before completion."
    )
    excluded: bool = strawberry.field(
        description="An accepted piece left out of exports (see `setPiecesExcluded`)."
    )
    reviewed_at: datetime | None
    attempt: int = strawberry.field(description="The number of the current or last attempt.")
    attempts: list[PieceAttempt] = strawberry.field(description="Ended attempts, in order.")
    seed: str = strawberry.field(description="The piece's own seed (a 63-bit integer).")
    config_hash: str = strawberry.field(description="SHA-256 of the configuration it drew from.")
    traits: list[ChosenTrait]
    params: JSON = strawberry.field(description="The filled template sent to the generator.")
    output: str | None = strawberry.field(description="The text output (see also `outputs`).")
    outputs: list[PieceOutput]
    cost_usd: Decimal
    last_error: str | None
    created_at: datetime
    completed_at: datetime | None
    duration_ms: int | None = strawberry.field(description="How long the successful attempt took.")
    run_id: str | None = strawberry.field(
        description="The provider's run id of the latest attempt, for webhook and polled tools."
    )
    casts: list[Cast] = strawberry.field(
        resolver=_piece_casts, description="For a spell generator: each attempt's steps."
    )

    @classmethod
    def from_domain(cls, p: piece_domain.Piece) -> Piece:
        return cls(
            id=strawberry.ID(p.id),
            cook_id=strawberry.ID(p.cook_id),
            collection_id=strawberry.ID(p.collection_id),
            index=p.index,
            job_key=p.job_key,
            status=p.status,
            review=p.review,
            excluded=p.excluded,
            reviewed_at=p.reviewed_at,
            attempt=p.attempt,
            attempts=[
                PieceAttempt(
                    attempt=a.attempt, outcome=a.outcome, reason=a.reason, ended_at=a.ended_at
                )
                for a in p.attempts
            ],
            seed=str(p.seed),
            config_hash=p.config_hash,
            traits=[ChosenTrait.from_domain(t) for t in p.traits],
            params=cast(JSON, p.params),
            output=p.output_text,
            outputs=PieceOutput.of(p),
            cost_usd=usd(p.cost_micros),
            last_error=p.last_error,
            created_at=p.created_at,
            completed_at=p.completed_at,
            run_id=p.run_id,
            duration_ms=p.duration_ms,
        )


@strawberry.type
class PieceEdge:
    cursor: str
    node: Piece


@strawberry.type(description="A page of pieces.")
class PieceConnection:
    edges: list[PieceEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[piece_domain.Piece]) -> PieceConnection:
        return cls(
            edges=[
                PieceEdge(cursor=piece_domain.index_cursor(p.index), node=Piece.from_domain(p))
                for p in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type(description="One entry of a cook's event log.")
class CookEvent:
    seq: int = strawberry.field(description="Strictly increasing per cook, starting at 1.")
    type: CookEventType  # type: ignore[valid-type]
    at: datetime
    piece_id: strawberry.ID | None
    index: int | None
    attempt: int | None
    detail: str | None

    @classmethod
    def from_domain(cls, e: event_domain.Event) -> CookEvent:
        return cls(
            seq=e.seq,
            type=e.type,
            at=e.at,
            piece_id=strawberry.ID(e.piece_id) if e.piece_id else None,
            index=e.index,
            attempt=e.attempt,
            detail=e.detail,
        )


async def _cook_numbers(root: strawberry.Parent[Cook], info: Info) -> CookNumbers:
    return CookNumbers.from_domain(await info.context.loaders.cook_numbers.load(root.id))


async def _cook_events(
    root: strawberry.Parent[Cook],
    info: Info,
    after_seq: Annotated[int, strawberry.argument(description="0 for all.")] = 0,
    first: Annotated[int, strawberry.argument(description=f"1 to {MAX_EVENTS_PAGE}.")] = 100,
) -> list[CookEvent]:
    if not 1 <= first <= MAX_EVENTS_PAGE:
        raise BadUserInput.at("first", f"must be between 1 and {MAX_EVENTS_PAGE}")
    found = await info.context.loaders.cook_events.load((root.id, after_seq, first))
    return [CookEvent.from_domain(e) for e in found]


async def _cook_pieces(
    root: strawberry.Parent[Cook],
    info: Info,
    first: Annotated[int, strawberry.argument(description=f"1 to {MAX_PAGE}.")] = 50,
) -> list[Piece]:
    check_first(first)
    found = await info.context.loaders.cook_pieces.load((root.id, first))
    return [Piece.from_domain(p) for p in found]


@strawberry.type(description="A run that generates pieces for a collection.")
class Cook(Node):
    id: strawberry.ID
    collection_id: strawberry.ID
    status: CookStatus  # type: ignore[valid-type]
    reason: str | None = strawberry.field(description="Why it failed or was cancelled.")
    count: int = strawberry.field(description="Pieces to make (completed and not rejected).")
    max_concurrent: int
    max_failures: int = strawberry.field(description="The cook fails at this many failed pieces.")
    seed: int = strawberry.field(description="With the configuration, fixes every draw.")
    config_hash: str
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    last_seq: int = strawberry.field(description="The sequence number of its latest event.")

    numbers: CookNumbers = strawberry.field(
        resolver=_cook_numbers, description="Counts and cost, computed from the pieces."
    )
    events: list[CookEvent] = strawberry.field(
        resolver=_cook_events,
        description=f"Events after `afterSeq`, in order; at most {MAX_EVENTS_PAGE}.",
    )
    pieces: list[Piece] = strawberry.field(
        resolver=_cook_pieces, description=f"Its pieces by index; at most {MAX_PAGE}."
    )

    @classmethod
    def from_domain(cls, c: cook_domain.Cook) -> Cook:
        return cls(
            id=strawberry.ID(c.id),
            collection_id=strawberry.ID(c.collection_id),
            status=c.status,
            reason=c.reason,
            count=c.count,
            max_concurrent=c.max_concurrent,
            max_failures=c.max_failures,
            seed=c.seed,
            config_hash=c.config_hash,
            created_at=c.created_at,
            updated_at=c.updated_at,
            ended_at=c.ended_at,
            last_seq=c.last_seq,
        )


@strawberry.type
class CookEdge:
    cursor: str
    node: Cook


@strawberry.type(description="A page of cooks, newest first.")
class CookConnection:
    edges: list[CookEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[cook_domain.Cook]) -> CookConnection:
        return cls(
            edges=[
                CookEdge(cursor=encode_cursor(c.created_at, c.id), node=Cook.from_domain(c))
                for c in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type(description="A drawn piece that was not generated or stored.")
class PiecePreview:
    index: int
    seed: str
    traits: list[ChosenTrait]
    params: JSON

    @classmethod
    def from_domain(cls, d: engine.Draw) -> PiecePreview:
        return cls(
            index=d.index,
            seed=str(d.seed),
            traits=[ChosenTrait.from_domain(t) for t in d.traits],
            params=cast(JSON, d.params),
        )


@strawberry.type(description="What the next cook would draw with this seed.")
class Preview:
    seed: int
    pieces: list[PiecePreview]


@strawberry.type(
    description="One message of `cookProgress`: first a snapshot (`event` is null), then one "
    "per event in `seq` order. Status, counts and numbers are the cook's as the message was "
    "sent, computed from its pieces."
)
class CookProgress:
    seq: int = strawberry.field(
        description="The snapshot's latest event, or this event's; resume with `afterSeq`."
    )
    event: CookEvent | None
    status: CookStatus  # type: ignore[valid-type]
    count: int
    max_concurrent: int
    numbers: CookNumbers

    @classmethod
    def from_domain(cls, p: progress_domain.Progress) -> CookProgress:
        return cls(
            seq=p.seq,
            event=None if p.event is None else CookEvent.from_domain(p.event),
            status=p.head.status,
            count=p.head.count,
            max_concurrent=p.head.max_concurrent,
            numbers=CookNumbers.from_domain(p.numbers),
        )
