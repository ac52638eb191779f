"""GraphQL types for exports and collection analytics."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from orchestration.base.pagination import Page, encode_cursor
from orchestration.base.policy import SEED_BOUND
from orchestration.results import analytics as analytics_domain
from orchestration.results import exports as export_domain
from orchestration.results.export_archive import (
    DEFAULT_NAME_TEMPLATE,
    MAX_BASE_URI,
    MAX_DESCRIPTION,
    ExportOptions,
)
from schema.byte_count import ByteCount
from schema.cook_types import PieceStatus, usd
from schema.node import Node
from schema.types import PageInfo

ExportStatus = strawberry.enum(
    export_domain.ExportStatus,
    name="ExportStatus",
    description="PENDING until a worker claims it, RUNNING with progress, then COMPLETED "
    "(the archive can be downloaded) or FAILED (with `error`).",
)


@strawberry.input(description="How to export. Every field is optional.")
class ExportOptionsInput:
    name_template: str = strawberry.field(
        default=DEFAULT_NAME_TEMPLATE,
        description="Each piece's `name`: `{number}` (required) and `{collection}` are "
        "replaced, nothing else is interpreted; at most 200 characters.",
    )
    description: str | None = strawberry.field(
        default=None,
        description=f"Each piece's `description` (at most {MAX_DESCRIPTION} characters); the "
        "collection's when omitted.",
    )
    shuffle: bool = strawberry.field(
        default=False,
        description="Number the pieces in a seeded random order instead of by piece index.",
    )
    shuffle_seed: int | None = strawberry.field(
        default=None,
        description=f"0 to {SEED_BOUND}, with shuffle; drawn and recorded when omitted.",
    )
    include_prompt: bool = strawberry.field(
        default=False, description="Add a `prompt` attribute with the piece's prompt."
    )
    image_base_uri: str = strawberry.field(
        default="",
        description="Prefix of each `image` (e.g. `ipfs://<cid>/`), followed by `NNNN.ext`; "
        f"the path inside the archive when empty. At most {MAX_BASE_URI} characters.",
    )

    def to_domain(self) -> ExportOptions:
        return ExportOptions(
            name_template=self.name_template,
            description=self.description,
            shuffle=self.shuffle,
            shuffle_seed=self.shuffle_seed,
            include_prompt=self.include_prompt,
            image_base_uri=self.image_base_uri,
        )


@strawberry.type(description="The options an export ran with (the shuffle seed recorded).")
class ExportOptionsUsed:
    name_template: str
    description: str | None
    shuffle: bool
    shuffle_seed: int | None
    include_prompt: bool
    image_base_uri: str


@strawberry.type(description="An export job of a collection's accepted, not excluded pieces.")
class Export(Node):
    id: strawberry.ID
    collection_id: strawberry.ID
    status: ExportStatus  # type: ignore[valid-type]
    options: ExportOptionsUsed
    total: int = strawberry.field(description="Pieces in the export (frozen when requested).")
    done: int = strawberry.field(description="Pieces written so far by the current attempt.")
    attempt: int = strawberry.field(description="How many times a worker has started it.")
    error: str | None
    size_bytes: ByteCount | None = strawberry.field(
        description="The archive's size once COMPLETED (an archive may pass 2 GiB)."
    )
    provenance_hash: str | None = strawberry.field(
        description="SHA-256 over the concatenated hex SHA-256 of every image, in number order."
    )
    download_url: str | None = strawberry.field(
        description="Once COMPLETED: GET it with the same `Authorization: Bearer` header."
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_domain(cls, e: export_domain.Export) -> Export:
        o = e.options
        return cls(
            id=strawberry.ID(e.id),
            collection_id=strawberry.ID(e.collection_id),
            status=e.status,
            options=ExportOptionsUsed(
                name_template=o.name_template,
                description=o.description,
                shuffle=o.shuffle,
                shuffle_seed=o.shuffle_seed,
                include_prompt=o.include_prompt,
                image_base_uri=o.image_base_uri,
            ),
            total=e.total,
            done=e.done,
            attempt=e.attempt,
            error=e.error,
            size_bytes=None if e.size_bytes is None else ByteCount(e.size_bytes),
            provenance_hash=e.provenance_hash,
            download_url=export_domain.archive_url(e.id)
            if e.status is export_domain.ExportStatus.COMPLETED
            else None,
            created_at=e.created_at,
            started_at=e.started_at,
            finished_at=e.finished_at,
        )


@strawberry.type
class ExportEdge:
    cursor: str
    node: Export


@strawberry.type(description="A page of exports, newest first.")
class ExportConnection:
    edges: list[ExportEdge]
    page_info: PageInfo

    @classmethod
    def from_page(cls, page: Page[export_domain.Export]) -> ExportConnection:
        return cls(
            edges=[
                ExportEdge(cursor=encode_cursor(e.created_at, e.id), node=Export.from_domain(e))
                for e in page.items
            ],
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=page.end_cursor),
        )


@strawberry.type(description="How many pieces have a status.")
class StatusCount:
    status: PieceStatus  # type: ignore[valid-type]
    count: int


@strawberry.type(description="One trait of a manual category: drawn against its weight.")
class TraitAnalytics:
    category: str
    name: str
    drawn: int = strawberry.field(description="Pieces (of any status) that drew it.")
    share: float | None = strawberry.field(description="drawn / pieces.")
    expected_share: float | None = strawberry.field(
        description="Its weight over its category's total weight, in today's trait tree "
        "(null: no longer in the tree). Exclusion rules can move the real share away from it."
    )
    accepted: int
    rejected: int
    approval_rate: float | None = strawberry.field(description="accepted / (accepted + rejected).")


@strawberry.type(description="A collection's numbers, computed from its pieces.")
class CollectionAnalytics:
    pieces: int
    by_status: list[StatusCount]
    pending_review: int
    accepted: int = strawberry.field(description="Including the excluded ones.")
    rejected: int
    excluded: int
    approval_rate: float | None = strawberry.field(description="accepted / (accepted + rejected).")
    total_cost_usd: Decimal
    average_cost_usd: Decimal | None = strawberry.field(description="Per completed piece.")
    total_duration_ms: int = strawberry.field(
        description="Summed over completed pieces (their successful attempt)."
    )
    average_duration_ms: float | None = strawberry.field(description="Per completed piece.")
    traits: list[TraitAnalytics] = strawberry.field(
        description="Traits of manual categories; generated ranges are left out."
    )

    @classmethod
    def from_domain(cls, a: analytics_domain.Analytics) -> CollectionAnalytics:
        average = a.average_cost_micros
        return cls(
            pieces=a.pieces,
            by_status=[StatusCount(status=s, count=n) for s, n in sorted(a.by_status.items())],
            pending_review=a.pending_review,
            accepted=a.accepted,
            rejected=a.rejected,
            excluded=a.excluded,
            approval_rate=a.approval_rate,
            total_cost_usd=usd(a.cost_micros),
            average_cost_usd=None
            if average is None
            else (usd(a.cost_micros) / a.completed).quantize(Decimal("0.000001")),
            total_duration_ms=a.duration_ms,
            average_duration_ms=a.average_duration_ms,
            traits=[
                TraitAnalytics(
                    category=t.category,
                    name=t.name,
                    drawn=t.drawn,
                    share=t.share,
                    expected_share=t.expected_share,
                    accepted=t.accepted,
                    rejected=t.rejected,
                    approval_rate=t.approval_rate,
                )
                for t in a.traits
            ],
        )
