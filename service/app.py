"""The FastAPI application: lifespan (database, indexes, keys), GraphQL, health routes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import ErrorCode
from orchestration.art.compositing import Compositor
from orchestration.base import tls
from orchestration.base.limit_storage import LimitStorage
from orchestration.base.sharding import is_sharded_cluster
from orchestration.generators.providers import ProviderContext, build_toolbox
from orchestration.services import Services
from orchestration.storage.media_gc import MediaCollector
from schema.query_cost import QueryLimits
from schema.rate_limits import OperationLimiter
from schema.schema import CookSchema, build_schema, sdl
from service import observability, provider_routes, studio, trusted_documents
from service.boundary import code_for, refusal_response
from service.database import connect
from service.downloads import downloads
from service.graphql_router import CookGraphQLRouter
from service.http_limits import HttpLimits
from service.identity import build_verifier
from service.request_gate import RequestGate
from service.runtime import Runtime, runtime_of
from service.settings import Settings
from service.stores import MediaFactory, media_store

log = logging.getLogger("cook.app")


def app_schema(
    limits: QueryLimits,
    field_suggestions: bool,
    metrics: bool,
    tracing: observability.Tracing | None = None,
) -> CookSchema:
    """The schema an app serves: its query limits, and the extensions its settings turn on
    (the operation metrics, tracing). It holds nothing else of the app: the operation rate
    limits are charged to the limiter each request's context carries."""
    operation_metrics = observability.operation_metrics(())
    schema = build_schema(
        limits,
        field_suggestions=field_suggestions,
        extensions=[
            *([operation_metrics] if metrics else ()),
            *(tracing.schema_extensions() if tracing else ()),
        ],
    )
    operation_metrics.known = observability.known_operations(observability.root_fields(schema))
    return schema


@functools.lru_cache(maxsize=8)
def shared_schema(limits: QueryLimits, field_suggestions: bool, metrics: bool) -> CookSchema:
    """One schema for every untraced app of this process with the same settings: building one
    costs about 17 ms of CPU, and its document cache (parses, validations and cost formulas,
    ``schema/guards.py``) then serves them all. A process serves one app; the test suite
    makes hundreds in each of its workers."""
    return app_schema(limits, field_suggestions, metrics)


def create_app(
    settings: Settings | None = None,
    *,
    media: MediaFactory = media_store,
    tracer_provider: Any = None,
) -> FastAPI:
    """The app; ``media`` builds its media store (tests pass their own to inject faults), and
    ``tracer_provider`` (an OpenTelemetry SDK one) traces it, as one built from the standard
    ``OTEL_*`` variables does when it is not given."""
    settings = settings or Settings()
    provider = tracer_provider or observability.tracer_provider_from_env()
    tracing = observability.Tracing(provider) if provider is not None else None
    limit_storage = LimitStorage(
        settings.rate_limit_storage_uri, timeout=settings.rate_limit_timeout_ms / 1000
    )
    operation_limiter = OperationLimiter(settings.operation_limits(), limit_storage)
    limits, suggestions = settings.query_limits(), settings.is_development
    schema = (
        shared_schema(limits, suggestions, settings.metrics)
        if tracing is None
        else app_schema(limits, suggestions, settings.metrics, tracing)
    )
    http_limits = HttpLimits(settings, limit_storage)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if tracing is not None:
                tracing.start()
                stack.callback(tracing.stop)
            client = await stack.enter_async_context(connect(settings))
            http = await stack.enter_async_context(
                httpx.AsyncClient(follow_redirects=False, verify=tls.verifying())
            )
            db = client[settings.db_name]
            store = await media(settings, db)
            compositor = Compositor(settings.compose_workers)
            stack.push_async_callback(asyncio.to_thread, compositor.shutdown)
            collector = MediaCollector(
                db,
                store,
                grace_seconds=settings.media_gc_grace_seconds,
                every_seconds=settings.media_gc_every_seconds,
            )
            await collector.ensure_indexes()
            context = ProviderContext(http, store, settings.callback_url)
            services = Services.from_database(
                db,
                settings.policy(),
                toolbox=build_toolbox(settings.provider_configs(), context),
                media=store,
                compositor=compositor,
                progress_poll_seconds=settings.progress_poll_seconds,
                notifications=settings.notification_config(),
            )
            # A sharded cluster gets the index layout its shard keys need (sharding.py).
            await services.ensure_indexes(db if await is_sharded_cluster(db) else None)
            app.state.runtime = Runtime(settings, client, services, build_verifier(settings))
            tasks = [asyncio.create_task(services.feed.run())]
            if settings.scheduler:
                tasks.append(asyncio.create_task(services.orchestrator.run()))
                tasks.append(asyncio.create_task(services.exports.run()))
                tasks.append(asyncio.create_task(collector.run()))
                tasks.append(asyncio.create_task(services.notifier.run()))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await services.orchestrator.stop()
                await services.exports.stop()
                await services.notifier.stop()
                await limit_storage.close()

    app = FastAPI(title="Cook", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.operation_limiter = operation_limiter  # each request's context carries it

    app.add_middleware(RequestGate, http_limits=http_limits)
    if settings.metrics:
        app.add_middleware(observability.ObserveRequests)  # outermost: sees every answer
        observability.metrics_route(app, settings)
    if tracing is not None:
        tracing.instrument_app(app)

    @app.exception_handler(StarletteHTTPException)
    async def http_refusal(request: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own refusals (no such route, another method) in the documented shape."""
        rid = getattr(request.state, "request_id", None)
        return refusal_response(
            exc.status_code, code_for(exc.status_code), str(exc.detail), rid, exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def malformed_request(request: Request, exc: RequestValidationError) -> Response:
        """A path or query parameter of the wrong type: 400 in the documented shape."""
        rid = getattr(request.state, "request_id", None)
        where = ", ".join(".".join(map(str, e.get("loc", ()))) for e in exc.errors())
        return refusal_response(400, ErrorCode.BAD_USER_INPUT, f"malformed: {where}", rid)

    graphql = CookGraphQLRouter(
        schema,
        development=settings.is_development,
        max_subscriptions=settings.ws_max_subscriptions,
        allowed_origins=settings.allowed_origins,
        trusted=trusted_documents.from_settings(settings),
    )
    studio.mount(app, development=settings.is_development, sdl=sdl())
    app.include_router(graphql, prefix="/graphql")
    app.include_router(provider_routes.router)
    app.include_router(downloads)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """The database answers; the body also says which media store is in use."""
        store = settings.media_store_kind.value
        try:
            await runtime_of(request).client.admin.command("ping")
        except Exception:
            log.warning("readiness check failed", exc_info=True)
            return JSONResponse({"status": "unavailable", "mediaStore": store}, status_code=503)
        return JSONResponse({"status": "ok", "mediaStore": store})

    return app
