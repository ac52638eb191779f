"""The per-request context every resolver receives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import strawberry
from strawberry.fastapi import BaseContext

from domain.errors import Unauthenticated
from domain.principal import Principal
from orchestration.services import Services
from resolvers.loaders import Loaders
from schema.rate_limits import OperationLimiter


@dataclass
class Context(BaseContext):
    """Built once per HTTP request, or once per WebSocket connection (its operations share it)."""

    services: Services
    request_id: str
    principal: Principal | None = None
    auth_error: Unauthenticated | None = None
    client_address: str | None = None  # whom an anonymous caller's rate limits count against
    limiter: OperationLimiter | None = None  # the app's operation rate limits (none: unlimited)
    _loaders: Loaders | None = None
    # WebSocket only: the connection_init payload, and the task closing the socket at expiry.
    connection_params: dict[str, object] | None = None
    expiry: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def loaders(self) -> Loaders:
        """Built on first use, once the caller is known (DataLoaders are per request)."""
        if self._loaders is None:
            self._loaders = Loaders.build(self.services, self.principal)
        return self._loaders

    def require_principal(self) -> Principal:
        if self.principal is not None:
            return self.principal
        raise self.auth_error or Unauthenticated("sign in: send Authorization: Bearer <token>")


type Info = strawberry.Info[Context, None]
