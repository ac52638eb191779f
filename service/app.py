"""The FastAPI application: lifespan (database, indexes, keys), GraphQL, health routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from strawberry.fastapi import GraphQLRouter

from orchestration.errors import Unauthenticated
from orchestration.services import Services
from schema.context import Context
from schema.schema import schema
from service.database import connect
from service.downloads import downloads
from service.identity import build_verifier
from service.runtime import Runtime, authenticate
from service.runtime import runtime_of as _runtime
from service.settings import Settings

log = logging.getLogger("cook.app")

REQUEST_ID_HEADER = "X-Request-ID"


async def get_context(request: Request) -> Context:
    runtime = _runtime(request)
    context = Context(services=runtime.services, request_id=request.state.request_id)
    try:
        context.principal = await authenticate(request)
    except Unauthenticated as exc:
        context.auth_error = exc
    return context


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(connect(settings))
            services = Services.from_database(
                client[settings.db_name], settings.policy(), settings.exports_dir
            )
            await services.ensure_indexes()
            app.state.runtime = Runtime(settings, client, services, build_verifier(settings))
            background = (
                [
                    asyncio.create_task(services.orchestrator.run()),
                    asyncio.create_task(services.exports.run()),
                ]
                if settings.scheduler
                else []
            )
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await services.orchestrator.stop()
                await services.exports.stop()

    app = FastAPI(title="Cook", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.request_id = uuid.uuid4().hex
        response = await call_next(request)
        response.headers[REQUEST_ID_HEADER] = request.state.request_id
        return response

    graphql = GraphQLRouter[Context, None](
        schema,
        context_getter=get_context,
        graphql_ide="graphiql" if settings.is_development else None,
        allow_queries_via_get=False,
    )
    app.include_router(graphql, prefix="/graphql")

    app.include_router(downloads)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        """The database answers."""
        try:
            await _runtime(request).client.admin.command("ping")
        except Exception:
            log.warning("readiness check failed", exc_info=True)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    return app
