"""The FastAPI application: lifespan (database, indexes, keys), GraphQL, health routes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pymongo import AsyncMongoClient
from strawberry.fastapi import GraphQLRouter

from auth.tokens import TokenVerifier, identify
from orchestration.services import Services
from schema.context import Context
from schema.rate_limits import OperationLimiter
from schema.schema import build_schema
from service.database import connect
from service.http_limits import HttpLimits, client_address
from service.identity import build_verifier
from service.settings import Settings

log = logging.getLogger("cook.app")

REQUEST_ID_HEADER = "X-Request-ID"


@dataclass
class Runtime:
    """What the lifespan builds and the routes use; lives on ``app.state.runtime``."""

    settings: Settings
    client: AsyncMongoClient[dict[str, Any]]
    services: Services
    verifier: TokenVerifier


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_context(request: Request) -> Context:
    """The caller was identified by the middleware (rate limits need it before routing)."""
    return Context(
        services=_runtime(request).services,
        request_id=request.state.request_id,
        principal=getattr(request.state, "principal", None),
        auth_error=getattr(request.state, "auth_error", None),
        client_address=client_address(request),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    operation_limiter = OperationLimiter(
        settings.operation_limits(), settings.rate_limit_storage_uri
    )
    schema = build_schema(
        settings.query_limits(), operation_limiter, field_suggestions=settings.is_development
    )
    http_limits = HttpLimits(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            client = await stack.enter_async_context(connect(settings))
            services = Services.from_database(client[settings.db_name], settings.policy())
            await services.ensure_indexes()
            app.state.runtime = Runtime(settings, client, services, build_verifier(settings))
            scheduler = (
                asyncio.create_task(services.orchestrator.run()) if settings.scheduler else None
            )
            try:
                yield
            finally:
                if scheduler is not None:
                    scheduler.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await scheduler
                await services.orchestrator.stop()
                await operation_limiter.close()

    app = FastAPI(title="Cook", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    # Middleware added last runs first: the request id, then the caller and their rate limit.
    @app.middleware("http")
    async def identify_and_limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request.state.principal, request.state.auth_error = await identify(
            _runtime(request).verifier, request.headers.get("authorization")
        )
        refusal = await http_limits.refusal(request)
        return refusal if refusal is not None else await call_next(request)

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
