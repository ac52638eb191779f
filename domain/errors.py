"""The errors a client can see. Each carries one code from a fixed set (``ErrorCode``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    CONFLICT = "CONFLICT"
    RATE_LIMITED = "RATE_LIMITED"
    UNAVAILABLE = "UNAVAILABLE"  # the database did not answer: retry after ``retryAfter`` s
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where (a dotted field path) and what."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class CookError(Exception):
    """Base of every error meant for the client. ``extensions`` reach the GraphQL response."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    @property
    def extensions(self) -> dict[str, Any]:
        return {"code": self.code.value, **self.extra}


class Unauthenticated(CookError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(CookError):
    code = ErrorCode.FORBIDDEN


class NotFound(CookError):
    code = ErrorCode.NOT_FOUND

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} {ident!r} was not found")


class Conflict(CookError):
    code = ErrorCode.CONFLICT


UNAVAILABLE_RETRY_SECONDS = 5
UNAVAILABLE_MESSAGE = "The database is unavailable for now: retry the request later."


class Unavailable(CookError):
    """The database did not answer in time (down, restarting, unreachable): nothing is known
    to have been written, and the same request may be sent again after ``retryAfter``."""

    code = ErrorCode.UNAVAILABLE

    def __init__(self, message: str = UNAVAILABLE_MESSAGE) -> None:
        super().__init__(message, retryAfter=UNAVAILABLE_RETRY_SECONDS)


class RateLimited(CookError):
    code = ErrorCode.RATE_LIMITED


class BadUserInput(CookError):
    """Invalid input. ``problems`` lists every rule broken, each with its field path."""

    code = ErrorCode.BAD_USER_INPUT

    def __init__(self, problems: list[Problem]) -> None:
        if not problems:
            raise ValueError("BadUserInput needs at least one problem")
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(
            f"{first.path}: {first.message}{more}",
            field=first.path,
            problems=[p.as_dict() for p in problems],
        )
        self.problems = problems

    @classmethod
    def at(cls, path: str, message: str) -> BadUserInput:
        return cls([Problem(path, message)])
