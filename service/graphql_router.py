"""The GraphQL endpoint over HTTP and over WebSocket (graphql-transport-ws only).

HTTP callers send ``Authorization: Bearer <token>``. WebSocket callers send the same value as
``authorization`` in the ``connection_init`` payload, since browsers cannot set headers on a
WebSocket. A connection without a token is accepted, and its operations fail with
``UNAUTHENTICATED`` as they would over HTTP; an invalid token closes the socket with 4403. The
socket is also closed with 4403 when the token expires: graphql-ws clients treat 4401 as final
but reconnect after 4403, with a fresh token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Mapping
from datetime import timedelta
from functools import partial
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError, OperationType, parse
from graphql.utilities import get_operation_ast
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.http.exceptions import NonJsonMessageReceived, NonTextMessageReceived
from strawberry.http.parse_content_type import parse_content_type
from strawberry.schema import BaseSchema
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from auth.tokens import TokenVerifier, identify
from domain.principal import Principal
from orchestration.base import clock
from schema.context import Context
from service import boundary, http_caching
from service.http_limits import client_address
from service.studio import graphiql
from service.trusted_documents import TrustedDocuments, Untrusted

log = logging.getLogger("cook.graphql")

TOKEN_EXPIRED_CLOSE_CODE = 4403
NO_ACK_PAYLOAD: UnsetType = UNSET


def _verifier(connection: HTTPConnection) -> TokenVerifier:
    verifier: TokenVerifier = connection.app.state.runtime.verifier
    return verifier


async def get_context(connection: HTTPConnection) -> Context:
    """Per HTTP request (whose caller the app's middleware identified), or per WebSocket
    connection (authenticated later, at ``connection_init``)."""
    context = Context(
        services=connection.app.state.runtime.services,
        request_id=getattr(connection.state, "request_id", None) or uuid.uuid4().hex,
        client_address=client_address(connection),
        limiter=connection.app.state.operation_limiter,
    )
    if not isinstance(connection, WebSocket):
        context.principal = getattr(connection.state, "principal", None)
        context.auth_error = getattr(connection.state, "auth_error", None)
    return context


async def _close_at_expiry(websocket: WebSocket, principal: Principal) -> None:
    if principal.expires_at is None:
        return
    await asyncio.sleep(max(0.0, (principal.expires_at - clock.now()).total_seconds()))
    log.info("closing the WebSocket of %s: token expired", principal.subject)
    with contextlib.suppress(RuntimeError, OSError):
        await websocket.close(code=TOKEN_EXPIRED_CLOSE_CODE, reason="token expired")


class CookWebSocketAdapter(ASGIWebSocketAdapter):
    """Every message goes through the boundary before the protocol handler reads it: one that
    is not a well-formed graphql-transport-ws message closes the socket with 4400."""

    async def iter_json(self, *, ignore_parsing_errors: bool = False) -> AsyncGenerator[object]:
        while self.ws.application_state != WebSocketState.DISCONNECTED:
            try:
                received = await self.ws.receive()
            except WebSocketDisconnect:
                return
            if received["type"] == "websocket.disconnect":
                return
            text = received.get("text")
            if text is None:
                raise NonTextMessageReceived
            refused_documents: list[Untrusted] = []
            try:
                message = boundary.ws_message(text, partial(self._trusted, refused_documents))
            except boundary.Refused as refused:
                log.info("WebSocket message refused: %s", refused.message)
                if not ignore_parsing_errors:
                    raise NonJsonMessageReceived from refused
                continue
            if refused_documents:  # answered for its id; the operation never runs
                untrusted = refused_documents[0]
                log.info("WebSocket operation refused: %s", untrusted.message)
                error = {"message": untrusted.message, "extensions": {"code": untrusted.code}}
                await self.send_json({"id": message["id"], "type": "error", "payload": [error]})
                continue
            yield message

    def _trusted(self, refused: list[Untrusted], payload: dict[str, Any]) -> dict[str, Any]:
        """A ``subscribe`` payload with a trusted document's text filled in. One the trusted
        documents refuse is noted in ``refused`` (and given an empty query, never run). Over
        the WebSocket the documents are required of everyone when required (the caller's roles
        are not known while the message is read): admins' ad hoc operations go over HTTP."""
        view = self.view
        if not isinstance(view, CookGraphQLRouter):
            return payload
        try:
            resolved = view.trusted.resolve(payload)
            query = resolved.get("query")
            if isinstance(query, str):
                view.trusted.check(query, is_admin=False)
        except Untrusted as untrusted:
            refused.append(untrusted)
            return {**payload, "query": ""}
        return resolved


class CookGraphQLRouter(GraphQLRouter[Context, None]):
    websocket_adapter_class = CookWebSocketAdapter

    def __init__(
        self,
        schema: BaseSchema,
        *,
        development: bool,
        max_subscriptions: int,
        trusted: TrustedDocuments | None = None,
        **kwargs: Any,
    ) -> None:
        self.trusted = trusted or TrustedDocuments()
        super().__init__(
            schema,
            context_getter=get_context,
            graphql_ide="graphiql" if development else None,
            allow_queries_via_get=True,  # queries only: mutations by GET get 405
            # GraphQL multipart requests (layer uploads). Every operation needs a bearer
            # token, which no cross-site form can send, so the CSRF concern that keeps this
            # off by default does not apply.
            multipart_uploads_enabled=True,
            subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=max_subscriptions,
            **kwargs,
        )

    def should_render_graphql_ide(self, request: Any) -> bool:
        """A GET naming a trusted document is an operation, not a visit to the IDE."""
        named = any(request.query_params.get(k) for k in ("documentId", "extensions"))
        return not named and super().should_render_graphql_ide(request)

    async def render_graphql_ide(self, request: Any) -> Any:
        return graphiql(request)  # development only: the vendored, offline GraphiQL

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        params = context.connection_params or {}
        credential = params.get("authorization", params.get("Authorization"))
        if credential is None:
            return NO_ACK_PAYLOAD
        websocket = context.request
        assert isinstance(websocket, WebSocket)
        credential = credential if isinstance(credential, str) else ""
        principal, error = await identify(_verifier(websocket), credential)
        if principal is None:
            log.info("WebSocket refused: %s", error)
            raise ConnectionRejectionError
        context.principal = principal
        context.expiry = asyncio.create_task(_close_at_expiry(websocket, principal))
        return NO_ACK_PAYLOAD

    async def parse_http_body(self, request: AsyncHTTPRequestAdapter) -> GraphQLRequestData:
        """Only the boundary's shape of request gets through (``service/boundary.py``), with a
        trusted document's id replaced by its text (``service/trusted_documents.py``)."""
        content_type, _ = parse_content_type(request.content_type or "")
        try:
            if request.method == "GET":  # GraphQL-over-HTTP: the request in the query string
                return self._operation(get_params(request.query_params), "the query string")
            if request.method != "POST":
                raise HTTPException(405, "send GraphQL operations with POST (queries: or GET)")
            if content_type == "multipart/form-data":  # an upload: operations, map, files
                boundary.check_length(
                    request.headers.get("content-length"), boundary.MAX_UPLOAD_BYTES
                )
                data = await self.parse_multipart(request)
                if not isinstance(data, dict):
                    raise boundary.Refused(400, "`operations` must be one JSON object")
                return self._operation(data, "the operations")
            if content_type != "application/json":
                raise HTTPException(
                    415, "send the operation as application/json (or multipart/form-data)"
                )
            boundary.check_length(request.headers.get("content-length"))
            return boundary.request_data(await request.get_body(), self._resolve)
        except boundary.Refused as refused:
            raise HTTPException(refused.status, refused.message) from refused

    def _operation(self, data: dict[str, Any], where: str) -> GraphQLRequestData:
        return boundary.operation(self._resolve(data), where)

    def _resolve(self, data: dict[str, Any]) -> dict[str, Any]:
        try:
            return self.trusted.resolve(data)
        except Untrusted as untrusted:
            raise CodedHTTPException(400, untrusted.message, untrusted.code) from untrusted

    async def execute_operation(
        self,
        request: Any,
        request_adapter: AsyncHTTPRequestAdapter,
        request_data: Any,
        context: Any,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        """Trusted documents enforced with the caller known; a mutation by GET is a 405."""
        if isinstance(request_data, GraphQLRequestData) and isinstance(request_data.query, str):
            principal = getattr(context, "principal", None)
            try:
                self.trusted.check(
                    request_data.query, is_admin=bool(principal and principal.is_admin)
                )
            except Untrusted as untrusted:
                raise CodedHTTPException(400, untrusted.message, untrusted.code) from untrusted
            if request_adapter.method == "GET" and not is_query(request_data):
                raise HTTPException(405, "only queries can be sent with GET: POST mutations")
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    def parse_json(self, data: str | bytes) -> Any:
        """Every JSON Strawberry decodes itself (a multipart request's fields) keeps to the
        boundary's rule."""
        try:
            return boundary.decode_json(data, "a JSON field")
        except boundary.Refused as refused:
            raise HTTPException(refused.status, refused.message) from refused

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            response = await super().run(request, context, root_value)
            if isinstance(request, Request) and request.method == "GET":
                return http_caching.revalidated(request, response)
            return response
        except HTTPException as exc:
            # Strawberry would answer these in plain text: give them the documented shape.
            request_id = getattr(context, "request_id", None)
            log.info("request refused (%s): %s", exc.status_code, exc.reason)
            return _refusal(exc, request_id)
        finally:
            if isinstance(context, Context) and context.expiry is not None:
                context.expiry.cancel()
            if isinstance(request, Request):
                await request.close()  # a multipart request's spooled files, read or not


class CodedHTTPException(HTTPException):
    """A refusal whose code is not the one its status implies."""

    def __init__(self, status_code: int, reason: str, code: str) -> None:
        super().__init__(status_code, reason)
        self.code = code


def _refusal(exc: HTTPException, request_id: str | None) -> Response:
    code = exc.code if isinstance(exc, CodedHTTPException) else boundary.code_for(exc.status_code)
    headers = {"Allow": "POST"} if exc.status_code == 405 else None
    return boundary.refusal_response(exc.status_code, code, exc.reason, request_id, headers)


def get_params(params: Mapping[str, str | None]) -> dict[str, Any]:
    """A GET request's parameters as the body a POST would carry (JSON-valued ones decoded)."""
    data: dict[str, Any] = {
        k: params[k] for k in ("query", "operationName", "documentId") if params.get(k) is not None
    }
    for name in ("variables", "extensions"):
        raw = params.get(name)
        if raw is not None:
            data[name] = boundary.decode_json(raw, f"`{name}`")
    return data


def is_query(request_data: GraphQLRequestData) -> bool:
    """Whether the operation to run is a query (an unparsable one is left to GraphQL)."""
    try:
        document = parse(request_data.query or "")
    except GraphQLError:
        return True
    operation = get_operation_ast(document, request_data.operation_name)
    return operation is None or operation.operation is OperationType.QUERY
