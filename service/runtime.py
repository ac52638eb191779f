"""What the lifespan builds and the routes use, and who is calling a plain HTTP route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pymongo import AsyncMongoClient

from auth.principal import Principal
from auth.tokens import TokenVerifier
from orchestration.errors import Unauthenticated
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


async def authenticate(request: Request) -> Principal | None:
    """The verified caller, None when anonymous; raises ``Unauthenticated`` for a bad token."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return await runtime_of(request).verifier.verify(token.strip())
