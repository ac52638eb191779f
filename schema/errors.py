"""Every error leaves with ``extensions.code`` from one fixed set; the unexpected are masked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

from graphql import GraphQLError
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import StreamExecutionResult

from domain.errors import CookError, ErrorCode, Unavailable

log = logging.getLogger("cook.errors")

INTERNAL_MESSAGE = "Internal error. Quote the requestId when you report it."
# graphql-core's suggestions name fields, arguments, types and enum values: only an admin may
# see every one of them, so only an admin is shown them (and only where the schema gives them,
# in development).
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


# The database not answering (down, restarting, unreachable, or past the client's timeout):
# the caller is told UNAVAILABLE, to retry, never INTERNAL.
OUTAGES = (ConnectionFailure, ExecutionTimeout, WTimeoutError)


def is_outage(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is the database not answering."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OUTAGES) or (isinstance(exc, PyMongoError) and exc.timeout):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def is_expected(error: GraphQLError) -> bool:
    """A domain error, or one GraphQL raised about the request (parse, validation, coercion)."""
    return (
        _is_request_error(error)
        or isinstance(error.original_error, CookError)
        or is_outage(error.original_error)
    )


def _is_request_error(error: GraphQLError) -> bool:
    return error.original_error is None or isinstance(error.original_error, GraphQLError)


class CodedErrors(SchemaExtension):
    """Give each error its code; replace an unexpected one with a masked ``INTERNAL`` error."""

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if not self._streamed:  # a subscription's results were coded one by one
            self._code(self.execution_context.result)

    def on_stream_result(self, result: StreamExecutionResult) -> Iterator[None]:
        self._streamed = True
        self._code(result)
        yield

    def _code(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if not errors:
            return
        context = self.execution_context.context
        request_id = getattr(context, "request_id", None)
        principal = getattr(context, "principal", None)
        admin = principal is not None and principal.is_admin
        coded = [self._coded(error, request_id, admin) for error in errors]
        result.errors = coded  # type: ignore[attr-defined]

    @staticmethod
    def _coded(error: GraphQLError, request_id: str | None, admin: bool) -> GraphQLError:
        original = error.original_error
        if is_outage(original):
            original = Unavailable()
        if isinstance(original, CookError):
            extensions = original.extensions
            # Raised while executing: the domain's message. Before (coercion, validation):
            # graphql's, which says where (e.g. which variable).
            message = original.message if error.path is not None else error.message
        elif _is_request_error(error):
            extensions = {"code": ErrorCode.BAD_USER_INPUT.value}
            message = error.message if admin else SUGGESTION.sub("", error.message)
        else:
            extensions = {"code": ErrorCode.INTERNAL.value, "requestId": request_id}
            message = INTERNAL_MESSAGE
        return GraphQLError(
            message=message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions=extensions,
        )


def log_unexpected(errors: list[GraphQLError], request_id: str | None) -> None:
    for error in errors:
        if not is_expected(error):
            log.error(
                "unexpected error (request %s) at %s",
                request_id,
                error.path,
                exc_info=error.original_error,
            )
