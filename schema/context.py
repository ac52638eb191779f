"""The per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from strawberry.fastapi import BaseContext

from auth.principal import Principal
from orchestration.errors import Unauthenticated
from orchestration.services import Services


@dataclass
class Context(BaseContext):
    services: Services
    request_id: str
    principal: Principal | None = None
    auth_error: Unauthenticated | None = None

    def __post_init__(self) -> None:
        super().__init__()

    def require_principal(self) -> Principal:
        if self.principal is not None:
            return self.principal
        raise self.auth_error or Unauthenticated("sign in: send Authorization: Bearer <token>")


type Info = strawberry.Info[Context, None]
