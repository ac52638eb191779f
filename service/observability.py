"""What an operator sees: ``/metrics``, the HTTP, GraphQL and database metrics, JSON logs and
OpenTelemetry traces (docs/observability.md).

Invariants: no label value is an id (routes are templates, operation names are the schema's
own root field names or ``other``); no log line carries a token, a signature or a configured
secret (the JSON formatter redacts them as a last line of defence); with no OTLP endpoint
configured no OpenTelemetry SDK object is created.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, ClassVar

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import SecretStr, ValidationError
from pymongo import monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import SchemaExtension

from domain.errors import ErrorCode
from orchestration.base import metrics, observed
from schema.plain_fields import RootFieldsOnly
from service.settings import Settings

log = logging.getLogger("cook.observability")

OTHER = "other"  # the one label for an operation name the schema does not know, or none
UNMATCHED = "unmatched"  # the one route label for a path no route matches
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CODES = frozenset(code.value for code in ErrorCode)


# --- HTTP ----------------------------------------------------------------------------------


def route_of(scope: Scope) -> str:
    """The matched route's template (``/files/{sha256}``), never the path itself: the path
    with each path parameter's value put back as ``{name}``; ``unmatched`` when no route
    matched (included routers do not keep their prefixed template on the route)."""
    if scope.get("route") is None:
        return UNMATCHED
    path = str(scope.get("path", ""))
    params: dict[str, Any] = scope.get("path_params") or {}
    for name, value in params.items():
        at = path.rfind(str(value)) if str(value) else -1
        if at < 0:
            return UNMATCHED  # a converted value not spelled as in the path: no template
        path = f"{path[:at]}{{{name}}}{path[at + len(str(value)) :]}"
    return path


class ObserveRequests:
    """Pure ASGI middleware (a ``BaseHTTPMiddleware`` costs a task per request): counts and
    times each HTTP request by method, route template and status. Outermost, so it sees
    every answer, refusals included; a failure that escapes counts as a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def sent(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sent)
        finally:
            route = route_of(scope)
            method = scope.get("method", "")
            method = method if method in METHODS else OTHER
            metrics.http_requests.labels(method, route, str(status)).inc()
            took = time.perf_counter() - began
            metrics.http_request_seconds.labels(method, route).observe(took)


# --- GraphQL -------------------------------------------------------------------------------


def known_operations(root_fields: Iterable[str]) -> dict[str, str]:
    """Operation names that get their own label: the schema's root field names, matched
    without regard to case (``StartCook`` and ``startCook`` are both ``startCook``)."""
    return {name.lower(): name for name in root_fields}


class OperationMetrics(SchemaExtension):
    """Counts and times each GraphQL operation by (bounded) name and outcome: ``ok``, or the
    first error's code. Listed before ``CodedErrors`` so it reads the coded errors."""

    known: ClassVar[dict[str, str]] = {}

    def on_operation(self) -> Iterator[None]:
        began = time.perf_counter()
        yield
        context = self.execution_context
        name = self.known.get((context.operation_name or "").lower(), OTHER)
        outcome = "ok"
        errors = getattr(context.result, "errors", None) or context.pre_execution_errors
        if errors:
            code = (errors[0].extensions or {}).get("code")
            outcome = code if code in CODES else ErrorCode.INTERNAL.value
        metrics.graphql_operations.labels(name, outcome).inc()
        metrics.graphql_operation_seconds.labels(name).observe(time.perf_counter() - began)


def operation_metrics(root_fields: Iterable[str]) -> type[OperationMetrics]:
    known = known_operations(root_fields)
    return type("CookOperationMetrics", (OperationMetrics,), {"known": known})


# --- the database --------------------------------------------------------------------------


class CommandDurations(monitoring.CommandListener):
    """PyMongo command monitoring: each command's duration by command name and outcome."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        metrics.db_command_seconds.labels(event.command_name, "ok").observe(
            event.duration_micros / 1e6
        )

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        metrics.db_command_seconds.labels(event.command_name, "failed").observe(
            event.duration_micros / 1e6
        )


# --- /metrics ------------------------------------------------------------------------------


async def refresh_from_database(db: AsyncDatabase[dict[str, Any]]) -> None:
    """The gauges that the database holds (cooks by status, slots), read at scrape time, so
    every process reports the same truth."""
    counts = dict.fromkeys(("running", "paused", "completed", "failed", "cancelled"), 0)
    available = 0
    async for row in await db["cooks"].aggregate(
        [
            {
                "$group": {
                    "_id": "$status",
                    "n": {"$sum": 1},
                    "slots": {"$sum": "$maxConcurrent"},
                }
            }
        ]
    ):
        if isinstance(row["_id"], str):
            counts[row["_id"]] = int(row["n"])
            if row["_id"] == "running":
                available = int(row["slots"] or 0)
    for status, n in counts.items():
        metrics.cooks_by_status.labels(status).set(n)
    metrics.slots_in_use.set(await db["pieces"].count_documents({"status": "running"}))
    metrics.slots_available.set(available)


def metrics_route(app: FastAPI, settings: Settings) -> None:
    """``GET /metrics``: open in development; in production it needs
    ``Authorization: Bearer <COOK_METRICS_TOKEN>``, and is absent (404) when that is unset."""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if not settings.is_development and token is None:
        return

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        if token is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return Response(
                    "unauthorized\n", status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
        runtime = request.app.state.runtime
        try:
            await refresh_from_database(runtime.client[runtime.settings.db_name])
        except Exception:
            log.warning("metrics: the database did not answer; gauges are stale", exc_info=True)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


# --- logs ----------------------------------------------------------------------------------

# A JWT (three base64url parts, the first a JSON header), a bearer credential, a signature.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")
REDACTED = "[redacted]"


class CookJsonFormatter(JsonFormatter):
    """One JSON object a line: time, level, logger, message, and the ids in scope; any
    configured secret, JWT or bearer credential replaced by ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
        self.secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        log_data.update(observed.in_scope())

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))

    def redact(self, line: str) -> str:
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        line = _JWT.sub(REDACTED, line)
        return _BEARER.sub(lambda m: m.group(1) + REDACTED, line)


def secrets_of(settings: Settings) -> list[str]:
    """The configured secrets a log line must never show."""
    found: list[str] = []
    for config in settings.provider_configs():
        for field in ("api_key", "webhook_secret"):
            value = getattr(config, field, None)
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
    if settings.metrics_token is not None:
        found.append(settings.metrics_token.get_secret_value())
    return found


def json_log_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(CookJsonFormatter(secrets_of(settings)))
    return handler


def configure_logging() -> None:
    """The process's logging: plain text, or with ``COOK_LOG_FORMAT=json`` one JSON object a
    line on stderr for every logger (uvicorn's too: it is then run without its own config).
    Settings that do not validate leave plain text (the command then says what is wrong)."""
    try:
        settings = Settings()
    except ValidationError:
        settings = None
    if settings is None or settings.log_format != "json":
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
        )
        return
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(json_log_handler(settings))
    root.setLevel(settings.log_level.upper())


# --- traces --------------------------------------------------------------------------------


def tracing_configured() -> bool:
    """The standard variables: an OTLP endpoint (for traces or for everything), and not
    ``OTEL_SDK_DISABLED``."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracer_provider_from_env() -> Any:
    """An SDK tracer provider exporting over OTLP/HTTP, or None when none is configured (the
    SDK is then not even imported)."""
    if not tracing_configured():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "cook")})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


class Tracing:
    """The OpenTelemetry instrumentations on one provider: FastAPI (each request), Strawberry
    (each operation and resolver), PyMongo (each command) and the orchestration's own spans
    (each piece attempt and provider call). PyMongo's is process-wide, so it is installed for
    the app's lifespan and removed after."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def instrument_app(self, app: FastAPI) -> None:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=self.provider,
            excluded_urls="healthz,readyz,metrics",
            exclude_spans=["receive", "send"],  # one span per request, not per message
        )

    def schema_extensions(self) -> list[Callable[[], SchemaExtension]]:
        from strawberry.extensions.tracing import OpenTelemetryExtension

        class RootFieldTracing(RootFieldsOnly, OpenTelemetryExtension):
            """Strawberry's spans (operation, parsing, validation) and one per root field:
            the resolvers of note. A span for each field of each of a page's pieces would cost
            more than the request. Nested plain fields skip it (``RootFieldsOnly``)."""

            def resolve(
                self, _next: Callable[..., Any], root: Any, info: Any, *args: str, **kwargs: Any
            ) -> Any:
                """Synchronous, so a nested field stays as cheap as without tracing: only
                a root field's resolution becomes the parent's coroutine with a span."""
                if info.path.prev is None:
                    return super().resolve(_next, root, info, *args, **kwargs)
                return _next(root, info, *args, **kwargs)

        return [lambda: RootFieldTracing(tracer_provider=self.provider)]

    def start(self) -> None:
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

        PymongoInstrumentor().instrument(tracer_provider=self.provider)
        observed.use_tracer(self.provider.get_tracer("cook"))

    def stop(self) -> None:
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

        observed.use_tracer(None)
        PymongoInstrumentor().uninstrument()
        self.provider.force_flush()


def root_fields(schema: Any) -> list[str]:
    """The names of the schema's root fields (queries, mutations, subscriptions)."""
    graphql_schema = schema._schema
    roots = (
        graphql_schema.query_type,
        graphql_schema.mutation_type,
        graphql_schema.subscription_type,
    )
    return [name for root in roots if root is not None for name in root.fields]
