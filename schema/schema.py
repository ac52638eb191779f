"""The schema: root types wired to resolvers, with the error extension and the guards."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.scalars import JSON
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from auth.permissions import IsAdmin, IsAuthenticated
from resolvers import admin
from resolvers import collections as col
from resolvers import cooks as ck
from resolvers import exports as ex
from resolvers import layers as ly
from resolvers import nodes as nd
from resolvers import notifications as wh
from resolvers import pieces as pc
from resolvers import spells as sp
from resolvers import viewer as me
from schema.byte_count import BYTE_COUNT_SCALAR, ByteCount
from schema.cook_types import Cook, CookConnection, CookEvent, Piece, PieceConnection, Preview
from schema.errors import CodedErrors, log_unexpected
from schema.export_types import CollectionAnalytics, Export, ExportConnection
from schema.guards import guard_extensions
from schema.layer_types import LayerSet
from schema.node import Node
from schema.preview_types import LayerPreview
from schema.query_cost import QueryLimits
from schema.scalars import JSON_SCALAR
from schema.shared_events import SharedEventExecutor
from schema.spell_types import Spell, SpellConnection
from schema.types import (
    Collection,
    CollectionConnection,
    GeneratedCategory,
    ManualCategory,
    Tool,
    Viewer,
)
from schema.webhook_types import (
    WebhookDelivery,
    WebhookDeliveryConnection,
    WebhookEndpoint,
    WebhookEndpointConnection,
)


def _query(resolver: Any) -> Any:
    """A root field: signed-in callers only, described by its resolver's docstring."""
    return strawberry.field(
        resolver=resolver, permission_classes=[IsAuthenticated], description=resolver.__doc__
    )


def _mutation(resolver: Any) -> Any:
    return strawberry.mutation(
        resolver=resolver, permission_classes=[IsAuthenticated], description=resolver.__doc__
    )


def _admin_query(resolver: Any) -> Any:
    return strawberry.field(
        resolver=resolver, permission_classes=[IsAdmin], description=resolver.__doc__
    )


def _admin_mutation(resolver: Any) -> Any:
    return strawberry.mutation(
        resolver=resolver, permission_classes=[IsAdmin], description=resolver.__doc__
    )


@strawberry.type(description="Everything a signed-in caller can read.")
class Query:
    viewer: Viewer = _query(me.viewer)
    node: Node | None = _query(nd.node)
    nodes: list[Node | None] = _query(nd.nodes)
    tools: list[Tool] = _query(me.tools)
    collection: Collection = _query(col.collection)
    collections: CollectionConnection = _query(col.collections)
    preview_pieces: Preview = _query(ck.preview_pieces)
    preview_layers: LayerPreview = _query(ly.preview_layers)
    cook: Cook = _query(ck.cook)
    cooks: CookConnection = _query(ck.cooks)
    spell: Spell = _query(sp.spell)
    spells: SpellConnection = _query(sp.spells)
    piece: Piece = _query(pc.piece)
    pieces: PieceConnection = _query(pc.pieces)
    export: Export = _query(ex.export)
    exports: ExportConnection = _query(ex.exports)
    collection_analytics: CollectionAnalytics = _query(ex.collection_analytics)
    webhook_endpoint: WebhookEndpoint = _query(wh.webhook_endpoint)
    webhook_endpoints: WebhookEndpointConnection = _query(wh.webhook_endpoints)
    webhook_deliveries: WebhookDeliveryConnection = _query(wh.webhook_deliveries)
    admin_cooks: CookConnection = _admin_query(admin.admin_cooks)
    admin_expired_leases: list[Piece] = _admin_query(admin.admin_expired_leases)
    admin_cook_events: list[CookEvent] = _admin_query(admin.admin_cook_events)


@strawberry.type(description="Everything a signed-in caller can change.")
class Mutation:
    create_collection: Collection = _mutation(col.create_collection)
    update_collection: Collection = _mutation(col.update_collection)
    import_trait_tree: Collection = _mutation(col.import_trait_tree)
    archive_collection: Collection = _mutation(col.archive_collection)
    restore_collection: Collection = _mutation(col.restore_collection)
    import_layers: Collection = _mutation(ly.import_layers)
    upload_layer: LayerSet = _mutation(ly.upload_layer)
    start_cook: Cook = _mutation(ck.start_cook)
    pause_cook: Cook = _mutation(ck.pause_cook)
    resume_cook: Cook = _mutation(ck.resume_cook)
    cancel_cook: Cook = _mutation(ck.cancel_cook)
    review_pieces: list[Piece] = _mutation(ck.review_pieces)
    set_pieces_excluded: list[Piece] = _mutation(pc.set_pieces_excluded)
    export_collection: Export = _mutation(ex.export_collection)
    create_spell: Spell = _mutation(sp.create_spell)
    update_spell: Spell = _mutation(sp.update_spell)
    create_webhook_endpoint: WebhookEndpoint = _mutation(wh.create_webhook_endpoint)
    update_webhook_endpoint: WebhookEndpoint = _mutation(wh.update_webhook_endpoint)
    delete_webhook_endpoint: WebhookEndpoint = _mutation(wh.delete_webhook_endpoint)
    rotate_webhook_secret: WebhookEndpoint = _mutation(wh.rotate_webhook_secret)
    send_test_webhook: WebhookDelivery = _mutation(wh.send_test_webhook)
    redeliver: WebhookDelivery = _mutation(wh.redeliver)
    admin_cancel_cook: Cook = _admin_mutation(admin.admin_cancel_cook)


@strawberry.type(description="Live updates, over WebSocket (graphql-transport-ws).")
class Subscription:
    cook_progress = strawberry.subscription(
        resolver=ck.cook_progress,
        permission_classes=[IsAuthenticated],
        description=ck.cook_progress.__doc__,
    )


class CookSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        context: Any = execution_context.context if execution_context else None
        log_unexpected(errors, getattr(context, "request_id", None))


def build_schema(
    limits: QueryLimits | None = None,
    *,
    field_suggestions: bool = True,
    extensions: Sequence[Callable[[], SchemaExtension]] = (),
) -> CookSchema:
    """The schema with its guards, after any ``extensions`` (observability's: they see the
    coded errors). Batching stays off (no ``batching_config``)."""
    return CookSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[ManualCategory, GeneratedCategory],
        extensions=[*extensions, CodedErrors, *guard_extensions(limits or QueryLimits())],
        config=StrawberryConfig(disable_field_suggestions=not field_suggestions),
        scalar_overrides={JSON: JSON_SCALAR, ByteCount: BYTE_COUNT_SCALAR},
        execution_context_class=SharedEventExecutor,
    )


schema = build_schema()
"""The default schema: what ``cook export-schema`` prints (apps: ``service.app.shared_schema``)."""


@functools.cache
def sdl() -> str:
    """The schema's SDL, as ``schema.graphql`` holds it: the same for every schema
    ``build_schema`` makes (limits, guards and extensions change no type), printed once."""
    return schema.as_str() + "\n"
