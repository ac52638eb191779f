"""What the lifespan builds and the routes use, and who is calling a plain HTTP route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pymongo import AsyncMongoClient

from auth.tokens import TokenVerifier
from domain.errors import Unauthenticated
from domain.principal import Principal
from orchestration.services import Services
from service.settings import Settings


@dataclass
class Runtime:
    """Lives on ``app.state.runtime``."""

    settings: Settings
    client: AsyncMongoClient[dict[str, Any]]
    services: Services
    verifier: TokenVerifier


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def caller(request: Request) -> Principal | None:
    """The caller the app's middleware identified, None when anonymous; raises
    ``Unauthenticated`` for a bad token."""
    error: Unauthenticated | None = getattr(request.state, "auth_error", None)
    if error is not None:
        raise error
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal
