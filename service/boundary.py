"""The request boundary: what a request must be before GraphQL sees it, and the one shape of a
refusal.

An HTTP request to ``/graphql`` is a ``POST`` of ``application/json`` with a ``Content-Length`` of
at most ``MAX_BODY_BYTES`` (or a GraphQL multipart request of at most ``MAX_UPLOAD_BYTES``, whose
``operations`` and ``map`` fields keep to the same rule), holding one JSON object (no batch) that
keeps to the JSON rule of ``domain/json_values.py`` with ``BODY_LIMITS``: ``query`` a string,
``variables`` and ``extensions`` objects or null, ``operationName`` a string or null. A WebSocket
message is the same rule applied to one graphql-transport-ws message. Anything else is refused
before it can reach a decoder that recurses, a resolver, or the database: over HTTP with a
GraphQL-shaped body (``errors[0].extensions.code`` and ``requestId``) and status 400 (413 when too
large, 411 without a length, 405 for another method, 415 for another content type); over WebSocket
by closing with 4400.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.responses import JSONResponse
from strawberry.http import GraphQLRequestData

from domain.errors import ErrorCode
from domain.json_values import JsonLimits, JsonRefused, decode
from orchestration.art.layer_import import MAX_ZIP_BYTES

MAX_BODY_BYTES = 4 * 1024 * 1024
# A GraphQL multipart request (layer uploads): the largest file plus its form fields.
MAX_UPLOAD_BYTES = MAX_ZIP_BYTES + 1024 * 1024
# What uvicorn (h11) reads of a request's line and headers before it answers a bare 400
# itself: large enough that any single oversized header (a 1 MB Authorization) reaches the
# app and is refused in the documented shape, bounded so headers cannot exhaust memory.
MAX_HEADER_BYTES = 2 * 1024 * 1024
# A request wraps JSON-typed fields (16 levels each) in variables and input objects: 64 levels
# is far above any valid request and far below what could exhaust a stack.
BODY_LIMITS = JsonLimits(max_depth=64, max_bytes=MAX_BODY_BYTES)


class Refused(Exception):
    """A request refused at the boundary: its HTTP status, code and reason."""

    def __init__(
        self, status: int, message: str, code: ErrorCode = ErrorCode.BAD_USER_INPUT
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def code_for(status: int) -> ErrorCode:
    """The code of a refusal answered with an HTTP status outside GraphQL."""
    return {401: ErrorCode.UNAUTHENTICATED, 404: ErrorCode.NOT_FOUND}.get(
        status, ErrorCode.BAD_USER_INPUT
    )


def error_body(code: ErrorCode | str, message: str, request_id: str | None) -> dict[str, Any]:
    """The one shape of every error answered outside GraphQL's execution."""
    return {
        "errors": [{"message": message, "extensions": {"code": str(code), "requestId": request_id}}]
    }


def refusal_response(
    status: int,
    code: ErrorCode | str,
    message: str,
    request_id: str | None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, request_id), status_code=status, headers=headers)


def check_length(declared: str | None, limit: int = MAX_BODY_BYTES) -> None:
    """The declared body length must be there and within ``limit`` (the server reads exactly
    that many bytes, so the body is bounded before it is read)."""
    if declared is None:
        raise Refused(411, "send the body with a Content-Length")
    if not declared.isdigit():
        raise Refused(400, "the Content-Length is not a number")
    if int(declared) > limit:
        raise Refused(413, f"the body is {declared} bytes; at most {limit}")


def decode_json(raw: bytes | str, what: str) -> Any:
    try:
        return decode(raw, BODY_LIMITS)
    except JsonRefused as exc:
        raise Refused(413 if exc.too_large else 400, f"{what} {exc.message}") from exc


def request_data(
    raw: bytes, resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> GraphQLRequestData:
    """One GraphQL request from an HTTP body, or ``Refused``; ``resolve`` may fill in ``query``
    (a trusted document named by id)."""
    data = decode_json(raw, "the body")
    if isinstance(data, list):
        raise Refused(400, "batching is not enabled: send one operation as a JSON object")
    if not isinstance(data, dict):
        raise Refused(400, "the body must be a JSON object with a `query`")
    return operation(resolve(data) if resolve else data, "the body")


def operation(data: dict[str, Any], where: str) -> GraphQLRequestData:
    query = data.get("query")
    if not isinstance(query, str):
        raise Refused(400, f"{where}'s `query` must be a string")
    variables = data.get("variables")
    if not isinstance(variables, dict | None):
        raise Refused(400, f"{where}'s `variables` must be an object or null")
    operation_name = data.get("operationName")
    if not isinstance(operation_name, str | None):
        raise Refused(400, f"{where}'s `operationName` must be a string or null")
    extensions = data.get("extensions")
    if not isinstance(extensions, dict | None):
        raise Refused(400, f"{where}'s `extensions` must be an object or null")
    return GraphQLRequestData(query, variables, operation_name, extensions)


def ws_message(
    text: str, resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None
) -> dict[str, Any]:
    """One graphql-transport-ws message, shaped as the protocol says, or ``Refused``;
    ``resolve`` may fill in a ``subscribe`` payload's ``query`` (a trusted document by id)."""
    message = decode_json(text, "the message")
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise Refused(400, "a message must be a JSON object with a string `type`")
    kind = message["type"]
    if "id" in message and not isinstance(message["id"], str):
        raise Refused(400, "a message's `id` must be a string")
    if kind == "connection_init" and not isinstance(message.get("payload", {}), dict | None):
        raise Refused(400, "connection_init's payload must be an object")
    if kind in ("subscribe", "complete") and not isinstance(message.get("id"), str):
        raise Refused(400, f"{kind} needs a string `id`")
    if kind == "subscribe":
        payload = message.get("payload")
        if not isinstance(payload, dict):
            raise Refused(400, "subscribe's payload must be an object")
        message["payload"] = payload = resolve(payload) if resolve else payload
        operation(payload, "subscribe's payload")
    return message
